import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeNodeSpec, decodeNodeStatus, encodeNodeSpec, encodeNodeStatus, type NodeStatusInput } from '../../schemas/index.ts';
import { at, expectInvalid, fieldTests, T0 } from './helpers.ts';

describe('NodeSpec fields', () => {
  fieldTests('NodeSpec', (v) => decodeNodeSpec(v), {}, 'spec.', [
    { field: 'domainState', good: ['ready', 'flushed'], bad: ['flushing', 'Ready', true] },
  ]);
});

describe('NodeSpec', () => {
  test('defaults to ready', () => {
    assert.deepEqual(decodeNodeSpec({}), { domainState: 'ready' });
    assert.equal(encodeNodeSpec({}), '{"domainState":"ready"}');
  });
  test('an unknown field is named', () => {
    expectInvalid(() => decodeNodeSpec({ domainstate: 'ready' }), 'spec.domainstate');
  });
});

const MEMORY = { totalMiB: 65536, usedMiB: 8192, freeMiB: 57344, allocatedMiB: 4096, provisionedMiB: 6144 };
const STATUS: NodeStatusInput = {
  daemonState: 'run',
  domainState: 'ready',
  memory: MEMORY,
  vcpus: { total: 32, allocated: 6 },
  load: 0.42,
  runningVms: ['web1', 'db1'],
  keepaliveAt: T0,
  version: '0.1.0',
};

describe('NodeStatus fields', () => {
  fieldTests('NodeStatus', (v) => decodeNodeStatus(v), STATUS, 'status.', [
    { field: 'daemonState', good: ['init', 'run', 'stop', 'dead'], bad: ['running', ''] },
    { field: 'domainState', good: ['ready', 'flushing', 'flushed', 'unflushing'], bad: ['flush', null] },
    ...(['totalMiB', 'usedMiB', 'freeMiB', 'allocatedMiB', 'provisionedMiB'] as const).map((key) => ({
      field: `memory.${key}`,
      good: [0, 1024],
      bad: [-1, 1.5, '1024'],
    })),
    { field: 'vcpus.total', good: [0, 64], bad: [-1, 2.5] },
    { field: 'vcpus.allocated', good: [0, 8], bad: [-3, 'all'] },
    { field: 'load', good: [0, 1.25, 12], bad: [-0.5, 'high', null] },
    {
      field: 'runningVms',
      good: [[], ['web1']],
      bad: [
        at(['Web1'], 'runningVms[0]', 'Web1'),
        at(['web1', 'a/b'], 'runningVms[1]', 'a/b'),
        at(['web1', 'web1'], 'runningVms[1]', 'web1'),
        'web1',
      ],
    },
    { field: 'keepaliveAt', good: [T0], bad: ['2024-05-01', 0] },
    { field: 'version', good: ['0.1.0', '0.2.0-dev+abc'], bad: ['', 'v\n1', 'x'.repeat(65)] },
    { field: 'observedGeneration', good: [-1, 4], bad: [-2, 0.5] },
  ]);
});

const FRR: NonNullable<NodeStatusInput['frr']> = {
  state: 'InSync',
  message: '',
  asn: 65500,
  routerId: '192.0.2.1',
  reloads: 2,
  lastReloadAt: T0,
  lastDrift: { at: T0, lines: ['-router bgp 65500', '+router bgp 65501', ''] },
  peers: [
    { address: '192.0.2.2', node: 'hv2', state: 'Established', prefixesReceived: 4 },
    { address: '192.0.2.9', state: 'Active', prefixesReceived: 0 },
  ],
  vnis: [{ vni: 100, remoteVteps: ['192.0.2.2', '192.0.2.3'] }, { vni: 16_777_215, remoteVteps: [] }],
  updatedAt: T0,
};

describe('NodeStatus frr fields', () => {
  fieldTests('NodeStatus', (v) => decodeNodeStatus(v), { ...STATUS, frr: FRR }, 'status.', [
    { field: 'frr.state', good: ['InSync', 'NotConfigured', 'FrrUnreachable', 'ReloadFailed', 'Failed'], bad: ['insync', 'Applying', 'Synced', '', null] },
    { field: 'frr.message', good: ['', 'frr-reload.py --reload exited 1: line 3: % Unknown command'], bad: ['x'.repeat(1025), 'a\u0000b', 1] },
    { field: 'frr.asn', good: [1, 65500, 4294967295], bad: [0, 4294967296, 1.5, '65500'] },
    { field: 'frr.routerId', good: ['192.0.2.1'], bad: ['', 'x'.repeat(65)] },
    { field: 'frr.reloads', good: [0, 17], bad: [-1, 1.5, '1'] },
    { field: 'frr.lastReloadAt', good: [T0], bad: ['yesterday', 0] },
    { field: 'frr.lastDrift.at', good: [T0], bad: ['2024-05-01'] },
    {
      field: 'frr.lastDrift.lines',
      good: [[], ['', ' neighbor fabric peer-group'], Array.from({ length: 50 }, (_, i) => `line ${i}`)],
      bad: [at(['ok', 'x'.repeat(513)], 'frr.lastDrift.lines[1]', 'x'.repeat(513)), at(['a\u0001b'], 'frr.lastDrift.lines[0]', 'a\u0001b'), Array.from({ length: 51 }, () => 'x'), 'line'],
    },
    {
      field: 'frr.peers',
      good: [[], [{ address: '192.0.2.2', state: 'Idle', prefixesReceived: 0 }]],
      bad: [
        at([{ address: '192.0.2.2', node: 'Hv2', state: 'Idle', prefixesReceived: 0 }], 'frr.peers[0].node', 'Hv2'),
        at([{ address: '192.0.2.2', state: 'Idle', prefixesReceived: -1 }], 'frr.peers[0].prefixesReceived', -1),
        at([{ address: '', state: 'Idle', prefixesReceived: 0 }], 'frr.peers[0].address', ''),
        at([{ address: '192.0.2.2', state: 'x'.repeat(33), prefixesReceived: 0 }], 'frr.peers[0].state', 'x'.repeat(33)),
        at([{ address: '192.0.2.2', state: 'Idle' }], 'frr.peers[0].prefixesReceived', undefined),
        at([{ address: '192.0.2.2', state: 'Idle', prefixesReceived: 0, uptime: 5 }], 'frr.peers[0].uptime', undefined),
      ],
    },
    {
      field: 'frr.vnis',
      good: [[], [{ vni: 1, remoteVteps: ['192.0.2.2'] }]],
      bad: [
        at([{ vni: 0, remoteVteps: [] }], 'frr.vnis[0].vni', 0),
        at([{ vni: 16_777_216, remoteVteps: [] }], 'frr.vnis[0].vni', 16_777_216),
        at([{ vni: 100, remoteVteps: [''] }], 'frr.vnis[0].remoteVteps[0]', ''),
        at([{ vni: 100 }], 'frr.vnis[0].remoteVteps', undefined),
      ],
    },
    { field: 'frr.updatedAt', good: [T0], bad: ['', 5] },
  ]);
});

describe('NodeStatus', () => {
  test('memory fields are all required', () => {
    const { provisionedMiB: _, ...partial } = MEMORY;
    expectInvalid(() => decodeNodeStatus({ ...STATUS, memory: partial }), 'status.memory.provisionedMiB');
  });

  test('fills observedGeneration and conditions', () => {
    const status = decodeNodeStatus(STATUS);
    assert.equal(status.observedGeneration, -1);
    assert.deepEqual(status.conditions, []);
  });

  test('an unknown memory field is named', () => {
    expectInvalid(() => decodeNodeStatus({ ...STATUS, memory: { ...MEMORY, swapMiB: 0 } }), 'status.memory.swapMiB');
  });

  test('frr is optional; its state, reloads, peers, vnis and updatedAt are required', () => {
    assert.equal('frr' in decodeNodeStatus(STATUS), false);
    assert.deepEqual(decodeNodeStatus({ ...STATUS, frr: FRR }).frr, FRR);
    const minimal = { state: 'NotConfigured', reloads: 0, peers: [], vnis: [], updatedAt: T0 };
    assert.deepEqual(decodeNodeStatus({ ...STATUS, frr: minimal }).frr, minimal);
    for (const key of ['state', 'reloads', 'peers', 'vnis', 'updatedAt'] as const) {
      const { [key]: _, ...partial } = minimal;
      expectInvalid(() => decodeNodeStatus({ ...STATUS, frr: partial }), `status.frr.${key}`);
    }
    expectInvalid(() => decodeNodeStatus({ ...STATUS, frr: { ...minimal, sessions: 2 } }), 'status.frr.sessions');
    expectInvalid(() => decodeNodeStatus({ ...STATUS, frr: { ...minimal, lastDrift: { at: T0, lines: [], by: 'x' } } }), 'status.frr.lastDrift.by');
  });

  test('encoding is stable across key order', () => {
    const reordered = {
      version: '0.1.0',
      keepaliveAt: T0,
      runningVms: ['web1', 'db1'],
      load: 0.42,
      vcpus: { allocated: 6, total: 32 },
      memory: { provisionedMiB: 6144, allocatedMiB: 4096, freeMiB: 57344, usedMiB: 8192, totalMiB: 65536 },
      domainState: 'ready',
      daemonState: 'run',
    } satisfies NodeStatusInput;
    assert.equal(encodeNodeStatus(STATUS), encodeNodeStatus(reordered));
    const frrReordered: NodeStatusInput['frr'] = {
      updatedAt: T0,
      vnis: [{ remoteVteps: ['192.0.2.2', '192.0.2.3'], vni: 100 }, { remoteVteps: [], vni: 16_777_215 }],
      peers: [
        { prefixesReceived: 4, state: 'Established', node: 'hv2', address: '192.0.2.2' },
        { state: 'Active', prefixesReceived: 0, address: '192.0.2.9' },
      ],
      lastDrift: { lines: ['-router bgp 65500', '+router bgp 65501', ''], at: T0 },
      lastReloadAt: T0,
      reloads: 2,
      routerId: '192.0.2.1',
      asn: 65500,
      message: '',
      state: 'InSync',
    };
    assert.equal(encodeNodeStatus({ ...STATUS, frr: FRR }), encodeNodeStatus({ ...reordered, frr: frrReordered }));
  });
});
