// Reservations (reconcilers/domain/plan.ts): a VM at rest stays held by its node, with the
// session that wrote that status, so that session starts it without a claim round trip; no other
// node claims it until its node releases it — when spec.node moves away, or when its daemon stops
// cleanly. Two real daemons on test-driver libvirtds, one ZooKeeper; a sampler looks at both
// libvirtds every 10 ms throughout: the VM never runs on both.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from '../rig/cluster.ts';
import { Sampler, type SamplerReport } from '../rig/sampler.ts';
import { moveVm } from '../rig/storm.ts';
import { waitFor } from '../rig/wait.ts';

const NODES = ['hv1', 'hv2'];

describe('a VM at rest is reserved by its node', { timeout: 300_000 }, () => {
  let rig: Cluster;
  let sampler: Sampler | undefined;
  let report: SamplerReport | undefined;

  before(async () => {
    rig = await Cluster.start('test', { nodes: NODES, clusterConfig: {} });
    for (const node of NODES) await rig.startDaemon(node);
    sampler = new Sampler((vm) => rig.activeOn(vm), 'rest1', { everyMs: 10, allowDowntime: true });
  });

  after(async () => {
    if (!report) await sampler?.stop();
    await rig?.cleanup();
  });

  it('the node writes its session with the Stopped status, and starts the VM with no claim', async () => {
    await rig.writeVm('rest1', { node: 'hv1', state: 'stopped' });
    const session = rig.daemons.get('hv1')!.store.sessionId;
    await waitFor('rest1 Stopped and reserved by hv1', async () => {
      const s = await rig.status('rest1');
      return s?.phase === 'Stopped' && s.node === 'hv1' && s.reservedBy === session;
    });
    const before = rig.actions.length;
    await rig.editSpec('rest1', (s) => void (s.state = 'running'));
    await waitFor('rest1 Running on hv1', async () => (await rig.status('rest1'))?.phase === 'Running' && (await rig.runsOn('rest1', 'hv1')));
    const lines = rig.actions.slice(before).filter((l) => l.includes(' rest1 '));
    assert.ok(lines.includes('hv1 rest1 start'), `a start in ${JSON.stringify(lines)}`);
    assert.ok(!lines.some((l) => l.startsWith('hv1 rest1 claim')), `no claim in ${JSON.stringify(lines)}`);
    assert.equal((await rig.status('rest1'))?.reservedBy, undefined, 'a running guest is held by its phase, not a reservation');
  });

  it('moved while at rest: its node releases it first, then the new node takes it (its own reservation or claim) and starts it', async () => {
    await rig.editSpec('rest1', (s) => void (s.state = 'stopped'));
    await waitFor('rest1 reserved at rest again', async () => (await rig.status('rest1'))?.reservedBy !== undefined);
    const before = rig.actions.length;
    await moveVm(rig.store, 'rest1', 'hv2');
    await rig.editSpec('rest1', (s) => void (s.state = 'running'));
    await waitFor('rest1 Running on hv2', async () => (await rig.status('rest1'))?.phase === 'Running' && (await rig.runsOn('rest1', 'hv2')));
    const lines = rig.actions.slice(before).filter((l) => l.includes(' rest1 '));
    const released = lines.findIndex((l) => l.startsWith('hv1 rest1 status'));
    const taken = lines.findIndex((l) => /^hv2 rest1 (claim|status)/.test(l));
    assert.ok(released >= 0 && taken > released, `hv1 released before hv2 wrote any status: ${JSON.stringify(lines)}`);
  });

  it('a daemon that stops cleanly gives back the VMs it reserves, so another node may take them at once', async () => {
    await rig.editSpec('rest1', (s) => void (s.state = 'stopped'));
    const session = rig.daemons.get('hv2')!.store.sessionId;
    await waitFor('rest1 reserved by hv2', async () => (await rig.status('rest1'))?.reservedBy === session);
    await rig.stopDaemon('hv2');
    const s = await rig.status('rest1');
    assert.equal(s?.node, 'hv2');
    assert.equal(s?.reservedBy, undefined, 'released on the clean stop');
    await moveVm(rig.store, 'rest1', 'hv1');
    await rig.editSpec('rest1', (s) => void (s.state = 'running'));
    await waitFor('rest1 Running on hv1 while hv2 has no daemon', async () => (await rig.status('rest1'))?.phase === 'Running' && (await rig.runsOn('rest1', 'hv1')));
  });

  it('the sampler never saw the VM on both nodes', async () => {
    report = await sampler!.stop();
    assert.ok(report.samples > 10, `${report.samples} samples while it ran`);
    assert.deepEqual(report.doubleRunning, []);
    assert.deepEqual(report.ranOn, ['hv1', 'hv2'], 'hosts in order of first appearance');
  });
});
