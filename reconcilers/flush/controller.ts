// The node flush/ready controller (DESIGN.md §4 "Node flush / ready", seeds 001-004): the
// imperative shell around reconcilers/flush/plan.ts.
//
// Sources: this node's spec (/nodes/<me>/spec), every node's alive/spec/status (the selectors'
// input), the cluster config, and the VM informer shared with the domain controller. Any change
// makes it look again (level-triggered); a poll is the backstop.
//
// It runs at most one operation at a time, toward what the node spec asks:
//   flushed → flush: status flushing (flush.phase queued) → the cluster flush lock
//             (/virtkeeper/locks/flush, drivers/zk/lock.ts: one flush at a time in the cluster,
//             the holder's session owns it) → moving (moves from planFlush, at most
//             ClusterConfig.migration.maxOutgoing written and not yet settled at once) → flushed.
//   ready   → ready: status unflushing → the moves from planReady (at most maxIncoming at once)
//             → ready. No lock: a ready never competes for targets.
// A spec change to the other state cancels the running operation at once: no new move starts,
// and the moves already written are no longer waited for — the ready (or flush) that follows plans
// from the specs those moves wrote, so it brings back (or moves away) their VMs; a migration in
// flight is retargeted by the migration reconciler, as for any change of spec.node. The lock is
// released and the other operation starts. A queued flush leaves the lock queue at once. A lost
// flush lock also stops new moves; the moves under way then get a grace period (2 ×
// migration.phaseTimeoutMs) to settle.
//
// Moves that cannot happen are not written: the selectors skip targets that cannot take the VM's
// migration method (a live-only VM needs a target whose alive znode publishes a migration URI),
// and a VM nothing can take is shut down and marked stoppedByFlush — the "no target" rule. A move
// whose target stops taking live migrations while it waits is re-planned the same way. Every
// shut-down VM and every re-planned or skipped move is a line in the flush progress (the node
// status's flush.message, shown by `vk node … --wait`) and in the action log.
//
// Status. The node status znode is shared with the keepalive (reconcilers/node/keepalive.ts),
// which carries domainState, observedGeneration and flush over from the current status; this
// controller owns those fields and writes them with compare-and-set on a fresh read, retrying on
// conflict. observedGeneration is the node spec version the operation serves (`vk node … --wait`).
import { Subject, Subscription, merge, map } from 'rxjs';
import type { Logger } from 'pino';
import {
  describeFlushMove,
  expectationOf,
  FLUSH_LOCK,
  flushMoveApplies,
  flushSpecEdit,
  planFlush,
  planReady,
  readyMoveApplies,
  readySpecEdit,
  settlement,
  type FlushMove,
  type FlushVm,
  type ReadyMove,
  type Settlement,
} from './plan.ts';
import { aliveTakesLiveMigration, exclusionReason, place, type NodeCandidate, type Placed } from '../selectors.ts';
import {
  decodeClusterConfig,
  decodeNodeSpec,
  decodeNodeStatus,
  decodeVmSpec,
  defaultClusterConfig,
  encodeNodeStatus,
  encodeVmSpec,
  isValidName,
  type ClusterConfig,
  type NodeFlush,
  type NodeSpec,
  type NodeStatus,
  type VmSpec,
  type ZkPaths,
} from '../../schemas/index.ts';
import { LockLostError, ZkLock } from '../../drivers/zk/lock.ts';
import type { VmInformer } from '../../controllers/informers/vms.ts';
import { compareAndSet, NO_CHANGE, NoNodeError, type DataState, type ZkStore } from '../../drivers/zk/index.ts';

export interface FlushControllerOptions {
  node: string;
  store: ZkStore;
  paths: ZkPaths;
  /** The domain controller's informer (started and synced before start()). */
  informer: VmInformer;
  log: Logger;
  onAction?(line: string): void;
  now?: () => string;
  /** Backstop re-check while waiting on moves (default 1000 ms). */
  pollMs?: number;
}

type Goal = NodeSpec['domainState'];

interface NodeView {
  alive: boolean;
  /** Its alive znode publishes a migration URI (it takes live migrations). */
  liveMigration: boolean;
  spec: NodeSpec | null;
  status: NodeStatus | null;
  /** Version of `status` (our own writes set it first: a watch emission older than it is ignored). */
  statusVersion: number;
  /** Fields read at least once (a node counts only once all three are). */
  seen: Set<'alive' | 'spec' | 'status'>;
}

interface Operation {
  goal: Goal;
  cancel: AbortController;
  done: Promise<void>;
}

type AnyMove = FlushMove | ReadyMove;

/** Least time between two progress writes to the node status. */
const PROGRESS_MS = 200;

class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

export class FlushController {
  private readonly subs = new Subscription();
  private readonly nodeSubs = new Map<string, Subscription>();
  private readonly nodes = new Map<string, NodeView>();
  private desired: { goal: Goal; generation: number } | undefined;
  private config: ClusterConfig = defaultClusterConfig();
  private configLoaded = false;
  private nodesListed = false;
  private op: Operation | undefined;
  private readonly changed$ = new Subject<void>();
  private ticking = false;
  private dirty = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly hard = new AbortController();
  private readonly now: () => string;
  private readonly lock: ZkLock;

  constructor(private readonly o: FlushControllerOptions) {
    this.now = o.now ?? (() => new Date().toISOString());
    this.lock = new ZkLock(o.store, o.paths.lock(FLUSH_LOCK), { owner: o.node, log: o.log });
  }

  start(): void {
    const { store, paths, node, informer } = this.o;
    this.subs.add(
      store.watchData(paths.nodeSpec(node)).subscribe((s) => {
        let goal: Goal = 'ready';
        let generation = -1;
        if (s.kind === 'data') {
          try {
            goal = decodeNodeSpec(s.data.toString('utf8')).domainState;
            generation = s.version;
          } catch (error) {
            this.o.log.warn({ err: error }, 'unreadable node spec; ignoring it');
            return;
          }
        }
        this.desired = { goal, generation };
        this.kick();
      }),
    );
    this.subs.add(
      store.watchData(paths.config).subscribe((s) => {
        this.configLoaded = true;
        if (s.kind === 'deleted') this.config = defaultClusterConfig();
        else {
          try {
            this.config = decodeClusterConfig(s.data.toString('utf8'));
          } catch (error) {
            this.o.log.warn({ err: error }, 'unreadable cluster config; keeping the one in force');
          }
        }
        this.kick();
      }),
    );
    this.subs.add(
      store.watchChildren(paths.nodes).subscribe((state) => {
        const names = new Set(state.kind === 'children' ? state.children.filter((c) => isValidName(c)) : []);
        for (const [name, sub] of this.nodeSubs) {
          if (names.has(name)) continue;
          sub.unsubscribe();
          this.nodeSubs.delete(name);
          this.nodes.delete(name);
        }
        for (const name of names) if (!this.nodeSubs.has(name)) this.watchNode(name);
        this.nodesListed = true;
        this.kick();
      }),
    );
    this.subs.add(informer.changes$.subscribe(() => this.changed$.next()));
    this.subs.add(store.connectionState$.subscribe(() => this.kick()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.hard.abort(new Cancelled());
    this.op?.cancel.abort(new Cancelled());
    await this.op?.done;
    this.subs.unsubscribe();
    for (const sub of this.nodeSubs.values()) sub.unsubscribe();
    this.nodeSubs.clear();
    this.changed$.complete();
  }

  /** What the selectors see now (for tests and diagnostics). */
  candidates(): NodeCandidate[] {
    return [...this.nodes.entries()].map(([name, v]) => ({ name, alive: v.alive, liveMigration: v.liveMigration, spec: v.spec, status: v.status }));
  }

  private watchNode(name: string): void {
    const { store, paths } = this.o;
    const view: NodeView = { alive: false, liveMigration: false, spec: null, status: null, statusVersion: -1, seen: new Set() };
    this.nodes.set(name, view);
    const decode = <T>(s: DataState, fn: (raw: string) => T): T | null => {
      if (s.kind !== 'data') return null;
      try {
        return fn(s.data.toString('utf8'));
      } catch {
        return null;
      }
    };
    const sub = merge(
      store.watchData(paths.nodeAlive(name)).pipe(map((s) => ({ field: 'alive' as const, s }))),
      store.watchData(paths.nodeSpec(name)).pipe(map((s) => ({ field: 'spec' as const, s }))),
      store.watchData(paths.nodeStatus(name)).pipe(map((s) => ({ field: 'status' as const, s }))),
    ).subscribe(({ field, s }) => {
      if (field === 'alive') {
        view.alive = s.kind === 'data';
        view.liveMigration = s.kind === 'data' && aliveTakesLiveMigration(s.data.toString('utf8'));
      }
      else if (field === 'spec') view.spec = decode(s, (raw) => decodeNodeSpec(raw));
      else if (s.kind === 'deleted' || s.version >= view.statusVersion) {
        view.status = decode(s, (raw) => decodeNodeStatus(raw));
        view.statusVersion = s.kind === 'data' ? s.version : -1;
      }
      view.seen.add(field);
      this.kick();
    });
    this.nodeSubs.set(name, sub);
  }

  /** Something changed: wake waiters, and decide again (serialized). */
  private kick(): void {
    this.changed$.next();
    if (this.stopped) return;
    if (this.ticking) {
      this.dirty = true;
      return;
    }
    this.ticking = true;
    queueMicrotask(() => {
      this.tick()
        .catch((error: unknown) => this.o.log.error({ err: error }, 'flush controller tick failed'))
        .finally(() => {
          this.ticking = false;
          if (this.dirty && !this.stopped) {
            this.dirty = false;
            this.kick();
          }
        });
    });
  }

  /**
   * Every input read at least once: planning with a half-loaded view of the nodes would find no
   * target and shut VMs down, and with the default config would use the wrong selector and limit.
   */
  private loaded(): boolean {
    if (!this.desired || !this.configLoaded || !this.nodesListed) return false;
    for (const view of this.nodes.values()) if (view.seen.size < 3) return false;
    return true;
  }

  private async tick(): Promise<void> {
    const desired = this.desired;
    if (!desired || this.stopped || !this.loaded()) return;
    if (this.op) {
      if (this.op.goal !== desired.goal) this.op.cancel.abort(new Cancelled());
      return; // its end kicks again
    }
    if (this.o.store.connectionState !== 'connected') return;
    const status = this.nodes.get(this.o.node)?.status;
    if (!status) return; // the keepalive creates it
    if (desired.goal === 'flushed') {
      if (status.domainState === 'flushed' && status.observedGeneration >= desired.generation) return;
      this.begin('flushed', (signal) => this.runFlush(signal));
    } else {
      if (status.domainState === 'ready') {
        if (status.observedGeneration < desired.generation) await this.updateStatus((s) => ({ ...s, observedGeneration: desired.generation }));
        return;
      }
      this.begin('ready', (signal) => this.runReady(signal));
    }
  }

  private begin(goal: Goal, run: (signal: AbortSignal) => Promise<void>): void {
    const cancel = new AbortController();
    const op: Operation = { goal, cancel, done: Promise.resolve() };
    this.op = op;
    this.o.log.info({ goal }, `node ${goal === 'flushed' ? 'flush' : 'ready'} begins`);
    op.done = run(cancel.signal)
      .then(
        () => this.o.log.info({ goal, cancelled: cancel.signal.aborted }, `node ${goal === 'flushed' ? 'flush' : 'ready'} ${cancel.signal.aborted ? 'cancelled' : 'done'}`),
        (error: unknown) => {
          if (error instanceof Cancelled || cancel.signal.aborted) return;
          this.o.log.warn({ err: error, goal }, 'node flush/ready failed; retrying');
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => this.kick(), 1_000);
          this.retryTimer.unref();
        },
      )
      .finally(() => {
        if (this.op === op) this.op = undefined;
        this.kick();
      });
  }

  // ------------------------------------------------------------------------------- flush

  private async runFlush(cancel: AbortSignal): Promise<void> {
    const { node } = this.o;
    const startedAt = this.now();
    const base: NodeFlush = { operation: 'flush', generation: this.generation(), phase: 'queued', total: 0, moved: 0, stopped: 0, inFlight: 0, message: 'waiting for the flush lock', startedAt, updatedAt: startedAt };
    await this.updateStatus((s) => ({ ...s, domainState: 'flushing', observedGeneration: this.generation(), flush: { ...base, updatedAt: this.now() } }));
    let queueWrite = Promise.resolve();
    const handle = await this.lock.acquire(cancel, (q) => {
      if (!q.holder) return;
      const holder = q.holder.owner ?? q.holder.child;
      const message = `waiting for the flush lock (held by ${holder}; ${q.ahead.length} ahead)`;
      this.o.onAction?.(`${node} (node) flush queued behind ${holder}`);
      queueWrite = queueWrite.then(() =>
        this.updateFlush((f) =>
          f.operation === 'flush' && f.phase === 'queued' ? { ...f, message, ...(isValidName(holder) ? { lockHolder: holder } : {}), ahead: q.ahead.length, updatedAt: this.now() } : f,
        ).catch(() => undefined),
      );
    }).catch(async (error: unknown) => {
      // No queue write may land after this operation ends (a ready would find it in its status).
      await queueWrite;
      if (cancel.aborted) throw new Cancelled();
      throw error;
    });
    try {
      await queueWrite;
      this.o.onAction?.(`${node} (node) flush lock held`);
      const stopStarting = AbortSignal.any([cancel, handle.lost]);
      // A ready (or the daemon stopping) lets go of the moves under way at once; a lost lock waits for them.
      const outcome = await this.execute('flush', stopStarting, cancel);
      if (handle.lost.aborted && !cancel.aborted) throw handle.lost.reason instanceof Error ? handle.lost.reason : new LockLostError('lock lost');
      if (cancel.aborted) {
        // A daemon that stops leaves the flush as it is (flushing): it resumes when it comes back.
        if (!this.stopped) {
          await this.updateFlush((f) => ({ ...f, phase: 'cancelled', inFlight: 0, message: `cancelled after ${outcome.moved} moved, ${outcome.stopped} shut down`, updatedAt: this.now() }));
          this.o.onAction?.(`${node} (node) flush cancelled after ${outcome.moved} moved, ${outcome.stopped} shut down`);
        }
        return;
      }
      const message = clip(`${outcome.moved} moved, ${outcome.stopped} shut down (ready starts them again)${outcome.failed > 0 ? `, ${outcome.failed} failed on their target` : ''}${notesOf(outcome.notes)}`);
      await this.updateStatus((s) => ({
        ...s,
        domainState: 'flushed',
        observedGeneration: Math.max(s.observedGeneration, this.generation()),
        flush: { ...(s.flush ?? base), phase: 'done', inFlight: 0, message, updatedAt: this.now() },
      }));
      this.o.onAction?.(`${node} (node) flushed: ${message}`);
    } finally {
      await handle.release().catch((error: unknown) => this.o.log.warn({ err: error }, 'could not release the flush lock (its session ends it)'));
    }
  }

  // ------------------------------------------------------------------------------- ready

  private async runReady(cancel: AbortSignal): Promise<void> {
    const startedAt = this.now();
    await this.updateStatus((s) => ({
      ...s,
      domainState: 'unflushing',
      observedGeneration: this.generation(),
      flush: { operation: 'ready', generation: this.generation(), phase: 'moving', total: 0, moved: 0, stopped: 0, inFlight: 0, message: 'bringing VMs back', startedAt, updatedAt: startedAt },
    }));
    const outcome = await this.execute('ready', cancel);
    if (cancel.aborted) {
      if (!this.stopped) {
        await this.updateFlush((f) => ({ ...f, phase: 'cancelled', inFlight: 0, message: `cancelled after ${outcome.moved} returned, ${outcome.stopped} started`, updatedAt: this.now() }));
      }
      return;
    }
    const message = clip(`${outcome.moved} returned, ${outcome.stopped} started${outcome.failed > 0 ? `, ${outcome.failed} failed` : ''}${notesOf(outcome.notes)}`);
    await this.updateStatus((s) => ({
      ...s,
      domainState: 'ready',
      observedGeneration: Math.max(s.observedGeneration, this.generation()),
      flush: { ...(s.flush ?? { operation: 'ready', generation: this.generation(), total: 0, moved: 0, stopped: 0, inFlight: 0, startedAt }), phase: 'done', inFlight: 0, message, updatedAt: this.now() },
    }));
    this.o.onAction?.(`${this.o.node} (node) ready: ${message}`);
  }

  // ---------------------------------------------------------------------------- executor

  /**
   * Runs the moves of a flush or a ready, at most the configured number written and unsettled at
   * once. `stopStarting` aborting means: start no further move, wait for those under way (bounded
   * by the grace period); `abandon` aborting means: stop waiting for them at once.
   */
  private async execute(kind: 'flush' | 'ready', stopStarting: AbortSignal, abandon?: AbortSignal): Promise<{ moved: number; stopped: number; failed: number; notes: string[] }> {
    const { node } = this.o;
    const vms = this.flushVms();
    const sizes = new Map(vms.map((v) => [v.name, v]));
    let pending: AnyMove[];
    // A restarted flush: moves written by an earlier run whose VM has not left yet are waited for.
    const carried: AnyMove[] = [];
    if (kind === 'flush') {
      pending = planFlush({ node, vms, nodes: this.candidates(), defaultSelector: this.config.defaultNodeSelector });
      for (const vm of vms) {
        const entry = this.o.informer.get(vm.name);
        const status = entry?.status && 'value' in entry.status ? entry.status.value : null;
        if (vm.spec.node !== node && vm.spec.state === 'running' && status?.node === node && vm.spec.previousNode === node) {
          carried.push({ kind: 'migrate', vm: vm.name, from: node, to: vm.spec.node, selector: this.config.defaultNodeSelector, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus });
        }
      }
    } else {
      pending = planReady(node, vms, { liveMigration: this.nodes.get(node)?.liveMigration });
    }
    // Lines worth reading in the progress: VMs shut down for want of a target, moves skipped.
    const notes: string[] = [];
    for (const m of pending) {
      if (m.kind !== 'skip') continue;
      this.o.onAction?.(`${node} ${describeFlushMove(m)}`);
      notes.push(`${m.vm} stays: ${m.why}`);
    }
    pending = pending.filter((m) => m.kind !== 'skip');
    const total = pending.length + carried.length;
    const counts = { moved: 0, stopped: 0, failed: 0, skipped: 0 };
    const running = new Map<string, Promise<{ move: AnyMove; result: Settlement | 'notApplied' }>>();
    let placed: Map<string, Placed> = new Map();
    for (const m of pending) if (m.kind === 'migrate') placed = place(placed, m.to, m);

    // Once told to stop starting moves, those under way get a grace period to settle.
    const settleLimit = new AbortController();
    const onHard = () => settleLimit.abort(new Cancelled());
    this.hard.signal.addEventListener('abort', onHard, { once: true });
    if (abandon?.aborted) onHard();
    else abandon?.addEventListener('abort', onHard, { once: true });
    let graceTimer: NodeJS.Timeout | undefined;
    const onStop = () => {
      graceTimer = setTimeout(() => settleLimit.abort(new Cancelled()), 2 * this.config.migration.phaseTimeoutMs);
      graceTimer.unref();
    };
    if (stopStarting.aborted) onStop();
    else stopStarting.addEventListener('abort', onStop, { once: true });

    // Progress goes to the node status at most every PROGRESS_MS (every daemon watches that znode),
    // the latest figures winning; the first and the last write are never held back.
    let chain = Promise.resolve();
    let lastWrite = 0;
    let trailing: NodeJS.Timeout | undefined;
    let latest = '';
    const write = () => {
      clearTimeout(trailing);
      trailing = undefined;
      lastWrite = Date.now();
      chain = chain.then(() =>
        this.updateFlush((f) => ({ ...f, phase: 'moving', total, moved: counts.moved, stopped: counts.stopped, inFlight: running.size, message: clip(latest + notesOf(notes)), updatedAt: this.now() })).catch(
          (error: unknown) => this.o.log.warn({ err: error }, 'could not write flush progress'),
        ),
      );
      return chain;
    };
    const progress = (message: string, now = false): Promise<void> => {
      latest = message;
      const due = lastWrite + PROGRESS_MS - Date.now();
      if (now || due <= 0) return write();
      trailing ??= setTimeout(write, due);
      return Promise.resolve();
    };
    const startMove = (move: AnyMove, write: boolean) => {
      running.set(
        move.vm,
        this.runMove(move, write, settleLimit.signal, (line) => notes.push(line)).then(
          (result) => ({ move, result }),
          (error: unknown) => {
            this.o.log.warn({ err: error, vm: move.vm }, 'flush move failed');
            return { move, result: settleLimit.signal.aborted ? ('pending' as const) : ('failed' as const) };
          },
        ),
      );
    };

    try {
      await progress(total === 0 ? 'nothing to move' : `${total} to move`, true);
      for (const move of carried) startMove(move, false);
      for (;;) {
        const limit = kind === 'flush' ? this.config.migration.maxOutgoing : this.config.migration.maxIncoming;
        let startedAny = false;
        while (!stopStarting.aborted && running.size < limit && pending.length > 0 && this.o.store.connectionState === 'connected') {
          let move = pending.shift()!;
          if (move.kind === 'migrate') move = this.revalidate(move, sizes.get(move.vm), placed, (line) => notes.push(line));
          startMove(move, true);
          startedAny = true;
        }
        if (startedAny) await progress(`${counts.moved + counts.stopped}/${total} done, ${running.size} under way`);
        if (running.size === 0) {
          if (stopStarting.aborted || pending.length === 0) break;
          await this.waitChange(stopStarting); // disconnected: wait for the connection
          continue;
        }
        const { move, result } = await Promise.race(running.values());
        running.delete(move.vm);
        if (result === 'arrived') {
          if (move.kind === 'stop' || move.kind === 'autostart') counts.stopped++;
          else counts.moved++;
        } else if (result === 'failed') counts.failed++;
        else counts.skipped++;
        await progress(`${counts.moved + counts.stopped}/${total} done${running.size > 0 ? `, ${running.size} under way` : ''}${pending.length > 0 && stopStarting.aborted ? ', stopping' : ''}`);
      }
      await progress(`${counts.moved + counts.stopped}/${total} done`, true);
    } finally {
      clearTimeout(trailing);
      await chain;
      clearTimeout(graceTimer);
      this.hard.signal.removeEventListener('abort', onHard);
      abandon?.removeEventListener('abort', onHard);
      stopStarting.removeEventListener('abort', onStop);
    }
    return { ...counts, notes };
  }

  /** A planned target that is no longer valid (died, flushing, …): choose again with the current view. */
  private revalidate(move: Extract<AnyMove, { kind: 'migrate' }>, vm: FlushVm | undefined, placed: Map<string, Placed>, note: (line: string) => void): AnyMove {
    if (!vm) return move;
    const target = this.nodes.get(move.to);
    const why = target
      ? exclusionReason({ name: move.to, ...target }, { nodeLimit: vm.spec.meta.nodeLimit, current: this.o.node, method: vm.spec.meta.migrationMethod })
      : 'it is gone';
    if (why === undefined) return move;
    const without = new Map(placed);
    const p = without.get(move.to);
    if (p) without.set(move.to, { memoryMiB: p.memoryMiB - vm.memoryMiB, vcpus: p.vcpus - vm.vcpus, vms: p.vms - 1 });
    const [again] = planFlush({ node: this.o.node, vms: [vm], nodes: this.candidates(), defaultSelector: this.config.defaultNodeSelector, placed: without });
    this.o.log.info({ vm: vm.name, was: move.to, why, now: again?.kind === 'migrate' ? again.to : 'stop' }, 'flush target no longer valid; chose again');
    if (again?.kind === 'migrate') note(`${vm.name} goes to ${again.to}, not ${move.to} (${move.to}: ${why})`);
    if (again?.kind === 'migrate') {
      placed.clear();
      for (const [k, v] of place(without, again.to, vm)) placed.set(k, v);
    }
    return again ?? move;
  }

  /** Writes the move's spec edit (unless `write` is false), then waits until it settles. */
  private async runMove(move: AnyMove, write: boolean, limit: AbortSignal, note: (line: string) => void): Promise<Settlement | 'notApplied'> {
    const expect = expectationOf(move);
    if (!expect) return 'notApplied';
    // The informer must have seen our own write before its view can say anything about the move.
    let written = -1;
    if (write) {
      const applied = await this.editSpec(move.vm, (spec) => {
        if (move.kind === 'migrate' || move.kind === 'stop') return flushMoveApplies(move, spec) ? flushSpecEdit(spec, move) : null;
        return readyMoveApplies(move, spec) ? readySpecEdit(spec, move) : null;
      });
      if (!applied) return 'notApplied';
      written = applied.version;
      this.o.onAction?.(`${this.o.node} ${describeFlushMove(move, applied.spec.meta.migrationMethod)}`);
      this.o.log.info({ vm: move.vm, move }, describeFlushMove(move, applied.spec.meta.migrationMethod));
      if (move.kind === 'stop') note(`${move.vm} shut down: ${move.why}`);
    }
    for (;;) {
      const entry = this.o.informer.get(move.vm);
      if (entry && written >= 0 && !(entry.spec && 'value' in entry.spec && entry.spec.version >= written)) {
        // Even when let go, wait (only) until the informer holds our write: whatever runs next plans
        // from the informer, and must see this move. Only the daemon stopping cuts this short.
        if (this.hard.signal.aborted) return 'pending';
        await this.waitChange(this.hard.signal);
        continue;
      }
      const spec = entry?.spec && 'value' in entry.spec ? entry.spec.value : null;
      const status = entry?.status && 'value' in entry.status ? entry.status.value : null;
      const migration = entry?.migration && 'value' in entry.migration ? entry.migration.value : null;
      const result = entry ? settlement(expect, spec, status, migration) : 'superseded';
      if (result !== 'pending') return result;
      if (limit.aborted) return 'pending';
      await this.waitChange(limit);
    }
  }

  /** CAS read-modify-write of a VM spec; null from `edit` means "leave it". Returns the spec written and its version. */
  private async editSpec(vm: string, edit: (spec: VmSpec) => VmSpec | null): Promise<{ spec: VmSpec; version: number } | null> {
    const outcome = await compareAndSet(this.o.store, this.o.paths.vmSpec(vm), {
      what: `the spec of ${vm}`,
      decode: (data) => decodeVmSpec(data.toString('utf8')),
      encode: encodeVmSpec,
      edit: (spec) => edit(spec) ?? NO_CHANGE,
    });
    return outcome.kind === 'written' ? { spec: outcome.value, version: outcome.version } : null;
  }

  /** Resolves on the next change of any input, after pollMs, or when `signal` aborts. */
  private waitChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const finish = () => {
        clearTimeout(timer);
        sub.unsubscribe();
        signal.removeEventListener('abort', finish);
        resolve();
      };
      const timer = setTimeout(finish, this.o.pollMs ?? 1_000);
      const sub = this.changed$.subscribe({ next: finish, complete: finish });
      signal.addEventListener('abort', finish, { once: true });
    });
  }

  // ------------------------------------------------------------------------------ inputs

  private generation(): number {
    return this.desired?.generation ?? -1;
  }

  /** Every VM of the informer with a readable spec, sized from its XML. */
  private flushVms(): FlushVm[] {
    const out: FlushVm[] = [];
    for (const name of this.o.informer.names()) {
      const entry = this.o.informer.get(name);
      if (!entry?.spec || 'error' in entry.spec) continue;
      const info = (entry.xml && 'value' in entry.xml ? entry.xml.value.info : undefined) ?? null;
      const statusNode = entry.status && 'value' in entry.status ? entry.status.value?.node : undefined;
      out.push({ name, spec: entry.spec.value, memoryMiB: info ? Math.max(0, Math.round(info.memoryKiB / 1024)) : 0, vcpus: info?.vcpus ?? 0, statusNode });
    }
    return out;
  }

  // ------------------------------------------------------------------------------ status

  /** Edits the flush progress; an edit that returns its input writes nothing. */
  private async updateFlush(edit: (flush: NodeFlush) => NodeFlush): Promise<void> {
    await this.updateStatus((s) => {
      if (!s.flush) return s;
      const next = edit(s.flush);
      return next === s.flush ? s : { ...s, flush: next };
    });
  }

  /** CAS on a fresh read of the node status; retried on conflict (the keepalive writes it too). */
  private async updateStatus(edit: (status: NodeStatus) => NodeStatus): Promise<void> {
    const path = this.o.paths.nodeStatus(this.o.node);
    const outcome = await compareAndSet(this.o.store, path, {
      what: `the status of node ${this.o.node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit: (current) => {
        const next = edit(current);
        return next === current ? NO_CHANGE : next;
      },
    });
    if (outcome.kind === 'absent') throw new NoNodeError(path);
    if (outcome.kind !== 'written') return;
    const view = this.nodes.get(this.o.node);
    if (view && outcome.version > view.statusVersion) {
      view.status = outcome.value;
      view.statusVersion = outcome.version;
    }
  }
}

/** Longest flush.message the node status takes (schemas/node.ts). */
const MESSAGE_MAX = 1024;

function clip(message: string): string {
  return message.length <= MESSAGE_MAX ? message : `${message.slice(0, MESSAGE_MAX - 3)}...`;
}

/** The notable lines of a flush or ready, appended to its progress message. */
function notesOf(notes: readonly string[]): string {
  return notes.length === 0 ? '' : `; ${notes.join('; ')}`;
}
