// The domain concern's controller (one per node): the VM informer, libvirt lifecycle events and a
// periodic resync → one work queue of VM names → the domain reconciler (plan.ts, execute.ts).
//
// While the ZooKeeper connection is suspended no mutating action starts: the
// reconcile is deferred, since a partitioned node may no longer own its VMs.
//
// A VM whose spec moves it to another node is the migration concern's: both controllers follow
// the same informer, so this one only leaves such a VM alone (no hand-off call between them).
//
// The periodic resync lists the local domains (one libvirt listing) and, but for one in
// FULL_RESYNC_EVERY, looks only at the VMs not settled: a VM whose last look planned nothing is
// left out while everything that look read is unchanged (reconcilers/settled.ts): its informer
// objects, its domain's state in that listing, this session, the networks. A look whose plan
// depends on the clock (a crash streak, an RBD gate) or on an unproven session settles nothing.
import { filter, map, mergeMap } from 'rxjs';
import type { Logger } from 'pino';
import type { Hypervisor } from '../../drivers/hypervisor.ts';
import type { LocalDomain } from '../../drivers/domain-run-state.ts';
import { peekSpec, planDomain, planUnreadableSpec, describeDomainAction, type DomainAction, type DomainDesired, type DomainObserved } from './plan.ts';
import { executeDomain, StatusConflictError, type DomainEffects } from './execute.ts';
import { decodeMigrationRecord, encodeVmStatus, decodeVmStatus, migrationInFlight, type Condition, type VmStatus, type ZkPaths } from '../../schemas/index.ts';
import { done, requeueAfter, type ReconcileContext, type Result } from '../../controllers/reconciler.ts';
import { Controller, type ResyncLook } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import type { VmEntry, VmInformer } from '../../controllers/informers/vms.ts';
import type { NetworkInformer } from '../../controllers/informers/networks.ts';
import { networkOfBridge, networksNotReady } from '../network-readiness.ts';
import { rbdStartGate } from '../rbd-readiness.ts';
import { NodeExistsError, NoNodeError, VersionConflictError, type ZkStore } from '../../drivers/zk/index.ts';
import { releaseIndexEntry } from '../../core/vm-index.ts';
import { SettledLooks } from '../settled.ts';

/** What a reconcile plans from: the desired and observed state, and what it read (reconcilers/settled.ts). */
type DomainInputs = { desired: DomainDesired | undefined; observed: DomainObserved; read: unknown[] };

/** One periodic resync in this many looks at every VM, settled or not (10 minutes at the default period). */
const FULL_RESYNC_EVERY = 10;

export interface DomainControllerOptions {
  /** VMs reconciled at once (default 8). */
  concurrency?: number;
  resyncMs?: number;
  /** Called with each action line once carried out. */
  onAction?(line: string): void;
  now?: () => string;
  /**
   * The network concern runs on this node: a VM is started here only once every network its XML
   * plugs into (bridge vkbr<N>) is ready here.
   */
  networkGate?: boolean;
  /**
   * The RBD concern runs on this node: a VM with RBD disks is started here only on its clear
   * check (reconcilers/rbd-readiness.ts).
   */
  rbdGate?: boolean;
  /** One periodic resync in this many looks at settled VMs too (default FULL_RESYNC_EVERY). */
  fullResyncEvery?: number;
  /** How long a VM this node holds nothing of stays followed before its index entry is released (default 30 s). */
  indexReleaseAfterMs?: number;
}

/** The domain controller of the manager's node. */
export function domainController(m: Manager, o: DomainControllerOptions = {}): Controller<string> {
  const r = new DomainReconciler(m, o);
  return new Controller<string>({
    name: 'domain',
    log: m.log,
    keyField: 'vm',
    concurrency: o.concurrency ?? 8,
    sources: [
      m.informers.vms.changes$,
      m.hv.lifecycle$.pipe(map(({ name }) => name)),
      // A network that became ready (or not) here: the VMs homed here that plug into it.
      ...(o.networkGate ? [m.informers.networks.changes$.pipe(mergeMap((vni) => r.usersOf(vni)))] : []),
    ],
    resync: {
      keys: (look) => r.keys(look),
      everyMs: o.resyncMs ?? 60_000,
      fullEvery: o.fullResyncEvery ?? FULL_RESYNC_EVERY,
      triggers: [m.store.connectionState$.pipe(filter((state) => state === 'connected')), m.hv.connected$.pipe(filter((up) => up))],
    },
    // Every line of a reconcile carries node, vm and its reconcile id (ctx.logger).
    reconcile: (vm, signal, ctx) => r.reconcile(vm, signal, ctx),
    // A migrate action is the migration concern's step, planned (and printed) there.
    plan: async (vm) => ((await r.planFor(vm)) ?? []).filter((action) => action.kind !== 'migrate').map((action) => describeDomainAction(m.node, vm, action)),
  });
}

class DomainReconciler {
  private readonly now: () => string;
  /** The problem last logged per VM (InvalidSpec, InvalidXml), so each is logged once. */
  private readonly reported = new Map<string, string>();
  private readonly o: { node: string; store: ZkStore; paths: ZkPaths; hv: Hypervisor; log: Logger; indexed: boolean; onAction?: (line: string) => void };
  private readonly informer: VmInformer;
  private readonly networks: NetworkInformer | undefined;
  private readonly rbdGate: boolean;
  /** VMs found to be elsewhere (nothing of them here), since when: released after releaseAfterMs. */
  private readonly elsewhereSince = new Map<string, number>();
  private readonly releaseAfterMs: number;
  /** The VMs whose last look planned nothing, with what it read. */
  private readonly settled = new SettledLooks<string>();
  /** Counts the network informer's changes: a settled look read the networks as of one epoch. */
  private networksEpoch = 0;

  constructor(m: Manager, opts: DomainControllerOptions) {
    this.now = opts.now ?? (() => new Date().toISOString());
    this.o = { node: m.node, store: m.store, paths: m.paths, hv: m.hv, log: m.log, indexed: m.informers.vms.indexed, ...(opts.onAction ? { onAction: opts.onAction } : {}) };
    this.informer = m.informers.vms;
    this.networks = opts.networkGate ? m.informers.networks : undefined;
    this.rbdGate = opts.rbdGate ?? false;
    this.releaseAfterMs = opts.indexReleaseAfterMs ?? 30_000;
    // Subscribed before the informers start (registration precedes Manager.start).
    this.networks?.changes$.subscribe(() => this.networksEpoch++);
  }

  /** The VMs homed here whose XML plugs into network `vni`'s bridge. */
  usersOf(vni: number): string[] {
    return this.informer.names().filter((vm) => {
      const entry = this.informer.get(vm);
      return entry?.spec && 'value' in entry.spec && entry.spec.value.node === this.o.node && entry.xml && 'value' in entry.xml && entry.xml.value.info?.bridges.some((b) => networkOfBridge(b) === vni);
    });
  }

  /** Why the networks the XML plugs into are not all ready on this node, or undefined. */
  private networksNotReady(bridges: readonly string[]): string | undefined {
    const networks = this.networks;
    return networks ? networksNotReady(this.o.node, bridges, (vni) => networks.get(vni)) : undefined;
  }

  /**
   * Every VM homed or owned here and every local domain (for any other VM the planner has nothing
   * to do). The domains are listed first, with their states, so the reconciles that follow find
   * them in the driver's state cache.
   */
  async keys(look: ResyncLook = 'full'): Promise<string[]> {
    let domains: string[] = [];
    let listed = true;
    try {
      domains = await this.o.hv.refreshDomainStates();
    } catch (error) {
      listed = false;
      this.o.log.warn({ err: error }, 'listing local domains failed; looking each VM up');
    }
    // Every local domain, ours or a stray; a VM known to neither side has nothing to do here. With
    // the index, a local domain's VM is followed whatever the index says (the informer's V3), and
    // every VM followed is looked at: it is one this node has or had.
    for (const name of domains) this.informer.pin(name);
    const keys = this.o.indexed ? [...this.informer.names(), ...domains] : [...this.informer.names().filter((vm) => this.homedOrOwnedHere(vm)), ...domains];
    // Without a fresh listing, drift in libvirt could hide behind a settled look: look at them all.
    if (look === 'full' || !listed) return keys;
    return keys.filter((vm) => !this.settled.holds(vm, this.lookNow(vm)));
  }

  /** What a look at `vm` would read now, as `settle` records it; undefined when unknown. */
  private lookNow(vm: string): unknown[] | undefined {
    const entry = this.informer.get(vm);
    const domain = this.o.hv.knownDomainState(vm);
    if (!entry || domain === undefined) return undefined;
    return this.look(this.entryRead(entry), domain, this.o.store.sessionId);
  }

  /** A look's tuple: what it read of the informer, then the domain, the networks epoch and the session. */
  private look(read: unknown[], domain: DomainObserved['domain'], session: string): unknown[] {
    return [...read, domainRead(domain), this.networksEpoch, session];
  }

  private entryRead(entry: VmEntry): unknown[] {
    return [entry, entry.spec, entry.xml, entry.status, entry.migration, entry.rbd];
  }

  /**
   * Records a look that planned nothing, unless its plan may change with nothing it read changing:
   * the clock (a crash streak still counting, an RBD gate) or a session not proven alive.
   */
  private settle(vm: string, read: unknown[], inputs: { desired: DomainDesired | undefined; observed: DomainObserved }): void {
    const { desired, observed } = inputs;
    if (!observed.session?.proven || desired?.rbd !== undefined || observed.status?.value.crash !== undefined) return;
    this.settled.note(vm, this.look(read, observed.domain, observed.session.id));
  }

  /** spec.node or status.node names this node (or the VM is not fully read yet). */
  private homedOrOwnedHere(vm: string): boolean {
    const entry = this.informer.get(vm);
    if (!entry?.loaded || !entry.spec || 'error' in entry.spec) return true;
    if (entry.spec.value.node === this.o.node) return true;
    return !!entry.status && 'value' in entry.status && entry.status.value.node === this.o.node;
  }

  /** What this node would do for `vm` now (no effects). Undefined when it may not decide yet. */
  async planFor(vm: string): Promise<DomainAction[] | undefined> {
    const spec = this.informer.get(vm)?.spec;
    if (spec && 'error' in spec) return planUnreadableSpec(spec.raw, await this.o.hv.domainState(vm));
    const inputs = await this.inputsFor(vm);
    return inputs && planDomain(vm, inputs.desired, inputs.observed);
  }

  /**
   * The planner's inputs for `vm`, answered in the caller's turn when the driver's state cache knows
   * the domain and the session is proven (the usual case): no libvirt call and no turn of the event
   * loop, so a start or stop is sent inside the informer's "look again", before the other concerns'
   * reconciles of the same change run. Otherwise a promise: a libvirt or ZooKeeper read comes first.
   */
  private inputsFor(vm: string): DomainInputs | undefined | Promise<DomainInputs | undefined> {
    const entry = this.informer.get(vm);
    const read = entry ? this.entryRead(entry) : [];
    const removed = this.informer.wasRemoved(vm);
    // A domain libvirt has but ZooKeeper never listed is not ours to touch.
    if (!entry && !removed) return undefined;
    if (entry && !entry.loaded) return undefined;
    let desired: DomainDesired | undefined;
    // A VM whose spec znode is gone must not run: planned as deleted. An unreadable one is not planned.
    if (entry?.spec) {
      if ('error' in entry.spec) return undefined;
      const xmlPath = this.o.paths.vmXml(vm);
      const xml = entry.xml && 'value' in entry.xml ? entry.xml.value : undefined;
      // Only the home node reads the XML; elsewhere the planner never looks at it.
      const homed = entry.spec.value.node === this.o.node;
      const xmlProblem = !homed
        ? undefined
        : !entry.xml
          ? `${xmlPath} is missing`
          : 'error' in entry.xml
            ? `${xmlPath}: ${entry.xml.error}`
            : xml!.error !== undefined
              ? `${xmlPath}: ${xml!.error}`
              : undefined;
      const networksNotReady = homed && xmlProblem === undefined ? this.networksNotReady(xml!.info?.bridges ?? []) : undefined;
      const statusVersion = entry.status ? entry.status.version : null;
      const rbd = homed && this.rbdGate ? rbdStartGate(this.o.node, entry.spec.value.rbd, statusVersion, entry.rbd && 'value' in entry.rbd ? entry.rbd.value : null, Date.parse(this.now())) : undefined;
      desired = {
        spec: entry.spec.value,
        generation: entry.spec.version,
        xml: xml && xmlProblem === undefined ? xml.text : '',
        get xmlHash() {
          return xml && xmlProblem === undefined ? xml.hash : '';
        },
        ...(xmlProblem !== undefined && { xmlProblem }),
        ...(networksNotReady !== undefined && { networksNotReady }),
        ...(rbd !== undefined && { rbd }),
      };
    }
    const known = this.o.hv.knownDomainState(vm);
    // A quiet session is proven with one read, so a start held here needs no claim (a write).
    const prove = (): boolean => !sessionProven(this.o.store) && this.o.store.connectionState === 'connected';
    if (known !== undefined && !prove()) return this.observed(entry, desired, read, known);
    return (async () => {
      const domain = known !== undefined ? known : await this.o.hv.domainState(vm);
      if (prove()) await this.o.store.exists(this.o.paths.vmStatus(vm)).catch(() => undefined);
      return this.observed(entry, desired, read, domain);
    })();
  }

  private observed(entry: VmEntry | undefined, desired: DomainDesired | undefined, read: unknown[], domain: LocalDomain | null): DomainInputs {
    const status = entry?.status && 'value' in entry.status ? entry.status : null;
    const migration = entry?.migration && 'value' in entry.migration ? entry.migration.value : null;
    return {
      read,
      desired,
      observed: {
        node: this.o.node,
        domain: domain && { state: domain.state, persistent: domain.persistent },
        status,
        migration,
        now: this.now(),
        session: { id: this.o.store.sessionId, proven: sessionProven(this.o.store) },
      },
    };
  }

  async reconcile(vm: string, signal: AbortSignal, ctx: ReconcileContext): Promise<Result> {
    // Settled again only by a look that plans nothing (S2 of reconcilers/settled.ts).
    this.settled.forget(vm);
    if (this.o.store.connectionState !== 'connected') return requeueAfter(500);
    const entry = this.informer.get(vm);
    if (entry?.spec && 'error' in entry.spec) return this.reconcileUnreadableSpec(vm, entry.spec, ctx, signal);
    // A local domain of a VM outside this node's index (a stray, a copy left behind): follow the
    // VM; once read, the informer says so and this looks again.
    if (this.o.indexed && !entry && !this.informer.wasRemoved(vm)) {
      if (await this.o.hv.domainState(vm)) this.informer.pin(vm);
      return done;
    }
    const pending = this.inputsFor(vm);
    // Not awaited when answered at once: an await is a turn in which other reconciles run first.
    const inputs = pending instanceof Promise ? await pending : pending;
    if (!inputs) return done;
    this.reportOnce(vm, inputs.desired?.xmlProblem && { reason: 'InvalidXml', message: inputs.desired.xmlProblem });
    const actions = planDomain(vm, inputs.desired, inputs.observed);
    // The migration concern follows the same informer and takes it from here.
    if (actions.some((a) => a.kind === 'migrate')) return done;
    if (actions.length === 0) {
      if (!inputs.desired && !inputs.observed.domain) {
        this.informer.forgetRemoved(vm);
        // A VM whose spec went without its index entry (not through vk): the entry goes too.
        if (this.o.indexed && entry) await releaseIndexEntry(this.o.store, this.o.paths, vm, this.o.node, null);
        return done;
      }
      if (inputs.desired && !inputs.observed.domain) {
        const result = await this.releaseIfElsewhere(vm, inputs.desired, inputs.observed, ctx);
        // Still followed and nothing pending (a release waits with requeueAfter).
        if (result.kind === 'done' && this.informer.get(vm)) this.settle(vm, inputs.read, inputs);
        return result;
      }
      this.settle(vm, inputs.read, inputs);
      return done;
    }
    const outcome = await executeDomain(this.o.node, vm, actions, this.effects(ctx), signal);
    return outcome.kind === 'requeueAfter' ? requeueAfter(outcome.ms) : done;
  }

  /**
   * A VM this node holds nothing of (no local domain, its spec — node and previous node — and
   * status name other nodes, no migration to or from here in flight): this node's index entry of it goes (core/vm-index.ts,
   * conditional on the spec's version) and the informer stops following it.
   */
  private async releaseIfElsewhere(vm: string, desired: DomainDesired, observed: DomainObserved, ctx: ReconcileContext): Promise<Result> {
    const node = this.o.node;
    if (!this.o.indexed || desired.spec.node === node || desired.spec.previousNode === node || observed.status?.value.node === node || migrationInFlight(observed.migration, node)) {
      this.elsewhereSince.delete(vm);
      return done;
    }
    // Only once it has stayed elsewhere a while: a VM whose spec moves back and forth (a move
    // storm, a retargeted migration) stays followed, as every VM was before the index.
    const now = Date.now();
    const since = this.elsewhereSince.get(vm) ?? now;
    this.elsewhereSince.set(vm, since);
    if (now - since < this.releaseAfterMs) return requeueAfter(this.releaseAfterMs - (now - since));
    this.elsewhereSince.delete(vm);
    if (await releaseIndexEntry(this.o.store, this.o.paths, vm, node, desired.generation)) {
      ctx.logger.debug({ vm }, `VM index: ${vm} is elsewhere; released this node's entry`);
      this.informer.unpin(vm);
    }
    return done;
  }

  /**
   * A spec that cannot be decoded: stop the guest here if its text says it must not run, and put
   * an InvalidSpec condition on the status (by the VM's owner, or — for a VM with no status yet —
   * by the node its text names). Logged once per distinct error, not at every resync.
   */
  private async reconcileUnreadableSpec(vm: string, spec: { error: string; raw: string; version: number }, ctx: ReconcileContext, signal: AbortSignal): Promise<Result> {
    const message = `${this.o.paths.vmSpec(vm)}: ${spec.error}`;
    this.reportOnce(vm, { reason: 'InvalidSpec', message });
    const actions = planUnreadableSpec(spec.raw, await this.o.hv.domainState(vm));
    if (actions.length > 0) await executeDomain(this.o.node, vm, actions, this.effects(ctx), signal);
    const entry = this.informer.get(vm);
    const status = entry?.status && 'value' in entry.status ? entry.status : null;
    const now = this.now();
    const mark: Condition = { type: 'InvalidSpec', status: 'True', reason: 'InvalidSpec', message, lastTransitionTime: now };
    if (status && status.value.node === this.o.node) {
      const before = status.value.conditions.find((c) => c.type === 'InvalidSpec');
      if (before?.status === 'True' && before.message === message) return done;
      const conditions = [...status.value.conditions.filter((c) => c.type !== 'InvalidSpec'), mark];
      await this.writeStatus(vm, { ...status.value, conditions, updatedAt: now }, status.version);
    } else if (!status && peekSpec(spec.raw).node === this.o.node) {
      await this.writeStatus(vm, { phase: 'Pending', node: this.o.node, observedGeneration: spec.version, conditions: [mark], updatedAt: now }, null);
    }
    // Not `terminal`: the work queue would log that at every resync; the condition and one line say it.
    return done;
  }

  /** A warn line when a VM's problem appears or changes, none while it stays the same; cleared once it is gone. */
  private reportOnce(vm: string, problem: { reason: string; message: string } | undefined | '' | false): void {
    if (!problem) {
      this.reported.delete(vm);
      return;
    }
    const key = `${problem.reason}:${problem.message}`;
    if (this.reported.get(vm) === key) return;
    this.reported.set(vm, key);
    this.o.log.warn({ vm, reason: problem.reason }, problem.message);
  }

  private effects(ctx: ReconcileContext): DomainEffects {
    return {
      hv: this.o.hv,
      // A getter: the reconcile's child logger is only made when a line is logged.
      get log() {
        return ctx.logger;
      },
      now: this.now,
      onAction: this.o.onAction,
      writeStatus: (vm, status, version) => this.writeStatus(vm, status, version),
      readOwnership: (vm) => this.readOwnership(vm),
      currentStatus: (vm) => {
        const status = this.informer.get(vm)?.status;
        return status && 'value' in status ? status.value : null;
      },
    };
  }

  private async writeStatus(vm: string, status: VmStatus, version: number | null): Promise<number> {
    const path = this.o.paths.vmStatus(vm);
    const data = encodeVmStatus(status);
    try {
      if (version === null) {
        await this.o.store.create(path, data);
        this.informer.noteStatus(vm, status, 0);
        return 0;
      }
      const stat = await this.o.store.set(path, data, version);
      this.informer.noteStatus(vm, status, stat.version);
      return stat.version;
    } catch (error) {
      // The cached version was stale: reload it so the retry plans against the truth.
      if (error instanceof VersionConflictError || error instanceof NodeExistsError || error instanceof NoNodeError) {
        await this.reloadStatus(vm);
        throw new StatusConflictError(vm, { cause: error });
      }
      throw error;
    }
  }

  /** Status and migration record read from ZooKeeper itself, for a decision the cache must not make. */
  private async readOwnership(vm: string): Promise<{ status: { value: VmStatus; version: number } | null; migrationHere: boolean }> {
    const [status, record] = await Promise.all([this.o.store.get(this.o.paths.vmStatus(vm)), this.o.store.get(this.o.paths.vmMigration(vm))]);
    let migrationHere = false;
    if (record) {
      try {
        migrationHere = migrationInFlight(decodeMigrationRecord(record.data.toString('utf8')), this.o.node);
      } catch {
        // An unreadable record proves nothing either way: treat it as in flight and keep the guest.
        migrationHere = true;
      }
    }
    const fresh = status && { value: decodeVmStatus(status.data.toString('utf8')), version: status.version };
    if (fresh) this.informer.noteStatus(vm, fresh.value, fresh.version, true);
    return { status: fresh, migrationHere };
  }

  private async reloadStatus(vm: string): Promise<void> {
    const fresh = await this.o.store.get(this.o.paths.vmStatus(vm));
    if (fresh) this.informer.noteStatus(vm, decodeVmStatus(fresh.data.toString('utf8')), fresh.version, true);
  }
}

/** A domain as a settled look records it: its state and persistence, or that there is none. */
function domainRead(domain: DomainObserved['domain']): string {
  return domain ? `${domain.state}:${domain.persistent}` : 'none';
}

/**
 * The session surely lives: a request of it was answered within a third of its timeout (the
 * server expires a session only after a whole timeout without hearing from it).
 */
function sessionProven(store: Pick<ZkStore, 'connectionState' | 'provenAgoMs' | 'sessionTimeoutMs'>): boolean {
  return store.connectionState === 'connected' && store.provenAgoMs() < store.sessionTimeoutMs / 3;
}
