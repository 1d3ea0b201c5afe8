// The daemon of bench/react, in a process of its own as a real one runs (the bench starts it with
// the daemon's V8 flags): startDaemon for one node, its hypervisor traced for one VM, and one more
// data watch on the daemon's own ZooKeeper session, for the floor. Talks to the bench over IPC:
//   → { ready: true } once started
//   → { floorSeen: version, t } when the floor znode's new version reaches the daemon's session
//   ← { cmd: 'settle', id } → { id, marks } once both VM queues are idle: the marks recorded since
//     the last settle (informer "look again", each traced libvirt call issued / answered)
//   ← { cmd: 'stop', id } → { id } once the daemon has stopped
// Times are process.hrtime (CLOCK_MONOTONIC), the same clock in every process of the machine.
// Usage (by bench/react): react-daemon.ts ZK_CONNECT LIBVIRT_SOCKET VM FLOOR_PATH (the floor znode exists)
import type { Hypervisor } from '../../drivers/hypervisor.ts';
import { createLogger } from '../../controllers/logger.ts';
import { startDaemon } from '../../daemon/daemon.ts';
import { daemonConfig } from '../../test/rig/testdriver.ts';
import { serveBench, type ReactorChild } from './reactor-child.ts';

const [connectString, socket, vm, floorPath] = process.argv.slice(2) as [string, string, string, string];
if (!floorPath) throw new Error('usage: react-daemon.ts ZK_CONNECT LIBVIRT_SOCKET VM FLOOR_PATH');
/** Set once the daemon is up: its driver's calls and informer are traced from then on. */
let bench: ReactorChild | undefined;
const mark = (what: string): void => bench?.mark(what);

/** The calls of the hypervisor driver a trial's timeline shows. */
const TRACED = ['domainState', 'start', 'shutdown', 'destroy', 'undefine'] as const;

/**
 * The daemon's hypervisor with each traced call for the VM marked when issued (once the call has
 * been sent: the driver writes it before it returns) and when answered. Own properties on the
 * driver itself, not a Proxy: every other access stays as cheap as in a real daemon.
 */
function traced<T extends Hypervisor>(hv: T): T {
  for (const name of TRACED) {
    const call = (hv[name] as (vm: string, ...rest: unknown[]) => Promise<unknown>).bind(hv);
    Object.defineProperty(hv, name, {
      value: (...args: [string, ...unknown[]]) => {
        const result = call(...args);
        if (args[0] !== vm) return result;
        mark(`${name} issued`);
        return result.then(
          (v) => (mark(`${name} answered`), v),
          (e: unknown) => (mark(`${name} failed`), Promise.reject(e)),
        );
      },
    });
  }
  return hv;
}

const daemon = await startDaemon(daemonConfig('hv1', connectString, socket), { log: createLogger({ level: 'silent' }), wrapHypervisor: traced });
// Marked as the informer emits, before any controller's subscriber runs (a free worker starts its
// reconcile inside the emission).
const changes$ = daemon.manager.informers.vms.changes$;
const emit = changes$.next.bind(changes$);
changes$.next = (name: string) => {
  if (name === vm) mark('informer: look again');
  emit(name);
};
bench = serveBench(daemon.store, floorPath, {
  settled: () => Promise.all([daemon.domain.queue.idle(), daemon.migration.queue.idle()]),
  stop: () => daemon.stop(),
});
