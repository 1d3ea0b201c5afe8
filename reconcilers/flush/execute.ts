// The flush/ready executor: runs one operation's moves against the effects it is given
// (reconcilers/flush/controller.ts supplies them from ZooKeeper and the shared informers).
//
//   flushed → flush: status flushing (flush.phase queued) → the cluster flush lock (one flush at a
//             time in the cluster, the holder's session owns it) → moving (moves from planFlush,
//             at most ClusterConfig.migration.maxOutgoing written and not yet settled at once) →
//             flushed.
//   ready   → ready: status unflushing → the moves from planReady (at most maxIncoming at once)
//             → ready. No lock: a ready never competes for targets.
//
// A cancelled operation (its signal aborts: the node spec asks for the other state) starts no new
// move and stops waiting for the moves already written; the operation that follows plans from the
// specs those moves wrote. A lost flush lock also stops new moves; the moves under way then get a
// grace period (2 × migration.phaseTimeoutMs) to settle. The daemon stopping (`hard`) ends every
// wait at once and leaves the status as it is, so the operation resumes when the daemon is back.
//
// Moves that cannot happen are not written: the selectors skip targets that cannot take the VM's
// migration method, and a VM nothing can take is shut down and marked stoppedByFlush. A move
// whose target stops taking live migrations while it waits is re-planned the same way. Every
// shut-down VM and every re-planned or skipped move is a line in the flush progress (the node
// status's flush.message, shown by `vk node … --wait`) and in the action log.
import type { Logger } from 'pino';
import {
  describeFlushMove,
  expectationOf,
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
import { exclusionReason, place, type NodeCandidate, type Placed } from '../selectors.ts';
import { isValidName, type ClusterConfig, type NodeFlush, type NodeStatus, type VmSpec } from '../../schemas/index.ts';
import { LockLostError, type LockHandle, type LockQueue } from '../../drivers/zk/lock.ts';
import type { VmEntry } from '../../controllers/informers/vms.ts';

export interface FlushEffects {
  node: string;
  log: Logger;
  onAction?(line: string): void;
  now(): string;
  /** The node spec version the operation serves. */
  generation(): number;
  config(): ClusterConfig;
  /** Every node as the selectors see it, and one of them. */
  candidates(): NodeCandidate[];
  candidate(name: string): NodeCandidate | undefined;
  /** The VMs as the informer holds them (read-only). */
  vms: { names(): string[]; get(name: string): VmEntry | undefined };
  /** A VM read from ZooKeeper: one this node's informer no longer follows (it left this node's index, core/vm-index.ts). */
  readVm(name: string): Promise<Pick<VmEntry, 'spec' | 'status' | 'migration'> | undefined>;
  /** The ZooKeeper session is connected (no move is written while it is not). */
  connected(): boolean;
  /** Resolves on the next change of any input, after a poll interval, or when `signal` aborts. */
  waitChange(signal: AbortSignal): Promise<void>;
  /** Queues for the cluster flush lock; `onQueue` sees the queue while waiting. */
  acquireLock(signal: AbortSignal, onQueue: (queue: LockQueue) => void): Promise<LockHandle>;
  /** CAS on a fresh read of this node's status; an edit returning its input writes nothing. */
  updateStatus(edit: (status: NodeStatus) => NodeStatus): Promise<void>;
  /** CAS read-modify-write of a VM spec; null from `edit` means "leave it". */
  editSpec(vm: string, edit: (spec: VmSpec) => VmSpec | null): Promise<{ spec: VmSpec; version: number } | null>;
  /** Aborts when the daemon stops. */
  hard: AbortSignal;
  /** The daemon is stopping (a cancelled operation then leaves its status as it is). */
  stopping(): boolean;
}

type AnyMove = FlushMove | ReadyMove;

/** Least time between two progress writes to the node status. */
const PROGRESS_MS = 200;

export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

export class FlushExecutor {
  constructor(private readonly fx: FlushEffects) {}

  // ------------------------------------------------------------------------------- flush

  async runFlush(cancel: AbortSignal): Promise<void> {
    const { node } = this.fx;
    const startedAt = this.fx.now();
    const base: NodeFlush = { operation: 'flush', generation: this.fx.generation(), phase: 'queued', total: 0, moved: 0, stopped: 0, inFlight: 0, message: 'waiting for the flush lock', startedAt, updatedAt: startedAt };
    await this.fx.updateStatus((s) => ({ ...s, domainState: 'flushing', observedGeneration: this.fx.generation(), flush: { ...base, updatedAt: this.fx.now() } }));
    let queueWrite = Promise.resolve();
    const handle = await this.fx.acquireLock(cancel, (q) => {
      if (!q.holder) return;
      const holder = q.holder.owner ?? q.holder.child;
      const message = `waiting for the flush lock (held by ${holder}; ${q.ahead.length} ahead)`;
      this.fx.onAction?.(`${node} (node) flush queued behind ${holder}`);
      queueWrite = queueWrite.then(() =>
        this.updateFlush((f) =>
          f.operation === 'flush' && f.phase === 'queued' ? { ...f, message, ...(isValidName(holder) ? { lockHolder: holder } : {}), ahead: q.ahead.length, updatedAt: this.fx.now() } : f,
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
      this.fx.onAction?.(`${node} (node) flush lock held`);
      const stopStarting = AbortSignal.any([cancel, handle.lost]);
      // A ready (or the daemon stopping) lets go of the moves under way at once; a lost lock waits for them.
      const outcome = await this.execute('flush', stopStarting, cancel);
      if (handle.lost.aborted && !cancel.aborted) throw handle.lost.reason instanceof Error ? handle.lost.reason : new LockLostError('lock lost');
      if (cancel.aborted) {
        // A daemon that stops leaves the flush as it is (flushing): it resumes when it comes back.
        if (!this.fx.stopping()) {
          await this.updateFlush((f) => ({ ...f, phase: 'cancelled', inFlight: 0, message: `cancelled after ${outcome.moved} moved, ${outcome.stopped} shut down`, updatedAt: this.fx.now() }));
          this.fx.onAction?.(`${node} (node) flush cancelled after ${outcome.moved} moved, ${outcome.stopped} shut down`);
        }
        return;
      }
      const message = clip(`${outcome.moved} moved, ${outcome.stopped} shut down (ready starts them again)${outcome.failed > 0 ? `, ${outcome.failed} failed on their target` : ''}${notesOf(outcome.notes)}`);
      await this.fx.updateStatus((s) => ({
        ...s,
        domainState: 'flushed',
        observedGeneration: Math.max(s.observedGeneration, this.fx.generation()),
        flush: { ...(s.flush ?? base), phase: 'done', inFlight: 0, message, updatedAt: this.fx.now() },
      }));
      this.fx.onAction?.(`${node} (node) flushed: ${message}`);
    } finally {
      await handle.release().catch((error: unknown) => this.fx.log.warn({ err: error }, 'could not release the flush lock (its session ends it)'));
    }
  }

  // ------------------------------------------------------------------------------- ready

  async runReady(cancel: AbortSignal): Promise<void> {
    const startedAt = this.fx.now();
    await this.fx.updateStatus((s) => ({
      ...s,
      domainState: 'unflushing',
      observedGeneration: this.fx.generation(),
      flush: { operation: 'ready', generation: this.fx.generation(), phase: 'moving', total: 0, moved: 0, stopped: 0, inFlight: 0, message: 'bringing VMs back', startedAt, updatedAt: startedAt },
    }));
    const outcome = await this.execute('ready', cancel);
    if (cancel.aborted) {
      if (!this.fx.stopping()) {
        await this.updateFlush((f) => ({ ...f, phase: 'cancelled', inFlight: 0, message: `cancelled after ${outcome.moved} returned, ${outcome.stopped} started`, updatedAt: this.fx.now() }));
      }
      return;
    }
    const message = clip(`${outcome.moved} returned, ${outcome.stopped} started${outcome.failed > 0 ? `, ${outcome.failed} failed` : ''}${notesOf(outcome.notes)}`);
    await this.fx.updateStatus((s) => ({
      ...s,
      domainState: 'ready',
      observedGeneration: Math.max(s.observedGeneration, this.fx.generation()),
      flush: { ...(s.flush ?? { operation: 'ready', generation: this.fx.generation(), total: 0, moved: 0, stopped: 0, inFlight: 0, startedAt }), phase: 'done', inFlight: 0, message, updatedAt: this.fx.now() },
    }));
    this.fx.onAction?.(`${this.fx.node} (node) ready: ${message}`);
  }

  // ---------------------------------------------------------------------------- executor

  /**
   * The moves an operation of this kind would make now: `pending` as the planner chose them, and
   * `carried`, the moves an earlier run of a flush wrote whose VM has not left yet (waited for).
   */
  moves(kind: 'flush' | 'ready'): { vms: FlushVm[]; pending: AnyMove[]; carried: AnyMove[] } {
    const { node } = this.fx;
    const vms = this.flushVms();
    const carried: AnyMove[] = [];
    if (kind === 'ready') return { vms, pending: planReady(node, vms, { liveMigration: this.fx.candidate(node)?.liveMigration }), carried };
    const pending: AnyMove[] = planFlush({ node, vms, nodes: this.fx.candidates(), defaultSelector: this.fx.config().defaultNodeSelector });
    for (const vm of vms) {
      const entry = this.fx.vms.get(vm.name);
      const status = entry?.status && 'value' in entry.status ? entry.status.value : null;
      if (vm.spec.node !== node && vm.spec.state === 'running' && status?.node === node && vm.spec.previousNode === node) {
        carried.push({ kind: 'migrate', vm: vm.name, from: node, to: vm.spec.node, selector: this.fx.config().defaultNodeSelector, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus });
      }
    }
    return { vms, pending, carried };
  }

  /** Dry run: the action line of every move an operation of this kind would start with now. */
  describeMoves(kind: 'flush' | 'ready'): string[] {
    const { pending } = this.moves(kind);
    return pending.map((m) => {
      const entry = this.fx.vms.get(m.vm);
      const method = m.kind === 'skip' || !entry?.spec || 'error' in entry.spec ? undefined : entry.spec.value.meta.migrationMethod;
      return `${this.fx.node} ${describeFlushMove(m, method)}`;
    });
  }

  /**
   * Runs the moves of a flush or a ready, at most the configured number written and unsettled at
   * once. `stopStarting` aborting means: start no further move, wait for those under way (bounded
   * by the grace period); `abandon` aborting means: stop waiting for them at once.
   */
  private async execute(kind: 'flush' | 'ready', stopStarting: AbortSignal, abandon?: AbortSignal): Promise<{ moved: number; stopped: number; failed: number; notes: string[] }> {
    const { node } = this.fx;
    const planned = this.moves(kind);
    const { vms, carried } = planned;
    let pending = planned.pending;
    const sizes = new Map(vms.map((v) => [v.name, v]));
    // Lines worth reading in the progress: VMs shut down for want of a target, moves skipped.
    const notes: string[] = [];
    for (const m of pending) {
      if (m.kind !== 'skip') continue;
      this.fx.onAction?.(`${node} ${describeFlushMove(m)}`);
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
    this.fx.hard.addEventListener('abort', onHard, { once: true });
    if (abandon?.aborted) onHard();
    else abandon?.addEventListener('abort', onHard, { once: true });
    let graceTimer: NodeJS.Timeout | undefined;
    const onStop = () => {
      graceTimer = setTimeout(() => settleLimit.abort(new Cancelled()), 2 * this.fx.config().migration.phaseTimeoutMs);
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
        this.updateFlush((f) => ({ ...f, phase: 'moving', total, moved: counts.moved, stopped: counts.stopped, inFlight: running.size, message: clip(latest + notesOf(notes)), updatedAt: this.fx.now() })).catch(
          (error: unknown) => this.fx.log.warn({ err: error }, 'could not write flush progress'),
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
            this.fx.log.warn({ err: error, vm: move.vm }, 'flush move failed');
            return { move, result: settleLimit.signal.aborted ? ('pending' as const) : ('failed' as const) };
          },
        ),
      );
    };

    try {
      await progress(total === 0 ? 'nothing to move' : `${total} to move`, true);
      for (const move of carried) startMove(move, false);
      for (;;) {
        const limit = kind === 'flush' ? this.fx.config().migration.maxOutgoing : this.fx.config().migration.maxIncoming;
        let startedAny = false;
        while (!stopStarting.aborted && running.size < limit && pending.length > 0 && this.fx.connected()) {
          let move = pending.shift()!;
          if (move.kind === 'migrate') move = this.revalidate(move, sizes.get(move.vm), placed, (line) => notes.push(line));
          startMove(move, true);
          startedAny = true;
        }
        if (startedAny) await progress(`${counts.moved + counts.stopped}/${total} done, ${running.size} under way`);
        if (running.size === 0) {
          if (stopStarting.aborted || pending.length === 0) break;
          await this.fx.waitChange(stopStarting); // disconnected: wait for the connection
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
      this.fx.hard.removeEventListener('abort', onHard);
      abandon?.removeEventListener('abort', onHard);
      stopStarting.removeEventListener('abort', onStop);
    }
    return { ...counts, notes };
  }

  /** A planned target that is no longer valid (died, flushing, …): choose again with the current view. */
  private revalidate(move: Extract<AnyMove, { kind: 'migrate' }>, vm: FlushVm | undefined, placed: Map<string, Placed>, note: (line: string) => void): AnyMove {
    if (!vm) return move;
    const target = this.fx.candidate(move.to);
    const why = target
      ? exclusionReason(target, { nodeLimit: vm.spec.meta.nodeLimit, current: this.fx.node, method: vm.spec.meta.migrationMethod })
      : 'it is gone';
    if (why === undefined) return move;
    const without = new Map(placed);
    const p = without.get(move.to);
    if (p) without.set(move.to, { memoryMiB: p.memoryMiB - vm.memoryMiB, vcpus: p.vcpus - vm.vcpus, vms: p.vms - 1 });
    const [again] = planFlush({ node: this.fx.node, vms: [vm], nodes: this.fx.candidates(), defaultSelector: this.fx.config().defaultNodeSelector, placed: without });
    this.fx.log.info({ vm: vm.name, was: move.to, why, now: again?.kind === 'migrate' ? again.to : 'stop' }, 'flush target no longer valid; chose again');
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
      const applied = await this.fx.editSpec(move.vm, (spec) => {
        if (move.kind === 'migrate' || move.kind === 'stop') return flushMoveApplies(move, spec) ? flushSpecEdit(spec, move) : null;
        return readyMoveApplies(move, spec) ? readySpecEdit(spec, move) : null;
      });
      if (!applied) return 'notApplied';
      written = applied.version;
      this.fx.onAction?.(`${this.fx.node} ${describeFlushMove(move, applied.spec.meta.migrationMethod)}`);
      this.fx.log.info({ vm: move.vm, move }, describeFlushMove(move, applied.spec.meta.migrationMethod));
      if (move.kind === 'stop') note(`${move.vm} shut down: ${move.why}`);
    }
    for (;;) {
      // A VM that left this node's index (it names this node no more) is read from ZooKeeper.
      const entry = this.fx.vms.get(move.vm) ?? (await this.fx.readVm(move.vm));
      if (entry && written >= 0 && !(entry.spec && 'value' in entry.spec && entry.spec.version >= written)) {
        // Even when let go, wait (only) until the informer holds our write: whatever runs next plans
        // from the informer, and must see this move. Only the daemon stopping cuts this short.
        if (this.fx.hard.aborted) return 'pending';
        await this.fx.waitChange(this.fx.hard);
        continue;
      }
      const spec = entry?.spec && 'value' in entry.spec ? entry.spec.value : null;
      const status = entry?.status && 'value' in entry.status ? entry.status.value : null;
      const migration = entry?.migration && 'value' in entry.migration ? entry.migration.value : null;
      const result = entry ? settlement(expect, spec, status, migration) : 'superseded';
      if (result !== 'pending') return result;
      if (limit.aborted) return 'pending';
      await this.fx.waitChange(limit);
    }
  }

  // ------------------------------------------------------------------------------ inputs

  /** Every VM of the informer with a readable spec, sized from its XML. */
  private flushVms(): FlushVm[] {
    const out: FlushVm[] = [];
    for (const name of this.fx.vms.names()) {
      const entry = this.fx.vms.get(name);
      if (!entry?.spec || 'error' in entry.spec) continue;
      const info = (entry.xml && 'value' in entry.xml ? entry.xml.value.info : undefined) ?? null;
      const statusNode = entry.status && 'value' in entry.status ? entry.status.value?.node : undefined;
      out.push({ name, spec: entry.spec.value, memoryMiB: info ? Math.max(0, Math.round(info.memoryKiB / 1024)) : 0, vcpus: info?.vcpus ?? 0, statusNode });
    }
    return out;
  }

  /** Edits the flush progress; an edit that returns its input writes nothing. */
  private async updateFlush(edit: (flush: NodeFlush) => NodeFlush): Promise<void> {
    await this.fx.updateStatus((s) => {
      if (!s.flush) return s;
      const next = edit(s.flush);
      return next === s.flush ? s : { ...s, flush: next };
    });
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
