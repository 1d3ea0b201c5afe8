// A start or stop of a VM whose domain state the driver knows is sent inside the informer's
// "look again" for the change: before any later subscriber of the same emission runs, so no other
// concern's reconcile of that change comes first (reconcilers/domain/controller.ts, inputsFor).
// Real ZooKeeper and libvirtd (test driver), the daemon as `vk daemon` builds it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Hypervisor } from '../../drivers/hypervisor.ts';
import { createLogger } from '../../controllers/logger.ts';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, editSpec, readStatus, startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

const VM = 'dispatch1';

describe('a start or stop is sent in the informer\'s turn', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;
  /** Libvirt calls the daemon made for VM, recorded as they are made. */
  const calls: string[] = [];

  function recorded<T extends Hypervisor>(hv: T): T {
    return new Proxy(hv, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          // Libvirt calls only (a promise): not the driver's cache lookups.
          if (args[0] === VM && result instanceof Promise) calls.push(String(prop));
          return result;
        };
      },
    });
  }

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    hv1 = await startHv('hv1');
    daemon = await startDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath), { log: createLogger({ level: 'silent' }), wrapHypervisor: recorded });
    await writeVm(store, VM, { node: 'hv1', state: 'stopped', stopMode: 'force' });
    await waitFor('Stopped status', async () => (await readStatus(store, VM))?.phase === 'Stopped');
  });

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    if (hv1) await stopHv(hv1);
    await zk?.cleanup();
  });

  /** Edits the spec and returns the calls already made when the informer's emission for it reached a subscriber after the daemon's. */
  async function callsAtLookAgain(edit: (s: Record<string, unknown>) => void, settledPhase: string): Promise<string[]> {
    await Promise.all([daemon!.domain.queue.idle(), daemon!.migration.queue.idle()]);
    assert.notEqual(daemon!.hv.knownDomainState(VM), undefined, 'precondition: the driver knows the domain state');
    const from = calls.length;
    let snapshot: string[] | undefined;
    const sub = daemon!.manager.informers.vms.changes$.subscribe((name) => {
      if (name === VM && snapshot === undefined) snapshot = calls.slice(from);
    });
    try {
      await editSpec(store, VM, edit);
      await waitFor(settledPhase, async () => (await readStatus(store, VM))?.phase === settledPhase);
    } finally {
      sub.unsubscribe();
    }
    assert.ok(snapshot, 'the informer emitted the change');
    return snapshot;
  }

  it('a start', async () => {
    const atLook = await callsAtLookAgain((s) => (s.state = 'running'), 'Running');
    assert.deepEqual(atLook, ['start'], 'the start was sent before the emission reached the next subscriber');
    assert.equal(await domainState(hv1, VM), 'running');
  });

  it('a forced stop', async () => {
    const atLook = await callsAtLookAgain((s) => {
      s.state = 'stopped';
      s.forceStopAt = new Date().toISOString();
    }, 'Stopped');
    assert.deepEqual(atLook, ['destroy'], 'the destroy was sent before the emission reached the next subscriber');
    assert.equal(await domainState(hv1, VM), 'shutoff');
  });
});
