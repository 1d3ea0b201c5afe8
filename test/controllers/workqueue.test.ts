// WorkQueue invariants (see the comment block at the top of
// controllers/workqueue.ts), back-off and token-bucket math, the Result
// contract. No assertion depends on wall-clock timing: delays are checked as
// the values the queue scheduled, or under node:test mock timers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, DEFAULT_BACKOFF, resolveBackoff } from '../../controllers/backoff.ts';
import { createLogger } from '../../controllers/logger.ts';
import { fullBucket, reserveToken, resolveRateLimit, TokenBucket, tokensAt, type RateLimitOptions } from '../../controllers/rate-limit.ts';
import {
  done,
  error,
  isResult,
  normalizeResult,
  requeueAfter,
  resultFromThrown,
  terminal,
  TerminalError,
  type ReconcileContext,
  type Reconciler,
  type Result,
} from '../../controllers/reconciler.ts';
import { ReconcileAbortedError, WorkQueue, type WorkQueueOptions } from '../../controllers/workqueue.ts';
import { deferred } from '../rig/deferred.ts';

// ── helpers ──────────────────────────────────────────────────────────────

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Yield to the event loop until pred() holds (bounded by iterations, not time). */
async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (pred()) return;
    await tick();
  }
  throw new Error(`never happened: ${what}`);
}

/** Resolves after ms, or as soon as the signal aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', node: 'hv-test', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { lines, logger };
}

// Fast, unlimited defaults for tests not about back-off or rate limiting.
function queue<K extends string>(opts: Partial<WorkQueueOptions<K>> & Pick<WorkQueueOptions<K>, 'reconciler'>): WorkQueue<K> {
  return new WorkQueue<K>({ concurrency: 4, backoff: { baseMs: 1, maxMs: 8 }, rateLimit: { qps: Infinity }, ...opts });
}

function timeoutCount(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

// ── pure math ────────────────────────────────────────────────────────────

describe('backoff math', () => {
  it('doubles from baseMs per consecutive failure and caps at maxMs', () => {
    const o = { baseMs: 5, maxMs: 300_000 };
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(n, o)), [5, 10, 20, 40, 80]);
    assert.equal(backoffDelay(16, o), 163_840);
    assert.equal(backoffDelay(17, o), 300_000); // 327 680 capped
    assert.equal(backoffDelay(5000, o), 300_000); // 2**4999 = Infinity, still capped
  });
  it('defaults to 5 ms … 5 min', () => {
    assert.deepEqual({ ...DEFAULT_BACKOFF }, { baseMs: 5, maxMs: 300_000 });
    assert.equal(backoffDelay(1), 5);
    assert.equal(backoffDelay(1_000), 300_000);
  });
  it('treats failures < 1 as the first failure, baseMs 0 as no back-off', () => {
    assert.equal(backoffDelay(0, { baseMs: 3, maxMs: 100 }), 3);
    assert.equal(backoffDelay(-4, { baseMs: 3, maxMs: 100 }), 3);
    assert.equal(backoffDelay(5000, { baseMs: 0, maxMs: 0 }), 0);
  });
  it('validates options', () => {
    assert.deepEqual(resolveBackoff({ baseMs: 1 }), { baseMs: 1, maxMs: 300_000 });
    assert.deepEqual(resolveBackoff({ baseMs: 1, maxMs: 8 }), { baseMs: 1, maxMs: 8 });
    assert.throws(() => resolveBackoff({ baseMs: -1 }), RangeError);
    assert.throws(() => resolveBackoff({ baseMs: 10, maxMs: 5 }), RangeError);
    assert.throws(() => resolveBackoff({ baseMs: NaN }), RangeError);
  });
});

describe('token bucket math', () => {
  const o: RateLimitOptions = { qps: 10, burst: 3 }; // one token per 100 ms
  it('lets `burst` reservations through, then spaces them 1/qps apart', () => {
    let s = fullBucket(o, 0);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = reserveToken(s, 0, o);
      s = r.state;
      delays.push(r.delayMs);
    }
    assert.deepEqual(delays, [0, 0, 0, 100, 200, 300]);
    assert.equal(s.tokens, -3);
  });
  it('refills at qps, capped at burst', () => {
    const empty = { tokens: 0, atMs: 0 };
    assert.equal(tokensAt(empty, 50, o), 0.5);
    assert.equal(tokensAt(empty, 10_000, o), 3);
    assert.equal(reserveToken(empty, 50, o).delayMs, 50); // half a token short
    assert.equal(reserveToken(empty, 100, o).delayMs, 0);
    // outstanding reservations are paid back before the bucket refills
    assert.equal(tokensAt({ tokens: -2, atMs: 0 }, 300, o), 1);
  });
  it('ignores a clock that goes backwards', () => {
    const r = reserveToken({ tokens: 1, atMs: 1000 }, 900, o);
    assert.deepEqual(r, { state: { tokens: 0, atMs: 1000 }, delayMs: 0 });
  });
  it('qps Infinity never delays', () => {
    const inf = { qps: Infinity, burst: 1 };
    let s = fullBucket(inf, 0);
    for (let i = 0; i < 1000; i++) {
      const r = reserveToken(s, 0, inf);
      assert.equal(r.delayMs, 0);
      s = r.state;
    }
  });
  it('defaults to 50 qps burst 100 and validates', () => {
    assert.deepEqual(resolveRateLimit(), { qps: 50, burst: 100 });
    assert.throws(() => resolveRateLimit({ qps: 0 }), RangeError);
    assert.throws(() => resolveRateLimit({ burst: 0 }), RangeError);
  });
  it('TokenBucket uses its injected clock', () => {
    let now = 0;
    const b = new TokenBucket({ qps: 10, burst: 1 }, () => now);
    assert.deepEqual([b.reserve(), b.reserve(), b.reserve()], [0, 100, 200]);
    now = 1000;
    assert.equal(b.tokens, 1); // -2 + 10 refilled, capped at burst
    assert.equal(b.reserve(), 0);
  });
});

describe('Result contract', () => {
  it('constructors', () => {
    assert.deepEqual(done, { kind: 'done' });
    assert.ok(Object.isFrozen(done));
    assert.deepEqual(requeueAfter(250), { kind: 'requeueAfter', ms: 250 });
    assert.throws(() => requeueAfter(-1), RangeError);
    assert.throws(() => requeueAfter(NaN), RangeError);
    assert.deepEqual(terminal('NoSuchNode', 'node hv9 does not exist'), { kind: 'terminal', reason: 'NoSuchNode', message: 'node hv9 does not exist' });
    const e = error('boom');
    assert.equal(e.kind, 'error');
    assert.ok(e.kind === 'error' && e.error instanceof Error && e.error.message === 'boom');
  });
  it('a thrown TerminalError is terminal, anything else is error', () => {
    assert.deepEqual(resultFromThrown(new TerminalError('BadSpec', 'memory must be > 0')), terminal('BadSpec', 'memory must be > 0'));
    const r = resultFromThrown({ code: 42 });
    assert.ok(r.kind === 'error' && r.error.message.includes('"code":42'));
  });
  it('invalid results become errors', () => {
    assert.equal(isResult({ kind: 'requeueAfter', ms: -5 }), false);
    assert.equal(normalizeResult(undefined).kind, 'error');
    assert.equal(normalizeResult({ kind: 'nope' }).kind, 'error');
    assert.equal(normalizeResult(done), done);
  });
});

// ── queue invariants ─────────────────────────────────────────────────────

describe('WorkQueue', () => {
  it('I1: a key is never processed by two workers at once', async () => {
    const active = new Map<string, number>();
    const watermark = new Map<string, number>();
    const runs = new Map<string, number>();
    const keys = ['a', 'b', 'c'];
    let q!: WorkQueue;
    q = queue({
      concurrency: 8,
      reconciler: async (key) => {
        const n = (active.get(key) ?? 0) + 1;
        active.set(key, n);
        watermark.set(key, Math.max(watermark.get(key) ?? 0, n));
        runs.set(key, (runs.get(key) ?? 0) + 1);
        if ((runs.get(key) ?? 0) % 3 === 0) q.add(key); // re-add from inside
        await pause(1);
        active.set(key, (active.get(key) ?? 1) - 1);
        return done;
      },
    });
    q.start();
    for (let i = 0; i < 300; i++) {
      q.add(keys[i % 3]!);
      if (i % 5 === 0) await tick();
    }
    await q.idle();
    await q.shutdown();
    for (const k of keys) {
      assert.equal(watermark.get(k), 1, `key ${k} was processed concurrently`);
      assert.ok((runs.get(k) ?? 0) >= 2);
    }
  });

  it('I2: adds while processing mark the key dirty; it re-runs exactly once', async () => {
    const gate = deferred();
    let runs = 0;
    const q = queue({
      reconciler: async () => {
        runs++;
        if (runs === 1) await gate.promise;
        return done;
      },
    });
    q.start();
    q.add('a');
    await until(() => q.processing === 1, 'first run started');
    for (let i = 0; i < 10; i++) q.add('a');
    assert.equal(q.depth, 0, 'a dirty key is not queued while it is processing');
    assert.equal(q.isQueued('a'), false);
    assert.equal(q.metrics().coalesced, 9);
    gate.resolve();
    await q.idle();
    assert.equal(runs, 2);
    assert.equal(q.adds, 2);
    await q.shutdown();
  });

  it('I3: 100 duplicate adds of a queued key coalesce into one run', async () => {
    let runs = 0;
    const q = queue({ reconciler: async () => (runs++, done) });
    for (let i = 0; i < 100; i++) q.add('a');
    assert.equal(q.depth, 1);
    assert.equal(q.adds, 1);
    assert.equal(q.metrics().coalesced, 99);
    q.start();
    await q.idle();
    assert.equal(runs, 1);
    await q.shutdown();
  });

  it('processes keys in FIFO order', async () => {
    const order: string[] = [];
    const q = queue({ concurrency: 1, reconciler: async (k) => (order.push(k), done) });
    for (const k of ['c', 'a', 'b', 'a', 'c', 'd']) q.add(k);
    q.start();
    await q.idle();
    assert.deepEqual(order, ['c', 'a', 'b', 'd']);
    await q.shutdown();
  });

  it('I4: failures back off exponentially (the delays the queue scheduled), capped', async () => {
    const { lines, logger } = captureLogs();
    const retries: Array<[string, number, number]> = [];
    let runs = 0;
    const backoff = { baseMs: 1, maxMs: 8 };
    const q = new WorkQueue({
      concurrency: 2,
      backoff,
      rateLimit: { qps: Infinity },
      logger,
      reconciler: async () => (++runs <= 5 ? error(new Error(`attempt ${runs} failed`)) : done),
      onRetry: (key, delayMs, failures) => retries.push([key, delayMs, failures]),
    });
    q.start();
    q.add('vm1');
    await q.idle();
    assert.equal(runs, 6);
    const expected = [1, 2, 3, 4, 5].map((n) => backoffDelay(n, backoff));
    assert.deepEqual(expected, [1, 2, 4, 8, 8]);
    assert.deepEqual(retries, expected.map((d, i) => ['vm1', d, i + 1]));
    assert.equal(q.retries, 5);
    assert.equal(q.failures('vm1'), 0, 'success forgets the failures');
    // each failure is logged at warn with the back-off delay
    const warns = lines.filter((l) => l['level'] === 'warn');
    assert.deepEqual(warns.map((l) => l['delayMs']), expected);
    assert.deepEqual(warns.map((l) => l['failures']), [1, 2, 3, 4, 5]);
    for (const w of warns) {
      assert.equal(w['key'], 'vm1');
      assert.equal(typeof w['reconcileId'], 'string');
      assert.match(String((w['err'] as { message: string }).message), /attempt \d failed/);
    }
    await q.shutdown();
  });

  it('I4: success resets the back-off; a thrown error counts as a failure', async () => {
    const script: Array<Result | 'throw'> = ['throw', error('x'), done, 'throw', done];
    const retries: number[] = [];
    const results: string[] = [];
    const q = queue({
      backoff: { baseMs: 2, maxMs: 1000 },
      reconciler: async () => {
        const r = script.shift();
        if (r === 'throw') throw new Error('thrown');
        return r ?? done;
      },
      onRetry: (_k, d) => retries.push(d),
      onResult: (_k, r) => results.push(r.kind),
    });
    q.start();
    q.add('a');
    await q.idle();
    assert.deepEqual(retries, [2, 4]);
    assert.equal(q.failures('a'), 0);
    q.add('a');
    await q.idle();
    assert.deepEqual(retries, [2, 4, 2], 'back-off restarted from baseMs after a success');
    assert.deepEqual(results, ['error', 'error', 'done', 'error', 'done']);
    await q.shutdown();
  });

  it('forget() resets the per-key failure count', async () => {
    const q = queue({ backoff: { baseMs: 10, maxMs: 1000 }, reconciler: async () => done });
    assert.deepEqual([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')], [10, 20, 40]);
    assert.equal(q.failures('a'), 3);
    q.forget('a');
    assert.equal(q.failures('a'), 0);
    assert.equal(q.addRateLimited('a'), 10);
    assert.equal(q.addRateLimited('b'), 10, 'failure counts are per key');
    await q.shutdown();
  });

  it('I6: retries wait max(per-key back-off, global token bucket); plain adds are not limited', async () => {
    const now = 0; // frozen clock: the bucket never refills
    const q = new WorkQueue({
      concurrency: 1,
      reconciler: async () => done,
      backoff: { baseMs: 5, maxMs: 1000 },
      rateLimit: { qps: 10, burst: 2 },
      now: () => now,
    });
    // burst of 2, then 100 ms per token; per-key back-off 5 ms for each first failure
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => q.addRateLimited(k)), [5, 5, 100, 200]);
    // a key deep in back-off: its own delay dominates the bucket's
    const e = new WorkQueue({ concurrency: 1, reconciler: async () => done, backoff: { baseMs: 50, maxMs: 10_000 }, rateLimit: { qps: 10, burst: 1 }, now: () => now });
    assert.deepEqual([e.addRateLimited('x'), e.addRateLimited('x'), e.addRateLimited('x')], [50, 100, 200]);
    assert.equal(e.addRateLimited('y'), 300); // bucket is 3 tokens behind
    // plain adds bypass the bucket
    for (let i = 0; i < 50; i++) q.add(`k${i}`);
    assert.equal(q.depth, 50);
    await Promise.all([q.shutdown(), e.shutdown()]);
  });

  it('I7: never more than `concurrency` keys at once', async () => {
    let active = 0;
    let watermark = 0;
    let runs = 0;
    const q = queue({
      concurrency: 3,
      reconciler: async () => {
        active++;
        runs++;
        watermark = Math.max(watermark, active);
        await pause(1);
        active--;
        return done;
      },
    });
    for (let i = 0; i < 50; i++) q.add(`vm${i}`);
    q.start();
    await until(() => q.processing > 0, 'workers started');
    assert.equal(q.processing, 3);
    assert.equal(q.depth, 47);
    await q.idle();
    assert.equal(runs, 50);
    assert.equal(watermark, 3);
    await q.shutdown();
  });

  it('I8: cancel(key) aborts the in-flight signal and re-runs the key once; the abort is not a failure', async () => {
    const signals: AbortSignal[] = [];
    const q = queue({
      reconciler: async (_key, signal) => {
        signals.push(signal);
        if (signals.length === 1) {
          await new Promise((r) => signal.addEventListener('abort', r));
          throw signal.reason;
        }
        return done;
      },
    });
    q.start();
    assert.equal(q.cancel('a'), false, 'nothing in flight');
    q.add('a');
    await until(() => q.processing === 1, 'run started');
    assert.equal(q.cancel('a'), true);
    assert.equal(q.cancel('a'), false, 'already aborted');
    await q.idle();
    assert.equal(signals.length, 2);
    assert.equal(signals[0]!.aborted, true);
    assert.ok(signals[0]!.reason instanceof ReconcileAbortedError);
    assert.equal((signals[0]!.reason as ReconcileAbortedError).why, 'cancel');
    assert.equal(signals[1]!.aborted, false, 'every processing gets its own signal');
    assert.equal(q.retries, 0);
    assert.equal(q.failures('a'), 0);
    await q.shutdown();
  });

  it('I8: cancel(key, { requeue: false }) aborts without a re-run; dirty adds still re-run once', async () => {
    let runs = 0;
    const started = deferred();
    const q = queue({
      reconciler: async (_k, signal) => {
        runs++;
        started.resolve();
        await new Promise((r) => signal.addEventListener('abort', r));
        return error('aborted');
      },
    });
    q.start();
    q.add('a');
    await started.promise;
    assert.equal(q.cancel('a', { requeue: false }), true);
    await q.idle();
    assert.equal(runs, 1);
    assert.equal(q.retries, 0);
    await q.shutdown();
  });

  it('I9: terminal results (returned or thrown) are not retried', async () => {
    const results: Result[] = [];
    const q = queue({
      reconciler: async (key) => {
        if (key === 'thrown') throw new TerminalError('BadSpec', 'no such network');
        return terminal('NoSuchNode', 'hv9 is not a node');
      },
      onResult: (_k, r) => results.push(r),
    });
    q.start();
    q.add('returned');
    q.add('thrown');
    await q.idle();
    assert.equal(results.length, 2);
    assert.deepEqual(results.map((r) => r.kind), ['terminal', 'terminal']);
    assert.equal(q.retries, 0);
    assert.equal(q.delayed, 0);
    assert.equal(q.failures('returned'), 0);
    await q.shutdown();
  });

  it('I5: requeueAfter(ms) re-runs the key once, after ms (mock timers)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let runs = 0;
    const q = queue({ reconciler: async () => (++runs === 1 ? requeueAfter(60_000) : done) });
    q.start();
    q.add('a');
    await until(() => runs === 1 && q.processing === 0, 'first run finished');
    assert.equal(q.delayed, 1);
    t.mock.timers.tick(59_999);
    await tick();
    assert.equal(runs, 1);
    t.mock.timers.tick(1);
    await until(() => runs === 2 && q.processing === 0, 'second run finished');
    assert.equal(q.delayed, 0);
    await q.idle();
    assert.equal(runs, 2);
    assert.equal(q.retries, 0, 'requeueAfter is not a retry');
    await q.shutdown();
  });

  it('I5: an immediate add wins over a pending delayed add, which then coalesces', async () => {
    let runs = 0;
    const q = queue({ reconciler: async () => (runs++, done) });
    q.start();
    q.addAfter('a', 3_600_000);
    assert.equal(q.delayed, 1);
    q.add('a');
    await q.idle(); // does not wait an hour: the run superseded the delayed add
    assert.equal(runs, 1);
    assert.equal(q.delayed, 0);
    await q.shutdown();
  });

  it('I5: requeueAfter while dirty: the dirty re-run supersedes the timer', async () => {
    const gate = deferred();
    let runs = 0;
    const q = queue({
      reconciler: async () => {
        runs++;
        if (runs === 1) {
          await gate.promise;
          return requeueAfter(3_600_000);
        }
        return done;
      },
    });
    q.start();
    q.add('a');
    await until(() => q.processing === 1, 'first run started');
    q.add('a');
    gate.resolve();
    await q.idle();
    assert.equal(runs, 2);
    await q.shutdown();
  });

  it('I5: the earliest deadline of several delayed adds wins', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let runs = 0;
    const q = queue({ reconciler: async () => (runs++, done) });
    q.start();
    q.addAfter('a', 1000);
    q.addAfter('a', 5000); // later: ignored
    q.addAfter('b', 5000);
    q.addAfter('b', 1000); // earlier: replaces
    assert.equal(q.delayed, 2);
    t.mock.timers.tick(1000);
    await until(() => runs === 2 && q.processing === 0, 'both ran');
    assert.equal(q.delayed, 0);
    t.mock.timers.tick(10_000);
    await tick();
    assert.equal(runs, 2);
    q.addAfter('c', 0); // <= 0 adds now
    assert.equal(q.depth + q.processing, 1);
    await q.idle();
    assert.equal(runs, 3);
    await q.shutdown();
  });

  it('I10: shutdown drains in-flight work without aborting it, drops the rest, then ignores adds', async () => {
    const gate = deferred();
    const seen: string[] = [];
    let signal: AbortSignal | undefined;
    const q = queue({
      concurrency: 1,
      reconciler: async (key, s) => {
        seen.push(key);
        signal = s;
        await gate.promise;
        return error('fails, but is not retried during shutdown');
      },
    });
    const baseline = timeoutCount();
    q.start();
    q.add('a');
    q.add('b');
    q.add('c');
    q.addAfter('d', 3_600_000);
    await until(() => q.processing === 1, 'a started');
    assert.equal(timeoutCount(), baseline, 'a delayed add does not hold the process open (unref)');
    const idleP = q.idle();
    assert.equal(timeoutCount(), baseline + 1, 'but is ref\'d while idle() is awaited');
    let shutDown = false;
    const p = q.shutdown().then(() => (shutDown = true));
    await tick();
    await tick();
    assert.equal(shutDown, false, 'waits for the in-flight run');
    assert.equal(signal?.aborted, false, 'does not abort by default');
    assert.equal(q.depth, 0);
    assert.equal(q.delayed, 0);
    q.add('x');
    q.addAfter('y', 10);
    assert.equal(q.addRateLimited('z'), undefined);
    assert.equal(q.depth + q.delayed, 0);
    gate.resolve();
    await p;
    await idleP;
    assert.equal(shutDown, true);
    assert.deepEqual(seen, ['a']);
    assert.deepEqual(q.metrics(), { depth: 0, processing: 0, delayed: 0, adds: 3, coalesced: 0, retries: 0, processed: 1 });
    q.add('after');
    q.start();
    await q.idle();
    assert.deepEqual(seen, ['a'], 'adds after shutdown are ignored');
    assert.equal(timeoutCount(), baseline, 'no timer left behind');
    await q.shutdown(); // idempotent
  });

  it('I10: shutdown({ abort: true }) aborts in-flight signals', async () => {
    let reason: unknown;
    const q = queue({
      reconciler: async (_k, signal) => {
        await new Promise((r) => signal.addEventListener('abort', r));
        reason = signal.reason;
        throw signal.reason;
      },
    });
    q.start();
    q.add('a');
    q.add('b');
    await until(() => q.processing === 2, 'both started');
    await q.shutdown({ abort: true });
    assert.ok(reason instanceof ReconcileAbortedError);
    assert.equal(reason.why, 'shutdown');
    assert.equal(q.processing, 0);
    assert.equal(q.retries, 0);
  });

  it('I11: idle() waits for queued, processing and delayed keys', async () => {
    let runs = 0;
    const q = queue({ reconciler: async () => (++runs < 3 ? error('retry me') : done) });
    await q.idle(); // empty queue: idle at once
    q.add('a');
    let idle = false;
    const p = q.idle().then(() => (idle = true));
    await tick();
    assert.equal(idle, false, 'not started: still queued');
    q.start();
    await p;
    assert.equal(runs, 3, 'idle only after the delayed retries ran');
    await q.shutdown();
  });

  it('accepts a Reconciler object and hands it a context; logs each processing at debug', async () => {
    const { lines, logger } = captureLogs();
    const ids: string[] = [];
    class Rec implements Reconciler<string> {
      async reconcile(key: string, _signal: AbortSignal, ctx?: ReconcileContext) {
        ids.push(ctx!.reconcileId);
        ctx!.logger.info({ step: 'define' }, `reconciling ${key}`);
        return done;
      }
    }
    const q = new WorkQueue({ concurrency: 1, reconciler: new Rec(), logger, name: 'domain' });
    q.start();
    q.add('vm1');
    q.add('vm2');
    await q.idle();
    await q.shutdown();
    assert.equal(ids.length, 2);
    assert.notEqual(ids[0], ids[1]);
    for (const [i, key] of ['vm1', 'vm2'].entries()) {
      const mine = lines.filter((l) => l['reconcileId'] === ids[i]);
      assert.deepEqual(mine.map((l) => l['msg']), ['reconcile start', `reconciling ${key}`, 'reconcile done']);
      for (const l of mine) {
        assert.equal(l['key'], key);
        assert.equal(l['queue'], 'domain');
        assert.equal(l['node'], 'hv-test');
      }
      assert.equal(mine[0]!['level'], 'debug');
      assert.equal(mine[2]!['result'], 'done');
      assert.equal(typeof mine[2]!['durationMs'], 'number');
    }
  });

  it('onResult gets the normalised result and a duration; a throwing hook does not break the queue', async () => {
    const seen: Array<[string, string, number]> = [];
    const q = queue({
      reconciler: async (k) => (k === 'bad' ? (undefined as unknown as Result) : done),
      onResult: (k, r, ms) => {
        seen.push([k, r.kind, ms]);
        throw new Error('hook bug');
      },
    });
    q.start();
    q.add('ok');
    await q.idle();
    q.add('bad');
    await until(() => q.retries >= 1, 'invalid result retried');
    q.forget('bad');
    await q.shutdown();
    assert.equal(seen[0]![0], 'ok');
    assert.equal(seen[0]![1], 'done');
    assert.ok(seen[0]![2] >= 0);
    assert.deepEqual(seen[1]!.slice(0, 2), ['bad', 'error']);
  });

  it('a reconciler function that throws synchronously counts as an error', async () => {
    let runs = 0;
    const q = queue({
      reconciler: ((): Promise<Result> => {
        if (++runs === 1) throw new Error('sync throw');
        return Promise.resolve(done);
      }) as WorkQueueOptions<string>['reconciler'],
    });
    q.start();
    q.add('a');
    await q.idle();
    assert.equal(runs, 2);
    assert.equal(q.retries, 1);
    await q.shutdown();
  });

  it('validates concurrency', () => {
    assert.throws(() => new WorkQueue({ concurrency: 0, reconciler: async () => done }), RangeError);
    assert.throws(() => new WorkQueue({ concurrency: 1.5, reconciler: async () => done }), RangeError);
  });
});
