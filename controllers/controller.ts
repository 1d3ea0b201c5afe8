// A generic controller, controller-runtime style: sources + a periodic resync → one work queue of
// keys → a reconcile function. Every concern of the daemon that reacts to state is one of these.
//
//   sources  each emission means "look at key K again" (level-triggered: never "here is the change")
//   resync   every key worth a look (`keys(look)`), added at start, every `everyMs`, and whenever
//            one of `triggers` emits (a reconnect, a config change). A 'drift' look may leave out
//            the keys the concern knows settled (their last look was a no-op and nothing it read
//            has changed since); one periodic resync in `fullEvery` is a 'full' look, as are the
//            first one and every trigger's
//   reconcile  the concern's reconciler (ReconcileFn): plan from the informers, execute, Result
//   plan     optional dry run: the action lines a reconcile of K would carry out now, no effects
//
// Invariants:
//   C1  No key is queued before start(): sources are subscribed after the queue has started.
//   C2  stop() ends everything start() began — the timer, the subscriptions, the queue (in-flight
//       reconciles are aborted and awaited) — so a stopped controller acts on nothing.
//   C3  A resync adds keys only; it never bypasses the queue's per-key exclusivity.
//   C4  The first resync, every trigger's and every `fullEvery`-th periodic one are 'full'; so a
//       key a concern wrongly took for settled waits at most everyMs·fullEvery for its look.
import { Subscription, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import type { ReconcileFn } from './reconciler.ts';
import type { Runnable } from './runnable.ts';
import { WorkQueue } from './workqueue.ts';

/** How thorough a resync is: 'full' is every key; 'drift' may leave out keys the concern knows settled. */
export type ResyncLook = 'full' | 'drift';

export interface ControllerOptions<K extends string> {
  name: string;
  log: Logger;
  /** Log field the key is bound to (default 'key'). */
  keyField?: 'key' | 'vm';
  /** Keys processed at once. */
  concurrency: number;
  /** Streams of keys to look at again. */
  sources: ReadonlyArray<Observable<K>>;
  resync: {
    /** Every key worth a look now (a 'drift' look may leave out settled keys). */
    keys(look: ResyncLook): K[] | Promise<K[]>;
    everyMs: number;
    /** One periodic resync in this many is 'full', the others 'drift' (default 1: every one full). */
    fullEvery?: number;
    /** Extra moments for a full look (reconnects, config changes). */
    triggers?: ReadonlyArray<Observable<unknown>>;
  };
  reconcile: ReconcileFn<K>;
  /** Dry run of one key: what a reconcile would do now, one line per action. Changes nothing. */
  plan?(key: K): Promise<string[]>;
}

export class Controller<K extends string> implements Runnable {
  readonly name: string;
  readonly queue: WorkQueue<K>;
  private readonly subs = new Subscription();
  private timer: NodeJS.Timeout | undefined;
  private periodic = 0;

  constructor(private readonly o: ControllerOptions<K>) {
    this.name = o.name;
    this.queue = new WorkQueue<K>({
      name: o.name,
      concurrency: o.concurrency,
      logger: o.log,
      ...(o.keyField ? { keyField: o.keyField } : {}),
      reconciler: o.reconcile,
    });
  }

  async start(): Promise<void> {
    this.queue.start();
    for (const source of this.o.sources) this.subs.add(source.subscribe((key) => this.queue.add(key)));
    for (const trigger of this.o.resync.triggers ?? []) this.subs.add(trigger.subscribe(() => this.resync()));
    this.resync();
    const fullEvery = Math.max(1, Math.floor(this.o.resync.fullEvery ?? 1));
    this.timer = setInterval(() => this.resync(++this.periodic % fullEvery === 0 ? 'full' : 'drift'), this.o.resync.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.subs.unsubscribe();
    await this.queue.shutdown({ abort: true });
  }

  /** "Look again" at every key the concern cares about ('drift': but those it knows settled). */
  resync(look: ResyncLook = 'full'): void {
    Promise.resolve()
      .then(() => this.o.resync.keys(look))
      .then(
        (keys) => {
          // Once each: a key listed twice (a VM and its local domain) that a worker took at once
          // would otherwise be marked dirty by its second add and looked at twice.
          for (const key of new Set(keys)) this.queue.add(key);
        },
        (error: unknown) => this.o.log.warn({ err: error, controller: this.name }, 'resync could not list its keys'),
      );
  }

  /** Every key's dry-run lines, keys sorted. Empty when the concern has no planner. */
  async plan(): Promise<string[]> {
    const { plan } = this.o;
    if (!plan) return [];
    const lines: string[] = [];
    for (const key of [...new Set(await this.o.resync.keys('full'))].sort()) lines.push(...(await plan(key)));
    return lines;
  }
}
