// The events log (DESIGN §3 `/virtkeeper/events`, §4 "Observability"): a bounded ring of notable
// transitions that daemons and the CLI append to and `vk events [-w]` shows.
//
// Invariants:
// - An event is one persistent sequential child `e-<10 digits>` of /events; ZooKeeper's sequence
//   number (from the parent's child counter) orders events, never the writers' clocks.
// - An event is validated (schemas/event.ts) before anything is written.
// - Bounded: after an append at sequence S, every child at a sequence <= S - max is deleted.
//   Concurrent appenders may delete the same child: NoNode is fine. Trimming takes whatever is
//   old, not just S - max, so a trim that failed (a lost connection) is made up by the next one.
// - Readers skip children they cannot read (gone since the listing, or not an event): the log is
//   a report, one bad entry never hides the others.
// - An append's create is sequential, so a connection lost during it leaves the outcome unknown
//   (ConnectionLossError): an event may then be missing or, after the caller's retry, doubled.
import { concatMap, from, mergeMap, type Observable } from 'rxjs';
import { NoNodeError, VersionConflictError, type ZkStore } from '../drivers/zk/index.ts';
import { decodeEvent, encodeEvent, ValidationError, type ClusterEvent, type ClusterEventInput, type ZkPaths } from '../schemas/index.ts';

/** How many events the log keeps by default. */
export const DEFAULT_MAX_EVENTS = 1000;

/** The prefix of every event znode's name. */
export const EVENT_PREFIX = 'e-';
const EVENT_NAME = /^e-(\d{10})$/;

/** One event of the log, with its place in it. */
export interface EventEntry {
  /** ZooKeeper's sequence number: the event's position in the log. */
  seq: number;
  /** The znode's name under /events (`e-0000000042`). */
  name: string;
  event: ClusterEvent;
}

/** Which events to show: those about this node and/or this VM. */
export interface EventFilter {
  node?: string;
  vm?: string;
}

/** The sequence number of an event znode's name, or undefined for any other name. */
export function eventSeq(name: string): number | undefined {
  const m = EVENT_NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

function matches(event: ClusterEvent, filter: EventFilter): boolean {
  return (filter.node === undefined || event.node === filter.node) && (filter.vm === undefined || event.vm === filter.vm);
}

/** The event children of /events by sequence, oldest first. */
function sortedEvents(children: readonly string[]): Array<{ seq: number; name: string }> {
  return children
    .map((name) => ({ name, seq: eventSeq(name) }))
    .filter((c): c is { name: string; seq: number } => c.seq !== undefined)
    .sort((a, b) => a.seq - b.seq);
}

/**
 * Appends `event` (validated first: a ValidationError writes nothing) and trims the log to the
 * last `max` events. Creates /events (and its parents) when missing. Resolves to the entry written.
 */
export async function appendEvent(store: ZkStore, paths: ZkPaths, event: ClusterEventInput, options: { max?: number } = {}): Promise<EventEntry> {
  const max = options.max ?? DEFAULT_MAX_EVENTS;
  if (!Number.isInteger(max) || max < 1) throw new TypeError(`appendEvent: max must be a positive integer (got ${max})`);
  const data = encodeEvent(event);
  const created = await store.create(`${paths.events}/${EVENT_PREFIX}`, data, { mode: 'persistent_sequential', parents: true });
  const name = created.slice(created.lastIndexOf('/') + 1);
  const seq = eventSeq(name);
  if (seq === undefined) throw new Error(`appendEvent: ZooKeeper named the event ${created}, not e-<10 digits>`);
  if (seq >= max) await trimEvents(store, paths, seq - max);
  return { seq, name, event: decodeEvent(data) };
}

/** Deletes every event at a sequence <= `upTo`. */
async function trimEvents(store: ZkStore, paths: ZkPaths, upTo: number): Promise<void> {
  const old = sortedEvents((await store.children(paths.events)) ?? []).filter((c) => c.seq <= upTo);
  await Promise.all(old.map((c) => deleteEvent(store, `${paths.events}/${c.name}`)));
}

async function deleteEvent(store: ZkStore, path: string): Promise<void> {
  try {
    // Events are never changed after their create: version 0.
    await store.delete(path, 0);
  } catch (error) {
    if (error instanceof NoNodeError) return;
    if (!(error instanceof VersionConflictError)) throw error;
    // Someone rewrote it: it goes all the same.
    const stat = await store.exists(path);
    if (stat) await store.delete(path, stat.version).catch((e: unknown) => (e instanceof NoNodeError ? undefined : Promise.reject(e)));
  }
}

/** Reads one event; undefined when it is gone or is not an event. */
async function readEvent(store: ZkStore, paths: ZkPaths, child: { seq: number; name: string }): Promise<EventEntry | undefined> {
  const got = await store.get(`${paths.events}/${child.name}`);
  if (!got) return undefined;
  try {
    return { ...child, event: decodeEvent(got.data) };
  } catch (error) {
    if (error instanceof ValidationError) return undefined;
    throw error;
  }
}

/** How many events are read at once when looking for the last ones that match a filter. */
const READ_CHUNK = 100;

/** The last `limit` (all without it) events of `children` that match `filter`, oldest first. */
async function lastMatching(store: ZkStore, paths: ZkPaths, children: ReadonlyArray<{ seq: number; name: string }>, filter: EventFilter, limit?: number): Promise<EventEntry[]> {
  const found: EventEntry[] = [];
  // Newest first, a chunk at a time, until `limit` are found: `--limit 20` reads about 20 events.
  for (let end = children.length; end > 0 && (limit === undefined || found.length < limit); end -= READ_CHUNK) {
    const chunk = children.slice(Math.max(0, end - READ_CHUNK), end);
    const read = await Promise.all(chunk.map((c) => readEvent(store, paths, c)));
    const hits = read.filter((e): e is EventEntry => e !== undefined && matches(e.event, filter));
    found.unshift(...hits);
  }
  return limit === undefined ? found : found.slice(-limit);
}

/** The events of the log (the last `limit` of those about `node` / `vm`), oldest first. */
export async function listEvents(store: ZkStore, paths: ZkPaths, options: EventFilter & { limit?: number } = {}): Promise<EventEntry[]> {
  const { limit, ...filter } = options;
  const children = sortedEvents((await store.children(paths.events)) ?? []);
  return lastMatching(store, paths, children, filter, limit);
}

/**
 * The events appended from now on, oldest first, each once (about `node` / `vm` when given):
 * a watch of /events' children. `backlog` first emits the last that many events already there;
 * `after` instead starts after that sequence number (events appended since a listEvents). /events
 * deleted and made again restarts the numbering: everything of the new log is then new. Never
 * completes while the store is open; errors only with the watch (NoAuth…).
 */
export function followEvents(store: ZkStore, paths: ZkPaths, options: EventFilter & { backlog?: number; after?: number } = {}): Observable<EventEntry> {
  const { backlog = 0, after, ...filter } = options;
  let cursor: number | undefined = after;
  let incarnation: bigint | undefined;
  return store.watchChildren(paths.events).pipe(
    concatMap(async (state) => {
      if (state.kind === 'deleted') {
        // No log (yet, or any more): every event of the one to come is new; it numbers from 0.
        cursor = -1;
        incarnation = undefined;
        return [];
      }
      if (incarnation !== undefined && state.stat.czxid !== incarnation) cursor = -1;
      incarnation = state.stat.czxid;
      const children = sortedEvents(state.children);
      if (cursor === undefined) {
        // The first look: the backlog, and from there on only what is new.
        cursor = children.at(-1)?.seq ?? -1;
        return backlog > 0 ? lastMatching(store, paths, children, filter, backlog) : [];
      }
      const fresh = children.filter((c) => c.seq > cursor!);
      if (fresh.length === 0) return [];
      cursor = fresh.at(-1)!.seq;
      return lastMatching(store, paths, fresh, filter);
    }),
    mergeMap((entries) => from(entries)),
  );
}
