// The FRR concern end to end (issue 15): real FRR 8.4 (zebra + bgpd) in each node's network
// namespace on a fabric (198.51.100.1-4), a real ZooKeeper, a daemon per node (libvirt test
// driver) that makes the node's VXLANs (network concern) and keeps its FRR config in sync (FRR
// concern). hv1 and hv2 are coordinators (route reflectors); hv4 joins the cluster config later.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeClusterConfig, decodeNodeStatus, encodeClusterConfig, encodeNetworkSpec, type ClusterConfigInput, type NodeFrr } from '../../schemas/index.ts';
import { Cluster, paths } from '../rig/cluster.ts';
import { frrInstalled, startFrrNode, type FrrNode } from '../rig/frr.ts';
import { createFabric, netnsSupported, type Fabric } from '../rig/netns.ts';
import { waitFor } from '../rig/wait.ts';

const NODES = ['hv1', 'hv2', 'hv3', 'hv4'];
const VNI = 100;
const RESYNC_MS = 2_000;

const skip = !netnsSupported() ? 'network namespaces are not usable here' : (frrInstalled() ?? false);

describe('FRR: every node a BGP EVPN VTEP, its config kept in sync', { timeout: 300_000, skip }, () => {
  let rig: Cluster;
  let fabric: Fabric;
  const frr = new Map<string, FrrNode>();
  const extraNs: string[] = [];
  const nsOf = (node: string) => fabric.hosts[NODES.indexOf(node)]!.ns;
  const addrOf = (node: string) => fabric.hosts[NODES.indexOf(node)]!.addr;
  const dirOf = (node: string) => frr.get(node)!.dir;
  const vtysh = (node: string, ...commands: string[]): string =>
    execFileSync('vtysh', ['--vty_socket', dirOf(node), ...commands.flatMap((c) => ['-c', c])], { encoding: 'utf8' });
  const reloadTest = (node: string): string =>
    execFileSync('unshare', ['--uts', 'sh', '-c', 'hostname "$0"; exec "$@"', node, '/usr/lib/frr/frr-reload.py', '--test', '--stdout', '--confdir', dirOf(node), '--vty_socket', dirOf(node), '--rundir', dirOf(node), '--bindir', '/usr/bin', join(dirOf(node), 'frr.conf')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });

  const clusterConfig = (members: string[], coordinators: string[]): ClusterConfigInput => ({
    coordinators,
    bgp: { asn: 65500, keepaliveS: 1, holdS: 3, connectRetryS: 1 },
    nodes: Object.fromEntries(members.map((n) => [n, { clusterAddress: addrOf(n) }])),
  });
  const setConfig = async (config: ClusterConfigInput) => {
    const got = (await rig.store.get(paths.config))!;
    const current = decodeClusterConfig(got.data.toString('utf8'));
    await rig.store.set(paths.config, encodeClusterConfig({ ...current, ...config }), got.version);
  };
  const frrStatusOf = async (node: string): Promise<NodeFrr | undefined> => {
    const got = await rig.store.get(paths.nodeStatus(node));
    return got ? decodeNodeStatus(got.data.toString('utf8')).frr : undefined;
  };
  /** The node's status says in sync, with exactly these peers, all Established. */
  const settled = (node: string, peers: string[]) => async () => {
    const s = await frrStatusOf(node);
    if (s?.state !== 'InSync') return false;
    const got = s.peers.map((p) => `${p.node}:${p.state}`).sort();
    return got.join() === peers.map((p) => `${p}:Established`).sort().join() ? s : false;
  };
  const describeAll = async () => (await Promise.all(NODES.map(async (n) => `${n}: ${JSON.stringify(await frrStatusOf(n))}`))).join('\n');
  const remoteVteps = (node: string): string[] => {
    const vnis = JSON.parse(vtysh(node, 'show evpn vni json')) as Record<string, { remoteVteps?: string[] }>;
    return [...(vnis[String(VNI)]?.remoteVteps ?? [])].sort();
  };
  const reloadLines = (node: string) => rig.actions.filter((l) => l.startsWith(`${node} frr reload`)).length;
  const startDaemon = (node: string) =>
    rig.startDaemon(node, {
      netns: nsOf(node),
      resyncMs: 600_000,
      network: { enabled: true, group: 4244 },
      frr: { enabled: true, confDir: dirOf(node), vtySocket: dirOf(node), runDir: dirOf(node), hostname: node, resyncMs: RESYNC_MS },
    } as never);

  before(async () => {
    fabric = createFabric(NODES.length);
    rig = await Cluster.start('test', { nodes: NODES, clusterConfig: clusterConfig(['hv1', 'hv2', 'hv3'], ['hv1', 'hv2']) });
    for (const node of NODES) frr.set(node, await startFrrNode({ name: node, netns: nsOf(node) }));
    await rig.store.create(paths.networkSpec(VNI), encodeNetworkSpec({ type: 'managed', mtu: 1450 }), { parents: true });
    for (const node of ['hv1', 'hv2', 'hv3']) await startDaemon(node);
  });

  after(async () => {
    await rig?.cleanup();
    for (const f of frr.values()) await f.cleanup();
    for (const ns of extraNs) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    fabric?.cleanup();
  });

  it('every session Established, the other nodes remote VTEPs of every VNI, head-end replication in the FDB, and a VM side on hv1 pings one on hv3', async () => {
    await waitFor('hv1 and hv2 (coordinators) peer with the two others, hv3 with the coordinators', async () => (await settled('hv1', ['hv2', 'hv3'])()) && (await settled('hv2', ['hv1', 'hv3'])()) && (await settled('hv3', ['hv1', 'hv2'])()), 30_000, describeAll);
    for (const node of ['hv1', 'hv2', 'hv3']) {
      const others = ['hv1', 'hv2', 'hv3'].filter((n) => n !== node).map(addrOf).sort();
      await waitFor(`${node} learns the other two VTEPs of VNI ${VNI}`, () => remoteVteps(node).join() === others.join(), 20_000, () => vtysh(node, 'show evpn vni json'));
      const s = await waitFor(`${node}'s status lists them`, async () => {
        const st = await frrStatusOf(node);
        return st?.vnis.find((v) => v.vni === VNI)?.remoteVteps.join() === others.join() ? st : false;
      }, 20_000, describeAll);
      assert.equal(s.routerId, addrOf(node));
      assert.equal(s.asn, 65500);
      const fdb = execFileSync('bridge', ['-n', nsOf(node), 'fdb', 'show', 'dev', `vkvx${VNI}`], { encoding: 'utf8' });
      for (const other of others) assert.match(fdb, new RegExp(`^00:00:00:00:00:00 dst ${other.replaceAll('.', '\\.')} self permanent$`, 'm'), `${node}: head-end replication to ${other}\n${fdb}`);
    }

    // VM sides on hv1 and hv3 plugged into vkbr100: no FDB entry made by the test.
    const plug = (node: string, name: string, addr: string) => {
      extraNs.push(name);
      execFileSync('ip', ['netns', 'add', name]);
      execFileSync('ip', ['-n', nsOf(node), 'link', 'add', `${name}h`, 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      execFileSync('ip', ['-n', nsOf(node), 'link', 'set', `${name}h`, 'master', `vkbr${VNI}`, 'up']);
      execFileSync('ip', ['-n', name, 'link', 'set', 'eth0', 'mtu', '1450', 'up']);
      execFileSync('ip', ['-n', name, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    };
    const prefix = fabric.fabricNs.slice(0, -1);
    plug('hv1', `${prefix}v1`, '203.0.113.11');
    plug('hv3', `${prefix}v3`, '203.0.113.13');
    const ping = execFileSync('ip', ['netns', 'exec', `${prefix}v1`, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '203.0.113.13'], { encoding: 'utf8' });
    assert.match(ping, /3 received/);
  });

  it('frr-reload.py --test finds no delta on any node, and the daemons make no further reload', async () => {
    for (const node of ['hv1', 'hv2', 'hv3']) assert.equal(reloadTest(node), '', `${node}: frr-reload --test shows a delta`);
    const before = await Promise.all(['hv1', 'hv2', 'hv3'].map(async (n) => ({ node: n, lines: reloadLines(n), status: (await frrStatusOf(n))!.reloads })));
    for (const b of before) assert.ok(b.status >= 1, `${b.node} reloaded once to load its config`);
    // Three resync periods: each proves the config in sync again.
    await new Promise((r) => setTimeout(r, 3 * RESYNC_MS + 500));
    for (const b of before) {
      assert.equal(reloadLines(b.node), b.lines, `${b.node} reloaded again`);
      assert.equal((await frrStatusOf(b.node))!.reloads, b.status);
    }
  });

  it('a hand edit is reverted at the next resync and reported as drift', async () => {
    const reloads = reloadLines('hv3');
    vtysh('hv3', 'conf t', 'router bgp 65500', `no neighbor ${addrOf('hv1')}`);
    assert.doesNotMatch(vtysh('hv3', 'show running-config'), new RegExp(`neighbor ${addrOf('hv1').replaceAll('.', '\\.')} peer-group`));
    const s = await waitFor('hv3 reverts the edit', async () => {
      const st = await frrStatusOf('hv3');
      return st?.lastDrift && st.state === 'InSync' ? st : false;
    }, 3 * RESYNC_MS + 5_000, describeAll);
    assert.ok(s.lastDrift!.lines.some((l) => l.includes(`neighbor ${addrOf('hv1')} peer-group fabric`)), JSON.stringify(s.lastDrift));
    assert.match(vtysh('hv3', 'show running-config'), new RegExp(`neighbor ${addrOf('hv1').replaceAll('.', '\\.')} peer-group fabric`));
    assert.equal(reloadLines('hv3'), reloads + 1);
    assert.ok(rig.actions.some((l) => l.startsWith('hv3 frr drift')));
    await waitFor('hv3 Established with both coordinators again', settled('hv3', ['hv1', 'hv2']), 20_000, describeAll);
  });

  it('a node added to the cluster config gets peers on the coordinators without an FRR restart', async () => {
    const pids = ['hv1', 'hv2'].map((n) => frr.get(n)!.handle!.bgpd.pid);
    await startDaemon('hv4');
    await setConfig(clusterConfig(['hv1', 'hv2', 'hv3', 'hv4'], ['hv1', 'hv2']));
    await waitFor('hv4 Established with both coordinators, which peer with it', async () => (await settled('hv4', ['hv1', 'hv2'])()) && (await settled('hv1', ['hv2', 'hv3', 'hv4'])()) && (await settled('hv2', ['hv1', 'hv3', 'hv4'])()), 30_000, describeAll);
    assert.deepEqual(['hv1', 'hv2'].map((n) => frr.get(n)!.handle!.bgpd.pid), pids);
    for (const n of ['hv1', 'hv2']) assert.ok(isRunning(frr.get(n)!.handle!.bgpd.pid), `${n}'s bgpd still runs`);
    await waitFor('hv3 learns hv4 as a VTEP through the reflectors', () => remoteVteps('hv3').includes(addrOf('hv4')), 20_000);
  });

  it('removing a coordinator re-renders every node', async () => {
    await setConfig(clusterConfig(['hv1', 'hv2', 'hv3', 'hv4'], ['hv1']));
    await waitFor('every node peers per the new config: hv1 with all, the others with hv1 only', async () => (await settled('hv1', ['hv2', 'hv3', 'hv4'])()) && (await settled('hv2', ['hv1'])()) && (await settled('hv3', ['hv1'])()) && (await settled('hv4', ['hv1'])()), 30_000, describeAll);
    for (const node of NODES) {
      assert.equal(reloadTest(node), '', `${node}: frr-reload --test shows a delta`);
      const running = vtysh(node, 'show running-config');
      assert.equal(/route-reflector-client/.test(running), node === 'hv1', `${node}: route-reflector-client only on the coordinator`);
    }
    assert.doesNotMatch(vtysh('hv3', 'show running-config'), new RegExp(`neighbor ${addrOf('hv2').replaceAll('.', '\\.')} `));
  });

  it('FRR killed on a node: the status says so and the daemon keeps running; restarted, its sessions come back', async () => {
    const node = 'hv3';
    const daemon = rig.daemons.get(node)!;
    await frr.get(node)!.stop();
    const down = await waitFor(`${node} reports FRR unreachable`, async () => {
      const s = await frrStatusOf(node);
      return s?.state === 'FrrUnreachable' ? s : false;
    }, 3 * RESYNC_MS + 5_000, describeAll);
    assert.ok(down.message && down.message.length > 0);
    await waitFor('hv1 sees the session to hv3 go down', async () => (await frrStatusOf('hv1'))?.peers.find((p) => p.node === node)?.state !== 'Established', 15_000, describeAll);
    // The daemon is alive and its other concerns work: its alive znode and keepalive go on.
    const aliveBefore = await rig.store.get(paths.nodeAlive(node));
    assert.ok(aliveBefore, `${node}'s alive znode`);
    assert.equal(rig.daemons.get(node), daemon);
    // Restarted as systemd would: the daemons load frr.conf from the config dir.
    await frr.get(node)!.start({ loadConfig: true });
    await waitFor(`${node} Established with hv1 again, and says so`, async () => (await settled(node, ['hv1'])()) && (await frrStatusOf('hv1'))?.peers.find((p) => p.node === node)?.state === 'Established', 30_000, describeAll);
    await waitFor(`${node} learns the remote VTEPs again`, () => remoteVteps(node).length === 3, 20_000, () => vtysh(node, 'show evpn vni json'));
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
