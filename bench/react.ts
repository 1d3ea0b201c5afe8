// react: the reaction time a user sees — a version-checked write of a VM's desired state → libvirt's
// own lifecycle event (STARTED / STOPPED), observed on a separate libvirt connection — for a start
// and for a forced stop, beside the floor: a ZkStore write → another ZkStore's data watch on the
// same ZooKeeper, in the same run. Our share = reaction − floor.
//
// One real ZooKeeper, one private libvirtd (test driver), one daemon in this process. Each trial
// also records a timeline: the write issued (t0), the informer's "look again" for the VM, every
// libvirt call the daemon issues and its answer, and the event on the observer's connection.
// Usage: npm run bench -- react [TRIALS]   (default 200 each)
import type { Hypervisor } from '../drivers/hypervisor.ts';
import { LibvirtHypervisor } from '../drivers/libvirt-hypervisor.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { createLogger } from '../controllers/logger.ts';
import { startDaemon } from '../daemon/daemon.ts';
import { encodeVmSpec, type VmSpecInput } from '../schemas/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { daemonConfig, paths, readStatus, startHv, stopHv, testXml, writeVm } from '../test/rig/testdriver.ts';
import { POLL_MS, waitFor } from '../test/rig/wait.ts';
import { measureStoreWatch } from './lib/store-watch.ts';
import { describe, nsToMs, round3, summarize } from './lib/stats.ts';

const TRIALS = Number(process.argv[2] ?? 200);
const VM = 'react1';

type Mark = { what: string; t: bigint };
let marks: Mark[] | undefined;
const mark = (what: string): void => void marks?.push({ what, t: process.hrtime.bigint() });

/** The daemon's hypervisor, each call marked when issued and when answered. */
function traced<T extends Hypervisor>(hv: T): T {
  return new Proxy(hv, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || prop === 'constructor') return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(result instanceof Promise) || args[0] !== VM) return result;
        const name = String(prop);
        mark(`${name} issued`);
        return result.then(
          (v) => (mark(`${name} answered`), v),
          (e: unknown) => (mark(`${name} failed`), Promise.reject(e)),
        );
      };
    },
  });
}

const zk = await startZooKeeper();
const hv1 = await startHv('hv1');
try {

  const daemon = await startDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath), { log: createLogger({ level: 'silent' }), wrapHypervisor: traced });
  const store = await ZkStore.connect({ connectString: zk.connectString });
  const observer = await LibvirtHypervisor.open({ socket: hv1.libvirtd.socketPath, uri: 'test:///default' });
  let waitingFor: { event: string; resolve: (t: bigint) => void } | undefined;
  const sub = observer.lifecycle$.subscribe((n) => {
    if (n.name !== VM || !waitingFor || n.event !== waitingFor.event) return;
    const w = waitingFor;
    waitingFor = undefined;
    w.resolve(process.hrtime.bigint());
  });
  daemon.manager.informers.vms.changes$.subscribe((name) => name === VM && mark('informer: look again'));
  await writeVm(store, VM, { node: 'hv1', state: 'stopped', stopMode: 'force' });
  await waitFor(`${VM} Stopped`, async () => (await readStatus(store, VM))?.phase === 'Stopped');

  const trial = async (state: 'running' | 'stopped', event: string): Promise<{ ms: number; timeline: Mark[]; t0: bigint }> => {
    const current = (await store.get(paths.vmSpec(VM)))!;
    const spec = JSON.parse(current.data.toString('utf8')) as VmSpecInput;
    const next: VmSpecInput = state === 'running' ? { ...spec, state } : { ...spec, state, forceStopAt: new Date().toISOString() };
    const data = encodeVmSpec(next);
    marks = [];
    const seen = new Promise<bigint>((resolve) => (waitingFor = { event, resolve }));
    const t0 = process.hrtime.bigint();
    await store.set(paths.vmSpec(VM), data, current.version);
    const t1 = await seen;
    const timeline = [...marks, { what: `${event} event seen`, t: t1 }];
    // Settled before the next trial: the status written, both queues idle.
    const phase = state === 'running' ? 'Running' : 'Stopped';
    await waitFor(phase, async () => (await readStatus(store, VM))?.phase === phase);
    await Promise.all([daemon.domain.queue.idle(), daemon.migration.queue.idle()]);
    marks = undefined;
    return { ms: nsToMs(t1 - t0), timeline, t0 };
  };

  // Warm-up (not measured): JIT, connections, caches.
  for (let i = 0; i < 20; i++) {
    await trial('running', 'started');
    await trial('stopped', 'stopped');
  }
  // The floor, measured warm (a first round discarded), just before the trials.
  await measureStoreWatch(zk.connectString, '/react-floor-warmup', 200);
  const floor = summarize(await measureStoreWatch(zk.connectString, '/react-floor', Math.max(500, TRIALS * 2)));
  console.log(describe('floor: ZkStore write → ZkStore watch', floor));
  const starts: Awaited<ReturnType<typeof trial>>[] = [];
  const stops: Awaited<ReturnType<typeof trial>>[] = [];
  for (let i = 0; i < TRIALS; i++) {
    starts.push(await trial('running', 'started'));
    stops.push(await trial('stopped', 'stopped'));
  }

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
  const start = summarize(starts.map((s) => s.ms));
  const stop = summarize(stops.map((s) => s.ms));
  console.log(describe('start: spec write → STARTED seen', start));
  console.log('start timeline (median ms after the write):');
  for (const line of medianTimeline(starts)) console.log(line);
  console.log(describe('stop (force): spec write → STOPPED seen', stop));
  console.log('stop timeline (median ms after the write):');
  for (const line of medianTimeline(stops)) console.log(line);
  console.log(`our share (minus the floor): start p50 ${round3(start.p50 - floor.p50)} ms, p99 ${round3(start.p99 - floor.p99)} ms; stop p50 ${round3(stop.p50 - floor.p50)} ms, p99 ${round3(stop.p99 - floor.p99)} ms (goals ≤ 1.5 ms, ≤ 5 ms)`);
  sub.unsubscribe();
  await observer.close();
  await store.close();
  await daemon.stop();

  // libvirtd's own part of the share, for reference: the same two calls on a domain of its own,
  // with the daemon stopped, each after a pause as long as the one before a trial (a waitFor poll).
  const direct = await LibvirtHypervisor.open({ socket: hv1.libvirtd.socketPath, uri: 'test:///default' });
  await direct.define(testXml('react-ref'));
  const creates: number[] = [];
  const destroys: number[] = [];
  const timed = async (call: () => Promise<void>): Promise<number> => {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const t0 = process.hrtime.bigint();
    await call();
    return nsToMs(process.hrtime.bigint() - t0);
  };
  for (let i = 0; i < TRIALS; i++) {
    creates.push(await timed(() => direct.start('react-ref')));
    destroys.push(await timed(() => direct.destroy('react-ref')));
  }
  await direct.close();
  const create = summarize(creates);
  const destroy = summarize(destroys);
  console.log(describe(`libvirtd alone: DOMAIN_CREATE after ${POLL_MS} ms quiet`, create));
  console.log(describe(`libvirtd alone: DOMAIN_DESTROY after ${POLL_MS} ms quiet`, destroy));
  console.log(`our share beyond libvirtd's own call: start p50 ${round3(start.p50 - floor.p50 - create.p50)} ms; stop p50 ${round3(stop.p50 - floor.p50 - destroy.p50)} ms`);
  console.log(
    JSON.stringify({
      bench: 'react',
      trials: TRIALS,
      floor_p50_ms: round3(floor.p50),
      floor_p99_ms: round3(floor.p99),
      start_p50_ms: round3(start.p50),
      start_p99_ms: round3(start.p99),
      stop_p50_ms: round3(stop.p50),
      stop_p99_ms: round3(stop.p99),
      share_start_p50_ms: round3(start.p50 - floor.p50),
      share_start_p99_ms: round3(start.p99 - floor.p99),
      share_stop_p50_ms: round3(stop.p50 - floor.p50),
      share_stop_p99_ms: round3(stop.p99 - floor.p99),
      libvirt_create_p50_ms: round3(create.p50),
      libvirt_destroy_p50_ms: round3(destroy.p50),
    }),
  );
} finally {
  await stopHv(hv1);
  await zk.cleanup();
}
