import { Command, CommanderError } from 'commander';
import { registerDaemon } from './commands/daemon.ts';
import { registerSchema } from './commands/schema.ts';

const program = new Command('vk')
  .description('virtkeeper: declarative control of a cluster of libvirt hypervisors through ZooKeeper')
  .version('0.1.0')
  // Commander prints usage errors itself; we only choose the exit code.
  .exitOverride();

registerSchema(program);
registerDaemon(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) throw error;
  const finishedFine = ['commander.helpDisplayed', 'commander.version'].includes(error.code);
  process.exitCode = finishedFine ? 0 : 2;
}
