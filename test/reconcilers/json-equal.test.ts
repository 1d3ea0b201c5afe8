// jsonEqual, and sameStatus agreeing with canonical-encoding equality (which it replaced).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonEqual } from '../../reconcilers/json-equal.ts';
import { sameStatus } from '../../reconcilers/domain/plan.ts';
import { encodeVmStatus, type VmStatus } from '../../schemas/index.ts';

test('jsonEqual ignores key order and undefined properties, not array order', () => {
  assert.equal(jsonEqual({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }), true);
  assert.equal(jsonEqual({ a: 1, gone: undefined }, { a: 1 }), true);
  assert.equal(jsonEqual([1, 2], [2, 1]), false);
  assert.equal(jsonEqual({ a: 1 }, { a: 1, b: null }), false);
  assert.equal(jsonEqual({ a: [] }, { a: {} }), false);
  assert.equal(jsonEqual('1', 1), false);
});

test('jsonEqual agrees with comparing sorted-key JSON encodings', () => {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sortKeys) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])])) : v;
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
      assert.equal(jsonEqual(a, b), JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b)));
      assert.equal(jsonEqual(a, structuredClone(a)), true);
    }),
  );
});

const base: VmStatus = {
  phase: 'Running',
  node: 'hv1',
  observedGeneration: 3,
  domainState: 'running',
  xmlHash: 'a'.repeat(64),
  conditions: [
    { type: 'Running', status: 'True', reason: 'Started', message: 'started', lastTransitionTime: '2026-11-22T00:00:00.000Z' },
    { type: 'RestartPending', status: 'False', reason: 'None', message: 'none', lastTransitionTime: '2026-11-22T00:00:00.000Z' },
  ],
  updatedAt: '2026-11-22T00:00:00.000Z',
};

test('sameStatus says what the canonical encodings say', () => {
  const byEncoding = (a: VmStatus, b: VmStatus) => encodeVmStatus({ ...a, updatedAt: b.updatedAt }) === encodeVmStatus(b);
  const reordered = Object.fromEntries(Object.entries(base).reverse()) as VmStatus;
  const cases: Array<[VmStatus, VmStatus]> = [
    [base, { ...base, updatedAt: '2026-11-22T01:00:00.000Z' }],
    [base, reordered],
    [base, { ...base, restartedAt: undefined }],
    [base, { ...base, phase: 'Stopped' }],
    [base, { ...base, conditions: [...base.conditions].reverse() }],
    [base, { ...base, crash: { count: 1, lastAt: '2026-11-22T00:00:00.000Z' } }],
    [base, { ...base, conditions: [{ ...base.conditions[0]!, message: 'other' }, base.conditions[1]!] }],
  ];
  for (const [a, b] of cases) assert.equal(sameStatus(a, b), byEncoding(a, b), JSON.stringify(b));
});
