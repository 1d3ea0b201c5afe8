// api: latency of the REST API under load, beside raw ZooKeeper latency in the same run.
//
//   get:  GET /vm/{name} (spec, status, migration, XML: five znode reads) by C concurrent clients
//   post: POST /vm/{name} with a meta change (read + CAS write of the spec), C clients, one VM each
//         (so the writes do not contend on one znode)
//   zk_get / zk_set: ZkStore.get / set of one znode per client, C concurrent, same ZooKeeper
//
// After a warm-up of 300 sequential GETs and POSTs, each phase runs D seconds; clients loop back to back. The server and the clients share this
// process (and the machine), as a loopback deployment would share its host. Bearer auth is on.
// Usage: npm run bench -- api [D] [C]   (default D = 10 s, C = 50)
import { buildApi } from '../api/server.ts';
import { newToken, parseTokenFile } from '../api/auth.ts';
import { ensureLayout } from '../cli/connect.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { encodeNodeStatus, encodeVmSpec, ZkPaths } from '../schemas/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';

const D = Number(process.argv[2] ?? process.env.D ?? 10);
const C = Number(process.argv[3] ?? process.env.C ?? 50);

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * (sorted.length - 1)))]!;
}
const round = (x: number): number => Math.round(x * 1000) / 1000;

/** C loops of `once(i)` for D seconds: latencies in ms and requests per second. */
async function phase(name: string, once: (client: number) => Promise<void>): Promise<{ p50: number; p99: number; rps: number; n: number }> {
  const latencies: number[] = [];
  const end = performance.now() + D * 1000;
  await Promise.all(
    Array.from({ length: C }, async (_, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await once(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const result = { p50: round(pct(latencies, 50)), p99: round(pct(latencies, 99)), rps: Math.round(latencies.length / D), n: latencies.length };
  console.log(`${name.padEnd(8)} n=${result.n} p50=${result.p50}ms p99=${result.p99}ms rps=${result.rps}`);
  return result;
}

const zk = await startZooKeeper();
const store = await ZkStore.connect({ connectString: zk.connectString, sessionTimeoutMs: 10_000 });
const paths = new ZkPaths('/bench');
try {
  await ensureLayout({ store, paths, connectString: zk.connectString, connectTimeoutMs: 10_000 });
  await store.create(paths.nodeStatus('hv1'), encodeNodeStatus({
    daemonState: 'run', domainState: 'ready', memory: { totalMiB: 8000, usedMiB: 0, freeMiB: 8000, allocatedMiB: 0, provisionedMiB: 0 },
    vcpus: { total: 4, allocated: 0 }, load: 0, runningVms: [], keepaliveAt: new Date().toISOString(), version: 'bench', conditions: [],
  }), { parents: true });
  for (let i = 0; i < C; i++) {
    const name = `b${i}`;
    await store.multi([
      { op: 'create', path: paths.vm(name) },
      { op: 'create', path: paths.vmSpec(name), data: encodeVmSpec({ node: 'hv1', state: 'stopped' }) },
      { op: 'create', path: paths.vmXml(name), data: `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>` },
    ]);
    await store.create(`${paths.root}/raw${i}`, '0');
  }
  const token = newToken('admin', 'bench');
  const app = await buildApi({ store, paths, auth: parseTokenFile(token.line, 'tokens'), log: false });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const headers = { authorization: `Bearer ${token.token}` };
  const check = async (res: Response) => {
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${res.status} ${text}`);
  };

  // Warm-up (not measured): module loading, JIT, connection pools.
  for (let i = 0; i < 300; i++) {
    await check(await fetch(`${base}/vm/b${i % C}`, { headers }));
    await check(await fetch(`${base}/vm/b${i % C}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ meta: { maxDowntimeMs: 301 + (i % 2) } }) }));
  }
  const get = await phase('get', async (i) => check(await fetch(`${base}/vm/b${i}`, { headers })));
  let flip = 0;
  const post = await phase('post', async (i) =>
    check(
      await fetch(`${base}/vm/b${i}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ meta: { maxDowntimeMs: 300 + (flip++ % 1000) } }),
      }),
    ),
  );
  const zkGet = await phase('zk_get', async (i) => void (await store.get(`${paths.root}/raw${i}`)));
  const versions = new Array<number>(C).fill(0);
  const zkSet = await phase('zk_set', async (i) => {
    await store.set(`${paths.root}/raw${i}`, String(versions[i]! + 1), versions[i]!);
    versions[i]!++;
  });
  await app.close();
  console.log(
    JSON.stringify({
      bench: 'api',
      clients: C,
      seconds: D,
      get_p50_ms: get.p50,
      get_p99_ms: get.p99,
      post_p50_ms: post.p50,
      post_p99_ms: post.p99,
      zk_get_p50_ms: zkGet.p50,
      zk_get_p99_ms: zkGet.p99,
      zk_set_p50_ms: zkSet.p50,
      zk_set_p99_ms: zkSet.p99,
      rps: get.rps + post.rps === 0 ? 0 : Math.round((get.n + post.n) / (2 * D)),
    }),
  );
} finally {
  await store.close();
  await zk.cleanup();
}
