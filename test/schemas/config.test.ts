import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeClusterConfig, defaultClusterConfig, encodeClusterConfig } from '../../schemas/index.ts';
import { at, expectInvalid, fieldTests } from './helpers.ts';

describe('ClusterConfig fields', () => {
  fieldTests('ClusterConfig', (v) => decodeClusterConfig(v), {}, 'config.', [
    {
      field: 'coordinators',
      good: [[], ['hv1', 'hv2', 'hv3']],
      bad: [at(['hv 1'], 'coordinators[0]', 'hv 1'), at(['hv1', 'hv1'], 'coordinators[1]', 'hv1'), 'hv1'],
    },
    { field: 'defaultNodeSelector', good: ['mem', 'memprov', 'load', 'vcpus', 'vms'], bad: ['default', 'random'] },
    { field: 'keepaliveIntervalMs', good: [1000, 5000], bad: [0, -5, 2.5] },
    { field: 'keepaliveDeadAfterMs', good: [10_000, 60_000], bad: [0, 5000, 4999, '30s'] },
    { field: 'fence.graceMs', good: [0, 5000], bad: [-1, 'soon'] },
    { field: 'maintenance', good: [true, false], bad: ['yes', 1] },
    { field: 'fence.retryMaxMs', good: [2000, 600_000], bad: [50, '1m'] },
    { field: 'migration.maxOutgoing', good: [1, 8], bad: [0, 1.5] },
    { field: 'migration.maxIncoming', good: [1, 4], bad: [-1, '2'] },
    { field: 'migration.defaultMethod', good: ['live', 'shutdown'], bad: ['default', 'cold'] },
    { field: 'migration.phaseTimeoutMs', good: [1, 30_000], bad: [0, -30_000] },
    { field: 'migration.maxDowntimeMs', good: [1, 300], bad: [0, 300.5] },
    {
      field: 'bridgeDevice',
      good: ['eth0', 'bond0.100', 'enp1s0f1np1', 'x'.repeat(15)],
      bad: ['a/b', 'eth 0', 'eth0:1', 'x'.repeat(16), '', '..', 'eth\u00010'],
    },
    { field: 'consoleLogLines', good: [1, 1000, 100_000], bad: [0, 100_001, 10.5] },
    {
      field: 'nodes.hv1.clusterAddress',
      good: ['192.0.2.1', '10.0.0.1', '223.255.255.254'],
      bad: ['127.0.0.1', '0.0.0.0', '0.1.2.3', '224.0.0.1', '239.1.1.1', '255.255.255.255', '169.254.1.1', '10.0.0', '10.0.0.256', '2001:db8::1', '192.0.2.1/24', '', 3232235777],
    },
  ]);
});

describe('ClusterConfig bgp fields', () => {
  // asn is required once bgp is given; the timers default to keepalive 3 s, hold 9 s.
  fieldTests('ClusterConfig', (v) => decodeClusterConfig(v), { bgp: { asn: 65500 } }, 'config.', [
    {
      field: 'bgp.asn',
      good: [65500, 64512, 65534, 4200000000, 4294967294, 1, 65551, 131072],
      bad: [0, 23456, 65535, 65552, 70000, 131071, 4294967295, 4294967296, 1.5, -1, '65500', null],
    },
    { field: 'bgp.keepaliveS', good: [1, 3], bad: [0, 4, 1.5, 21846] },
    // A hold time under three keepalives is reported on keepaliveS, which has to shrink with it.
    { field: 'bgp.holdS', good: [9, 10, 65535], bad: [0, 2, at(8, 'bgp.keepaliveS', 3), 65536, 9.5] },
    { field: 'bgp.connectRetryS', good: [1, 5, 120, 65535], bad: [0, 65536, 2.5, '5s'] },
  ]);
});


describe('ClusterConfig', () => {
  test('an empty config is all defaults', () => {
    assert.deepEqual(defaultClusterConfig(), {
      coordinators: [],
      defaultNodeSelector: 'mem',
      keepaliveIntervalMs: 5000,
      keepaliveDeadAfterMs: 30_000,
      fence: { graceMs: 5000, retryBaseMs: 2000, retryMaxMs: 60_000, recover: true },
      maintenance: false,
      migration: { maxOutgoing: 2, maxIncoming: 2, defaultMethod: 'live', phaseTimeoutMs: 30_000, maxDowntimeMs: 300 },
      consoleLogLines: 1000,
      bridgeMtu: 1500,
      clusterMtu: 1500,
    });
  });

  test('a v1 config with fence.policy/command still decodes (ignored: the levels are per node now)', () => {
    const c = decodeClusterConfig({ fence: { policy: 'command', command: 'fence-hv' } });
    assert.equal(c.fence.graceMs, 5000);
    expectInvalid(() => decodeClusterConfig({ fence: { policy: 'stonith' } }), 'config.fence.policy');
  });

  test('fence retryMaxMs below retryBaseMs is refused, naming the field', () => {
    expectInvalid(() => decodeClusterConfig({ fence: { retryBaseMs: 5000, retryMaxMs: 1000 } }), 'config.fence.retryMaxMs');
    assert.equal(decodeClusterConfig({ fence: { graceMs: 0 } }).fence.graceMs, 0);
  });

  test('keepaliveDeadAfterMs must exceed keepaliveIntervalMs', () => {
    const error = expectInvalid(
      () => decodeClusterConfig({ keepaliveIntervalMs: 10_000, keepaliveDeadAfterMs: 10_000 }),
      'config.keepaliveDeadAfterMs',
      10_000,
    );
    assert.ok(error.message.includes('keepaliveIntervalMs'), error.message);
  });

  test('bgp: asn is required, timers default to 3/9/5, unknown fields are named', () => {
    expectInvalid(() => decodeClusterConfig({ bgp: {} }), 'config.bgp.asn');
    assert.deepEqual(decodeClusterConfig({ bgp: { asn: 65500 } }).bgp, { asn: 65500, keepaliveS: 3, holdS: 9, connectRetryS: 5 });
    expectInvalid(() => decodeClusterConfig({ bgp: { asn: 65500, routerId: '192.0.2.1' } }), 'config.bgp.routerId');
    expectInvalid(() => decodeClusterConfig({ bgp: 65500 }), 'config.bgp', 65500);
  });

  test('bgp: the reserved ASNs are refused saying why, with a private range to use instead', () => {
    for (const [asn, why] of [
      [23456, 'AS_TRANS'],
      [65535, 'RFC 7300'],
      [4294967295, 'RFC 7300'],
      [100_000, '65552-131071'],
    ] as const) {
      const error = expectInvalid(() => decodeClusterConfig({ bgp: { asn } }), 'config.bgp.asn', asn);
      assert.ok(error.message.includes(why), error.message);
      assert.ok(error.message.includes('64512-65534'), error.message);
    }
  });

  test('bgp: keepaliveS at most a third of holdS, the rule naming holdS', () => {
    assert.equal(decodeClusterConfig({ bgp: { asn: 65500, keepaliveS: 10, holdS: 30 } }).bgp?.holdS, 30);
    const error = expectInvalid(() => decodeClusterConfig({ bgp: { asn: 65500, keepaliveS: 10, holdS: 29 } }), 'config.bgp.keepaliveS', 10);
    assert.ok(error.message.includes('holdS (29)'), error.message);
    expectInvalid(() => decodeClusterConfig({ bgp: { asn: 65500, keepaliveS: 4 } }), 'config.bgp.keepaliveS', 4);
  });

  test('nodes: a map of node name to clusterAddress; names are node names, nothing else is taken', () => {
    const nodes = { hv1: { clusterAddress: '192.0.2.1' }, hv2: { clusterAddress: '192.0.2.2' } };
    assert.deepEqual(decodeClusterConfig({ nodes }).nodes, nodes);
    assert.deepEqual(decodeClusterConfig({ nodes: {} }).nodes, {});
    expectInvalid(() => decodeClusterConfig({ nodes: { hv1: {} } }), 'config.nodes.hv1.clusterAddress');
    expectInvalid(() => decodeClusterConfig({ nodes: { hv1: { clusterAddress: '192.0.2.1', asn: 65500 } } }), 'config.nodes.hv1.asn');
    expectInvalid(() => decodeClusterConfig({ nodes: ['hv1'] }), 'config.nodes', ['hv1']);
    const badName = expectInvalid(() => decodeClusterConfig({ nodes: { Hv1: { clusterAddress: '192.0.2.1' } } }), 'config.nodes.Hv1', 'Hv1');
    assert.match(badName.message, /invalid name "Hv1": /);
  });

  test('nodes: a cluster address held twice is refused on the second node, naming the first', () => {
    const error = expectInvalid(
      () => decodeClusterConfig({ nodes: { hv1: { clusterAddress: '192.0.2.1' }, hv2: { clusterAddress: '192.0.2.2' }, hv3: { clusterAddress: '192.0.2.1' } } }),
      'config.nodes.hv3.clusterAddress',
      '192.0.2.1',
    );
    assert.ok(error.message.includes('already the cluster address of hv1'), error.message);
  });

  test('with bgp every coordinator must be in nodes (it is a route reflector); without bgp it need not', () => {
    const nodes = { hv1: { clusterAddress: '192.0.2.1' }, hv2: { clusterAddress: '192.0.2.2' } };
    const error = expectInvalid(
      () => decodeClusterConfig({ bgp: { asn: 65500 }, coordinators: ['hv1', 'hv3', 'hv2'], nodes }),
      'config.coordinators[1]',
      'hv3',
    );
    assert.ok(error.message.includes('clusterAddress'), error.message);
    expectInvalid(() => decodeClusterConfig({ bgp: { asn: 65500 }, coordinators: ['hv1'] }), 'config.coordinators[0]', 'hv1');
    const config = decodeClusterConfig({ bgp: { asn: 65500 }, coordinators: ['hv1', 'hv2'], nodes: { ...nodes, hv4: { clusterAddress: '192.0.2.4' } } });
    assert.deepEqual(config.coordinators, ['hv1', 'hv2']);
    assert.deepEqual(decodeClusterConfig({ coordinators: ['hv1', 'hv3'], nodes }).coordinators, ['hv1', 'hv3']);
    assert.deepEqual(decodeClusterConfig({ bgp: { asn: 65500 } }).coordinators, []);
  });

  test('unknown fields are named, at any depth', () => {
    expectInvalid(() => decodeClusterConfig({ bridge_device: 'eth0' }), 'config.bridge_device');
    expectInvalid(() => decodeClusterConfig({ migration: { maxParallel: 2 } }), 'config.migration.maxParallel');
    expectInvalid(() => decodeClusterConfig({ fence: { ipmiUser: 'x' } }), 'config.fence.ipmiUser');
  });

  test('encoding is stable across key order and omitted defaults', () => {
    const a = encodeClusterConfig({ coordinators: ['hv1'], migration: { maxOutgoing: 4 } });
    const b = encodeClusterConfig({
      consoleLogLines: 1000,
      migration: { maxDowntimeMs: 300, maxOutgoing: 4 },
      coordinators: ['hv1'],
      fence: {},
    });
    assert.equal(a, b);
  });

  test('encoding with bgp and nodes is stable too, and round-trips', () => {
    const a = encodeClusterConfig({
      coordinators: ['hv1'],
      bgp: { asn: 4200000000 },
      nodes: { hv1: { clusterAddress: '192.0.2.1' }, hv2: { clusterAddress: '192.0.2.2' } },
    });
    const b = encodeClusterConfig({
      nodes: { hv1: { clusterAddress: '192.0.2.1' }, hv2: { clusterAddress: '192.0.2.2' } },
      bgp: { connectRetryS: 5, holdS: 9, asn: 4200000000, keepaliveS: 3 },
      coordinators: ['hv1'],
    });
    assert.equal(a, b);
    assert.deepEqual(decodeClusterConfig(a).bgp, { asn: 4200000000, keepaliveS: 3, holdS: 9, connectRetryS: 5 });
  });
});
