import { z } from 'zod';
import { ValidationError } from './errors.ts';

/** A MAC address as dnsmasq prints it: six lower-case hex pairs joined by ':'. */
export const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
export const MAC_RULE = 'must be a MAC address such as 52:54:00:12:34:56 (lower case)';

/** Returns why `value` is unacceptable, or undefined when it is fine. */
export type Problem = (value: string) => string | undefined;

/**
 * A string schema checked by `problem`. Failures are reported as
 * `invalid <kind> "<value>": <reason>`; `jsonSchema` is merged into the JSON
 * Schema output (pattern, format…) since refinements cannot be expressed there.
 */
export function checkedString(kind: string, problem: Problem, jsonSchema: Record<string, unknown> = {}) {
  return z
    .string()
    .superRefine((value, ctx) => {
      const reason = problem(value);
      if (reason !== undefined) ctx.addIssue({ code: 'custom', message: reason, params: { kind }, input: value });
    })
    .meta(jsonSchema);
}

/** Throws a ValidationError unless `value` is a string `problem` accepts; returns it typed. */
export function assertChecked(kind: string, problem: Problem, value: unknown, field: string): string {
  if (typeof value !== 'string') throw new ValidationError(field, value, 'must be a string', { kind });
  const reason = problem(value);
  if (reason !== undefined) throw new ValidationError(field, value, reason, { kind });
  return value;
}

// C0 controls and DEL; C1 controls (U+0080–U+009F) too.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_CHARS_EXCEPT_NEWLINE_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

export function hasControlChars(value: string): boolean {
  return CONTROL_CHARS.test(value);
}

/** A single-line free-text string of bounded length. */
export function textProblem(maxLength: number, options: { allowEmpty?: boolean; multiline?: boolean } = {}): Problem {
  return (value) => {
    if (!options.allowEmpty && value.length === 0) return 'must not be empty';
    if (value.length > maxLength) return `must be at most ${maxLength} characters long (it has ${value.length})`;
    const forbidden = options.multiline ? CONTROL_CHARS_EXCEPT_NEWLINE_TAB : CONTROL_CHARS;
    if (forbidden.test(value)) return 'must not contain control characters';
    return undefined;
  };
}

const ISO_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;
const ISO_RULE = 'must be an ISO-8601 timestamp like 2024-05-01T12:00:00.000Z';

export const timestampProblem: Problem = (value) => {
  const m = ISO_TIMESTAMP.exec(value);
  if (!m) return ISO_RULE;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offsetHour = m[9] === undefined ? 0 : Number(m[9]);
  const offsetMinute = m[10] === undefined ? 0 : Number(m[10]);
  const date = new Date(Date.UTC(year, month - 1, day));
  const realDay = date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
  if (!realDay || hour > 23 || minute > 59 || second > 59 || offsetHour > 23 || offsetMinute > 59) {
    return `${ISO_RULE} (no such date or time)`;
  }
  return undefined;
};

export const TimestampSchema = checkedString('timestamp', timestampProblem, { format: 'date-time' });

const CAMEL_CASE = /^[A-Z][A-Za-z0-9]{0,127}$/;
export const camelCaseProblem: Problem = (value) =>
  CAMEL_CASE.test(value) ? undefined : 'must be CamelCase (A-Z first, then letters and digits; at most 128 characters)';

/** Condition reasons and types, in Kubernetes style: `StartFailed`, `Ready`. */
export function camelCaseString(kind: string) {
  return checkedString(kind, camelCaseProblem, { pattern: CAMEL_CASE.source });
}

// Ceph pool and image names: no '/', '@' (snapshot separator), whitespace or control characters.
const RBD_PART = '[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}';
const RBD_IMAGE = new RegExp(`^${RBD_PART}/${RBD_PART}$`);
export const rbdImageProblem: Problem = (value) =>
  RBD_IMAGE.test(value)
    ? undefined
    : "must be 'pool/image' (each part starts with a letter, digit or '_', then letters, digits, '_', '.', '+', '-')";

export const RbdImageSchema = checkedString('RBD image', rbdImageProblem, { pattern: RBD_IMAGE.source });

// Linux IFNAMSIZ is 16 including the terminating NUL.
const IFNAME_MAX = 15;
export const interfaceNameProblem: Problem = (value) => {
  const rule = "must be a Linux interface name (1-15 characters, no '/', ':' or whitespace)";
  if (value.length === 0 || value.length > IFNAME_MAX) return rule;
  if (value === '.' || value === '..') return `${rule}; '.' and '..' are reserved`;
  if (/[/:\s]/.test(value) || hasControlChars(value)) return rule;
  return undefined;
};

export const InterfaceNameSchema = checkedString('interface name', interfaceNameProblem, {
  pattern: '^[^/:\\s]{1,15}$',
});

const SHA256_HEX = /^[0-9a-f]{64}$/;
export const sha256Problem: Problem = (value) =>
  SHA256_HEX.test(value) ? undefined : 'must be a SHA-256 digest as 64 lower-case hex digits';

export const Sha256Schema = checkedString('hash', sha256Problem, { pattern: SHA256_HEX.source });

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const idProblem: Problem = (value) =>
  ID.test(value) ? undefined : "must be 1-128 characters of letters, digits, '.', '_', ':', '-', starting with a letter or digit";

export const IdSchema = checkedString('id', idProblem, { pattern: ID.source });
