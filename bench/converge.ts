// converge: 1,000 small VMs across 3 daemons (3 private libvirtds, test driver).
//
// Prints the time from the write of every VM to all domains running, each daemon's RSS and CPU
// over an idle window once converged, and ZooKeeper write transactions per minute while idle
// (zxid delta; the goal is keepalives only), beside the raw watch latency of the same ZooKeeper.
// The idle window is three resync periods of the VM controllers (180 s: each resync and status
// refresh counted three times, and an occasional full collection weighs a third of what it does
// in one period), and starts 75 s after converging, past the first resync. The resyncs in it are
// drift resyncs (the daemon's fullResyncEvery, 10: the first full one after start comes at 10 min);
// DAEMON_ARGS='--full-resync-every 1' measures with every resync full. (The daemons run
// without V8's memory reducer, DAEMON_NODE_FLAGS: its heap-shrinking collections once allocation
// slows down used to fall inside or outside a 60 s window depending on the run, 0.5–1 % of a core.)
// Idle CPU is read both as utime+stime (tick-sampled) and as the scheduler's runtime.
// Usage: npm run bench -- converge [VMS] [IDLE_SECONDS] [SETTLE_SECONDS]   (default 1000, 180, 75)
// The daemons run the bundle (VK_REQUIRE_BUNDLE): a stale one fails the bench instead of
// silently measuring the sources through tsx, with the flags a real daemon runs with
// (DAEMON_NODE_FLAGS). DAEMON_NODE_OPTIONS (NODE_OPTIONS) and DAEMON_NODE_ARGS (node's own argv,
// replacing those flags; empty for none) and DAEMON_ARGS (more `vk daemon` options) are for
// experiments; DAEMON_STDOUT shows their stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_NODE_FLAGS } from '../drivers/launch/daemon.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { startZooKeeper } from '../test/rig/zookeeper.ts';
import { startHv, stopHv, testXml, writeVm, type HvRig } from '../test/rig/testdriver.ts';
import { measureRawWatch } from './lib/raw-watch.ts';
import { describe, round3, summarize } from './lib/stats.ts';
import { CLK_TCK, cpuTicks, rssMiB, schedCpuS, stopByPid } from './lib/proc.ts';

const VMS = Number(process.argv[2] ?? 1000);
const IDLE_S = Number(process.argv[3] ?? 180);
const SETTLE_S = Number(process.argv[4] ?? 75);
const NODES = ['hv1', 'hv2', 'hv3'];
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');



async function zxid(store: ZkStore): Promise<bigint> {
  // A read of the root returns its stat; the store tracks the highest zxid seen in replies.
  await store.exists('/');
  return store.lastZxid();
}


const zk = await startZooKeeper();
const rigs: HvRig[] = [];
const daemons: ChildProcess[] = [];
try {
  const raw = summarize(await measureRawWatch(zk.connectString, '/raw-watch', 500));
  console.log(describe('raw ZooKeeper watch (write→data)', raw));
  for (const node of NODES) rigs.push(await startHv(node));
  // --no-network: these daemons run in this machine's own namespace, whose links are not theirs to
  // manage (bench/network measures the network concern).
  for (const rig of rigs) {
    const child = spawn(
      process.execPath,
      [...(process.env.DAEMON_NODE_ARGS !== undefined ? process.env.DAEMON_NODE_ARGS.split(' ').filter(Boolean) : DAEMON_NODE_FLAGS), join(repo, 'cli/vk.mjs'), 'daemon', '--node', rig.name, '--zk', zk.connectString, '--libvirt-socket', rig.libvirtd.socketPath, '--libvirt-uri', 'test:///default', '--log-level', 'warn', '--no-network', ...(process.env.DAEMON_ARGS ? process.env.DAEMON_ARGS.split(' ').filter(Boolean) : [])],
      { stdio: ['ignore', process.env.DAEMON_STDOUT ? 'inherit' : 'ignore', 'inherit'], env: { ...process.env, NODE_OPTIONS: process.env.DAEMON_NODE_OPTIONS ?? '', VK_REQUIRE_BUNDLE: '1' } },
    );
    daemons.push(child);
  }
  const store = await ZkStore.connect({ connectString: zk.connectString });
  // Wait for every daemon's alive znode.
  for (const [i, node] of NODES.entries()) {
    while (!(await store.exists(`/virtkeeper/nodes/${node}/alive`))) {
      if (daemons[i]!.exitCode !== null) throw new Error(`the ${node} daemon exited with code ${daemons[i]!.exitCode} before it came up`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const zxidAtWrite = await zxid(store);
  const cpuAtWrite = daemons.map((d) => cpuTicks(d.pid!));
  const othersAtWrite = { libvirtd: rigs.map((r) => cpuTicks(r.libvirtd.pid)), zk: cpuTicks(zk.pid), bench: process.cpuUsage() };
  const t0 = performance.now();
  const writes: Promise<void>[] = [];
  for (let i = 0; i < VMS; i++) {
    const name = `vm${String(i).padStart(4, '0')}`;
    writes.push(writeVm(store, name, { node: NODES[i % NODES.length]!, state: 'running', stopMode: 'force' }, testXml(name, 16)));
  }
  await Promise.all(writes);
  const written = performance.now();
  let running = 0;
  while (running < VMS) {
    const counts = await Promise.all(rigs.map((r) => r.hv.conn.connectNumOfDomains()));
    running = counts.reduce((n, count) => n + count, 0);
    if (running < VMS) await new Promise((r) => setTimeout(r, 20));
    if (performance.now() - t0 > 120_000) throw new Error(`only ${running}/${VMS} running after 120 s`);
  }
  const convergeS = (performance.now() - t0) / 1000;
  const convergeCpuS = daemons.map((d, i) => (cpuTicks(d.pid!) - cpuAtWrite[i]!) / CLK_TCK);
  const libvirtdCpuS = rigs.reduce((s, r, i) => s + (cpuTicks(r.libvirtd.pid) - othersAtWrite.libvirtd[i]!) / CLK_TCK, 0);
  const zkCpuS = (cpuTicks(zk.pid) - othersAtWrite.zk) / CLK_TCK;
  const benchCpu = process.cpuUsage(othersAtWrite.bench);
  console.log(`ZooKeeper write transactions while converging: ${(await zxid(store)) - zxidAtWrite} (the ${VMS} VMs' own writes included)`);
  console.log(`others' CPU while converging: libvirtds ${round3(libvirtdCpuS)} s, ZooKeeper ${round3(zkCpuS)} s, this bench (writer, poller) ${round3((benchCpu.user + benchCpu.system) / 1e6)} s`);
  console.log(`daemon CPU while converging: ${convergeCpuS.map((c, i) => `${NODES[i]} ${round3(c)} s`).join(', ')} (2 cores shared with 3 libvirtds and ZooKeeper)`);
  console.log(`wrote ${VMS} VMs in ${round3((written - t0) / 1000)} s; all running after ${round3(convergeS)} s (goal ≤ 5 s)`);

  // Let status writes and the garbage collections after converging settle, then measure an idle window.
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const z0 = await zxid(store);
  const c0 = daemons.map((d) => cpuTicks(d.pid!));
  const s0 = daemons.map((d) => schedCpuS(d.pid!));
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  const elapsedS = (performance.now() - w0) / 1000;
  const z1 = await zxid(store);
  const cpuPct = daemons.map((d, i) => ((cpuTicks(d.pid!) - c0[i]!) / CLK_TCK / elapsedS) * 100);
  const schedPct = daemons.map((d, i) => ((schedCpuS(d.pid!) - s0[i]!) / elapsedS) * 100);
  const rss = daemons.map((d) => rssMiB(d.pid!));
  const writesPerMin = (Number(z1 - z0) / elapsedS) * 60;
  NODES.forEach((n, i) => console.log(`${n}: RSS ${round3(rss[i]!)} MiB, idle CPU ${round3(cpuPct[i]!)} % of a core by utime+stime, ${round3(schedPct[i]!)} % by the scheduler's runtime (goals < 150 MB, < 0.5 %)`));
  console.log(`ZooKeeper write transactions while idle: ${round3(writesPerMin)} per minute (goal: keepalives only)`);
  await store.close();
  console.log(
    JSON.stringify({
      bench: 'converge',
      vms: VMS,
      nodes: NODES.length,
      converge_s: round3(convergeS),
      converge_daemon_cpu_s_total: round3(convergeCpuS.reduce((a, b) => a + b, 0)),
      rss_mb_max: round3(Math.max(...rss)),
      idle_cpu_pct_max: round3(Math.max(...cpuPct)),
      idle_cpu_sched_pct_max: round3(Math.max(...schedPct)),
      zk_writes_per_min: round3(writesPerMin),
      raw_watch_p50_ms: round3(raw.p50),
    }),
  );
} finally {
  for (const d of daemons) await stopByPid(d);
  for (const r of rigs) await stopHv(r);
  await zk.cleanup();
}
