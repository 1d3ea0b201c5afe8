// scale: what one daemon costs as the cluster around it grows. One daemon (hv1, libvirt test
// driver) whose node holds LOCAL VMs, in clusters with N ∈ ELSEWHERE VMs homed on 50 other nodes
// (written as vk writes them: spec, XML and index entry; the other nodes have the statuses their
// daemons would keep, but no daemons: only this one watches), each N on a root of its own. The time
// from the daemon's start to its LOCAL VMs running is the median of STARTS starts per N, taken in
// rounds (every N in turn) after one unmeasured warm-up start: a single start varies by ±0.5 s
// here, and the first ones of a run pay for a cold ZooKeeper and page cache. Every start is on a
// fresh libvirtd, with the local VMs' statuses removed first, so each claims and starts them all
// alike. Then, per N, one more start and, once idle, its RSS, the ZooKeeper watches (4lw wchs:
// only the daemon watches) and its CPU over IDLE_S seconds. N = 0 is the baseline; the ratios
// are to it.
// Usage: npm run bench -- scale [LOCAL] [IDLE_S] [N,N,…] [STARTS]   (default 100, 20, 0,1000,10000, 3)
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ZkStore, type Op } from '../drivers/zk/index.ts';
import { encodeNodeStatus, encodeVmSpec, ZkPaths } from '../schemas/index.ts';
import { dedupeCreates, indexOps } from '../core/vm-index.ts';
import { fourLetter } from '../drivers/launch/zookeeper.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { startHv, stopHv, testXml, type HvRig } from '../test/rig/testdriver.ts';
import { CLK_TCK, cpuTicks, rssMiB, stopByPid } from './lib/proc.ts';
import { daemonArgv } from '../drivers/launch/daemon.ts';
import { round3, summarize } from './lib/stats.ts';

const LOCAL = Number(process.argv[2] ?? 100);
const IDLE_S = Number(process.argv[3] ?? 20);
const ELSEWHERE = (process.argv[4] ?? '0,1000,10000').split(',').map(Number);
const OTHER_NODES = 50;
const STARTS = Number(process.argv[5] ?? 3);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => summarize(xs).p50;
/** Each N's cluster lives under a root of its own. */
const pathsOf = (n: number): ZkPaths => new ZkPaths(`/scale${n}`);
const nodeStatus = () =>
  encodeNodeStatus({
    daemonState: 'run', domainState: 'ready', memory: { totalMiB: 65536, usedMiB: 1024, freeMiB: 64512, allocatedMiB: 0, provisionedMiB: 0 },
    vcpus: { total: 32, allocated: 0 }, load: 0.1, runningVms: [], keepaliveAt: new Date().toISOString(), version: 'bench', conditions: [],
  });

/** Writes the VMs as vk does (spec, XML, index entry), 50 to a transaction. */
async function writeVms(store: ZkStore, paths: ZkPaths, vms: Array<{ name: string; node: string; state: 'running' | 'stopped' }>): Promise<void> {
  for (let i = 0; i < vms.length; i += 50) {
    const batch = vms.slice(i, i + 50);
    const ops: Op[] = [];
    for (const vm of batch) {
      ops.push(
        { op: 'create', path: paths.vm(vm.name) },
        { op: 'create', path: paths.vmSpec(vm.name), data: encodeVmSpec({ node: vm.node, state: vm.state, stopMode: 'force' }) },
        { op: 'create', path: paths.vmXml(vm.name), data: testXml(vm.name, 16) },
      );
    }
    for (const vm of batch) ops.push(...(await indexOps(store, paths, vm.name, { node: vm.node })));
    // Several VMs of one node in a batch each create its index list: the first create stays.
    await store.multi(dedupeCreates(ops));
  }
}

async function totalWatches(port: number): Promise<number> {
  const out = await fourLetter(port, 'wchs');
  return Number(/Total watches:(\d+)/.exec(out)?.[1] ?? NaN);
}


const zk = await startZooKeeper();
const port = Number(zk.connectString.split(':').at(-1));
const store = await ZkStore.connect({ connectString: zk.connectString });
const tmp = mkdtempSync(join(tmpdir(), 'vk-scale-'));
const results: Array<{ n: number; rss: number; watches: number; cpuPct: number; runningS: number }> = [];
let starts = 0;

/** One start of the daemon on N's root and a fresh libvirtd; resolves once its VMs run, the daemon still running. */
async function startOnce(n: number): Promise<{ runningS: number; daemon: ChildProcess; hv: HvRig }> {
  const paths = pathsOf(n);
  // Each status as the last start left it, removed at the version read (the first start finds none).
  await Promise.all(
    Array.from({ length: LOCAL }, async (_, i) => {
      const status = await store.get(paths.vmStatus(`l${i}`));
      if (status) await store.delete(paths.vmStatus(`l${i}`), status.version);
    }),
  );
  const hv = await startHv('hv1');
  const config = join(tmp, `hv1-${n}-${starts++}.yaml`);
  writeFileSync(config, JSON.stringify({
    node: 'hv1',
    zookeeper: { hosts: zk.connectString, root: paths.root },
    libvirt: { socket: hv.libvirtd.socketPath, uri: 'test:///default' },
    network: { enabled: false }, frr: { enabled: false }, fence: { enabled: false },
    logLevel: 'warn',
  }));
  const started = performance.now();
  const [node, ...args] = daemonArgv(config);
  const daemon = spawn(node!, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, VK_REQUIRE_BUNDLE: '1' } });
  try {
    // Its VMs running: every local VM's status says Running.
    let running = 0;
    while (running < LOCAL) {
      if (daemon.exitCode !== null) throw new Error(`the daemon exited with code ${daemon.exitCode}`);
      const statuses = await Promise.all(Array.from({ length: LOCAL }, (_, i) => store.get(paths.vmStatus(`l${i}`))));
      running = statuses.filter((s) => s && s.data.includes('"phase":"Running"')).length;
      if (running < LOCAL) await sleep(50);
      if (performance.now() - started > 180_000) throw new Error(`N=${n}: only ${running}/${LOCAL} running after 180 s`);
    }
    return { runningS: (performance.now() - started) / 1000, daemon, hv };
  } catch (error) {
    await stopRun({ daemon, hv });
    throw error;
  }
}

async function stopRun(run: { daemon: ChildProcess; hv: HvRig }): Promise<void> {
  await stopByPid(run.daemon);
  await stopHv(run.hv);
}

try {
  for (const n of ELSEWHERE) {
    const paths = pathsOf(n);
    await store.ensurePath(paths.vms);
    await store.create(paths.schema, JSON.stringify({ version: 2 }));
    // The other nodes of the cluster, with the statuses their daemons would keep (the selectors read them).
    for (let i = 0; i < OTHER_NODES; i++) await store.create(paths.nodeStatus(`hv${2 + i}`), nodeStatus(), { parents: true });
    const t0 = performance.now();
    await writeVms(store, paths, Array.from({ length: n }, (_, i) => ({ name: `e${i}`, node: `hv${2 + (i % OTHER_NODES)}`, state: 'running' as const })));
    await writeVms(store, paths, Array.from({ length: LOCAL }, (_, i) => ({ name: `l${i}`, node: 'hv1', state: 'running' as const })));
    console.log(`N=${n}: wrote ${n} VMs elsewhere and ${LOCAL} on hv1 in ${round3((performance.now() - t0) / 1000)} s`);
  }
  await stopRun(await startOnce(ELSEWHERE[0]!));
  // The starts of every N in turn, round after round: a machine that gets slower or faster weighs on all alike.
  const times = new Map<number, number[]>(ELSEWHERE.map((n) => [n, []]));
  for (let round = 0; round < STARTS; round++) {
    for (const n of ELSEWHERE) {
      const run = await startOnce(n);
      times.get(n)!.push(run.runningS);
      await stopRun(run);
    }
  }
  for (const n of ELSEWHERE) {
    const run = await startOnce(n);
    try {
      const samples = times.get(n)!;
      const runningS = median(samples);
      await sleep(3000);
      const c0 = cpuTicks(run.daemon.pid!);
      const w0 = performance.now();
      await sleep(IDLE_S * 1000);
      const cpuPct = ((cpuTicks(run.daemon.pid!) - c0) / CLK_TCK / ((performance.now() - w0) / 1000)) * 100;
      const rss = rssMiB(run.daemon.pid!);
      const watches = await totalWatches(port);
      results.push({ n, rss, watches, cpuPct, runningS });
      console.log(`N=${n}: its ${LOCAL} VMs running ${round3(runningS)} s after start (median of ${samples.map(round3).join(', ')} s); RSS ${round3(rss)} MiB; ${watches} ZooKeeper watches; idle CPU ${round3(cpuPct)} % of a core`);
    } finally {
      await stopRun(run);
    }
  }
  const base = results[0]!;
  for (const r of results.slice(1)) {
    console.log(`N=${r.n} / N=${base.n}: RSS ×${round3(r.rss / base.rss)}, watches ×${round3(r.watches / base.watches)}, time to run ×${round3(r.runningS / base.runningS)} (goals ≤ 1.1, ≤ 1.1, ≤ 1.2)`);
  }
  console.log(
    JSON.stringify({
      bench: 'scale',
      local: LOCAL,
      elsewhere: results.map((r) => r.n),
      rss_mib: results.map((r) => round3(r.rss)),
      watches: results.map((r) => r.watches),
      idle_cpu_pct: results.map((r) => round3(r.cpuPct)),
      local_running_s: results.map((r) => round3(r.runningS)),
    }),
  );
} finally {
  await store.close();
  await zk.cleanup();
  rmSync(tmp, { recursive: true, force: true });
}
