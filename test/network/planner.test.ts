// The network planner (reconcilers/network/plan.ts) on plain data: invariants P1–P5, the bridged
// (vLAN) path this machine's kernel cannot run, and the ip-batch lines it renders.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LinkObservation, ObservedLink } from '../../drivers/net/types.ts';
import { batchLines, describeLinkAction, planNetworks, sysctlsOf, type LinkAction, type NetworkPlanInput } from '../../reconcilers/network/plan.ts';
import { decodeClusterConfig, decodeNetworkSpec, type NetworkSpecInput } from '../../schemas/index.ts';

const GROUP = 4244;
const ADDR = '198.51.100.1';

function input(networks: Array<[number, NetworkSpecInput]>, observed: LinkObservation = { links: [], ipv6Disabled: {} }, extra: Partial<NetworkPlanInput> = {}): NetworkPlanInput {
  return {
    networks: networks.map(([vni, spec]) => ({ vni, spec: decodeNetworkSpec(spec), generation: 0 })),
    config: decodeClusterConfig({ bridgeDevice: 'eth1' }),
    local: { clusterAddress: ADDR, group: GROUP },
    observed,
    vlanSupported: true,
    bridgesInUse: new Map(),
    ...extra,
  };
}

/** What the links look like after the actions ran (a model of the kernel good enough for the planner). */
function apply(observed: LinkObservation, actions: readonly LinkAction[]): LinkObservation {
  const links = new Map(observed.links.map((l) => [l.name, structuredClone(l)]));
  const ipv6 = { ...observed.ipv6Disabled };
  const base = (name: string, kind: string, mtu: number): ObservedLink => ({ name, kind, group: GROUP, mtu, operstate: 'DOWN', up: false });
  for (const a of actions) {
    switch (a.kind) {
      case 'addBridge':
        links.set(a.name, base(a.name, 'bridge', a.mtu));
        ipv6[a.name] = false;
        break;
      case 'addVxlan':
        links.set(a.name, { ...base(a.name, 'vxlan', a.mtu), vxlan: { id: a.id, local: a.local, dstport: a.dstport, learning: false, ...(a.dev ? { dev: a.dev } : {}) } });
        break;
      case 'addVlan':
        links.set(a.name, { ...base(a.name, 'vlan', a.mtu), vlan: { id: a.id, link: a.link } });
        break;
      case 'setMtu':
        links.get(a.name)!.mtu = a.mtu;
        break;
      case 'setMaster':
        links.get(a.name)!.master = a.master;
        links.get(a.name)!.bridgePort = { learning: true, neighSuppress: false };
        break;
      case 'setPortFlags':
        links.get(a.name)!.bridgePort = { learning: false, neighSuppress: true };
        break;
      case 'setUp':
        links.get(a.name)!.up = true;
        break;
      case 'disableIpv6':
        ipv6[a.name] = true;
        break;
      case 'delete':
        links.delete(a.name);
        for (const l of links.values()) if (l.master === a.name) delete l.master;
        break;
    }
  }
  return { links: [...links.values()], ipv6Disabled: ipv6 };
}

const kinds = (actions: readonly LinkAction[]) => actions.map((a) => `${a.kind} ${a.name}`);

describe('network planner', () => {
  it('a managed network: bridge, VXLAN (id, local, dstport 4789, nolearning) enslaved with learning off and neigh_suppress on, IPv6 off, all up', () => {
    const plan = planNetworks(input([[100, { type: 'managed', mtu: 1450 }]]));
    assert.deepEqual(kinds(plan.actions), [
      'addBridge vkbr100',
      'setUp vkbr100',
      'addVxlan vkvx100',
      'setMaster vkvx100',
      'setPortFlags vkvx100',
      'setUp vkvx100',
      'disableIpv6 vkbr100',
    ]);
    assert.deepEqual(plan.verdicts, [{ vni: 100, ready: true }]);
    assert.deepEqual(batchLines(plan.actions, GROUP).lines, [
      'link add vkbr100 group 4244 mtu 1450 type bridge',
      'link set dev vkbr100 up',
      'link add vkvx100 group 4244 mtu 1450 type vxlan id 100 local 198.51.100.1 dstport 4789 nolearning',
      'link set dev vkvx100 master vkbr100',
      'link set dev vkvx100 type bridge_slave learning off neigh_suppress on',
      'link set dev vkvx100 up',
    ]);
    assert.deepEqual(sysctlsOf(plan.actions), { 'net.ipv6.conf.vkbr100.disable_ipv6': '1' });
    assert.equal(describeLinkAction('hv1', plan.actions[2]!), 'hv1 network 100 add vxlan vkvx100 (id 100, local 198.51.100.1, dstport 4789, mtu 1450)');
  });

  it('batchLines maps every line back to its action (sysctls have no line)', () => {
    const plan = planNetworks(input([[100, { type: 'managed' }]]));
    const { lines, actionOf } = batchLines(plan.actions, GROUP);
    assert.equal(lines.length, plan.actions.length - 1);
    for (const [i, line] of lines.entries()) assert.ok(line.includes(plan.actions[actionOf[i]!]!.name), line);
  });

  it('P2: the observation a pass produces plans nothing (100 networks, managed and bridged)', () => {
    const nets: Array<[number, NetworkSpecInput]> = [];
    for (let v = 1; v <= 100; v++) nets.push([v, v % 2 ? { type: 'managed', mtu: 1400 } : { type: 'bridged', mtu: 1500 }]);
    const device: ObservedLink = { name: 'eth1', kind: 'veth', group: 0, mtu: 9000, operstate: 'UP', up: true };
    const first = planNetworks(input(nets, { links: [device], ipv6Disabled: {} }));
    assert.ok(first.actions.length > 400);
    assert.ok(first.verdicts.every((v) => v.ready));
    const after = apply({ links: [device], ipv6Disabled: {} }, first.actions);
    assert.deepEqual(planNetworks(input(nets, after)).actions, []);
  });

  it('drift: a missing link is made, a wrong MTU set, a port re-enslaved with its flags, a link down brought up', () => {
    const nets: Array<[number, NetworkSpecInput]> = [[100, { type: 'managed', mtu: 1450 }]];
    const good = apply({ links: [], ipv6Disabled: {} }, planNetworks(input(nets)).actions);
    const port = good.links.find((l) => l.name === 'vkvx100')!;
    const drifted: LinkObservation = { links: [...good.links.filter((l) => l.name !== 'vkvx100'), { ...port, mtu: 1300, master: undefined, bridgePort: undefined, up: false }], ipv6Disabled: { vkbr100: false } };
    assert.deepEqual(kinds(planNetworks(input(nets, drifted)).actions), ['setMtu vkvx100', 'setMaster vkvx100', 'setPortFlags vkvx100', 'setUp vkvx100', 'disableIpv6 vkbr100']);
    const noBridge: LinkObservation = { links: good.links.filter((l) => l.name !== 'vkbr100'), ipv6Disabled: {} };
    assert.deepEqual(kinds(planNetworks(input(nets, noBridge)).actions).slice(0, 3), ['delete vkvx100', 'addBridge vkbr100', 'setUp vkbr100'], 'a new bridge gets a new port');
  });

  it('an attribute that cannot change in place (local address, VXLAN id, learning) re-creates the port', () => {
    const nets: Array<[number, NetworkSpecInput]> = [[100, { type: 'managed' }]];
    const good = apply({ links: [], ipv6Disabled: {} }, planNetworks(input(nets)).actions);
    const moved = planNetworks(input(nets, good, { local: { clusterAddress: '198.51.100.9', group: GROUP } }));
    assert.deepEqual(kinds(moved.actions).slice(0, 2), ['delete vkvx100', 'addVxlan vkvx100']);
    assert.match((moved.actions[0] as { why: string }).why, /local 198\.51\.100\.1, not 198\.51\.100\.9/);
  });

  it('P1: a link outside the group is never touched: a wanted name held by it leaves the network not ready', () => {
    const foreign: ObservedLink = { name: 'vkbr100', kind: 'bridge', group: 0, mtu: 1500, operstate: 'UP', up: true };
    const similar: ObservedLink = { name: 'vkbr1000', kind: 'bridge', group: 0, mtu: 1500, operstate: 'UP', up: true };
    const plan = planNetworks(input([[100, { type: 'managed' }]], { links: [foreign, similar], ipv6Disabled: {} }));
    assert.deepEqual(plan.actions, []);
    assert.equal(plan.verdicts[0]?.reason, 'LinkNotOwned');
  });

  it('P3: strays of our group are deleted, ports before bridges; a bridge a local domain uses stays, with a condition', () => {
    const stray = (name: string, kind: string, master?: string): ObservedLink => ({ name, kind, group: GROUP, mtu: 1500, operstate: 'UP', up: true, ...(master ? { master } : {}) });
    const observed: LinkObservation = { links: [stray('vkbr7', 'bridge'), stray('vkvx7', 'vxlan', 'vkbr7'), stray('vkbr8', 'bridge'), stray('vkvx8', 'vxlan', 'vkbr8')], ipv6Disabled: {} };
    const free = planNetworks(input([], observed));
    assert.deepEqual(kinds(free.actions), ['delete vkvx7', 'delete vkvx8', 'delete vkbr7', 'delete vkbr8']);
    const used = planNetworks(input([], observed, { bridgesInUse: new Map([['vkbr8', ['web2', 'web1']]]) }));
    assert.deepEqual(kinds(used.actions), ['delete vkvx7', 'delete vkbr7'], 'vkbr8 and its port stay');
    assert.deepEqual(used.conditions.map((c) => [c.bridge, c.vni, c.vms]), [['vkbr8', 8, ['web1', 'web2']]]);
    assert.match(used.conditions[0]!.message, /web1, web2/);
  });

  it('P4: a network that cannot be made here gets no action and says why; its links are not strays', () => {
    const none = planNetworks(input([[100, { type: 'managed' }]], undefined, { local: { group: GROUP } }));
    assert.deepEqual(none.actions, []);
    assert.equal(none.verdicts[0]?.reason, 'NoClusterAddress');

    const owned: ObservedLink = { name: 'vkvl5', kind: 'vlan', group: GROUP, mtu: 1500, operstate: 'UP', up: true, vlan: { id: 5, link: 'eth1' } };
    const noVlan = planNetworks(input([[5, { type: 'bridged' }]], { links: [owned], ipv6Disabled: {} }, { vlanSupported: false }));
    assert.deepEqual(noVlan.actions, [], 'the existing vLAN is not deleted');
    assert.equal(noVlan.verdicts[0]?.reason, 'VlanUnsupported');

    assert.equal(planNetworks(input([[5, { type: 'bridged' }]])).verdicts[0]?.reason, 'NoBridgeDevice', 'eth1 is not there');
    const small: ObservedLink = { name: 'eth1', kind: '', group: 0, mtu: 1400, operstate: 'UP', up: true };
    assert.equal(planNetworks(input([[5, { type: 'bridged', mtu: 1500 }]], { links: [small], ipv6Disabled: {} })).verdicts[0]?.reason, 'MtuTooLarge');
    const noDevice = planNetworks(input([[5, { type: 'bridged' }]], undefined, { config: decodeClusterConfig({}) }));
    assert.equal(noDevice.verdicts[0]?.reason, 'NoBridgeDevice');
  });

  it('the bridged path: vLAN vkvl<N> with 802.1Q id N on the bridge device, enslaved to vkbr<N> (no VXLAN port flags)', () => {
    const device: ObservedLink = { name: 'eth1', kind: '', group: 0, mtu: 1500, operstate: 'UP', up: true };
    const plan = planNetworks(input([[100, { type: 'bridged' }]], { links: [device], ipv6Disabled: {} }));
    assert.deepEqual(kinds(plan.actions), ['addBridge vkbr100', 'setUp vkbr100', 'addVlan vkvl100', 'setMaster vkvl100', 'setUp vkvl100', 'disableIpv6 vkbr100']);
    assert.equal(batchLines(plan.actions, GROUP).lines[2], 'link add link eth1 name vkvl100 group 4244 mtu 1500 type vlan id 100');
    const other = apply({ links: [device], ipv6Disabled: {} }, plan.actions);
    other.links.find((l) => l.name === 'vkvl100')!.vlan = { id: 101, link: 'eth1' };
    assert.deepEqual(kinds(planNetworks(input([[100, { type: 'bridged' }]], other)).actions).slice(0, 2), ['delete vkvl100', 'addVlan vkvl100']);
  });

  it('a dot in an interface name is a slash in its sysctl key', () => {
    assert.deepEqual(sysctlsOf([{ kind: 'disableIpv6', vni: 1, name: 'vk.br1' }]), { 'net.ipv6.conf.vk/br1.disable_ipv6': '1' });
  });
});
