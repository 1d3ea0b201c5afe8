// A node's fence settings (DESIGN §3 `/nodes/<name>/fence`, under an admin-only ACL; §4 "Fencing
// and recovery"): the levels that can fence this node, tried in order ipmi → command → storage.
//
//   { "ipmi": { "host": "192.0.2.13", "user": "admin", "password": "…", "cipherSuite": 3 },
//     "command": { "argv": ["/usr/local/bin/pdu-off", "hv3"], "timeoutMs": 30000 },
//     "storage": { "ttlS": 2592000 } }
//
// Invariant: a secret (ipmi.password, every command.env value) is never shown. Validation errors
// name the field but not its value (and a JSON text that does not parse is not quoted), and
// redactNodeFence / formatNodeFence are what anything that displays a fence config uses.
import { isIP } from 'node:net';
import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { ValidationError, type ValidationIssue } from './errors.ts';
import { checkedString, hasControlChars, textProblem, TimestampSchema } from './formats.ts';
import { NameSchema } from './names.ts';
import { intInRange } from './rules.ts';

/** What every shown secret is replaced with. */
export const REDACTED = '<redacted>';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const bmcHostProblem = (v: string): string | undefined =>
  (isIP(v) !== 0 && !v.includes('%')) || HOSTNAME.test(v) ? undefined : 'must be an IPv4/IPv6 address or a DNS host name';
const ipmiUserProblem = (v: string): string | undefined =>
  v.length >= 1 && v.length <= 16 && !hasControlChars(v) && !v.startsWith('-') ? undefined : 'must be 1-16 characters, no control characters, not starting with "-"';
/** IPMI v2 passwords are at most 20 bytes. The reasons never quote the value. */
const ipmiPasswordProblem = (v: string): string | undefined => {
  if (Buffer.byteLength(v) > 20) return `must be at most 20 bytes (it has ${Buffer.byteLength(v)})`;
  if (/[\0\n\r]/.test(v)) return 'must not contain NUL or newlines';
  return undefined;
};
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export const IpmiFenceSchema = z.strictObject({
  host: checkedString('BMC host', bmcHostProblem),
  port: intInRange(1, 65535).default(623),
  user: checkedString('IPMI user', ipmiUserProblem),
  password: checkedString('password', ipmiPasswordProblem),
  /** ipmitool -C (3 works with ipmi_sim and most BMCs; ipmitool's default 17 is refused by ipmi_sim). */
  cipherSuite: intInRange(0, 17).default(3),
  /** Each ipmitool run is killed after this long. */
  timeoutMs: intInRange(100, 600_000).default(5000),
  /** Runs after the first when the BMC does not answer (never after a refused password). */
  retries: intInRange(0, 20).default(2),
  /** How long to read the status for "off" after the off command. */
  verifyTimeoutMs: intInRange(0, 600_000).default(10_000),
  /** Power the node on again once the off is verified (a reboot-style fence). */
  powerOnAfter: z.boolean().default(false),
});
export type IpmiFence = z.output<typeof IpmiFenceSchema>;

export const CommandFenceSchema = z
  .strictObject({
    /** The program and its arguments (no shell). */
    argv: z.array(checkedString('argument', textProblem(4096))).min(1).optional(),
    /** Or one string run with `sh -c`. */
    shell: checkedString('shell command', textProblem(4096)).optional(),
    timeoutMs: intInRange(1, 3_600_000).default(30_000),
    retries: intInRange(0, 20).default(0),
    /** Extra environment of the command; the values are secrets (tokens) and are never shown. */
    env: z.record(checkedString('variable name', (k) => (ENV_NAME.test(k) ? undefined : 'must be a shell variable name')), checkedString('value', textProblem(4096, { allowEmpty: true }))).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.argv === undefined) === (c.shell === undefined)) {
      ctx.addIssue({ code: 'custom', path: [c.argv === undefined ? 'argv' : 'shell'], input: undefined, message: 'exactly one of argv and shell is required' });
    }
  });
export type CommandFence = z.output<typeof CommandFenceSchema>;

export const StorageFenceSchema = z.strictObject({
  /** The address to blocklist (`ceph osd blocklist add ADDRESS:0/0`); default: the node's published storage address. */
  address: checkedString('storage address', (v) => (isIP(v) !== 0 && !v.includes('%') ? undefined : 'must be an IP address')).optional(),
  /** The blocklist entry's TTL: long, an admin's `vk node ready` lifts it (default 30 days). */
  ttlS: intInRange(60, 10 * 365 * 86_400).default(30 * 86_400),
});
export type StorageFence = z.output<typeof StorageFenceSchema>;

export const NodeFenceSchema = z.strictObject({
  ipmi: IpmiFenceSchema.optional(),
  command: CommandFenceSchema.optional(),
  storage: StorageFenceSchema.optional(),
});
export type NodeFence = z.output<typeof NodeFenceSchema>;
export type NodeFenceInput = z.input<typeof NodeFenceSchema>;

/** Fields whose values are secrets: `ipmi.password` and `command.env.NAME`, under any prefix. */
const SECRET_FIELD = /(^|\.)ipmi\.password$|(^|\.)command\.env(\.|\[|$)/;

/** A deep copy with every secret replaced by REDACTED: any `password`, every value under any `env` (whatever shape they came in). */
export function redactNodeFence<T>(value: T): T {
  const walk = (v: unknown, underEnv: boolean): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x, underEnv));
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = k === 'password' ? REDACTED : walk(x, underEnv || k === 'env');
      return out;
    }
    return underEnv ? REDACTED : v;
  };
  return walk(value, false) as T;
}

function redactIssue(issue: ValidationIssue, fieldPrefix: string): ValidationIssue {
  const rel = fieldPrefix && issue.field.startsWith(`${fieldPrefix}.`) ? issue.field.slice(fieldPrefix.length + 1) : issue.field;
  if (SECRET_FIELD.test(rel) || SECRET_FIELD.test(issue.field)) return { ...issue, value: REDACTED, showValue: false };
  if (issue.kind === 'JSON') return { ...issue, value: REDACTED, showValue: false, reason: 'is not valid JSON' };
  // Not shown in the message, but kept in `issues` (which an API may return): an unknown field such
  // as a misspelt "passwrod" holds a secret as likely as not.
  if (issue.showValue === false && issue.value !== undefined) return { ...issue, value: REDACTED };
  // An object or array shown whole (`ipmi` given as an array, the root): its secrets go.
  if (issue.value !== null && typeof issue.value === 'object') return { ...issue, value: rel.endsWith('env') ? REDACTED : redactNodeFence(issue.value) };
  return issue;
}

/** Validates /nodes/<name>/fence (object, JSON text or bytes), filling defaults; a ValidationError that shows no secret otherwise. */
export function decodeNodeFence(value: unknown, fieldPrefix = 'fence'): NodeFence {
  try {
    return decodeWith(NodeFenceSchema, value, fieldPrefix);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw ValidationError.fromIssues(err.issues.map((i) => redactIssue(i, fieldPrefix)), err.source);
  }
}

export function encodeNodeFence(value: NodeFenceInput, fieldPrefix = 'fence'): string {
  try {
    return encodeWith(NodeFenceSchema, value, fieldPrefix);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw ValidationError.fromIssues(err.issues.map((i) => redactIssue(i, fieldPrefix)), err.source);
  }
}

/** One line per level, secrets redacted: what `vk` (and logs, and events) may show of a fence config. */
export function formatNodeFence(f: NodeFence): string {
  const lines: string[] = [];
  if (f.ipmi) {
    const i = f.ipmi;
    lines.push(`ipmi: ${i.user}@${i.host}:${i.port} cipher suite ${i.cipherSuite}, password ${REDACTED}, timeout ${i.timeoutMs} ms × ${i.retries + 1}, verify ${i.verifyTimeoutMs} ms${i.powerOnAfter ? ', then power on' : ''}`);
  }
  if (f.command) {
    const c = f.command;
    const what = c.argv ? JSON.stringify(c.argv) : `sh -c ${JSON.stringify(c.shell)}`;
    const env = c.env && Object.keys(c.env).length > 0 ? `, env ${Object.keys(c.env).map((k) => `${k}=${REDACTED}`).join(' ')}` : '';
    lines.push(`command: ${what}, timeout ${c.timeoutMs} ms × ${c.retries + 1}${env}`);
  }
  if (f.storage) lines.push(`storage: blocklist ${f.storage.address ?? "the node's storage address"} for ${f.storage.ttlS} s`);
  return lines.length > 0 ? lines.join('\n') : 'no fence level configured';
}

// ------------------------------------------------------------------------------- fence status

/** The levels, in the order they are tried. */
export const FENCE_LEVELS = ['ipmi', 'command', 'storage'] as const;
export type FenceLevel = (typeof FENCE_LEVELS)[number];

/**
 * lost     the node's alive znode is gone past the grace period, and it is not fenced (yet): the
 *          maintenance flag is on, or no fencing coordinator has acted
 * fencing  a fencing coordinator is running the levels
 * fenced   a level succeeded (`level`); the VMs it covers were recovered. Stays until `vk node
 *          ready` (which lifts a storage blocklist first)
 * failed   every level failed (or none is configured): retried with back-off, nothing recovered
 */
export const FENCE_STATES = ['lost', 'fencing', 'fenced', 'failed'] as const;
export type FenceState = (typeof FENCE_STATES)[number];

const statusText = (what: string, max: number) => checkedString(what, textProblem(max, { allowEmpty: true }));
const Timestamp = TimestampSchema;
const NodeName = NameSchema;

/** One try of one level, as recorded (never a secret: messages come from FenceError / RbdError, which hold none). */
export const FenceResultSchema = z.strictObject({
  level: z.enum(FENCE_LEVELS),
  ok: z.boolean(),
  /** FenceError / RbdError reason on failure. */
  reason: statusText('reason', 64).optional(),
  message: statusText('message', 1024),
  ms: intInRange(0),
  at: Timestamp,
});
export type FenceResult = z.output<typeof FenceResultSchema>;

/** The fence concern's record of a lost node, in that node's status (`fence`); carried over by its keepalive. */
export const NodeFenceStatusSchema = z.strictObject({
  state: z.enum(FENCE_STATES),
  /** The level that fenced it (state fenced). */
  level: z.enum(FENCE_LEVELS).optional(),
  /** The coordinator that acted. */
  by: NodeName,
  /** When that coordinator first saw the alive znode gone (its own clock). */
  lostAt: Timestamp,
  fencedAt: Timestamp.optional(),
  /** Rounds of levels tried so far. */
  rounds: intInRange(0),
  nextRetryAt: Timestamp.optional(),
  /** The last tries, newest last (at most 20). */
  results: z.array(FenceResultSchema).max(20),
  /** The storage level's blocklist entry, lifted by `vk node ready`. */
  blocklist: z.strictObject({ address: statusText('address', 128), ttlS: intInRange(0) }).optional(),
  /** VMs started elsewhere, and VMs left in place because no successful level covers them. */
  recovered: z.array(NodeName).default([]),
  notRecovered: z.array(z.strictObject({ vm: NodeName, why: statusText('why', 512) })).default([]),
  message: statusText('message', 1024),
  updatedAt: Timestamp,
});
export type NodeFenceStatus = z.output<typeof NodeFenceStatusSchema>;
export type NodeFenceStatusInput = z.input<typeof NodeFenceStatusSchema>;
