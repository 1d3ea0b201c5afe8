// Structured JSON logs (pino). Every line carries the node; reconcile lines
// also carry the VM (or queue key) and a reconcileId shared by all lines of
// one processing, so `grep reconcileId` tells the story of one reconcile.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { pino, type DestinationStream, type Level, type LevelWithSilent, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface CreateLoggerOptions {
  /** Default: $VK_LOG_LEVEL, else 'info'. */
  level?: LevelWithSilent;
  /** Node name bound to every line. Default: os.hostname(). */
  node?: string;
  /** Where lines go. Default: stdout. */
  destination?: DestinationStream;
}

const LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function isLevel(x: string): x is LevelWithSilent {
  return (LEVELS as readonly string[]).includes(x);
}

/** The level from the option, else from VK_LOG_LEVEL, else 'info'. Throws on an unknown level. */
export function resolveLevel(level?: string, env: NodeJS.ProcessEnv = process.env): LevelWithSilent {
  const raw = level ?? env['VK_LOG_LEVEL'];
  if (raw === undefined || raw === '') return 'info';
  const l = raw.trim().toLowerCase();
  if (!isLevel(l)) {
    throw new Error(`unknown log level ${JSON.stringify(raw)}${level === undefined ? ' (from VK_LOG_LEVEL)' : ''}; expected one of ${LEVELS.join(', ')}`);
  }
  return l;
}

export function createLogger(opts: CreateLoggerOptions = {}): Logger {
  return pino(
    {
      level: resolveLevel(opts.level),
      base: { node: opts.node ?? hostname() },
      // "level":"warn" rather than "level":40: readable with plain jq/grep.
      formatters: { level: (label: string) => ({ level: label }) },
    },
    opts.destination,
  );
}

/** A logger that drops everything (the default where none is given). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

export function forVm(logger: Logger, vm: string): Logger {
  return logger.child({ vm });
}

export interface ReconcileLogFields {
  reconcileId: string;
  vm?: string;
  /** Work-queue key, for queues whose keys are not VM names. */
  key?: string;
}

export function forReconcile(logger: Logger, fields: ReconcileLogFields): Logger {
  const bindings: Record<string, string> = {};
  if (fields.vm !== undefined) bindings['vm'] = fields.vm;
  if (fields.key !== undefined) bindings['key'] = fields.key;
  bindings['reconcileId'] = fields.reconcileId;
  return logger.child(bindings);
}

// 8 hex chars. Starts at a random 32-bit value per process and counts up, so
// ids are unique within a process for 2^32 reconciles (a purely random 32-bit
// id would collide after ~10^5), differ across restarts, and cost no syscall.
let nextId = randomBytes(4).readUInt32BE(0);

export function newReconcileId(): string {
  const id = nextId;
  nextId = (nextId + 1) >>> 0;
  return id.toString(16).padStart(8, '0');
}

export type { Level, LevelWithSilent };
