// A ZooKeeper mutual-exclusion lock (the classic recipe, Curator's InterProcessMutex shape), used to
// serialize node flushes (/virtkeeper/locks/flush, seed 003).
//
// INVARIANTS
//  1. Contenders. Each acquire() creates exactly one EPHEMERAL_SEQUENTIAL child of the lock znode,
//     named `_c_<uuid>-lock-<seq>` ("protected" names, as Curator's: the uuid finds our child again
//     when the create's reply was lost with the connection), holding JSON {owner, session, since}.
//  2. Order. Contenders are ordered by the 10-digit sequence suffix ZooKeeper appends (never by the
//     whole name). The holder is the child with the lowest sequence; the others queue behind it in
//     sequence order. Children that do not end in a sequence are ignored.
//  3. Holding is tied to a session. A child is ephemeral: when the session that created it ends
//     (clean close, crash, expiry) ZooKeeper deletes it and the next contender holds the lock. A
//     lock never outlives its holder's session, so no dead daemon can leave the cluster stuck.
//  4. Loss. The holder's `lost` signal aborts when its child disappears (session expired, someone
//     deleted it) or the store reports the session expired. While the connection is merely
//     suspended the child may still be there: the holder keeps the lock but must start nothing new
//     until `connected` again (callers check store.connectionState); an expiry then aborts `lost`.
//     Work done under the lock takes `lost` as its AbortSignal.
//  5. Waiting. A waiter re-evaluates on every change of the children list (a level-triggered
//     watch; contenders are at most one per node, so waking all of them is cheap). If its own child
//     vanished while waiting (its session expired), acquire() creates a new one, at the back of the
//     queue.
//  6. Cancellation. Aborting acquire()'s signal deletes the waiter's child and rejects with the
//     signal's reason; a child whose create outcome was unknown is looked up by uuid and deleted.
//  7. Release deletes the child (idempotent: a child already gone is fine) and aborts `lost` with
//     reason 'released'. release() never throws for a child that is gone.
//  8. Not re-entrant: each acquire() is one more contender, even from the same owner.
import { randomUUID } from 'node:crypto';
import { filter, type Subscription } from 'rxjs';
import type { Logger } from 'pino';
import { ConnectionLossError, NoNodeError, type ChildrenState, type ZkStore } from './index.ts';

const SEQUENCE = /-lock-(\d{10})$/;
const PROTECTED = /^_c_([0-9a-f-]{36})-lock-\d{10}$/;

export interface LockEntry {
  /** Child name. */
  child: string;
  sequence: number;
  /** Who queued it (the node name), from the child's data; null if unreadable. */
  owner: string | null;
  /** Session id (16 hex digits) that created it, from the child's data; null if unreadable. */
  session: string | null;
  since: string | null;
}

/** The queue as a contender sees it. */
export interface LockQueue {
  /** Current holder, null when nobody holds it. */
  holder: LockEntry | null;
  /** Contenders ahead of us (the holder included). */
  ahead: LockEntry[];
  /** Every contender in order, the holder first. */
  entries: LockEntry[];
}

export interface LockHandle {
  readonly child: string;
  /** Aborts when the lock is lost (child gone, session expired) or released. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

export class LockLostError extends Error {
  readonly reason = 'LockLost';
  constructor(message: string) {
    super(message);
    this.name = 'LockLostError';
  }
}

export function sequenceOf(child: string): number | undefined {
  const m = SEQUENCE.exec(child);
  return m ? Number(m[1]) : undefined;
}

/** Children that are contenders, in lock order (invariant 2). */
export function orderContenders(children: readonly string[]): Array<{ child: string; sequence: number }> {
  const out: Array<{ child: string; sequence: number }> = [];
  for (const child of children) {
    const sequence = sequenceOf(child);
    if (sequence !== undefined) out.push({ child, sequence });
  }
  return out.sort((a, b) => a.sequence - b.sequence || (a.child < b.child ? -1 : a.child > b.child ? 1 : 0));
}

function parseEntry(child: string, sequence: number, data: Buffer | null): LockEntry {
  let owner: string | null = null;
  let session: string | null = null;
  let since: string | null = null;
  if (data) {
    try {
      const v = JSON.parse(data.toString('utf8')) as { owner?: unknown; session?: unknown; since?: unknown };
      if (typeof v.owner === 'string') owner = v.owner;
      if (typeof v.session === 'string') session = v.session;
      if (typeof v.since === 'string') since = v.since;
    } catch {
      // Someone else's child: still a contender, of unknown owner.
    }
  }
  return { child, sequence, owner, session, since };
}

/** Every contender of the lock at `path`, holder first (for `vk get nodes` and progress). */
export async function readLockQueue(store: ZkStore, path: string): Promise<LockEntry[]> {
  const children = (await store.children(path)) ?? [];
  const ordered = orderContenders(children);
  const entries = await Promise.all(
    ordered.map(async ({ child, sequence }) => {
      const got = await store.get(`${path}/${child}`);
      return got ? parseEntry(child, sequence, got.data) : null;
    }),
  );
  return entries.filter((e): e is LockEntry => e !== null);
}

export interface ZkLockOptions {
  /** Written into the child: who queues (the node name). */
  owner: string;
  log?: Logger;
}

export class ZkLock {
  constructor(
    private readonly store: ZkStore,
    readonly path: string,
    private readonly o: ZkLockOptions,
  ) {}

  /**
   * Queue for the lock and resolve once held. `onQueue` is called with the queue each time it
   * changes while waiting (and once when the lock is held, with nobody ahead).
   */
  async acquire(signal: AbortSignal, onQueue?: (queue: LockQueue) => void): Promise<LockHandle> {
    signal.throwIfAborted();
    await this.store.ensurePath(this.path);
    for (;;) {
      const uuid = randomUUID();
      const child = await this.createChild(uuid, signal);
      const outcome = await this.waitFor(child, signal, onQueue);
      if (outcome === 'held') return this.hold(child);
      // Our child vanished while we waited (session expired): queue again (invariant 5).
      this.o.log?.warn({ lock: this.path, child }, 'lock child vanished while waiting; queueing again');
    }
  }

  private async createChild(uuid: string, signal: AbortSignal): Promise<string> {
    const data = JSON.stringify({ owner: this.o.owner, session: this.store.sessionId, since: new Date().toISOString() });
    for (;;) {
      signal.throwIfAborted();
      try {
        const created = await this.store.create(`${this.path}/_c_${uuid}-lock-`, data, { mode: 'ephemeral_sequential' });
        const child = created.slice(created.lastIndexOf('/') + 1);
        if (signal.aborted) {
          await this.deleteChild(child);
          signal.throwIfAborted();
        }
        return child;
      } catch (error) {
        if (!(error instanceof ConnectionLossError)) throw error;
        // The create may have landed: find it by its uuid (invariant 1).
        const mine = await this.findByUuid(uuid);
        if (mine) {
          if (signal.aborted) {
            await this.deleteChild(mine);
            signal.throwIfAborted();
          }
          return mine;
        }
      }
    }
  }

  private async findByUuid(uuid: string): Promise<string | undefined> {
    const children = (await this.store.children(this.path)) ?? [];
    return children.find((c) => PROTECTED.exec(c)?.[1] === uuid);
  }

  private async waitFor(child: string, signal: AbortSignal, onQueue?: (queue: LockQueue) => void): Promise<'held' | 'vanished'> {
    let sub: Subscription | undefined;
    let lastAhead = '';
    try {
      return await new Promise<'held' | 'vanished'>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        let evaluating = Promise.resolve();
        sub = this.store.watchChildren(this.path).subscribe({
          next: (state: ChildrenState) => {
            // Serialize evaluations: each reads the children's data.
            evaluating = evaluating.then(async () => {
              if (signal.aborted) return;
              const children = state.kind === 'children' ? state.children : [];
              const ordered = orderContenders(children);
              const index = ordered.findIndex((c) => c.child === child);
              if (index < 0) {
                // The list may predate our create (a stale emission); confirm with a read.
                if (await this.store.exists(`${this.path}/${child}`)) return;
                signal.removeEventListener('abort', onAbort);
                resolve('vanished');
                return;
              }
              if (index === 0) {
                signal.removeEventListener('abort', onAbort);
                onQueue?.({ holder: null, ahead: [], entries: [] });
                resolve('held');
                return;
              }
              if (!onQueue) return;
              const aheadKey = ordered.slice(0, index).map((c) => c.child).join(',');
              if (aheadKey === lastAhead) return;
              lastAhead = aheadKey;
              const entries = await Promise.all(
                ordered.map(async (c) => parseEntry(c.child, c.sequence, (await this.store.get(`${this.path}/${c.child}`))?.data ?? null)),
              );
              const ahead = entries.slice(0, index);
              onQueue({ holder: ahead[0] ?? null, ahead, entries });
            }).catch((error: unknown) => {
              signal.removeEventListener('abort', onAbort);
              reject(error);
            });
          },
          error: (error: unknown) => {
            signal.removeEventListener('abort', onAbort);
            reject(error);
          },
          complete: () => {
            signal.removeEventListener('abort', onAbort);
            reject(new LockLostError(`the store closed while waiting for ${this.path}`));
          },
        });
      });
    } catch (error) {
      // Cancelled or failed while queued: leave the queue (invariant 6).
      await this.deleteChild(child).catch((e: unknown) => this.o.log?.warn({ err: e, child }, 'could not delete the lock child'));
      throw error;
    } finally {
      sub?.unsubscribe();
    }
  }

  private hold(child: string): LockHandle {
    const lost = new AbortController();
    const path = `${this.path}/${child}`;
    const subs: Subscription[] = [];
    const end = (reason: unknown) => {
      for (const s of subs) s.unsubscribe();
      if (!lost.signal.aborted) lost.abort(reason);
    };
    subs.push(
      this.store.watchData(path).subscribe({
        next: (s) => {
          if (s.kind === 'deleted') end(new LockLostError(`lock ${this.path}: our child ${child} is gone (session ended?)`));
        },
        complete: () => end(new LockLostError(`lock ${this.path}: the store closed`)),
      }),
    );
    subs.push(
      this.store.connectionState$.pipe(filter((s) => s === 'expired')).subscribe(() => end(new LockLostError(`lock ${this.path}: the ZooKeeper session expired`))),
    );
    this.o.log?.info({ lock: this.path, child }, 'lock held');
    return {
      child,
      lost: lost.signal,
      release: async () => {
        end('released');
        await this.deleteChild(child);
        this.o.log?.info({ lock: this.path, child }, 'lock released');
      },
    };
  }

  private async deleteChild(child: string): Promise<void> {
    const path = `${this.path}/${child}`;
    const stat = await this.store.exists(path);
    if (!stat) return;
    // Only a child of our own session: never remove another contender's.
    if (stat.ephemeralOwner !== null && stat.ephemeralOwner !== this.store.sessionId) return;
    try {
      await this.store.delete(path, stat.version);
    } catch (error) {
      if (!(error instanceof NoNodeError)) throw error;
    }
  }
}
