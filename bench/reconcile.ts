// reconcile: latency from a VM spec write (state stopped → running) to the daemon issuing libvirt's
// domain create call, beside the raw ZooKeeper watch latency measured in the same run.
//
// One real ZooKeeper, one private libvirtd (test driver), one daemon in this process whose
// Hypervisor is wrapped to timestamp start(). Each round: t0 just before the CAS write of
// state=running; t1 when the daemon calls start(); then state=stopped (force) and wait for the
// status to settle before the next round.
// Usage: npm run bench -- reconcile [ROUNDS]   (default 300)
import type { Hypervisor } from '../drivers/hypervisor.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { createLogger } from '../controllers/logger.ts';
import { startDaemon } from '../daemon/daemon.ts';
import { encodeVmSpec } from '../schemas/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { daemonConfig, paths, readStatus, startHv, stopHv, writeVm } from '../test/rig/testdriver.ts';
import { waitFor } from '../test/rig/wait.ts';
import { measureRawWatch } from './lib/raw-watch.ts';
import { describe, nsToMs, round3, summarize } from './lib/stats.ts';

const ROUNDS = Number(process.argv[2] ?? 300);

const zk = await startZooKeeper();
const hv1 = await startHv('hv1');
try {
  const raw = summarize(await measureRawWatch(zk.connectString, '/raw-watch', 1000));
  console.log(describe('raw ZooKeeper watch (write→data)', raw));

  let onStart: (() => void) | undefined;
  const wrap = <T extends Hypervisor>(hv: T): T =>
    new Proxy(hv, {
      get(target, prop, receiver) {
        if (prop === 'start') {
          return (name: string) => {
            onStart?.();
            return target.start(name);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  const cfg = daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath);
  const daemon = await startDaemon(cfg, { log: createLogger({ level: 'silent' }), wrapHypervisor: wrap });
  const store = await ZkStore.connect({ connectString: zk.connectString });
  await writeVm(store, 'bench1', { node: 'hv1', state: 'stopped', stopMode: 'force' });
  await waitFor('bench1 Stopped', async () => (await readStatus(store, 'bench1'))?.phase === 'Stopped');

  const setState = async (state: 'running' | 'stopped'): Promise<bigint> => {
    const current = await store.get(paths.vmSpec('bench1'));
    const spec = JSON.parse(current!.data.toString('utf8')) as Record<string, unknown>;
    const data = encodeVmSpec({ ...(spec as { node: string }), state });
    const t0 = process.hrtime.bigint();
    await store.set(paths.vmSpec('bench1'), data, current!.version);
    return t0;
  };

  const latencies: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = new Promise<bigint>((resolve) => (onStart = () => resolve(process.hrtime.bigint())));
    const t0 = await setState('running');
    latencies.push(nsToMs((await started) - t0));
    onStart = undefined;
    await waitFor('Running', async () => (await readStatus(store, 'bench1'))?.phase === 'Running');
    await setState('stopped');
    await waitFor('Stopped', async () => (await readStatus(store, 'bench1'))?.phase === 'Stopped');
    // Each round starts on a settled daemon: both of its work queues idle.
    await Promise.all([daemon.domain.queue.idle(), daemon.migration.queue.idle()]);
  }
  const r = summarize(latencies);
  console.log(describe('spec write → libvirt create issued', r));
  console.log(`overhead over the raw watch at p50: ${round3(r.p50 - raw.p50)} ms (${round3(r.p50 / raw.p50)}x); goal p50 ≤ 2 ms, p99 ≤ 10 ms`);
  await store.close();
  await daemon.stop();
  console.log(
    JSON.stringify({
      bench: 'reconcile',
      rounds: ROUNDS,
      raw_watch_p50_ms: round3(raw.p50),
      raw_watch_p99_ms: round3(raw.p99),
      p50_ms: round3(r.p50),
      p99_ms: round3(r.p99),
      ratio_p50_vs_raw: round3(r.p50 / raw.p50),
    }),
  );
} finally {
  await stopHv(hv1);
  await zk.cleanup();
}
