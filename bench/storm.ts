// storm: the move storm of issue 12 §1 on the sandbox's three nodes (test driver, one `vk daemon`
// process per node running the bundle). Each storm is 20 version-checked writes of one VM's
// spec.node (the write `vk vm move` makes), spaced 5, 10, 20, 30 or 50 ms, cycling the three
// nodes; after each, the VM must settle running only on the node written last. A sampler asks all
// three libvirtds every 10 ms where the VM is active: an instant with two is a double run.
// Baseline of the same run: the time to settle after a single move, beside the time to settle
// after a storm.
// Usage: npm run bench -- storm [STORMS]   (default 200)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListDomainsFlags } from '../drivers/libvirt/index.ts';
import { LibvirtHypervisor } from '../drivers/libvirt-hypervisor.ts';
import { readState } from '../drivers/sandbox/index.ts';
import { ZkStore } from '../drivers/zk/index.ts';
import { decodeVmStatus, ZkPaths } from '../schemas/index.ts';
import { testXml, writeVm } from '../test/rig/testdriver.ts';
import { waitFor } from '../test/rig/wait.ts';
import { Sampler } from '../test/rig/sampler.ts';
import { moveStorm, moveVm, STORM_SPACINGS_MS } from '../test/rig/storm.ts';
import { describe, round3, summarize } from './lib/stats.ts';

const STORMS = Number(process.argv[2] ?? 200);
const VM = 'storm1';
const paths = new ZkPaths();
const repo = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'vk-bench-storm-'));

function vk(...args: string[]): void {
  const r = spawnSync(process.execPath, [join(repo, 'cli/vk.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vk ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
}

console.log(`sandbox: 3 nodes, test driver, in ${dir}`);
vk('sandbox', 'up', '--dir', dir, '--nodes', '3', '--timeout', '180');
const hvs: Array<{ name: string; hv: LibvirtHypervisor }> = [];
let store: ZkStore | undefined;
try {
  const state = readState(dir)!;
  const nodes = state.nodes.map((n) => n.name);
  store = await ZkStore.connect({ connectString: state.zookeeper.connectString });
  for (const n of state.nodes) hvs.push({ name: n.name, hv: await LibvirtHypervisor.open({ socket: n.socket, uri: 'test:///default' }) });
  const zk = store;

  const where = async (vm: string): Promise<Record<string, string | null>> => {
    const out: Record<string, string | null> = {};
    await Promise.all(
      hvs.map(async ({ name, hv }) => {
        const active = await hv.conn.connectListAllDomains(ListDomainsFlags.ACTIVE);
        out[name] = active.some((d) => d.name === vm) ? 'running' : null;
      }),
    );
    return out;
  };
  /** Active only on `node`, and its status says Running there. */
  const settledOn = async (node: string): Promise<boolean> => {
    const w = await where(VM);
    const running = Object.keys(w).filter((k) => w[k] === 'running');
    if (running.length !== 1 || running[0] !== node) return false;
    const got = await zk.get(paths.vmStatus(VM));
    const status = got && decodeVmStatus(got.data.toString('utf8'));
    return status?.node === node && status.phase === 'Running';
  };

  await writeVm(zk, VM, { node: nodes[0]!, state: 'running', shutdownTimeoutMs: 2_000 }, testXml(VM));
  await waitFor(`${VM} running on ${nodes[0]}`, () => settledOn(nodes[0]!), 60_000);
  const sampler = new Sampler(where, VM, { everyMs: 10, allowDowntime: true });

  // Baseline: single moves, each settling before the next.
  const singleMs: number[] = [];
  let node = nodes[0]!;
  for (let i = 0; i < 10; i++) {
    node = nodes[(nodes.indexOf(node) + 1) % nodes.length]!;
    const t0 = performance.now();
    await moveVm(zk, VM, node);
    const target = node;
    await waitFor(`single move to ${target}`, () => settledOn(target), 60_000);
    singleMs.push(performance.now() - t0);
  }

  const settleMs: number[] = [];
  let wrongFinal = 0;
  for (let i = 0; i < STORMS; i++) {
    const spacingMs = STORM_SPACINGS_MS[i % STORM_SPACINGS_MS.length]!;
    node = await moveStorm(zk, VM, nodes, node, { writes: 20, spacingMs });
    const t0 = performance.now();
    const target = node;
    const ok = await waitFor(`storm ${i + 1} settles on ${target}`, () => settledOn(target), 60_000).then(
      () => true,
      () => false,
    );
    if (ok) settleMs.push(performance.now() - t0);
    else {
      wrongFinal++;
      console.log(`storm ${i + 1} (spacing ${spacingMs} ms): not settled on ${target} after 60 s; active: ${JSON.stringify(await where(VM))}`);
    }
    if ((i + 1) % 20 === 0) console.log(`${i + 1}/${STORMS} storms, ${sampler.doubleRunsSoFar()} double-run samples so far`);
  }
  const report = await sampler.stop();
  const single = summarize(singleMs);
  const storm = summarize(settleMs);
  console.log(describe('settle after one move (baseline)', single));
  console.log(describe('settle after a storm of 20 writes', storm));
  console.log(`sampler: ${report.samples} samples every 10 ms, ${report.switchOvers.length} switch-overs, ${report.doubleRunning.length} with the VM active on two nodes`);
  console.log(`storm settle p50 / single move p50: ${round3(storm.p50 / single.p50)}`);
  console.log(
    JSON.stringify({
      bench: 'storm',
      storms: STORMS,
      double_run_instants: report.doubleRunning.length,
      final_wrong_node: wrongFinal,
      samples: report.samples,
      single_move_settle_p50_ms: round3(single.p50),
      storm_settle_p50_ms: round3(storm.p50),
      storm_settle_p99_ms: round3(storm.p99),
      ratio_storm_vs_single_p50: round3(storm.p50 / single.p50),
    }),
  );
} finally {
  for (const { hv } of hvs) await hv.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  vk('sandbox', 'down', '--dir', dir);
  rmSync(dir, { recursive: true, force: true });
}
