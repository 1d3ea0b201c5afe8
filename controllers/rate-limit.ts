// A global token bucket, as golang.org/x/time/rate used by client-go's
// BucketRateLimiter: `qps` tokens per second refill a bucket of `burst`
// tokens; each retry reserves one token, and when the bucket is empty the
// reservation is honoured in the future (tokens go negative), so the caller
// learns how long it must wait. Pure functions over plain numbers, plus a
// small stateful wrapper with an injectable clock.

export interface RateLimitOptions {
  /** Sustained rate, tokens per second. Infinity disables the limit. Default 50. */
  qps: number;
  /** Bucket size: how many reservations may pass without waiting. Default 100. */
  burst: number;
}

export const DEFAULT_RATE_LIMIT: Readonly<RateLimitOptions> = Object.freeze({ qps: 50, burst: 100 });

export interface BucketState {
  /** Tokens available at `atMs`; negative when reservations are outstanding. */
  tokens: number;
  atMs: number;
}

export function resolveRateLimit(opts: Partial<RateLimitOptions> = {}): RateLimitOptions {
  const qps = opts.qps ?? DEFAULT_RATE_LIMIT.qps;
  const burst = opts.burst ?? DEFAULT_RATE_LIMIT.burst;
  if (Number.isNaN(qps) || qps <= 0) throw new RangeError(`rateLimit.qps must be > 0, got ${qps}`);
  if (!Number.isFinite(burst) || burst < 1) throw new RangeError(`rateLimit.burst must be a finite number >= 1, got ${burst}`);
  return { qps, burst };
}

export function fullBucket(opts: RateLimitOptions, nowMs: number): BucketState {
  return { tokens: opts.burst, atMs: nowMs };
}

/** Tokens available at `nowMs` (refill since `state.atMs`, capped at burst). */
export function tokensAt(state: BucketState, nowMs: number, opts: RateLimitOptions): number {
  if (opts.qps === Infinity) return opts.burst;
  const elapsed = Math.max(0, nowMs - state.atMs);
  return Math.min(opts.burst, state.tokens + (elapsed * opts.qps) / 1000);
}

/**
 * Reserve one token at `nowMs`. Returns the new state and how long the caller
 * must wait before acting (0 while the bucket has tokens).
 */
export function reserveToken(state: BucketState, nowMs: number, opts: RateLimitOptions): { state: BucketState; delayMs: number } {
  if (opts.qps === Infinity) return { state, delayMs: 0 };
  const tokens = tokensAt(state, nowMs, opts) - 1;
  const delayMs = tokens >= 0 ? 0 : (-tokens * 1000) / opts.qps;
  return { state: { tokens, atMs: Math.max(nowMs, state.atMs) }, delayMs };
}

export class TokenBucket {
  readonly opts: RateLimitOptions;
  #state: BucketState;
  readonly #now: () => number;

  constructor(opts: Partial<RateLimitOptions> = {}, now: () => number = () => performance.now()) {
    this.opts = resolveRateLimit(opts);
    this.#now = now;
    this.#state = fullBucket(this.opts, now());
  }

  /** Reserve a token now; returns the wait in ms. */
  reserve(): number {
    const r = reserveToken(this.#state, this.#now(), this.opts);
    this.#state = r.state;
    return r.delayMs;
  }

  get tokens(): number {
    return tokensAt(this.#state, this.#now(), this.opts);
  }
}
