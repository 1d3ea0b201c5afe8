// Migration across three simulated QEMU hypervisors (test/rig/cluster.ts): real ZooKeeper, three
// private libvirtds with TCG guests in network namespaces joined by a bridge, real daemons.
//
// Every test runs a sampler that looks at all hypervisors every 100 ms: the guest must never run
// (not paused) on two of them at once, and never be absent from all of them while it should run,
// except across the switch-over of a completed migration (reported, with its bound).
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Cluster, clusterUnavailable, type SamplerReport } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';

const unavailable = clusterUnavailable();
if (unavailable) console.error(`!!! SKIPPING the QEMU migration tests: ${unavailable} !!!`);

function checkSamples(t: TestContext, report: SamplerReport, label: string): void {
  t.diagnostic(`${label}: ${report.samples} samples; switch-overs ${JSON.stringify(report.switchOvers)}`);
  assert.ok(report.samples > 5, `${label}: the sampler ran (${report.samples} samples)`);
  assert.deepEqual(report.doubleRunning, [], `${label}: the guest ran on two hypervisors at once`);
  assert.deepEqual(report.outages, [], `${label}: the guest was absent from every hypervisor while it should run`);
}

describe('lockstep migration between QEMU hypervisors', { skip: unavailable !== undefined, timeout: 240_000 }, () => {
  let c: Cluster;

  const state = async (vm: string) =>
    JSON.stringify({ where: await c.where(vm), record: await c.record(vm), status: await c.status(vm), actions: c.actions.slice(-15) }, null, 1);

  /** The guest runs on `node` only, its status says so, and no migration is in flight. */
  const settledOn = (vm: string, node: string, timeoutMs = 60_000) =>
    waitFor(
      `${vm} running on ${node} only`,
      async () => {
        const running = await c.runningOn(vm);
        const status = await c.status(vm);
        const record = await c.record(vm);
        const recordSettled = record === null || ['done', 'aborted', 'failed'].includes(record.phase);
        return running.length === 1 && running[0] === node && status?.node === node && status.phase === 'Running' && recordSettled ? status : undefined;
      },
      timeoutMs,
      () => state(vm),
    );

  /** The live copy of `vm` to `target` is under way: record copying with progress in it. */
  const copyUnderway = (vm: string, target: string) =>
    waitFor(
      `${vm} copying to ${target}`,
      async () => {
        const r = await c.record(vm);
        return r && r.target === target && r.phase === 'copying' && (r.progress?.processedBytes ?? 0) > 0 ? r : undefined;
      },
      60_000,
      () => state(vm),
    );

  /** (Re)starts the node's in-process daemon; a 1 MiB/s cap makes the copy of a guest take over 10 s. */
  const restartDaemon = async (node: string, bandwidthMiBs?: number) => {
    await c.stopDaemon(node);
    await c.startDaemon(node, bandwidthMiBs !== undefined ? { bandwidthMiBs } : {});
  };

  const removeVm = async (vm: string) => {
    await c.deleteVm(vm);
    await waitFor(`${vm} gone everywhere`, async () => Object.values(await c.where(vm)).every((x) => x === null), 60_000, () => state(vm));
  };

  before(async () => {
    c = await Cluster.start('qemu');
    for (const hv of c.hvs) await c.startDaemon(hv.name);
  });

  after(async () => {
    await c?.cleanup();
  });

  it('live-migrates vm1 to hv2 and unmigrates it back; it runs on one hypervisor at every instant', async (t) => {
    await c.writeVm('vm1', { node: 'hv1', state: 'running' });
    await settledOn('vm1', 'hv1');
    const sampler = c.sampler('vm1');

    await c.migrate('vm1', 'hv2');
    const onHv2 = await settledOn('vm1', 'hv2');
    const spec = await c.spec('vm1');
    assert.equal(spec.node, 'hv2');
    assert.equal(spec.previousNode, 'hv1');
    assert.equal(onHv2.node, 'hv2');
    const record = await c.record('vm1');
    assert.equal(record?.phase, 'done');
    assert.equal(record?.method, 'live');
    assert.deepEqual([record?.source, record?.target], ['hv1', 'hv2']);
    assert.equal(await c.hv('hv1').probe.getDomain('vm1'), null, 'nothing of vm1 stays defined on hv1');
    assert.equal((await c.hv('hv2').probe.getDomain('vm1'))?.persistent, true, 'vm1 is persistent on hv2');

    await c.unmigrate('vm1');
    await settledOn('vm1', 'hv1');
    const back = await c.spec('vm1');
    assert.equal(back.previousNode, undefined);
    assert.equal(await c.hv('hv2').probe.getDomain('vm1'), null);

    const report = await sampler.stop();
    checkSamples(t, report, 'migrate + unmigrate');
    assert.deepEqual(report.ranOn, ['hv1', 'hv2']);
    assert.deepEqual(
      report.switchOvers.map((s) => `${s.from}>${s.to}`),
      ['hv1>hv2', 'hv2>hv1'],
    );
    await removeVm('vm1');
  });

  it('migrationMethod shutdown: the guest is shut down on hv1, then started on hv2', async (t) => {
    await c.writeVm('vm2', { node: 'hv1', state: 'running', shutdownTimeoutMs: 2000, meta: { migrationMethod: 'shutdown' } });
    await settledOn('vm2', 'hv1');
    const sampler = c.sampler('vm2', { allowDowntime: true });
    const from = c.actions.length;
    await c.migrate('vm2', 'hv2');
    await settledOn('vm2', 'hv2');
    const record = await c.record('vm2');
    assert.equal(record?.method, 'shutdown');
    assert.equal(record?.phase, 'done');
    const lines = c.actions.slice(from);
    const shutdownAt = lines.indexOf('hv1 vm2 shutdown migration to hv2');
    const startAt = lines.indexOf('hv2 vm2 start');
    assert.ok(shutdownAt >= 0 && startAt > shutdownAt, `shutdown on hv1, then start on hv2:\n${lines.join('\n')}`);
    assert.equal(await c.hv('hv1').probe.getDomain('vm2'), null);
    const report = await sampler.stop();
    checkSamples(t, report, 'shutdown migration');
    assert.equal(report.switchOvers.length, 1);
    assert.ok(report.switchOvers[0]!.absentSamples > 0, 'it ran nowhere between the shutdown and the start');
    await removeVm('vm2');
  });

  it('retarget mid-copy: back to the source aborts and stays; hv2 → hv3 aborts the copy to hv2 and lands on hv3', async (t) => {
    await restartDaemon('hv1', 1);
    await c.writeVm('vm3', { node: 'hv1', state: 'running' });
    await settledOn('vm3', 'hv1');
    const sampler = c.sampler('vm3');

    // Back to the source while the copy runs: aborted, the guest stays on hv1.
    await c.migrate('vm3', 'hv2');
    const first = await copyUnderway('vm3', 'hv2');
    const abortsBefore = c.abortsIssued.length;
    await c.unmigrate('vm3');
    const stayed = await settledOn('vm3', 'hv1');
    const r1 = await c.record('vm3');
    assert.equal(r1?.id, first.id, 'no new attempt: the VM stays');
    assert.deepEqual([r1?.phase, r1?.reason], ['aborted', 'TargetChanged']);
    assert.ok(c.abortsIssued.length > abortsBefore, 'ABORT_JOB was issued');
    const aborted = stayed.conditions.find((x) => x.type === 'MigrationAborted');
    assert.deepEqual([aborted?.status, aborted?.reason], ['True', 'TargetChanged']);
    assert.ok(c.events.some((e) => e.type === 'MigrationAborted' && e.vm === 'vm3' && e.id === first.id && e.node === 'hv1'));
    assert.equal(await c.hv('hv2').probe.getDomain('vm3'), null, 'nothing of vm3 on hv2');

    // To hv3 while the copy to hv2 runs: aborted, then a fresh migration to hv3.
    await c.migrate('vm3', 'hv2');
    const second = await copyUnderway('vm3', 'hv2');
    await c.migrate('vm3', 'hv3');
    await settledOn('vm3', 'hv3', 120_000);
    const r2 = await c.record('vm3');
    assert.deepEqual([r2?.target, r2?.phase], ['hv3', 'done']);
    const attempt = r2?.history?.find((h) => h.id === second.id);
    assert.deepEqual([attempt?.target, attempt?.phase, attempt?.reason], ['hv2', 'aborted', 'TargetChanged']);
    assert.equal(await c.hv('hv2').probe.getDomain('vm3'), null, 'nothing of vm3 on hv2');
    assert.equal(await c.hv('hv1').probe.getDomain('vm3'), null, 'nothing of vm3 on hv1');

    const report = await sampler.stop();
    checkSamples(t, report, 'retargets');
    assert.deepEqual(report.ranOn, ['hv1', 'hv3'], 'it never ran on hv2');
    assert.deepEqual(
      report.switchOvers.map((x) => `${x.from}>${x.to}`),
      ['hv1>hv3'],
    );
    await removeVm('vm3');
  });

  it('a source daemon killed mid-copy and restarted follows the job to the end: no duplicate guest', async (t) => {
    await c.stopDaemon('hv1');
    await c.spawnDaemon('hv1', { bandwidthMiBs: 1 });
    await c.writeVm('vm4', { node: 'hv1', state: 'running' });
    await settledOn('vm4', 'hv1');
    const sampler = c.sampler('vm4');
    await c.migrate('vm4', 'hv2');
    const attempt = await copyUnderway('vm4', 'hv2');
    await c.killChild('hv1');
    assert.equal((await c.hv('hv1').probe.jobStats('vm4'))?.active, true, 'the libvirt job outlives its daemon');
    await c.spawnDaemon('hv1', { bandwidthMiBs: 1 });
    await settledOn('vm4', 'hv2', 120_000);
    const r = await c.record('vm4');
    assert.deepEqual([r?.id, r?.phase], [attempt.id, 'done'], 'the same attempt was followed to its end');
    assert.equal(await c.hv('hv1').probe.getDomain('vm4'), null);
    const report = await sampler.stop();
    checkSamples(t, report, 'source daemon killed');
    assert.deepEqual(report.ranOn, ['hv1', 'hv2']);
    await restartDaemon('hv1');
    await removeVm('vm4');
  });

  it('the target libvirtd killed mid-copy: the guest keeps running on the source', async (t) => {
    await restartDaemon('hv1', 1);
    await c.writeVm('vm5', { node: 'hv1', state: 'running' });
    await settledOn('vm5', 'hv1');
    const sampler = c.sampler('vm5');
    await c.migrate('vm5', 'hv2');
    const attempt = await copyUnderway('vm5', 'hv2');
    await c.hv('hv2').libvirtd.kill();
    const ended = await waitFor(
      'the copy to end as failed',
      async () => {
        const r = await c.record('vm5');
        const mine = r?.id === attempt.id ? r : r?.history?.find((h) => h.id === attempt.id);
        return mine && (mine.phase === 'failed' || mine.phase === 'aborted') ? mine : undefined;
      },
      60_000,
      () => state('vm5'),
    );
    t.diagnostic(`copy ended: ${ended.phase} ${ended.reason} ${ended.message}`);
    // Retries follow (the target refuses while its libvirtd is down); the guest stays put meanwhile.
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await c.runningOn('vm5'), ['hv1']);
    assert.equal((await c.status('vm5'))?.node, 'hv1');
    await c.unmigrate('vm5');
    await settledOn('vm5', 'hv1');
    const report = await sampler.stop();
    checkSamples(t, report, 'target libvirtd killed');
    assert.deepEqual(report.ranOn, ['hv1']);
    assert.deepEqual(report.switchOvers, []);
    await c.hv('hv2').libvirtd.start();
    await removeVm('vm5');
  });

  it('the target daemon gone mid-copy: the source aborts the copy and the guest keeps running on it', async (t) => {
    await restartDaemon('hv1', 1);
    await waitFor('hv2 libvirt reconnected', async () => (await c.hv('hv2').probe.listDomains()) !== undefined, 60_000);
    await c.writeVm('vm6', { node: 'hv1', state: 'running' });
    await settledOn('vm6', 'hv1');
    const sampler = c.sampler('vm6');
    await c.migrate('vm6', 'hv2');
    const attempt = await copyUnderway('vm6', 'hv2');
    await c.stopDaemon('hv2');
    const abort = await waitFor('the abort', async () => c.events.find((e) => e.type === 'MigrationAborted' && e.id === attempt.id), 30_000, () => state('vm6'));
    assert.equal(abort.reason, 'TargetLost');
    assert.equal(abort.node, 'hv1');
    assert.deepEqual(await c.runningOn('vm6'), ['hv1']);
    await c.unmigrate('vm6');
    await settledOn('vm6', 'hv1');
    await c.startDaemon('hv2');
    const report = await sampler.stop();
    checkSamples(t, report, 'target daemon gone');
    assert.deepEqual(report.ranOn, ['hv1']);
    await removeVm('vm6');
  });

  it('an orphaned record (source daemon gone for good) is settled by the target once the guest has arrived', async (t) => {
    await c.stopDaemon('hv1');
    await c.spawnDaemon('hv1', { bandwidthMiBs: 1 });
    await c.writeVm('vm7', { node: 'hv1', state: 'running' });
    await settledOn('vm7', 'hv1');
    const sampler = c.sampler('vm7');
    await c.migrate('vm7', 'hv2');
    const attempt = await copyUnderway('vm7', 'hv2');
    await c.killChild('hv1');
    // No daemon on hv1 from now on: libvirt finishes the copy, hv2 settles the record.
    const settled = await settledOn('vm7', 'hv2', 120_000);
    const r = await c.record('vm7');
    assert.deepEqual([r?.id, r?.phase, r?.reason], [attempt.id, 'done', 'TakenOverByTarget']);
    assert.equal(settled.node, 'hv2');
    const report = await sampler.stop();
    checkSamples(t, report, 'orphaned record');
    assert.deepEqual(report.ranOn, ['hv1', 'hv2']);
    await c.startDaemon('hv1');
    await removeVm('vm7');
  });

  it('a burst of vk vm migrate retargets during live copies (issue 12 §1): never on two nodes, ends on the last target', async (t) => {
    await restartDaemon('hv1', 1);
    await c.writeVm('vm8', { node: 'hv1', state: 'running' });
    await settledOn('vm8', 'hv1');
    const sampler = c.sampler('vm8', { everyMs: 20 });
    // Retarget while each copy runs, then a burst of five writes 30 ms apart mid-copy.
    await c.migrate('vm8', 'hv2');
    await copyUnderway('vm8', 'hv2');
    await c.migrate('vm8', 'hv3');
    await copyUnderway('vm8', 'hv3');
    for (const target of ['hv2', 'hv3', 'hv2', 'hv3', 'hv2']) {
      await c.migrate('vm8', target);
      await new Promise((r) => setTimeout(r, 30));
    }
    await settledOn('vm8', 'hv2', 180_000);
    const report = await sampler.stop();
    checkSamples(t, report, 'retarget burst');
    assert.deepEqual(report.ranOn, ['hv1', 'hv2'], 'it never ran on hv3');
    assert.deepEqual(await c.runningOn('vm8'), ['hv2']);
    assert.equal(await c.hv('hv3').probe.getDomain('vm8'), null, 'nothing of vm8 on hv3');
    await removeVm('vm8');
  });
});
