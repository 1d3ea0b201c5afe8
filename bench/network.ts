// bench/network: 100 managed networks converged on one node in one pass (observe, plan, one
// `ip -batch`, one sysctl process, observe again to confirm), beside the same links made with one
// `ip` (or sysctl) process per command, in a network namespace made for the run and deleted after.
// Goal (DESIGN §6): one pass ≤ 1 s and ≥ 5× faster than a process per command.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { applyBatch, observeLinks, setSysctls } from '../drivers/net/ip.ts';
import { batchLines, planNetworks, sysctlsOf, type NetworkPlanInput } from '../reconcilers/network/plan.ts';
import { decodeClusterConfig, decodeNetworkSpec } from '../schemas/index.ts';

const NETWORKS = Number(process.argv[2] ?? 100);
const GROUP = 4244;
const ns = `vkbench${randomBytes(3).toString('hex')}`;
const where = { netns: ns };

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function planPass(): Promise<ReturnType<typeof planNetworks>> {
  const input: NetworkPlanInput = {
    networks: Array.from({ length: NETWORKS }, (_, i) => ({ vni: 1000 + i, spec: decodeNetworkSpec({ type: 'managed' }), generation: 0 })),
    config: decodeClusterConfig({}),
    local: { clusterAddress: '198.51.100.1', group: GROUP },
    observed: await observeLinks(where),
    vlanSupported: false,
    bridgesInUse: new Map(),
  };
  return planNetworks(input);
}

ip('netns', 'add', ns);
try {
  ip('-n', ns, 'link', 'set', 'lo', 'up');

  // One pass, as the daemon runs it.
  const t0 = performance.now();
  const plan = await planPass();
  const { lines } = batchLines(plan.actions, GROUP);
  const batch = await applyBatch(lines, where);
  const sysctls = await setSysctls(sysctlsOf(plan.actions), where);
  const passMs = performance.now() - t0;
  const again = await planPass();
  if (batch.failures.length > 0 || sysctls.failures.length > 0 || again.actions.length > 0) {
    throw new Error(`the pass did not converge: ${batch.failures.length} batch failures, ${sysctls.failures.length} sysctl failures, ${again.actions.length} actions left`);
  }
  console.log(`one pass: ${plan.actions.length} actions (${lines.length} ip lines in ${batch.processes} process) for ${NETWORKS} networks in ${passMs.toFixed(1)} ms`);
  ip('-n', ns, 'link', 'del', 'group', String(GROUP));

  // The same links, a process per command (what a naive daemon would do).
  const t1 = performance.now();
  for (const line of lines) ip('-n', ns, ...line.split(' '));
  for (const [key, value] of Object.entries(sysctlsOf(plan.actions))) execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
  const perCommandMs = performance.now() - t1;
  const check = await planPass();
  if (check.actions.length > 0) throw new Error(`the per-command run did not converge: ${check.actions.length} actions left`);
  console.log(`a process per command: ${lines.length} ip + ${Object.keys(sysctlsOf(plan.actions)).length} sysctl processes in ${perCommandMs.toFixed(1)} ms`);
  const ratio = perCommandMs / passMs;
  console.log(`ratio: ${ratio.toFixed(1)}× (goal: one pass ≤ 1000 ms and ≥ 5×)`);
  console.log(JSON.stringify({ bench: 'network', networks: NETWORKS, pass_ms: Number(passMs.toFixed(1)), per_command_ms: Number(perCommandMs.toFixed(1)), ratio: Number(ratio.toFixed(2)) }));
} finally {
  ip('netns', 'del', ns);
}
