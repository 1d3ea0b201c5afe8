// The network concern end to end (issue 14): three nodes, each a network namespace on a fabric
// (198.51.100.1–3), a real ZooKeeper, a daemon per node (libvirt test driver) converging the links
// of the Network specs inside its node's namespace with real `ip`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { probeVlan } from '../../drivers/net/ip.ts';
import { decodeClusterConfig, encodeClusterConfig, encodeNetworkSpec, encodeVmSpec, type NetworkSpecInput } from '../../schemas/index.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';
import type { NetworkController } from '../../reconcilers/network/controller.ts';
import { Cluster, paths } from '../rig/cluster.ts';
import { createFabric, netnsSupported, type Fabric } from '../rig/netns.ts';
import { testXml } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

const NODES = ['hv1', 'hv2', 'hv3'];
const GROUP = 4244;

interface IpLink {
  ifname: string;
  mtu: number;
  group?: string | number;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_data?: Record<string, unknown> };
}

const skip = netnsSupported() ? false : 'network namespaces are not usable here';

describe('networks converge on every node', { timeout: 300_000, skip }, () => {
  let rig: Cluster;
  let fabric: Fabric;
  let vk: Vk;
  let work: string;
  const extraNs: string[] = [];
  const nsOf = (node: string) => fabric.hosts[NODES.indexOf(node)]!.ns;
  const addrOf = (node: string) => fabric.hosts[NODES.indexOf(node)]!.addr;
  const daemonExtra = (node: string) => ({ netns: nsOf(node), resyncMs: 600_000, network: { enabled: true, clusterAddress: addrOf(node), group: GROUP } });

  const links = (node: string): IpLink[] => JSON.parse(execFileSync('ip', ['-n', nsOf(node), '-j', '-d', 'link', 'show'], { encoding: 'utf8' })) as IpLink[];
  const link = (node: string, name: string): IpLink | undefined => links(node).find((l) => l.ifname === name);
  const ipv6Disabled = (node: string, dev: string): string =>
    execFileSync('ip', ['netns', 'exec', nsOf(node), 'cat', `/proc/sys/net/ipv6/conf/${dev.replaceAll('.', '/')}/disable_ipv6`], { encoding: 'utf8' }).trim();
  const writeNetwork = async (vni: number, spec: NetworkSpecInput) => {
    const got = await rig.store.get(paths.networkSpec(vni));
    if (got) await rig.store.set(paths.networkSpec(vni), encodeNetworkSpec(spec), got.version);
    else await rig.store.create(paths.networkSpec(vni), encodeNetworkSpec(spec), { parents: true });
  };
  const setBridgeDevice = async (device: string) => {
    const got = (await rig.store.get(paths.config))!;
    const config = decodeClusterConfig(got.data.toString('utf8'));
    await rig.store.set(paths.config, encodeClusterConfig({ ...config, bridgeDevice: device }), got.version);
  };
  const readyOn = async (vni: number): Promise<string[]> => {
    const got = await rig.store.get(paths.networkStatus(vni));
    if (!got) return [];
    const status = JSON.parse(got.data.toString('utf8')) as { nodes: Record<string, { ready: boolean }> };
    return Object.entries(status.nodes)
      .filter(([, s]) => s.ready)
      .map(([n]) => n)
      .sort();
  };
  const converged = (vni: number, mtu: number) => (node: string) => {
    const vx = link(node, `vkvx${vni}`);
    const br = link(node, `vkbr${vni}`);
    return vx?.mtu === mtu && br?.linkinfo?.info_kind === 'bridge' && vx.master === `vkbr${vni}`;
  };

  before(async () => {
    rig = await Cluster.start('test', { nodes: NODES });
    fabric = createFabric(3);
    work = mkdtempSync(join(tmpdir(), 'vk-net-'));
    vk = vkFor(rig.zk.connectString, '/virtkeeper');
    for (const node of NODES) await rig.startDaemon(node, daemonExtra(node));
  });

  after(async () => {
    await rig?.cleanup();
    for (const ns of extraNs) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    fabric?.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('two managed networks: VXLAN and bridge on every node, as the design says, and a VM side on hv1 reaches one on hv3', async () => {
    await writeNetwork(100, { type: 'managed', mtu: 1450 });
    // The default MTU of a managed network: the cluster MTU (1500) − 50.
    await writeNetwork(200, { type: 'managed' });
    for (const vni of [100, 200]) await waitFor(`network ${vni} ready on every node`, async () => (await readyOn(vni)).join() === NODES.join(), 30_000);
    for (const node of NODES) {
      for (const [vni, mtu] of [
        [100, 1450],
        [200, 1450],
      ] as const) {
        const vx = link(node, `vkvx${vni}`)!;
        const br = link(node, `vkbr${vni}`)!;
        assert.equal(vx.linkinfo?.info_kind, 'vxlan', `${node} vkvx${vni}`);
        const data = vx.linkinfo!.info_data!;
        assert.equal(data['id'], vni);
        assert.equal(data['port'], 4789);
        assert.equal(data['local'], addrOf(node));
        assert.equal(data['learning'], false);
        assert.equal(vx.mtu, mtu);
        assert.equal(vx.master, `vkbr${vni}`);
        assert.equal(vx.linkinfo!.info_slave_data!['learning'], false);
        assert.equal(vx.linkinfo!.info_slave_data!['neigh_suppress'], true);
        assert.equal(br.linkinfo?.info_kind, 'bridge');
        assert.equal(String(br.group), String(GROUP));
        assert.equal(ipv6Disabled(node, `vkbr${vni}`), '1', `${node} vkbr${vni} disable_ipv6`);
      }
    }

    // A VM side on hv1 and one on hv3, plugged into vkbr100; the FDB filled by hand (FRR's job later).
    const plug = (node: string, name: string, addr: string) => {
      extraNs.push(name);
      execFileSync('ip', ['netns', 'add', name]);
      execFileSync('ip', ['-n', nsOf(node), 'link', 'add', `${name}h`, 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      execFileSync('ip', ['-n', nsOf(node), 'link', 'set', `${name}h`, 'master', 'vkbr100', 'up']);
      execFileSync('ip', ['-n', name, 'link', 'set', 'eth0', 'mtu', '1450', 'up']);
      execFileSync('ip', ['-n', name, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    };
    const suffix = fabric.fabricNs.slice(0, -1);
    plug('hv1', `${suffix}v1`, '192.0.2.11');
    plug('hv3', `${suffix}v3`, '192.0.2.13');
    execFileSync('bridge', ['-n', nsOf('hv1'), 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vkvx100', 'dst', addrOf('hv3')]);
    execFileSync('bridge', ['-n', nsOf('hv3'), 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vkvx100', 'dst', addrOf('hv1')]);
    const ping = execFileSync('ip', ['netns', 'exec', `${suffix}v1`, 'ping', '-c', '2', '-W', '2', '192.0.2.13'], { encoding: 'utf8' });
    assert.match(ping, /2 received/);
  });

  it('an MTU change, down or up, converges on every node', async () => {
    for (const mtu of [1400, 1450, 1400]) {
      await writeNetwork(200, { type: 'managed', mtu });
      for (const node of NODES) await waitFor(`${node}: vkvx200 and vkbr200 at mtu ${mtu}`, () => converged(200, mtu)(node) && link(node, 'vkbr200')?.mtu === mtu, 30_000);
    }
  });

  it('a link deleted or changed by hand is repaired by the event path; a foreign link is never touched', async () => {
    execFileSync('ip', ['-n', nsOf('hv2'), 'link', 'add', 'vkbr999', 'type', 'bridge']);
    execFileSync('ip', ['-n', nsOf('hv2'), 'link', 'add', 'vkbr1000', 'type', 'bridge']);
    execFileSync('ip', ['-n', nsOf('hv2'), 'link', 'del', 'vkbr200']);
    // The resync is 10 minutes away: only the netlink event explains a repair within the wait.
    await waitFor('hv2: vkbr200 back, with its port', () => converged(200, 1400)('hv2'), 20_000);
    execFileSync('ip', ['-n', nsOf('hv2'), 'link', 'set', 'vkvx100', 'mtu', '1300']);
    await waitFor('hv2: vkvx100 mtu back to 1450', () => link('hv2', 'vkvx100')?.mtu === 1450, 20_000);
    assert.ok(link('hv2', 'vkbr999') && link('hv2', 'vkbr1000'), 'links outside the group are left alone');
  });

  it('deleting a network removes its links everywhere except where a domain still uses the bridge, and there once it is gone', async () => {
    const xml = testXml('netvm', 64, 1, "<devices><interface type='bridge'><source bridge='vkbr200'/></interface></devices>");
    await rig.store.ensurePath(paths.vms);
    await rig.store.create(paths.vm('netvm'));
    await rig.store.create(paths.vmSpec('netvm'), encodeVmSpec({ node: 'hv2', state: 'running', stopMode: 'force' }));
    await rig.store.create(paths.vmXml('netvm'), xml);
    await rig.store.create(paths.nodeVmEntry('hv2', 'netvm'), '', { parents: true });
    await waitFor('netvm runs on hv2', () => rig.runsOn('netvm', 'hv2'), 30_000);

    await rig.store.deleteRecursive(paths.network(200));
    for (const node of ['hv1', 'hv3']) await waitFor(`${node}: vkbr200 and vkvx200 gone`, () => !link(node, 'vkbr200') && !link(node, 'vkvx200'), 20_000);
    assert.ok(link('hv2', 'vkbr200'), 'hv2 keeps the bridge netvm uses');
    await waitFor('BridgeInUse names netvm', async () => (await rig.nodeStatus('hv2'))?.conditions.some((c) => c.type === 'BridgeInUse' && c.message.includes('netvm')) ?? false, 20_000);

    const spec = await rig.spec('netvm');
    const got = (await rig.store.get(paths.vmSpec('netvm')))!;
    await rig.store.set(paths.vmSpec('netvm'), encodeVmSpec({ ...spec, state: 'stopped' }), got.version);
    await waitFor('hv2: vkbr200 gone once netvm stopped', () => !link('hv2', 'vkbr200'), 30_000);
    await waitFor('BridgeInUse cleared', async () => !(await rig.nodeStatus('hv2'))?.conditions.some((c) => c.type === 'BridgeInUse'), 20_000);
  });

  it('a VM on a network not ready on its node stays stopped with a condition naming it, and starts once the network is ready', async () => {
    const xml = testXml('gated', 64, 1, "<devices><interface type='bridge'><source bridge='vkbr400'/></interface></devices>");
    await rig.store.create(paths.vm('gated'));
    await rig.store.create(paths.vmSpec('gated'), encodeVmSpec({ node: 'hv3', state: 'running', stopMode: 'force' }));
    await rig.store.create(paths.vmXml('gated'), xml);
    await rig.store.create(paths.nodeVmEntry('hv3', 'gated'), '', { parents: true });
    await waitFor('gated waits for network 400', async () => (await rig.status('gated'))?.conditions.some((c) => c.type === 'NetworkNotReady' && c.message.includes('network 400')) ?? false, 20_000);
    const waiting = await rig.status('gated');
    assert.equal(waiting?.phase, 'Pending');
    assert.deepEqual(await rig.runningOn('gated'), [], 'not started anywhere');

    await writeNetwork(400, { type: 'managed' });
    await waitFor('gated runs on hv3 once network 400 is ready there', () => rig.runsOn('gated', 'hv3'), 30_000);
    assert.ok(!(await rig.status('gated'))?.conditions.some((c) => c.type === 'NetworkNotReady'), 'the condition is gone');
  });

  it('a bridged network on a kernel without 802.1Q: not ready (VlanUnsupported) on every node, said in a node condition', async (t) => {
    const probe = await probeVlan({ netns: nsOf('hv1') });
    if (probe.supported) {
      t.skip('this kernel has 802.1Q: the next test makes the vLANs instead');
      return;
    }
    await setBridgeDevice('eth0');
    await writeNetwork(30, { type: 'bridged' });
    await waitFor('network 30 not ready anywhere, reason VlanUnsupported', async () => {
      const got = await rig.store.get(paths.networkStatus(30));
      if (!got) return false;
      const nodes = (JSON.parse(got.data.toString('utf8')) as { nodes: Record<string, { ready: boolean; reason?: string }> }).nodes;
      return NODES.every((n) => nodes[n]?.ready === false && nodes[n]?.reason === 'VlanUnsupported');
    }, 20_000);
    for (const node of NODES) {
      assert.ok((await rig.nodeStatus(node))?.conditions.some((c) => c.type === 'VlanUnsupported'), `${node}: condition VlanUnsupported`);
      assert.equal(link(node, 'vkvl30'), undefined);
      assert.equal(link(node, 'vkbr30'), undefined, 'nothing is made for a network that cannot be ready');
    }
    await rig.store.deleteRecursive(paths.network(30));
  });

  it('a bridged network: vLAN vkvl<N> (802.1Q id N) on the bridge device, in vkbr<N>, on every node', async (t) => {
    const probe = await probeVlan({ netns: nsOf('hv1') });
    if (!probe.supported) {
      console.log(`!!! SKIPPING the bridged-network (vLAN) test: this kernel has no 802.1Q support (${probe.message ?? 'probe failed'}); the planner covers the vLAN path with plain data (test/network/planner.test.ts)`);
      t.skip(`no 802.1Q in this kernel: ${probe.message ?? ''}`);
      return;
    }
    await setBridgeDevice('eth0');
    await writeNetwork(30, { type: 'bridged' });
    await waitFor('network 30 ready on every node', async () => (await readyOn(30)).join() === NODES.join(), 30_000);
    for (const node of NODES) {
      const vl = link(node, 'vkvl30')!;
      assert.equal(vl.linkinfo?.info_kind, 'vlan');
      assert.equal(vl.linkinfo?.info_data?.['id'], 30);
      assert.equal(vl.master, 'vkbr30');
      assert.equal(ipv6Disabled(node, 'vkbr30'), '1');
    }
    await rig.store.deleteRecursive(paths.network(30));
  });

  it('vk daemon --dry-run prints each pending link action, and the daemon then performs exactly those', async () => {
    await rig.stopDaemon('hv1');
    await writeNetwork(100, { type: 'managed', mtu: 1420 });
    await writeNetwork(300, { type: 'managed' });
    const config = join(work, 'hv1.yaml');
    writeFileSync(
      config,
      toYaml({ node: 'hv1', zookeeper: { hosts: rig.zk.connectString }, libvirt: { socket: rig.hv('hv1').libvirtd.socketPath, uri: 'test:///default' }, ...daemonExtra('hv1') }),
    );
    const dry = await vk('daemon', '--config', config, '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    const planned = dry.stdout.trimEnd().split('\n');
    assert.ok(planned.some((l) => l.startsWith('hv1 ') && l.includes('vkvx100') && l.includes('1420')), dry.stdout);
    assert.ok(planned.some((l) => l.includes('vkbr300')) && planned.some((l) => l.includes('vkvx300')), dry.stdout);
    assert.ok(!link('hv1', 'vkbr300'), 'the dry run made nothing');

    const from = rig.actions.length;
    await rig.startDaemon('hv1', daemonExtra('hv1'));
    await waitFor('hv1: network 300 made', () => converged(300, 1450)('hv1') && link('hv1', 'vkvx100')?.mtu === 1420, 20_000);
    await rig.daemons.get('hv1')!.manager.get<NetworkController>('network').queue.idle();
    const done = rig.actions.slice(from).filter((l) => l.startsWith('hv1 network '));
    assert.deepEqual(done, planned, 'the daemon carried out exactly the planned link actions');
  });
});
