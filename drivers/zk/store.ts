// ZkStore: the promise API over node-zookeeper-client that the rest of virtkeeper codes against.
//
// Rules it enforces:
//  - every write is version-checked: set/delete/check take an explicit version >= 0 (no blind
//    writes; -1 is refused with a TypeError), or go through create (fails if the znode exists).
//  - multi is all-or-nothing: on failure nothing is written and TransactionError names the op.
//  - calls never hang: a call made while not connected waits for a connection at most
//    connectTimeoutMs and then rejects with ConnectionLossError (inFlight: false, nothing sent).
//  - a call in flight when the connection drops (ZooKeeper member lost, server restart) is
//    settled when possible (recover.ts): reads are re-sent; set, delete and non-sequential create
//    check whether they landed and are re-sent if not. Sequential creates and multi reject with
//    ConnectionLossError (inFlight: true: the outcome is unknown; re-read and compare versions).
//  - znodes it creates carry the store's ACL (see acl.ts), or the policy a create names.
import { ReplaySubject, finalize, share, type Observable } from 'rxjs';
import type { ACL, Stat } from 'node-zookeeper-client';
import { aclFor, resolveAclPolicy } from './acl.ts';
import { fixLastOpVersion, type RawClient } from './client-internals.ts';
import { ZkSession } from './connection-state.ts';
import { ConnectionLossError, NoNodeError, NodeExistsError, TransactionError, VersionConflictError, ZK_CODE, ZkError, codeOf, fromCode, toZkError } from './errors.ts';
import { ancestorsAndSelf, assertPath, childPath, parentOf } from './paths.ts';
import { readWithRetry, writeWithRecovery } from './recover.ts';
import { toZkStat } from './stat.ts';
import type { AclPolicy, ChildrenState, ConnectionState, CreateMode, DataState, Op, OpResult, Versioned, ZkStat, ZkStoreOptions } from './types.ts';
import { followData, watchChildren, watchData, type WatchDataOptions, type WatchSink } from './watch.ts';

const EMPTY = Buffer.alloc(0);
const MODE: Record<CreateMode, number> = { persistent: 0, ephemeral: 1, persistent_sequential: 2, ephemeral_sequential: 3 };
/** Ops per multi in deleteRecursive (keeps requests well under jute.maxbuffer). */
const DELETE_CHUNK = 1000;

type Callback<T> = (err: unknown, value?: T) => void;

function toBuffer(data: Buffer | string | undefined): Buffer {
  if (data === undefined) return EMPTY;
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

function assertVersion(version: number, what: string): void {
  if (!Number.isInteger(version) || version < 0) {
    throw new TypeError(`${what}: version must be an integer >= 0 (got ${version}); blind writes are not allowed`);
  }
}

export class ZkStore {
  /** connected | suspended | expired; emits the current state on subscribe. */
  readonly connectionState$: Observable<ConnectionState>;
  /** Each new session id once connected (replays the current one): re-create ephemerals on it. */
  readonly sessions$: Observable<string>;

  private readonly session: ZkSession;
  private readonly acl: ACL[];
  private readonly auth: { user: string; password: string } | undefined;
  private readonly connectTimeoutMs: number;
  private readonly dataWatches = new Map<string, Observable<DataState>>();
  private readonly childWatches = new Map<string, Observable<ChildrenState>>();

  private constructor(session: ZkSession, acl: ACL[], connectTimeoutMs: number, auth: { user: string; password: string } | undefined) {
    this.session = session;
    this.acl = acl;
    this.auth = auth;
    this.connectTimeoutMs = connectTimeoutMs;
    this.connectionState$ = session.state$.asObservable();
    this.sessions$ = session.sessions$;
  }

  /** Connect; resolves once a session is established, rejects with ConnectionLossError after connectTimeoutMs. */
  static async connect(opts: ZkStoreOptions): Promise<ZkStore> {
    const sessionTimeoutMs = opts.sessionTimeoutMs ?? 10000;
    const connectTimeoutMs = opts.connectTimeoutMs ?? sessionTimeoutMs;
    const acl = aclFor(resolveAclPolicy(opts), opts.auth);
    const session = new ZkSession({
      connectString: opts.connectString,
      sessionTimeoutMs,
      connectTimeoutMs,
      auth: opts.auth,
      logger: opts.logger,
    });
    await session.start();
    return new ZkStore(session, acl, connectTimeoutMs, opts.auth);
  }

  /** Current session id (16 hex digits; compare with ZkStat.ephemeralOwner). */
  get sessionId(): string {
    return this.session.sessionId;
  }

  /** The session timeout the server granted. */
  get sessionTimeoutMs(): number {
    return this.session.sessionTimeoutMs;
  }

  get connectionState(): ConnectionState {
    return this.session.state;
  }

  /**
   * Milliseconds since the newest request of this session that the server answered was sent
   * (Infinity when not connected). Below the session timeout, the session certainly lives: a
   * daemon may act on what it holds in ZooKeeper without a round trip that proves it.
   */
  provenAgoMs(): number {
    return this.session.provenAgoMs();
  }

  /** Highest zxid seen in any reply (or stat) on any session of this store. */
  lastZxid(): bigint {
    return this.session.lastZxid();
  }

  /** @internal for tests and admin tools: the current session's id and password. */
  sessionCredentials(): { id: Buffer; password: Buffer } {
    return this.session.sessionCredentials();
  }

  /** @internal fault injection for tests: drop the TCP connection now (the session survives). */
  dropConnection(): void {
    this.session.dropConnection();
  }

  // ----------------------------------------------------------------------------------- reads

  async get(path: string): Promise<Versioned | null> {
    assertPath(path);
    return readWithRetry(() => this.getOnce(path));
  }

  private getOnce(path: string): Promise<Versioned | null> {
    return this.call<Versioned | null>(path, (c, cb) =>
      c.getData(path, (err: unknown, data: Buffer | undefined, stat: Stat) => {
        if (err) {
          if (codeOf(err) === ZK_CODE.NO_NODE) cb(null, null);
          else cb(err);
          return;
        }
        const st = toZkStat(stat);
        cb(null, { data: data ?? EMPTY, version: st.version, stat: st });
      }),
    );
  }

  async exists(path: string): Promise<ZkStat | null> {
    assertPath(path);
    return readWithRetry(() => this.existsOnce(path));
  }

  private existsOnce(path: string): Promise<ZkStat | null> {
    return this.call<ZkStat | null>(path, (c, cb) =>
      c.exists(path, (err: unknown, stat: Stat | null) => (err ? cb(err) : cb(null, stat ? toZkStat(stat) : null))),
    );
  }

  /** Child names, sorted; null if the znode does not exist. */
  async children(path: string): Promise<string[] | null> {
    const r = await this.childrenWithStat(path);
    return r ? r.children : null;
  }

  private async childrenWithStat(path: string): Promise<{ children: string[]; stat: ZkStat } | null> {
    assertPath(path);
    return readWithRetry(() => this.childrenOnce(path));
  }

  private childrenOnce(path: string): Promise<{ children: string[]; stat: ZkStat } | null> {
    return this.call(path, (c, cb) =>
      c.getChildren(path, (err: unknown, children: string[], stat: Stat) => {
        if (err) {
          if (codeOf(err) === ZK_CODE.NO_NODE) cb(null, null);
          else cb(err);
          return;
        }
        cb(null, { children: children.sort(), stat: toZkStat(stat) });
      }),
    );
  }

  // ---------------------------------------------------------------------------------- writes

  /**
   * Create a znode; resolves to the created path (differs for sequential modes). NodeExistsError if
   * it exists; NoNodeError if the parent is missing, unless `parents` (then missing ancestors are
   * created first, empty and persistent, with the store's ACL). `acl` gives this znode (not its
   * ancestors) that policy's ACL instead of the store's: 'digest-private' for a znode only the
   * store's auth user may read (fence passwords); the digest policies need the store's auth.
   */
  async create(path: string, data?: Buffer | string, opts: { mode?: CreateMode; parents?: boolean; acl?: AclPolicy } = {}): Promise<string> {
    assertPath(path);
    if (path === '/') throw new TypeError('cannot create /');
    const mode = MODE[opts.mode ?? 'persistent'];
    if (mode === undefined) throw new TypeError(`unknown create mode ${opts.mode}`);
    const acl = opts.acl === undefined ? this.acl : aclFor(opts.acl, this.auth);
    const buf = toBuffer(data);
    const send = (): Promise<string> =>
      this.call<string>(path, (c, cb) => c.create(path, buf, acl, mode, (err: unknown, created: string) => (err ? cb(err) : cb(null, created))));
    const ephemeral = mode === MODE.ephemeral;
    const once = (): Promise<string> =>
      mode === MODE.persistent || ephemeral
        ? writeWithRecovery({
            attempt: send,
            verify: async () => {
              const cur = await this.getOnce(path);
              if (!cur) return 'retry';
              const ours = cur.data.equals(buf) && cur.stat.ephemeralOwner === (ephemeral ? this.sessionId : null);
              return ours ? { landed: path } : 'ambiguous';
            },
            isOwnEcho: (e) => e instanceof NodeExistsError,
          })
        : send(); // sequential: a lost create cannot be recognised; ConnectionLossError
    try {
      return await once();
    } catch (e) {
      if (!(opts.parents && e instanceof NoNodeError)) throw e;
    }
    await this.ensurePath(parentOf(path));
    return once();
  }

  /** Compare-and-set: writes only if the znode's version is `version`; VersionConflictError otherwise. */
  async set(path: string, data: Buffer | string, version: number): Promise<ZkStat> {
    assertPath(path);
    assertVersion(version, `set ${path}`);
    const buf = toBuffer(data);
    return writeWithRecovery({
      attempt: () =>
        this.call<ZkStat>(path, (c, cb) => c.setData(path, buf, version, (err: unknown, stat: Stat) => (err ? cb(err) : cb(null, toZkStat(stat))))),
      verify: async () => {
        const cur = await this.getOnce(path);
        if (!cur) throw new NoNodeError(path);
        if (cur.version === version + 1 && cur.data.equals(buf)) return { landed: cur.stat };
        return cur.version === version ? 'retry' : 'ambiguous';
      },
      isOwnEcho: (e) => e instanceof VersionConflictError,
    });
  }

  /** Versioned delete: VersionConflictError if changed, NotEmptyError if it has children, NoNodeError if absent. */
  async delete(path: string, version: number): Promise<void> {
    assertPath(path);
    assertVersion(version, `delete ${path}`);
    return writeWithRecovery<void>({
      attempt: () => this.call<void>(path, (c, cb) => c.remove(path, version, (err: unknown) => (err ? cb(err) : cb(null)))),
      verify: async () => {
        const st = await this.existsOnce(path);
        if (!st) return { landed: undefined };
        return st.version === version ? 'retry' : 'ambiguous';
      },
      isOwnEcho: (e) => e instanceof NoNodeError,
    });
  }

  /** Create `path` and its missing ancestors (empty, persistent, with the store's ACL); idempotent. */
  async ensurePath(path: string): Promise<void> {
    assertPath(path);
    if (path === '/') return;
    // Idempotent, so simply done again after a lost connection.
    return readWithRetry(() => this.ensurePathOnce(path));
  }

  private async ensurePathOnce(path: string): Promise<void> {
    if (await this.existsOnce(path)) return;
    // Pipelined: one session's requests are applied in order, so /a is created before /a/b.
    const results = await Promise.allSettled(
      ancestorsAndSelf(path).map((p) => this.call<void>(p, (c, cb) => c.create(p, EMPTY, this.acl, MODE.persistent, (err: unknown) => (err ? cb(err) : cb(null))))),
    );
    for (const r of results) {
      if (r.status === 'rejected' && !(r.reason instanceof NodeExistsError)) throw r.reason;
    }
  }

  /**
   * All-or-nothing transaction. Resolves to one result per op: {path} for create, {stat} for set,
   * {} for delete and check. On failure nothing is written and TransactionError names the op.
   */
  async multi(ops: Op[]): Promise<OpResult[]> {
    if (ops.length === 0) return [];
    for (const op of ops) {
      assertPath(op.path);
      if (op.op !== 'create') assertVersion(op.version, `${op.op} ${op.path}`);
      else if (op.mode !== undefined && MODE[op.mode] === undefined) throw new TypeError(`unknown create mode ${op.mode}`);
    }
    const results = await this.call<Array<{ type: number; path?: string; stat?: Stat; err?: number }>>(ops[0]!.path, (c, cb) => {
      const tx = c.transaction();
      for (const op of ops) {
        switch (op.op) {
          case 'create':
            tx.create(op.path, toBuffer(op.data), this.acl, MODE[op.mode ?? 'persistent']);
            break;
          case 'set':
            tx.setData(op.path, toBuffer(op.data), op.version);
            fixLastOpVersion(tx, op.version);
            break;
          case 'delete':
            tx.remove(op.path, op.version);
            fixLastOpVersion(tx, op.version);
            break;
          case 'check':
            tx.check(op.path, op.version);
            fixLastOpVersion(tx, op.version);
            break;
        }
      }
      tx.commit((err: unknown, res: unknown) => {
        if (!err) {
          cb(null, res as Array<{ type: number; path?: string; stat?: Stat }>);
          return;
        }
        if (Array.isArray(res)) {
          // The failing op carries its own error; ops before it report OK, ops after it
          // RUNTIME_INCONSISTENCY (-2).
          const results = res as Array<{ err?: number }>;
          let i = results.findIndex((r) => r.err !== undefined && r.err !== 0 && r.err !== -2);
          if (i < 0) i = results.findIndex((r) => r.err !== undefined && r.err !== 0);
          if (i >= 0) {
            cb(new TransactionError(i, fromCode(results[i]!.err!, ops[i]?.path)));
            return;
          }
        }
        cb(err);
      });
    });
    return results.map((r) => {
      const out: OpResult = {};
      if (r.path !== undefined) out.path = r.path;
      if (r.stat) out.stat = toZkStat(r.stat);
      return out;
    });
  }

  /**
   * Delete a subtree (for tests and admin tools). Reads it, then deletes deepest-first with
   * versioned deletes in multis of up to 1000 ops (one atomic multi for small trees). Retries a few
   * times if the tree changes underneath; resolves if the path does not exist.
   */
  async deleteRecursive(path: string): Promise<void> {
    assertPath(path);
    if (path === '/') throw new TypeError('refusing to delete /');
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const nodes = await this.subtree(path);
      if (nodes.length === 0) return;
      nodes.sort((a, b) => b.depth - a.depth);
      try {
        for (let i = 0; i < nodes.length; i += DELETE_CHUNK) {
          await this.multi(nodes.slice(i, i + DELETE_CHUNK).map((n) => ({ op: 'delete' as const, path: n.path, version: n.version })));
        }
        return;
      } catch (e) {
        // The tree changed underneath, or the connection dropped: read it again and retry.
        const code = e instanceof ZkError ? e.zkCode : undefined;
        const lost = e instanceof ConnectionLossError && e.inFlight;
        if (!lost && code !== ZK_CODE.BAD_VERSION && code !== ZK_CODE.NO_NODE && code !== ZK_CODE.NOT_EMPTY) throw e;
        lastError = e;
      }
    }
    throw lastError;
  }

  /** Every znode of the subtree with its version, read level by level (pipelined). */
  private async subtree(root: string): Promise<Array<{ path: string; version: number; depth: number }>> {
    const out: Array<{ path: string; version: number; depth: number }> = [];
    let level = [root];
    for (let depth = 0; level.length > 0; depth++) {
      const read = await Promise.all(level.map(async (p) => ({ p, r: await this.childrenWithStat(p) })));
      const next: string[] = [];
      for (const { p, r } of read) {
        if (!r) continue; // vanished meanwhile
        out.push({ path: p, version: r.stat.version, depth });
        for (const child of r.children) next.push(childPath(p, child));
      }
      level = next;
    }
    return out;
  }

  // --------------------------------------------------------------------------------- watches

  /**
   * Level-triggered stream of a znode's data (see watch.ts for the invariants). Subscribers of the
   * same path share one ZooKeeper watch; a late subscriber gets the latest state at once.
   */
  watchData(path: string, opts: WatchDataOptions = {}): Observable<DataState> {
    assertPath(path);
    return this.shared(this.dataWatches, path, () => watchData(this.session, path, opts));
  }

  /**
   * The same watch as watchData, unshared and without rxjs: states go to `sink` until the returned
   * teardown is called. For caches that follow thousands of znodes.
   */
  followData(path: string, sink: WatchSink<DataState>, opts: WatchDataOptions = {}): () => void {
    assertPath(path);
    return followData(this.session, path, sink, opts);
  }

  /** Level-triggered stream of a znode's sorted children (see watch.ts). Shared per path. */
  watchChildren(path: string): Observable<ChildrenState> {
    assertPath(path);
    return this.shared(this.childWatches, path, () => watchChildren(this.session, path));
  }

  private shared<S>(cache: Map<string, Observable<S>>, path: string, make: () => Observable<S>): Observable<S> {
    const existing = cache.get(path);
    if (existing) return existing;
    const obs: Observable<S> = make().pipe(
      finalize(() => {
        if (cache.get(path) === obs) cache.delete(path);
      }),
      share({ connector: () => new ReplaySubject<S>(1), resetOnError: true, resetOnComplete: true, resetOnRefCountZero: true }),
    );
    cache.set(path, obs);
    return obs;
  }

  // ---------------------------------------------------------------------------------- closing

  /** Close the session (its ephemerals go at once) and fail pending calls with ConnectionLossError. */
  async close(): Promise<void> {
    await this.session.close();
  }

  // -------------------------------------------------------------------------------- plumbing

  private call<T>(path: string, fn: (c: RawClient, cb: Callback<T>) => void): Promise<T> {
    const c = this.session.current();
    if (c) return this.invoke(c, path, fn);
    return this.session.whenConnected(this.connectTimeoutMs, path).then((client) => this.invoke(client, path, fn));
  }

  private invoke<T>(c: RawClient, path: string, fn: (c: RawClient, cb: Callback<T>) => void): Promise<T> {
    const sentAt = performance.now();
    return new Promise<T>((resolve, reject) => {
      fn(c, (err, value) => {
        if (err) return reject(toZkError(err, path));
        this.session.answered(c, sentAt);
        resolve(value as T);
      });
    });
  }
}
