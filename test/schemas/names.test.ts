import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertName, assertVni, isValidName, isValidVni, nameProblem, ValidationError } from '../../schemas/index.ts';
import { expectInvalid } from './helpers.ts';

describe('names', () => {
  for (const good of ['hv1', 'a', '0', 'web-01', 'a'.repeat(63)]) {
    test(`accepts ${JSON.stringify(good)}`, () => {
      assert.equal(assertName(good), good);
      assert.equal(isValidName(good), true);
    });
  }

  const bad: [string, RegExp][] = [
    ['hv/2', /contains '\/'/],
    ['..', /contains '\.'/],
    ['.', /contains '\.'/],
    ['a\u0000b', /control character/],
    ['a\nb', /control character/],
    ['a\u007fb', /control character/],
    ['a'.repeat(64), /has 64 characters/],
    ['', /is empty/],
    ['Web1', /lower-case only/],
    ['-web', /starts or ends with '-'/],
    ['web-', /starts or ends with '-'/],
    ['web_1', /contains "_"/],
    ['wéb', /contains "é"/],
    ['web 1', /contains " "/],
  ];
  for (const [name, hint] of bad) {
    test(`rejects ${JSON.stringify(name)} naming the field, the value and why`, () => {
      const error = expectInvalid(() => assertName(name, 'spec.meta.nodeLimit[1]'), 'spec.meta.nodeLimit[1]', name);
      assert.equal(isValidName(name), false);
      assert.match(error.message, /^spec\.meta\.nodeLimit\[1\]: invalid name /);
      assert.match(error.message, /must be a DNS label/);
      assert.match(error.message, hint);
    });
  }

  test('the message reads as documented', () => {
    assert.throws(
      () => assertName('hv/2', 'spec.meta.nodeLimit[1]'),
      (error: unknown) =>
        error instanceof ValidationError &&
        error.message.startsWith(`spec.meta.nodeLimit[1]: invalid name "hv/2": must be a DNS label (lower-case a-z, 0-9, '-';`) &&
        error.reason === nameProblem('hv/2'),
    );
  });

  test('non-strings are rejected', () => {
    expectInvalid(() => assertName(42, 'node'), 'node', 42);
    expectInvalid(() => assertName(undefined, 'node'), 'node');
    assert.equal(isValidName(null), false);
  });
});

describe('VNIs', () => {
  for (const good of ['1', '100', '4789', '16777215']) {
    test(`accepts ${good}`, () => {
      assert.equal(assertVni(good), good);
      assert.equal(isValidVni(good), true);
    });
  }
  test('accepts an integer and returns its decimal string', () => {
    assert.equal(assertVni(100), '100');
  });
  for (const bad of ['0', '16777216', '007', '-1', '1.5', 'abc', '', '1/2', '..', ' 1']) {
    test(`rejects ${JSON.stringify(bad)}`, () => {
      const error = expectInvalid(() => assertVni(bad, 'metadata.name'), 'metadata.name', bad);
      assert.match(error.message, /invalid VNI/);
      assert.match(error.message, /16777215/);
      assert.equal(isValidVni(bad), false);
    });
  }
  for (const bad of [0, 16777216, 1.5, -3]) {
    test(`rejects the number ${bad}`, () => {
      expectInvalid(() => assertVni(bad, 'vni'), 'vni', bad);
    });
  }
});
