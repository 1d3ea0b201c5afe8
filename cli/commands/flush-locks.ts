// `vk vm flush-locks NAME` (PVC's verb): clear the RBD locks of a VM that runs nowhere. The request
// is core/vm.ts requestFlushLocks (shared with POST /vm/{name}/flush-locks): refused at once (exit
// 2, nothing written) when the VM runs or may start; otherwise spec.flushLocksAt is bumped and the
// VM's node removes the locks (it checks again that no QEMU of the VM runs there) and answers in
// /vms/<name>/rbd, which this command waits for.
import type { Command } from 'commander';
import { requestFlushLocks } from '../../core/vm.ts';
import { decodeRbdCheck, type RbdCheck } from '../../schemas/index.ts';
import { parsePositiveInt, withCluster } from '../connect.ts';
import { println } from '../output.ts';
import { dataOf, waitFor } from '../wait.ts';

type Answer = NonNullable<RbdCheck['flushLocks']>;

function describeRemoved(a: Answer): string[] {
  return a.removed.map((l) => `  removed ${l.image}: ${l.locker} ${l.address}${l.node ? ` (${l.node})` : ''}`);
}

export function registerFlushLocks(vm: Command): void {
  vm.command('flush-locks')
    .description('clear the RBD locks of a VM that is stopped everywhere (its node removes them)')
    .argument('<name>', 'VM name')
    .option('--timeout <seconds>', 'how long to wait for the node to answer (default 60)', parsePositiveInt)
    .action(async (name: string, flags: { timeout?: number }, cmd: Command) => {
      await withCluster(cmd, async (cluster) => {
        const { store, paths } = cluster;
        const { at, node, images } = await requestFlushLocks(cluster, name);
        println(`vm/${name} flush-locks requested on ${node} (${images.join(', ')})`);
        let answer: Answer | undefined;
        const line = await waitFor(
          store.watchData(paths.vmRbd(name)),
          (state) => {
            const a = dataOf(state, (raw) => decodeRbdCheck(raw.toString('utf8')))?.flushLocks;
            if (a?.at !== at) return { pending: `waiting for ${node} to remove the locks` };
            answer = a;
            return a.result === 'done' ? { done: `vm/${name} locks flushed: ${a.message}` } : { failed: `vm/${name} locks not flushed (${a.result}): ${a.message}` };
          },
          { what: `vm/${name}`, ...(flags.timeout !== undefined ? { timeoutSeconds: flags.timeout } : {}) },
        ).catch((error: unknown) => {
          if (answer) for (const l of describeRemoved(answer)) println(l);
          throw error;
        });
        println(line);
        if (answer) for (const l of describeRemoved(answer)) println(l);
      });
    });
}
