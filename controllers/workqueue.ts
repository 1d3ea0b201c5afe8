/*
 * WorkQueue — the queue between watch streams and a reconciler, with the
 * semantics of client-go's util/workqueue (rate-limited, delaying queue)
 * plus controller-runtime's handling of reconcile Results.
 *
 * A key means "look at K again"; reconciliation is level-triggered, so keys
 * coalesce freely and a run always supersedes earlier requests for the key.
 *
 * Invariants (each is tested directly in test/controllers/workqueue.test.ts):
 *
 *  I1  Exclusive: a key is never processed by two workers at once.
 *  I2  Dirty: add(k) while k is processing marks k dirty; when that processing
 *      ends, k is queued exactly once, however many adds happened meanwhile.
 *  I3  Coalesce: add(k) while k is queued (not yet processing) is a no-op;
 *      a key sits in the queue at most once.
 *  I4  Back-off: an 'error' result (or a throw) re-adds k after
 *      max(per-key back-off, global token-bucket delay) — addRateLimited.
 *      The per-key delay is baseMs·2^(n-1) for the n-th consecutive failure,
 *      capped at maxMs (default 5 ms … 5 min). 'done', 'requeueAfter' and
 *      'terminal' forget k (failure count back to 0), as does forget(k).
 *  I5  Delayed adds (addAfter, requeueAfter): at most one pending delayed add
 *      per key, the earliest deadline wins. A pending delayed add is dropped
 *      when k starts processing: that run supersedes it and its own Result
 *      decides any further requeue. So a later immediate add wins (k runs
 *      sooner) and the delayed one coalesces into it; requeueAfter(ms) re-runs
 *      k once.
 *  I6  Rate limit: one global token bucket (default 50 qps, burst 100) delays
 *      rate-limited re-adds (retries) only; plain adds are never limited.
 *  I7  Concurrency: at most `concurrency` keys are processed at once (p-queue).
 *  I8  Cancel: every processing gets its own AbortSignal. cancel(k) aborts the
 *      in-flight processing of k and (by default) marks k dirty, so it runs
 *      once more after the aborted run ends (I2). An 'error' result from an
 *      aborted run is not a failure: no back-off, failure count unchanged.
 *  I9  Terminal: a 'terminal' result is never retried by the queue; only a new
 *      add runs k again.
 *  I10 Shutdown: shutdown() stops accepting adds (every add afterwards is
 *      ignored), drops queued keys and cancels delayed timers, aborts nothing
 *      unless { abort: true }, and resolves once in-flight processing has
 *      drained. No timer is left behind, so the process can exit.
 *  I11 idle() resolves when nothing is queued, processing or delayed.
 *
 * Timers: delayed-add timers are unref'd — a pending retry does not by itself
 * keep the process alive — except while someone awaits idle() (or shutdown()),
 * which refs them so the awaited promise can settle.
 */

import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { backoffDelay, resolveBackoff, type BackoffOptions } from './backoff.ts';
import { forReconcile, newReconcileId, silentLogger } from './logger.ts';
import { TokenBucket, type RateLimitOptions } from './rate-limit.ts';
import {
  normalizeResult,
  resultFromThrown,
  type ReconcileContext,
  type ReconcileFn,
  type Reconciler,
  type Result,
} from './reconciler.ts';

export interface WorkQueueOptions<K extends string> {
  /** Number of workers: keys processed at once. Integer >= 1. */
  concurrency: number;
  reconciler: Reconciler<K> | ReconcileFn<K>;
  /** Per-key exponential back-off. Default { baseMs: 5, maxMs: 300_000 }. */
  backoff?: Partial<BackoffOptions>;
  /** Global token bucket for retries. Default { qps: 50, burst: 100 }; qps: Infinity disables it. */
  rateLimit?: Partial<RateLimitOptions>;
  /** Parent logger; lines get { queue: name, key, reconcileId }. Default: silent. */
  logger?: Logger;
  /** Queue name bound to log lines (e.g. 'domain'). */
  name?: string;
  /** Log field the key is bound to (default 'key'; 'vm' for queues of VM names). */
  keyField?: 'key' | 'vm';
  /** Called after every processing with its (normalised) Result. */
  onResult?(key: K, result: Result, durationMs: number): void;
  /** Called whenever a rate-limited re-add is scheduled (failure n of key, delay chosen). */
  onRetry?(key: K, delayMs: number, failures: number): void;
  /** Monotonic clock in ms for durations, deadlines and the token bucket. Default performance.now. */
  now?: () => number;
}

export interface ShutdownOptions {
  /** Abort the signals of in-flight processings (default false: let them finish). */
  abort?: boolean;
}

export interface WorkQueueMetrics {
  /** Keys waiting for a worker. */
  depth: number;
  /** Keys being processed now. */
  processing: number;
  /** Keys with a pending delayed add. */
  delayed: number;
  /** Adds that queued a key or marked it dirty (coalesced adds not counted). */
  adds: number;
  /** Adds that coalesced into an already-queued or already-dirty key. */
  coalesced: number;
  /** Rate-limited re-adds scheduled (retries after failures). */
  retries: number;
  /** Processings finished. */
  processed: number;
}

/** The reason given to an aborted processing's signal. */
export class ReconcileAbortedError extends Error {
  override name = 'AbortError';
  readonly key: string;
  readonly why: 'cancel' | 'shutdown';
  constructor(key: string, why: 'cancel' | 'shutdown') {
    super(why === 'cancel' ? `reconcile of ${key} cancelled` : `reconcile of ${key} aborted by shutdown`);
    this.key = key;
    this.why = why;
  }
}

interface InFlight {
  readonly controller: AbortController;
  readonly reconcileId: string;
}

interface Delayed {
  readonly dueMs: number;
  readonly timer: NodeJS.Timeout;
}

// setTimeout treats anything above 2^31-1 ms as 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WorkQueue<K extends string = string> {
  /** FIFO of keys waiting for a worker (a Set keeps insertion order). */
  readonly #queue = new Set<K>();
  /** Keys that need a run: every queued key, plus keys added while processing. */
  readonly #dirty = new Set<K>();
  readonly #processing = new Map<K, InFlight>();
  readonly #delayed = new Map<K, Delayed>();
  readonly #failures = new Map<K, number>();

  readonly #workers: PQueue;
  readonly #reconcile: ReconcileFn<K>;
  readonly #backoff: BackoffOptions;
  readonly #bucket: TokenBucket;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #onResult: WorkQueueOptions<K>['onResult'];
  readonly #onRetry: WorkQueueOptions<K>['onRetry'];
  readonly #keyField: 'key' | 'vm';
  readonly #debug: boolean;

  #started = false;
  #shuttingDown = false;
  #idleWaiters: Array<() => void> = [];
  #adds = 0;
  #coalesced = 0;
  #retries = 0;
  #processed = 0;

  constructor(opts: WorkQueueOptions<K>) {
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
      throw new RangeError(`concurrency must be an integer >= 1, got ${opts.concurrency}`);
    }
    const r = opts.reconciler;
    this.#reconcile = typeof r === 'function' ? r : (key, signal, ctx) => r.reconcile(key, signal, ctx);
    this.#backoff = resolveBackoff(opts.backoff);
    this.#now = opts.now ?? (() => performance.now());
    this.#bucket = new TokenBucket(opts.rateLimit, this.#now);
    const base = opts.logger ?? silentLogger();
    this.#log = opts.name === undefined ? base : base.child({ queue: opts.name });
    this.#onResult = opts.onResult;
    this.#onRetry = opts.onRetry;
    this.#keyField = opts.keyField ?? 'key';
    this.#debug = this.#log.isLevelEnabled('debug');
    // Each task is a worker slot, not a key: it takes the head of #queue when
    // it runs. One task is enqueued per key pushed onto #queue.
    this.#workers = new PQueue({ concurrency: opts.concurrency, autoStart: false });
  }

  // ── adding ────────────────────────────────────────────────────────────

  /** Ask for k to be processed (I2, I3). Ignored after shutdown. */
  add(key: K): void {
    if (this.#shuttingDown) return;
    if (this.#dirty.has(key)) {
      this.#coalesced++;
      return;
    }
    this.#adds++;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return; // re-queued when processing ends
    this.#enqueue(key);
  }

  /** add(k) after `ms` (I5). ms <= 0 adds now. */
  addAfter(key: K, ms: number): void {
    if (this.#shuttingDown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const delay = Math.min(ms, MAX_TIMER_MS);
    const dueMs = this.#now() + delay;
    const existing = this.#delayed.get(key);
    if (existing !== undefined) {
      if (existing.dueMs <= dueMs) return; // the earlier deadline wins
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      if (this.#delayed.get(key)?.timer === timer) this.#delayed.delete(key);
      this.add(key);
    }, delay);
    if (this.#idleWaiters.length === 0) timer.unref?.();
    this.#delayed.set(key, { dueMs, timer });
  }

  /**
   * Count a failure of k and re-add it after max(back-off, token-bucket
   * delay) (I4, I6). Returns the delay, or undefined after shutdown.
   */
  addRateLimited(key: K): number | undefined {
    if (this.#shuttingDown) return undefined;
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    const delayMs = Math.max(backoffDelay(failures, this.#backoff), this.#bucket.reserve());
    this.#retries++;
    this.addAfter(key, delayMs);
    this.#hook('onRetry', () => this.#onRetry?.(key, delayMs, failures));
    return delayMs;
  }

  /** Reset k's back-off (its failure count). */
  forget(key: K): void {
    this.#failures.delete(key);
  }

  /**
   * Abort the in-flight processing of k (I8). Unless { requeue: false }, k is
   * marked dirty and runs again once the aborted run ends. Returns true if a
   * processing was aborted by this call.
   */
  cancel(key: K, opts: { requeue?: boolean } = {}): boolean {
    const inflight = this.#processing.get(key);
    if (inflight === undefined) return false;
    const fresh = !inflight.controller.signal.aborted;
    if (fresh) inflight.controller.abort(new ReconcileAbortedError(key, 'cancel'));
    if (opts.requeue !== false) this.add(key);
    if (fresh) this.#log.debug({ key, reconcileId: inflight.reconcileId }, 'reconcile cancelled');
    return fresh;
  }

  // ── lifecycle ─────────────────────────────────────────────────────────

  /** Start the workers. Adds made before start() are kept and processed. */
  start(): this {
    if (this.#started || this.#shuttingDown) return this;
    this.#started = true;
    this.#workers.start();
    return this;
  }

  /** I10. Idempotent; every call resolves once in-flight work has drained. */
  async shutdown(opts: ShutdownOptions = {}): Promise<void> {
    if (!this.#shuttingDown) {
      this.#shuttingDown = true;
      const dropped = this.#queue.size;
      this.#queue.clear();
      this.#dirty.clear();
      this.#workers.clear();
      for (const d of this.#delayed.values()) clearTimeout(d.timer);
      const delayed = this.#delayed.size;
      this.#delayed.clear();
      this.#log.info({ dropped, delayed, inFlight: this.#processing.size, abort: opts.abort === true }, 'work queue shutting down');
    }
    if (opts.abort === true) {
      for (const [key, f] of this.#processing) {
        if (!f.controller.signal.aborted) f.controller.abort(new ReconcileAbortedError(key, 'shutdown'));
      }
    }
    this.#checkIdle();
    await this.idle();
    await this.#workers.onIdle();
  }

  /** I11: resolves when nothing is queued, processing or delayed. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.#idleWaiters.length === 0) for (const d of this.#delayed.values()) d.timer.ref?.();
      this.#idleWaiters.push(resolve);
    });
  }

  // ── metrics ───────────────────────────────────────────────────────────

  get depth(): number {
    return this.#queue.size;
  }
  get processing(): number {
    return this.#processing.size;
  }
  get delayed(): number {
    return this.#delayed.size;
  }
  get adds(): number {
    return this.#adds;
  }
  get retries(): number {
    return this.#retries;
  }
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }
  /** Consecutive failures of k since its last success / forget. */
  failures(key: K): number {
    return this.#failures.get(key) ?? 0;
  }
  isQueued(key: K): boolean {
    return this.#queue.has(key);
  }
  isProcessing(key: K): boolean {
    return this.#processing.has(key);
  }
  metrics(): WorkQueueMetrics {
    return {
      depth: this.#queue.size,
      processing: this.#processing.size,
      delayed: this.#delayed.size,
      adds: this.#adds,
      coalesced: this.#coalesced,
      retries: this.#retries,
      processed: this.#processed,
    };
  }

  // ── processing ────────────────────────────────────────────────────────

  #enqueue(key: K): void {
    this.#queue.add(key);
    this.#workers.add(() => this.#runOne()).catch((err: unknown) => {
      this.#log.error({ err }, 'work queue worker crashed');
    });
  }

  #pop(): K | undefined {
    const head = this.#queue.values().next();
    if (head.done === true) return undefined;
    const key = head.value;
    this.#queue.delete(key);
    this.#dirty.delete(key);
    const d = this.#delayed.get(key);
    if (d !== undefined) {
      // I5: this run supersedes the pending delayed add.
      clearTimeout(d.timer);
      this.#delayed.delete(key);
    }
    return key;
  }

  async #runOne(): Promise<void> {
    const key = this.#pop();
    if (key === undefined) return; // the queue was cleared by shutdown
    const controller = new AbortController();
    const reconcileId = newReconcileId();
    this.#processing.set(key, { controller, reconcileId });
    // The child logger is made on first use: most runs log nothing, and pino binds eagerly.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= forReconcile(this.#log, { [this.#keyField]: key, reconcileId }));
    const ctx: ReconcileContext = {
      reconcileId,
      get logger() {
        return log();
      },
    };
    if (this.#debug) log().debug('reconcile start');
    const t0 = this.#now();
    let result: Result;
    try {
      result = normalizeResult(await this.#reconcile(key, controller.signal, ctx));
    } catch (err) {
      result = resultFromThrown(err);
    }
    const durationMs = this.#now() - t0;
    try {
      this.#handleResult(key, result, durationMs, controller.signal.aborted, log);
    } finally {
      this.#done(key);
    }
  }

  #handleResult(key: K, result: Result, durationMs: number, aborted: boolean, logger: () => Logger): void {
    // Debug lines only when enabled: the per-run child logger costs a bind.
    const debug = this.#debug ? logger() : undefined;
    switch (result.kind) {
      case 'done':
        this.forget(key);
        debug?.debug({ result: 'done', durationMs }, 'reconcile done');
        break;
      case 'requeueAfter':
        this.forget(key);
        debug?.debug({ result: 'requeueAfter', durationMs, requeueAfterMs: result.ms }, 'reconcile requeued');
        this.addAfter(key, result.ms);
        break;
      case 'terminal':
        this.forget(key);
        logger().warn({ result: 'terminal', durationMs, reason: result.reason, message: result.message }, 'reconcile failed terminally; not retried');
        break;
      case 'error':
        if (aborted) {
          debug?.debug({ result: 'error', durationMs, err: result.error }, 'reconcile aborted');
        } else if (this.#shuttingDown) {
          logger().warn({ result: 'error', durationMs, err: result.error }, 'reconcile failed during shutdown; not retried');
        } else {
          const delayMs = this.addRateLimited(key);
          logger().warn({ result: 'error', durationMs, err: result.error, failures: this.failures(key), delayMs }, 'reconcile failed; retrying after back-off');
        }
        break;
    }
    this.#hook('onResult', () => this.#onResult?.(key, result, durationMs));
  }

  #done(key: K): void {
    this.#processing.delete(key);
    this.#processed++;
    // I2: re-queue once if added while processing.
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#enqueue(key);
    this.#checkIdle();
  }

  #isIdle(): boolean {
    return this.#queue.size === 0 && this.#processing.size === 0 && this.#delayed.size === 0;
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0 || !this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #hook(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err, hook: name }, 'work queue hook threw');
    }
  }
}
