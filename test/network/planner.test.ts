// The network planner (reconcilers/network/plan.ts) with plain data; one optional test hands the
// planned lines to a real `ip -batch` inside a throw-away network namespace.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import type { LinkObservation, ObservedLink } from '../../drivers/net/types.ts';
import {
  batchLines,
  bridgeName,
  describeLinkAction,
  disableIpv6Key,
  planNetworks,
  sysctlsOf,
  vlanName,
  vxlanName,
  type LinkAction,
  type NetworkDesired,
  type NetworkPlanInput,
} from '../../reconcilers/network/plan.ts';
import { decodeClusterConfig, decodeNetworkSpec, type NetworkSpecInput } from '../../schemas/index.ts';

const run = promisify(execFile);
const GROUP = 4244;
const ADDR = '198.51.100.1';

function net(vni: number, spec: Partial<NetworkSpecInput> = {}, generation = 0): NetworkDesired {
  return { vni, spec: decodeNetworkSpec({ type: 'managed', mtu: 1450, ...spec }), generation };
}
const bridged = (vni: number, mtu = 1500): NetworkDesired => net(vni, { type: 'bridged', mtu });

const eth0: ObservedLink = { name: 'eth0', kind: '', group: 0, mtu: 1500, operstate: 'UP', up: true };
const lo: ObservedLink = { name: 'lo', kind: '', group: 0, mtu: 65536, operstate: 'UNKNOWN', up: true };

function input(o: Partial<Omit<NetworkPlanInput, 'config'>> & { bridgeDevice?: string | null } = {}): NetworkPlanInput {
  const bridgeDevice = o.bridgeDevice === null ? undefined : (o.bridgeDevice ?? 'eth0');
  return {
    networks: o.networks ?? [],
    config: decodeClusterConfig(bridgeDevice === undefined ? {} : { bridgeDevice }),
    local: o.local ?? { clusterAddress: ADDR, group: GROUP },
    observed: o.observed ?? { links: [lo, eth0], ipv6Disabled: { lo: false, eth0: false } },
    vlanSupported: o.vlanSupported ?? true,
    bridgesInUse: o.bridgesInUse ?? new Map(),
  };
}

const clone = (o: LinkObservation): LinkObservation => structuredClone(o);

/**
 * What a Linux kernel makes of the actions, as an observation. It refuses (throws) what the kernel
 * or the ownership rule would: touching a link outside `group`, creating a name that exists,
 * enslaving to a missing bridge, flags on a link that is no bridge port.
 */
function apply(observed: LinkObservation, actions: readonly LinkAction[], group = GROUP): LinkObservation {
  const o = clone(observed);
  const find = (name: string): ObservedLink => {
    const link = o.links.find((l) => l.name === name);
    assert.ok(link, `no link ${name}`);
    assert.equal(link.group, group, `an action touches ${name}, outside group ${group}`);
    return link;
  };
  const add = (link: ObservedLink): void => {
    assert.ok(!o.links.some((l) => l.name === link.name), `${link.name} exists already`);
    o.links.push(link);
    o.ipv6Disabled[link.name] = false;
  };
  const base = (name: string, mtu: number) => ({ name, group, mtu, operstate: 'DOWN', up: false });
  for (const a of actions) {
    switch (a.kind) {
      case 'addBridge':
        add({ ...base(a.name, a.mtu), kind: 'bridge' });
        break;
      case 'addVxlan':
        add({ ...base(a.name, a.mtu), kind: 'vxlan', vxlan: { id: a.id, local: a.local, dstport: a.dstport, learning: false, ...(a.dev !== undefined ? { dev: a.dev } : {}) } });
        break;
      case 'addVlan':
        assert.ok(o.links.some((l) => l.name === a.link), `no lower device ${a.link}`);
        add({ ...base(a.name, a.mtu), kind: 'vlan', vlan: { id: a.id, link: a.link } });
        break;
      case 'setMaster': {
        const link = find(a.name);
        assert.equal(find(a.master).kind, 'bridge');
        link.master = a.master;
        link.bridgePort = { learning: true, neighSuppress: false }; // a new port's defaults
        break;
      }
      case 'setBridgePort': {
        const link = find(a.name);
        assert.ok(link.master, `${a.name} is no bridge port`);
        link.bridgePort = { learning: a.learning, neighSuppress: a.neighSuppress };
        break;
      }
      case 'setMtu':
        find(a.name).mtu = a.mtu;
        break;
      case 'setUp':
        find(a.name).up = true;
        break;
      case 'delete':
        find(a.name);
        o.links = o.links.filter((l) => l.name !== a.name);
        delete o.ipv6Disabled[a.name];
        for (const l of o.links) {
          if (l.master === a.name) {
            delete l.master;
            delete l.bridgePort;
          }
        }
        break;
      case 'sysctl':
        find(a.name);
        assert.equal(a.key, disableIpv6Key(a.name));
        o.ipv6Disabled[a.name] = a.value === '1';
        break;
    }
  }
  return o;
}

/** The input's observation after its plan ran. */
function converged(i: NetworkPlanInput): NetworkPlanInput {
  return { ...i, observed: apply(i.observed, planNetworks(i).actions, i.local.group) };
}

const lines = (actions: readonly LinkAction[]): string[] => batchLines(actions, GROUP).lines;
const kinds = (actions: readonly LinkAction[]): string[] => actions.map((a) => `${a.kind} ${a.name}`);
const namesTouched = (actions: readonly LinkAction[]): Set<string> => new Set(actions.map((a) => a.name));

describe('managed networks', () => {
  test('an empty node: bridge, VXLAN, enslave, port flags, up, IPv6 off — in that order, in real batch syntax', () => {
    const plan = planNetworks(input({ networks: [net(100)] }));
    assert.deepEqual(plan.verdicts, [{ vni: 100, ready: true }]);
    assert.deepEqual(plan.conditions, []);
    assert.deepEqual(lines(plan.actions), [
      'link add vkbr100 group 4244 mtu 1450 type bridge',
      'link add vkvx100 group 4244 mtu 1450 type vxlan id 100 local 198.51.100.1 dstport 4789 nolearning',
      'link set dev vkvx100 master vkbr100',
      'link set dev vkvx100 type bridge_slave learning off neigh_suppress on',
      'link set dev vkbr100 up',
      'link set dev vkvx100 up',
    ]);
    assert.deepEqual(sysctlsOf(plan.actions), { 'net.ipv6.conf.vkbr100.disable_ipv6': '1' });
    assert.ok(plan.actions.every((a) => a.vni === 100));
    assert.equal(
      describeLinkAction('hv1', plan.actions[1]!),
      'hv1 network 100 add vxlan vkvx100 (id 100, local 198.51.100.1, dstport 4789, mtu 1450)',
    );
  });

  test('the VNI is the VXLAN id up to 16777215; the names are fixed per VNI', () => {
    const plan = planNetworks(input({ networks: [net(16_777_215)] }));
    assert.equal(plan.verdicts[0]?.ready, true);
    assert.ok(lines(plan.actions).includes('link add vkvx16777215 group 4244 mtu 1450 type vxlan id 16777215 local 198.51.100.1 dstport 4789 nolearning'));
    assert.equal(bridgeName(7), 'vkbr7');
    assert.equal(vxlanName(7), 'vkvx7');
    assert.equal(vlanName(7), 'vkvl7');
  });

  test('with a cluster device: `dev` on the VXLAN; MtuTooLarge above its MTU − 50; NoClusterDevice when absent', () => {
    const eth1: ObservedLink = { name: 'eth1', kind: '', group: 0, mtu: 1500, operstate: 'UP', up: true };
    const observed = { links: [lo, eth0, eth1], ipv6Disabled: {} };
    const local = { clusterAddress: ADDR, clusterDevice: 'eth1', group: GROUP };
    const ok = planNetworks(input({ networks: [net(100, { mtu: 1450 })], local, observed }));
    assert.equal(ok.verdicts[0]?.ready, true);
    assert.ok(lines(ok.actions).includes('link add vkvx100 group 4244 mtu 1450 type vxlan id 100 local 198.51.100.1 dstport 4789 dev eth1 nolearning'));
    assert.equal(describeLinkAction('hv1', ok.actions[1]!), 'hv1 network 100 add vxlan vkvx100 (id 100, local 198.51.100.1, dstport 4789, dev eth1, mtu 1450)');

    const big = planNetworks(input({ networks: [net(100, { mtu: 1451 })], local, observed }));
    assert.deepEqual(big.actions, []);
    assert.equal(big.verdicts[0]?.reason, 'MtuTooLarge');
    assert.match(big.verdicts[0]?.message ?? '', /1451.*1450/);

    const gone = planNetworks(input({ networks: [net(100)], local: { ...local, clusterDevice: 'eth9' }, observed }));
    assert.deepEqual(gone.actions, []);
    assert.equal(gone.verdicts[0]?.reason, 'NoClusterDevice');
  });

  test('NoClusterAddress: no cluster address in the daemon config, nothing planned for the network', () => {
    const plan = planNetworks(input({ networks: [net(100), bridged(5)], local: { group: GROUP } }));
    assert.deepEqual(plan.verdicts.map((v) => [v.vni, v.ready, v.reason]), [
      [5, true, undefined],
      [100, false, 'NoClusterAddress'],
    ]);
    assert.ok(plan.actions.every((a) => a.vni === 5));
    assert.match(plan.verdicts[1]?.message ?? '', /clusterAddress/);
  });
});

describe('bridged networks (vLAN support probed true: the only coverage of this path here)', () => {
  test('an empty node: bridge, vLAN on the bridge device with 802.1Q id N, enslave, up; no VXLAN port flags', () => {
    const plan = planNetworks(input({ networks: [bridged(5)] }));
    assert.deepEqual(plan.verdicts, [{ vni: 5, ready: true }]);
    assert.deepEqual(lines(plan.actions), [
      'link add vkbr5 group 4244 mtu 1500 type bridge',
      'link add link eth0 name vkvl5 group 4244 mtu 1500 type vlan id 5',
      'link set dev vkvl5 master vkbr5',
      'link set dev vkbr5 up',
      'link set dev vkvl5 up',
    ]);
    assert.deepEqual(sysctlsOf(plan.actions), { 'net.ipv6.conf.vkbr5.disable_ipv6': '1' });
    assert.equal(describeLinkAction('hv2', plan.actions[1]!), 'hv2 network 5 add vlan vkvl5 (id 5 on eth0, mtu 1500)');
  });

  test('converged bridged links plan nothing; vLAN id 4094 is the last', () => {
    const i = converged(input({ networks: [bridged(1), bridged(4094, 1400)] }));
    assert.deepEqual(planNetworks(i).actions, []);
    assert.ok(i.observed.links.some((l) => l.name === 'vkvl4094' && l.vlan?.id === 4094 && l.vlan.link === 'eth0' && l.master === 'vkbr4094' && l.mtu === 1400));
  });

  test('VlanUnsupported, NoBridgeDevice (unset, not on the node), MtuTooLarge, InvalidVni: not ready, no actions', () => {
    const cases: Array<[NetworkPlanInput, string, RegExp]> = [
      [input({ networks: [bridged(5)], vlanSupported: false }), 'VlanUnsupported', /802\.1Q/],
      [input({ networks: [bridged(5)], bridgeDevice: null }), 'NoBridgeDevice', /bridgeDevice/],
      [input({ networks: [bridged(5)], bridgeDevice: 'bond0' }), 'NoBridgeDevice', /bond0/],
      [input({ networks: [bridged(5, 9000)] }), 'MtuTooLarge', /9000.*1500.*eth0/],
      [input({ networks: [bridged(4095)] }), 'InvalidVni', /4095/],
      [input({ networks: [net(16_777_216)] }), 'InvalidVni', /16777216/],
    ];
    for (const [i, reason, message] of cases) {
      const plan = planNetworks(i);
      assert.deepEqual(plan.actions, [], reason);
      assert.equal(plan.verdicts.length, 1);
      assert.equal(plan.verdicts[0]?.ready, false);
      assert.equal(plan.verdicts[0]?.reason, reason);
      assert.match(plan.verdicts[0]?.message ?? '', message);
    }
  });

  test('a bridged network whose MTU equals the bridge device MTU is fine', () => {
    assert.equal(planNetworks(input({ networks: [bridged(5, 1500)] })).verdicts[0]?.ready, true);
  });

  test('a blocked network keeps the links it has (they are wanted, not strays) and changes nothing', () => {
    const i = converged(input({ networks: [bridged(5), net(100)] }));
    const plan = planNetworks({ ...i, vlanSupported: false, local: { group: GROUP }, networks: [bridged(5, 1400), net(100, { mtu: 1400 })] });
    assert.deepEqual(plan.actions, []);
    assert.deepEqual(plan.verdicts.map((v) => v.reason), ['VlanUnsupported', 'NoClusterAddress']);
  });
});

describe('convergence', () => {
  test('converged input plans zero actions, for managed and bridged', () => {
    const i = input({ networks: [net(100), net(200, { mtu: 1400 }), bridged(10), bridged(11, 1300)] });
    const first = planNetworks(i);
    assert.ok(first.actions.length > 0);
    const after = converged(i);
    assert.deepEqual(planNetworks(after), { actions: [], verdicts: first.verdicts, conditions: [] });
  });

  test('100 networks: one pass converges; the plan of its result is empty; every created link is in our group', () => {
    const networks = Array.from({ length: 100 }, (_, k) => (k % 4 === 0 ? bridged(k + 1, 1500 - k) : net(1000 + k, { mtu: 1450 - k })));
    const i = input({ networks });
    const plan = planNetworks(i);
    assert.equal(plan.verdicts.filter((v) => v.ready).length, 100);
    const { lines: batch, actionOf } = batchLines(plan.actions, GROUP);
    assert.equal(batch.filter((l) => l.startsWith('link add')).length, 200);
    assert.ok(batch.filter((l) => l.startsWith('link add')).every((l) => l.includes(` group ${GROUP} `)));
    assert.equal(Object.keys(sysctlsOf(plan.actions)).length, 100);
    assert.equal(actionOf.length + 100, plan.actions.length);
    const after = converged(i);
    assert.equal(after.observed.links.filter((l) => l.group === GROUP).length, 200);
    assert.deepEqual(planNetworks(after).actions, []);
    // A second, different desired state converges in one pass too.
    const changed = networks.filter((_, k) => k % 3 !== 0).map((n) => ({ ...n, spec: { ...n.spec, mtu: n.spec.mtu - 10 } }));
    const next = { ...after, networks: changed };
    assert.deepEqual(planNetworks(converged(next)).actions, []);
  });

  test('the same input gives the same plan, whatever the order of networks and links', () => {
    const i = converged(input({ networks: [net(3), net(1), bridged(2)] }));
    const shuffled: NetworkPlanInput = {
      ...i,
      networks: [bridged(2), net(1), net(3), net(4)],
      observed: { ...i.observed, links: [...i.observed.links].reverse() },
    };
    const sorted: NetworkPlanInput = { ...i, networks: [net(1), bridged(2), net(3), net(4)] };
    assert.deepEqual(planNetworks(shuffled), planNetworks(sorted));
  });
});

describe('drift', () => {
  const base = (): NetworkPlanInput => converged(input({ networks: [net(100), bridged(5)] }));
  const edit = (i: NetworkPlanInput, fn: (links: ObservedLink[], o: LinkObservation) => void): NetworkPlanInput => {
    const observed = clone(i.observed);
    fn(observed.links, observed);
    return { ...i, observed };
  };
  const link = (links: ObservedLink[], name: string): ObservedLink => links.find((l) => l.name === name)!;

  test('a bridge deleted by hand comes back: created, port re-enslaved with its flags, up, IPv6 off', () => {
    const i = edit(base(), (links, o) => {
      o.links = links.filter((l) => l.name !== 'vkbr100');
      delete o.ipv6Disabled.vkbr100;
      const port = link(o.links, 'vkvx100');
      delete port.master;
      delete port.bridgePort;
    });
    const plan = planNetworks(i);
    assert.deepEqual(lines(plan.actions), [
      'link add vkbr100 group 4244 mtu 1450 type bridge',
      'link set dev vkvx100 master vkbr100',
      'link set dev vkvx100 type bridge_slave learning off neigh_suppress on',
      'link set dev vkbr100 up',
    ]);
    assert.deepEqual(sysctlsOf(plan.actions), { [disableIpv6Key('vkbr100')]: '1' });
    assert.deepEqual(planNetworks(converged(i)).actions, []);
  });

  test('a port deleted by hand comes back', () => {
    const i = edit(base(), (links, o) => {
      o.links = links.filter((l) => l.name !== 'vkvl5');
    });
    assert.deepEqual(lines(planNetworks(i).actions), [
      'link add link eth0 name vkvl5 group 4244 mtu 1500 type vlan id 5',
      'link set dev vkvl5 master vkbr5',
      'link set dev vkvl5 up',
    ]);
  });

  test('a wrong MTU is set, on the port before the bridge; a spec MTU change does the same', () => {
    const byHand = edit(base(), (links) => {
      link(links, 'vkbr100').mtu = 1500;
    });
    assert.deepEqual(lines(planNetworks(byHand).actions), ['link set dev vkbr100 mtu 1450']);
    const changed = { ...base(), networks: [net(100, { mtu: 1400 }), bridged(5)] };
    const plan = planNetworks(changed);
    assert.deepEqual(lines(plan.actions), ['link set dev vkvx100 mtu 1400', 'link set dev vkbr100 mtu 1400']);
    assert.equal(describeLinkAction('hv1', plan.actions[0]!), 'hv1 network 100 set mtu of vkvx100 to 1400 (was 1450)');
    assert.deepEqual(planNetworks(converged(changed)).actions, []);
  });

  test('a port not enslaved, or on another bridge, is (re-)enslaved and its flags set again', () => {
    const free = edit(base(), (links) => {
      delete link(links, 'vkvx100').master;
      delete link(links, 'vkvx100').bridgePort;
    });
    assert.deepEqual(lines(planNetworks(free).actions), ['link set dev vkvx100 master vkbr100', 'link set dev vkvx100 type bridge_slave learning off neigh_suppress on']);
    const elsewhere = edit(base(), (links) => {
      link(links, 'vkvl5').master = 'vkbr100';
    });
    const plan = planNetworks(elsewhere);
    assert.deepEqual(lines(plan.actions), ['link set dev vkvl5 master vkbr5']);
    assert.equal(describeLinkAction('hv1', plan.actions[0]!), 'hv1 network 5 enslave vkvl5 to vkbr5 (was on vkbr100)');
  });

  test('wrong bridge-port flags are set (VXLAN ports only); a link that is down is set up', () => {
    for (const flags of [{ learning: true, neighSuppress: true }, { learning: false, neighSuppress: false }]) {
      const i = edit(base(), (links) => {
        link(links, 'vkvx100').bridgePort = flags;
        link(links, 'vkvl5').bridgePort = flags;
      });
      assert.deepEqual(lines(planNetworks(i).actions), ['link set dev vkvx100 type bridge_slave learning off neigh_suppress on']);
    }
    const down = edit(base(), (links) => {
      link(links, 'vkbr5').up = false;
      link(links, 'vkvx100').up = false;
    });
    assert.deepEqual(lines(planNetworks(down).actions), ['link set dev vkbr5 up', 'link set dev vkvx100 up']);
  });

  test('IPv6 turned on again on a bridge: the sysctl; no value observed (a kernel without IPv6): nothing', () => {
    const on = edit(base(), (_links, o) => {
      o.ipv6Disabled.vkbr5 = false;
    });
    const plan = planNetworks(on);
    assert.deepEqual(lines(plan.actions), []);
    assert.deepEqual(sysctlsOf(plan.actions), { 'net.ipv6.conf.vkbr5.disable_ipv6': '1' });
    assert.equal(describeLinkAction('hv1', plan.actions[0]!), 'hv1 network 5 disable IPv6 on vkbr5 (net.ipv6.conf.vkbr5.disable_ipv6 = 1)');
    const unknown = edit(base(), (_links, o) => {
      delete o.ipv6Disabled.vkbr5;
    });
    assert.deepEqual(planNetworks(unknown).actions, []);
  });

  test('immutable VXLAN attributes differ (id, local, dstport, learning, dev, kind): delete, then create again', () => {
    const edits: Array<[string, (l: ObservedLink) => void, RegExp]> = [
      ['id', (l) => (l.vxlan!.id = 101), /vxlan id 101, want 100/],
      ['local', (l) => (l.vxlan!.local = '198.51.100.9'), /local 198\.51\.100\.9, want 198\.51\.100\.1/],
      ['dstport', (l) => (l.vxlan!.dstport = 8472), /dstport 8472, want 4789/],
      ['learning', (l) => (l.vxlan!.learning = true), /learning on/],
      ['dev', (l) => (l.vxlan!.dev = 'eth0'), /dev eth0, want none/],
      ['kind', (l) => { l.kind = 'veth'; delete l.vxlan; }, /kind veth, want vxlan/],
    ];
    for (const [what, fn, detail] of edits) {
      const i = edit(base(), (links) => fn(link(links, 'vkvx100')));
      const plan = planNetworks(i);
      assert.deepEqual(
        lines(plan.actions),
        [
          'link del dev vkvx100',
          'link add vkvx100 group 4244 mtu 1450 type vxlan id 100 local 198.51.100.1 dstport 4789 nolearning',
          'link set dev vkvx100 master vkbr100',
          'link set dev vkvx100 type bridge_slave learning off neigh_suppress on',
          'link set dev vkvx100 up',
        ],
        what,
      );
      const del = plan.actions[0]!;
      assert.ok(del.kind === 'delete' && del.why === 'recreate' && del.vni === 100);
      assert.match(describeLinkAction('hv1', del), detail);
      assert.deepEqual(planNetworks(converged(i)).actions, [], what);
    }
  });

  test('the node cluster address changed: every VXLAN is made again with the new local', () => {
    const i = { ...converged(input({ networks: [net(1), net(2)] })), local: { clusterAddress: '198.51.100.7', group: GROUP } };
    const plan = planNetworks(i);
    assert.deepEqual(kinds(plan.actions).slice(0, 4), ['delete vkvx1', 'delete vkvx2', 'addVxlan vkvx1', 'addVxlan vkvx2']);
    assert.deepEqual(planNetworks(converged(i)).actions, []);
  });

  test('immutable vLAN attributes differ (id, link) or a bridge is of another kind: made again', () => {
    const vlanId = edit(base(), (links) => (link(links, 'vkvl5').vlan = { id: 6, link: 'eth0' }));
    assert.deepEqual(lines(planNetworks(vlanId).actions).slice(0, 2), ['link del dev vkvl5', 'link add link eth0 name vkvl5 group 4244 mtu 1500 type vlan id 5']);
    const vlanLink = edit(base(), (links) => (link(links, 'vkvl5').vlan = { id: 5, link: 'eth1' }));
    assert.match(describeLinkAction('hv1', planNetworks(vlanLink).actions[0]!), /vlan link eth1, want eth0/);
    const notBridge = edit(base(), (links, o) => {
      link(links, 'vkbr5').kind = 'vxlan';
      delete link(links, 'vkvl5').master;
      delete o.ipv6Disabled.vkbr5;
    });
    const plan = planNetworks(notBridge);
    assert.deepEqual(lines(plan.actions), ['link del dev vkbr5', 'link add vkbr5 group 4244 mtu 1500 type bridge', 'link set dev vkvl5 master vkbr5', 'link set dev vkbr5 up']);
    assert.deepEqual(sysctlsOf(plan.actions), { 'net.ipv6.conf.vkbr5.disable_ipv6': '1' });
    assert.deepEqual(planNetworks(converged(notBridge)).actions, []);
  });

  test('a network changing type: the old port goes first, the bridge stays, the new port is made', () => {
    const i = { ...converged(input({ networks: [net(100)] })), networks: [bridged(100)] };
    const plan = planNetworks(i);
    assert.deepEqual(lines(plan.actions), [
      'link del dev vkvx100',
      'link add link eth0 name vkvl100 group 4244 mtu 1500 type vlan id 100',
      'link set dev vkvl100 master vkbr100',
      'link set dev vkbr100 mtu 1500',
      'link set dev vkvl100 up',
    ]);
    assert.equal(plan.actions[0]!.vni, undefined);
    assert.deepEqual(planNetworks(converged(i)).actions, []);
  });
});

describe('ownership', () => {
  test('a foreign link with a wanted name is never touched: LinkNotOwned, nothing planned for that network', () => {
    const foreignBridge: ObservedLink = { name: 'vkbr100', kind: 'bridge', group: 0, mtu: 1500, operstate: 'UP', up: true };
    const foreignPort: ObservedLink = { name: 'vkvl5', kind: 'vlan', group: 7, mtu: 1500, operstate: 'DOWN', up: false, vlan: { id: 9, link: 'eth0' } };
    const i = input({ networks: [net(100), bridged(5), net(200)], observed: { links: [lo, eth0, foreignBridge, foreignPort], ipv6Disabled: { vkbr100: false } } });
    const plan = planNetworks(i);
    assert.deepEqual(plan.verdicts.map((v) => [v.vni, v.reason]), [
      [5, 'LinkNotOwned'],
      [100, 'LinkNotOwned'],
      [200, undefined],
    ]);
    assert.match(plan.verdicts[1]?.message ?? '', /vkbr100 \(group 0\).*group 4244/);
    assert.match(plan.verdicts[0]?.message ?? '', /vkvl5 \(group 7\)/);
    assert.ok(plan.actions.every((a) => a.vni === 200));
    const touched = namesTouched(plan.actions);
    assert.ok(!touched.has('vkbr100') && !touched.has('vkvl5') && !touched.has('vkvx100') && !touched.has('vkbr5'));
    // apply() throws on any action on a link outside the group.
    assert.deepEqual(planNetworks(converged(i)).actions, []);
  });

  test('foreign links with similar names, or enslaved to our bridge, are left alone; the network is ready', () => {
    const similar: ObservedLink[] = [
      { name: 'vkbr1000', kind: 'bridge', group: 0, mtu: 1500, operstate: 'UP', up: true },
      { name: 'vkvx1000', kind: 'vxlan', group: 0, mtu: 1450, operstate: 'UP', up: true, master: 'vkbr1000', vxlan: { id: 1000, dstport: 4789, learning: true } },
      { name: 'vkvx100x', kind: 'vxlan', group: 1, mtu: 1450, operstate: 'DOWN', up: false, vxlan: { id: 5, dstport: 4789, learning: true } },
      { name: 'vkbr7', kind: 'bridge', group: 4243, mtu: 1500, operstate: 'UP', up: true },
    ];
    const i = input({ networks: [net(100)], observed: { links: [lo, eth0, ...similar], ipv6Disabled: {} } });
    const plan = planNetworks(i);
    assert.deepEqual(plan.verdicts, [{ vni: 100, ready: true }]);
    const touched = namesTouched(plan.actions);
    for (const l of similar) assert.ok(!touched.has(l.name), l.name);
    // A VM's tap (group 0) on our bridge stays on it.
    const after = converged(i);
    after.observed.links.push({ name: 'vnet0', kind: 'tun', group: 0, mtu: 1450, operstate: 'UP', up: true, master: 'vkbr100', bridgePort: { learning: true, neighSuppress: false } });
    assert.deepEqual(planNetworks(after).actions, []);
  });

  test('strays of our group are deleted, ports first, bridges last, with no VNI', () => {
    const i = converged(input({ networks: [net(7), net(8), net(100), bridged(9)] }));
    i.observed.links.push({ name: 'junk0', kind: 'veth', group: GROUP, mtu: 1500, operstate: 'DOWN', up: false });
    const next = { ...i, networks: [net(100), net(200)] };
    const plan = planNetworks(next);
    assert.deepEqual(lines(plan.actions), [
      'link del dev junk0',
      'link del dev vkvl9',
      'link del dev vkvx7',
      'link del dev vkvx8',
      'link add vkbr200 group 4244 mtu 1450 type bridge',
      'link add vkvx200 group 4244 mtu 1450 type vxlan id 200 local 198.51.100.1 dstport 4789 nolearning',
      'link set dev vkvx200 master vkbr200',
      'link set dev vkvx200 type bridge_slave learning off neigh_suppress on',
      'link set dev vkbr200 up',
      'link set dev vkvx200 up',
      'link del dev vkbr7',
      'link del dev vkbr8',
      'link del dev vkbr9',
    ]);
    const strays = plan.actions.filter((a) => a.kind === 'delete');
    assert.ok(strays.every((a) => a.vni === undefined));
    assert.equal(describeLinkAction('hv1', strays[2]!), 'hv1 delete vxlan vkvx7 (in our group, no network wants it)');
    const after = converged(next);
    assert.deepEqual(after.observed.links.filter((l) => l.group === GROUP).map((l) => l.name).sort(), ['vkbr100', 'vkbr200', 'vkvx100', 'vkvx200']);
    assert.deepEqual(planNetworks(after).actions, []);
  });

  test('a node whose group differs owns nothing of ours', () => {
    const i = converged(input({ networks: [net(7)] }));
    const plan = planNetworks({ ...i, networks: [], local: { clusterAddress: ADDR, group: 99 } });
    assert.deepEqual(plan.actions, []);
  });
});

describe('BridgeInUse', () => {
  const leftover = (): NetworkPlanInput => ({ ...converged(input({ networks: [net(7), net(100)] })), networks: [net(100)] });

  test('a stray bridge a local domain uses stays, with its port, and a condition names the VMs', () => {
    const i = { ...leftover(), bridgesInUse: new Map([['vkbr7', ['web2', 'web1']], ['vkbr100', ['db1']]]) };
    const plan = planNetworks(i);
    assert.deepEqual(plan.actions, []);
    assert.deepEqual(plan.conditions, [
      { type: 'BridgeInUse', vni: 7, bridge: 'vkbr7', vms: ['web1', 'web2'], message: 'bridge vkbr7 is kept: no network wants it, but local domains web1, web2 use it' },
    ]);
    assert.deepEqual(plan.verdicts, [{ vni: 100, ready: true }]);
  });

  test('a kept bridge keeps its own unenslaved port; other strays still go', () => {
    const i = leftover();
    delete i.observed.links.find((l) => l.name === 'vkvx7')!.master;
    i.observed.links.push({ name: 'vkbr8', kind: 'bridge', group: GROUP, mtu: 1500, operstate: 'DOWN', up: false });
    const plan = planNetworks({ ...i, bridgesInUse: new Map([['vkbr7', ['web1']], ['vkbr8', []]]) });
    assert.deepEqual(lines(plan.actions), ['link del dev vkbr8']);
    assert.deepEqual(plan.conditions.map((c) => [c.bridge, c.vms]), [['vkbr7', ['web1']]]);
  });

  test('once free, the bridge goes: port first, bridge last, and no condition', () => {
    const plan = planNetworks({ ...leftover(), bridgesInUse: new Map() });
    assert.deepEqual(lines(plan.actions), ['link del dev vkvx7', 'link del dev vkbr7']);
    assert.deepEqual(plan.conditions, []);
  });
});

describe('batchLines and sysctlsOf', () => {
  test('sysctls are no batch line; actionOf maps each line to its action', () => {
    const actions: LinkAction[] = [
      { kind: 'delete', vni: undefined, name: 'vkvx7', linkKind: 'vxlan', why: 'stray' },
      { kind: 'addBridge', vni: 1, name: 'vkbr1', mtu: 1500 },
      { kind: 'sysctl', vni: 1, name: 'vkbr1', key: disableIpv6Key('vkbr1'), value: '1' },
      { kind: 'setUp', vni: 1, name: 'vkbr1' },
      { kind: 'sysctl', vni: 2, name: 'br.10', key: disableIpv6Key('br.10'), value: '1' },
      { kind: 'setMtu', vni: 2, name: 'vkbr2', mtu: 9000 },
    ];
    assert.deepEqual(batchLines(actions, 17), {
      lines: ['link del dev vkvx7', 'link add vkbr1 group 17 mtu 1500 type bridge', 'link set dev vkbr1 up', 'link set dev vkbr2 mtu 9000'],
      actionOf: [0, 1, 3, 5],
    });
    assert.deepEqual(sysctlsOf(actions), { 'net.ipv6.conf.vkbr1.disable_ipv6': '1', 'net.ipv6.conf.br/10.disable_ipv6': '1' });
    assert.deepEqual(batchLines([], GROUP), { lines: [], actionOf: [] });
    assert.deepEqual(sysctlsOf([]), {});
  });

  test('every action describes itself on one line', () => {
    const i = input({ networks: [net(100), bridged(5)] });
    for (const a of planNetworks(i).actions) {
      const line = describeLinkAction('hv1', a);
      assert.ok(line.startsWith(`hv1 network ${a.vni} `) && !line.includes('\n'), line);
    }
  });
});

// Optional proof of the syntax: the planned lines through a real `ip -batch` in a namespace made here.
async function canUseNetns(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root for ip netns';
  try {
    await run('ip', ['-V']);
  } catch {
    return 'no iproute2';
  }
  return undefined;
}

interface IpLink {
  ifname: string;
  mtu: number;
  group: string;
  master?: string;
  operstate: string;
  flags: string[];
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; local?: string; port?: number; learning?: boolean; link?: string; protocol?: string };
    info_slave_data?: { learning?: boolean; neigh_suppress?: boolean };
  };
}

/** Just enough of what drivers/net will do: `ip -j -d link` and the sysctls, as a LinkObservation. */
async function observe(ns: string): Promise<LinkObservation> {
  const { stdout } = await run('ip', ['-n', ns, '-j', '-d', 'link', 'show']);
  const raw = JSON.parse(stdout) as IpLink[];
  const links: ObservedLink[] = [];
  const ipv6Disabled: Record<string, boolean> = {};
  for (const l of raw) {
    const info = l.linkinfo;
    const d = info?.info_data;
    const link: ObservedLink = {
      name: l.ifname,
      kind: info?.info_kind ?? '',
      group: l.group === 'default' ? 0 : Number(l.group),
      mtu: l.mtu,
      operstate: l.operstate,
      up: l.flags.includes('UP'),
      ...(l.master !== undefined ? { master: l.master } : {}),
    };
    if (link.kind === 'vxlan' && d) link.vxlan = { id: d.id!, dstport: d.port!, learning: d.learning!, ...(d.local ? { local: d.local } : {}), ...(d.link ? { dev: d.link } : {}) };
    if (link.kind === 'vlan' && d) link.vlan = { id: d.id!, ...(d.link ? { link: d.link } : {}) };
    const s = info?.info_slave_data;
    if (s && s.learning !== undefined) link.bridgePort = { learning: s.learning, neighSuppress: s.neigh_suppress ?? false };
    links.push(link);
    try {
      const { stdout: v } = await run('ip', ['netns', 'exec', ns, 'sysctl', '-n', disableIpv6Key(l.ifname)]);
      ipv6Disabled[l.ifname] = v.trim() === '1';
    } catch {
      // no IPv6 for it
    }
  }
  return { links, ipv6Disabled };
}

async function pass(ns: string, dir: string, i: NetworkPlanInput): Promise<{ lines: string[]; sysctls: Record<string, string> }> {
  const plan = planNetworks(i);
  const { lines: batch } = batchLines(plan.actions, i.local.group);
  const file = join(dir, 'batch');
  await writeFile(file, batch.join('\n') + '\n');
  if (batch.length > 0) await run('ip', ['-n', ns, '-batch', file]); // no -force: any refused line fails the test
  const sysctls = sysctlsOf(plan.actions);
  for (const [key, value] of Object.entries(sysctls)) await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
  return { lines: batch, sysctls };
}

describe('real ip -batch (optional)', () => {
  test('the lines of managed networks are accepted by iproute2 here, and the result plans nothing', async (t) => {
    const why = await canUseNetns();
    if (why) {
      t.skip(why);
      return;
    }
    const ns = `vkplan-${randomBytes(4).toString('hex')}`;
    const dir = await mkdtemp(join(tmpdir(), 'vkplan-'));
    await run('ip', ['netns', 'add', ns]);
    try {
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // Someone else's links with our names and similar ones, outside our group.
      await run('ip', ['-n', ns, 'link', 'add', 'vkbr300', 'type', 'bridge']);
      await run('ip', ['-n', ns, 'link', 'add', 'vkvx1000', 'group', '7', 'type', 'vxlan', 'id', '1000', 'dstport', '4789']);
      // The node's VXLANs go on lo here (a stand-in for the cluster device).
      const local = { clusterAddress: ADDR, clusterDevice: 'lo', group: GROUP };
      let i = input({ networks: [net(100), net(200, { mtu: 1400 }), net(300), net(16_777_215)], local, observed: await observe(ns) });
      const first = await pass(ns, dir, i);
      assert.ok(first.lines.length > 0);
      i = { ...i, observed: await observe(ns) };
      const second = planNetworks(i);
      assert.deepEqual(second.actions, [], JSON.stringify(second.actions));
      assert.deepEqual(second.verdicts.map((v) => [v.vni, v.reason]), [
        [100, undefined],
        [200, undefined],
        [300, 'LinkNotOwned'],
        [16_777_215, undefined],
      ]);
      const vx = i.observed.links.find((l) => l.name === 'vkvx200')!;
      assert.deepEqual(
        { group: vx.group, mtu: vx.mtu, master: vx.master, vxlan: vx.vxlan, bridgePort: vx.bridgePort, up: vx.up },
        { group: GROUP, mtu: 1400, master: 'vkbr200', vxlan: { id: 200, local: ADDR, dstport: 4789, learning: false, dev: 'lo' }, bridgePort: { learning: false, neighSuppress: true }, up: true },
      );
      assert.equal(i.observed.ipv6Disabled.vkbr200, true);
      assert.equal(i.observed.links.find((l) => l.name === 'vkbr300')?.group, 0);

      // Drift by hand, an MTU change, a removed network and a stray: one pass again, then nothing.
      await run('ip', ['-n', ns, 'link', 'del', 'vkbr100']);
      await run('ip', ['-n', ns, 'link', 'set', 'dev', 'vkvx16777215', 'nomaster']);
      await run('ip', ['-n', ns, 'link', 'add', 'vkvx9', 'group', String(GROUP), 'type', 'vxlan', 'id', '9', 'dstport', '4789']);
      i = { ...i, networks: [net(100, { mtu: 1300 }), net(16_777_215)], local: { ...local, clusterAddress: '198.51.100.2' }, observed: await observe(ns) };
      const third = await pass(ns, dir, i);
      assert.ok(third.lines.includes('link del dev vkbr200') && third.lines.includes('link del dev vkvx9'));
      i = { ...i, observed: await observe(ns) };
      assert.deepEqual(planNetworks(i).actions, []);
      const ours = i.observed.links.filter((l) => l.group === GROUP).map((l) => l.name).sort();
      assert.deepEqual(ours, ['vkbr100', 'vkbr16777215', 'vkvx100', 'vkvx16777215']);
      assert.equal(i.observed.links.find((l) => l.name === 'vkvx100')?.vxlan?.local, '198.51.100.2');
      assert.ok(i.observed.links.some((l) => l.name === 'vkvx1000' && l.group === 7));
    } finally {
      await run('ip', ['netns', 'del', ns]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
