// A VM that libvirt refuses must back off, not loop: its failure is recorded once, with libvirt's
// message, and retries follow the work queue's back-off (found looping at ~250 tries/s).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, paths, readStatus, runDaemon, startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

describe('a VM libvirt refuses', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    hv1 = await startHv('hv1');
    daemon = await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath));
  });

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    if (hv1) await stopHv(hv1);
    await zk?.cleanup();
  });

  it('records DefineFailed once and retries with back-off, not in a hot loop', async () => {
    // Well-formed, so virtkeeper accepts it; libvirt refuses the unknown OS type at define.
    const xml = `<domain type='test'><name>bad1</name><memory unit='MiB'>16</memory><vcpu>1</vcpu><os><type>no-such-os</type></os></domain>`;
    await writeVm(store, 'bad1', { node: 'hv1', state: 'running' }, xml);
    const status = await waitFor('Failed status', async () => {
      const s = await readStatus(store, 'bad1');
      return s?.phase === 'Failed' ? s : undefined;
    });
    const failed = (status.conditions as Array<{ type: string; status: string; message: string }>).find((c) => c.type === 'DefineFailed');
    assert.equal(failed?.status, 'True');
    assert.match(failed!.message, /no-such-os|os type|unsupported|invalid/i, 'carries libvirt\'s message');
    // Issue 12 §5: the domain was never defined, so the status claims no domain state (it said "running").
    assert.equal(status.domainState, undefined, `domainState ${String(status.domainState)} for a domain that does not exist`);

    const processedAtFailure = daemon!.domain.queue.metrics().processed;
    await new Promise((r) => setTimeout(r, 3000));
    const processed = daemon!.domain.queue.metrics().processed - processedAtFailure;
    // Back-off from 5 ms doubling allows about ten tries in 3 s; a hot loop made hundreds.
    assert.ok(processed <= 20, `${processed} reconciles of a failing VM in 3 s`);
    const after = await store.get(paths.vmStatus('bad1'));
    assert.ok(after!.version <= 1, `the same failure was written ${after!.version + 1} times`);
  });
});
