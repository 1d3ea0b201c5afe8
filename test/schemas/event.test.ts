// One event of the events log (schemas/event.ts): the kind's dotted lower camel case, names for
// by/node/vm, a one-line message of at most 1024 characters; eventMessage makes any text fit.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeEvent, encodeEvent, EVENT_MESSAGE_MAX, eventMessage } from '../../schemas/index.ts';
import { expectInvalid, fieldTests } from './helpers.ts';

const base = { at: '2026-01-01T00:00:00.000Z', kind: 'fence.succeeded', by: 'hv1', message: 'hv3 powered off' };

describe('event fields', () => {
  fieldTests('event', (v) => decodeEvent(v), base, 'event.', [
    {
      field: 'kind',
      good: ['fence.started', 'fence.succeeded', 'vm.notRecovered', 'migration.completed', 'cluster.maintenance', 'node.lost', 'a.b.c.d'],
      bad: ['fence', 'Fence.started', 'fence.Started', 'fence..started', 'fence.started.', 'fence_started', 'a.b.c.d.e', 'fence. started', `fence.${'x'.repeat(60)}`],
    },
    { field: 'by', good: ['hv1', 'vk'], bad: ['HV1', '', 'hv/1'] },
    { field: 'node', good: ['hv3'], bad: ['hv 3'] },
    { field: 'vm', good: ['web1'], bad: ['web_1'] },
    { field: 'level', good: ['ipmi', 'storage', 'command'], bad: ['IPMI', '', 'x'.repeat(33)] },
    { field: 'at', good: ['2026-01-01T00:00:00Z'], bad: ['yesterday', '2026-02-30T00:00:00Z'] },
    { field: 'message', good: ['', 'x'.repeat(EVENT_MESSAGE_MAX)], bad: ['two\nlines', 'x'.repeat(EVENT_MESSAGE_MAX + 1)] },
  ]);
});

describe('event', () => {
  test('encodes in schema order, optional fields only when given; decodes back', () => {
    const text = encodeEvent({ message: 'm', vm: 'web1', node: 'hv3', level: 'ipmi', by: 'hv1', kind: 'vm.recovered', at: base.at });
    assert.equal(text, '{"at":"2026-01-01T00:00:00.000Z","kind":"vm.recovered","by":"hv1","node":"hv3","vm":"web1","level":"ipmi","message":"m"}');
    assert.deepEqual(decodeEvent(Buffer.from(text)), { at: base.at, kind: 'vm.recovered', by: 'hv1', node: 'hv3', vm: 'web1', level: 'ipmi', message: 'm' });
    assert.equal(encodeEvent(base), JSON.stringify(base));
  });

  test('required fields and unknown ones are named', () => {
    expectInvalid(() => decodeEvent({ ...base, message: undefined }), 'event.message');
    expectInvalid(() => decodeEvent({ ...base, by: undefined }), 'event.by');
    expectInvalid(() => decodeEvent({ ...base, extra: 1 }), 'event.extra');
    expectInvalid(() => decodeEvent('{not json'), 'event');
  });

  test('eventMessage: control characters become single spaces, long text is cut with …', () => {
    assert.equal(eventMessage('fence failed:\n  ipmitool: timeout\r\n\tretrying '), 'fence failed: ipmitool: timeout retrying');
    const long = eventMessage('y'.repeat(5000));
    assert.equal(long.length, EVENT_MESSAGE_MAX);
    assert.ok(long.endsWith('…'));
    assert.doesNotThrow(() => decodeEvent({ ...base, message: long }));
    assert.doesNotThrow(() => decodeEvent({ ...base, message: eventMessage('a\u0000b\u009fc') }));
  });
});
