// The primary coordinator controller (DESIGN §4 "Primary coordinator"): one key (the role), one
// state machine (plan.ts) fed by fresh reads of /config/primary and /locks/primary on every pass,
// the gateways and DHCP/DNS servers it implies on this node (local.ts, execute.ts), and the leases
// dnsmasq reports written to ZooKeeper (leases.ts).
//
// INVARIANTS
//  C1  Every pass reads the record and the lock from ZooKeeper itself (never the cache): a daemon
//      that lost its session acts on nothing it believed before (its session id no longer owns
//      the lock, so planPrimary gives it no duties).
//  C2  A gateway address lives at most `lifetimeS` past the last write that extended it, and that
//      write was started within RENEW_WITHIN_MS of sending a read that confirmed the duty through
//      ZooKeeper (a confirmation dates from when it was asked for, never from when the answer was
//      handled), its `ip` refused to start later than `startByMs` after it (checked by that process,
//      so a freeze of this one after its own check cannot make it late), and it landed within
//      `landByMs` of it, or everything is dropped at once. So no address outlives the session that
//      confirmed it (gatewayTiming). Renewals only extend addresses that are there; adding one is a
//      pass's job (it announces it).
//  C3  Lost session, renewals lapsed (the process was frozen or starved): the gateways and DHCP
//      servers are dropped at once, before anything else, and the role is taken again only
//      through the state machine.
//  C4  A clean stop hands the role over first (bounded by one barrier), then drops everything.
//  C5  Local effects (a pass's, a drop's) never run concurrently.
import { filter, map, merge, Subscription } from 'rxjs';
import { Controller } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import { valueOf } from '../../controllers/informers/nodes.ts';
import { done, requeueAfter, type Result } from '../../controllers/reconciler.ts';
import type { Runnable } from '../../controllers/runnable.ts';
import { compareAndSet, NodeExistsError, NoNodeError, TransactionError, VersionConflictError, type Op } from '../../drivers/zk/index.ts';
import { IpDeadlineError } from '../../drivers/net/errors.ts';
import type { BatchResult } from '../../drivers/net/types.ts';
import { decodePrimaryLock, decodePrimaryRecord, encodePrimaryLock, encodePrimaryRecord, type PrimaryRecord } from '../../schemas/index.ts';
import { convergeDhcp, convergeGateways, type LocalContext, type PrimaryEffects } from './execute.ts';
import { activeLeases, readZkLeases, syncLeases } from './leases.ts';
import { desiredDhcp, desiredGateways, gatewayTiming, RENEW_WITHIN_MS, renewPass, type NetworkView } from './local.ts';
import { autoTarget, planPrimary, type NodeFacts, type PlannedStep, type PrimaryFacts, type PrimaryPlan } from './plan.ts';

export interface PrimaryControllerOptions {
  effects: PrimaryEffects;
  /** Interface group of the gateway links. */
  group: number;
  /** How long each hand-over barrier waits for the other side. */
  barrierMs?: number;
  leaseTimeS?: number;
  onAction?(line: string): void;
}

const KEY = 'primary';

interface Snapshot {
  record: PrimaryRecord | null;
  recordVersion: number | null;
  lock: PrimaryFacts['lock'];
  lockVersion: number | null;
  /**
   * Date.now() when the reads were sent, not answered: an answer is only as fresh as its request
   * (one that sat in the socket while the process was frozen confirms nothing about now).
   */
  readAt: number;
}

class StaleRecord extends Error {}

export class PrimaryController implements Runnable {
  readonly name = 'primary';
  private readonly controller: Controller<string>;
  private readonly barrierMs: number;
  private subs = new Subscription();
  private renewTimer: NodeJS.Timeout | undefined;
  private unwatchLeases: (() => void) | undefined;
  private stopping = false;
  private lockAbsentSince: number | undefined;
  /** When ZooKeeper last confirmed a gateways duty (C2); undefined while holding none. */
  private confirmedAt: number | undefined;
  private local: Promise<unknown> = Promise.resolve();
  private lastRole = '';
  private renewing = false;

  constructor(
    private readonly m: Manager,
    private readonly o: PrimaryControllerOptions,
  ) {
    this.barrierMs = o.barrierMs ?? 5_000;
    const { config, nodes, networks } = m.informers;
    const look = () => KEY;
    this.controller = new Controller<string>({
      name: 'primary',
      log: m.log,
      concurrency: 1,
      sources: [
        merge(
          m.store.watchData(m.paths.primary),
          m.store.watchData(m.paths.primaryLock),
          config.changes$,
          nodes.changes$,
          nodes.alive$,
          networks.changes$,
          m.store.connectionState$.pipe(filter((s) => s === 'connected')),
        ).pipe(map(look)),
      ],
      resync: { keys: () => [KEY], everyMs: Math.max(1_000, this.barrierMs) },
      reconcile: () => this.reconcile(),
      plan: () => this.planLines(),
    });
  }

  get queue() {
    return this.controller.queue;
  }

  private get timing() {
    return gatewayTiming(this.m.store.sessionTimeoutMs);
  }

  private context(): LocalContext {
    return {
      node: this.m.node,
      effects: this.o.effects,
      group: this.o.group,
      lifetimeS: this.timing.lifetimeS,
      ...(this.o.leaseTimeS !== undefined ? { leaseTimeS: this.o.leaseTimeS } : {}),
      log: this.m.log,
      ...(this.o.onAction ? { onAction: this.o.onAction } : {}),
    };
  }

  async start(): Promise<void> {
    // Whatever a previous run of this daemon left (gateways, dnsmasq) is dropped first: this
    // session has confirmed nothing yet (C1).
    await this.dropAll('the daemon starts: nothing is held before ZooKeeper confirms it');
    await this.m.store.ensurePath(this.m.paths.locks);
    this.subs.add(
      this.m.store.connectionState$.pipe(filter((s) => s === 'expired')).subscribe(() => {
        void this.dropAll('the ZooKeeper session expired').then(() => this.queue.add(KEY));
      }),
    );
    this.unwatchLeases = this.o.effects.dhcp.watchLeases(() => this.queue.add(KEY));
    this.renewTimer = setInterval(() => this.renewTick(), this.timing.renewMs);
    await this.controller.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Renewals go on through the hand-over: the gateways stay held until the successor has its own.
    await this.handOverBeforeStop();
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.controller.stop();
    this.subs.unsubscribe();
    this.unwatchLeases?.();
    await this.dropAll('the daemon stops');
  }

  plan(): Promise<string[]> {
    return this.controller.plan();
  }

  /**
   * C2/C3: while holding gateways, confirm the duty through ZooKeeper and extend the addresses'
   * lifetimes (`address change` only: a renewal never brings back an address that is gone); drop
   * everything at once when the last confirmation is older than a lifetime. Runs beside the passes,
   * not behind them: a slow pass (a dnsmasq starting) must not let the gateways lapse.
   */
  private renewTick(): void {
    if (this.confirmedAt === undefined) return;
    const age = Date.now() - this.confirmedAt;
    // Past the lifetime and the kernel's rounding the addresses are surely gone: drop the rest now.
    if (age > this.timing.lifetimeS * 1000 + 1000) {
      void this.dropAll(`no confirmation from ZooKeeper for ${age} ms (the daemon was frozen or cut off): the gateways lapsed`).then(() => this.queue.add(KEY));
      return;
    }
    if (this.m.store.connectionState !== 'connected' || this.renewing) return;
    this.renewing = true;
    void this.renew()
      .catch((error: unknown) => this.m.log.debug({ err: error }, 'primary: renewal failed; the next one tries again'))
      .finally(() => (this.renewing = false));
  }

  private async renew(): Promise<void> {
    const snap = await this.read();
    const plan = planPrimary(this.facts(snap));
    if (!plan.duties.gateways || this.confirmedAt === undefined) {
      this.queue.add(KEY);
      return;
    }
    if (Date.now() - snap.readAt > RENEW_WITHIN_MS) return;
    const { lines, missing } = renewPass(desiredGateways(this.networkViews(), this.m.node), await this.o.effects.observeGateways(), this.timing.lifetimeS);
    // A gateway missing (deleted by hand, lapsed): the pass adds it again and announces it.
    if (missing.length > 0) this.queue.add(KEY);
    if (lines.length === 0 || Date.now() - snap.readAt > RENEW_WITHIN_MS) return;
    let result: BatchResult;
    try {
      result = await this.o.effects.applyGatewayLines(lines, snap.readAt + this.timing.startByMs);
    } catch (error) {
      // Stalled past its start bound: nothing was renewed; the addresses lapse unless a fresh renewal comes.
      if (error instanceof IpDeadlineError) return;
      throw error;
    }
    if (await this.landedLate(snap, 'a renewal')) return;
    if (this.confirmedAt !== undefined) this.noteConfirmed(snap.readAt);
    if (result.failures.length > 0) this.queue.add(KEY);
  }

  /**
   * C2: a gateway write that landed later than `landByMs` after its confirming read was sent (the
   * process stalled between the check and the write) may outlive the session: undo everything.
   */
  private async landedLate(snap: Snapshot, what: string): Promise<boolean> {
    const late = Date.now() - snap.readAt;
    if (late <= this.timing.landByMs) return false;
    await this.dropAll(`${what} landed ${late} ms after its confirmation from ZooKeeper was asked for (at most ${this.timing.landByMs}): the address could outlive the session`);
    this.queue.add(KEY);
    return true;
  }

  /** C2: ZooKeeper confirmed the gateways duty at `readAt` (confirmations never go back in time). */
  private noteConfirmed(readAt: number): void {
    this.confirmedAt = Math.max(this.confirmedAt ?? 0, readAt);
  }

  /** C5: local effects one at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.local.then(fn, fn);
    this.local = run.catch(() => undefined);
    return run;
  }

  /** C3: stops every DHCP server and removes every gateway link of this node, logging why when anything was held. */
  private dropAll(why: string): Promise<void> {
    const held = this.confirmedAt !== undefined;
    this.confirmedAt = undefined;
    return this.exclusive(async () => {
      const ctx = this.context();
      const running = (await this.o.effects.dhcp.list().catch(() => [])).length;
      const stopped = await convergeDhcp([], async () => [], ctx).catch((e: unknown) => [String(e)]);
      const gw = await convergeGateways([], ctx).catch((e: unknown) => ({ failures: [String(e)], added: 0, removed: 0, created: [] as number[] }));
      if (held || running > 0 || gw.removed > 0) {
        this.m.log.warn({ why, dnsmasqStopped: running, gatewaysRemoved: gw.removed, failures: [...stopped, ...gw.failures] }, 'primary: dropped the gateways and DHCP servers');
      }
    });
  }

  private async read(): Promise<Snapshot> {
    const sentAt = Date.now();
    const [r, l] = await Promise.all([this.m.store.get(this.m.paths.primary), this.m.store.get(this.m.paths.primaryLock)]);
    let record: PrimaryRecord | null = null;
    if (r) {
      try {
        record = decodePrimaryRecord(r.data.toString('utf8'));
      } catch (error) {
        this.m.log.error({ err: error }, 'primary: the record is unreadable; acting as if there were none');
      }
    }
    let lock: PrimaryFacts['lock'] = null;
    if (l) {
      try {
        lock = { ...decodePrimaryLock(l.data.toString('utf8')), session: l.stat.ephemeralOwner };
      } catch {
        lock = { node: '', term: 0, since: new Date(0).toISOString(), session: l.stat.ephemeralOwner };
      }
    }
    return { record, recordVersion: r ? r.version : null, lock, lockVersion: l ? l.version : null, readAt: sentAt };
  }

  private facts(s: Snapshot): PrimaryFacts {
    const cfg = this.m.informers.config.value;
    const nodes = new Map<string, NodeFacts>();
    for (const name of cfg.coordinators) {
      const e = this.m.informers.nodes.get(name);
      const spec = valueOf(e?.spec);
      nodes.set(name, { alive: name === this.m.node ? true : e?.alive != null, ready: (spec?.domainState ?? 'ready') === 'ready' });
    }
    if (s.lock === null) this.lockAbsentSince ??= s.readAt;
    else this.lockAbsentSince = undefined;
    return {
      me: this.m.node,
      mySession: this.m.store.sessionId,
      connected: this.m.store.connectionState === 'connected',
      stopping: this.stopping,
      coordinators: cfg.coordinators,
      nodes,
      record: s.record,
      lock: s.lock,
      lockAbsentForMs: this.lockAbsentSince === undefined ? 0 : s.readAt - this.lockAbsentSince,
      now: s.readAt,
      barrierMs: this.barrierMs,
    };
  }

  private networkViews(): NetworkView[] {
    const inf = this.m.informers.networks;
    return inf.vnis().map((vni) => {
      const e = inf.get(vni);
      return { vni, spec: valueOf(e?.spec) ?? undefined, status: valueOf(e?.status) ?? undefined };
    });
  }

  private async reconcile(): Promise<Result> {
    if (this.m.store.connectionState !== 'connected') return requeueAfter(250);
    const snap = await this.read();
    const f = this.facts(snap);
    const plan = planPrimary(f);
    this.noteRole(f, plan);
    if (plan.step?.when === 'before') {
      // A lost race is looked at again at once; a failure that is not a race (logged) after a pause.
      return requeueAfter((await this.writeStep(plan.step, snap)) ? 0 : 200);
    }
    // C2: a confirmation older than RENEW_WITHIN_MS is not acted on (the process stalled since).
    if (plan.duties.gateways && Date.now() - snap.readAt > RENEW_WITHIN_MS) return requeueAfter(0);
    const failures = await this.exclusive(() => this.converge(plan, snap));
    if (plan.step?.when === 'after') {
      if (failures.length > 0) {
        this.m.log.warn({ failures, step: plan.step.kind }, 'primary: the step waits for the local changes to succeed');
        return requeueAfter(500);
      }
      return requeueAfter((await this.writeStep(plan.step, snap)) ? 0 : 200);
    }
    if (failures.length > 0) return requeueAfter(1_000);
    return plan.lookAgainMs !== undefined ? requeueAfter(plan.lookAgainMs) : done;
  }

  private async converge(plan: PrimaryPlan, snap: Snapshot): Promise<string[]> {
    const ctx = this.context();
    const networks = this.networkViews();
    const gateways = plan.duties.gateways ? desiredGateways(networks, this.m.node) : [];
    const failures: string[] = [];
    if (!plan.duties.dhcp) failures.push(...(await convergeDhcp([], async () => [], ctx)));
    const gw = await convergeGateways(gateways, ctx, { fresh: () => Date.now() - snap.readAt <= RENEW_WITHIN_MS, notAfterMs: snap.readAt + this.timing.startByMs });
    failures.push(...gw.failures);
    if (gateways.length > 0 && Date.now() - snap.readAt > this.timing.landByMs) {
      // Inside exclusive(): the drop's own effects run right after this pass (C5).
      void this.landedLate(snap, 'a pass');
      return [...failures, 'the pass landed late: everything dropped'];
    }
    if (!plan.duties.gateways) this.confirmedAt = undefined;
    else if (Date.now() - snap.readAt <= this.timing.lifetimeS * 1000) this.noteConfirmed(snap.readAt);
    if (plan.duties.dhcp) {
      const wanted = desiredDhcp(networks, gateways);
      const nowS = Math.floor(Date.now() / 1000);
      const leasesOf = async (vni: number) => activeLeases([...(await readZkLeases(this.m.store, this.m.paths, vni)).values()].map((x) => x.lease), nowS);
      failures.push(...(await convergeDhcp(wanted, leasesOf, ctx, new Set(gw.created))));
      for (const w of wanted) {
        try {
          const n = await syncLeases(this.m.store, this.m.paths, w.vni, this.o.effects.dhcp.readLeases(w.vni), this.m.node, () => new Date().toISOString(), nowS);
          if (n > 0) this.m.log.info({ vni: w.vni, changes: n }, 'primary: leases written to ZooKeeper');
        } catch (error) {
          failures.push(`leases of ${w.vni}: ${(error as Error).message}`);
        }
      }
    }
    return failures;
  }

  /** One CAS on the record from the snapshot the plan saw, with the lock op in the same multi (P6). */
  private async writeStep(step: PlannedStep, snap: Snapshot): Promise<boolean> {
    const lockPath = this.m.paths.primaryLock;
    const withOps: Op[] = [];
    if (step.lock && 'create' in step.lock) withOps.push({ op: 'create', path: lockPath, data: encodePrimaryLock(step.lock.create), mode: 'ephemeral' });
    if (step.lock && 'delete' in step.lock && snap.lockVersion !== null) withOps.push({ op: 'delete', path: lockPath, version: snap.lockVersion });
    let reads = 0;
    try {
      await compareAndSet(this.m.store, this.m.paths.primary, {
        what: 'the primary record',
        read: async () => {
          // The step was planned from this snapshot: a lost race means look again, not edit again.
          if (reads++ > 0) throw new StaleRecord('the record changed');
          return { value: snap.record ?? step.record, version: snap.recordVersion };
        },
        encode: encodePrimaryRecord,
        edit: () => step.record,
        with: withOps,
      });
    } catch (error) {
      if (error instanceof StaleRecord || error instanceof TransactionError || error instanceof NodeExistsError || error instanceof VersionConflictError || error instanceof NoNodeError) {
        this.m.log.debug({ step: step.kind, err: error }, 'primary: step lost a race; looking again');
        return false;
      }
      this.m.log.warn({ step: step.kind, err: error }, 'primary: step not written');
      return false;
    }
    this.m.log.info({ step: step.kind, phase: step.record.phase, primary: step.record.node, term: step.record.term }, `primary: ${step.message}`);
    this.o.onAction?.(`${this.m.node} primary ${step.kind}: ${step.message}`);
    return true;
  }

  private noteRole(f: PrimaryFacts, plan: PrimaryPlan): void {
    const role = `${plan.duties.gateways ? 'gateways' : '-'}/${plan.duties.dhcp ? 'dhcp' : '-'}`;
    if (role === this.lastRole) return;
    this.lastRole = role;
    this.m.log.info({ role, record: f.record ? { node: f.record.node, phase: f.record.phase, term: f.record.term } : null }, 'primary: duties changed');
  }

  /** C4: a primary that stops hands over first, when another coordinator can take the role (the plan's autoTarget). */
  private async handOverBeforeStop(): Promise<void> {
    const startedAt = Date.now();
    const deadline = startedAt + this.barrierMs + 1_000;
    const primaryNow = async (): Promise<Snapshot | undefined> => {
      try {
        return await this.read();
      } catch {
        return undefined;
      }
    };
    let snap = await primaryNow();
    // Nobody to hand over to: the record stays, the session's end frees the lock.
    if (snap?.record?.node !== this.m.node || this.m.store.connectionState !== 'connected' || autoTarget(this.facts(snap)) === undefined) return;
    this.queue.add(KEY);
    while (Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      snap = await primaryNow();
      const r = snap?.record;
      if (!r || r.node !== this.m.node) return;
      // Rolled back (the target went away or is stopping too): the session's end frees the lock.
      if (r.phase === 'primary' && r.last?.result === 'rolledBack' && Date.parse(r.last.at) >= startedAt) return;
    }
    this.m.log.warn({ record: snap?.record }, 'primary: the hand-over before stopping did not finish in time');
  }

  private async planLines(): Promise<string[]> {
    const snap = await this.read();
    const plan = planPrimary(this.facts(snap));
    const lines: string[] = [];
    if (plan.step) lines.push(`${this.m.node} primary ${plan.step.kind}: ${plan.step.message}`);
    const observed = await this.o.effects.observeGateways().catch(() => []);
    const gateways = plan.duties.gateways ? desiredGateways(this.networkViews(), this.m.node) : [];
    for (const g of gateways) if (!observed.some((o) => o.name === g.device)) lines.push(`${this.m.node} primary add gateway ${g.address}/${g.prefixLength} on ${g.device}`);
    for (const o of observed) if (!gateways.some((g) => g.device === o.name)) lines.push(`${this.m.node} primary remove gateway ${o.name}`);
    return lines;
  }
}
