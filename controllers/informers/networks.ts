// A watch-fed cache of every Network of the cluster: its spec and its per-node status.
//
// Invariants:
//   W1  synced() resolves once /networks has been listed and every listed network's spec and
//       status have been read once (an absent /networks is an empty list).
//   W2  A cached status never steps back behind a version this daemon wrote itself (noteStatus).
//   W3  An undecodable spec or status is kept as { error, raw, version }; a child whose name is
//       not a VNI is ignored (and logged).
import { Subject, Subscription, merge, map } from 'rxjs';
import type { Logger } from 'pino';
import { decodeNetworkSpec, decodeNetworkStatus, isValidVni, type NetworkSpec, type NetworkStatus, type ZkPaths } from '../../schemas/index.ts';
import type { DataState, ZkStore } from '../../drivers/zk/index.ts';
import { SyncGate } from './sync-gate.ts';
import type { Loaded } from './vms.ts';

export interface NetworkEntry {
  vni: number;
  spec: Loaded<NetworkSpec>;
  status: Loaded<NetworkStatus>;
  /** Both znodes have been read at least once. */
  loaded: boolean;
}

type Field = 'spec' | 'status';

export class NetworkInformer {
  private readonly entries = new Map<number, NetworkEntry & { seen: Set<Field> }>();
  private readonly watches = new Map<number, Subscription>();
  private listSub: Subscription | undefined;
  private listed = false;
  private readonly gate = new SyncGate(() => this.listed && [...this.entries.values()].every((e) => e.loaded));
  /** "Look at network <vni> again." */
  readonly changes$ = new Subject<number>();

  constructor(
    private readonly store: ZkStore,
    private readonly paths: ZkPaths,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.listSub = this.store.watchChildren(this.paths.networks).subscribe({
      next: (state) => this.onList(state.kind === 'children' ? state.children : []),
      error: (error: unknown) => this.log.error({ err: error }, 'network list watch failed'),
    });
  }

  stop(): void {
    this.listSub?.unsubscribe();
    for (const sub of this.watches.values()) sub.unsubscribe();
    this.watches.clear();
    this.changes$.complete();
  }

  synced(): Promise<void> {
    return this.gate.wait();
  }

  get(vni: number): NetworkEntry | undefined {
    return this.entries.get(vni);
  }

  vnis(): number[] {
    return [...this.entries.keys()].sort((a, b) => a - b);
  }

  /** Our own status write: cache it at once (a later, older watch emission is ignored). */
  noteStatus(vni: number, value: NetworkStatus, version: number): void {
    const entry = this.entries.get(vni);
    if (entry && (entry.status === null || entry.status.version < version)) entry.status = { value, version };
  }

  private onList(children: string[]): void {
    const vnis = new Set<number>();
    for (const child of children) {
      if (isValidVni(child)) vnis.add(Number(child));
      else this.log.warn({ child }, 'ignoring a network znode whose name is not a VNI');
    }
    for (const [vni, sub] of this.watches) {
      if (vnis.has(vni)) continue;
      sub.unsubscribe();
      this.watches.delete(vni);
      this.entries.delete(vni);
      this.changes$.next(vni);
    }
    for (const vni of vnis) if (!this.watches.has(vni)) this.watchNetwork(vni);
    this.listed = true;
    this.gate.check();
  }

  private watchNetwork(vni: number): void {
    const entry: NetworkEntry & { seen: Set<Field> } = { vni, spec: null, status: null, loaded: false, seen: new Set() };
    this.entries.set(vni, entry);
    const sub = merge(
      this.store.watchData(this.paths.networkSpec(vni)).pipe(map((s) => ({ field: 'spec' as const, s }))),
      this.store.watchData(this.paths.networkStatus(vni)).pipe(map((s) => ({ field: 'status' as const, s }))),
    ).subscribe({
      next: ({ field, s }) => {
        if (this.entries.get(vni) !== entry) return;
        this.apply(entry, field, s);
        entry.seen.add(field);
        if (!entry.loaded && entry.seen.size === 2) {
          entry.loaded = true;
          this.gate.check();
        }
        this.changes$.next(vni);
      },
      error: (error: unknown) => this.log.error({ err: error, vni }, 'network watch failed'),
    });
    this.watches.set(vni, sub);
  }

  private apply(entry: NetworkEntry, field: Field, s: DataState): void {
    if (s.kind === 'deleted') {
      entry[field] = null;
      return;
    }
    if (field === 'status' && entry.status && entry.status.version > s.version) return;
    const text = s.data.toString('utf8');
    try {
      if (field === 'spec') entry.spec = { value: decodeNetworkSpec(text), version: s.version };
      else entry.status = { value: decodeNetworkStatus(text), version: s.version };
    } catch (error) {
      entry[field] = { error: (error as Error).message, raw: text.slice(0, 65_536), version: s.version };
      this.log.warn({ vni: entry.vni, field, err: error }, 'unreadable network znode');
    }
  }
}
