// On a clean stop, the daemon gives back the VMs it reserves at rest (status.reservedBy, see
// plan.ts): a node whose daemon is stopped is not fenced, so nothing else would release them,
// and a stopped VM moved to another node would wait for this daemon to come back.
//
// Registered before the domain controller, so the Manager stops it after that controller: no
// reconcile can reserve a VM again once this runs. Bounded: a release left undone at the
// deadline keeps its reservation, which is safe (only later moves wait for it).
import type { Manager } from '../../controllers/manager.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { isActive } from '../../drivers/domain-run-state.ts';
import { compareAndSet, NO_CHANGE } from '../../drivers/zk/index.ts';
import { VM_STATUS_ZNODE, type VmStatus } from '../../schemas/index.ts';

const DEADLINE_MS = 3_000;
const CONCURRENCY = 8;

export function reservationRelease(m: Manager): Runnable {
  let started = false;
  return {
    name: 'domain-reservations',
    async start() {
      started = true;
    },
    async stop() {
      if (!started || m.store.connectionState !== 'connected') return;
      started = false;
      const session = m.store.sessionId;
      const reserved = m.informers.vms.names().filter((vm) => {
        const status = m.informers.vms.get(vm)?.status;
        return !!status && 'value' in status && status.value.node === m.node && status.value.reservedBy === session;
      });
      if (reserved.length === 0) return;
      const deadline = Date.now() + DEADLINE_MS;
      let released = 0;
      const queue = [...reserved];
      const worker = async (): Promise<void> => {
        for (let vm = queue.shift(); vm !== undefined && Date.now() < deadline; vm = queue.shift()) {
          try {
            if (isActive(await m.hv.domainState(vm))) continue;
            const out = await compareAndSet(m.store, m.paths.vmStatus(vm), {
              what: `the status of ${vm}`,
              ...VM_STATUS_ZNODE,
              edit: (s): VmStatus | typeof NO_CHANGE => {
                if (s.node !== m.node || s.reservedBy !== session) return NO_CHANGE;
                const { reservedBy: _reserved, ...rest } = s;
                return { ...rest, updatedAt: new Date().toISOString() };
              },
            });
            if (out.kind === 'written') released++;
          } catch (error) {
            m.log.warn({ err: error, vm }, `could not release ${vm} on stop; it stays reserved for ${m.node}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, reserved.length) }, worker));
      m.log.info({ released, reserved: reserved.length }, `released ${released} of ${reserved.length} VMs reserved at rest on ${m.node}`);
    },
  };
}
