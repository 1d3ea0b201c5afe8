// The fence concern's controller: on the coordinators (every node when none is configured), a
// session-bound lock (/locks/fence) elects the one that acts; it looks at every node on each change
// of the nodes informer, of the config, and, while it holds the lock, every few seconds (the timed
// steps ask for their own look with requeueAfter), and steps per plan.ts.
//
// Invariants:
//   L1  Every write this concern makes is a multi that also checks the fence lock child it holds
//       (version 0): a coordinator whose session ended (its ephemeral child is gone) writes
//       nothing, whatever it still believes.
//   L2  Losing the lock, or holding it anew, forgets every grace count (plan.ts F3).
//   L3  Before a fence the alive znode is read from ZooKeeper, not the cache: a node that is back
//       is not fenced.
//   L4  A recovery re-reads the VM's spec, status and migration record and writes them in one
//       multi with the lock check, only if the move still applies; its RBD locks are broken first
//       (the node is fenced: its QEMUs are gone or cut off from the images).
import { filter } from 'rxjs';
import { Controller } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { done, requeueAfter, type ReconcileContext, type Result } from '../../controllers/reconciler.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { compareAndSet, NO_CHANGE, type Op } from '../../drivers/zk/index.ts';
import { ZkLock, type LockHandle } from '../../drivers/zk/lock.ts';
import {
  decodeMigrationRecord,
  decodeNodeFence,
  decodeNodeSpec,
  decodeNodeStatus,
  decodeVmSpec,
  decodeVmStatus,
  encodeMigrationRecord,
  encodeNodeSpec,
  encodeNodeStatus,
  encodeVmSpec,
  encodeVmStatus,
  eventMessage,
  isValidName,
  VmXml,
  VM_STATUS_ZNODE,
  migrationInFlight,
  type Condition,
  type NodeFence,
  type NodeFenceStatus,
  type NodeStatus,
  type VmStatus,
} from '../../schemas/index.ts';
import { aliveTakesLiveMigration, type NodeCandidate } from '../selectors.ts';
import { appendEvent } from '../../core/events.ts';
import { indexOps } from '../../core/vm-index.ts';
import { statusHoldsGuest } from '../vm-holding.ts';
import { blocklistEntry, runLevels, type FenceEffects } from './execute.ts';
import { FENCE_LOCK, heldAtRest, planFence, planRecovery, recoveryApplies, recoverySpec, retryDelayMs, type FenceStep, type RecoveryMove, type RecoveryVm } from './plan.ts';

export interface FenceControllerOptions {
  effects: Omit<FenceEffects, 'log' | 'onAction'>;
  /** How often the holder looks at every node when nothing else asks (default 5000 ms). */
  resyncMs?: number;
  /** Recoveries run at once (default 8). */
  concurrency?: number;
  /** Notable transitions (fence started/succeeded/failed, vm recovered): the events log. */
  onEvent?(event: FenceEvent): void;
  onAction?(line: string): void;
}

export interface FenceEvent {
  kind: 'node.lost' | 'node.stale' | 'fence.started' | 'fence.succeeded' | 'fence.failed' | 'fence.lifted' | 'fence.cleared' | 'vm.recovered' | 'vm.notRecovered';
  node: string;
  vm?: string;
  level?: string;
  message: string;
}

const RESULTS_KEPT = 20;

export class FenceController implements Runnable {
  readonly name = 'fence';
  private readonly controller: Controller<string>;
  private readonly lock: ZkLock;
  private holding: LockHandle | undefined;
  private readonly stopping = new AbortController();
  private lockLoop: Promise<void> | undefined;
  /** Per node: when this holder saw its alive znode gone (performance.now()). */
  private readonly absentSince = new Map<string, number>();
  /** Per node: its status and lease versions as this holder last saw them, since when unchanged, and whether its silence was reported. */
  private readonly statusSeen = new Map<string, { version: string; since: number; reported: boolean }>();
  /** Per live node: its lease's version, read at each of this holder's looks (nobody watches leases). */
  private readonly leaseVersions = new Map<string, number>();

  constructor(
    private readonly m: Manager,
    private readonly o: FenceControllerOptions,
  ) {
    const nodes = m.informers.nodes;
    this.lock = new ZkLock(m.store, m.paths.lock(FENCE_LOCK), { owner: m.node, log: m.log });
    this.controller = new Controller<string>({
      name: 'fence',
      log: m.log,
      concurrency: 4,
      sources: [nodes.alive$, nodes.changes$],
      resync: {
        // Only the holder acts; it queues every node when it takes the lock.
        keys: () => (this.isHolder ? nodes.names() : []),
        everyMs: o.resyncMs ?? 5_000,
        triggers: [m.informers.config.changes$, m.store.connectionState$.pipe(filter((s) => s === 'connected'))],
      },
      reconcile: (node, _signal, ctx) => this.reconcile(node, ctx),
      plan: async (node) => this.planLines(node),
    });
  }

  get queue() {
    return this.controller.queue;
  }

  /** Whether this coordinator holds the fence lock now. */
  get isHolder(): boolean {
    return this.holding !== undefined && !this.holding.lost.aborted;
  }

  async start(): Promise<void> {
    await this.controller.start();
    this.lockLoop = this.contend();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.controller.stop();
    await this.lockLoop;
  }

  plan(): Promise<string[]> {
    return this.controller.plan();
  }

  private eligible(): boolean {
    const { coordinators } = this.m.informers.config.value;
    return coordinators.length === 0 || coordinators.includes(this.m.node);
  }

  /** Contends for the fence lock while this node is eligible; holds it until lost or stopped (L2). */
  private async contend(): Promise<void> {
    const stop = this.stopping.signal;
    while (!stop.aborted) {
      if (!this.eligible()) {
        await sleep(1_000, stop);
        continue;
      }
      let handle: LockHandle;
      try {
        handle = await this.lock.acquire(stop);
      } catch (error) {
        if (stop.aborted) return;
        this.m.log.warn({ err: error }, 'fence: could not queue for the fence lock; trying again');
        await sleep(1_000, stop);
        continue;
      }
      this.absentSince.clear();
      this.statusSeen.clear();
      this.leaseVersions.clear();
      this.holding = handle;
      this.m.log.info({ lock: handle.child }, 'fence: this coordinator holds the fence lock');
      this.o.onAction?.(`${this.m.node} holds the fence lock`);
      for (const name of this.m.informers.nodes.names()) this.controller.queue.add(name);
      await new Promise<void>((resolve) => {
        if (handle.lost.aborted || stop.aborted) return resolve();
        handle.lost.addEventListener('abort', () => resolve(), { once: true });
        stop.addEventListener('abort', () => resolve(), { once: true });
      });
      this.holding = undefined;
      this.absentSince.clear();
      if (stop.aborted) {
        await handle.release().catch(() => undefined);
        return;
      }
      this.m.log.warn('fence: the fence lock was lost; queueing again');
    }
  }

  /** L1: the op every write of this concern carries. */
  private lockCheck(): Op {
    const h = this.holding;
    if (!h || h.lost.aborted) throw new Error('the fence lock is not held');
    return { op: 'check', path: `${this.lock.path}/${h.child}`, version: 0 };
  }

  private facts(node: string) {
    const entry = this.m.informers.nodes.get(node);
    if (!entry?.loaded) return undefined;
    const alive = entry.alive !== null;
    const now = performance.now();
    if (alive) this.absentSince.delete(node);
    else if (!this.absentSince.has(node)) this.absentSince.set(node, now);
    const since = this.absentSince.get(node);
    const config = this.m.informers.config.value;
    // A keepalive renews the lease every tick and writes the status only when its figures change.
    const version = `${entry.status && 'version' in entry.status ? entry.status.version : -1}/${this.leaseVersions.get(node) ?? -1}`;
    const seen = this.statusSeen.get(node);
    if (!seen || seen.version !== version || !alive) this.statusSeen.set(node, { version, since: now, reported: false });
    const staleForMs = alive ? Math.round(now - this.statusSeen.get(node)!.since) : 0;
    return {
      node,
      me: this.m.node,
      holder: this.isHolder && this.m.store.connectionState === 'connected',
      alive,
      absentForMs: since === undefined ? 0 : Math.round(now - since),
      staleForMs,
      status: valueOf(entry.status),
      spec: valueOf(entry.spec),
      config,
      nowMs: Date.now(),
    };
  }

  private async planLines(node: string): Promise<string[]> {
    const f = this.facts(node);
    if (!f) return [];
    const step = planFence({ ...f, holder: true });
    return step.kind === 'none' || step.kind === 'wait' ? [] : [`fence ${node}: ${step.kind}${'message' in step ? ` (${step.message})` : ''}`];
  }

  /** The holder reads a live node's lease version before it plans (how stale its keepalive is). */
  private async readLease(node: string): Promise<void> {
    if (!this.isHolder || node === this.m.node || !this.m.informers.nodes.get(node)?.alive) return;
    try {
      this.leaseVersions.set(node, (await this.m.store.exists(this.m.paths.nodeLease(node)))?.version ?? -1);
    } catch {
      // ZooKeeper unreachable: the next look reads it again
    }
  }

  private async reconcile(node: string, ctx: ReconcileContext): Promise<Result> {
    await this.readLease(node);
    const f = this.facts(node);
    if (!f) return done;
    const step: FenceStep = planFence(f);
    switch (step.kind) {
      case 'none':
        return done;
      case 'wait':
        return requeueAfter(Math.max(50, step.ms));
      case 'stale': {
        const seen = this.statusSeen.get(node);
        if (seen && !seen.reported) {
          seen.reported = true;
          this.event({ kind: 'node.stale', node, message: step.message }, ctx);
        }
        return done;
      }
      case 'report':
        await this.report(node, step.message, ctx);
        return done;
      case 'clear':
        await this.clear(node, step.why, 'fence.cleared', undefined, ctx);
        return done;
      case 'lift':
        return this.lift(node, ctx);
      case 'fence':
        return this.fence(node, ctx);
      case 'recover':
        return this.recover(node, ctx);
    }
  }

  // ------------------------------------------------------------------------------ the record

  /** One CAS of the node's status with the lock check (L1); the edit gets the current fence record. */
  private async editRecord(node: string, edit: (s: NodeStatus) => NodeStatus | typeof NO_CHANGE, also: Op[] = []): Promise<NodeStatus | undefined> {
    const out = await compareAndSet(this.m.store, this.m.paths.nodeStatus(node), {
      what: `the status of node ${node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit,
      with: [this.lockCheck(), ...also],
    });
    return out.kind === 'written' ? out.value : out.kind === 'unchanged' ? out.read.value : undefined;
  }

  private record(base: NodeFenceStatus | undefined, patch: Partial<NodeFenceStatus> & Pick<NodeFenceStatus, 'state' | 'message'>): NodeFenceStatus {
    const now = new Date().toISOString();
    return {
      by: this.m.node,
      lostAt: base?.lostAt ?? now,
      rounds: base?.rounds ?? 0,
      results: base?.results ?? [],
      recovered: base?.recovered ?? [],
      notRecovered: base?.notRecovered ?? [],
      ...(base?.level ? { level: base.level } : {}),
      ...(base?.fencedAt ? { fencedAt: base.fencedAt } : {}),
      ...(base?.blocklist ? { blocklist: base.blocklist } : {}),
      ...patch,
      updatedAt: now,
    };
  }

  private event(e: FenceEvent, ctx: ReconcileContext): void {
    const log = e.kind.endsWith('failed') || e.kind === 'vm.notRecovered' || e.kind === 'node.lost' || e.kind === 'node.stale' ? 'warn' : 'info';
    ctx.logger[log]({ event: e.kind, fenced: e.node, vm: e.vm, fenceLevel: e.level }, e.message);
    this.o.onAction?.(`${e.kind} ${e.node}${e.vm ? ` ${e.vm}` : ''}: ${e.message}`);
    try {
      this.o.onEvent?.(e);
    } catch (error) {
      ctx.logger.warn({ err: error }, 'fence: could not pass the event on');
    }
    // The events log (`vk events`): best effort, never holding up a fence or a recovery.
    const event = { at: new Date().toISOString(), kind: e.kind, by: this.m.node, node: e.node, ...(e.vm ? { vm: e.vm } : {}), ...(e.level ? { level: e.level } : {}), message: eventMessage(e.message) };
    void appendEvent(this.m.store, this.m.paths, event).catch((error: unknown) => ctx.logger.warn({ err: error, event: e.kind }, 'fence: could not append to the events log'));
  }

  private async report(node: string, message: string, ctx: ReconcileContext): Promise<void> {
    let changed = false;
    await this.editRecord(node, (s) => {
      // Planned from a cache that has not seen this holder's own "fenced" write yet: the next look plans again.
      if (s.fence?.state === 'fenced') return NO_CHANGE;
      if (s.fence?.state === 'lost' && s.fence.message === message) return NO_CHANGE;
      changed = true;
      return { ...s, fence: this.record(s.fence, { state: 'lost', message }) };
    });
    if (changed) this.event({ kind: 'node.lost', node, message }, ctx);
  }

  private async clear(node: string, why: string, kind: FenceEvent['kind'], level: string | undefined, ctx: ReconcileContext): Promise<void> {
    let changed = false;
    await this.editRecord(node, (s) => {
      // "Back before it was fenced" planned from a cache behind this holder's own "fenced" write: a
      // fenced record is only lifted (vk node ready, kind fence.lifted), as it holds the blocklist to undo.
      if (!s.fence || (kind === 'fence.cleared' && s.fence.state === 'fenced')) return NO_CHANGE;
      changed = true;
      const { fence: _gone, ...rest } = s;
      return rest;
    });
    if (changed) this.event({ kind, node, message: why, ...(level ? { level } : {}) }, ctx);
  }

  // ------------------------------------------------------------------------------ fence

  private async readSettings(node: string): Promise<{ settings: NodeFence | null; problem?: string }> {
    try {
      const got = await this.m.store.get(this.m.paths.nodeFence(node));
      return { settings: got ? decodeNodeFence(got.data.toString('utf8')) : null };
    } catch (error) {
      return { settings: null, problem: `its fence settings cannot be read: ${(error as Error).message}` };
    }
  }

  private async fence(node: string, ctx: ReconcileContext): Promise<Result> {
    // L3: the cache may lag; a node that is back is not fenced.
    if ((await this.m.store.exists(this.m.paths.nodeAlive(node))) !== null) return requeueAfter(200);
    // Already fenced (the plan came from a cache behind this holder's own last write): recover, never
    // fence again, which would replace the proof recovery waits for with a new round.
    const started = await this.editRecord(node, (s) =>
      s.fence?.state === 'fenced' ? NO_CHANGE : { ...s, fence: this.record(s.fence, { state: 'fencing', message: `fencing ${node}: its alive znode is gone past the grace period` }) },
    );
    if (!started) return done;
    if (started.fence?.state === 'fenced') return this.recover(node, ctx, started);
    const round = (started.fence?.rounds ?? 0) + 1;
    this.event({ kind: 'fence.started', node, message: `fencing ${node} (round ${round}), lost since ${started.fence?.lostAt}` }, ctx);
    const { settings, problem } = await this.readSettings(node);
    const fx: FenceEffects = { ...this.o.effects, log: ctx.logger, ...(this.o.onAction ? { onAction: this.o.onAction } : {}) };
    const outcome = await runLevels(node, settings, started.storage?.address, fx);
    const config = this.m.informers.config.value.fence;
    if (outcome.level === undefined) {
      const why = problem ?? (outcome.results.length === 0 ? `${node} has no fence level configured (vk node fence set ${node})` : outcome.results.map((r) => `${r.level}: ${r.reason ?? 'failed'}`).join('; '));
      const delay = retryDelayMs(round, config);
      await this.editRecord(node, (s) => ({
        ...s,
        fence: this.record(s.fence, {
          state: 'failed',
          rounds: round,
          results: [...(s.fence?.results ?? []), ...outcome.results].slice(-RESULTS_KEPT),
          nextRetryAt: new Date(Date.now() + delay).toISOString(),
          message: `fence failed (round ${round}): ${why}; nothing is recovered; next try in ${Math.round(delay / 1000)} s`,
        }),
      }));
      this.event({ kind: 'fence.failed', node, message: `round ${round}: ${why}` }, ctx);
      return requeueAfter(delay);
    }
    const level = outcome.level;
    // Fenced: recorded with the node spec set to flushed in the same multi, so `vk node ready` brings it back.
    // The node's status says flushed too, for that generation (it runs nothing now): a `vk node
    // ready` is then a ready like after any flush, even if the node's daemon comes back after it.
    const spec = await this.m.store.get(this.m.paths.nodeSpec(node));
    const path = this.m.paths.nodeSpec(node);
    const flushed = encodeNodeSpec({ domainState: 'flushed' });
    let specOp: Op[];
    let generation: number;
    if (spec && decodeNodeSpec(spec.data.toString('utf8')).domainState === 'flushed') [specOp, generation] = [[{ op: 'check', path, version: spec.version }], spec.version];
    else if (spec) [specOp, generation] = [[{ op: 'set', path, data: flushed, version: spec.version }], spec.version + 1];
    else [specOp, generation] = [[{ op: 'create', path, data: flushed }], 0];
    const fenced = await this.editRecord(
      node,
      (s) => ({
        ...s,
        daemonState: 'dead',
        domainState: 'flushed',
        observedGeneration: generation,
        fence: (() => {
          const { nextRetryAt: _n, ...base } = s.fence ?? this.record(undefined, { state: 'fencing', message: '' });
          return {
            ...base,
            state: 'fenced' as const,
            level,
            by: this.m.node,
            rounds: round,
            fencedAt: new Date().toISOString(),
            results: [...(s.fence?.results ?? []), ...outcome.results].slice(-RESULTS_KEPT),
            ...(outcome.blocklist ? { blocklist: outcome.blocklist } : {}),
            message: `fenced by ${level}; \`vk node ready ${node}\` after the repair brings it back`,
            updatedAt: new Date().toISOString(),
          };
        })(),
      }),
      specOp,
    );
    this.event({ kind: 'fence.succeeded', node, level, message: `${node} fenced by ${level}` }, ctx);
    return this.recover(node, ctx, fenced);
  }

  // ------------------------------------------------------------------------------ recovery

  private candidates(): NodeCandidate[] {
    const nodes = this.m.informers.nodes;
    return nodes.names().flatMap((name) => {
      const entry = nodes.get(name);
      if (!entry) return [];
      return [{ name, alive: entry.alive !== null, liveMigration: entry.alive !== null && aliveTakesLiveMigration(entry.alive.payload), spec: valueOf(entry.spec), status: valueOf(entry.status) }];
    });
  }

  /**
   * The VMs that name the lost node (its index: spec or status), read from ZooKeeper now: this
   * daemon's informer follows only its own node's VMs (core/vm-index.ts).
   */
  private async recoveryVms(lost: string): Promise<RecoveryVm[]> {
    const { store, paths } = this.m;
    const names = ((await store.children(paths.nodeVms(lost))) ?? []).filter(isValidName);
    const read = await Promise.all(names.map((name) => Promise.all([store.get(paths.vmSpec(name)), store.get(paths.vmXml(name)), store.get(paths.vmStatus(name))])));
    return names.flatMap((name, i) => {
      const [specGot, xmlGot, statusGot] = read[i]!;
      const spec = decodeOrNull(specGot, decodeVmSpec);
      if (!spec) return [];
      const info = xmlGot ? new VmXml(xmlGot.data.toString('utf8'), name).info : undefined;
      const status = decodeOrNull(statusGot, decodeVmStatus);
      return [{
        name,
        spec,
        memoryMiB: info ? Math.round(info.memoryKiB / 1024) : 0,
        vcpus: info?.vcpus ?? 0,
        rbd: spec.rbd,
        otherDisks: info?.otherDisks,
        owner: status && statusHoldsGuest(status) ? status.node : undefined,
      }];
    });
  }

  /**
   * F1: recovers only under a fenced record read from ZooKeeper now (or just written by this
   * holder): the node cache may still show the record as it was before this holder's last write.
   */
  private async recover(node: string, ctx: ReconcileContext, fresh?: NodeStatus): Promise<Result> {
    const status = fresh ?? decodeOrNull(await this.m.store.get(this.m.paths.nodeStatus(node)), decodeNodeStatus);
    const level = status?.fence?.state === 'fenced' ? status.fence.level : undefined;
    if (!level || !this.m.informers.config.value.fence.recover) return done;
    const vms = await this.recoveryVms(node);
    let failures = 0;
    for (const vm of heldAtRest(node, level, vms)) {
      try {
        await this.releaseAtRest(node, level, vm.name, ctx);
      } catch (error) {
        failures++;
        ctx.logger.warn({ err: error, vm: vm.name }, `fence: releasing ${vm.name} failed; trying again`);
      }
    }
    const moves = planRecovery({ lost: node, level, vms, nodes: this.candidates(), defaultSelector: this.m.informers.config.value.defaultNodeSelector });
    if (moves.length === 0) return failures > 0 ? requeueAfter(1_000) : done;
    const blocklisted = await this.blocklistBeforeBreaking(node, status, moves, ctx);
    const recovered: string[] = [];
    const left: Array<{ vm: string; why: string }> = [];
    const queue = [...moves];
    const worker = async (): Promise<void> => {
      for (let move = queue.shift(); move; move = queue.shift()) {
        try {
          if (move.kind === 'leave') {
            if (await this.leave(node, move, ctx)) left.push({ vm: move.vm, why: move.why });
          } else if (await this.recoverOne(node, level, move, blocklisted, ctx)) recovered.push(move.vm);
        } catch (error) {
          failures++;
          ctx.logger.warn({ err: error, vm: move.vm }, `fence: recovering ${move.vm} failed; trying again`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 8, moves.length) }, worker));
    if (recovered.length > 0 || left.length > 0) {
      await this.editRecord(node, (s) => {
        if (!s.fence) return NO_CHANGE;
        const kept = s.fence.notRecovered.filter((n) => !left.some((l) => l.vm === n.vm));
        return {
          ...s,
          fence: {
            ...s.fence,
            recovered: [...new Set([...s.fence.recovered, ...recovered])].sort().slice(-500),
            notRecovered: [...kept, ...left].slice(-500),
            updatedAt: new Date().toISOString(),
          },
        };
      });
    }
    return failures > 0 ? requeueAfter(1_000) : done;
  }

  /** L4: one VM started elsewhere (or stopped for `vk node ready`). Resolves true when it wrote. */
  /**
   * Before breaking a fenced node's RBD locks: its whole storage address blocklisted once (one
   * monitor command, lifted by `vk node ready`), so every dead client's watch ends at once and each
   * lock is then broken without a blocklist command of its own — far fewer monitor round trips than
   * one per lock. Resolves whether the node is blocklisted (else each break blocklists its client).
   */
  private async blocklistBeforeBreaking(node: string, status: NodeStatus | null, moves: readonly RecoveryMove[], ctx: ReconcileContext): Promise<boolean> {
    if (status?.fence?.blocklist) return true;
    const address = status?.storage?.address;
    if (!this.o.effects.storage || address === undefined || !moves.some((m) => m.kind !== 'leave' && m.images.length > 0)) return false;
    const { settings } = await this.readSettings(node);
    const entry = blocklistEntry(settings?.storage?.address ?? address);
    const ttlS = settings?.storage?.ttlS ?? 30 * 86_400;
    try {
      await this.o.effects.blocklistAdd(entry, ttlS);
    } catch (error) {
      ctx.logger.warn({ err: error, fenced: node }, `fence: could not blocklist ${entry}; breaking each lock with its own blocklist`);
      return false;
    }
    this.o.onAction?.(`fence ${node}: blocklisted ${entry} before breaking its RBD locks`);
    await this.editRecord(node, (s) => (s.fence ? { ...s, fence: { ...s.fence, blocklist: { address: entry, ttlS }, updatedAt: new Date().toISOString() } } : NO_CHANGE));
    return true;
  }

  private async recoverOne(lost: string, level: string, move: Exclude<RecoveryMove, { kind: 'leave' }>, blocklisted: boolean, ctx: ReconcileContext): Promise<boolean> {
    const p = this.m.paths;
    const [specGot, statusGot, recordGot] = await Promise.all([this.m.store.get(p.vmSpec(move.vm)), this.m.store.get(p.vmStatus(move.vm)), this.m.store.get(p.vmMigration(move.vm))]);
    if (!specGot) return false;
    const spec = decodeVmSpec(specGot.data.toString('utf8'));
    const status = statusGot ? decodeVmStatus(statusGot.data.toString('utf8')) : null;
    const owner = status && statusHoldsGuest(status) ? status.node : undefined;
    if (!recoveryApplies({ spec, owner }, lost)) return false;
    const removed: string[] = [];
    for (const image of move.images) removed.push(...(await this.o.effects.breakLocks(image, { blocklistClients: !blocklisted })));
    if (removed.length > 0) this.o.onAction?.(`fence ${lost}: broke ${removed.length} RBD lock(s) of ${move.vm}: ${removed.join(', ')}`);
    const now = new Date().toISOString();
    const ops: Op[] = [this.lockCheck()];
    if (recordGot) {
      const record = decodeMigrationRecord(recordGot.data.toString('utf8'));
      if (migrationInFlight(record, lost)) {
        ops.push({ op: 'set', path: p.vmMigration(move.vm), version: recordGot.version, data: encodeMigrationRecord({ ...record, phase: 'failed', reason: 'NodeFenced', message: `${lost} was fenced (${level})`, endedAt: now, phaseSince: now }) });
      }
    }
    const to = move.kind === 'move' ? move.to : lost;
    const message = move.kind === 'move' ? `${lost} was fenced (${level}); recovered to ${to}` : `${lost} was fenced (${level}); ${move.why}: stopped, \`vk node ready ${lost}\` starts it`;
    const released: VmStatus = {
      ...(status ?? { observedGeneration: -1, conditions: [] }),
      phase: move.kind === 'move' ? 'Pending' : 'Stopped',
      node: lost,
      domainState: 'shutoff',
      conditions: withCondition(status?.conditions ?? [], { type: 'Running', status: 'False', reason: 'NodeFenced', message, lastTransitionTime: now }).filter((c) => c.type !== 'NotRecovered'),
      updatedAt: now,
    } as VmStatus;
    delete (released as { crash?: unknown }).crash;
    delete (released as { reservedBy?: unknown }).reservedBy;
    ops.push(statusGot ? { op: 'set', path: p.vmStatus(move.vm), version: statusGot.version, data: encodeVmStatus(released) } : { op: 'create', path: p.vmStatus(move.vm), data: encodeVmStatus(released) });
    const next = recoverySpec(spec, move, lost);
    if (next !== spec) ops.push({ op: 'set', path: p.vmSpec(move.vm), version: specGot.version, data: encodeVmSpec(next) }, ...(await indexOps(this.m.store, p, move.vm, next)));
    await this.m.store.multi(ops);
    this.event({ kind: 'vm.recovered', node: lost, vm: move.vm, level, message }, ctx);
    return true;
  }

  /**
   * A VM at rest that the fenced node held (heldAtRest): its status no longer holds it for that
   * node (no reservation; phase Stopped or Disabled, domain shut off, a NodeFenced condition), so
   * the node its spec names may claim it. Its spec is left as it is.
   */
  private async releaseAtRest(lost: string, level: string, vm: string, ctx: ReconcileContext): Promise<void> {
    let wrote = false;
    await compareAndSet(this.m.store, this.m.paths.vmStatus(vm), {
      what: `the status of ${vm}`,
      ...VM_STATUS_ZNODE,
      edit: (s): VmStatus | typeof NO_CHANGE => {
        if (s.node !== lost || !statusHoldsGuest(s)) return NO_CHANGE;
        const now = new Date().toISOString();
        const { reservedBy: _reserved, crash: _crash, ...rest } = s;
        const message = `${lost} was fenced (${level}); released`;
        wrote = true;
        return {
          ...rest,
          phase: s.phase === 'Disabled' ? 'Disabled' : 'Stopped',
          domainState: 'shutoff',
          conditions: withCondition(s.conditions, { type: 'Running', status: 'False', reason: 'NodeFenced', message, lastTransitionTime: now }),
          updatedAt: now,
        };
      },
      with: [this.lockCheck()],
    });
    if (wrote) ctx.logger.info({ fenced: lost, vm }, `fence: ${vm} at rest on ${lost} released`);
  }

  /** F2: a VM the level does not cover stays, with a NotRecovered condition saying why. Resolves true when it is (still) left. */
  private async leave(lost: string, move: Extract<RecoveryMove, { kind: 'leave' }>, ctx: ReconcileContext): Promise<boolean> {
    let wrote = false;
    const out = await compareAndSet(this.m.store, this.m.paths.vmStatus(move.vm), {
      what: `the status of ${move.vm}`,
      ...VM_STATUS_ZNODE,
      edit: (s) => {
        const had = s.conditions.find((c) => c.type === 'NotRecovered');
        if (had?.status === 'True' && had.message === move.why) return NO_CHANGE;
        wrote = true;
        return { ...s, conditions: withCondition(s.conditions, { type: 'NotRecovered', status: 'True', reason: 'FenceDoesNotCover', message: move.why, lastTransitionTime: new Date().toISOString() }), updatedAt: new Date().toISOString() };
      },
      with: [this.lockCheck()],
    });
    if (wrote) this.event({ kind: 'vm.notRecovered', node: lost, vm: move.vm, message: move.why }, ctx);
    return out.kind !== 'absent';
  }

  // ------------------------------------------------------------------------------ ready

  /** The admin answered the fence with `vk node ready`: lift the storage blocklist first, then clear the record (the flush concern waits for it). */
  private async lift(node: string, ctx: ReconcileContext): Promise<Result> {
    const status = valueOf(this.m.informers.nodes.get(node)?.status);
    const record = status?.fence;
    // A node that was only cut off may still run stale copies of the VMs recovered elsewhere (its
    // daemon destroys them as strays once back): the blocklist that holds them off their disks stays until they are gone.
    // Their specs are read from ZooKeeper: they are homed elsewhere now, outside this daemon's informer.
    const recovered = (status?.runningVms ?? []).filter((vm) => record?.recovered.includes(vm));
    const specs = await Promise.all(recovered.map((vm) => this.m.store.get(this.m.paths.vmSpec(vm))));
    const stale = recovered.filter((_, i) => decodeOrNull(specs[i]!, decodeVmSpec)?.node !== node);
    if (record?.blocklist && stale.length > 0) {
      ctx.logger.info({ fenced: node, stale }, `fence: ${node} still runs ${stale.join(', ')}; the blocklist stays until they are gone`);
      return requeueAfter(1_000);
    }
    if (record?.blocklist) {
      try {
        await this.o.effects.blocklistRemove(record.blocklist.address);
        this.o.onAction?.(`fence ${node}: lifted the blocklist of ${record.blocklist.address}`);
      } catch (error) {
        ctx.logger.warn({ err: error, fenced: node }, `fence: could not lift the blocklist of ${record.blocklist.address}; trying again`);
        return requeueAfter(2_000);
      }
    }
    await this.clear(node, `${node} is ready again${record?.blocklist ? `; blocklist ${record.blocklist.address} lifted` : ''}`, 'fence.lifted', record?.level, ctx);
    return done;
  }
}

function withCondition(list: readonly Condition[], c: Condition): Condition[] {
  const before = list.find((x) => x.type === c.type);
  const kept = before && before.status === c.status ? { ...c, lastTransitionTime: before.lastTransitionTime } : c;
  return [...list.filter((x) => x.type !== c.type), kept];
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/** A znode decoded, or null when absent or unreadable. */
function decodeOrNull<T>(got: { data: Buffer } | null, decode: (text: string) => T): T | null {
  if (!got) return null;
  try {
    return decode(got.data.toString('utf8'));
  } catch {
    return null;
  }
}
