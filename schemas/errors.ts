import { z } from 'zod';

/** One problem found in a value: where (`field`), what was there (`value`) and why it is wrong. */
export interface ValidationIssue {
  /** Path of the offending field, e.g. `spec.meta.nodeLimit[1]`. */
  field: string;
  value: unknown;
  reason: string;
  /** What sort of value it should have been ("name", "timestamp", …); `value` when unspecified. */
  kind?: string;
  /** False when the value is not worth printing (a missing or unknown field). */
  showValue?: boolean;
}

export interface ValidationErrorOptions {
  kind?: string;
  showValue?: boolean;
  /** Every issue found; the error's own field/value/reason describe the first. */
  issues?: readonly ValidationIssue[];
  /** Where the value came from (`web.yaml#2`), printed before the field. */
  source?: string;
}

const MAX_SHOWN_VALUE = 80;

/** Renders a bad value for an error message: JSON (so control characters are escaped), shortened. */
export function formatValue(value: unknown): string {
  let text: string;
  if (value === undefined) text = 'undefined';
  else if (typeof value === 'bigint') text = `${value}n`;
  else if (typeof value === 'number') text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > MAX_SHOWN_VALUE ? `${text.slice(0, MAX_SHOWN_VALUE - 1)}…` : text;
}

export function formatIssue(issue: ValidationIssue): string {
  if (issue.showValue === false) return `${issue.field}: ${issue.reason}`;
  return `${issue.field}: invalid ${issue.kind ?? 'value'} ${formatValue(issue.value)}: ${issue.reason}`;
}

/**
 * A value that does not fit its schema. The message always names the field and
 * shows the bad value, e.g.
 * `spec.meta.nodeLimit[1]: invalid name "hv/2": must be a DNS label (…)`.
 */
export class ValidationError extends Error {
  readonly field: string;
  readonly value: unknown;
  readonly reason: string;
  readonly kind: string;
  readonly source: string | undefined;
  readonly issues: readonly ValidationIssue[];

  constructor(field: string, value: unknown, reason: string, options: ValidationErrorOptions = {}) {
    const first: ValidationIssue = { field, value, reason, kind: options.kind, showValue: options.showValue };
    const text = formatIssue(first);
    super(options.source ? `${options.source}: ${text}` : text);
    this.name = 'ValidationError';
    this.field = field;
    this.value = value;
    this.reason = reason;
    this.kind = options.kind ?? 'value';
    this.source = options.source;
    this.issues = options.issues && options.issues.length > 0 ? options.issues : [first];
  }

  static fromIssues(issues: readonly ValidationIssue[], source?: string): ValidationError {
    const first = issues[0];
    if (!first) throw new Error('ValidationError.fromIssues needs at least one issue');
    return new ValidationError(first.field, first.value, first.reason, {
      kind: first.kind,
      showValue: first.showValue,
      issues,
      source,
    });
  }

  /** The same error, reported as coming from `source` (e.g. a manifest document). */
  withSource(source: string): ValidationError {
    return ValidationError.fromIssues(this.issues, source);
  }

  /** Every issue, one per line (the message only carries the first). */
  describeAll(): string {
    const prefix = this.source ? `${this.source}: ` : '';
    return this.issues.map((issue) => prefix + formatIssue(issue)).join('\n');
  }
}

/** Joins a field prefix and a zod path into `spec.meta.nodeLimit[1]`. */
export function fieldPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

function bound(issue: { origin?: string; inclusive?: boolean }, value: unknown, upper: boolean): string {
  const n = String(value);
  switch (issue.origin) {
    case 'array':
    case 'set':
      return upper ? `must have at most ${n} items` : `must have at least ${n} items`;
    case 'string':
      return upper ? `must be at most ${n} characters long` : `must be at least ${n} characters long`;
    default:
      if (upper) return issue.inclusive === false ? `must be < ${n}` : `must be <= ${n}`;
      return issue.inclusive === false ? `must be > ${n}` : `must be >= ${n}`;
  }
}

/**
 * Per-parse messages for zod's built-in checks. Messages given on a schema
 * itself (`{ error: … }`) take precedence over these.
 */
const reasonFor: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required field is missing';
      return `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'invalid_value': {
      const options = issue.values.map((v) => formatValue(v)).join(', ');
      if (issue.input === undefined) return `required field is missing (one of ${options})`;
      return issue.values.length === 1 ? `must be ${options}` : `must be one of ${options}`;
    }
    case 'too_small':
      return bound(issue, issue.minimum, false);
    case 'too_big':
      return bound(issue, issue.maximum, true);
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    default:
      return undefined;
  }
};

type Schema = z.ZodType;

/** Follows wrappers (optional, default, nullable, pipe…) down to the schema that does the work. */
function unwrap(schema: Schema): Schema {
  let current: Schema = schema;
  for (let i = 0; i < 20; i++) {
    const def = current._zod.def as unknown as Record<string, unknown>;
    const inner = (def.innerType ?? (def.type === 'pipe' ? def.in : undefined)) as Schema | undefined;
    if (!inner) return current;
    current = inner;
  }
  return current;
}

/** The field names an object schema accepts at `path`, for "unknown field" messages. */
function knownFieldsAt(schema: Schema, path: readonly PropertyKey[]): string[] | undefined {
  let current: Schema | undefined = unwrap(schema);
  for (const part of path) {
    if (!current) return undefined;
    if (current instanceof z.ZodObject && typeof part === 'string') {
      current = current.shape[part] as Schema | undefined;
    } else if (current instanceof z.ZodArray && typeof part === 'number') {
      current = current.element as Schema;
    } else return undefined;
    current = current ? unwrap(current) : undefined;
  }
  return current instanceof z.ZodObject ? Object.keys(current.shape) : undefined;
}

function pathValue(root: unknown, path: readonly PropertyKey[]): unknown {
  let current = root;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}

/** Turns a zod error into our issues, unknown keys split into one issue each. */
export function issuesFromZod(
  error: z.ZodError,
  schema: Schema,
  input: unknown,
  fieldPrefix = '',
): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownFieldsAt(schema, issue.path);
      const container = pathValue(input, issue.path) as Record<string, unknown> | undefined;
      for (const key of issue.keys) {
        out.push({
          field: fieldPath(fieldPrefix, [...issue.path, key]),
          value: container?.[key],
          reason: `unknown field ${formatValue(key)}${known ? ` (known fields: ${known.join(', ')})` : ''}`,
          showValue: false,
        });
      }
      continue;
    }
    if (issue.code === 'invalid_key') {
      // A record key (a node name in ClusterConfig.nodes) that its key schema refuses: say why, not zod's "Invalid key in record".
      const inner = issue.issues[0] as { message: string; params?: { kind?: unknown } } | undefined;
      const kind = inner?.params?.kind;
      out.push({
        field: fieldPath(fieldPrefix, issue.path),
        value: issue.input,
        reason: inner?.message ?? issue.message,
        kind: typeof kind === 'string' ? kind : undefined,
        showValue: true,
      });
      continue;
    }
    const params = (issue as { params?: { kind?: unknown } }).params;
    const value = 'input' in issue ? issue.input : pathValue(input, issue.path);
    out.push({
      field: fieldPath(fieldPrefix, issue.path),
      value,
      reason: issue.message,
      kind: typeof params?.kind === 'string' ? params.kind : undefined,
      // Nothing there: "required field is missing" says it all.
      showValue: value !== undefined,
    });
  }
  return out;
}

/** Builds a ValidationError (message from the first issue, all issues kept) from a zod error. */
export function fromZodError(error: z.ZodError, schema: Schema, input: unknown, fieldPrefix = ''): ValidationError {
  return ValidationError.fromIssues(issuesFromZod(error, schema, input, fieldPrefix));
}

/** Parses `input` with `schema`; on failure throws a ValidationError whose fields start with `fieldPrefix`. */
export function parseWith<S extends Schema>(schema: S, input: unknown, fieldPrefix = ''): z.output<S> {
  const result = schema.safeParse(input, { reportInput: true, error: reasonFor });
  if (!result.success) throw fromZodError(result.error, schema, input, fieldPrefix);
  return result.data;
}
