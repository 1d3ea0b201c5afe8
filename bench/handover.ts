// bench/handover: the primary coordinator's gateway as a VM sees it. Three netns nodes with real
// FRR (BGP EVPN), a real ZooKeeper, a `vk daemon` child process per node, hv1 and hv2
// coordinators, one managed network (VNI 200, gateway 203.0.113.1/24, DHCP) and a VM side on hv3
// (never primary) pinging the gateway every 25 ms.
//
// 1. N planned hand-overs (hv1 ⇄ hv2, asked as `vk node primary` asks): echo replies lost per
//    hand-over and the hand-over's wall time (request → the new primary in phase primary).
// 2. The baseline, in the same run, on the same fabric: the same gateway moved by hand between two
//    nodes, break-before-make (`ip addr del` on one, then `ip addr add` and the same arping on
//    the other, as fast as processes go), on a second network (VNI 201) the daemons hold no
//    gateway for. The ratio says what make-before-break buys.
// 3. Three primary crashes (the daemon SIGKILLed): the longest time without an echo reply, beside
//    the session timeout (goal: ≤ session timeout + 2 s).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { frrInstalled } from '../test/rig/frr.ts';
import { startPrimaryRig, type PrimaryRig } from '../test/rig/primary.ts';
import { Pinger } from '../test/rig/pinger.ts';
import { waitFor } from '../test/rig/wait.ts';

const NODES = ['hv1', 'hv2', 'hv3'];
const HANDOVERS = Number(process.argv[2] ?? 20);
const BASELINE_MOVES = Number(process.argv[3] ?? 10);
const CRASHES = 3;
const SESSION_MS = 4000;
const GW = '203.0.113.1';
const BASE_GW = '192.0.2.1';

const why = frrInstalled();
if (why) throw new Error(`bench/handover needs FRR: ${why}`);

const run = promisify(execFile);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const clientPrefix = `vkh${process.pid.toString(16).slice(-4)}`;
const clientNs = `${clientPrefix}c`;
const pingers: Pinger[] = [];
let p: PrimaryRig | undefined;

function plug(rig: PrimaryRig, bridge: string, name: string, addr: string): void {
  const ns = rig.nsOf('hv3');
  execFileSync('ip', ['-n', ns, 'link', 'add', name, 'mtu', '1450', 'type', 'veth', 'peer', 'name', name.replace(/h$/, 'v'), 'netns', clientNs]);
  execFileSync('ip', ['-n', ns, 'link', 'set', name, 'master', bridge, 'up']);
  execFileSync('ip', ['-n', clientNs, 'link', 'set', name.replace(/h$/, 'v'), 'up']);
  execFileSync('ip', ['-n', clientNs, 'addr', 'add', addr, 'dev', name.replace(/h$/, 'v')]);
}

try {
  p = await startPrimaryRig({
    nodes: NODES,
    coordinators: ['hv1', 'hv2'],
    networks: [
      [200, { type: 'managed', mtu: 1450, gateway4: `${GW}/24`, dhcp4: { start: '203.0.113.100', end: '203.0.113.199' } }],
      [201, { type: 'managed', mtu: 1450 }],
    ],
    sessionTimeoutMs: SESSION_MS,
    barrierMs: 3_000,
  });
  const rig = p.rig;
  const nsOf = (node: string) => p!.nsOf(node);
  for (const node of NODES) await p.spawn(node);
  await waitFor('a primary', async () => (await p!.record())?.phase === 'primary', 30_000, () => NODES.map((n) => `${n}:\n${rig.daemonLog(n).slice(-2500)}`).join('\n'));
  const bridgesUp = () => NODES.every((n) => ['vkbr200', 'vkbr201'].every((b) => { try { execFileSync('ip', ['-n', nsOf(n), 'link', 'show', b], { stdio: 'ignore' }); return true; } catch { return false; } }));
  await waitFor('the bridges on every node', bridgesUp, 30_000);
  for (const vni of [200, 201]) await p.evpnConverged(vni);
  execFileSync('ip', ['netns', 'add', clientNs]);
  plug(p, 'vkbr200', 'vkc200h', '203.0.113.50/24');
  plug(p, 'vkbr201', 'vkc201h', '192.0.2.50/24');

  // 1. Planned hand-overs.
  const pinger = new Pinger(clientNs, GW);
  pingers.push(pinger);
  await pinger.replying(10, 30_000);
  const lost: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < HANDOVERS; i++) {
    const from = (await p.record())!.node;
    const to = from === 'hv1' ? 'hv2' : 'hv1';
    await pinger.replying(4);
    const s0 = pinger.seq;
    const t0 = performance.now();
    await p.requestHandover(to);
    await p.primaryIs(to, 20_000);
    wall.push(performance.now() - t0);
    await pinger.replying(8, 10_000);
    const w = pinger.window(s0, pinger.seq - 4);
    lost.push(w.lost);
    console.log(`hand-over ${i + 1}: ${from} → ${to} in ${wall.at(-1)!.toFixed(0)} ms, ${w.sent} pings, ${w.lost} lost`);
  }

  // 2. The baseline: break-before-make by hand on VNI 201, same pinger interval.
  const base = new Pinger(clientNs, BASE_GW);
  pingers.push(base);
  const dev = (n: string) => ['-n', nsOf(n)];
  for (const n of ['hv1', 'hv2']) {
    // The same link set-up as the daemons' gateways (virtual MAC, no link-local, the bridge answering no ARP for it).
    execFileSync('ip', [...dev(n), 'link', 'add', 'vkbx201', 'link', 'vkbr201', 'address', '02:76:6b:00:00:c9', 'type', 'macvlan', 'mode', 'bridge']);
    execFileSync('ip', [...dev(n), 'link', 'set', 'vkbx201', 'addrgenmode', 'none']);
    execFileSync('ip', [...dev(n), 'link', 'set', 'vkbx201', 'up']);
    execFileSync('ip', ['netns', 'exec', nsOf(n), 'sysctl', '-qw', 'net.ipv4.conf.vkbr201.arp_ignore=1']);
  }
  execFileSync('ip', [...dev('hv1'), 'addr', 'add', `${BASE_GW}/24`, 'dev', 'vkbx201']);
  await base.replying(10, 30_000);
  const baseLost: number[] = [];
  let holder = 'hv1';
  for (let i = 0; i < BASELINE_MOVES; i++) {
    const to = holder === 'hv1' ? 'hv2' : 'hv1';
    await base.replying(4);
    const s0 = base.seq;
    await run('ip', [...dev(holder), 'addr', 'del', `${BASE_GW}/24`, 'dev', 'vkbx201']);
    await run('ip', [...dev(to), 'addr', 'add', `${BASE_GW}/24`, 'dev', 'vkbx201']);
    await run('ip', ['netns', 'exec', nsOf(to), 'arping', '-U', '-P', '-c', '2', '-W', '0.02', '-w', '0', '-i', 'vkbx201', '-S', BASE_GW, BASE_GW]).catch(() => undefined);
    holder = to;
    await base.replying(8, 10_000);
    const w = base.window(s0, base.seq - 4);
    baseLost.push(w.lost);
    console.log(`baseline move ${i + 1} (break-before-make by hand): ${w.sent} pings, ${w.lost} lost`);
  }
  base.stop();

  // 3. Primary crashes.
  const outages: number[] = [];
  for (let i = 0; i < CRASHES; i++) {
    const old = (await p.record())!.node;
    const other = old === 'hv1' ? 'hv2' : 'hv1';
    await pinger.replying(4);
    const s0 = pinger.seq;
    await rig.killChild(old);
    await p.primaryIs(other, 30_000);
    await pinger.replying(8, 20_000);
    const gap = pinger.longestGapMs(s0, pinger.seq);
    outages.push(gap);
    console.log(`crash ${i + 1}: ${old} SIGKILLed, ${other} primary; gateway unreachable for ${(gap / 1000).toFixed(3)} s (session timeout ${SESSION_MS / 1000} s)`);
    await p.spawn(old);
    await sleep(1_000);
  }

  const lostP50 = pct(lost, 50);
  const baseP50 = pct(baseLost, 50);
  console.log(`lost per hand-over: ${lost.join(' ')} → p50 ${lostP50}, max ${Math.max(...lost)} (PVC: 1-2 at this interval)`);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const ratio = mean(lost) > 0 ? `${(mean(baseLost) / mean(lost)).toFixed(2)}× more lost by hand` : `ours lost none, the baseline ${mean(baseLost).toFixed(2)} per move`;
  console.log(`baseline, break-before-make by hand: ${baseLost.join(' ')} → p50 ${baseP50}, max ${Math.max(...baseLost)}; ${ratio}`);
  console.log(`hand-over wall time p50 ${pct(wall, 50).toFixed(0)} ms, max ${Math.max(...wall).toFixed(0)} ms`);
  console.log(`gateway outage after a crash: ${outages.map((o) => (o / 1000).toFixed(3)).join(' ')} s (session timeout ${SESSION_MS / 1000} s, goal ≤ ${SESSION_MS / 1000 + 2} s)`);
  console.log(
    JSON.stringify({
      bench: 'handover',
      handovers: HANDOVERS,
      lost_p50: lostP50,
      lost_max: Math.max(...lost),
      lost_mean: Number((lost.reduce((a, b) => a + b, 0) / lost.length).toFixed(2)),
      baseline_lost_p50: baseP50,
      baseline_lost_mean: Number((baseLost.reduce((a, b) => a + b, 0) / baseLost.length).toFixed(2)),
      wall_p50_ms: Math.round(pct(wall, 50)),
      wall_max_ms: Math.round(Math.max(...wall)),
      crash_outage_s: Number((pct(outages, 50) / 1000).toFixed(3)),
      crash_outage_max_s: Number((Math.max(...outages) / 1000).toFixed(3)),
      session_timeout_s: SESSION_MS / 1000,
    }),
  );
} finally {
  for (const x of pingers) x.stop();
  await p?.cleanup();
  try {
    execFileSync('ip', ['netns', 'del', clientNs], { stdio: 'ignore' });
  } catch {
    // not created
  }
}
