// The generic Controller<K> (controllers/controller.ts): invariants C1–C4, the resync moments
// (start, every trigger emission, every everyMs), plan(), and stop(). Pure machinery: sources are
// rxjs Subjects, the reconcile is a plain function, the interval runs under node:test mock timers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Observable, Subject } from 'rxjs';
import { Controller, type ControllerOptions, type ResyncLook } from '../../controllers/controller.ts';
import { createLogger, silentLogger } from '../../controllers/logger.ts';
import { done, type ReconcileFn } from '../../controllers/reconciler.ts';
import { ReconcileAbortedError } from '../../controllers/workqueue.ts';
import { waitFor } from '../rig/wait.ts';
import { deferred } from '../rig/deferred.ts';

/** Let every pending microtask and I/O callback run (mock timers do not touch setImmediate). */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

const HOUR = 3_600_000;

/** A controller whose reconcile records the keys it was called with; resync keys from `keys`. */
function rig(opts: Partial<ControllerOptions<string>> & { keys?: () => string[] | Promise<string[]>; everyMs?: number; triggers?: Subject<unknown>[] } = {}) {
  const seen: string[] = [];
  let keysCalls = 0;
  const keys = opts.keys ?? (() => []);
  const reconcile: ReconcileFn<string> =
    opts.reconcile ??
    (async (key) => {
      seen.push(key);
      return done;
    });
  const c = new Controller<string>({
    name: 'test',
    log: opts.log ?? silentLogger(),
    concurrency: opts.concurrency ?? 4,
    sources: opts.sources ?? [],
    resync: {
      keys: () => {
        keysCalls++;
        return keys();
      },
      everyMs: opts.everyMs ?? HOUR,
      triggers: opts.triggers ?? [],
    },
    reconcile,
    ...(opts.plan ? { plan: opts.plan } : {}),
  });
  return { c, seen, keysCalls: () => keysCalls };
}

/** A controller with no keys that records the look of every resync (resync every 1000 ms). */
function lookRecorder(o: { fullEvery?: number; triggers?: Subject<unknown>[] }): { c: Controller<string>; looks: ResyncLook[] } {
  const looks: ResyncLook[] = [];
  const c = new Controller<string>({
    name: 'test',
    log: silentLogger(),
    concurrency: 1,
    sources: [],
    resync: { keys: (look) => (looks.push(look), []), everyMs: 1000, ...(o.fullEvery !== undefined && { fullEvery: o.fullEvery }), triggers: o.triggers ?? [] },
    reconcile: async () => done,
  });
  return { c, looks };
}

describe('Controller: C1, sources are subscribed only once started', () => {
  it('nothing is subscribed or queued before start(); an emission before start is never reconciled', async () => {
    const hot = new Subject<string>();
    let coldSubscriptions = 0;
    const cold = new Observable<string>((sub) => {
      coldSubscriptions++;
      sub.next('cold');
    });
    const { c, seen } = rig({ sources: [hot, cold] });
    hot.next('early');
    assert.equal(hot.observed, false, 'the constructor subscribed a source');
    assert.equal(coldSubscriptions, 0);
    assert.equal(c.queue.adds, 0, 'a key was queued before start()');

    await c.start();
    try {
      assert.equal(hot.observed, true);
      assert.equal(coldSubscriptions, 1);
      hot.next('late');
      await waitFor('cold and late reconciled', () => seen.includes('cold') && seen.includes('late'));
      await c.queue.idle();
      assert.deepEqual([...seen].sort(), ['cold', 'late'], 'the emission before start() was reconciled');
    } finally {
      await c.stop();
    }
  });
});

describe('Controller: resync', () => {
  it('adds every resync key at start', async () => {
    const { c, seen, keysCalls } = rig({ keys: () => ['a', 'b', 'c'] });
    await c.start();
    try {
      await waitFor('a, b and c reconciled', () => seen.length === 3);
      assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
      assert.equal(keysCalls(), 1);
    } finally {
      await c.stop();
    }
  });

  it('resyncs on every emission of every trigger, with the keys of that moment', async () => {
    const reconnect = new Subject<unknown>();
    const configChanged = new Subject<unknown>();
    let current = ['a'];
    const { c, seen, keysCalls } = rig({ keys: () => current, triggers: [reconnect, configChanged] });
    await c.start();
    try {
      await waitFor('a reconciled after start', () => seen.length === 1);
      current = ['b'];
      reconnect.next(undefined);
      await waitFor('b reconciled after the first trigger', () => seen.includes('b'));
      current = ['c'];
      configChanged.next({});
      await waitFor('c reconciled after the second trigger', () => seen.includes('c'));
      reconnect.next(undefined);
      await waitFor('a third trigger emission resyncs too', () => keysCalls() === 4);
      await waitFor('c reconciled again', () => seen.filter((k) => k === 'c').length === 2);
      assert.deepEqual(seen, ['a', 'b', 'c', 'c']);
    } finally {
      await c.stop();
    }
  });

  it('resyncs every everyMs, and never again once stopped (C2: the timer is cleared)', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { c, seen, keysCalls } = rig({ keys: () => ['k'], everyMs: 1000 });
    await c.start();
    await flush();
    assert.equal(keysCalls(), 1, 'resync at start');
    t.mock.timers.tick(999);
    await flush();
    assert.equal(keysCalls(), 1, 'resynced before everyMs had passed');
    t.mock.timers.tick(1);
    await flush();
    assert.equal(keysCalls(), 2, 'no resync after everyMs');
    t.mock.timers.tick(3000);
    await flush();
    assert.equal(keysCalls(), 5, 'one resync per everyMs');
    await waitFor('k reconciled after the resyncs', () => seen.length >= 2);

    await c.stop();
    const after = keysCalls();
    t.mock.timers.tick(10_000);
    await flush();
    assert.equal(keysCalls(), after, 'a stopped controller still resyncs on its timer');
  });

  it('C4: the first resync, every trigger\'s and every fullEvery-th periodic one are full; the rest are drift looks', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const reconnect = new Subject<unknown>();
    const { c, looks } = lookRecorder({ fullEvery: 3, triggers: [reconnect] });
    await c.start();
    try {
      await flush();
      assert.deepEqual(looks, ['full'], 'the resync at start');
      for (let i = 0; i < 6; i++) {
        t.mock.timers.tick(1000);
        await flush();
      }
      assert.deepEqual(looks, ['full', 'drift', 'drift', 'full', 'drift', 'drift', 'full']);
      reconnect.next(undefined);
      await flush();
      assert.equal(looks.at(-1), 'full', "a trigger's resync is full");
      assert.deepEqual(await c.plan(), [], 'plan lists its keys with a full look');
    } finally {
      await c.stop();
    }
  });

  it('a key listed twice by one resync is looked at once, even when a worker took it at once', async () => {
    const gate = deferred<void>();
    const seen: string[] = [];
    const { c } = rig({
      keys: () => ['a', 'b', 'a'],
      reconcile: async (key) => {
        seen.push(key);
        await gate.promise;
        return done;
      },
    });
    await c.start();
    try {
      await waitFor('a and b taken by workers', () => seen.length === 2);
      gate.resolve();
      await c.queue.idle();
      assert.deepEqual(seen, ['a', 'b']);
    } finally {
      await c.stop();
    }
  });

  it('without fullEvery every periodic resync is full', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { c, looks } = lookRecorder({});
    await c.start();
    try {
      for (let i = 0; i < 3; i++) {
        t.mock.timers.tick(1000);
        await flush();
      }
      assert.deepEqual(looks, ['full', 'full', 'full', 'full']);
    } finally {
      await c.stop();
    }
  });

  it('a resync whose keys() fails is logged and changes nothing else', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ level: 'warn', node: 'hv-test', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
    const src = new Subject<string>();
    const { c, seen } = rig({
      log,
      sources: [src],
      keys: () => Promise.reject(new Error('cannot list')),
    });
    await c.start();
    try {
      await waitFor('the failed listing is logged', () => lines.find((l) => l['msg'] === 'resync could not list its keys'));
      const line = lines.find((l) => l['msg'] === 'resync could not list its keys')!;
      assert.equal(line['controller'], 'test');
      assert.match(JSON.stringify(line['err']), /cannot list/);
      src.next('still-works');
      await waitFor('a source key is still reconciled', () => seen.includes('still-works'));
    } finally {
      await c.stop();
    }
  });
});

describe('Controller: C3, a resync never bypasses per-key exclusivity', () => {
  it('resyncs while a key is processing mark it dirty: it runs once more, never twice at once', async () => {
    const trigger = new Subject<unknown>();
    const release = deferred();
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const { c, keysCalls } = rig({
      concurrency: 4,
      keys: () => ['a'],
      triggers: [trigger],
      reconcile: async () => {
        runs++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        if (runs === 1) await release.promise;
        running--;
        return done;
      },
    });
    await c.start();
    try {
      await waitFor('a is processing', () => c.queue.isProcessing('a'));
      for (let i = 0; i < 3; i++) trigger.next(undefined);
      await waitFor('three more resyncs listed their keys', () => keysCalls() === 4);
      await flush();
      assert.equal(runs, 1, 'a resync started a second run of a key in flight');
      assert.equal(c.queue.isQueued('a'), false, 'a key in flight was queued beside its run');
      release.resolve();
      await waitFor('a ran again after its first run ended', () => runs === 2);
      await c.queue.idle();
      assert.equal(runs, 2, 'three resyncs during one run must coalesce into one more run');
      assert.equal(maxRunning, 1, 'key a was processed twice at once');
    } finally {
      release.resolve();
      await c.stop();
    }
  });
});

describe('Controller: plan()', () => {
  it("is every resync key's plan lines, keys deduplicated and sorted, reconciling nothing", async () => {
    const planned: string[] = [];
    const { c, seen } = rig({
      keys: () => Promise.resolve(['b', 'a', 'c', 'b', 'a']),
      plan: async (key) => {
        planned.push(key);
        return [`${key} one`, `${key} two`];
      },
    });
    const lines = await c.plan();
    assert.deepEqual(lines, ['a one', 'a two', 'b one', 'b two', 'c one', 'c two']);
    assert.deepEqual(planned, ['a', 'b', 'c'], 'each key planned once, in sorted order');
    assert.deepEqual(seen, []);
    assert.equal(c.queue.adds, 0, 'plan() queued keys');
    await c.stop();
  });

  it('is empty when the concern has no planner', async () => {
    const { c } = rig({ keys: () => ['a'] });
    assert.deepEqual(await c.plan(), []);
    await c.stop();
  });
});

describe('Controller: C2, stop()', () => {
  it('aborts the reconcile in flight and resolves only once it has ended', async () => {
    let signalSeen: AbortSignal | undefined;
    let ended = false;
    const src = new Subject<string>();
    const { c } = rig({
      sources: [src],
      reconcile: async (_key, signal) => {
        signalSeen = signal;
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        // Still some work after the abort: stop() must wait for it.
        await flush();
        ended = true;
        return done;
      },
    });
    await c.start();
    src.next('slow');
    await waitFor('slow is processing', () => c.queue.isProcessing('slow'));
    await c.stop();
    assert.ok(signalSeen?.aborted, 'the in-flight reconcile was not aborted');
    assert.ok(signalSeen.reason instanceof ReconcileAbortedError);
    assert.equal((signalSeen.reason as ReconcileAbortedError).why, 'shutdown');
    assert.equal(ended, true, 'stop() resolved before the in-flight reconcile had ended');
    assert.equal(c.queue.processing, 0);
  });

  it('unsubscribes sources and triggers: an emission after stop() reaches nothing', async () => {
    const src = new Subject<string>();
    const trigger = new Subject<unknown>();
    const { c, seen, keysCalls } = rig({ sources: [src], triggers: [trigger], keys: () => ['r'] });
    await c.start();
    src.next('before');
    await waitFor('before and r reconciled', () => seen.includes('before') && seen.includes('r'));
    await c.stop();
    assert.equal(src.observed, false, 'a source is still subscribed');
    assert.equal(trigger.observed, false, 'a trigger is still subscribed');
    const adds = c.queue.adds;
    const calls = keysCalls();
    const reconciled = seen.length;
    src.next('after');
    trigger.next(undefined);
    await flush();
    assert.equal(c.queue.adds, adds, 'an emission after stop() was queued');
    assert.equal(keysCalls(), calls, 'a trigger after stop() resynced');
    assert.equal(seen.length, reconciled, 'an emission after stop() was reconciled');
    assert.ok(!seen.includes('after'));
  });
});
