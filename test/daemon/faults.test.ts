// The daemon across ZooKeeper faults: a 10 s outage (suspended) and a session expiry.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, paths, readStatus, runDaemon, startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

describe('daemon across ZooKeeper faults', () => {
  let zk: ZkServer;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;
  const actions: string[] = [];

  before(async () => {
    zk = await startZooKeeper();
    hv1 = await startHv('hv1');
  });

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    if (hv1) await stopHv(hv1);
    await zk?.cleanup();
  });

  it('starts nothing while ZooKeeper is away for 10 s, and converges once it is back', async () => {
    // Session timeout well above the outage: the daemon is suspended, not expired.
    daemon = await runDaemon(
      daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath, {
        zookeeper: { hosts: zk.connectString, root: '/virtkeeper', sessionTimeoutMs: 30_000 },
      }),
      actions,
    );
    const admin = await ZkStore.connect({ connectString: zk.connectString });
    await writeVm(admin, 'web1', { node: 'hv1' });
    await admin.close();
    await waitFor('web1 running', async () => (await domainState(hv1, 'web1')) === 'running');
    await daemon.domain.queue.idle();
    const session = daemon.store.sessionId;

    await zk.kill();
    await waitFor('daemon suspended', async () => daemon!.store.connectionState === 'suspended');
    const before = actions.length;
    await hv1.hv.destroy('web1'); // a lifecycle event: the daemon looks again, but must not act
    const outageEnds = Date.now() + 10_000;
    while (Date.now() < outageEnds) {
      assert.equal(actions.length, before, `no action may start while suspended; saw ${actions.slice(before).join(', ')}`);
      assert.equal(await domainState(hv1, 'web1'), 'shutoff');
      await new Promise((r) => setTimeout(r, 200));
    }
    await zk.start();
    await waitFor('web1 running again', async () => (await domainState(hv1, 'web1')) === 'running', 30_000);
    // Usually the same session survives the outage; under heavy load the client may declare it lost
    // and make a new one. Either way the node must be marked alive by its current session.
    if (daemon.store.sessionId !== session) console.error('faults.test: the session expired during the outage (machine under load)');
    const alive = await waitFor('alive znode', async () => (await daemon!.store.exists(paths.nodeAlive('hv1')))?.ephemeralOwner === daemon!.store.sessionId);
    assert.ok(alive);
    assert.ok(actions.slice(before).includes('hv1 web1 start'));
  });

  it('after session expiry the alive znode is back and work resumes', async () => {
    await daemon?.stop();
    daemon = await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath), actions);
    const oldSession = daemon.store.sessionId;
    const aliveBefore = await daemon.store.exists(paths.nodeAlive('hv1'));
    assert.equal(aliveBefore?.ephemeralOwner, oldSession);

    await zk.kill();
    const states: string[] = [];
    const sub = daemon.store.connectionState$.subscribe((s) => states.push(s));
    // Past the 4 s session timeout: the daemon's client-side timer declares the session lost.
    await waitFor('expired', async () => states.includes('expired'), 15_000);
    await zk.start();
    await waitFor('new session', async () => daemon!.store.connectionState === 'connected' && daemon!.store.sessionId !== oldSession, 30_000);
    sub.unsubscribe();

    const alive = await waitFor('alive znode re-created', async () => {
      const stat = await daemon!.store.exists(paths.nodeAlive('hv1'));
      return stat?.ephemeralOwner === daemon!.store.sessionId ? stat : undefined;
    }, 30_000);
    assert.notEqual(alive.ephemeralOwner, oldSession);

    const admin = await ZkStore.connect({ connectString: zk.connectString });
    await writeVm(admin, 'db1', { node: 'hv1' });
    await admin.close();
    await waitFor('db1 running after expiry', async () => (await domainState(hv1, 'db1')) === 'running', 20_000);
    await waitFor('db1 status', async () => {
      const probe = await ZkStore.connect({ connectString: zk.connectString });
      try {
        return (await readStatus(probe, 'db1'))?.phase === 'Running';
      } finally {
        await probe.close();
      }
    });
  });
});
