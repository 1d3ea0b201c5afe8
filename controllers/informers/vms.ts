// A watch-fed cache of VMs' spec, xml, status, migration record and RBD check (an informer, as in client-go).
//
// Level-triggered: each watch emission replaces the cached value with the one
// re-read after the event, and only says "look at VM <name> again" on
// changes$. Reconcilers read the cache instead of ZooKeeper, so a reconcile
// costs no round trip; the CAS versions they need travel with the values.
//
// Which VMs: with `node`, those in the node's index (/nodes/<node>/vms, core/vm-index.ts) and those
// pinned (a local domain the domain concern found), so a daemon costs what its node holds, not what
// the cluster holds; without, every VM (/vms).
//
// Invariants (index mode):
//   V1  A VM leaves the cache as removed (its local domain must go) only when its spec znode is
//       gone, read from ZooKeeper after its entry went; never because the entry alone went.
//   V2  An entry that goes while the VM's spec or status still names this node is created again
//       (and logged): the index is repaired, not trusted.
//   V3  A pinned VM is followed whatever the index says, until unpinned.
import { Subject, type Subscription } from 'rxjs';
import type { Logger } from 'pino';
import {
  decodeMigrationRecord,
  decodeRbdCheck,
  decodeVmSpec,
  decodeVmStatus,
  isValidName,
  VmXml,
  type MigrationRecord,
  type RbdCheck,
  type VmSpec,
  type VmStatus,
  type ZkPaths,
} from '../../schemas/index.ts';
import type { DataState, ZkStore } from '../../drivers/zk/index.ts';
import { SyncGate } from './sync-gate.ts';
import { namedNodes, repairIndexEntry, scanIndex } from '../../core/vm-index.ts';

/** A znode as read: its value, or why it could not be decoded (with its text and version), or absent. */
export type Loaded<T> = { value: T; version: number } | { error: string; raw: string; version: number } | null;

export interface VmEntry {
  name: string;
  spec: Loaded<VmSpec>;
  /** Parsed lazily: a daemon reads the XML only of the VMs it acts on (VmXml.error when unreadable). */
  xml: Loaded<VmXml>;
  status: Loaded<VmStatus>;
  migration: Loaded<MigrationRecord>;
  /** The RBD concern's last check of the VM's locks (schemas/rbd.ts). */
  rbd: Loaded<RbdCheck>;
  /** Every field has been read at least once. */
  loaded: boolean;
}

const FIELDS = ['spec', 'xml', 'status', 'migration', 'rbd'] as const;

export interface VmInformerOptions {
  /** Follow only this node's index and the VMs pinned (see the top of this file); absent: every VM. */
  node?: string;
  /** Index mode: how often the whole cluster is scanned for VMs missing from the index (ms; 0 or absent: never). */
  indexScanMs?: number;
}
type Field = (typeof FIELDS)[number];

export class VmInformer {
  private readonly entries = new Map<string, VmEntry & { seen: Set<Field> }>();
  /** Per VM, the teardown of its znode watches. */
  private readonly watches = new Map<string, () => void>();
  /** Status versions this node wrote itself: their watch events are not news to it. */
  private readonly ownStatus = new Map<string, number>();
  /** VMs that were in the list and then left it: their local domains must go. */
  private readonly removed = new Set<string>();
  private listSub: Subscription | undefined;
  private listLoaded = false;
  private readonly gate = new SyncGate(() => this.isSynced());
  readonly changes$ = new Subject<string>();

  /** Index mode: the VMs followed because a local domain has them, whatever the index says (V3). */
  private readonly pinned = new Set<string>();
  /** Index mode: the last listing of the node's index. */
  private listed = new Set<string>();
  private scanTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: ZkStore,
    private readonly paths: ZkPaths,
    private readonly log: Logger,
    private readonly opts: VmInformerOptions = {},
  ) {}

  start(): void {
    const node = this.opts.node;
    this.listSub = this.store.watchChildren(node === undefined ? this.paths.vms : this.paths.nodeVms(node)).subscribe({
      next: (state) => this.onList(state.kind === 'children' ? state.children : []),
      error: (error: unknown) => this.log.error({ err: error }, 'VM list watch failed'),
    });
    if (node !== undefined && (this.opts.indexScanMs ?? 0) > 0) this.scheduleScan(this.opts.indexScanMs!);
  }

  /** Following the node's index (true), or every VM. */
  get indexed(): boolean {
    return this.opts.node !== undefined;
  }

  /** Index mode: follow `name` whatever the index says (a local domain of it exists here). */
  pin(name: string): void {
    if (this.opts.node === undefined || !isValidName(name) || this.pinned.has(name)) return;
    this.pinned.add(name);
    // Followed already (the index lists it): nothing to look up.
    if (this.entries.has(name)) return;
    // Only a VM the cluster has: a domain ZooKeeper never listed is not ours to touch (nor to plan as deleted).
    void this.store.exists(this.paths.vmSpec(name)).then(
      (stat) => {
        if (stat && this.pinned.has(name) && !this.entries.has(name) && !this.stopped) this.watchVm(name, false);
      },
      (error: unknown) => this.log.warn({ err: error, vm: name }, 'VM index: could not look up a local domain\'s VM'),
    );
  }

  /** Index mode: stop following `name` for its local domain; it stays while the index lists it. */
  unpin(name: string): void {
    if (!this.pinned.delete(name)) return;
    if (!this.listed.has(name)) this.drop(name, false);
  }

  /** Index mode: scans the whole cluster for VMs naming this node missing from its index, and adds them (core/vm-index.ts). */
  async scanIndex(): Promise<string[]> {
    const node = this.opts.node;
    if (node === undefined) return [];
    const { added } = await scanIndex(this.store, this.paths, { only: node, concurrency: 8 });
    for (const entry of added) this.log.warn({ entry }, `VM index: ${entry} was missing from ${this.paths.nodeVms(node)}; added it`);
    return added;
  }

  private scheduleScan(everyMs: number): void {
    this.scanTimer = setTimeout(() => {
      this.scanTimer = undefined;
      if (this.stopped) return;
      void this.scanIndex()
        .catch((error: unknown) => this.log.warn({ err: error }, 'VM index scan failed; trying again at the next one'))
        .finally(() => {
          if (!this.stopped) this.scheduleScan(everyMs);
        });
    }, everyMs);
    this.scanTimer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.scanTimer) clearTimeout(this.scanTimer);
    this.listSub?.unsubscribe();
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
    this.changes$.complete();
  }

  /** Resolves once the list and every listed VM have been read. */
  synced(): Promise<void> {
    return this.gate.wait();
  }

  get(name: string): VmEntry | undefined {
    return this.entries.get(name);
  }

  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  wasRemoved(name: string): boolean {
    return this.removed.has(name) && !this.entries.has(name);
  }

  /** Forget a removed VM once its local domain is gone. */
  forgetRemoved(name: string): void {
    this.removed.delete(name);
  }

  /**
   * Our own status write (or a fresh read after a CAS conflict, with `force`):
   * cache it at once so the next reconcile uses the new CAS version.
   */
  noteStatus(name: string, value: VmStatus, version: number, force = false): void {
    const entry = this.entries.get(name);
    if (entry && (force || entry.status === null || 'error' in entry.status || entry.status.version < version)) {
      entry.status = { value, version };
    }
    if (!force) this.ownStatus.set(name, version);
  }

  private onList(children: string[]): void {
    const names = new Set(children.filter((child) => isValidName(child)));
    for (const child of children) if (!names.has(child)) this.log.warn({ child }, 'ignoring a VM znode with an invalid name');
    if (this.opts.node === undefined) {
      for (const name of [...this.entries.keys()]) if (!names.has(name)) this.drop(name, true);
    } else {
      this.listed = names;
      for (const name of [...this.entries.keys()]) if (!names.has(name) && !this.pinned.has(name)) void this.entryGone(name);
    }
    // A VM that appears after the first listing was just created: its status (and migration
    // record) do not exist yet, so probe them with exists() first (one request each, not two).
    const fresh = this.listLoaded;
    for (const name of names) if (!this.entries.has(name)) this.watchVm(name, fresh);
    this.listLoaded = true;
    this.gate.check();
  }

  /** Stops following `name`; `removed`: the VM is gone from the cluster (its local domain must go). */
  private drop(name: string, removed: boolean): void {
    if (!this.entries.has(name)) return;
    this.watches.get(name)?.();
    this.watches.delete(name);
    this.entries.delete(name);
    this.ownStatus.delete(name);
    if (removed) this.removed.add(name);
    this.changes$.next(name);
    this.gate.check();
  }

  /** Index mode: `name`'s entry went. Removed only if its spec is gone (V1); repaired if it still names this node (V2). */
  private async entryGone(name: string): Promise<void> {
    const node = this.opts.node!;
    try {
      const [spec, status] = await Promise.all([this.store.get(this.paths.vmSpec(name)), this.store.get(this.paths.vmStatus(name))]);
      if (this.listed.has(name) || this.pinned.has(name) || this.stopped) return;
      if (!spec) return this.drop(name, true);
      if (namedNodes(spec, status).has(node)) {
        if (await repairIndexEntry(this.store, this.paths, name, node, { path: this.paths.vmSpec(name), version: spec.version })) {
          this.log.warn({ vm: name }, `VM index: ${this.paths.nodeVmEntry(node, name)} went while ${name} still names ${node}; created it again`);
        }
        return;
      }
      this.drop(name, false);
    } catch (error) {
      // Not knowing is no reason to drop it: keep following; the next listing or scan looks again.
      this.log.warn({ err: error, vm: name }, 'VM index: could not check a VM whose entry went; still following it');
    }
  }

  private watchVm(name: string, fresh: boolean): void {
    this.removed.delete(name);
    const entry = { name, spec: null, xml: null, status: null, migration: null, rbd: null, loaded: false, seen: new Set<Field>() };
    this.entries.set(name, entry);
    const paths: Record<Field, string> = {
      spec: this.paths.vmSpec(name),
      xml: this.paths.vmXml(name),
      status: this.paths.vmStatus(name),
      migration: this.paths.vmMigration(name),
      rbd: this.paths.vmRbd(name),
    };
    const onState = (field: Field, state: DataState): void => {
      if (this.entries.get(name) !== entry) return;
      // Our own status write coming back: cache it, but it is no reason to look again (a failed
      // action's status write would otherwise re-run the reconcile at once, around its back-off).
      const own = field === 'status' && state.kind === 'data' && this.ownStatus.get(name) === state.version;
      if (field === 'status') this.ownStatus.delete(name);
      this.apply(entry, field, state);
      entry.seen.add(field);
      if (!entry.loaded && entry.seen.size === FIELDS.length) {
        entry.loaded = true;
        this.gate.check();
      }
      if (entry.loaded && !own) this.changes$.next(name);
    };
    // Plain callbacks, not an rxjs pipeline per znode: a daemon follows every VM of the cluster.
    const stops = FIELDS.map((field) =>
      this.store.followData(
        paths[field],
        {
          next: (state) => onState(field, state),
          error: (error: unknown) => this.log.error({ err: error, vm: name, field }, 'VM watch failed'),
          complete: () => undefined,
        },
        { expectAbsent: field === 'migration' || field === 'rbd' || (fresh && field === 'status') },
      ),
    );
    this.watches.set(name, () => stops.forEach((stop) => stop()));
  }

  private apply(entry: VmEntry, field: Field, state: DataState): void {
    if (state.kind === 'deleted') {
      entry[field] = null;
      return;
    }
    const text = state.data.toString('utf8');
    try {
      switch (field) {
        case 'spec':
          entry.spec = { value: decodeVmSpec(text), version: state.version };
          break;
        case 'xml':
          entry.xml = { value: new VmXml(text, entry.name), version: state.version };
          break;
        case 'status': {
          const current = entry.status;
          // Never step back behind a version we wrote ourselves.
          if (current && 'version' in current && current.version > state.version) break;
          entry.status = { value: decodeVmStatus(text), version: state.version };
          break;
        }
        case 'migration':
          entry.migration = { value: decodeMigrationRecord(text), version: state.version };
          break;
        case 'rbd':
          entry.rbd = { value: decodeRbdCheck(text), version: state.version };
          break;
      }
    } catch (error) {
      // Kept (bounded) so a daemon can still tell an unreadable spec says "stopped".
      entry[field] = { error: (error as Error).message, raw: text.slice(0, 65_536), version: state.version };
      this.log.warn({ vm: entry.name, field, err: error }, 'unreadable VM znode');
    }
  }

  private isSynced(): boolean {
    if (!this.listLoaded) return false;
    for (const entry of this.entries.values()) if (!entry.loaded) return false;
    return true;
  }
}
