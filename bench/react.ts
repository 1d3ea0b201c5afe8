// react: the reaction time a user sees — a version-checked write of a VM's desired state → libvirt's
// own lifecycle event (STARTED / STOPPED), observed on a separate libvirt connection — for a start
// and for a forced stop, beside the floor: the same kind of write (a read, then a version-checked
// set) to another znode → its data delivered on the daemon's own ZooKeeper session, in the same
// run. Our share = reaction − floor.
//
// One real ZooKeeper, one private libvirtd (test driver), and the daemon in a process of its own
// (bench/lib/react-daemon.ts, with the V8 flags a real daemon runs with), as in production: its
// work after a start (the status write, its own lifecycle event) never delays the observer here.
// Every measured write, floor or trial, comes after QUIET_MS of quiet (nothing of the bench, the
// daemon or libvirtd running): a user's write reaching an idle cluster. The floor samples
// alternate with the trials, so both see the same machine. The back-to-back floor of earlier
// versions of this bench (a writer and a watcher in this process, no pause: warmer than any
// trial) is printed beside it as floor_hot.
//
// The bare reactor beside it (bench/lib/react-bare.ts) is the least any daemon could do: the
// project's ZooKeeper and libvirt clients in a process of its own, sending the libvirt call as the
// data arrives (no decode, queue, plan or status), measured the same way on a domain of its own
// after the daemon has stopped, with its own floor. Its share is what sending the libvirt call,
// libvirtd and the event's way to the observer cost here whatever a daemon does; ours beyond it
// is the daemon's own.
//
// Each trial also records a timeline: the write issued (t0), the daemon's informer "look again"
// for the VM (as it is emitted, before any controller runs), the daemon's libvirt calls for it
// (react-daemon.ts's TRACED) sent and answered, and the event on the observer's connection (one
// monotonic clock for every process of the machine); and the slowest trials are printed step by
// step.
// Usage: npm run bench -- react [TRIALS]   (default 200 each)
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LibvirtHypervisor } from '../drivers/libvirt-hypervisor.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { encodeVmSpec, type VmSpecInput } from '../schemas/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { paths, readStatus, startHv, stopHv, testXml, writeVm } from '../test/rig/testdriver.ts';
import { POLL_MS, waitFor } from '../test/rig/wait.ts';
import { spawnReactor, type Reactor } from './lib/reactor.ts';
import { measureStoreWatch } from './lib/store-watch.ts';
import { describe, nsToMs, round3, summarize, type Summary } from './lib/stats.ts';

const TRIALS = Number(process.argv[2] ?? 200);
const VM = 'react1';
const FLOOR = '/react-floor';
const BARE_DOMAIN = 'react-ref';
const BARE_WANT = '/react-bare';
const QUIET_MS = POLL_MS;
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

type Mark = { what: string; t: bigint };
/** A reactor's share: its reactions' percentiles minus its floor's (ms). */
type Share = { startP50: number; startP99: number; stopP50: number; stopP99: number };

function shareOf(start: Summary, stop: Summary, floor: Summary): Share {
  return { startP50: start.p50 - floor.p50, startP99: start.p99 - floor.p99, stopP50: stop.p50 - floor.p50, stopP99: stop.p99 - floor.p99 };
}

function describeShare(s: Share): string {
  return `start p50 ${round3(s.startP50)} ms, p99 ${round3(s.startP99)} ms; stop p50 ${round3(s.stopP50)} ms, p99 ${round3(s.stopP99)} ms`;
}

/** What this run started, stopped in reverse order whatever happens. */
const cleanups: Array<() => Promise<unknown>> = [];
try {
  const zk = await startZooKeeper();
  cleanups.push(() => zk.cleanup());
  const hv1 = await startHv('hv1');
  cleanups.push(() => stopHv(hv1));
  const store = await ZkStore.connect({ connectString: zk.connectString });
  cleanups.push(() => store.close());
  await store.create(FLOOR, '0');
  await store.create(BARE_WANT, 'stopped');
  const daemon = await spawnReactor(repo, join(repo, 'bench/lib/react-daemon.ts'), [zk.connectString, hv1.libvirtd.socketPath, VM, FLOOR]);
  cleanups.push(() => daemon.kill());

  const observer = await LibvirtHypervisor.open({ socket: hv1.libvirtd.socketPath, uri: 'test:///default' });
  let waitingFor: { name: string; event: string; resolve: (t: bigint) => void } | undefined;
  const sub = observer.lifecycle$.subscribe((n) => {
    if (!waitingFor || n.name !== waitingFor.name || n.event !== waitingFor.event) return;
    const w = waitingFor;
    waitingFor = undefined;
    w.resolve(process.hrtime.bigint());
  });
  cleanups.push(async () => {
    sub.unsubscribe();
    await observer.close();
  });
  /** Resolves to the time `event` of domain `name` reaches the observer. */
  const eventSeen = (name: string, event: string): Promise<bigint> => new Promise((resolve) => (waitingFor = { name, event, resolve }));
  await writeVm(store, VM, { node: 'hv1', state: 'stopped', stopMode: 'force' });
  await waitFor(`${VM} Stopped`, async () => (await readStatus(store, VM))?.phase === 'Stopped');
  await daemon.ask('settle');
  const quiet = (): Promise<void> => new Promise((r) => setTimeout(r, QUIET_MS));

  const floorSample = async (reactor: Reactor): Promise<number> => {
    await quiet();
    const current = (await store.get(FLOOR))!;
    const seen = reactor.floorSeen(current.version + 1);
    const t0 = process.hrtime.bigint();
    await store.set(FLOOR, String(current.version + 1), current.version);
    return nsToMs((await seen) - t0);
  };

  const trial = async (state: 'running' | 'stopped', event: string): Promise<{ ms: number; timeline: Mark[]; t0: bigint }> => {
    await quiet();
    const current = (await store.get(paths.vmSpec(VM)))!;
    const spec = JSON.parse(current.data.toString('utf8')) as VmSpecInput;
    const next: VmSpecInput = state === 'running' ? { ...spec, state } : { ...spec, state, forceStopAt: new Date().toISOString() };
    const data = encodeVmSpec(next);
    const seen = eventSeen(VM, event);
    const t0 = process.hrtime.bigint();
    await store.set(paths.vmSpec(VM), data, current.version);
    const t1 = await seen;
    // Settled before the next write: the status written, both of the daemon's queues idle.
    const phase = state === 'running' ? 'Running' : 'Stopped';
    await waitFor(phase, async () => (await readStatus(store, VM))?.phase === phase);
    const settled = await daemon.ask('settle');
    const marks = settled.marks ?? [];
    const timeline = [...marks.map((m) => ({ what: m.what, t: BigInt(m.t) })), { what: `${event} event seen`, t: t1 }];
    return { ms: nsToMs(t1 - t0), timeline, t0 };
  };

  /**
   * 20 rounds not measured (JIT, connections, caches), then TRIALS rounds of a floor sample, a
   * start, a floor sample and a stop, against one reactor.
   */
  const rounds = async <T>(reactor: Reactor, run: (state: 'running' | 'stopped', event: string) => Promise<T>): Promise<{ floors: number[]; starts: T[]; stops: T[] }> => {
    const floors: number[] = [];
    const starts: T[] = [];
    const stops: T[] = [];
    for (let i = 0; i < 20 + TRIALS; i++) {
      const floorA = await floorSample(reactor);
      const started = await run('running', 'started');
      const floorB = await floorSample(reactor);
      const stopped = await run('stopped', 'stopped');
      if (i < 20) continue;
      floors.push(floorA, floorB);
      starts.push(started);
      stops.push(stopped);
    }
    return { floors, starts, stops };
  };

  await measureStoreWatch(zk.connectString, '/react-floor-hot-warmup', 200);
  const floorHot = summarize(await measureStoreWatch(zk.connectString, '/react-floor-hot', Math.max(500, TRIALS * 2)));
  const { floors, starts, stops } = await rounds(daemon, trial);
  const floor = summarize(floors);
  console.log(describe(`floor: write → daemon's session`, floor));
  console.log(describe('floor_hot: back-to-back, in-process', floorHot));

  /** The median time of each step after t0, over the trials that have it (ms). */
  const medianTimeline = (trials: typeof starts): string[] => {
    const byStep = new Map<string, number[]>();
    for (const { timeline, t0 } of trials) {
      const counts = new Map<string, number>();
      for (const m of timeline) {
        const n = (counts.get(m.what) ?? 0) + 1;
        counts.set(m.what, n);
        const key = n > 1 ? `${m.what} #${n}` : m.what;
        byStep.set(key, [...(byStep.get(key) ?? []), nsToMs(m.t - t0)]);
      }
    }
    return [...byStep]
      .map(([what, xs]) => ({ what, p50: summarize(xs).p50, n: xs.length }))
      .sort((a, b) => a.p50 - b.p50)
      .map((s) => `  ${round3(s.p50).toFixed(3).padStart(7)} ms  ${s.what}${s.n < trials.length ? ` (${s.n}/${trials.length} trials)` : ''}`);
  };
  /** The slowest trials, each step after t0: where a tail comes from. */
  const slowest = (trials: typeof starts, n = 3): string[] =>
    [...trials]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, n)
      .map((t) => `  ${round3(t.ms)} ms: ${t.timeline.map((m) => `${m.what} ${round3(nsToMs(m.t - t.t0))}`).join(', ')}`);
  const start = summarize(starts.map((s) => s.ms));
  const stop = summarize(stops.map((s) => s.ms));
  const share = shareOf(start, stop, floor);
  console.log(describe('start: spec write → STARTED seen', start));
  console.log('start timeline (median ms after the write):');
  for (const line of medianTimeline(starts)) console.log(line);
  console.log('slowest starts (ms after the write):');
  for (const line of slowest(starts)) console.log(line);
  console.log(describe('stop (force): spec write → STOPPED seen', stop));
  console.log('stop timeline (median ms after the write):');
  for (const line of medianTimeline(stops)) console.log(line);
  console.log('slowest stops (ms after the write):');
  for (const line of slowest(stops)) console.log(line);
  console.log(`against floor_hot: start p50 ${round3(start.p50 - floorHot.p50)} ms, p99 ${round3(start.p99 - floorHot.p99)} ms; stop p50 ${round3(stop.p50 - floorHot.p50)} ms, p99 ${round3(stop.p99 - floorHot.p99)} ms`);
  console.log(`our share (minus the floor): ${describeShare(share)} (goals ≤ 1.5 ms, ≤ 5 ms)`);
  await daemon.ask('stop');

  // The bare reactor (bench/lib/react-bare.ts), on a domain of its own once the daemon has stopped:
  // the same quiet before every write, its own floor samples interleaved.
  await hv1.hv.define(testXml(BARE_DOMAIN));
  const bare = await spawnReactor(repo, join(repo, 'bench/lib/react-bare.ts'), [zk.connectString, hv1.libvirtd.socketPath, BARE_DOMAIN, BARE_WANT, FLOOR]);
  cleanups.push(() => bare.kill());
  /** Per bare trial: the write → the event seen, and the call sent → the event seen (ms). */
  const bareTrial = async (want: 'running' | 'stopped', event: string): Promise<{ ms: number; libvirtMs: number }> => {
    await quiet();
    const current = (await store.get(BARE_WANT))!;
    const seen = eventSeen(BARE_DOMAIN, event);
    const t0 = process.hrtime.bigint();
    await store.set(BARE_WANT, want, current.version);
    const t1 = await seen;
    const sent = (await bare.ask('settle')).marks?.find((m) => m.what === 'call sent');
    if (!sent) throw new Error('the bare reactor sent no call');
    return { ms: nsToMs(t1 - t0), libvirtMs: nsToMs(t1 - BigInt(sent.t)) };
  };
  const { floors: bareFloors, starts: bareStarts, stops: bareStops } = await rounds(bare, bareTrial);
  await bare.ask('stop');
  const bareFloor = summarize(bareFloors);
  const bareStart = summarize(bareStarts.map((t) => t.ms));
  const bareStop = summarize(bareStops.map((t) => t.ms));
  /** Call sent → event seen, median (ms): libvirtd and the observer, when the bare reactor or the daemon calls. */
  const sentToSeen = (trials: typeof starts, call: string): number =>
    summarize(trials.flatMap(({ timeline }) => {
      const sent = timeline.find((m) => m.what === `${call} issued`);
      const seen = timeline.at(-1)!;
      return sent ? [nsToMs(seen.t - sent.t)] : [];
    })).p50;
  console.log(describe(`bare: floor`, bareFloor));
  console.log(describe(`bare: write → STARTED seen`, bareStart));
  console.log(describe(`bare: write → STOPPED seen`, bareStop));
  const bareShare = shareOf(bareStart, bareStop, bareFloor);
  console.log(`bare reactor's share (the least any daemon could have): ${describeShare(bareShare)}`);
  console.log(
    `call sent → event seen, p50: start ${round3(sentToSeen(starts, 'start'))} ms (daemon), ${round3(summarize(bareStarts.map((t) => t.libvirtMs)).p50)} ms (bare); ` +
      `stop ${round3(sentToSeen(stops, 'destroy'))} ms (daemon), ${round3(summarize(bareStops.map((t) => t.libvirtMs)).p50)} ms (bare)`,
  );
  console.log(`our share beyond the bare reactor's: start p50 ${round3(share.startP50 - bareShare.startP50)} ms; stop p50 ${round3(share.stopP50 - bareShare.stopP50)} ms`);

  // libvirtd's own part of the share, for reference: the same two calls on a domain of its own,
  // with the daemon stopped, each after the same quiet as every measured write (QUIET_MS).
  const direct = await LibvirtHypervisor.open({ socket: hv1.libvirtd.socketPath, uri: 'test:///default' });
  const creates: number[] = [];
  const destroys: number[] = [];
  const timed = async (call: () => Promise<void>): Promise<number> => {
    await quiet();
    const t0 = process.hrtime.bigint();
    await call();
    return nsToMs(process.hrtime.bigint() - t0);
  };
  for (let i = 0; i < TRIALS; i++) {
    creates.push(await timed(() => direct.start(BARE_DOMAIN)));
    destroys.push(await timed(() => direct.destroy(BARE_DOMAIN)));
  }
  await direct.close();
  const create = summarize(creates);
  const destroy = summarize(destroys);
  console.log(describe(`libvirtd alone: DOMAIN_CREATE after ${QUIET_MS} ms quiet`, create));
  console.log(describe(`libvirtd alone: DOMAIN_DESTROY after ${QUIET_MS} ms quiet`, destroy));
  console.log(`our share beyond libvirtd's own call: start p50 ${round3(share.startP50 - create.p50)} ms; stop p50 ${round3(share.stopP50 - destroy.p50)} ms`);
  console.log(
    JSON.stringify({
      bench: 'react',
      trials: TRIALS,
      floor_p50_ms: round3(floor.p50),
      floor_p99_ms: round3(floor.p99),
      floor_hot_p50_ms: round3(floorHot.p50),
      floor_hot_p99_ms: round3(floorHot.p99),
      start_p50_ms: round3(start.p50),
      start_p99_ms: round3(start.p99),
      stop_p50_ms: round3(stop.p50),
      stop_p99_ms: round3(stop.p99),
      share_start_p50_ms: round3(share.startP50),
      share_start_p99_ms: round3(share.startP99),
      share_stop_p50_ms: round3(share.stopP50),
      share_stop_p99_ms: round3(share.stopP99),
      bare_share_start_p50_ms: round3(bareShare.startP50),
      bare_share_start_p99_ms: round3(bareShare.startP99),
      bare_share_stop_p50_ms: round3(bareShare.stopP50),
      bare_share_stop_p99_ms: round3(bareShare.stopP99),
      libvirt_create_p50_ms: round3(create.p50),
      libvirt_destroy_p50_ms: round3(destroy.p50),
    }),
  );
} finally {
  for (const stop of cleanups.reverse()) await stop().catch((error: unknown) => console.error('react: cleanup failed:', error));
}
