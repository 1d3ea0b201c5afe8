// A watch-fed cache of every node of the cluster: its alive znode (ephemeral, with the session that
// holds it and the payload the daemon published), its spec and its status.
//
// Level-triggered, like the VM informer: each watch emission replaces the cached value and says
// "look at node <name> again" on changes$. Concerns read the cache instead of ZooKeeper.
//
// Invariants:
//   N1  synced() resolves once /nodes has been listed and every listed node's three znodes have
//       been read once; a consumer that plans from a half-loaded view would see nodes missing.
//   N2  A cached status never steps back behind a version this daemon wrote itself (noteStatus).
//   N3  An undecodable spec or status is kept as { error, raw, version }, not dropped: a reader
//       decides what an unreadable value means for it.
import { Subject, Subscription, merge, map } from 'rxjs';
import type { Logger } from 'pino';
import { decodeNodeSpec, decodeNodeStatus, isValidName, type NodeSpec, type NodeStatus, type ZkPaths } from '../../schemas/index.ts';
import type { DataState, ZkStore } from '../../drivers/zk/index.ts';
import { SyncGate } from './sync-gate.ts';
import type { Loaded } from './vms.ts';

export interface NodeAlive {
  /** The session holding the ephemeral alive znode. */
  session: string | null;
  /** What the daemon published there (JSON: pid, version, since, migration URIs). */
  payload: string;
}

export interface NodeEntry {
  name: string;
  /** Null while no daemon of the node holds a session. */
  alive: NodeAlive | null;
  spec: Loaded<NodeSpec>;
  status: Loaded<NodeStatus>;
  /** All three znodes have been read at least once. */
  loaded: boolean;
}

type Field = 'alive' | 'spec' | 'status';

export class NodeInformer {
  private readonly entries = new Map<string, NodeEntry & { seen: Set<Field> }>();
  private readonly watches = new Map<string, Subscription>();
  /** The status version each node's entry holds from noteStatus (this daemon's own write). */
  private readonly noted = new Map<string, number>();
  private listSub: Subscription | undefined;
  private listed = false;
  private readonly gate = new SyncGate(() => this.isSynced());
  /** The node list changed (a node joined or left). */
  readonly list$ = new Subject<ReadonlySet<string>>();
  /** "Look at node <name> again." */
  readonly changes$ = new Subject<string>();
  /** Node <name>'s alive znode changed (its daemon came, went or republished). */
  readonly alive$ = new Subject<string>();

  constructor(
    private readonly store: ZkStore,
    private readonly paths: ZkPaths,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.listSub = this.store.watchChildren(this.paths.nodes).subscribe({
      next: (state) => this.onList(state.kind === 'children' ? state.children : []),
      error: (error: unknown) => this.log.error({ err: error }, 'node list watch failed'),
    });
  }

  stop(): void {
    this.listSub?.unsubscribe();
    for (const sub of this.watches.values()) sub.unsubscribe();
    this.watches.clear();
    this.changes$.complete();
    this.alive$.complete();
    this.list$.complete();
  }

  synced(): Promise<void> {
    return this.gate.wait();
  }

  /** Listed at least once. */
  get isListed(): boolean {
    return this.listed;
  }

  get(name: string): NodeEntry | undefined {
    return this.entries.get(name);
  }

  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Our own status write: cache it at once (a later watch emission older than it is ignored). */
  noteStatus(name: string, value: NodeStatus, version: number): void {
    const entry = this.entries.get(name);
    if (entry && (entry.status === null || entry.status.version < version)) {
      entry.status = { value, version };
      this.noted.set(name, version);
    }
  }

  private onList(children: string[]): void {
    const names = new Set(children.filter((child) => isValidName(child)));
    for (const [name, sub] of this.watches) {
      if (names.has(name)) continue;
      sub.unsubscribe();
      this.watches.delete(name);
      this.entries.delete(name);
      this.noted.delete(name);
      this.alive$.next(name);
      this.changes$.next(name);
    }
    for (const name of names) if (!this.watches.has(name)) this.watchNode(name);
    this.listed = true;
    this.list$.next(names);
    this.gate.check();
  }

  private watchNode(name: string): void {
    const { store, paths } = this;
    const entry: NodeEntry & { seen: Set<Field> } = { name, alive: null, spec: null, status: null, loaded: false, seen: new Set() };
    this.entries.set(name, entry);
    const sub = merge(
      store.watchData(paths.nodeAlive(name)).pipe(map((s) => ({ field: 'alive' as const, s }))),
      store.watchData(paths.nodeSpec(name)).pipe(map((s) => ({ field: 'spec' as const, s }))),
      store.watchData(paths.nodeStatus(name)).pipe(map((s) => ({ field: 'status' as const, s }))),
    ).subscribe({
      next: ({ field, s }) => {
        if (this.entries.get(name) !== entry) return;
        this.apply(entry, field, s);
        entry.seen.add(field);
        if (!entry.loaded && entry.seen.size === 3) {
          entry.loaded = true;
          this.gate.check();
        }
        if (field === 'alive') this.alive$.next(name);
        this.changes$.next(name);
      },
      error: (error: unknown) => this.log.error({ err: error, node: name }, 'node watch failed'),
    });
    this.watches.set(name, sub);
  }

  private apply(entry: NodeEntry, field: Field, s: DataState): void {
    if (field === 'alive') {
      entry.alive = s.kind === 'data' ? { session: s.stat.ephemeralOwner, payload: s.data.toString('utf8') } : null;
      return;
    }
    if (s.kind === 'deleted') {
      entry[field] = null;
      return;
    }
    const text = s.data.toString('utf8');
    if (field === 'status') {
      const current = entry.status;
      // Older than what we hold, or the very version this daemon wrote and noted (N2): no decode.
      if (current && (current.version > s.version || (current.version === s.version && this.noted.get(entry.name) === s.version))) return;
    }
    try {
      if (field === 'spec') entry.spec = { value: decodeNodeSpec(text), version: s.version };
      else entry.status = { value: decodeNodeStatus(text), version: s.version };
    } catch (error) {
      entry[field] = { error: (error as Error).message, raw: text.slice(0, 65_536), version: s.version };
    }
  }

  private isSynced(): boolean {
    if (!this.listed) return false;
    for (const entry of this.entries.values()) if (!entry.loaded) return false;
    return true;
  }
}

/** The value of a loaded znode, or null when it is absent or unreadable. */
export function valueOf<T>(loaded: Loaded<T> | undefined): T | null {
  return loaded && 'value' in loaded ? loaded.value : null;
}
