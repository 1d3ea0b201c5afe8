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
  });
});
