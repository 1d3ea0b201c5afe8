// The per-node migration controller: the VM informer (shared with the domain controller), libvirt
// lifecycle events, the nodes' alive znodes, the cluster config and a periodic resync → one work
// queue of VM names → the migration reconciler (reconcilers/migration/).
//
// It has its own queue, so a long live copy never holds a worker of the domain queue, and the
// work queue's per-key exclusivity means at most one step per VM runs here at a time.
//
// Peers: every daemon publishes in its alive znode (ephemeral, daemon/alive.ts)
//   {"pid":…, "version":…, "since":…, "migration":{"uri":"qemu+tcp://198.51.100.2/system","migrateUri":"tcp://198.51.100.2"}}
// (from its config's migration.uri/migrateUri). The source reads the target's URIs from there,
// and the znode's ephemeralOwner is the session the record's owner is checked against.
//
// Bounded parallelism (ClusterConfig migration.maxOutgoing / maxIncoming): the source counts the
// records it drives, the target the ones it acknowledged, each including writes still in flight,
// and the count, the plan and the reservation happen in one synchronous stretch, so concurrent
// reconciles of different VMs cannot overshoot.
import { Subscription, map, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import type { MigratingHypervisor } from '../../drivers/hypervisor.ts';
import { planMigration, planPlacementCondition, isTerminal, UNKNOWN_NODE, type MigrationInputs, type PeerInfo } from './plan.ts';
import { executeMigration, type MigrationEffects, type MigrationEvent } from './execute.ts';
import {
  decodeClusterConfig,
  decodeVmSpec,
  decodeVmStatus,
  defaultClusterConfig,
  encodeMigrationRecord,
  encodeVmStatus,
  type MigrationConfig,
  type MigrationRecord,
  type VmSpec,
  type VmStatus,
  type ZkPaths,
} from '../../schemas/index.ts';
import { done, requeueAfter, type ReconcileContext, type Result } from '../../controllers/reconciler.ts';
import type { VmInformer } from '../../controllers/informers/vms.ts';
import { bridgeExists } from '../../drivers/links.ts';
import { WorkQueue } from '../../controllers/workqueue.ts';
import { CasConflictError, compareAndSet, NO_CHANGE, TransactionError, VersionConflictError, type Op, type ZkStore } from '../../drivers/zk/index.ts';

export interface MigrationControllerOptions {
  node: string;
  store: ZkStore;
  paths: ZkPaths;
  hv: MigratingHypervisor;
  /** The domain controller's informer (started and synced before start()). */
  informer: VmInformer;
  log: Logger;
  /** Cap on outgoing migrations' bandwidth, MiB/s. */
  bandwidthMiBs?: number;
  /** Whether a bridge exists on this node (default: /sys/class/net/<name>/bridge). */
  bridgeExists?(name: string): Promise<boolean>;
  onAction?(line: string): void;
  onEvent?(event: MigrationEvent): void;
  onAbortIssued?(vm: string, atMs: number): void;
  /** Workers: VMs stepped at once (a live copy holds one for its duration). Default 64. */
  concurrency?: number;
  resyncMs?: number;
  progressIntervalMs?: number;
  now?: () => number;
}

/** How long our own record write shadows a watch that has not shown it yet. */
const OWN_WRITE_SHADOW_MS = 5_000;
const ACKED: ReadonlySet<string> = new Set(['prepared', 'copying', 'switching']);


function parsePeer(session: string | null, data: Buffer): PeerInfo | undefined {
  if (!session) return undefined;
  const peer: PeerInfo = { session };
  try {
    const payload = JSON.parse(data.toString('utf8')) as { migration?: { uri?: unknown; migrateUri?: unknown } };
    const m = payload.migration;
    if (m && typeof m.uri === 'string' && typeof m.migrateUri === 'string') peer.migration = { uri: m.uri, migrateUri: m.migrateUri };
  } catch {
    // An alive znode without a (JSON) payload still says the daemon is there.
  }
  return peer;
}

export class MigrationController {
  readonly queue: WorkQueue<string>;
  private readonly subs = new Subscription();
  private readonly peerSubs = new Map<string, Subscription>();
  private readonly peers = new Map<string, PeerInfo>();
  /** Children of /nodes: the nodes of the cluster (undefined until listed). */
  private nodeNames: ReadonlySet<string> | undefined;
  private config: MigrationConfig = defaultClusterConfig().migration;
  /** Records as we last wrote them, until the informer has caught up. */
  private readonly ownWrites = new Map<string, { value: MigrationRecord; version: number; at: number }>();
  private readonly orphanSince = new Map<string, { id: string; since: number }>();
  private readonly reservedOut = new Set<string>();
  private readonly reservedIn = new Set<string>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: MigrationControllerOptions) {
    this.now = o.now ?? Date.now;
    this.queue = new WorkQueue<string>({
      name: 'migration',
      concurrency: o.concurrency ?? 64,
      logger: o.log,
      keyField: 'vm',
      reconciler: (vm, signal, ctx) => this.reconcile(vm, signal, ctx),
    });
  }

  async start(): Promise<void> {
    const { store, paths, informer } = this.o;
    let resolvePeers!: () => void;
    const peersLoaded = new Promise<void>((r) => (resolvePeers = r));
    const pending = new Set<string>();
    let listed = false;
    const checkLoaded = () => listed && pending.size === 0 && resolvePeers();
    this.subs.add(
      store.watchChildren(paths.nodes).subscribe({
        next: (state) => {
          const names = new Set(state.kind === 'children' ? state.children : []);
          this.nodeNames = names;
          for (const [name, sub] of this.peerSubs) {
            if (names.has(name)) continue;
            sub.unsubscribe();
            this.peerSubs.delete(name);
            this.peers.delete(name);
            pending.delete(name);
          }
          for (const name of names) {
            if (this.peerSubs.has(name)) continue;
            pending.add(name);
            const sub = store.watchData(paths.nodeAlive(name)).subscribe({
              next: (s) => {
                const peer = s.kind === 'data' ? parsePeer(s.stat.ephemeralOwner, s.data) : undefined;
                if (peer) this.peers.set(name, peer);
                else this.peers.delete(name);
                pending.delete(name);
                checkLoaded();
                this.requeueInvolving(name);
              },
              error: (error: unknown) => this.o.log.error({ err: error, node: name }, 'alive watch failed'),
            });
            this.peerSubs.set(name, sub);
          }
          listed = true;
          checkLoaded();
          // A node that appears (or goes) may be the one some spec.node names.
          this.resyncPlacements();
        },
        error: (error: unknown) => this.o.log.error({ err: error }, 'node list watch failed'),
      }),
    );
    this.subs.add(
      store.watchData(paths.config).subscribe((s) => {
        if (s.kind === 'deleted') this.config = defaultClusterConfig().migration;
        else {
          try {
            this.config = decodeClusterConfig(s.data.toString('utf8')).migration;
          } catch (error) {
            this.o.log.warn({ err: error }, 'unreadable cluster config; keeping the migration settings in force');
          }
        }
        this.resync();
      }),
    );
    await peersLoaded;
    this.queue.start();
    this.subs.add(informer.changes$.subscribe((vm) => this.queue.add(vm)));
    this.subs.add(this.o.hv.lifecycle$.subscribe(({ name }) => this.queue.add(name)));
    this.subs.add(
      store.connectionState$.subscribe((state) => {
        if (state === 'connected') this.resync();
      }),
    );
    this.resync();
    this.resyncTimer = setInterval(() => this.resync(), this.o.resyncMs ?? 30_000);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.subs.unsubscribe();
    for (const sub of this.peerSubs.values()) sub.unsubscribe();
    this.peerSubs.clear();
    await this.queue.shutdown({ abort: true });
  }

  /** "Look at this VM again" (the domain planner handed it over). */
  kick(vm: string): void {
    this.queue.add(vm);
  }

  /** VMs whose spec.node names no node of the cluster, or whose status still says so. */
  private resyncPlacements(): void {
    const names = this.nodeNames;
    if (!names) return;
    for (const vm of this.o.informer.names()) {
      const entry = this.o.informer.get(vm);
      const spec = entry?.spec && 'value' in entry.spec ? entry.spec.value : null;
      const status = entry?.status && 'value' in entry.status ? entry.status.value : null;
      if ((spec && !names.has(spec.node)) || status?.conditions.some((c) => c.type === UNKNOWN_NODE)) this.queue.add(vm);
    }
  }

  /** Every VM this node may have a migration part in (any other one's reconcile returns at once). */
  resync(): void {
    for (const vm of this.o.informer.names()) if (this.mayInvolveThisNode(vm)) this.queue.add(vm);
    this.resyncPlacements();
  }

  /** The inverse of reconcile's first test: a record naming this node, or a status held here. */
  private mayInvolveThisNode(vm: string): boolean {
    const { node } = this.o;
    const r = this.recordOf(vm)?.value;
    if (r && (r.source === node || r.target === node)) return true;
    const status = this.o.informer.get(vm)?.status;
    return !!status && 'value' in status && status.value.node === node;
  }

  /** The peers this node sees now (for tests and `vk` diagnostics). */
  peerInfo(node: string): PeerInfo | undefined {
    return this.peers.get(node);
  }

  private requeueInvolving(node: string): void {
    for (const vm of this.o.informer.names()) {
      const entry = this.o.informer.get(vm);
      const record = entry?.migration && 'value' in entry.migration ? entry.migration.value : null;
      const spec = entry?.spec && 'value' in entry.spec ? entry.spec.value : null;
      if ((record && (record.source === node || record.target === node)) || spec?.node === node) this.queue.add(vm);
    }
  }

  /** The informer's record, unless our own later write has not reached it yet. */
  private recordOf(vm: string): { value: MigrationRecord; version: number } | null {
    const entry = this.o.informer.get(vm);
    const seen = entry?.migration && 'value' in entry.migration ? entry.migration : null;
    const own = this.ownWrites.get(vm);
    if (!own) return seen;
    if (seen && seen.version >= own.version) {
      this.ownWrites.delete(vm);
      return seen;
    }
    if (!seen && this.now() - own.at > OWN_WRITE_SHADOW_MS) {
      this.ownWrites.delete(vm);
      return null;
    }
    return { value: own.value, version: own.version };
  }

  private count(except: string, match: (r: MigrationRecord) => boolean, reserved: Set<string>): number {
    const vms = new Set<string>();
    for (const vm of this.o.informer.names()) {
      if (vm === except) continue;
      const r = this.recordOf(vm)?.value;
      if (r && !isTerminal(r.phase) && match(r)) vms.add(vm);
    }
    for (const vm of reserved) if (vm !== except) vms.add(vm);
    return vms.size;
  }

  private async reconcile(vm: string, signal: AbortSignal, ctx: ReconcileContext): Promise<Result> {
    const { store, node, hv, informer } = this.o;
    if (store.connectionState !== 'connected') return requeueAfter(500);
    const entry = informer.get(vm);
    if (!entry) {
      this.ownWrites.delete(vm);
      this.orphanSince.delete(vm);
      return done;
    }
    if (!entry.loaded || (entry.spec && 'error' in entry.spec)) return done;
    const spec = entry.spec && 'value' in entry.spec ? entry.spec.value : null;
    const status = entry.status && 'value' in entry.status ? entry.status : null;
    if (this.nodeNames) {
      const placement = planPlacementCondition(node, spec, status, this.nodeNames, [...this.peers.keys()], new Date(this.now()).toISOString());
      if (placement) {
        const path = this.o.paths.vmStatus(vm);
        if (placement.version === null) await store.create(path, encodeVmStatus(placement.status));
        else await store.set(path, encodeVmStatus(placement.status), placement.version);
        const message = placement.status.conditions.find((c) => c.type === UNKNOWN_NODE)?.message;
        if (message) ctx.logger.warn({ reason: UNKNOWN_NODE }, message);
        return done;
      }
      if (spec && !this.nodeNames.has(spec.node)) return done;
    }
    const record = this.recordOf(vm);
    const r = record?.value;
    const involved = r !== undefined && !isTerminal(r.phase) && (r.source === node || r.target === node);
    const mayStart = spec !== null && spec.state === 'running' && spec.node !== node && status?.value.node === node;
    const unsettled = status?.value.node === node && status.value.conditions.some((c) => c.type === 'Migrating' && c.status === 'True');
    if (!involved && !mayStart && !unsettled) {
      this.orphanSince.delete(vm);
      return done;
    }

    const summary = await hv.getDomain(vm);
    const domain = summary && { state: summary.state, persistent: summary.persistent };
    let job: MigrationInputs['job'];
    if (involved && r.source === node && (r.phase === 'copying' || r.phase === 'aborting')) {
      const j = await hv.jobStats(vm);
      job = j && { active: j.active && j.operation !== 'migrationIn', postcopy: j.postcopy };
    }
    const nowMs = this.now();
    let orphanForMs = 0;
    if (involved && r.target === node && this.peers.get(r.source)?.session !== r.sourceSession) {
      const seen = this.orphanSince.get(vm);
      if (seen?.id === r.id) orphanForMs = nowMs - seen.since;
      else this.orphanSince.set(vm, { id: r.id, since: nowMs });
    } else this.orphanSince.delete(vm);

    // From here to the reservation nothing awaits: counts, plan and reservation are one step.
    const inputs: MigrationInputs = {
      node,
      vm,
      nowMs,
      session: store.sessionId,
      spec,
      bridges: (entry.xml && 'value' in entry.xml ? entry.xml.value.info?.bridges : undefined) ?? [],
      status,
      record: this.recordOf(vm),
      domain,
      ...(job !== undefined ? { job } : {}),
      peers: this.peers,
      orphanForMs,
      outgoing: this.count(vm, (x) => x.source === node, this.reservedOut),
      incoming: this.count(vm, (x) => x.target === node && ACKED.has(x.phase), this.reservedIn),
      config: this.config,
    };
    const step = planMigration(inputs);
    if (step.kind === 'none') return done;
    if (step.kind === 'wait') {
      ctx.logger.debug({ reason: step.reason, ms: step.ms }, step.message);
      return requeueAfter(Math.max(10, step.ms));
    }
    const reservation = step.kind === 'request' ? this.reservedOut : step.kind === 'prepare' ? this.reservedIn : undefined;
    reservation?.add(vm);
    try {
      const outcome = await executeMigration(vm, step, inputs, this.effects(ctx), signal);
      return outcome.requeueMs !== undefined ? requeueAfter(outcome.requeueMs) : done;
    } catch (error) {
      // A stale version: the informer has (or will have) the truth; plan again from it.
      if (error instanceof VersionConflictError || error instanceof TransactionError) this.ownWrites.delete(vm);
      throw error;
    } finally {
      reservation?.delete(vm);
    }
  }

  /** The executor's effects, logging through the reconcile's own logger. */
  private effects(ctx: ReconcileContext): MigrationEffects {
    const { store, paths, node, informer } = this.o;
    const noteRecord = (vm: string, value: MigrationRecord, version: number) => this.ownWrites.set(vm, { value, version, at: this.now() });
    const readStatus = async (vm: string): Promise<{ value: VmStatus; version: number } | null> => {
      const got = await store.get(paths.vmStatus(vm));
      return got ? { value: decodeVmStatus(got.data.toString('utf8')), version: got.version } : null;
    };
    return {
      node,
      hv: this.o.hv,
      // A getter: the reconcile's child logger is only made when a line is logged.
      get log() {
        return ctx.logger;
      },
      nowMs: this.now,
      session: () => store.sessionId,
      bandwidthMiBs: this.o.bandwidthMiBs,
      bridgeExists: this.o.bridgeExists ?? ((name: string) => bridgeExists(name)),
      ...(this.o.progressIntervalMs !== undefined ? { progressIntervalMs: this.o.progressIntervalMs } : {}),
      ...(this.o.onAction ? { onAction: this.o.onAction } : {}),
      ...(this.o.onEvent ? { onEvent: this.o.onEvent } : {}),
      ...(this.o.onAbortIssued ? { onAbortIssued: this.o.onAbortIssued } : {}),
      async writeRecord(vm, record, version) {
        const data = encodeMigrationRecord(record);
        let next: number;
        if (version === null) {
          await store.create(paths.vmMigration(vm), data);
          next = 0;
        } else next = (await store.set(paths.vmMigration(vm), data, version)).version;
        noteRecord(vm, record, next);
        return next;
      },
      async writeRecordAndStatus(vm, record, version, status) {
        const recordOp: Op =
          version === null
            ? { op: 'create', path: paths.vmMigration(vm), data: encodeMigrationRecord(record) }
            : { op: 'set', path: paths.vmMigration(vm), data: encodeMigrationRecord(record), version };
        for (let attempt = 0; ; attempt++) {
          const current = await readStatus(vm);
          const next = status(current?.value ?? null);
          const ops: Op[] = [recordOp];
          if (next) {
            const data = encodeVmStatus(next);
            ops.push(current ? { op: 'set', path: paths.vmStatus(vm), data, version: current.version } : { op: 'create', path: paths.vmStatus(vm), data });
          }
          try {
            const results = await store.multi(ops);
            const recordVersion = version === null ? 0 : (results[0]?.stat?.version ?? version + 1);
            noteRecord(vm, record, recordVersion);
            if (next) informer.noteStatus(vm, next, current ? (results[1]?.stat?.version ?? current.version + 1) : 0);
            return recordVersion;
          } catch (error) {
            // Only the status moved meanwhile: read it again and retry.
            if (error instanceof TransactionError && error.failedIndex === 1 && attempt < 5) continue;
            throw error;
          }
        }
      },
      async updateStatus(vm, nextOf) {
        try {
          const outcome = await compareAndSet(store, paths.vmStatus(vm), {
            decode: (data) => decodeVmStatus(data.toString('utf8')),
            encode: encodeVmStatus,
            edit: (current) => nextOf(current) ?? NO_CHANGE,
          });
          if (outcome.kind === 'written') informer.noteStatus(vm, outcome.value, outcome.version);
        } catch (error) {
          // Still losing the race after the last attempt: give up quietly, as a lost race is not a fault.
          if (!(error instanceof CasConflictError)) ctx.logger.warn({ err: error }, 'could not update the VM status');
        }
      },
      async writeStatus(vm, status, version) {
        const stat = await store.set(paths.vmStatus(vm), encodeVmStatus(status), version);
        informer.noteStatus(vm, status, stat.version);
      },
      async readSpec(vm) {
        const got = await store.get(paths.vmSpec(vm));
        return got ? decodeVmSpec(got.data.toString('utf8')) : null;
      },
      watchSpec: (vm): Observable<VmSpec | null> =>
        store.watchData(paths.vmSpec(vm)).pipe(
          map((s) => {
            if (s.kind === 'deleted') return null;
            try {
              return decodeVmSpec(s.data.toString('utf8'));
            } catch {
              return null;
            }
          }),
        ),
      watchPeerSession: (peer): Observable<string | null> =>
        store.watchData(paths.nodeAlive(peer)).pipe(map((s) => (s.kind === 'data' ? s.stat.ephemeralOwner : null))),
    };
  }
}
