// The `vk` command tree. main.ts parses argv with it; tests and `vk completion` walk it.
import { Command } from 'commander';
import { registerApi } from './commands/api.ts';
import { registerCluster } from './commands/cluster.ts';
import { registerDeclarative } from './commands/apply.ts';
import { registerCompletion } from './commands/completion.ts';
import { registerDaemon } from './commands/daemon.ts';
import { registerEvents } from './commands/events.ts';
import { registerInspect } from './commands/get.ts';
import { registerNetwork } from './commands/network.ts';
import { registerNode } from './commands/node.ts';
import { registerSandbox } from './commands/sandbox.ts';
import { registerSchema } from './commands/schema.ts';
import { registerVm } from './commands/vm.ts';
import { addGlobalOptions } from './connect.ts';

export function buildProgram(): Command {
  const program = new Command('vk')
    .description('virtkeeper: declarative control of a cluster of libvirt hypervisors through ZooKeeper')
    .version('0.1.0')
    // Commander prints usage errors itself; main.ts only chooses the exit code.
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .addHelpText(
      'after',
      `
Exit codes: 0 success; 1 runtime failure (ZooKeeper, a failed --wait); 2 bad input (nothing written).
vk diff and vk plan: 0 no differences/actions, 1 differences/actions, 2 bad input, 3 runtime failure.`,
    );
  addGlobalOptions(program);

  registerDeclarative(program);
  registerVm(program);
  registerNode(program);
  registerNetwork(program);
  registerInspect(program);
  registerEvents(program);
  registerCluster(program);
  registerSchema(program);
  registerDaemon(program);
  registerApi(program);
  registerSandbox(program);
  registerCompletion(program);

  // The connection options are the program's, so they work before or after the subcommand; a
  // subcommand that declares an option of the same name (vk daemon --zk) gets the value too.
  program.hook('preAction', (_program, action) => {
    if (action === program) return;
    for (const name of ['zk', 'root', 'auth']) {
      if (program.getOptionValueSource(name) !== 'cli') continue;
      if (!action.options.some((o) => o.attributeName() === name)) continue;
      if (action.getOptionValue(name) === undefined) action.setOptionValue(name, program.getOptionValue(name));
    }
  });
  return program;
}
