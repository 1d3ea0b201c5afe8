// The FRR renderer (reconcilers/frr/render.ts): golden files for a coordinator and a
// non-coordinator, idempotence, and invariants R1-R3 with plain data. That the rendered text is
// exactly what FRR prints back (R4) is proved against real FRR by test/frr/converge.test.ts.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { desiredFrr, frrPeers, renderFrrConfig, type FrrRenderInput } from '../../reconcilers/frr/render.ts';
import { decodeClusterConfig, type ClusterConfigInput } from '../../schemas/index.ts';

const GOLDEN = new URL('./golden/', import.meta.url);

const CONFIG: ClusterConfigInput = {
  coordinators: ['hv1', 'hv2'],
  bgp: { asn: 65500 },
  nodes: {
    hv3: { clusterAddress: '198.51.100.3' },
    hv1: { clusterAddress: '198.51.100.1' },
    hv10: { clusterAddress: '198.51.100.10' },
    hv2: { clusterAddress: '198.51.100.2' },
  },
};

function rendered(node: string, config: ClusterConfigInput = CONFIG): string {
  const desired = desiredFrr(decodeClusterConfig(config), node, { hostname: node });
  assert.equal(desired.kind, 'render');
  return desired.kind === 'render' ? desired.text : '';
}

/** Compares with test/frr/golden/<name>; VK_UPDATE_GOLDEN=1 rewrites the file instead. */
function golden(name: string, text: string): void {
  const url = new URL(name, GOLDEN);
  if (process.env.VK_UPDATE_GOLDEN === '1') writeFileSync(url, text);
  assert.equal(text, readFileSync(url, 'utf8'));
}

describe('FRR renderer', () => {
  test('golden: a coordinator is a route reflector peering with every other node', () => {
    golden('coordinator.conf', rendered('hv1'));
  });

  test('golden: a non-coordinator peers with the coordinators only', () => {
    golden('node.conf', rendered('hv3'));
  });

  test('idempotence: rendering twice gives the same bytes, whatever the order of the nodes map (R1)', () => {
    const reordered: ClusterConfigInput = { ...CONFIG, coordinators: ['hv2', 'hv1'], nodes: Object.fromEntries(Object.entries(CONFIG.nodes!).reverse()) };
    for (const node of ['hv1', 'hv2', 'hv3', 'hv10']) {
      assert.equal(rendered(node), rendered(node));
      assert.equal(rendered(node, reordered), rendered(node));
    }
  });

  test('peers are ordered by address, not by name (R1)', () => {
    const peers = frrPeers({ node: 'hv1', coordinators: ['hv1'], nodes: [{ name: 'a', address: '198.51.100.10' }, { name: 'b', address: '198.51.100.9' }, { name: 'hv1', address: '198.51.100.1' }] });
    assert.deepEqual(peers.map((p) => p.address), ['198.51.100.9', '198.51.100.10']);
  });

  test('coordinators peer with each other and every node as reflector clients; others with the coordinators only (R2)', () => {
    const input = { coordinators: ['hv1', 'hv2'], nodes: [1, 2, 3, 4].map((i) => ({ name: `hv${i}`, address: `198.51.100.${i}` })) };
    assert.deepEqual(frrPeers({ ...input, node: 'hv1' }).map((p) => [p.name, p.reflectorClient]), [['hv2', true], ['hv3', true], ['hv4', true]]);
    assert.deepEqual(frrPeers({ ...input, node: 'hv4' }).map((p) => [p.name, p.reflectorClient]), [['hv1', false], ['hv2', false]]);
    assert.match(rendered('hv3'), /^ {2}advertise-all-vni$/m);
    assert.doesNotMatch(rendered('hv3'), /route-reflector-client/);
    assert.match(rendered('hv2'), /^ {2}neighbor fabric route-reflector-client$/m);
  });

  test('no coordinator listed: a full iBGP mesh (R2)', () => {
    const text = rendered('hv3', { ...CONFIG, coordinators: [] });
    for (const peer of ['198.51.100.1', '198.51.100.2', '198.51.100.10']) assert.match(text, new RegExp(`^ neighbor ${peer.replaceAll('.', '\\.')} peer-group fabric$`, 'm'));
    assert.doesNotMatch(text, /route-reflector-client/);
  });

  test('a node never peers with itself; the only coordinator of a one-node cluster has no peers (R3)', () => {
    const text = rendered('hv1', { coordinators: ['hv1'], bgp: { asn: 65500 }, nodes: { hv1: { clusterAddress: '198.51.100.1' } } });
    assert.doesNotMatch(text, /neighbor 198\.51\.100\.1 /);
    assert.doesNotMatch(text, /route-reflector-client/);
  });

  test('timers, ASN and router-id come from the config', () => {
    const text = rendered('hv3', { ...CONFIG, bgp: { asn: 4200000001, keepaliveS: 1, holdS: 3, connectRetryS: 2 } });
    assert.match(text, /^router bgp 4200000001$/m);
    assert.match(text, /^ bgp router-id 198\.51\.100\.3$/m);
    assert.match(text, /^ neighbor fabric timers 1 3$/m);
    assert.match(text, /^ neighbor fabric timers connect 2$/m);
  });

  test('desiredFrr: off without bgp; NotConfigured without an address; the daemon config address as a fallback', () => {
    assert.deepEqual(desiredFrr(decodeClusterConfig({}), 'hv1', { hostname: 'hv1' }), { kind: 'off' });
    const missing = desiredFrr(decodeClusterConfig({ bgp: { asn: 65500 } }), 'hv9', { hostname: 'hv9' });
    assert.equal(missing.kind, 'notConfigured');
    assert.match(missing.kind === 'notConfigured' ? missing.message : '', /nodes\.hv9\.clusterAddress/);
    const fallback = desiredFrr(decodeClusterConfig(CONFIG), 'hv9', { hostname: 'hv9', fallbackAddress: '198.51.100.9' });
    assert.equal(fallback.kind, 'render');
    if (fallback.kind === 'render') {
      assert.match(fallback.text, /^ bgp router-id 198\.51\.100\.9$/m);
      assert.deepEqual(fallback.peers.map((p) => p.name), ['hv1', 'hv2']);
    }
  });

  test('the hostname line is the hostname FRR runs under', () => {
    const input: FrrRenderInput = { node: 'hv1', address: '198.51.100.1', hostname: 'hv1.example.org', bgp: decodeClusterConfig(CONFIG).bgp!, nodes: [], coordinators: [] };
    assert.match(renderFrrConfig(input), /^hostname hv1\.example\.org$/m);
  });
});
