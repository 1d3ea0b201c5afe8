// Compare-and-set of one znode: read it, decode it, apply an edit, encode the result and write it
// conditional on the version read (or create it, when it was absent and the caller allows that).
// Losing the race to another writer (BAD_VERSION on the set, NODE_EXISTS on the create) starts the
// round again from a fresh read, at most CAS_ATTEMPTS rounds; then CasConflictError. Every other
// error (a decode or edit that throws, NO_NODE on the set, a lost connection) ends the update as
// it is: only a lost race is retried.
//
// `with`: ops committed in the same multi as the write, before it (e.g. a migration record and
// the VM status it changes, all or nothing). They are written even when the edit says NO_CHANGE.
// Only a lost race on the edited znode is retried; a failing `with` op ends the update with its
// TransactionError.
//
// `also`: ops computed from each round's edited value, committed after the write in the same multi
// (e.g. the per-node index entry of the node a VM spec names). A race lost on one of them (a
// version, a create of a znode that appeared, a check of one that went) is retried like the
// write's own.
import { NodeExistsError, NoNodeError, TransactionError, VersionConflictError } from './errors.ts';
import type { ZkStore } from './store.ts';
import type { Op, OpResult } from './types.ts';

/**
 * Rounds one update gets before giving up. A round is lost only when another writer's write landed
 * between our read and our write, and each round re-reads, so losing N rounds in a row takes N
 * competing writes inside N of our read-to-write windows (a few ms each). The busiest znodes have
 * a handful of writers (a node's status: its keepalive and the flush's moves settling in parallel;
 * a VM's spec: vk and the flush), so 20 is several times what real contention needs (the flush's
 * status edits were the most patient caller, at 20), while a livelock still ends within about 20
 * round trips with an error the caller can report, instead of spinning.
 */
export const CAS_ATTEMPTS = 20;

/** What an edit returns to leave the znode as it is: nothing is written. */
export const NO_CHANGE: unique symbol = Symbol('NO_CHANGE');
export type NoChange = typeof NO_CHANGE;

/** An update lost the race CAS_ATTEMPTS times in a row. */
export class CasConflictError extends Error {
  readonly reason = 'CasConflict';
  constructor(
    readonly path: string,
    readonly attempts: number,
    what: string,
    options?: ErrorOptions,
  ) {
    super(`${what} kept changing; gave up after ${attempts} attempts`, options);
    this.name = new.target.name;
  }
}

/** One read: the value the edit starts from and the version the write is conditional on. */
export interface CasSnapshot<T> {
  value: T;
  /** The znode's version; null when it is absent and the write creates it. */
  version: number | null;
}

interface CasCommon<T, S extends CasSnapshot<T>> {
  /** Turns the edited value into the znode's bytes; may throw to refuse (nothing is written). */
  encode(value: NoInfer<T>): string | Buffer;
  /** The new value, or NO_CHANGE to write nothing. May throw to refuse (nothing is written). */
  edit(current: T, read: S): T | NoChange;
  /** Names the znode in CasConflictError's message (default: its path). */
  what?: string;
  /** Ops written in the same multi, before the edited znode (see the top of this file). */
  with?: readonly Op[];
  /** Ops for this round's new value, written in the same multi after the edited znode (see the top of this file). */
  also?(next: NoInfer<T>, read: S): Promise<readonly Op[]>;
}

/** Read the znode itself: store.get, then `decode`. */
export interface ZnodeCas<T> extends CasCommon<T, CasSnapshot<T>> {
  /** May throw (an unreadable znode): the update ends with that error. */
  decode(data: Buffer): T;
  /** Create the znode when it is absent, editing this value. Without it an absent znode stays absent. */
  absent?: () => T;
}

/** Read with the caller's own reader, which may see more than the znode (what the edit needs). */
export interface ReadCas<T, S extends CasSnapshot<T>> extends CasCommon<T, S> {
  /** null: the znode is absent and stays so. A snapshot at version null: create it. */
  read(): Promise<S | null>;
}

export type CasOutcome<T, S extends CasSnapshot<T> = CasSnapshot<T>> =
  /** `version`: the znode's version after the write (0 when created). `read`: the last read. */
  | { kind: 'written'; value: T; version: number; created: boolean; read: S; with?: OpResult[] }
  | { kind: 'unchanged'; read: S; with?: OpResult[] }
  | { kind: 'absent' };

export function compareAndSet<T>(store: ZkStore, path: string, o: ZnodeCas<T>): Promise<CasOutcome<T>>;
export function compareAndSet<S extends CasSnapshot<unknown>>(store: ZkStore, path: string, o: ReadCas<S['value'], S>): Promise<CasOutcome<S['value'], S>>;
export async function compareAndSet<T, S extends CasSnapshot<T>>(store: ZkStore, path: string, o: ZnodeCas<T> | ReadCas<T, S>): Promise<CasOutcome<T, S>> {
  const read = 'read' in o ? () => o.read() : () => readZnode(store, path, o);
  const edit = o.edit as (current: T, read: S | CasSnapshot<T>) => T | NoChange;
  let lost: unknown;
  for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
    const current = (await read()) as S | null;
    if (!current) return { kind: 'absent' };
    const next = edit(current.value, current);
    const also = next === NO_CHANGE || !o.also ? [] : await o.also(next, current as S);
    if (o.with || also.length > 0) {
      const before = o.with ?? [];
      const own: Op[] = next === NO_CHANGE ? [] : [current.version === null ? { op: 'create', path, data: o.encode(next) } : { op: 'set', path, data: o.encode(next), version: current.version }];
      try {
        const results = await store.multi([...before, ...own, ...also]);
        const mine = o.with ? results.slice(0, before.length) : undefined;
        if (next === NO_CHANGE) return { kind: 'unchanged', read: current, ...(mine && { with: mine }) };
        const version = current.version === null ? 0 : (results[before.length]?.stat?.version ?? current.version + 1);
        return { kind: 'written', value: next, version, created: current.version === null, read: current, ...(mine && { with: mine }) };
      } catch (error) {
        if (!(error instanceof TransactionError)) throw error;
        const ours = error.failedIndex === before.length && (error.cause instanceof VersionConflictError || error.cause instanceof NodeExistsError);
        const oursAlso = error.failedIndex > before.length && (error.cause instanceof VersionConflictError || error.cause instanceof NodeExistsError || error.cause instanceof NoNodeError);
        if (!ours && !oursAlso) throw error;
        lost = error;
        continue;
      }
    }
    if (next === NO_CHANGE) return { kind: 'unchanged', read: current };
    const data = o.encode(next);
    try {
      if (current.version === null) {
        await store.create(path, data);
        return { kind: 'written', value: next, version: 0, created: true, read: current };
      }
      const stat = await store.set(path, data, current.version);
      return { kind: 'written', value: next, version: stat.version, created: false, read: current };
    } catch (error) {
      if (!(error instanceof VersionConflictError) && !(error instanceof NodeExistsError)) throw error;
      lost = error;
    }
  }
  throw new CasConflictError(path, CAS_ATTEMPTS, o.what ?? path, { cause: lost });
}

async function readZnode<T>(store: ZkStore, path: string, o: ZnodeCas<T>): Promise<CasSnapshot<T> | null> {
  const got = await store.get(path);
  if (got) return { value: o.decode(got.data), version: got.version };
  return o.absent ? { value: o.absent(), version: null } : null;
}
