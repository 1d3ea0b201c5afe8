// Per-key exponential back-off, as client-go's ItemExponentialFailureRateLimiter:
// the n-th consecutive failure of a key waits baseMs · 2^(n-1), capped at maxMs.
// Pure: the work queue keeps the per-key failure counts.

export interface BackoffOptions {
  /** Delay after the first failure. Default 5 ms. */
  baseMs: number;
  /** Ceiling. Default 5 min. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ baseMs: 5, maxMs: 5 * 60_000 });

export function resolveBackoff(opts: Partial<BackoffOptions> = {}): BackoffOptions {
  const baseMs = opts.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const maxMs = opts.maxMs ?? Math.max(DEFAULT_BACKOFF.maxMs, baseMs);
  if (!Number.isFinite(baseMs) || baseMs < 0) throw new RangeError(`backoff.baseMs must be a finite number >= 0, got ${baseMs}`);
  if (!Number.isFinite(maxMs) || maxMs < baseMs) throw new RangeError(`backoff.maxMs must be finite and >= baseMs (${baseMs}), got ${maxMs}`);
  return { baseMs, maxMs };
}

/**
 * Delay before retrying after `failures` consecutive failures (counting the
 * one that just happened; values below 1 are treated as 1).
 *   backoffDelay(1) = 5, backoffDelay(2) = 10, backoffDelay(3) = 20, … ≤ 300 000
 */
export function backoffDelay(failures: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  if (opts.baseMs === 0) return 0;
  const exp = Math.max(1, Math.floor(Number.isFinite(failures) ? failures : 1)) - 1;
  // 2 ** 1100 is Infinity; min() then yields maxMs, which is what we want.
  return Math.min(opts.maxMs, opts.baseMs * 2 ** exp);
}
