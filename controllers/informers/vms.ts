// A watch-fed cache of every VM's spec, xml, status, migration record and RBD check (an informer, as in client-go).
//
// Level-triggered: each watch emission replaces the cached value with the one
// re-read after the event, and only says "look at VM <name> again" on
// changes$. Reconcilers read the cache instead of ZooKeeper, so a reconcile
// costs no round trip; the CAS versions they need travel with the values.
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

  constructor(
    private readonly store: ZkStore,
    private readonly paths: ZkPaths,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.listSub = this.store.watchChildren(this.paths.vms).subscribe({
      next: (state) => this.onList(state.kind === 'children' ? state.children : []),
      error: (error: unknown) => this.log.error({ err: error }, 'VM list watch failed'),
    });
  }

  stop(): void {
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
    for (const name of [...this.entries.keys()]) {
      if (names.has(name)) continue;
      this.watches.get(name)?.();
      this.watches.delete(name);
      this.entries.delete(name);
      this.ownStatus.delete(name);
      this.removed.add(name);
      this.changes$.next(name);
    }
    // A VM that appears after the first listing was just created: its status (and migration
    // record) do not exist yet, so probe them with exists() first (no exception per read).
    const fresh = this.listLoaded;
    for (const name of names) if (!this.entries.has(name)) this.watchVm(name, fresh);
    this.listLoaded = true;
    this.gate.check();
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
