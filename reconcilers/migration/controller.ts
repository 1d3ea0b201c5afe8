// The per-node migration controller: the shared VM informer, libvirt
// lifecycle events, the nodes informer's alive znodes, the cluster config and a periodic resync → one work
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
//
// The periodic resync, but for one in FULL_RESYNC_EVERY, leaves out the VMs at rest whose last
// look found no migration part for this node while nothing it read changed (reconcilers/settled.ts):
// their informer objects, the node list and peers, this session.
import { filter, map, mergeMap, type Observable } from 'rxjs';
import type { MigratingHypervisor } from '../../drivers/hypervisor.ts';
import { describeMigrationStep, planMigration, planPlacementCondition, isTerminal, UNKNOWN_NODE, type MigrationInputs, type MigrationStep, type PeerInfo } from './plan.ts';
import { executeMigration, type MigrationEffects, type MigrationEvent } from './execute.ts';
import { decodeVmSpec, decodeVmStatus, isValidName, encodeMigrationRecord, encodeVmStatus, VM_STATUS_ZNODE, type MigrationRecord, type VmSpec, type VmStatus } from '../../schemas/index.ts';
import { done, requeueAfter, type ReconcileContext, type Result } from '../../controllers/reconciler.ts';
import { Controller, type ResyncLook } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import type { VmEntry, VmInformer } from '../../controllers/informers/vms.ts';
import type { NodeAlive } from '../../controllers/informers/nodes.ts';
import { bridgeExists } from '../../drivers/links.ts';
import { networksNotReady } from '../network-readiness.ts';
import { rbdIncomingGate } from '../rbd-readiness.ts';
import { CasConflictError, compareAndSet, NO_CHANGE, TransactionError, VersionConflictError, type Op } from '../../drivers/zk/index.ts';
import { SettledLooks } from '../settled.ts';

/** One periodic resync in this many looks at every VM, settled or not (10 minutes at the daemon's period). */
const FULL_RESYNC_EVERY = 10;

export interface MigrationControllerOptions {
  /** Cap on outgoing migrations' bandwidth, MiB/s. */
  bandwidthMiBs?: number;
  /** Whether a bridge exists on this node (default: /sys/class/net/<name>/bridge). */
  bridgeExists?(name: string): Promise<boolean>;
  /** The network concern runs here: an incoming VM needs its networks ready on this node. */
  networkGate?: boolean;
  /** The RBD concern runs here: an incoming migration of a VM with RBD disks waits for its clear check. */
  rbdGate?: boolean;
  onAction?(line: string): void;
  onEvent?(event: MigrationEvent): void;
  onAbortIssued?(vm: string, atMs: number): void;
  /** Workers: VMs stepped at once (a live copy holds one for its duration). Default 64. */
  concurrency?: number;
  resyncMs?: number;
  /** One periodic resync in this many looks at settled VMs too (default FULL_RESYNC_EVERY). */
  fullResyncEvery?: number;
  progressIntervalMs?: number;
  now?: () => number;
}

/** How long our own record write shadows a watch that has not shown it yet. */
const OWN_WRITE_SHADOW_MS = 5_000;
const ACKED: ReadonlySet<string> = new Set(['prepared', 'copying', 'switching']);

function parsePeer(alive: NodeAlive | null): PeerInfo | undefined {
  if (!alive?.session) return undefined;
  const peer: PeerInfo = { session: alive.session };
  try {
    const payload = JSON.parse(alive.payload) as { migration?: { uri?: unknown; migrateUri?: unknown } };
    const m = payload.migration;
    if (m && typeof m.uri === 'string' && typeof m.migrateUri === 'string') peer.migration = { uri: m.uri, migrateUri: m.migrateUri };
  } catch {
    // An alive znode without a (JSON) payload still says the daemon is there.
  }
  return peer;
}

/** The migration controller of the manager's node. */
export function migrationController(m: Manager, o: MigrationControllerOptions = {}): Controller<string> {
  const { hv } = m;
  const r = new MigrationReconciler(m, hv, o);
  const { vms, nodes, config } = m.informers;
  return new Controller<string>({
    name: 'migration',
    log: m.log,
    keyField: 'vm',
    concurrency: o.concurrency ?? 64,
    sources: [
      vms.changes$,
      hv.lifecycle$.pipe(map(({ name }) => name)),
      // A peer that comes or goes: the VMs whose record or spec names it.
      nodes.alive$.pipe(mergeMap((node) => r.involving(node))),
      // A node that appears (or goes) may be the one some spec.node names.
      nodes.list$.pipe(mergeMap(() => r.placements())),
    ],
    resync: {
      keys: (look) => r.keys(look),
      everyMs: o.resyncMs ?? 30_000,
      fullEvery: o.fullResyncEvery ?? FULL_RESYNC_EVERY,
      triggers: [m.store.connectionState$.pipe(filter((state) => state === 'connected')), config.changes$],
    },
    reconcile: (vm, signal, ctx) => r.reconcile(vm, signal, ctx),
    plan: (vm) => r.plan(vm),
  });
}

type Decision =
  /** `settled`: what a look that found nothing for this node read (SettledLooks), when its answer can only change with that. */
  | { kind: 'done'; settled?: unknown[] }
  | { kind: 'placement'; placement: NonNullable<ReturnType<typeof planPlacementCondition>>; message: string | undefined }
  | { kind: 'step'; step: MigrationStep; inputs: MigrationInputs; reservation: Set<string> | undefined };

function placementLine(node: string, vm: string, message: string): string {
  return `${node} ${vm} condition ${UNKNOWN_NODE}: ${message}`;
}

class MigrationReconciler {
  /** Records as we last wrote them, until the informer has caught up. */
  private readonly ownWrites = new Map<string, { value: MigrationRecord; version: number; at: number }>();
  private readonly orphanSince = new Map<string, { id: string; since: number }>();
  private readonly reservedOut = new Set<string>();
  private readonly reservedIn = new Set<string>();
  private readonly now: () => number;
  private readonly informer: VmInformer;
  /** The VMs at rest whose last look found nothing to do here, with what it read. */
  private readonly settled = new SettledLooks<string>();

  /** Derived from the nodes informer, rebuilt only when a node's alive znode or the node list changes. */
  private peersCache: ReadonlyMap<string, PeerInfo> | undefined;
  private names: ReadonlySet<string> | undefined;

  constructor(
    private readonly m: Manager,
    private readonly hv: MigratingHypervisor,
    private readonly o: MigrationControllerOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.informer = m.informers.vms;
    // Subscribed before the informers start (registration precedes Manager.start and plan), so no
    // emission is missed; both streams complete when the informer stops.
    const forget = () => (this.peersCache = undefined);
    m.informers.nodes.alive$.subscribe(forget);
    m.informers.nodes.list$.subscribe((names) => {
      this.names = names;
      forget();
    });
  }

  /** The peers this node sees now: every node whose daemon holds its alive znode (parsed once per change, not per reconcile). */
  private peers(): ReadonlyMap<string, PeerInfo> {
    if (this.peersCache) return this.peersCache;
    const peers = new Map<string, PeerInfo>();
    const nodes = this.m.informers.nodes;
    for (const name of nodes.names()) {
      const peer = parsePeer(nodes.get(name)?.alive ?? null);
      if (peer) peers.set(name, peer);
    }
    this.peersCache = peers;
    return peers;
  }

  /** The nodes of the cluster (undefined until listed). */
  private nodeNames(): ReadonlySet<string> | undefined {
    return this.names;
  }

  /** VMs whose spec.node names no node of the cluster, or whose status still says so. */
  placements(): string[] {
    const names = this.nodeNames();
    if (!names) return [];
    return this.informer.names().filter((vm) => {
      const entry = this.informer.get(vm);
      const spec = entry?.spec && 'value' in entry.spec ? entry.spec.value : null;
      const status = entry?.status && 'value' in entry.status ? entry.status.value : null;
      return (spec && !names.has(spec.node)) || status?.conditions.some((c) => c.type === UNKNOWN_NODE);
    });
  }

  /** Every VM this node may have a migration part in (any other one's reconcile returns at once). */
  async keys(look: ResyncLook = 'full'): Promise<string[]> {
    await this.followUnknownNodes();
    const keys = [...this.informer.names().filter((vm) => this.mayInvolveThisNode(vm)), ...this.placements()];
    return look === 'full' ? keys : keys.filter((vm) => !this.settled.holds(vm, this.lookNow(vm)));
  }

  /** What a look at `vm` at rest reads now; undefined when there is no entry. */
  private lookNow(vm: string): unknown[] | undefined {
    const entry = this.informer.get(vm);
    return entry && this.restRead(entry);
  }

  /** Everything decide's answers before its first await depend on: the entry's objects, the node list, the peers, the session. */
  private restRead(entry: VmEntry): unknown[] {
    return [entry, entry.spec, entry.status, entry.migration, this.names, this.peers(), this.m.store.sessionId];
  }

  /**
   * The reporter of UnknownNode for VMs without a status (the first live node by name) follows the
   * index entries of names that are no node of the cluster (core/vm-index.ts): another tool wrote
   * those specs, and no daemon's own index lists them.
   */
  private async followUnknownNodes(): Promise<void> {
    const names = this.nodeNames();
    if (!names || !this.informer.indexed || [...this.peers().keys()].sort()[0] !== this.m.node) return;
    try {
      const indexed = ((await this.m.store.children(this.m.paths.index)) ?? []).filter((n) => isValidName(n) && !names.has(n));
      for (const unknown of indexed) for (const vm of (await this.m.store.children(this.m.paths.nodeVms(unknown))) ?? []) this.informer.pin(vm);
    } catch (error) {
      this.m.log.warn({ err: error }, 'could not list the index of names that are no node; trying again at the next resync');
    }
  }

  /** The inverse of reconcile's first test: a record naming this node, or a status held here. */
  private mayInvolveThisNode(vm: string): boolean {
    const { node } = this.m;
    const r = this.recordOf(vm)?.value;
    if (r && (r.source === node || r.target === node)) return true;
    const status = this.informer.get(vm)?.status;
    return !!status && 'value' in status && status.value.node === node;
  }

  /** The VMs whose record or spec names `node`. */
  involving(node: string): string[] {
    return this.informer.names().filter((vm) => {
      const entry = this.informer.get(vm);
      const record = entry?.migration && 'value' in entry.migration ? entry.migration.value : null;
      const spec = entry?.spec && 'value' in entry.spec ? entry.spec.value : null;
      return (record && (record.source === node || record.target === node)) || spec?.node === node;
    });
  }

  /** The informer's record, unless our own later write has not reached it yet. */
  private recordOf(vm: string): { value: MigrationRecord; version: number } | null {
    const entry = this.informer.get(vm);
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
    for (const vm of this.informer.names()) {
      if (vm === except) continue;
      const r = this.recordOf(vm)?.value;
      if (r && !isTerminal(r.phase) && match(r)) vms.add(vm);
    }
    for (const vm of reserved) if (vm !== except) vms.add(vm);
    return vms.size;
  }

  async reconcile(vm: string, signal: AbortSignal, ctx: ReconcileContext): Promise<Result> {
    // Settled again only by a look that finds nothing to do (S2 of reconcilers/settled.ts).
    this.settled.forget(vm);
    if (this.m.store.connectionState !== 'connected') return requeueAfter(500);
    const d = await this.decide(vm, true);
    switch (d.kind) {
      case 'done':
        if (d.settled) this.settled.note(vm, d.settled);
        return done;
      case 'placement': {
        const path = this.m.paths.vmStatus(vm);
        if (d.placement.version === null) await this.m.store.create(path, encodeVmStatus(d.placement.status));
        else await this.m.store.set(path, encodeVmStatus(d.placement.status), d.placement.version);
        if (d.message) {
          ctx.logger.warn({ reason: UNKNOWN_NODE }, d.message);
          this.o.onAction?.(placementLine(this.m.node, vm, d.message));
        }
        return done;
      }
      case 'step':
        break;
    }
    const { step, inputs, reservation } = d;
    if (step.kind === 'none') return done;
    if (step.kind === 'wait') {
      ctx.logger.debug({ reason: step.reason, ms: step.ms }, step.message);
      return requeueAfter(Math.max(10, step.ms));
    }
    try {
      const outcome = await executeMigration(vm, step, inputs, this.effects(ctx), signal);
      return outcome.requeueMs !== undefined ? requeueAfter(outcome.requeueMs) : done;
    } catch (error) {
      // A stale version: the informer has (or will have) the truth; plan again from it.
      if (error instanceof VersionConflictError || error instanceof TransactionError || error instanceof CasConflictError) this.ownWrites.delete(vm);
      throw error;
    } finally {
      reservation?.delete(vm);
    }
  }

  /** Dry run: the step a reconcile of `vm` would carry out now (waits and no-ops print nothing). */
  async plan(vm: string): Promise<string[]> {
    const d = await this.decide(vm, false);
    if (d.kind === 'placement') return d.message ? [placementLine(this.m.node, vm, d.message)] : [];
    if (d.kind !== 'step' || d.step.kind === 'none' || d.step.kind === 'wait') return [];
    return [describeMigrationStep(this.m.node, vm, d.step, d.inputs.record?.value ?? null)];
  }

  /**
   * Reads the inputs and plans the step. With `reserve`, a step that starts a migration takes its
   * reservation before this returns: from the counts to the reservation nothing awaits, so
   * concurrent reconciles of different VMs cannot overshoot the limits.
   */
  private async decide(vm: string, reserve: boolean): Promise<Decision> {
    const { store, node } = this.m;
    const { hv, informer } = this;
    const entry = informer.get(vm);
    if (!entry) {
      this.ownWrites.delete(vm);
      this.orphanSince.delete(vm);
      return { kind: 'done' };
    }
    if (!entry.loaded || (entry.spec && 'error' in entry.spec)) return { kind: 'done' };
    const spec = entry.spec && 'value' in entry.spec ? entry.spec.value : null;
    const status = entry.status && 'value' in entry.status ? entry.status : null;
    const nodeNames = this.nodeNames();
    const peers = this.peers();
    const read = this.restRead(entry);
    if (nodeNames) {
      const placement = planPlacementCondition(node, spec, status, nodeNames, [...peers.keys()], new Date(this.now()).toISOString());
      if (placement) return { kind: 'placement', placement, message: placement.status.conditions.find((c) => c.type === UNKNOWN_NODE)?.message };
      if (spec && !nodeNames.has(spec.node)) return { kind: 'done', settled: read };
    }
    const record = this.recordOf(vm);
    const r = record?.value;
    const involved = r !== undefined && !isTerminal(r.phase) && (r.source === node || r.target === node);
    const mayStart = spec !== null && spec.state === 'running' && spec.node !== node && status?.value.node === node;
    const unsettled = status?.value.node === node && status.value.conditions.some((c) => c.type === 'Migrating' && c.status === 'True');
    if (!involved && !mayStart && !unsettled) {
      this.orphanSince.delete(vm);
      // A record of our own write not yet seen is no input the next look would see as changed.
      return nodeNames && !this.ownWrites.has(vm) ? { kind: 'done', settled: read } : { kind: 'done' };
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
    if (involved && r.target === node && peers.get(r.source)?.session !== r.sourceSession) {
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
      peers,
      orphanForMs,
      outgoing: this.count(vm, (x) => x.source === node, this.reservedOut),
      incoming: this.count(vm, (x) => x.target === node && ACKED.has(x.phase), this.reservedIn),
      config: this.m.informers.config.value.migration,
    };
    const rec = inputs.record?.value;
    if (this.o.rbdGate && spec && rec && rec.target === node) {
      const gate = rbdIncomingGate(node, spec.rbd, rec, entry.rbd && 'value' in entry.rbd ? entry.rbd.value : null);
      if (gate) inputs.rbd = gate;
    }
    const step = planMigration(inputs);
    const reservation = !reserve ? undefined : step.kind === 'request' ? this.reservedOut : step.kind === 'prepare' ? this.reservedIn : undefined;
    reservation?.add(vm);
    return { kind: 'step', step, inputs, reservation };
  }

  /** The executor's effects, logging through the reconcile's own logger. */
  private effects(ctx: ReconcileContext): MigrationEffects {
    const { store, paths, node } = this.m;
    const informer = this.informer;
    const noteRecord = (vm: string, value: MigrationRecord, version: number) => this.ownWrites.set(vm, { value, version, at: this.now() });
    /** The status and its version; an absent status is the value null, to be created. */
    const readStatusOrAbsent = async (vm: string): Promise<{ value: VmStatus | null; version: number | null }> => {
      const got = await store.get(paths.vmStatus(vm));
      return got ? { value: decodeVmStatus(got.data.toString('utf8')), version: got.version } : { value: null, version: null };
    };
    return {
      node,
      hv: this.hv,
      // A getter: the reconcile's child logger is only made when a line is logged.
      get log() {
        return ctx.logger;
      },
      nowMs: this.now,
      session: () => store.sessionId,
      bandwidthMiBs: this.o.bandwidthMiBs,
      bridgeExists: this.o.bridgeExists ?? ((name: string) => bridgeExists(name)),
      ...(this.o.networkGate ? { networksNotReady: (bridges: readonly string[]) => networksNotReady(node, bridges, (vni) => this.m.informers.networks.get(vni)) } : {}),
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
        // The record and the status it changes, in one multi; only a status that moved meanwhile is read again.
        const outcome = await compareAndSet(store, paths.vmStatus(vm), {
          what: `the status of ${vm}`,
          read: () => readStatusOrAbsent(vm),
          edit: (current) => status(current) ?? NO_CHANGE,
          encode: (next) => encodeVmStatus(next!),
          with: [recordOp],
        });
        if (outcome.kind === 'absent') throw new Error(`unreachable: the status of ${vm} is read as absent only as a value`);
        const recordVersion = version === null ? 0 : (outcome.with?.[0]?.stat?.version ?? version + 1);
        noteRecord(vm, record, recordVersion);
        if (outcome.kind === 'written' && outcome.value) informer.noteStatus(vm, outcome.value, outcome.version);
        return recordVersion;
      },
      async updateStatus(vm, nextOf) {
        try {
          const outcome = await compareAndSet(store, paths.vmStatus(vm), {
            ...VM_STATUS_ZNODE,
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
