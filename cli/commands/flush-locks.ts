// `vk vm flush-locks NAME` (PVC's verb): clear the RBD locks of a VM that runs nowhere. The CLI
// refuses at once (exit 2, nothing written) when the VM runs or may start; otherwise it bumps
// spec.flushLocksAt and the VM's node removes the locks (it checks again that no QEMU of the VM
// runs there) and answers in /vms/<name>/rbd, which this command waits for.
import type { Command } from 'commander';
import { flushLocksRefusal } from '../../reconcilers/rbd/plan.ts';
import { decodeRbdCheck, type RbdCheck } from '../../schemas/index.ts';
import { readExistingVm, readNode } from '../cluster.ts';
import { parsePositiveInt, withCluster } from '../connect.ts';
import { CliError, usageError } from '../errors.ts';
import { println } from '../output.ts';
import { updateVmSpec } from '../update.ts';
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
        const vm = await readExistingVm(store, paths, name, { status: true });
        const refuse = (spec: typeof vm.spec.value, status: typeof vm.status): void => {
          if (spec.rbd.length === 0) throw usageError(`vm ${name} has no RBD disks: nothing to flush`);
          const why = flushLocksRefusal(spec, status?.value ?? null, false, spec.node);
          if (why !== undefined) throw usageError(`vm ${name}: locks not flushed: ${why}`);
        };
        refuse(vm.spec.value, vm.status);
        const node = vm.spec.value.node;
        if (!(await readNode(store, paths, node)).alive) {
          throw new CliError(`vm ${name}: locks not flushed: ${node}'s daemon is not running, and it is the node that removes them (start it, or move the VM to a live node first with vk vm move ${name} --node …)`);
        }
        const at = new Date().toISOString();
        await updateVmSpec(cluster, name, (spec, fresh) => {
          refuse(spec, fresh.status ?? vm.status);
          return { ...spec, flushLocksAt: at };
        });
        println(`vm/${name} flush-locks requested on ${node} (${vm.spec.value.rbd.join(', ')})`);
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
