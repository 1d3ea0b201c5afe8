import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { formatValue, fromZodError, parseWith, ValidationError } from '../../schemas/index.ts';

describe('ValidationError', () => {
  test('message names the field, shows the value, gives the reason', () => {
    const error = new ValidationError('spec.mtu', 100, 'must be an integer from 576 to 9216');
    assert.equal(error.message, 'spec.mtu: invalid value 100: must be an integer from 576 to 9216');
    assert.equal(error.field, 'spec.mtu');
    assert.equal(error.value, 100);
    assert.equal(error.reason, 'must be an integer from 576 to 9216');
    assert.equal(error.name, 'ValidationError');
    assert.ok(error instanceof Error);
  });

  test('the kind replaces "value"', () => {
    const error = new ValidationError('spec.node', 'hv/2', 'bad', { kind: 'name' });
    assert.equal(error.message, 'spec.node: invalid name "hv/2": bad');
  });

  test('withSource prefixes the message and keeps the issues', () => {
    const error = new ValidationError('spec.node', 'x', 'bad').withSource('web.yaml#2');
    assert.equal(error.message, 'web.yaml#2: spec.node: invalid value "x": bad');
    assert.equal(error.source, 'web.yaml#2');
    assert.equal(error.field, 'spec.node');
  });

  test('control characters are escaped and long values shortened in messages', () => {
    assert.equal(formatValue('a\u0001b'), '"a\\u0001b"');
    const long = formatValue('x'.repeat(500));
    assert.equal(long.length, 80);
    assert.ok(long.endsWith('…'));
    assert.equal(formatValue(undefined), 'undefined');
  });
});

describe('zod errors', () => {
  const Schema = z.strictObject({ a: z.number(), b: z.strictObject({ c: z.string() }) });

  test('every issue is kept; the first makes the message', () => {
    const input = { a: 'x', b: { c: 1, d: true }, e: 0 };
    const result = Schema.safeParse(input, { reportInput: true });
    assert.equal(result.success, false);
    const error = fromZodError(result.error!, Schema, input, 'doc');
    assert.equal(error.field, 'doc.a');
    assert.deepEqual(
      error.issues.map((i) => i.field),
      ['doc.a', 'doc.b.c', 'doc.b.d', 'doc.e'],
    );
    assert.match(error.describeAll(), /^doc\.b\.d: unknown field "d" \(known fields: c\)$/m);
    assert.match(error.describeAll(), /^doc\.e: unknown field "e" \(known fields: a, b\)$/m);
  });

  test('parseWith builds messages for built-in checks', () => {
    const message = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        assert.ok(error instanceof ValidationError);
        return error.message;
      }
      assert.fail('no error thrown');
    };
    assert.equal(message(() => parseWith(Schema, { a: 1 })), 'b: required field is missing');
    assert.equal(message(() => parseWith(Schema, { a: 'one', b: { c: '' } })), 'a: invalid value "one": must be a number');
    assert.equal(message(() => parseWith(Schema, [], 'doc')), 'doc: invalid value []: must be an object');
    assert.throws(
      () => parseWith(z.strictObject({ n: z.array(z.string()).min(2) }), { n: ['x'] }, 'x'),
      (e: unknown) => e instanceof ValidationError && e.message === 'x.n: invalid value ["x"]: must have at least 2 items',
    );
  });
});
