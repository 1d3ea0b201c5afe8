import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeMigrationRecord,
  decodeVmSpec,
  decodeVmStatus,
  encodeMigrationRecord,
  encodeVmSpec,
  encodeVmStatus,
  ValidationError,
  xmlHash,
} from '../../schemas/index.ts';
import { at, expectInvalid, fieldTests, T0 } from './helpers.ts';

const BAD_NAMES = ['hv/2', '..', 'a\u0001b', 'a'.repeat(64), 'HV1', '-hv1', 'hv1-', '', 'hv.1', 'hv_1', 7];

describe('VmSpec fields', () => {
  fieldTests('VmSpec', (v) => decodeVmSpec(v), { node: 'hv1' }, 'spec.', [
    { field: 'state', good: ['running', 'stopped', 'disabled'], bad: ['on', 'Running', 1, null] },
    { field: 'stopMode', good: ['graceful', 'force'], bad: ['kill', ''] },
    { field: 'shutdownTimeoutMs', good: [1, 90_000], bad: [0, -1, 1.5, '100', 2 ** 53] },
    {
      field: 'restartedAt',
      good: [T0, '2024-05-01T12:00:00Z', '2024-05-01T14:00:00+02:00'],
      bad: ['yesterday', '2024-02-30T00:00:00Z', '2024-05-01 12:00:00Z', '2024-05-01T25:00:00Z', 1714564800000],
    },
    { field: 'node', good: ['hv1', 'a', '0', 'a'.repeat(63), 'hv-1'], bad: BAD_NAMES },
    { field: 'previousNode', good: ['hv2', null], bad: ['hv/2', '..', 'HV2'] },
    {
      field: 'meta.nodeLimit',
      good: [[], ['hv1'], ['hv1', 'hv2']],
      bad: [
        at(['hv1', 'hv/2'], 'meta.nodeLimit[1]', 'hv/2'),
        at(['hv1', 'hv1'], 'meta.nodeLimit[1]', 'hv1'),
        at(['..'], 'meta.nodeLimit[0]', '..'),
        'hv1',
      ],
    },
    {
      field: 'meta.nodeSelector',
      good: ['mem', 'memprov', 'load', 'vcpus', 'vms', 'default'],
      bad: ['random', 'MEM'],
    },
    { field: 'meta.autostart', good: [true, false], bad: ['yes', 1] },
    { field: 'meta.migrationMethod', good: ['default', 'live', 'shutdown'], bad: ['teleport'] },
    { field: 'meta.maxDowntimeMs', good: [1, 300], bad: [0, -1, 0.5] },
    {
      field: 'rbd',
      good: [[], ['vms/web1_disk0'], ['vms/a', 'ssd.pool/b-c+d.img']],
      bad: [
        at(['nopool'], 'rbd[0]', 'nopool'),
        at(['vms/a', 'a/b/c'], 'rbd[1]', 'a/b/c'),
        at(['pool/img@snap'], 'rbd[0]', 'pool/img@snap'),
        at(['pool/..'], 'rbd[0]', 'pool/..'),
        at(['vms/a', 'vms/a'], 'rbd[1]', 'vms/a'),
        'vms/a',
      ],
    },
  ]);
});

describe('VmSpec', () => {
  test('fills every default', () => {
    assert.deepEqual(decodeVmSpec({ node: 'hv1' }), {
      state: 'running',
      stopMode: 'graceful',
      shutdownTimeoutMs: 90_000,
      node: 'hv1',
      meta: { nodeLimit: [], nodeSelector: 'default', autostart: false, migrationMethod: 'default', maxDowntimeMs: 300 },
      rbd: [],
    });
  });

  test('fills defaults inside a partial meta', () => {
    const spec = decodeVmSpec({ node: 'hv1', meta: { autostart: true } });
    assert.equal(spec.meta.autostart, true);
    assert.equal(spec.meta.nodeSelector, 'default');
    assert.equal(spec.meta.maxDowntimeMs, 300);
  });

  test('node is required', () => {
    const error = expectInvalid(() => decodeVmSpec({ state: 'running' }), 'spec.node');
    assert.match(error.message, /^spec\.node: required field is missing$/);
  });

  test('a node limit that excludes the node names spec.node, its value and the limit', () => {
    const error = expectInvalid(
      () => decodeVmSpec({ node: 'hv3', meta: { nodeLimit: ['hv1', 'hv2'] } }),
      'spec.node',
      'hv3',
    );
    assert.ok(error.message.includes('nodeLimit'), error.message);
    assert.ok(error.message.includes('["hv1","hv2"]'), error.message);
  });

  test('an unknown top-level field is rejected and named', () => {
    const error = expectInvalid(() => decodeVmSpec({ node: 'hv1', colour: 'red' }), 'spec.colour');
    assert.ok(error.message.includes('unknown field "colour"'), error.message);
  });

  test('an unknown meta field is rejected and named, listing the known ones', () => {
    const error = expectInvalid(() => decodeVmSpec({ node: 'hv1', meta: { nodelimit: [] } }), 'spec.meta.nodelimit');
    assert.ok(error.message.includes('nodeLimit, nodeSelector'), error.message);
  });

  test('a spec that is not an object is rejected', () => {
    expectInvalid(() => decodeVmSpec(['hv1']), 'spec', ['hv1']);
    expectInvalid(() => decodeVmSpec(null), 'spec', null);
  });

  test('decodes JSON text and bytes as found in a znode', () => {
    const json = '{"node":"hv2","state":"stopped"}';
    assert.equal(decodeVmSpec(json).state, 'stopped');
    assert.equal(decodeVmSpec(Buffer.from(json)).node, 'hv2');
  });

  test('malformed JSON names the field and shows the text', () => {
    const error = expectInvalid(() => decodeVmSpec('{"node":', '/virtkeeper/vms/web1/spec'), '/virtkeeper/vms/web1/spec', '{"node":');
    assert.equal(error.kind, 'JSON');
  });

  test('the field prefix is configurable', () => {
    expectInvalid(() => decodeVmSpec({ node: 'a/b' }, 'vm web1'), 'vm web1.node', 'a/b');
    expectInvalid(() => decodeVmSpec({ node: 'a/b' }, ''), 'node', 'a/b');
  });

  test('every issue is kept, the message tells the first', () => {
    const error = expectInvalid(() => decodeVmSpec({ node: 'A', state: 'on', stopMode: 'kill' }), 'spec.state', 'on');
    assert.deepEqual(
      error.issues.map((i) => i.field),
      ['spec.state', 'spec.stopMode', 'spec.node'],
    );
  });

  test('encoding is stable: key order and omitted defaults do not change the bytes', () => {
    const a = encodeVmSpec({
      node: 'hv1',
      state: 'running',
      meta: { autostart: true, nodeLimit: ['hv1', 'hv2'] },
      rbd: ['vms/a'],
    });
    const b = encodeVmSpec({
      rbd: ['vms/a'],
      meta: { migrationMethod: 'default', nodeLimit: ['hv1', 'hv2'], maxDowntimeMs: 300, autostart: true },
      shutdownTimeoutMs: 90_000,
      node: 'hv1',
    });
    assert.equal(a, b);
    assert.deepEqual(Object.keys(JSON.parse(a)), ['state', 'stopMode', 'shutdownTimeoutMs', 'node', 'meta', 'rbd']);
    assert.deepEqual(decodeVmSpec(a), decodeVmSpec(b));
  });

  test('encode → decode → encode is the identity', () => {
    const once = encodeVmSpec({ node: 'hv1', previousNode: null, restartedAt: T0, meta: { nodeSelector: 'load' } });
    assert.equal(encodeVmSpec(decodeVmSpec(once)), once);
    assert.equal(decodeVmSpec(once).previousNode, null);
  });

  test('encoding refuses an invalid spec', () => {
    assert.throws(() => encodeVmSpec({ node: 'hv/1' }), ValidationError);
    assert.throws(() => encodeVmSpec({ node: 'hv3', meta: { nodeLimit: ['hv1'] } }), /spec\.node/);
  });
});

const CONDITION = { type: 'Ready', status: 'True' as const, reason: 'Started', message: 'domain running', lastTransitionTime: T0 };
const STATUS = { phase: 'Running', node: 'hv1', observedGeneration: 3, updatedAt: T0 } as const;

describe('VmStatus fields', () => {
  fieldTests('VmStatus', (v) => decodeVmStatus(v), STATUS, 'status.', [
    {
      field: 'phase',
      good: ['Pending', 'Starting', 'Running', 'ShuttingDown', 'Stopped', 'Disabled', 'Migrating', 'Failed'],
      bad: ['running', 'Paused'],
    },
    { field: 'node', good: ['hv2'], bad: ['hv/2', '..', 'a'.repeat(64)] },
    { field: 'observedGeneration', good: [-1, 0, 17], bad: [-2, 1.5, '3'] },
    { field: 'domainState', good: ['running', 'shut off'], bad: ['', 'a\nb', 'x'.repeat(65)] },
    { field: 'restartedAt', good: [T0], bad: ['now'] },
    { field: 'xmlHash', good: [xmlHash('<domain/>')], bad: ['abc', xmlHash('<domain/>').toUpperCase()] },
    {
      field: 'conditions',
      good: [[], [CONDITION], [CONDITION, { ...CONDITION, type: 'Migrating', status: 'False' }]],
      bad: [
        at([{ ...CONDITION, status: 'Yes' }], 'conditions[0].status', 'Yes'),
        at([{ ...CONDITION, type: 'ready' }], 'conditions[0].type', 'ready'),
        at([{ ...CONDITION, reason: 'start failed' }], 'conditions[0].reason', 'start failed'),
        at([{ ...CONDITION, message: 42 }], 'conditions[0].message', 42),
        at([{ ...CONDITION, lastTransitionTime: 'now' }], 'conditions[0].lastTransitionTime', 'now'),
        at([CONDITION, { ...CONDITION }], 'conditions[1].type', 'Ready'),
        'Ready',
      ],
    },
    { field: 'updatedAt', good: [T0], bad: ['2024-13-01T00:00:00Z'] },
  ]);
});

describe('VmStatus', () => {
  test('conditions default to an empty list; optional fields stay absent', () => {
    const status = decodeVmStatus(STATUS);
    assert.deepEqual(status.conditions, []);
    assert.equal('domainState' in status, false);
  });

  test('required fields are required', () => {
    for (const field of ['phase', 'node', 'observedGeneration', 'updatedAt'] as const) {
      const { [field]: _, ...rest } = STATUS;
      expectInvalid(() => decodeVmStatus(rest), `status.${field}`);
    }
  });

  test('an unknown field in a condition is named', () => {
    expectInvalid(() => decodeVmStatus({ ...STATUS, conditions: [{ ...CONDITION, severity: 'x' }] }), 'status.conditions[0].severity');
  });

  test('encoding is stable across key order', () => {
    const a = encodeVmStatus({ ...STATUS, conditions: [CONDITION] });
    const b = encodeVmStatus({
      conditions: [{ lastTransitionTime: T0, message: 'domain running', reason: 'Started', status: 'True', type: 'Ready' }],
      updatedAt: T0,
      observedGeneration: 3,
      node: 'hv1',
      phase: 'Running',
    });
    assert.equal(a, b);
  });
});

const RECORD = { id: 'm-1', source: 'hv1', target: 'hv2', method: 'live', phase: 'requested', startedAt: T0 } as const;
const PROGRESS = { processedBytes: 1024, remainingBytes: 0, bandwidthBps: 125_000_000, updatedAt: T0 };

describe('MigrationRecord fields', () => {
  fieldTests('MigrationRecord', (v) => decodeMigrationRecord(v), RECORD, 'migration.', [
    { field: 'id', good: ['m-1', '2024-05-01T12:00:00Z.web1'], bad: ['', 'a b', '/x', 'x'.repeat(129)] },
    { field: 'source', good: ['hv3'], bad: ['hv/1', '..'] },
    { field: 'target', good: ['hv3'], bad: ['hv/2', 'a\u0007'] },
    { field: 'method', good: ['live', 'shutdown'], bad: ['default', 'LIVE'] },
    {
      field: 'phase',
      good: ['requested', 'prepared', 'copying', 'switching', 'done', 'aborted', 'failed'],
      bad: ['Done', 'started'],
    },
    { field: 'startedAt', good: [T0], bad: ['soon'] },
    {
      field: 'progress',
      good: [PROGRESS],
      bad: [
        at({ ...PROGRESS, processedBytes: -1 }, 'progress.processedBytes', -1),
        at({ ...PROGRESS, remainingBytes: 1.5 }, 'progress.remainingBytes', 1.5),
        at({ ...PROGRESS, bandwidthBps: 'fast' }, 'progress.bandwidthBps', 'fast'),
        at({ ...PROGRESS, updatedAt: 'x' }, 'progress.updatedAt', 'x'),
      ],
    },
    { field: 'reason', good: ['TargetChanged'], bad: ['target changed', 'targetChanged'] },
    { field: 'message', good: ['', 'aborted: target moved to hv3'], bad: [5, 'a\u0000b'] },
  ]);
});

describe('MigrationRecord', () => {
  test('source and target must differ', () => {
    expectInvalid(() => decodeMigrationRecord({ ...RECORD, target: 'hv1' }), 'migration.target', 'hv1');
  });

  test('a missing progress field is named', () => {
    const { bandwidthBps: _, ...partial } = PROGRESS;
    expectInvalid(() => decodeMigrationRecord({ ...RECORD, progress: partial }), 'migration.progress.bandwidthBps');
  });

  test('encoding is stable across key order', () => {
    const reordered = { startedAt: T0, phase: 'requested', method: 'live', target: 'hv2', source: 'hv1', id: 'm-1' } as const;
    assert.equal(encodeMigrationRecord(RECORD), encodeMigrationRecord(reordered));
  });
});
