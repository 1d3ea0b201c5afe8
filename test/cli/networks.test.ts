// Issue 14 (CLI side): networks are validated at apply time (VNI range per type, MTU against the
// cluster config in force, unknown fields, deleting a network a VM uses), refused with exit 2, one
// line naming the field and the value, and nothing written; `vk get networks` shows on how many
// nodes each network is ready and `vk describe network` each node's state, from the
// /networks/<vni>/status znode the daemons write (written by hand here). Real vk, real ZooKeeper.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeNetworkStatus } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { errorLines, readJson, snapshot, vkFor, type Run, type Vk } from './helpers.ts';

let server: ZkServer;
let store: ZkStore;
const tmp = mkdtempSync(join(tmpdir(), 'vk-networks-'));

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
});

after(async () => {
  await store?.close();
  await server?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

let fileCount = 0;
/** A manifest file of its own. */
function manifest(text: string): string {
  const file = join(tmp, `m${++fileCount}.yaml`);
  writeFileSync(file, text);
  return file;
}

function network(vni: number | string, spec: string): string {
  return `kind: Network\nmetadata: {name: ${vni}}\nspec: ${spec}\n`;
}

function vm(name: string, bridge: string, state = 'running'): string {
  const xml = `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><interface type='bridge'><source bridge='${bridge}'/></interface></devices></domain>`;
  return `kind: VM\nmetadata: {name: ${name}}\nspec:\n  node: hv1\n  state: ${state}\n  xml: "${xml}"\n`;
}

const NODES = ['hv1', 'hv2', 'hv3'].map((n) => `kind: Node\nmetadata: {name: ${n}}\n`).join('---\n');

/** Exit 2, exactly one line on stderr that names `field` and shows `value`. */
function assertRefused(run: Run, field: string, value: string, what: string): void {
  assert.equal(run.code, 2, `${what}: exit ${run.code}; stderr=${run.stderr} stdout=${run.stdout}`);
  const lines = errorLines(run);
  assert.equal(lines.length, 1, `${what}: one line: ${run.stderr}`);
  assert.ok(lines[0]!.includes(`${field}: `), `${what}: names ${field}: ${lines[0]}`);
  assert.ok(lines[0]!.includes(value), `${what}: shows ${value}: ${lines[0]}`);
}

describe('validation at apply time', () => {
  const root = '/validate';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    // The default cluster config: bridgeMtu 1500, clusterMtu 1500 (managed networks at most 1450).
    const base = manifest([network(100, '{type: bridged, mtu: 1500}'), network(200, '{type: managed, mtu: 1450}'), NODES, vm('web1', 'vkbr100')].join('---\n'));
    const run = await vk('apply', '-f', base);
    assert.equal(run.code, 0, run.stderr);
  });

  // [what, manifest, field, value shown]
  const bad: Array<[string, string, string, string]> = [
    ['bridged VNI 4095', network(4095, '{type: bridged}'), 'metadata.name', 'invalid VNI 4095'],
    ['managed VNI 0', network(0, '{type: managed}'), 'metadata.name', 'invalid VNI 0'],
    ['managed VNI 16777216', network(16777216, '{type: managed}'), 'metadata.name', 'invalid VNI 16777216'],
    ['bridged MTU above bridgeMtu', network(300, '{type: bridged, mtu: 1501}'), 'spec.mtu', 'invalid value 1501'],
    ['managed MTU above clusterMtu - 50', network(300, '{type: managed, mtu: 1451}'), 'spec.mtu', 'invalid value 1451'],
    ['a changed network MTU above the limit', network(200, '{type: managed, mtu: 1500}'), 'spec.mtu', 'invalid value 1500'],
    ['unknown field', network(300, '{type: managed, vlan: 300}'), 'spec.vlan', 'unknown field "vlan"'],
    [
      'MTU against the config applied in the same manifests',
      `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bridgeMtu: 1500, clusterMtu: 1400}\n---\n${network(200, '{type: managed, mtu: 1400}')}`,
      'spec.mtu',
      'invalid value 1400',
    ],
    ['a config that lowers bridgeMtu under network 100', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bridgeMtu: 1400}\n`, 'spec.bridgeMtu', 'invalid value 1400'],
    ['a config that lowers clusterMtu under network 200', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {clusterMtu: 1400}\n`, 'spec.clusterMtu', 'invalid value 1400'],
    ['a coordinator that is not a known node', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {coordinators: [hv1, hv9]}\n`, 'spec.coordinators[1]', '"hv9"'],
    ['a reserved ASN (AS_TRANS)', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bgp: {asn: 23456}}\n`, 'spec.bgp.asn', '23456'],
    ['an ASN beyond 32 bits', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bgp: {asn: 4294967296}}\n`, 'spec.bgp.asn', '4294967296'],
    ['a keepalive longer than a third of the hold time', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bgp: {asn: 65500, keepaliveS: 4, holdS: 9}}\n`, 'spec.bgp.keepaliveS', '4'],
    [
      'with bgp, a coordinator without a cluster address',
      `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {coordinators: [hv1], bgp: {asn: 65500}, nodes: {hv2: {clusterAddress: 192.0.2.2}}}\n`,
      'spec.coordinators[0]',
      '"hv1"',
    ],
    ['a loopback cluster address', `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {nodes: {hv1: {clusterAddress: 127.0.0.1}}}\n`, 'spec.nodes.hv1.clusterAddress', '127.0.0.1'],
    [
      'two nodes with one cluster address',
      `kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {nodes: {hv1: {clusterAddress: 192.0.2.1}, hv2: {clusterAddress: 192.0.2.1}}}\n`,
      'spec.nodes.hv2.clusterAddress',
      '192.0.2.1',
    ],
  ];

  for (const [what, text, field, value] of bad) {
    test(`${what}: apply, diff and plan refuse it (exit 2, one line), nothing written`, async () => {
      const file = manifest(text);
      const before = await snapshot(store, root);
      const [apply, dryRun, diff, plan] = await Promise.all([vk('apply', '-f', file), vk('apply', '--dry-run', '-f', file), vk('diff', '-f', file), vk('plan', '-f', file)]);
      assertRefused(apply, field, value, `apply (${what})`);
      assertRefused(dryRun, field, value, `apply --dry-run (${what})`);
      assertRefused(diff, field, value, `diff (${what})`);
      assertRefused(plan, field, value, `plan (${what})`);
      assert.deepEqual(await snapshot(store, root), before, 'ZooKeeper is unchanged');
    });
  }

  test('a BGP config: private ASNs accepted, a coordinator known only from the config\'s own nodes accepted', async () => {
    for (const asn of [64512, 65534, 4200000000, 4294967294]) {
      const text = `kind: ClusterConfig\nmetadata: {name: cluster}\nspec:\n  coordinators: [hv1, hv7]\n  bgp: {asn: ${asn}}\n  nodes: {hv1: {clusterAddress: 192.0.2.1}, hv7: {clusterAddress: 192.0.2.7}}\n`;
      const run = await vk('apply', '-f', manifest(text));
      assert.equal(run.code, 0, `asn ${asn}: ${run.stderr}`);
      const config = JSON.parse((await store.get(`${root}/config`))!.data.toString('utf8')) as { bgp: { asn: number; holdS: number }; nodes: Record<string, unknown> };
      assert.equal(config.bgp.asn, asn);
      assert.equal(config.bgp.holdS, 9);
      assert.deepEqual(Object.keys(config.nodes).sort(), ['hv1', 'hv7']);
    }
    const reset = await vk('apply', '-f', manifest(`kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {}\n`));
    assert.equal(reset.code, 0, reset.stderr);
  });

  test('the config refusal names the networks it would break', async () => {
    const run = await vk('apply', '-f', manifest(`kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bridgeMtu: 1400}\n`));
    assert.match(run.stderr, /spec\.bridgeMtu: invalid value 1400: would make network 100 \(bridged, mtu 1500\) invalid/);
  });

  // [what, args, field, value]
  const badAdds: Array<[string, string[], string, string]> = [
    ['bridged VNI 4095', ['4095', '--type', 'bridged'], 'vni', 'invalid VNI 4095'],
    ['managed VNI 0', ['0', '--type', 'managed'], 'VNI', 'invalid VNI "0"'],
    ['managed VNI 16777216', ['16777216', '--type', 'managed'], 'VNI', 'invalid VNI "16777216"'],
    ['bridged MTU above bridgeMtu', ['300', '--type', 'bridged', '--mtu', '1600'], 'spec.mtu', 'invalid value 1600'],
    ['managed MTU above clusterMtu - 50', ['300', '--type', 'managed', '--mtu', '1500'], 'spec.mtu', 'invalid value 1500'],
  ];

  for (const [what, args, field, value] of badAdds) {
    test(`vk network add: ${what} is refused (exit 2, one line), nothing written`, async () => {
      const before = await snapshot(store, root);
      assertRefused(await vk('network', 'add', ...args), field, value, `network add ${args.join(' ')}`);
      assert.deepEqual(await snapshot(store, root), before, 'ZooKeeper is unchanged');
    });
  }

  test('vk network add: an unknown option is refused, nothing written', async () => {
    const before = await snapshot(store, root);
    const run = await vk('network', 'add', '300', '--type', 'managed', '--vlan', '5');
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--vlan/);
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('limits are inclusive, and a config raised in the same apply allows more', async () => {
    const added = await vk('network', 'add', '4094', '--type', 'bridged', '--mtu', '1500');
    assert.equal(added.code, 0, added.stderr);
    const managed = await vk('network', 'add', '16777215', '--type', 'managed');
    assert.equal(managed.code, 0, managed.stderr);
    assert.equal((await readJson(store, `${root}/networks/16777215/spec`))!.mtu, 1450, 'a managed network defaults to clusterMtu - 50');
    const jumbo = manifest(`kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bridgeMtu: 9000, clusterMtu: 9000}\n---\n${network(300, '{type: bridged, mtu: 9000}')}---\n${network(301, '{type: managed, mtu: 8950}')}`);
    const run = await vk('apply', '-f', jumbo);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^network\/300 created$/m);
    assert.match(run.stdout, /^network\/301 created$/m);
    // The config now in ZooKeeper is the one in force for vk network add.
    const big = await vk('network', 'add', '302', '--type', 'bridged', '--mtu', '9000');
    assert.equal(big.code, 0, big.stderr);
    const before = await snapshot(store, root);
    assertRefused(await vk('network', 'add', '303', '--type', 'managed', '--mtu', '9000'), 'spec.mtu', 'invalid value 9000', 'managed 9000 under clusterMtu 9000');
    // Lowering the config again would break 300, 301 and 302: refused, naming them.
    const lower = await vk('apply', '-f', manifest(`kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {bridgeMtu: 1500, clusterMtu: 1500}\n`));
    assert.equal(lower.code, 2, lower.stderr);
    assert.match(lower.stderr, /spec\.bridgeMtu: invalid value 1500: would make networks 300 \(bridged, mtu 9000\), 302 \(bridged, mtu 9000\) invalid/);
    assert.match(lower.stderr, /spec\.clusterMtu: invalid value 1500: would make network 301 \(managed, mtu 8950\) invalid/);
    assert.deepEqual(await snapshot(store, root), before);
  });
});

describe('deleting a network a VM uses', () => {
  const root = '/remove';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const base = manifest([network(100, '{type: bridged}'), network(200, '{type: managed}'), NODES, vm('web1', 'vkbr100'), vm('db1', 'vkbr100', 'stopped')].join('---\n'));
    const run = await vk('apply', '-f', base);
    assert.equal(run.code, 0, run.stderr);
  });

  test('is refused naming the VMs, and nothing is removed', async () => {
    const before = await snapshot(store, root);
    const run = await vk('network', 'remove', '100');
    assert.equal(run.code, 2, run.stderr);
    assert.equal(errorLines(run).length, 1, run.stderr);
    assert.match(run.stderr, /^vk: network 100 is in use: vm db1, web1 attach to its bridge vkbr100/);
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('is allowed once the VMs are gone; the status znode goes with the spec', async () => {
    await store.create(`${root}/networks/100/status`, encodeNetworkStatus({ nodes: { hv1: { ready: true, observedGeneration: 0, updatedAt: new Date().toISOString() } } }));
    assert.equal((await vk('vm', 'remove', 'db1')).code, 0);
    const still = await vk('network', 'remove', '100');
    assert.equal(still.code, 2, still.stderr);
    assert.match(still.stderr, /vm web1 attaches to its bridge vkbr100/);
    const removedVm = await vk('vm', 'remove', 'web1', '--force');
    assert.equal(removedVm.code, 0, removedVm.stderr);
    const run = await vk('network', 'remove', '100');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'network/100 removed\n');
    assert.equal(await store.exists(`${root}/networks/100`), null, 'the whole subtree is gone');
    assert.ok(await store.exists(`${root}/networks/200/spec`), 'other networks stay');
  });

  test('removes every znode under the network, whatever the daemons put there', async () => {
    await store.create(`${root}/networks/200/status`, encodeNetworkStatus({ nodes: {} }));
    await store.create(`${root}/networks/200/leases/52:54:00:00:00:01`, '{}', { parents: true });
    const run = await vk('network', 'remove', '200');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await store.exists(`${root}/networks/200`), null);
    const missing = await vk('network', 'remove', '200');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /network 200 not found/);
  });
});

describe('network status views', () => {
  const root = '/status';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const base = manifest([network(100, '{type: bridged, description: front}'), network(200, '{type: managed, description: back}'), NODES].join('---\n'));
    const run = await vk('apply', '-f', base);
    assert.equal(run.code, 0, run.stderr);
  });

  async function putStatus(vni: number, data: string): Promise<void> {
    const path = `${root}/networks/${vni}/status`;
    const existing = await store.get(path);
    if (existing) await store.set(path, data, existing.version);
    else await store.create(path, data);
  }

  test('READY counts nodes ready for the current generation; describe lists every node', async () => {
    const generation = (await store.exists(`${root}/networks/200/spec`))!.version;
    const at = '2024-05-01T10:00:00.000Z';
    await putStatus(
      200,
      encodeNetworkStatus({
        nodes: {
          hv1: { ready: true, observedGeneration: generation, updatedAt: at },
          hv2: { ready: false, reason: 'LinkFailed', message: 'RTNETLINK answers: File exists', observedGeneration: generation, updatedAt: at },
          // Ready, but for an older spec: not counted.
          hv3: { ready: true, observedGeneration: generation - 1, updatedAt: at },
          // Not a node of the cluster (any more): shown by describe, not counted.
          hv9: { ready: true, observedGeneration: generation, updatedAt: at },
        },
      }),
    );
    const [table, wide, json, describe100, describe200] = await Promise.all([
      vk('get', 'networks'),
      vk('get', 'networks', '-o', 'wide'),
      vk('get', 'networks', '-o', 'json'),
      vk('describe', 'network', '100'),
      vk('describe', 'network', '200'),
    ]);
    for (const r of [table, wide, json, describe100, describe200]) assert.equal(r.code, 0, r.stderr);
    assert.match(table.stdout, /^VNI +TYPE +MTU +BRIDGE +READY +LEASES +DESCRIPTION$/m);
    assert.match(table.stdout, /^100 +bridged +1500 +vkbr100 +0\/3 +- +front$/m, 'no status znode: ready nowhere');
    assert.match(table.stdout, /^200 +managed +1450 +vkbr200 +1\/3 +- +back$/m);
    assert.match(wide.stdout, /^200 +managed +1450 +vkbr200 +1\/3 +- +back +- +- +- +-$/m);

    const list = JSON.parse(json.stdout) as Array<{ vni: string; status: { nodes: Record<string, { ready: boolean; reason?: string }> } | null; ready: { ready: number; nodes: number; byNode: Record<string, string> } }>;
    assert.equal(list[0]!.status, null);
    assert.deepEqual(list[0]!.ready, { ready: 0, nodes: 3, byNode: { hv1: 'pending', hv2: 'pending', hv3: 'pending' } });
    assert.equal(list[1]!.status!.nodes.hv2!.reason, 'LinkFailed');
    assert.deepEqual(list[1]!.ready, { ready: 1, nodes: 3, byNode: { hv1: 'ready', hv2: 'notReady', hv3: 'pending', hv9: 'ready' } });

    assert.match(describe100.stdout, /^Ready: +0\/3 nodes$/m);
    for (const node of ['hv1', 'hv2', 'hv3']) assert.match(describe100.stdout, new RegExp(`^ {2}${node} +pending +- +- +- +no report from this node yet$`, 'm'));
    const out = describe200.stdout;
    assert.match(out, /^Ready: +1\/3 nodes$/m);
    assert.match(out, /^ {2}NODE +STATE +REASON +OBSERVED +UPDATED +MESSAGE$/m);
    assert.match(out, new RegExp(`^ {2}hv1 +ready +- +${generation} +${at} +-$`, 'm'));
    assert.match(out, new RegExp(`^ {2}hv2 +not ready +LinkFailed +${generation} +${at} +RTNETLINK answers: File exists$`, 'm'));
    assert.match(out, new RegExp(`^ {2}hv3 +pending +- +${generation - 1} +${at} +reported on generation ${generation - 1}, the spec is at ${generation}$`, 'm'));
    assert.match(out, /^ {2}hv9 +ready \(not a node of the cluster\) /m);
  });

  test('a status znode that cannot be read does not break the views', async () => {
    await putStatus(100, '{"nodes": not json');
    await putStatus(200, JSON.stringify({ nodes: { hv1: { ready: 'yes' } } }));
    const [table, json, describe100] = await Promise.all([vk('get', 'networks'), vk('get', 'networks', '-o', 'json'), vk('describe', 'network', '100')]);
    for (const r of [table, json, describe100]) assert.equal(r.code, 0, r.stderr);
    assert.match(table.stdout, /^100 +bridged +1500 +vkbr100 +\?\/3 +- +front$/m);
    assert.match(table.stdout, /^200 +managed +1450 +vkbr200 +\?\/3 +- +back$/m);
    const list = JSON.parse(json.stdout) as Array<{ status: unknown; statusProblem?: string }>;
    assert.equal(list[0]!.status, null);
    assert.match(list[0]!.statusProblem ?? '', /cannot be parsed/);
    assert.match(describe100.stdout, /^Nodes: +unknown: the status znode cannot be read \(.*cannot be parsed/m);
    assert.match(describe100.stdout, /^Spec:$/m, 'the spec is still shown');
  });

  test('a network whose spec changed is pending on the nodes until they report on the new generation', async () => {
    const generation = (await store.exists(`${root}/networks/100/spec`))!.version;
    await putStatus(100, encodeNetworkStatus({ nodes: { hv1: { ready: true, observedGeneration: generation, updatedAt: '2024-05-01T10:00:00.000Z' } } }));
    assert.match((await vk('get', 'networks', '100')).stdout, /^100 +bridged +1500 +vkbr100 +1\/3 +- +front$/m);
    const changed = await vk('apply', '-f', manifest(network(100, '{type: bridged, description: front, mtu: 1400}')));
    assert.equal(changed.code, 0, changed.stderr);
    assert.match((await vk('get', 'networks', '100')).stdout, /^100 +bridged +1400 +vkbr100 +0\/3 +- +front$/m);
  });
});

describe('the DNS domain of managed networks', () => {
  const root = '/domain';
  let vk: Vk;
  const spec = (domain: string) => `{type: managed, gateway4: 192.0.2.1/24, dhcp4: {start: 192.0.2.100, end: 192.0.2.200}, domain: ${domain}}`;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const run = await vk('apply', '-f', manifest([network(500, spec('tenant.example')), NODES].join('---\n')));
    assert.equal(run.code, 0, run.stderr);
  });

  test('a manifest sets it; get -o yaml shows it and its spec applies back unchanged', async () => {
    assert.equal((await readJson(store, `${root}/networks/500/spec`))!.domain, 'tenant.example');
    const yaml = await vk('get', 'networks', '500', '-o', 'yaml');
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /^ {4}domain: tenant\.example$/m);
    // The spec as vk shows it, as a manifest again: nothing differs.
    const shown = JSON.parse((await vk('get', 'networks', '500', '-o', 'json')).stdout) as Array<{ spec: Record<string, unknown> }>;
    const back = manifest(`kind: Network\nmetadata: {name: 500}\nspec: ${JSON.stringify(shown[0]!.spec)}\n`);
    const diff = await vk('diff', '-f', back);
    assert.equal(diff.code, 0, diff.stdout);
    const apply = await vk('apply', '-f', back);
    assert.equal(apply.stdout, 'network/500 unchanged\n');
  });

  test('diff shows a changed domain; apply writes it', async () => {
    const file = manifest(network(500, spec('other.example')));
    const diff = await vk('diff', '-f', file);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /^-domain: tenant\.example$/m);
    assert.match(diff.stdout, /^\+domain: other\.example$/m);
    assert.equal((await vk('apply', '-f', file)).code, 0);
    assert.equal((await readJson(store, `${root}/networks/500/spec`))!.domain, 'other.example');
  });

  test('vk network add --domain', async () => {
    const run = await vk('network', 'add', '501', '--type', 'managed', '--gateway4', '198.51.100.1/24', '--domain', 'lab.example');
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await readJson(store, `${root}/networks/501/spec`))!.domain, 'lab.example');
  });

  // [what, manifest, field, value shown]
  const bad: Array<[string, string, string, string]> = [
    ['a domain on a bridged network', network(502, '{type: bridged, domain: tenant.example}'), 'spec.domain', "is only allowed on networks of type 'managed'"],
    ['a domain without gateway4', network(502, '{type: managed, domain: tenant.example}'), 'spec.domain', 'needs gateway4'],
    ['a malformed domain', network(502, '{type: managed, gateway4: 192.0.2.1/24, domain: Tenant_Example}'), 'spec.domain', '"Tenant_Example"'],
  ];
  for (const [what, text, field, value] of bad) {
    test(`${what}: refused by apply and diff (exit 2, one line), nothing written`, async () => {
      const file = manifest(text);
      const before = await snapshot(store, root);
      const [apply, diff] = await Promise.all([vk('apply', '-f', file), vk('diff', '-f', file)]);
      assertRefused(apply, field, value, `apply (${what})`);
      assertRefused(diff, field, value, `diff (${what})`);
      assert.deepEqual(await snapshot(store, root), before);
    });
  }
});
