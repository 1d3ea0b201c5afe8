// Self-fencing (optional, off by default): a daemon cut off from ZooKeeper for selfFenceAfterMs
// destroys its own guests with RBD disks and leaves the others; a shorter cut destroys nothing.
// Real ZooKeeper (reached through a relay the test cuts), a real libvirtd (test driver), a real
// daemon in this process.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import { selfFenceProblem, selfFenceTargets } from '../../reconcilers/fence/plan.ts';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { startTcpProxy, type TcpProxy } from '../rig/tcp-proxy.ts';
import { daemonConfig, runDaemon, startHv, stopHv, testXml, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

const RBD_DISK = `<devices><disk type='network' device='disk'><source protocol='rbd' name='rbd/shared1'><host name='192.0.2.10' port='3300'/></source><target dev='vda' bus='virtio'/></disk></devices>`;

describe('self-fence: the plan', () => {
  it('targets only active guests with RBD disks, sorted', () => {
    const rbd: Record<string, string[]> = { a: ['rbd/a'], b: [], c: ['rbd/c1', 'rbd/c2'] };
    assert.deepEqual(selfFenceTargets(['c', 'b', 'a', 'unknown'], (vm) => rbd[vm]), ['a', 'c']);
  });
  it('refuses a deadline that does not come at least 1 s before anyone could recover', () => {
    assert.equal(selfFenceProblem(8_000, 10_000, 5_000), undefined);
    assert.match(selfFenceProblem(14_500, 10_000, 5_000) ?? '', /must be at least 1 s shorter/);
  });
});

describe('self-fence: a daemon cut off from ZooKeeper', { timeout: 120_000 }, () => {
  let zk: ZkServer;
  let store: ZkStore;
  let rig: HvRig;
  let proxy: TcpProxy;
  let daemon: RunningDaemon;
  const actions: string[] = [];
  const state = async (vm: string) => (await rig.hv.getDomain(vm))?.state ?? null;

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    rig = await startHv('hv1');
    proxy = await startTcpProxy('127.0.0.1', Number(zk.connectString.split(':')[1]));
    await writeVm(store, 'shared1', { node: 'hv1', state: 'running', rbd: ['rbd/shared1'] }, testXml('shared1', 64, 1, RBD_DISK));
    await writeVm(store, 'local1', { node: 'hv1', state: 'running' }, testXml('local1'));
    daemon = await runDaemon(daemonConfig('hv1', proxy.address, rig.libvirtd.socketPath, { fence: { enabled: false, ipmitool: '/usr/bin/ipmitool', resyncMs: 1000, selfFenceAfterMs: 1_500 } }), actions);
    await waitFor('both guests running', async () => (await state('shared1')) === 'running' && (await state('local1')) === 'running', 20_000);
  });

  after(async () => {
    await daemon?.stop();
    await proxy?.close();
    await store?.close();
    if (rig) await stopHv(rig);
    await zk?.cleanup();
  });

  it('a cut shorter than selfFenceAfterMs destroys nothing', async () => {
    proxy.cut();
    await new Promise((r) => setTimeout(r, 700));
    proxy.restore();
    await waitFor('connected again', () => daemon.store.connectionState === 'connected', 10_000);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await state('shared1'), 'running');
    assert.equal(await state('local1'), 'running');
    assert.deepEqual(actions.filter((a) => a.includes('self-fenced')), []);
  });

  it('a longer cut: the guest with an RBD disk is destroyed, the local one keeps running; once back, the daemon starts it again (nobody recovered it)', async () => {
    const t0 = Date.now();
    proxy.cut();
    await waitFor('shared1 destroyed by the self-fence', async () => (await state('shared1')) !== 'running', 10_000);
    const took = Date.now() - t0;
    assert.ok(took >= 1_400, `destroyed ${took} ms after the cut, before selfFenceAfterMs`);
    assert.equal(await state('local1'), 'running');
    assert.ok(actions.some((a) => a.includes('shared1 self-fenced')), actions.join('\n'));
    assert.ok(!actions.some((a) => a.includes('local1 self-fenced')));
    proxy.restore();
    await waitFor('shared1 running again', async () => (await state('shared1')) === 'running', 30_000);
  });
});
