// zk-watch: latency of a write as seen by another client's watch, raw node-zookeeper-client
// against ZkStore.watchData, on one ZooKeeper started by the rig.
//
//   raw:   t0 = writer.setData() call; t1 = the watcher's one-shot watch fired and its re-arming
//          getData returned the new version.
//   store: t0 = writerStore.set() call; t1 = watcherStore.watchData() emitted the new version.
//
// Writes are sequential (the next one starts once the previous was seen), after a warm-up of both
// paths; the two paths alternate in blocks so drift (JIT, GC, page cache) hits both alike.
// Usage: npm run bench -- zk-watch [N]   (default N = 2000 per path)
import zookeeper from 'node-zookeeper-client';
import type { Client, Stat } from 'node-zookeeper-client';
import { ZkStore, type DataState } from '../drivers/zk/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';

const N = Number(process.argv[2] ?? process.env.N ?? 2000);
const WARMUP = 300;
const BLOCK = 250;

function ms(ns: bigint): number {
  return Number(ns) / 1e6;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * (sorted.length - 1)))]!;
}

function summary(xs: number[]): { p50: number; p90: number; p99: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

function rawClient(connectString: string): Promise<Client> {
  const c = zookeeper.createClient(connectString, { sessionTimeout: 10000 });
  return new Promise((res) => {
    c.once('connected', () => res(c));
    c.connect();
  });
}

// ---------------------------------------------------------------------------------------- raw

interface Harness {
  /** One write → seen; resolves to the latency in ns. */
  once(): Promise<bigint>;
  close(): Promise<void>;
}

async function rawHarness(connectString: string, path: string): Promise<Harness> {
  const writer = await rawClient(connectString);
  const watcher = await rawClient(connectString);
  await new Promise<void>((res, rej) => writer.create(path, Buffer.from('0'), (e) => (e ? rej(e) : res())));
  let version = 0;
  let waiting: { version: number; t0: bigint; resolve: (ns: bigint) => void } | null = null;
  const onData = (err: unknown, _data: Buffer, stat: Stat): void => {
    if (err) throw err;
    if (waiting && stat.version >= waiting.version) {
      const w = waiting;
      waiting = null;
      w.resolve(process.hrtime.bigint() - w.t0);
    }
  };
  const watch = (): void => watcher.getData(path, watch, onData);
  await new Promise<void>((res) => watcher.getData(path, watch, () => res()));
  return {
    once() {
      return new Promise<bigint>((resolve, reject) => {
        const target = version + 1;
        waiting = { version: target, t0: process.hrtime.bigint(), resolve };
        writer.setData(path, Buffer.from(String(target)), version, (e) => {
          if (e) reject(e);
        });
        version = target;
      });
    },
    async close() {
      writer.close();
      watcher.close();
    },
  };
}

// -------------------------------------------------------------------------------------- store

async function storeHarness(connectString: string, path: string): Promise<Harness> {
  const writer = await ZkStore.connect({ connectString, sessionTimeoutMs: 10000 });
  const watcher = await ZkStore.connect({ connectString, sessionTimeoutMs: 10000 });
  await writer.create(path, '0');
  let version = 0;
  let waiting: { version: number; t0: bigint; resolve: (ns: bigint) => void } | null = null;
  let ready!: () => void;
  const first = new Promise<void>((r) => (ready = r));
  const sub = watcher.watchData(path).subscribe((s: DataState) => {
    ready();
    if (s.kind === 'data' && waiting && s.version >= waiting.version) {
      const w = waiting;
      waiting = null;
      w.resolve(process.hrtime.bigint() - w.t0);
    }
  });
  await first;
  return {
    once() {
      return new Promise<bigint>((resolve, reject) => {
        const target = version + 1;
        waiting = { version: target, t0: process.hrtime.bigint(), resolve };
        writer.set(path, String(target), version).catch(reject);
        version = target;
      });
    },
    async close() {
      sub.unsubscribe();
      await writer.close();
      await watcher.close();
    },
  };
}

// --------------------------------------------------------------------------------------- main

const server = await startZooKeeper();
let exitCode = 0;
try {
  console.log(`zk-watch: ZooKeeper ${server.connectString} (pid ${server.pid}); ${N} sequential writes per path, ${WARMUP} warm-up`);
  const raw = await rawHarness(server.connectString, '/bench-raw');
  const store = await storeHarness(server.connectString, '/bench-store');
  for (let i = 0; i < WARMUP; i++) {
    await raw.once();
    await store.once();
  }
  const rawNs: number[] = [];
  const storeNs: number[] = [];
  for (let done = 0; done < N; done += BLOCK) {
    const n = Math.min(BLOCK, N - done);
    for (let i = 0; i < n; i++) rawNs.push(ms(await raw.once()));
    for (let i = 0; i < n; i++) storeNs.push(ms(await store.once()));
  }
  await raw.close();
  await store.close();

  const r = summary(rawNs);
  const s = summary(storeNs);
  const line = (name: string, x: ReturnType<typeof summary>): string =>
    `${name.padEnd(6)} p50 ${x.p50.toFixed(3)} ms  p90 ${x.p90.toFixed(3)} ms  p99 ${x.p99.toFixed(3)} ms  max ${x.max.toFixed(3)} ms  mean ${x.mean.toFixed(3)} ms`;
  console.log(line('raw', r));
  console.log(line('store', s));
  console.log(`store overhead at p50: ${(s.p50 - r.p50).toFixed(3)} ms (target <= 0.2 ms)`);
  console.log(
    JSON.stringify({
      bench: 'zk-watch',
      raw_p50_ms: round(r.p50),
      raw_p99_ms: round(r.p99),
      store_p50_ms: round(s.p50),
      store_p99_ms: round(s.p99),
      overhead_p50_ms: round(s.p50 - r.p50),
    }),
  );
} catch (e) {
  console.error(e);
  exitCode = 1;
} finally {
  await server.cleanup();
}
process.exit(exitCode);
