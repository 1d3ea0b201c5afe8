// The node flush/ready controller (DESIGN.md §4 "Node flush / ready", seeds 001-004): a one-key
// controller (the key is this node's name) around the executor in ./execute.ts.
//
// Sources: the nodes informer (this node's spec says flushed or ready; every node's alive, spec and
// status are the selectors' input), the cluster config and reconnects: any change means "look
// again", and the work queue runs the key once more after an operation under way (level-triggered).
// Those changes and the VM informer's also wake the waits of a running operation, which re-checks
// its moves.
//
// One operation at a time, toward what the node spec asks. The operation runs inside the
// reconcile, so the queue's exclusivity is the serialization. A spec change to the other state
// cancels the reconcile (WorkQueue.cancel aborts its signal and marks the key dirty), so the
// running operation lets go at once and the other one starts. A failed operation is retried after
// RETRY_MS.
//
// Status. The node status znode is shared with the keepalive (reconcilers/node/execute.ts),
// which carries domainState, observedGeneration and flush over from the current status; this
// controller owns those fields and writes them with compare-and-set on a fresh read, retrying on
// conflict. observedGeneration is the node spec version the operation serves (`vk node … --wait`).
import { indexOps } from '../../core/vm-index.ts';
import { Subject, Subscription, filter, map, merge } from 'rxjs';
import { FLUSH_LOCK } from './plan.ts';
import { Cancelled, FlushExecutor, type FlushEffects } from './execute.ts';
import { aliveTakesLiveMigration, type NodeCandidate } from '../selectors.ts';
import { decodeMigrationRecord, decodeNodeStatus, decodeVmSpec, decodeVmStatus, encodeNodeStatus, encodeVmSpec, type NodeSpec, type NodeStatus, type VmSpec } from '../../schemas/index.ts';
import { ZkLock } from '../../drivers/zk/lock.ts';
import { compareAndSet, NO_CHANGE, NoNodeError } from '../../drivers/zk/index.ts';
import { Controller } from '../../controllers/controller.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import type { Manager } from '../../controllers/manager.ts';
import { done, requeueAfter, type Result } from '../../controllers/reconciler.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import type { Loaded, VmEntry } from '../../controllers/informers/vms.ts';

export interface FlushControllerOptions {
  onAction?(line: string): void;
  now?: () => string;
  /** Backstop re-check while waiting on moves (default 1000 ms). */
  pollMs?: number;
}

type Goal = NodeSpec['domainState'];

/** Wait before retrying a failed operation. */
const RETRY_MS = 1_000;

export class FlushController implements Runnable {
  readonly name = 'flush';
  private readonly controller: Controller<string>;
  /** The goal the node spec last stated readably, and the spec version that stated it. */
  private desired: { goal: Goal; generation: number } | undefined;
  /** The version of this node's spec last reported unreadable (reported once). */
  private unreadable: number | undefined;
  /** The operation running now (inside the reconcile). */
  private running: Goal | undefined;
  private readonly changed$ = new Subject<void>();
  private readonly subs = new Subscription();
  private stopping = false;
  private readonly hard = new AbortController();
  private readonly now: () => string;
  private readonly lock: ZkLock;
  private readonly executor: FlushExecutor;

  constructor(
    private readonly m: Manager,
    private readonly o: FlushControllerOptions = {},
  ) {
    this.now = o.now ?? (() => new Date().toISOString());
    this.lock = new ZkLock(m.store, m.paths.lock(FLUSH_LOCK), { owner: m.node, log: m.log });
    this.executor = new FlushExecutor(this.effects());
    const { nodes, config } = m.informers;
    const self = m.node;
    this.controller = new Controller<string>({
      name: 'flush',
      log: m.log,
      concurrency: 1,
      sources: [merge(nodes.changes$, nodes.list$, config.changes$, m.store.connectionState$).pipe(map(() => self))],
      resync: { keys: () => [self], everyMs: 60_000 },
      reconcile: (_key, signal) => this.reconcile(signal),
      plan: async () => this.planMoves(),
    });
  }

  async start(): Promise<void> {
    const { nodes, vms, config } = this.m.informers;
    // An operation under way re-checks its moves at every change of its inputs.
    this.subs.add(merge(nodes.changes$, vms.changes$, config.changes$, this.m.store.connectionState$).subscribe(() => this.changed$.next()));
    // The node spec asks for the other state: the running operation lets go at once.
    this.subs.add(
      nodes.changes$.pipe(filter((name) => name === this.m.node)).subscribe(() => {
        const goal = this.readDesired()?.goal;
        if (this.running !== undefined && goal !== undefined && goal !== this.running) this.controller.queue.cancel(this.m.node);
      }),
    );
    await this.controller.start();
  }

  async stop(): Promise<void> {
    // A daemon that stops leaves an operation as it is (its status says so): it resumes later.
    this.stopping = true;
    this.hard.abort(new Cancelled());
    this.subs.unsubscribe();
    await this.controller.stop();
    this.changed$.complete();
  }

  get queue() {
    return this.controller.queue;
  }

  /** What the selectors see now (for tests and diagnostics). */
  candidates(): NodeCandidate[] {
    const nodes = this.m.informers.nodes;
    return nodes.names().flatMap((name) => {
      const c = this.candidate(name);
      return c ? [c] : [];
    });
  }

  private candidate(name: string): NodeCandidate | undefined {
    const entry = this.m.informers.nodes.get(name);
    if (!entry) return undefined;
    return {
      name,
      alive: entry.alive !== null,
      liveMigration: entry.alive !== null && aliveTakesLiveMigration(entry.alive.payload),
      spec: valueOf(entry.spec),
      status: valueOf(entry.status),
    };
  }

  /** The goal of this node's spec; an unreadable spec leaves the last readable goal in force. */
  private readDesired(): { goal: Goal; generation: number } | undefined {
    const spec = this.m.informers.nodes.get(this.m.node)?.spec;
    if (!spec) this.desired = { goal: 'ready', generation: -1 };
    else if ('value' in spec) this.desired = { goal: spec.value.domainState, generation: spec.version };
    else if (this.unreadable !== spec.version) {
      this.unreadable = spec.version;
      this.m.log.warn({ version: spec.version, error: spec.error }, 'unreadable node spec; ignoring it');
    }
    return this.desired;
  }

  /**
   * Every input read at least once: planning with a half-loaded view of the nodes would find no
   * target and shut VMs down.
   */
  private loaded(): boolean {
    const nodes = this.m.informers.nodes;
    if (!nodes.isListed || !nodes.get(this.m.node)) return false;
    return nodes.names().every((name) => nodes.get(name)?.loaded);
  }

  /** The operation the node needs now, or undefined when it is where its spec wants it. */
  private needed(): { goal: Goal; generation: number; status: NodeStatus } | 'ready-generation' | undefined {
    const desired = this.readDesired();
    if (!desired || !this.loaded()) return undefined;
    const status = valueOf(this.m.informers.nodes.get(this.m.node)?.status);
    if (!status) return undefined; // the keepalive creates it
    if (desired.goal === 'flushed') {
      if (status.domainState === 'flushed' && status.observedGeneration >= desired.generation) return undefined;
      return { ...desired, status };
    }
    if (status.domainState === 'ready') return status.observedGeneration < desired.generation ? 'ready-generation' : undefined;
    // Fenced: the fencing coordinator lifts the storage blocklist and clears the record first
    // (reconcilers/fence), or the VMs coming back could not open their RBD disks here.
    if (status.fence?.state === 'fenced') return undefined;
    return { ...desired, status };
  }

  private async reconcile(signal: AbortSignal): Promise<Result> {
    if (this.stopping || this.m.store.connectionState !== 'connected') return done;
    const need = this.needed();
    if (need === undefined) return done;
    const generation = this.desired!.generation;
    if (need === 'ready-generation') {
      await this.updateStatus((s) => ({ ...s, observedGeneration: generation }));
      return done;
    }
    const { goal } = need;
    const what = goal === 'flushed' ? 'flush' : 'ready';
    this.running = goal;
    this.m.log.info({ goal }, `node ${what} begins`);
    try {
      if (goal === 'flushed') await this.executor.runFlush(signal);
      else await this.executor.runReady(signal);
      this.m.log.info({ goal, cancelled: signal.aborted }, `node ${what} ${signal.aborted ? 'cancelled' : 'done'}`);
      return done;
    } catch (error) {
      if (error instanceof Cancelled || signal.aborted) return done;
      this.m.log.warn({ err: error, goal }, 'node flush/ready failed; retrying');
      return requeueAfter(RETRY_MS);
    } finally {
      this.running = undefined;
    }
  }

  /** Dry run: the moves the operation the node needs now would make. */
  plan(): Promise<string[]> {
    return this.controller.plan();
  }

  private planMoves(): string[] {
    const need = this.needed();
    if (need === undefined || need === 'ready-generation') return [];
    return this.executor.describeMoves(need.goal === 'flushed' ? 'flush' : 'ready');
  }

  private effects(): FlushEffects {
    const { m, o } = this;
    return {
      node: m.node,
      log: m.log,
      ...(o.onAction ? { onAction: o.onAction } : {}),
      now: () => this.now(),
      generation: () => this.desired?.generation ?? -1,
      config: () => m.informers.config.value,
      candidates: () => this.candidates(),
      candidate: (name) => this.candidate(name),
      vms: m.informers.vms,
      connected: () => m.store.connectionState === 'connected',
      waitChange: (signal) => this.waitChange(signal),
      acquireLock: (signal, onQueue) => this.lock.acquire(signal, onQueue),
      updateStatus: (edit) => this.updateStatus(edit),
      editSpec: (vm, edit) => this.editSpec(vm, edit),
      readVm: (vm) => this.readVm(vm),
      hard: this.hard.signal,
      stopping: () => this.stopping,
    };
  }

  /** The spec, status and migration record of a VM, from ZooKeeper (undefined when it has no spec). */
  private async readVm(vm: string): Promise<Pick<VmEntry, 'spec' | 'status' | 'migration'> | undefined> {
    const { store, paths } = this.m;
    const [spec, status, migration] = await Promise.all([store.get(paths.vmSpec(vm)), store.get(paths.vmStatus(vm)), store.get(paths.vmMigration(vm))]);
    if (!spec) return undefined;
    const load = <T,>(got: { data: Buffer; version: number } | null, decode: (text: string) => T): Loaded<T> => {
      if (!got) return null;
      try {
        return { value: decode(got.data.toString('utf8')), version: got.version };
      } catch (error) {
        return { error: (error as Error).message, raw: got.data.toString('utf8').slice(0, 65_536), version: got.version };
      }
    };
    return { spec: load(spec, decodeVmSpec), status: load(status, decodeVmStatus), migration: load(migration, decodeMigrationRecord) };
  }

  /** CAS read-modify-write of a VM spec; null from `edit` means "leave it". Returns the spec written and its version. */
  private async editSpec(vm: string, edit: (spec: VmSpec) => VmSpec | null): Promise<{ spec: VmSpec; version: number } | null> {
    const outcome = await compareAndSet(this.m.store, this.m.paths.vmSpec(vm), {
      what: `the spec of ${vm}`,
      decode: (data) => decodeVmSpec(data.toString('utf8')),
      encode: encodeVmSpec,
      edit: (spec) => edit(spec) ?? NO_CHANGE,
      // The index entry of the node the spec now names, in the same multi (core/vm-index.ts).
      also: (next) => indexOps(this.m.store, this.m.paths, vm, next),
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

  /** CAS on a fresh read of the node status; retried on conflict (the keepalive writes it too). */
  private async updateStatus(edit: (status: NodeStatus) => NodeStatus): Promise<void> {
    const path = this.m.paths.nodeStatus(this.m.node);
    const outcome = await compareAndSet(this.m.store, path, {
      what: `the status of node ${this.m.node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit: (current) => {
        const next = edit(current);
        return next === current ? NO_CHANGE : next;
      },
    });
    if (outcome.kind === 'absent') throw new NoNodeError(path);
    if (outcome.kind === 'written') this.m.informers.nodes.noteStatus(this.m.node, outcome.value, outcome.version);
  }
}
