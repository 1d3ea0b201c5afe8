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
    { field: 'fence.policy', good: ['none', 'ipmi'], bad: ['stonith', ''] },
    { field: 'fence.command', good: ['/usr/local/bin/fence-node'], bad: ['', 'a\u0000b', 1] },
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
  ]);
});

describe('ClusterConfig bgp and nodes', () => {
  fieldTests('ClusterConfig', (v) => decodeClusterConfig(v), { bgp: { asn: 65500 } }, 'config.', [
    { field: 'bgp.asn', good: [1, 64512, 65500, 65534, 65536, 4200000000, 4294967294], bad: [0, 23456, 65535, 70000, 131071, 4294967295, 4294967296, 1.5, '65500'] },
    { field: 'bgp.holdS', good: [9, 65535], bad: [2, 0, 65536] },
    { field: 'bgp.connectRetryS', good: [1, 120], bad: [0, -1] },
  ]);

  test('bgp timers default to 3/9 s and a 5 s connect retry; keepalive at most a third of hold', () => {
    assert.deepEqual(decodeClusterConfig({ bgp: { asn: 65500 } }).bgp, { asn: 65500, keepaliveS: 3, holdS: 9, connectRetryS: 5 });
    expectInvalid(() => decodeClusterConfig({ bgp: { asn: 65500, keepaliveS: 4, holdS: 9 } }), 'config.bgp.keepaliveS', 4);
    assert.equal(decodeClusterConfig({ bgp: { asn: 65500, keepaliveS: 1, holdS: 3 } }).bgp?.holdS, 3);
  });

  test('a reserved ASN is refused with the reason', () => {
    const error = expectInvalid(() => decodeClusterConfig({ bgp: { asn: 23456 } }), 'config.bgp.asn', 23456);
    assert.match(error.message, /AS_TRANS/);
  });

  test('cluster addresses: unicast host addresses only, one node each', () => {
    for (const good of ['192.0.2.1', '10.0.0.1', '198.51.100.254']) assert.equal(decodeClusterConfig({ nodes: { hv1: { clusterAddress: good } } }).nodes?.hv1?.clusterAddress, good);
    for (const bad of ['127.0.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '169.254.1.1', '10.0.0', '', '2001:db8::1']) {
      expectInvalid(() => decodeClusterConfig({ nodes: { hv1: { clusterAddress: bad } } }), 'config.nodes.hv1.clusterAddress', bad);
    }
    expectInvalid(() => decodeClusterConfig({ nodes: { 'hv 1': { clusterAddress: '192.0.2.1' } } }), 'config.nodes.hv 1');
    const dup = expectInvalid(() => decodeClusterConfig({ nodes: { hv1: { clusterAddress: '192.0.2.1' }, hv2: { clusterAddress: '192.0.2.1' } } }), 'config.nodes.hv2.clusterAddress', '192.0.2.1');
    assert.match(dup.message, /hv1/);
  });

  test('with bgp, every coordinator needs a cluster address; without bgp it need not', () => {
    expectInvalid(() => decodeClusterConfig({ coordinators: ['hv1', 'hv2'], bgp: { asn: 65500 }, nodes: { hv1: { clusterAddress: '192.0.2.1' } } }), 'config.coordinators[1]', 'hv2');
    assert.deepEqual(decodeClusterConfig({ coordinators: ['hv1'] }).coordinators, ['hv1']);
  });
});

describe('ClusterConfig', () => {
  test('an empty config is all defaults', () => {
    assert.deepEqual(defaultClusterConfig(), {
      coordinators: [],
      defaultNodeSelector: 'mem',
      keepaliveIntervalMs: 5000,
      keepaliveDeadAfterMs: 30_000,
      fence: { policy: 'none' },
      migration: { maxOutgoing: 2, maxIncoming: 2, defaultMethod: 'live', phaseTimeoutMs: 30_000, maxDowntimeMs: 300 },
      consoleLogLines: 1000,
      bridgeMtu: 1500,
      clusterMtu: 1500,
    });
  });

  test('fence policy command needs a command', () => {
    expectInvalid(() => decodeClusterConfig({ fence: { policy: 'command' } }), 'config.fence.command');
    assert.equal(
      decodeClusterConfig({ fence: { policy: 'command', command: 'fence-hv' } }).fence.command,
      'fence-hv',
    );
  });

  test('keepaliveDeadAfterMs must exceed keepaliveIntervalMs', () => {
    const error = expectInvalid(
      () => decodeClusterConfig({ keepaliveIntervalMs: 10_000, keepaliveDeadAfterMs: 10_000 }),
      'config.keepaliveDeadAfterMs',
      10_000,
    );
    assert.ok(error.message.includes('keepaliveIntervalMs'), error.message);
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
});
