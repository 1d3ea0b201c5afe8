// migration: on three simulated QEMU hypervisors (test/rig/cluster.ts) with real daemons,
//  - retarget latency: the time from the spec.node write (performance.now() just before the
//    ZooKeeper set) to the source daemon sending ABORT_JOB for the running copy (goal ≤ 50 ms
//    p50), over ROUNDS copies capped at 1 MiB/s that are turned back to the source mid-copy;
//  - migration wall time: from the spec.node write to the VM settled on the target (record done,
//    status handed over, guest running there only), next to libvirt's own job time (the
//    completed incoming job's time_elapsed on the target) and the copy phase (libvirt's
//    peer-to-peer migrate call, which also starts QEMU on the target) for MIGRATIONS uncapped
//    live migrations; the wall time minus the copy phase is what the lockstep protocol costs.
// Usage: npm run bench -- migration [ROUNDS] [MIGRATIONS]   (default 10, 4)
import { Cluster, clusterUnavailable } from '../test/rig/cluster.ts';
import { waitFor } from '../test/rig/wait.ts';
import { describe, round3, summarize } from './lib/stats.ts';

const ROUNDS = Number(process.argv[2] ?? 10);
const MIGRATIONS = Number(process.argv[3] ?? 4);

const unavailable = clusterUnavailable();
if (unavailable) {
  console.error(`bench migration: cannot run: ${unavailable}`);
  process.exit(2);
}

const c = await Cluster.start('qemu');
try {
  const vm = 'bench1';
  const settledOn = (node: string) =>
    waitFor(`${vm} settled on ${node}`, async () => {
      const [running, status, record] = await Promise.all([c.runningOn(vm), c.status(vm), c.record(vm)]);
      const recordSettled = !record || ['done', 'aborted', 'failed'].includes(record.phase);
      return running.length === 1 && running[0] === node && status?.node === node && status.phase === 'Running' && recordSettled;
    }, 120_000, undefined, 10);

  await c.startDaemon('hv1', { bandwidthMiBs: 1 });
  await c.startDaemon('hv2');
  await c.startDaemon('hv3');
  await c.writeVm(vm, { node: 'hv1', state: 'running' });
  await settledOn('hv1');

  // Retarget → ABORT_JOB issued.
  const abortMs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await c.migrate(vm, 'hv2');
    // The copy is running: record copying and a live job on the source.
    await waitFor('copy running', async () => (await c.record(vm))?.phase === 'copying' && (await c.hv('hv1').probe.jobStats(vm))?.active, 120_000, undefined, 10);
    await new Promise((r) => setTimeout(r, 300));
    const seen = c.abortsIssued.length;
    const t0 = await c.unmigrate(vm);
    const issued = await waitFor('ABORT_JOB issued', async () => c.abortsIssued[seen], 30_000, undefined, 1);
    abortMs.push(issued.at - t0);
    await settledOn('hv1');
  }
  const abort = summarize(abortMs);
  console.log(describe('spec.node write → ABORT_JOB issued', abort));

  // Uncapped live migrations: wall time beside libvirt's job time.
  await c.stopDaemon('hv1');
  await c.startDaemon('hv1');
  const wall: number[] = [];
  const call: number[] = [];
  const job: number[] = [];
  const downtime: number[] = [];
  let here = 'hv1';
  for (let i = 0; i < MIGRATIONS; i++) {
    const there = here === 'hv1' ? 'hv2' : 'hv1';
    const t0 = i % 2 === 0 ? await c.migrate(vm, there) : await c.unmigrate(vm);
    await settledOn(there);
    wall.push((performance.now() - t0) / 1000);
    // The copy phase: MigrationStarted → MigrationCompleted on the source, i.e. libvirt's
    // peer-to-peer migrate call (which also starts the target's QEMU) plus the record's last write.
    const started = c.events.filter((e) => e.vm === vm && e.type === 'MigrationStarted' && e.at >= t0).at(-1);
    const completed = started && c.events.find((e) => e.id === started.id && e.type === 'MigrationCompleted');
    if (started && completed) call.push((completed.at - started.at) / 1000);
    const finished = await c.hv(there).probe.jobStats(vm, { completed: true });
    if (finished && finished.elapsedMs > 0) job.push(finished.elapsedMs / 1000);
    if (finished?.downtimeMs !== undefined) downtime.push(finished.downtimeMs);
    here = there;
  }
  const wallS = summarize(wall);
  const jobS = summarize(job);
  const callS = summarize(call);
  console.log(`live migration wall time (spec write → settled)  n=${wallS.n}  p50=${round3(wallS.p50)} s  max=${round3(wallS.max)} s`);
  console.log(`copy phase (libvirt's p2p migrate call)         n=${callS.n}  p50=${round3(callS.p50)} s  max=${round3(callS.max)} s`);
  console.log(`libvirt job time (time_elapsed, target)         n=${jobS.n}  p50=${round3(jobS.p50)} s  max=${round3(jobS.max)} s`);
  console.log(`virtkeeper's own share (wall − copy phase)      p50=${round3(wallS.p50 - callS.p50)} s`);
  if (downtime.length) console.log(`libvirt-reported downtime                       n=${downtime.length}  p50=${round3(summarize(downtime).p50)} ms`);
  console.log(
    JSON.stringify({
      bench: 'migration',
      abort_p50_ms: round3(abort.p50),
      migration_wall_s: round3(wallS.p50),
      copy_phase_s: callS.n ? round3(callS.p50) : null,
      own_share_s: callS.n ? round3(wallS.p50 - callS.p50) : null,
      libvirt_job_s: jobS.n ? round3(jobS.p50) : null,
    }),
  );
} finally {
  await c.cleanup();
}
