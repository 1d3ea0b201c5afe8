// The primary coordinator's state machine (DESIGN §4 "Primary coordinator"), as pure functions of
// what a daemon read from ZooKeeper a moment ago: the record /config/primary, the lock
// /locks/primary (an ephemeral znode: it lives exactly as long as the primary's session), the
// coordinators and their nodes.
//
// INVARIANTS
//  P1  Only a node whose own live session owns the lock holds the gateways and runs DHCP in phase
//      primary; nobody else does, whatever the record says.
//  P2  A planned hand-over is make-before-break: the new primary (`to`) holds the gateways from
//      phase gateways on; the old one drops its gateways and DHCP before it writes phase dhcp and
//      gives up the lock in the same multi; the new one takes the lock (a multi with phase primary)
//      before it starts DHCP. So two nodes hold a gateway only in phases gateways and release.
//  P3  Each barrier has a timeout: a hand-over that stalls is rolled back by the side still
//      waiting (phase gateways: the old primary; phase release: the new one), never left half-done.
//  P4  Election: with the lock absent, an eligible coordinator claims it (create the ephemeral and
//      write the record in one multi; the loser's multi fails). Eligible: a coordinator, its daemon
//      alive and connected, its node ready, not stopping. The recorded node is left the first go
//      while it is eligible (it is coming back), for at most one barrier.
//  P5  A disconnected daemon holds nothing new: no claim, no step, no new gateway.
//  P6  Every step's record is a whole new value; the executor writes it with the version read.
import type { PrimaryLock, PrimaryOutcome, PrimaryRecord, PrimaryStep as RecordStep } from '../../schemas/index.ts';

export interface NodeFacts {
  /** A daemon of the node holds a session (its alive znode exists). */
  alive: boolean;
  /** The node's spec asks for ready (not flushed). */
  ready: boolean;
}

export interface PrimaryFacts {
  me: string;
  /** This daemon's ZooKeeper session id. */
  mySession: string;
  connected: boolean;
  /** This daemon is stopping cleanly: it hands the role over first. */
  stopping: boolean;
  coordinators: readonly string[];
  nodes: ReadonlyMap<string, NodeFacts>;
  record: PrimaryRecord | null;
  /** The lock's value and the session owning it; null when absent. */
  lock: (PrimaryLock & { session: string | null }) | null;
  /** For how long this daemon has seen the lock absent (0 when present). */
  lockAbsentForMs: number;
  /** Milliseconds since the epoch. */
  now: number;
  barrierMs: number;
}

export interface Duties {
  /** Hold every managed network's gateway address (and announce it when added). */
  gateways: boolean;
  /** Run the DHCP/DNS servers. */
  dhcp: boolean;
}

export type StepKind = 'claim' | 'begin' | 'refuse' | 'ack' | 'release' | 'finish' | 'rollback';

export interface PlannedStep {
  kind: StepKind;
  /** The record to write (compare-and-set on the version read; created when none was read). */
  record: PrimaryRecord;
  /** claim/finish: create the lock (ephemeral) in the same multi; release: delete it there. */
  lock?: { create: PrimaryLock } | { delete: true };
  /** Run the step before or after bringing the duties to `duties`. */
  when: 'before' | 'after';
  /** One line for the log and `vk` (what and why). */
  message: string;
}

export interface PrimaryPlan {
  duties: Duties;
  step?: PlannedStep;
  /** Look again after this long even if nothing changes (a barrier's timeout, the election wait). */
  lookAgainMs?: number;
}

const NONE: Duties = { gateways: false, dhcp: false };
const ALL: Duties = { gateways: true, dhcp: true };
const GATEWAYS: Duties = { gateways: true, dhcp: false };

const iso = (ms: number): string => new Date(ms).toISOString();

/** Whether `node` may be primary now (P4). */
export function eligible(f: PrimaryFacts, node: string): boolean {
  if (!f.coordinators.includes(node)) return false;
  const n = f.nodes.get(node);
  if (!n?.alive || !n.ready) return false;
  return node !== f.me || (f.connected && !f.stopping);
}

/** Why `node` may not be primary (for refusals and logs). */
export function ineligibility(f: PrimaryFacts, node: string): string {
  if (!f.coordinators.includes(node)) return `${node} is not a coordinator (cluster config coordinators: ${f.coordinators.join(', ') || 'none'})`;
  const n = f.nodes.get(node);
  if (!n?.alive) return `${node}'s daemon is not running`;
  if (!n.ready) return `${node} is flushed`;
  if (node === f.me && f.stopping) return `${node}'s daemon is stopping`;
  return `${node} is not connected to ZooKeeper`;
}

function ownsLock(f: PrimaryFacts): boolean {
  return f.connected && f.lock !== null && f.lock.node === f.me && f.lock.session === f.mySession;
}

function since(f: PrimaryFacts): number {
  const t = f.record ? Date.parse(f.record.since) : NaN;
  return Number.isFinite(t) ? t : 0;
}

function outcome(f: PrimaryFacts, result: PrimaryOutcome['result'], message: string, from: string | undefined, to: string | undefined, steps: RecordStep[]): PrimaryOutcome {
  return { result, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}), message, at: iso(f.now), steps };
}

/** The record as it is with these fields replaced (undefined removes a field). */
function next(r: PrimaryRecord, change: Partial<Record<keyof PrimaryRecord, unknown>>): PrimaryRecord {
  const out: Record<string, unknown> = { ...r, ...change };
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out as unknown as PrimaryRecord;
}

/** A coordinator other than `me` to hand over to when `me` must go (the config's order). */
export function autoTarget(f: PrimaryFacts): string | undefined {
  return f.coordinators.find((c) => c !== f.me && eligible(f, c));
}

/** What this daemon must hold and which step (if any) it must write now. */
export function planPrimary(f: PrimaryFacts): PrimaryPlan {
  const r = f.record;
  if (!f.connected) return { duties: NONE };
  if (f.lock === null) return planWithoutLock(f);
  if (r === null) return { duties: NONE };
  const age = f.now - since(f);
  const mine = ownsLock(f) && r.node === f.me;

  if (r.phase === 'primary') {
    if (!mine) return { duties: NONE };
    if (r.request) {
      const to = r.request.to;
      if (to === f.me) return { duties: ALL, step: refuse(f, r, to, `${to} is already primary`) };
      if (!eligible(f, to)) return { duties: ALL, step: refuse(f, r, to, `cannot hand over to ${to}: ${ineligibility(f, to)}`) };
      return { duties: ALL, step: begin(f, r, to, `hand-over to ${to} requested`) };
    }
    if (!eligible(f, f.me)) {
      const to = autoTarget(f);
      // With nobody to take over, a flushed or stopping primary keeps the role rather than leave none.
      if (to !== undefined) return { duties: ALL, step: begin(f, r, to, `${ineligibility(f, f.me)}: handing over to ${to}`) };
    }
    return { duties: ALL };
  }

  if (r.phase === 'gateways') {
    if (mine) {
      const to = r.to ?? '';
      if (!f.nodes.get(to)?.alive) return { duties: ALL, step: rollback(f, r, r.node, `${to}'s daemon went away during the hand-over`) };
      if (age > f.barrierMs) return { duties: ALL, step: rollback(f, r, r.node, `${to} did not take the gateways within ${f.barrierMs} ms`) };
      return { duties: ALL, lookAgainMs: f.barrierMs - age + 1 };
    }
    // A target that is stopping (or cut off) takes nothing: the primary rolls back at its barrier.
    if (r.to === f.me) return eligible(f, f.me) ? { duties: GATEWAYS, step: ack(f, r) } : { duties: NONE };
    return { duties: NONE };
  }

  if (r.phase === 'release') {
    if (mine) return { duties: NONE, step: release(f, r) };
    if (r.to === f.me) {
      // The old primary is alive but does not let go: give the role back rather than hold two gateways on.
      if (age > f.barrierMs && f.nodes.get(r.node)?.alive) return { duties: NONE, step: rollback(f, r, r.node, `${r.node} did not release within ${f.barrierMs} ms`) };
      return { duties: GATEWAYS, lookAgainMs: Math.max(1, f.barrierMs - age + 1) };
    }
    return { duties: NONE };
  }

  // Phase dhcp with the lock present: someone else took the role (or my old session still holds it).
  return { duties: NONE };
}

function planWithoutLock(f: PrimaryFacts): PrimaryPlan {
  const r = f.record;
  if (r?.phase === 'dhcp' && r.node === f.me) {
    // The new primary takes the lock, then starts DHCP (DHCP moves last).
    return { duties: GATEWAYS, step: finish(f, r) };
  }
  if (!eligible(f, f.me)) return { duties: NONE };
  if (r !== null && r.node !== f.me && eligible(f, r.node) && f.lockAbsentForMs <= f.barrierMs) {
    // The recorded node is alive and eligible: it is taking the lock back (P4).
    return { duties: NONE, lookAgainMs: f.barrierMs - f.lockAbsentForMs + 1 };
  }
  return { duties: NONE, step: claim(f, r) };
}

function step(kind: StepKind, record: PrimaryRecord, when: 'before' | 'after', message: string, lock?: PlannedStep['lock']): PlannedStep {
  return { kind, record, when, message, ...(lock ? { lock } : {}) };
}

/** A step that takes the lock with a new term: the record in phase primary, in the same multi. */
function takeLock(f: PrimaryFacts, kind: 'claim' | 'finish', term: number, message: string, last: PrimaryOutcome): PlannedStep {
  const record: PrimaryRecord = { node: f.me, phase: 'primary', since: iso(f.now), term, steps: [], last };
  return step(kind, record, 'before', message, { create: { node: f.me, term, since: iso(f.now) } });
}

function claim(f: PrimaryFacts, r: PrimaryRecord | null): PlannedStep {
  const term = (r?.term ?? 0) + 1;
  const from = r?.node;
  const why = r === null ? 'no primary yet' : from === f.me ? `${f.me} takes its role back` : `${from} holds no lock (${ineligibility(f, from!)})`;
  const message = `${f.me} becomes primary (term ${term}): ${why}`;
  return takeLock(f, 'claim', term, message, outcome(f, 'elected', message, from, f.me, []));
}

function addStep(r: PrimaryRecord, phase: RecordStep['phase'], node: string, now: number): RecordStep[] {
  return [...r.steps, { phase, node, at: iso(now) }].slice(-16);
}

function begin(f: PrimaryFacts, r: PrimaryRecord, to: string, why: string): PlannedStep {
  const record = next(r, { phase: 'gateways', to, since: iso(f.now), request: undefined, steps: [{ phase: 'gateways', node: f.me, at: iso(f.now) }] });
  return step('begin', record, 'before', `${why}: ${to} adds the gateways`);
}

function refuse(f: PrimaryFacts, r: PrimaryRecord, to: string, message: string): PlannedStep {
  return step('refuse', next(r, { request: undefined, last: outcome(f, 'refused', message, r.node, to, []) }), 'before', message);
}

function ack(f: PrimaryFacts, r: PrimaryRecord): PlannedStep {
  const record = next(r, { phase: 'release', since: iso(f.now), steps: addStep(r, 'release', f.me, f.now) });
  return step('ack', record, 'after', `${f.me} holds and announced the gateways: ${r.node} releases them`);
}

function release(f: PrimaryFacts, r: PrimaryRecord): PlannedStep {
  const to = r.to ?? r.node;
  const record = next(r, { node: to, phase: 'dhcp', from: f.me, to: undefined, since: iso(f.now), steps: addStep(r, 'dhcp', f.me, f.now) });
  return step('release', record, 'after', `${f.me} dropped its gateways and DHCP: ${to} takes the lock and starts DHCP`, { delete: true });
}

function finish(f: PrimaryFacts, r: PrimaryRecord): PlannedStep {
  const term = r.term + 1;
  const message = `${f.me} is primary (term ${term}), handed over from ${r.from ?? 'unknown'}`;
  return takeLock(f, 'finish', term, message, outcome(f, 'completed', message, r.from, f.me, addStep(r, 'primary', f.me, f.now)));
}

function rollback(f: PrimaryFacts, r: PrimaryRecord, primary: string, why: string): PlannedStep {
  const message = `hand-over ${r.node} → ${r.to ?? '?'} rolled back: ${why}`;
  const record = next(r, {
    node: primary,
    phase: 'primary',
    since: iso(f.now),
    to: undefined,
    from: undefined,
    steps: [],
    last: outcome(f, 'rolledBack', message, r.node, r.to, r.steps),
  });
  return step('rollback', record, 'before', message);
}
