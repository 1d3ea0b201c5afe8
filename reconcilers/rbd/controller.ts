// The RBD concern's controller (one per node): the VM informer, libvirt lifecycle events and a
// periodic resync → one work queue of VM names → a check of the VM's RBD locks when this node is
// about to start or receive it (plan.ts B1), written to /vms/<name>/rbd for the domain and
// migration planners to read; and a `@storage` key that keeps the node status's `storage` (the
// address lockers are matched against, Ceph reachable or not) current.
//
// A check is written only when it is due (plan.ts B4), so its own write coming back through the
// informer is no reason to check again: no loop.
import { filter, map } from 'rxjs';
import { Controller } from '../../controllers/controller.ts';
import { jsonEqual } from '../json-equal.ts';
import type { Manager } from '../../controllers/manager.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { done, requeueAfter, type ReconcileContext, type Result } from '../../controllers/reconciler.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { compareAndSet, NO_CHANGE } from '../../drivers/zk/index.ts';
import { isActive } from '../../drivers/domain-run-state.ts';
import type { RbdDriver } from '../../drivers/rbd/types.ts';
import { decodeNodeStatus, decodeRbdCheck, encodeNodeStatus, encodeRbdCheck, type NodeStorage, type RbdCheck } from '../../schemas/index.ts';
import { checkLocks, flushAllLocks, type RbdEffects } from './execute.ts';
import { candidateOf, checkDueInMs, flushLocksPending, flushLocksRefusal, POLL_MS, REFRESH_MS, type Candidate } from './plan.ts';

export interface RbdControllerOptions {
  driver: RbdDriver;
  /** This node's storage address: the host part of its Ceph clients' addresses. */
  storageAddress: string;
  concurrency?: number;
  /** How often Ceph's reachability is probed when nothing else asks (default 30 s). */
  probeMs?: number;
  onAction?(line: string): void;
}

const STORAGE = '@storage';

export class RbdController implements Runnable {
  readonly name = 'rbd';
  private readonly controller: Controller<string>;
  private readonly probeMs: number;
  private probedAt = 0;
  private probedSession: string | undefined;
  /** The checks this controller wrote: newer than the informer's until their watch event lands. */
  private readonly written = new Map<string, { check: RbdCheck; at: number }>();

  constructor(
    private readonly m: Manager,
    private readonly o: RbdControllerOptions,
  ) {
    this.probeMs = o.probeMs ?? 30_000;
    const vms = m.informers.vms;
    this.controller = new Controller<string>({
      name: 'rbd',
      log: m.log,
      keyField: 'vm',
      concurrency: o.concurrency ?? 4,
      sources: [vms.changes$, m.hv.lifecycle$.pipe(map(({ name }) => name))],
      resync: {
        keys: () => [STORAGE, ...vms.names().filter((vm) => this.homedWithRbd(vm))],
        everyMs: POLL_MS,
        triggers: [m.store.connectionState$.pipe(filter((s) => s === 'connected'))],
      },
      reconcile: (key, _signal, ctx) => (key === STORAGE ? this.probe() : this.reconcile(key, ctx)),
      plan: async (key) => (key === STORAGE ? [] : this.planLines(key)),
    });
  }

  get queue() {
    return this.controller.queue;
  }

  async start(): Promise<void> {
    await this.controller.start();
  }

  async stop(): Promise<void> {
    await this.controller.stop();
  }

  plan(): Promise<string[]> {
    return this.controller.plan();
  }

  /** The VM's last check: this controller's own write until the informer has caught up with it (or 5 s passed). */
  private current(vm: string): RbdCheck | null {
    const cached = valueOf(this.m.informers.vms.get(vm)?.rbd);
    const mine = this.written.get(vm);
    if (!mine) return cached;
    if (Date.now() - mine.at > 5_000 || (cached !== null && jsonEqual(cached, mine.check))) {
      this.written.delete(vm);
      return cached;
    }
    return mine.check;
  }

  private homedWithRbd(vm: string): boolean {
    const spec = valueOf(this.m.informers.vms.get(vm)?.spec);
    return spec !== null && spec.node === this.m.node && spec.rbd.length > 0;
  }

  /** Storage address → node, from every node's published status (this node's own from its config). */
  private facts() {
    const nodeOf = new Map<string, string>();
    const nodes = this.m.informers.nodes;
    for (const name of nodes.names()) {
      const address = valueOf(nodes.get(name)?.status)?.storage?.address;
      if (address !== undefined && name !== this.m.node) nodeOf.set(address, name);
    }
    return { me: this.m.node, myAddress: this.o.storageAddress, nodeOf };
  }

  private effects(ctx: ReconcileContext): RbdEffects {
    const { driver } = this.o;
    return {
      listLocks: (image) => driver.listLocks(image),
      removeLock: (image, lock) => driver.removeLock(image, lock),
      activeHere: async (vm) => isActive(await this.m.hv.getDomain(vm)),
      get log() {
        return ctx.logger;
      },
      ...(this.o.onAction ? { onAction: this.o.onAction } : {}),
    };
  }

  private async candidate(vm: string): Promise<{ candidate: Candidate | undefined; existing: RbdCheck | null } | undefined> {
    const entry = this.m.informers.vms.get(vm);
    if (!entry?.loaded) return undefined;
    const spec = valueOf(entry.spec);
    const status = entry.status && 'value' in entry.status ? entry.status : null;
    const record = valueOf(entry.migration);
    const existing = this.current(vm);
    const active = isActive(await this.m.hv.domainState(vm));
    return { candidate: candidateOf(this.m.node, vm, spec, status, record, active), existing };
  }

  private async reconcile(vm: string, ctx: ReconcileContext): Promise<Result> {
    if (this.m.store.connectionState !== 'connected') return requeueAfter(500);
    const flushed = await this.flushLocks(vm, ctx);
    if (flushed) return flushed;
    const got = await this.candidate(vm);
    if (!got?.candidate) return done;
    const { candidate, existing } = got;
    const dueIn = checkDueInMs(candidate, existing, this.m.node, Date.now());
    if (dueIn !== undefined) return dueIn === Infinity ? done : requeueAfter(dueIn);
    const check = await checkLocks(this.m.node, candidate, this.facts(), this.effects(ctx), () => new Date().toISOString());
    await this.noteReachable(check.verdict !== 'unreachable', check.verdict === 'unreachable' ? check.message : undefined);
    if (existing?.flushLocks) check.flushLocks = existing.flushLocks;
    await this.write(vm, check);
    if (check.verdict !== 'clear' || existing?.verdict !== 'clear') {
      ctx.logger.info({ purpose: check.purpose, verdict: check.verdict, reason: check.reason, message: check.message }, `rbd: ${check.verdict}`);
    }
    return candidate.purpose === 'incoming' ? done : requeueAfter(check.verdict === 'clear' ? REFRESH_MS : POLL_MS);
  }

  /** `vk vm flush-locks`: answered once per request, here on the VM's node. */
  private async flushLocks(vm: string, ctx: ReconcileContext): Promise<Result | undefined> {
    const entry = this.m.informers.vms.get(vm);
    const spec = valueOf(entry?.spec);
    const existing = this.current(vm);
    const at = flushLocksPending(this.m.node, spec, existing);
    if (at === undefined || !spec) return undefined;
    const fx = this.effects(ctx);
    const refusal = flushLocksRefusal(spec, valueOf(entry?.status), await fx.activeHere(vm), this.m.node);
    let answer: NonNullable<RbdCheck['flushLocks']>;
    if (refusal !== undefined) {
      answer = { at, result: 'refused', message: `not flushed: ${refusal}`, removed: [] };
    } else {
      const r = await flushAllLocks(this.m.node, vm, spec.rbd, this.facts(), fx);
      answer =
        r.error !== undefined
          ? { at, result: 'failed', message: r.error, removed: r.removed }
          : { at, result: 'done', message: r.removed.length === 0 ? 'no locks were held' : `removed ${r.removed.length} lock(s)`, removed: r.removed };
    }
    ctx.logger.warn({ flushLocks: answer }, `rbd: flush-locks ${answer.result}: ${answer.message}`);
    // The flush's answer rides on the last check; with none, on one dated 0 that no start trusts.
    const base: RbdCheck = existing ?? {
      node: this.m.node,
      purpose: 'start',
      statusVersion: entry?.status ? entry.status.version : null,
      verdict: 'clear',
      images: spec.rbd.map((image) => ({ image, locks: [] })),
      removed: [],
      checkedAt: new Date(0).toISOString(),
    };
    await this.write(vm, { ...base, flushLocks: answer });
    return done;
  }

  private async write(vm: string, check: RbdCheck): Promise<void> {
    const outcome = await compareAndSet(this.m.store, this.m.paths.vmRbd(vm), {
      what: `the RBD check of ${vm}`,
      decode: (data) => decodeRbdCheck(data.toString('utf8')),
      encode: encodeRbdCheck,
      absent: () => check,
      edit: () => check,
    });
    if (outcome.kind === 'written') this.written.set(vm, { check: outcome.value, at: Date.now() });
  }

  /** `@storage`: probe Ceph (a blocklist listing is the cheapest call that needs the monitor) and publish the result. */
  private async probe(): Promise<Result> {
    if (this.m.store.connectionState !== 'connected') return requeueAfter(500);
    // The resync brings this key back every POLL_MS; the probe (a python `ceph` process, about half
    // a CPU-second) runs only every probeMs — or at once after a reconnect.
    const sinceMs = Date.now() - this.probedAt;
    if (sinceMs < this.probeMs && this.probedSession === this.m.store.sessionId) return requeueAfter(this.probeMs - sinceMs);
    this.probedAt = Date.now();
    this.probedSession = this.m.store.sessionId;
    try {
      await this.o.driver.blocklistList();
      await this.noteReachable(true);
    } catch (error) {
      await this.noteReachable(false, (error as Error).message);
    }
    return requeueAfter(this.probeMs);
  }

  /** Node status `storage`, written only when the address or the reachability changes. */
  private async noteReachable(reachable: boolean, message?: string): Promise<void> {
    const cached = valueOf(this.m.informers.nodes.get(this.m.node)?.status)?.storage;
    if (cached && cached.address === this.o.storageAddress && cached.reachable === reachable) return;
    const storage: NodeStorage = { address: this.o.storageAddress, reachable, ...(message !== undefined ? { message: message.slice(0, 1024) } : {}), checkedAt: new Date().toISOString() };
    const outcome = await compareAndSet(this.m.store, this.m.paths.nodeStatus(this.m.node), {
      what: `the status of node ${this.m.node}`,
      decode: (data) => decodeNodeStatus(data.toString('utf8')),
      encode: encodeNodeStatus,
      edit: (status) => (status.storage?.address === storage.address && status.storage.reachable === reachable ? NO_CHANGE : { ...status, storage }),
    }).catch((error: unknown) => {
      this.m.log.warn({ err: error }, 'rbd: could not write the node status storage field');
      return undefined;
    });
    if (outcome?.kind === 'written') this.m.informers.nodes.noteStatus(this.m.node, outcome.value, outcome.version);
  }

  private async planLines(vm: string): Promise<string[]> {
    const got = await this.candidate(vm);
    const lines: string[] = [];
    const spec = valueOf(this.m.informers.vms.get(vm)?.spec);
    if (flushLocksPending(this.m.node, spec, got?.existing ?? this.current(vm)) !== undefined) lines.push(`${this.m.node} ${vm} flush-locks of ${spec!.rbd.join(', ')}`);
    if (got?.candidate && checkDueInMs(got.candidate, got.existing, this.m.node, Date.now()) === undefined) {
      lines.push(`${this.m.node} ${vm} check RBD locks of ${got.candidate.images.join(', ')} (${got.candidate.purpose === 'start' ? 'before a start' : `incoming migration from ${got.candidate.source}`})`);
    }
    return lines;
  }
}
