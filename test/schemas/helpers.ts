import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '../../schemas/index.ts';

/** How a bad value must appear in an error message (JSON, so strings are quoted and escaped). */
export function shown(value: unknown): string {
  return typeof value === 'number' ? String(value) : JSON.stringify(value);
}

/**
 * Asserts `fn` throws a ValidationError for `field` whose message names the
 * field and shows `value` (leave value out for a missing field).
 */
export function expectInvalid(fn: () => unknown, field: string, ...value: [unknown?]): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ValidationError, `expected a ValidationError, got ${String(caught)}`);
  assert.equal(caught.field, field, `wrong field in: ${caught.message}`);
  assert.ok(caught.message.includes(field), `message does not name ${field}: ${caught.message}`);
  if (value.length > 0) {
    // Long values are cut short in messages.
    const probe = shown(value[0]).slice(0, 60);
    assert.ok(caught.message.includes(probe), `message does not show ${probe}: ${caught.message}`);
    assert.deepEqual(caught.value, value[0]);
  }
  return caught;
}

/** A deep copy of `base` with the dotted `path` set to `value`. */
export function withField<T>(base: T, path: string, value: unknown): T {
  const copy = structuredClone(base) as Record<string, unknown>;
  const keys = path.split('.');
  let target = copy;
  for (const key of keys.slice(0, -1)) {
    if (typeof target[key] !== 'object' || target[key] === null) target[key] = {};
    target = target[key] as Record<string, unknown>;
  }
  target[keys[keys.length - 1]!] = value;
  return copy as T;
}

export function getField(object: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((acc, key) => (acc as Record<string, unknown> | undefined)?.[key], object);
}

/** A bad value whose error is reported on another field (a list element, say) showing another value. */
export class At {
  constructor(
    readonly value: unknown,
    readonly field: string,
    readonly shownValue: unknown,
  ) {}
}
export const at = (value: unknown, field: string, shownValue: unknown): At => new At(value, field, shownValue);

export interface FieldCases {
  /** Dotted path of the field within the decoded object. */
  field: string;
  good: unknown[];
  /** Plain bad values are reported on `field` itself; use at() otherwise (shownValue undefined: a missing field). */
  bad: unknown[];
}

/**
 * One test per good value (decodes, and the field reads back as given) and per
 * bad value (a ValidationError naming the field and showing the value).
 */
export function fieldTests(
  kind: string,
  decode: (value: unknown) => unknown,
  base: object,
  prefix: string,
  cases: FieldCases[],
): void {
  for (const { field, good, bad } of cases) {
    for (const value of good) {
      test(`${kind}.${field} accepts ${shown(value)}`, () => {
        const decoded = decode(withField(base, field, value));
        assert.deepEqual(getField(decoded, field), value);
      });
    }
    for (const entry of bad) {
      const { value, field: errorField, shownValue } =
        entry instanceof At ? entry : { value: entry, field, shownValue: entry };
      test(`${kind}.${field} rejects ${shown(value)}`, () => {
        const run = () => decode(withField(base, field, value));
        if (shownValue === undefined) expectInvalid(run, `${prefix}${errorField}`);
        else expectInvalid(run, `${prefix}${errorField}`, shownValue);
      });
    }
  }
}

export const T0 = '2024-05-01T12:00:00.000Z';
