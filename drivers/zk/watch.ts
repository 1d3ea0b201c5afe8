// Level-triggered watch streams over ZooKeeper's one-shot watches.
//
// INVARIANTS (watchData / watchChildren; everything else in this file serves them)
//  1. Cold: nothing happens until subscribe. On subscribe the znode is read with a one-shot watch
//     and the result is emitted: {kind:'data'|'children', …} or {kind:'deleted'} when absent.
//  2. Level-triggered: every watch event (and every (re)connection) causes a re-read that re-arms
//     the watch, and the value re-read is emitted. The latest value is never missed; intermediate
//     values may be skipped. A watch event carries no data we trust: only the re-read counts.
//  3. At most one read per subscription is in flight. An event during a read marks the stream
//     dirty and one more read follows, so the value after the last event is always read.
//  4. An absent znode is watched with exists(), so its (re)creation is seen; a node deleted and
//     re-created shows as data → deleted → data whenever the reads fall in between (and as a data
//     change with a new czxid otherwise).
//  5. Emissions never go backwards: reads of one session are answered in order, a new session
//     never connects to a server behind the last zxid we saw (see connection-state), and a state
//     older than the last emitted one of the same znode incarnation is dropped.
//  6. Dedupe: a state equal to the previous emission (same kind and same mzxid for data, same
//     czxid+cversion for children) is not emitted again (a spurious or repeated event is free).
//  7. Sessions: watches of a lost session are gone; on every (re)connection, same or new session,
//     the stream re-reads and re-arms. Connection loss never errors the stream. Other errors
//     (NoAuth, …) error it.
//  8. Unsubscribe stops everything: no further reads; a one-shot watch still registered in the
//     client that fires later is ignored (the library cannot remove watches).
//  9. Closing the store completes every watch stream.
import { Observable } from 'rxjs';
import type { Event, Stat } from 'node-zookeeper-client';
import type { RawClient } from './client-internals.ts';
import { ZK_CODE, codeOf, toZkError } from './errors.ts';
import { toZkStat } from './stat.ts';
import type { ChildrenState, DataState } from './types.ts';

/** What a watch needs from the session manager. */
export interface WatchHost {
  /** The connected client, or null while not connected. */
  current(): RawClient | null;
  /** Emits on every (re)connection, same or new session; completes when the store is closed. */
  readonly connected$: Observable<RawClient>;
  /** A read sent on `client` at `sentAt` (performance.now()) was answered: the session lived then. */
  answered?(client: RawClient, sentAt: number): void;
}

/** Signals "the znode appeared between getX and exists: read again". */
const AGAIN = Symbol('again');
type ReadDone<S> = (err: unknown, state?: S) => void;
type Reader<S> = (client: RawClient, watcher: (e: Event) => void, done: ReadDone<S>) => void;

const EMPTY = Buffer.alloc(0);

/** A comparable identity of a state: equal identity = nothing new to emit. */
interface Identity {
  key: string;
  /** Incarnation (czxid) and position (version) of a state, for the never-backwards rule. */
  czxid?: bigint;
  version?: number;
}

/** Where a level watch delivers its states (an rxjs Subscriber is one). */
export interface WatchSink<S> {
  next(state: S): void;
  error(error: unknown): void;
  complete(): void;
}

function levelWatch<S>(host: WatchHost, path: string, read: Reader<S>, identify: (s: S) => Identity): Observable<S> {
  return new Observable<S>((subscriber) => startLevelWatch(host, path, read, identify, subscriber));
}

/** The watch itself (invariants above); returns its teardown (invariant 8). */
function startLevelWatch<S>(host: WatchHost, path: string, read: Reader<S>, identify: (s: S) => Identity, subscriber: WatchSink<S>): () => void {
  let active = true;
  let reading = false;
  let dirty = false;
  let last: Identity | undefined;

  // One stable function per subscription: the library de-duplicates identical watchers.
  const watcher = (): void => {
    if (active) kick();
  };

  const kick = (): void => {
    if (!active) return;
    if (reading) {
      dirty = true;
      return;
    }
    const client = host.current();
    if (!client) return; // connected$ kicks us when a connection is back
    reading = true;
    dirty = false;
    const sentAt = performance.now();
    read(client, watcher, (err, state) => {
      if (!err) host.answered?.(client, sentAt);
      onRead(err, state);
    });
  };

  const onRead: ReadDone<S> = (err, state) => {
    reading = false;
    if (!active) return;
    if (err === AGAIN) {
      kick();
      return;
    }
    if (err) {
      const code = codeOf(err);
      if (code === ZK_CODE.CONNECTION_LOSS || code === ZK_CODE.SESSION_EXPIRED || code === ZK_CODE.OPERATION_TIMEOUT) {
        // Re-read when connected again (connected$). If that already happened, a kick is pending as dirty.
        if (dirty) kick();
        return;
      }
      active = false;
      subscriber.error(toZkError(err, path));
      return;
    }
    const s = state as S;
    const id = identify(s);
    const stale =
      last !== undefined && id.czxid !== undefined && last.czxid === id.czxid && id.version !== undefined && last.version !== undefined && id.version < last.version;
    if (!stale && (last === undefined || last.key !== id.key)) {
      last = id;
      subscriber.next(s);
    }
    if (dirty) kick();
  };

  const connectedSub = host.connected$.subscribe({
    next: () => {
      if (reading) dirty = true;
      else kick();
    },
    // The store was closed: nothing more will ever be read.
    complete: () => {
      active = false;
      subscriber.complete();
    },
  });
  kick();

  return () => {
    active = false;
    connectedSub.unsubscribe();
  };
}

/** exists() with the watcher when the first read said NO_NODE: arms the creation watch. */
function whenAbsent<S>(client: RawClient, path: string, watcher: (e: Event) => void, done: ReadDone<S>, deleted: S): void {
  client.exists(path, watcher, (err: unknown, stat: Stat | null) => {
    if (err) done(err);
    else if (stat) done(AGAIN); // created in between; exists() armed a data watch, read the data
    else done(null, deleted);
  });
}

export interface WatchDataOptions {
  /**
   * The znode is usually absent (a VM's migration record): probe it with exists() first, one
   * request when it is absent instead of a failed getData() and then exists(); the first read only.
   */
  expectAbsent?: boolean;
}

export function watchData(host: WatchHost, path: string, opts: WatchDataOptions = {}): Observable<DataState> {
  return new Observable<DataState>((subscriber) => followData(host, path, subscriber, opts));
}

/**
 * watchData without an Observable around it: the same watch delivering to `sink`, for a cache
 * that follows thousands of znodes (controllers/informers/vms.ts) and wants no per-znode rxjs
 * pipeline. Returns the teardown.
 */
export function followData(host: WatchHost, path: string, sink: WatchSink<DataState>, opts: WatchDataOptions = {}): () => void {
  const deleted: DataState = { kind: 'deleted', path };
  let probeFirst = opts.expectAbsent === true;
  const read: Reader<DataState> = (client, watcher, done) => {
    if (probeFirst) {
      probeFirst = false;
      whenAbsent(client, path, watcher, done, deleted);
      return;
    }
    client.getData(path, watcher, (err: unknown, data: Buffer | undefined, stat: Stat) => {
      if (!err) {
        const st = toZkStat(stat);
        done(null, { kind: 'data', path, data: data ?? EMPTY, version: st.version, stat: st });
      } else if (codeOf(err) === ZK_CODE.NO_NODE) {
        whenAbsent(client, path, watcher, done, deleted);
      } else {
        done(err);
      }
    });
  };
  return startLevelWatch(host, path, read, identifyData, sink);
}

function identifyData(s: DataState): Identity {
  return s.kind === 'data' ? { key: `d${s.stat.mzxid}`, czxid: s.stat.czxid, version: s.version } : { key: 'x' };
}

export function watchChildren(host: WatchHost, path: string): Observable<ChildrenState> {
  const deleted: ChildrenState = { kind: 'deleted', path };
  const read: Reader<ChildrenState> = (client, watcher, done) => {
    client.getChildren(path, watcher, (err: unknown, children: string[], stat: Stat) => {
      if (!err) {
        const st = toZkStat(stat);
        done(null, { kind: 'children', path, children: children.sort(), stat: st });
      } else if (codeOf(err) === ZK_CODE.NO_NODE) {
        whenAbsent(client, path, watcher, done, deleted);
      } else {
        done(err);
      }
    });
  };
  return levelWatch(host, path, read, (s) =>
    s.kind === 'children' ? { key: `c${s.stat.czxid}:${s.stat.cversion}`, czxid: s.stat.czxid, version: s.stat.cversion } : { key: 'x' },
  );
}
