// bench/frr: from a cluster-config change (a second coordinator added) to every node's FRR config
// in sync and every session Established, beside FRR's own session set-up time measured in the
// same run (two FRR nodes the daemons do not manage, a neighbor added by hand on both sides with
// vtysh, until Established).
//
// Three nodes (network namespaces on a fabric, real FRR 8.4, real ZooKeeper, a daemon per node on
// the libvirt test driver, one managed network), hv1 the first coordinator. Each round adds hv2 as
// a coordinator (hv2 becomes a route reflector, hv3 gains it as a peer) and then takes it away
// again; only the additions are measured. "In sync" is seen from outside the daemons: every node's
// running config, read with vtysh, has the peers the new config asks for; "Established" is read
// from each bgpd. frr-reload.py --test is run at the end of each round and must be empty.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { decodeClusterConfig, encodeClusterConfig, encodeNetworkSpec, type ClusterConfigInput } from '../schemas/index.ts';
import { Cluster, paths } from '../test/rig/cluster.ts';
import { frrInstalled, startFrrNode, type FrrNode } from '../test/rig/frr.ts';
import { createFabric } from '../test/rig/netns.ts';
import { waitFor } from '../test/rig/wait.ts';

const NODES = ['hv1', 'hv2', 'hv3'];
const ROUNDS = Number(process.argv[2] ?? 5);
const BGP = { asn: 65500, keepaliveS: 1, holdS: 3, connectRetryS: 1 };

const why = frrInstalled();
if (why) throw new Error(`bench/frr needs FRR: ${why}`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (ms: number) => Number((ms / 1000).toFixed(3));

const fabric = createFabric(NODES.length + 2);
const addrOf = (i: number) => fabric.hosts[i]!.addr;
const frr = new Map<string, FrrNode>();
let rig: Cluster | undefined;

// Asynchronous: the daemons run in this process, and a synchronous child process would stall them.
const run = promisify(execFile);
async function vtysh(node: FrrNode, ...commands: string[]): Promise<string> {
  return (await run('vtysh', ['--vty_socket', node.dir, ...commands.flatMap((c) => ['-c', c])], { encoding: 'utf8' })).stdout;
}
async function peerStates(node: FrrNode): Promise<Map<string, string>> {
  const summary = JSON.parse(await vtysh(node, 'show bgp l2vpn evpn summary json')) as { peers?: Record<string, { state: string }> };
  return new Map(Object.entries(summary.peers ?? {}).map(([a, p]) => [a, p.state]));
}
async function runningPeers(node: FrrNode): Promise<string[]> {
  return [...(await vtysh(node, 'show running-config')).matchAll(/^ neighbor (\S+) peer-group fabric$/gm)].map((m) => m[1]!).sort();
}
function reloadTest(node: FrrNode): string {
  return execFileSync('unshare', ['--uts', 'sh', '-c', 'hostname "$0"; exec "$@"', node.name, '/usr/lib/frr/frr-reload.py', '--test', '--stdout', '--confdir', node.dir, '--vty_socket', node.dir, '--rundir', node.dir, '--bindir', '/usr/bin', `${node.dir}/frr.conf`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

try {
  // FRR's own figure: two FRR nodes nobody manages, a session configured by hand on both sides.
  const configOf = (name: string, address: string) =>
    ['hostname ' + name, 'service integrated-vtysh-config', '!', 'no ip forwarding', 'no ipv6 forwarding', '!', `router bgp ${BGP.asn}`, ` bgp router-id ${address}`, ' no bgp default ipv4-unicast', ' neighbor fabric peer-group', ' neighbor fabric remote-as internal', ` neighbor fabric timers ${BGP.keepaliveS} ${BGP.holdS}`, ` neighbor fabric timers connect ${BGP.connectRetryS}`, ' !', ' address-family l2vpn evpn', '  neighbor fabric activate', '  advertise-all-vni', ' exit-address-family', 'exit', '!', ''].join('\n');
  const a = await startFrrNode({ name: 'fa', netns: fabric.hosts[3]!.ns, config: configOf('fa', addrOf(3)) });
  const b = await startFrrNode({ name: 'fb', netns: fabric.hosts[4]!.ns, config: configOf('fb', addrOf(4)) });
  frr.set('fa', a).set('fb', b);
  const byHand: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    await Promise.all([vtysh(a, 'conf t', `router bgp ${BGP.asn}`, `neighbor ${addrOf(4)} peer-group fabric`), vtysh(b, 'conf t', `router bgp ${BGP.asn}`, `neighbor ${addrOf(3)} peer-group fabric`)]);
    await waitFor('the hand-made session Established', async () => (await peerStates(a)).get(addrOf(4)) === 'Established' && (await peerStates(b)).get(addrOf(3)) === 'Established', 30_000, undefined, 50);
    byHand.push(performance.now() - t0);
    await Promise.all([vtysh(a, 'conf t', `router bgp ${BGP.asn}`, `no neighbor ${addrOf(4)}`), vtysh(b, 'conf t', `router bgp ${BGP.asn}`, `no neighbor ${addrOf(3)}`)]);
    await waitFor('the hand-made session gone', async () => (await peerStates(a)).size === 0 && (await peerStates(b)).size === 0, 10_000);
  }
  console.log(`FRR alone: a session configured by hand with vtysh on both sides is Established in ${byHand.map((x) => (x / 1000).toFixed(2)).join(', ')} s (median ${(median(byHand) / 1000).toFixed(2)} s)`);

  // The cluster: hv1-hv3 with FRR and a daemon each.
  const config = (coordinators: string[]): ClusterConfigInput => ({ coordinators, bgp: BGP, nodes: Object.fromEntries(NODES.map((n, i) => [n, { clusterAddress: addrOf(i) }])) });
  rig = await Cluster.start('test', { nodes: NODES, clusterConfig: config(['hv1']) });
  for (const [i, name] of NODES.entries()) frr.set(name, await startFrrNode({ name, netns: fabric.hosts[i]!.ns }));
  await rig.store.create(paths.networkSpec(100), encodeNetworkSpec({ type: 'managed' }), { parents: true });
  for (const [i, name] of NODES.entries()) {
    const dir = frr.get(name)!.dir;
    await rig.startDaemon(name, { netns: fabric.hosts[i]!.ns, network: { enabled: true, group: 4244 }, frr: { enabled: true, confDir: dir, vtySocket: dir, runDir: dir, hostname: name } } as never);
  }
  const setCoordinators = async (coordinators: string[]) => {
    const got = (await rig!.store.get(paths.config))!;
    const current = decodeClusterConfig(got.data.toString('utf8'));
    await rig!.store.set(paths.config, encodeClusterConfig({ ...current, coordinators }), got.version);
  };
  // Who peers with whom: coordinators with everyone, the others with the coordinators.
  const expected = (coordinators: string[]) =>
    new Map(NODES.map((n, i) => [n, NODES.flatMap((m, j) => (m !== n && (coordinators.includes(n) || coordinators.includes(m)) ? [addrOf(j)] : [])).sort()]));
  const inSync = async (want: Map<string, string[]>) => (await Promise.all(NODES.map(async (n) => (await runningPeers(frr.get(n)!)).join() === want.get(n)!.join()))).every(Boolean);
  const established = async (want: Map<string, string[]>) =>
    (
      await Promise.all(
        NODES.map(async (n) => {
          const states = await peerStates(frr.get(n)!);
          return want.get(n)!.every((p) => states.get(p) === 'Established') && states.size === want.get(n)!.length;
        }),
      )
    ).every(Boolean);
  await waitFor('the cluster settled with hv1 the only coordinator', async () => (await established(expected(['hv1']))) && (await inSync(expected(['hv1']))), 60_000);

  const syncMs: number[] = [];
  const upMs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const want = expected(['hv1', 'hv2']);
    const t0 = performance.now();
    await setCoordinators(['hv1', 'hv2']);
    let synced: number | undefined;
    await waitFor('every node in sync and every session Established', async () => {
      if (synced === undefined && (await inSync(want))) synced = performance.now() - t0;
      return synced !== undefined && (await established(want));
    }, 60_000, undefined, 50);
    syncMs.push(synced!);
    upMs.push(performance.now() - t0);
    for (const n of NODES) {
      const delta = reloadTest(frr.get(n)!);
      if (delta !== '') throw new Error(`${n}: frr-reload --test shows a delta after round ${round + 1}:\n${delta}`);
    }
    console.log(`round ${round + 1}: coordinator hv2 added → every config in sync after ${(syncMs.at(-1)! / 1000).toFixed(3)} s, every session Established after ${(upMs.at(-1)! / 1000).toFixed(3)} s`);
    await setCoordinators(['hv1']);
    await waitFor('back to one coordinator', async () => (await inSync(expected(['hv1']))) && (await established(expected(['hv1']))), 60_000);
  }
  const reloads = rig.actions.filter((l) => / frr reload /.test(l)).length;
  const inSyncS = s(median(syncMs));
  const establishedS = s(median(upMs));
  const frrS = s(median(byHand));
  const ratio = Number((median(upMs) / median(byHand)).toFixed(2));
  console.log(`median of ${ROUNDS}: in sync ${inSyncS} s, Established ${establishedS} s; FRR alone ${frrS} s → ${ratio}× FRR's own set-up time (${reloads} reloads in all)`);
  console.log(JSON.stringify({ bench: 'frr', nodes: NODES.length, rounds: ROUNDS, in_sync_s: inSyncS, established_s: establishedS, frr_session_s: frrS, ratio_to_frr: ratio }));
} finally {
  await rig?.cleanup();
  for (const node of frr.values()) await node.cleanup();
  fabric.cleanup();
}
