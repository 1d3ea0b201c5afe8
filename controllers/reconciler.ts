// The reconcile contract, controller-runtime style (DESIGN.md §7).
//
// A reconciler is called with a key ("look at K again") and an AbortSignal.
// It re-reads desired and observed state, acts, and answers with a Result:
//
//   done            converged; forget any back-off for the key
//   requeueAfter    look again in `ms` (no back-off, no failure counted)
//   error           transient failure; retried with per-key exponential back-off
//   terminal        permanent failure; not retried until something else adds
//                   the key again (the status condition says why)
//
// A thrown error counts as { kind: 'error' }, except a thrown TerminalError,
// which counts as { kind: 'terminal' }.

import type { Logger } from 'pino';

export type Result =
  | { kind: 'done' }
  | { kind: 'requeueAfter'; ms: number }
  | { kind: 'error'; error: Error }
  | { kind: 'terminal'; reason: string; message: string };

export type ResultKind = Result['kind'];

/** What the work queue hands each processing besides key and signal. */
export interface ReconcileContext {
  /** Short id shared by every log line of this one processing. */
  reconcileId: string;
  /** Child logger already bound to { key, reconcileId }. */
  logger: Logger;
}

export interface Reconciler<K> {
  reconcile(key: K, signal: AbortSignal, ctx?: ReconcileContext): Promise<Result>;
}

/** The function form accepted wherever a Reconciler is. */
export type ReconcileFn<K> = (key: K, signal: AbortSignal, ctx: ReconcileContext) => Promise<Result>;

export const done: Result = Object.freeze({ kind: 'done' });

export function requeueAfter(ms: number): Result {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`requeueAfter: ms must be a finite number >= 0, got ${ms}`);
  return { kind: 'requeueAfter', ms };
}

/** A transient failure (retried with back-off). Non-Error values are wrapped. */
export function error(err: unknown): Result {
  return { kind: 'error', error: toError(err) };
}

/** A permanent failure: `reason` is CamelCase and machine-readable, `message` is for people. */
export function terminal(reason: string, message: string): Result {
  return { kind: 'terminal', reason, message };
}

/** Throw this from deep inside an executor to end the reconcile with a terminal result. */
export class TerminalError extends Error {
  override name = 'TerminalError';
  readonly reason: string;
  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

export function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (typeof err === 'string') return new Error(err);
  let text: string;
  try {
    text = JSON.stringify(err) ?? String(err);
  } catch {
    text = String(err);
  }
  return new Error(`non-Error thrown: ${text}`, { cause: err });
}

/** Map a thrown value to a Result: TerminalError → terminal, anything else → error. */
export function resultFromThrown(err: unknown): Result {
  if (err instanceof TerminalError) return terminal(err.reason, err.message);
  return error(err);
}

export function isResult(x: unknown): x is Result {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  switch (r['kind']) {
    case 'done':
      return true;
    case 'requeueAfter':
      return typeof r['ms'] === 'number' && Number.isFinite(r['ms']) && r['ms'] >= 0;
    case 'error':
      return r['error'] instanceof Error;
    case 'terminal':
      return typeof r['reason'] === 'string' && typeof r['message'] === 'string';
    default:
      return false;
  }
}

/** Accept what a reconciler returned; anything that is not a valid Result becomes an error. */
export function normalizeResult(x: unknown): Result {
  if (isResult(x)) return x;
  let shown: string;
  try {
    shown = JSON.stringify(x) ?? String(x);
  } catch {
    shown = String(x);
  }
  return error(new TypeError(`reconciler returned an invalid Result: ${shown}`));
}
