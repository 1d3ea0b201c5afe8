// The domain reconciler's decision, as a pure function of what is wanted and what is seen.
//
// The node named in spec.node converges the domain: define it from the XML,
// start it, stop it (graceful with a timeout, or forced), restart it once per
// new spec.restartedAt, disable it. A domain that dies while it should run is
// started again, with a back-off so a crashing guest never loops hot. Any
// other node that finds the domain (and is not part of a migration of it)
// destroys and undefines it — except the VM's owner (status.node) running it
// while spec.node names another node: that is a migration (reconcilers/
// migration.ts), and the new home waits until the owner hands the guest over.
// Status is written only when something other than its timestamps changed, so
// a converged cluster makes no writes.
//
// Ownership (a VM never runs on two nodes):
// - A node starts a VM only while the status holds it for that node (statusHoldsGuest). It wins
//   a VM no one holds with a claim: a compare-and-set of the status it read.
// - A VM at rest on its node (Stopped, Disabled) stays held there: the node writes its session's
//   id as `reservedBy` with that status (never in a write of its own: sameStatus ignores it), by
//   the same compare-and-set. No other node claims a
//   reserved VM; the node releases it when spec.node moves away (or recovery does, once the node
//   is fenced). So the session that reserved it may start it with no claim round trip — but only
//   while ZooKeeper has proven that session alive recently (observed.session.proven): a daemon
//   frozen past its session's end claims first, and that claim fails.
import { isActive, type LocalDomain } from '../../drivers/domain-run-state.ts';
import { guestOccupies, statusHoldsGuest } from '../vm-holding.ts';
import { jsonEqual } from '../json-equal.ts';
import type { RbdGate } from '../rbd-readiness.ts';
import { migrationInFlight, type Condition, type MigrationRecord, type VmSpec, type VmStatus } from '../../schemas/index.ts';

export { statusHoldsGuest };

export interface DomainDesired {
  spec: VmSpec;
  /** The spec znode's version: the object's generation. */
  generation: number;
  xml: string;
  xmlHash: string;
  /**
   * Set when the XML znode is missing or unreadable: nothing is defined or started from it, the
   * VM can still be stopped (that needs no XML), and the status says why (condition InvalidXml).
   */
  xmlProblem?: string;
  /**
   * Set when a network the VM's XML plugs into is not ready on this node (the network concern's
   * status): the VM is not started here, and a guest that runs keeps running. Condition NetworkNotReady.
   */
  networksNotReady?: string;
  /**
   * The RBD concern's verdict on the VM's images here (reconcilers/rbd-readiness.ts), when it has
   * RBD disks and the concern runs on this node. Pending: no start and no status write (the check
   * comes back through the informer); blocked: no start, condition named by the reason
   * (RbdLockHeld, RbdUnreachable, …).
   */
  rbd?: RbdGate;
}

export interface DomainObserved {
  /** The node this planner runs for. */
  node: string;
  /** The domain of that name in the local libvirt, or null. */
  domain: LocalDomain | null;
  status: { value: VmStatus; version: number } | null;
  migration: MigrationRecord | null;
  /** ISO time, passed in to keep the planner pure. */
  now: string;
  /**
   * This daemon's ZooKeeper session: its id, and whether a request of it was answered recently
   * enough that the session surely lives. Absent (`vk plan`, unit tests): nothing is reserved, and
   * a start on a status held here needs no claim, as before reservations.
   */
  session?: { id: string; proven: boolean };
}

export type DomainAction =
  | { kind: 'define'; xml: string; xmlHash: string; why: 'missing' | 'xmlChanged' }
  /** Win the VM before starting it: a compare-and-set of the status this plan read (null: create). */
  | { kind: 'claim'; status: VmStatus; version: number | null }
  | { kind: 'start' }
  | { kind: 'shutdown'; timeoutMs: number }
  /** With `stray`: a running copy this node does not own, destroyed only once a fresh read confirms it. */
  | { kind: 'destroy'; stray?: { owner: string | null } }
  | { kind: 'undefine' }
  | { kind: 'wait'; ms: number; why: string }
  | { kind: 'writeStatus'; status: VmStatus; version: number | null }
  /** The guest runs here, this node owns it and its spec names another node: the migration reconciler moves it. */
  | { kind: 'migrate'; target: string };

/** The condition of a VM that is not started on its node because a network it uses is not ready there. */
export const NETWORK_NOT_READY = 'NetworkNotReady';

/** The condition a node puts on the status when it destroyed a running copy it did not own. */
export const STRAY_CONDITION = 'StrayDomainDestroyed';

/**
 * Crash back-off: the first death is restarted at once, then 1 s doubling to
 * 5 min; the streak is forgotten after 10 min without a death.
 */
export const CRASH_BACKOFF = { baseMs: 1_000, maxMs: 300_000, resetAfterMs: 600_000 } as const;

export function crashBackoffMs(streak: number): number {
  if (streak <= 1) return 0;
  return Math.min(CRASH_BACKOFF.maxMs, CRASH_BACKOFF.baseMs * 2 ** Math.min(streak - 2, 30));
}

export function planDomain(name: string, desired: DomainDesired | undefined, observed: DomainObserved): DomainAction[] {
  const { node, domain } = observed;

  if (migrationInFlight(observed.migration, node)) return [];

  // The owner is the node whose status last said where the guest is (status.node).
  const owner = observed.status?.value.node;
  if (desired && desired.spec.node !== node && owner === node && desired.spec.state === 'running' && isActive(domain)) {
    return [{ kind: 'migrate', target: desired.spec.node }];
  }

  const held = observed.status?.value ?? null;
  const holder = held && statusHoldsGuest(held) ? held.node : null;

  // Deleted VM, or a VM homed elsewhere: nothing of it may remain here.
  if (!desired || desired.spec.node !== node) {
    const actions: DomainAction[] = [];
    // A copy this node does not own is a stray; our own guest of a deleted or stopped VM is just stopped.
    if (isActive(domain)) actions.push(desired && owner !== node ? { kind: 'destroy', stray: { owner: holder } } : { kind: 'destroy' });
    if (domain?.persistent) actions.push({ kind: 'undefine' });
    // This node owned it: say the guest no longer runs here, so its new home may start it.
    if (desired && owner === node && statusHoldsGuest(observed.status!.value)) {
      actions.push({ kind: 'writeStatus', status: releasedStatus(observed.status!.value, desired, node, observed.now), version: observed.status!.version });
    }
    return actions;
  }

  // Homed here, but the guest may still run on its previous owner: that node hands it over (a
  // migration, or a released status) and the status change brings us back. Never start a second
  // copy — and a copy running here anyway (a restarted daemon's leftover, a manual start) goes.
  if (holder !== null && holder !== node) return isActive(domain) ? [{ kind: 'destroy', stray: { owner: holder } }] : [];

  const { spec } = desired;
  const previous = observed.status?.value ?? null;
  const actions: DomainAction[] = [];
  const active = isActive(domain);
  let willRun = active;
  let restartPending = hasTrueCondition(previous, 'RestartPending') && active;
  let honouredRestart = previous?.restartedAt;
  let crash = previous?.crash;

  const xmlProblem = desired.xmlProblem;
  if (xmlProblem !== undefined) {
    // Nothing to define from; a guest that runs keeps running, one that does not cannot start.
  } else if (domain === null || !domain.persistent) {
    actions.push({ kind: 'define', xml: desired.xml, xmlHash: desired.xmlHash, why: 'missing' });
  } else if (previous?.xmlHash !== desired.xmlHash) {
    actions.push({ kind: 'define', xml: desired.xml, xmlHash: desired.xmlHash, why: 'xmlChanged' });
    if (active) restartPending = true;
  }

  if (spec.state === 'running') {
    const restartAsked = spec.restartedAt !== undefined && spec.restartedAt !== previous?.restartedAt;
    if (active && restartAsked) {
      actions.push(stopAction(spec, previous), { kind: 'start' });
      restartPending = false;
      honouredRestart = spec.restartedAt;
    } else if (!active && xmlProblem !== undefined) {
      willRun = false;
    } else if (!active && desired.networksNotReady !== undefined) {
      willRun = false;
    } else if (!active && desired.rbd?.kind === 'pending') {
      // The RBD concern has not checked this start yet: decide nothing (its check brings us back).
      return [];
    } else if (!active && desired.rbd?.kind === 'blocked') {
      willRun = false;
    } else if (!active) {
      // Died while it should run (the last status said Running): count it, and back off from the second death on.
      if (previous?.phase === 'Running' && previous.node === node) crash = nextCrash(crash, observed.now);
      const delay = crash ? remainingBackoffMs(crash, observed.now) : 0;
      if (delay > 0) {
        actions.push({ kind: 'wait', ms: delay, why: `died ${crash!.count} times in a row` });
        willRun = false;
      } else {
        actions.push({ kind: 'start' });
        willRun = true;
      }
      restartPending = false;
      if (restartAsked) honouredRestart = spec.restartedAt;
    } else if (crash && crashStreakExpired(crash, observed.now)) {
      crash = undefined;
    }
  } else {
    if (active) actions.push(stopAction(spec, previous));
    willRun = false;
    restartPending = false;
    crash = undefined;
  }

  const status = nextStatus({
    node,
    desired,
    previous,
    willRun,
    waiting: actions.some((a) => a.kind === 'wait'),
    restartPending,
    restartedAt: honouredRestart,
    crash,
    xmlProblem,
    networksNotReady: desired.networksNotReady,
    rbdBlocked: desired.rbd?.kind === 'blocked' ? desired.rbd : undefined,
    session: observed.session?.id,
    now: observed.now,
  });
  const version = observed.status?.version ?? null;
  // Win the VM before starting it, unless the status already holds it for this node.
  if (actions.some((a) => a.kind === 'start') && !holdsForThisSession(previous, node, observed.session)) {
    actions.unshift({ kind: 'claim', status: claimStatus(status, previous, domain, observed.now), version });
  }
  if (!previous || !sameStatus(previous, status)) actions.push({ kind: 'writeStatus', status, version });
  return actions;
}

/** What a node writes to win the VM: phase Starting on this node, the domain as it is now. */
function claimStatus(planned: VmStatus, previous: VmStatus | null, domain: LocalDomain | null, now: string): VmStatus {
  const { domainState: _planned, xmlHash: _hash, ...rest } = planned;
  const claim: VmStatus = {
    ...rest,
    phase: 'Starting',
    conditions: [
      condition(previous, 'Running', 'False', 'Starting', `starting on ${planned.node}`, now),
      ...planned.conditions.filter((c) => c.type !== 'Running'),
    ],
  };
  if (domain) claim.domainState = domain.state;
  if (previous?.xmlHash !== undefined) claim.xmlHash = previous.xmlHash;
  return claim;
}

/**
 * What an unreadable spec still tells: its `state` and `node` when the text is JSON with those
 * fields as strings. Enough to stop a VM whose spec says it must not run, and to know whose status
 * reports the problem; never enough to start anything.
 */
export function peekSpec(raw: string): { state?: string; node?: string } {
  try {
    const value = JSON.parse(raw) as unknown;
    if (typeof value !== 'object' || value === null) return {};
    const { state, node } = value as Record<string, unknown>;
    return { ...(typeof state === 'string' && { state }), ...(typeof node === 'string' && { node }) };
  } catch {
    return {};
  }
}

/** A VM whose spec cannot be read: only a stop is decided, and only when the text says stopped or disabled. */
export function planUnreadableSpec(raw: string, domain: LocalDomain | null): DomainAction[] {
  const { state } = peekSpec(raw);
  return (state === 'stopped' || state === 'disabled') && isActive(domain) ? [{ kind: 'destroy' }] : [];
}

/** This node may start the VM without claiming it: the status holds it here, for a session proven alive. */
function holdsForThisSession(previous: VmStatus | null, node: string, session: DomainObserved['session']): boolean {
  if (!previous || previous.node !== node) return false;
  if (!session) return guestOccupies(previous);
  // A reservation counts only for the session that wrote it: a restarted daemon claims again.
  return session.proven && (guestOccupies(previous) || previous.reservedBy === session.id);
}

/** What the former owner writes once nothing of the guest runs there any more. */
function releasedStatus(previous: VmStatus, desired: DomainDesired, node: string, now: string): VmStatus {
  const { spec } = desired;
  const { crash: _crash, reservedBy: _reserved, ...rest } = previous;
  const phase: VmStatus['phase'] = spec.state === 'disabled' ? 'Disabled' : spec.state === 'stopped' ? 'Stopped' : 'Pending';
  const message = `no longer runs on ${node}; ${spec.node} takes over`;
  const conditions = [condition(previous, 'Running', 'False', 'MovedAway', message, now), ...previous.conditions.filter((c) => c.type !== 'Running')];
  return { ...rest, phase, node, domainState: 'shutoff', conditions, updatedAt: now };
}

/** A forced stop: the standing stopMode, or a `vk vm stop` request this node has not honoured yet. */
function forcedStop(spec: VmSpec, previous: VmStatus | null): boolean {
  return spec.stopMode === 'force' || (spec.forceStopAt !== undefined && spec.forceStopAt !== previous?.forceStopAt);
}

function stopAction(spec: VmSpec, previous: VmStatus | null): DomainAction {
  return forcedStop(spec, previous) ? { kind: 'destroy' } : { kind: 'shutdown', timeoutMs: spec.shutdownTimeoutMs };
}

type Crash = NonNullable<VmStatus['crash']>;

function nextCrash(crash: Crash | undefined, now: string): Crash {
  if (!crash || crashStreakExpired(crash, now)) return { count: 1, lastAt: now };
  return { count: crash.count + 1, lastAt: now };
}

function crashStreakExpired(crash: Crash, now: string): boolean {
  return Date.parse(now) - Date.parse(crash.lastAt) > CRASH_BACKOFF.resetAfterMs;
}

function remainingBackoffMs(crash: Crash, now: string): number {
  const until = Date.parse(crash.lastAt) + crashBackoffMs(crash.count);
  return Math.max(0, until - Date.parse(now));
}

function hasTrueCondition(status: VmStatus | null, type: string): boolean {
  return status?.conditions.some((c) => c.type === type && c.status === 'True') ?? false;
}

interface StatusInputs {
  node: string;
  desired: DomainDesired;
  previous: VmStatus | null;
  willRun: boolean;
  waiting: boolean;
  restartPending: boolean;
  restartedAt: string | undefined;
  crash: Crash | undefined;
  xmlProblem: string | undefined;
  networksNotReady: string | undefined;
  rbdBlocked: { reason: string; message: string } | undefined;
  /** This daemon's session id, written as the reservation of a VM at rest here. */
  session: string | undefined;
  now: string;
}

function nextStatus(i: StatusInputs): VmStatus {
  const { spec } = i.desired;
  const phase: VmStatus['phase'] =
    spec.state === 'disabled' ? 'Disabled' : spec.state === 'stopped' ? 'Stopped' : i.willRun ? 'Running' : 'Pending';
  const conditions: Condition[] = [];
  const keep = (type: string, status: Condition['status'], reason: string, message: string) =>
    conditions.push(condition(i.previous, type, status, reason, message, i.now));
  const blocked = !i.willRun && spec.state === 'running' && i.xmlProblem !== undefined;
  const noNetwork = !i.willRun && spec.state === 'running' && !blocked && i.networksNotReady !== undefined;
  const noRbd = !i.willRun && spec.state === 'running' && !blocked && !noNetwork && i.rbdBlocked !== undefined ? i.rbdBlocked : undefined;
  keep(
    'Running',
    i.willRun ? 'True' : 'False',
    i.willRun
      ? 'DomainRunning'
      : i.waiting
        ? 'CrashBackoff'
        : blocked
          ? 'InvalidXml'
          : noNetwork
            ? NETWORK_NOT_READY
            : noRbd
              ? noRbd.reason
              : spec.state === 'running'
                ? 'Starting'
                : 'StoppedBySpec',
    i.willRun
      ? `running on ${i.node}`
      : i.waiting
        ? `waiting before the next start`
        : blocked
          ? 'cannot start without a valid domain XML'
          : noNetwork
            ? `waiting for its networks on ${i.node}`
            : noRbd
              ? `not started on ${i.node}: ${noRbd.message}`
              : `desired state is ${spec.state}`,
  );
  if (i.xmlProblem !== undefined) keep('InvalidXml', 'True', 'InvalidXml', i.xmlProblem);
  if (noNetwork) keep(NETWORK_NOT_READY, 'True', NETWORK_NOT_READY, i.networksNotReady!);
  if (noRbd) keep(noRbd.reason, 'True', noRbd.reason, noRbd.message);
  if (i.restartPending) keep('RestartPending', 'True', 'XmlChanged', 'the domain XML changed; it takes effect at the next start');
  // The migration reconciler's conditions (Migrating, MigrationAborted) ride along unchanged.
  // So does the note of the last stray copy another node destroyed.
  for (const c of i.previous?.conditions ?? []) if (c.type === 'Migrating' || c.type.startsWith('Migration') || c.type === STRAY_CONDITION) conditions.push(c);
  const status: VmStatus = {
    phase,
    node: i.node,
    observedGeneration: i.desired.generation,
    domainState: i.willRun ? 'running' : 'shutoff',
    conditions,
    updatedAt: i.now,
  };
  // Without a readable XML nothing was defined from it: the hash stays that of the last definition.
  const xmlHash = i.xmlProblem === undefined ? i.desired.xmlHash : i.previous?.xmlHash;
  if (xmlHash !== undefined) status.xmlHash = xmlHash;
  if (i.restartedAt !== undefined) status.restartedAt = i.restartedAt;
  // A forced-stop request counts once: honoured by the stop it asked for, or overtaken by anything after it.
  if (spec.forceStopAt !== undefined) status.forceStopAt = spec.forceStopAt;
  if (i.crash !== undefined) status.crash = i.crash;
  if (i.session !== undefined && (phase === 'Stopped' || phase === 'Disabled')) status.reservedBy = i.session;
  return status;
}

/** A condition keeps its lastTransitionTime while its status is unchanged. */
function condition(
  previous: VmStatus | null,
  type: string,
  status: Condition['status'],
  reason: string,
  message: string,
  now: string,
): Condition {
  const before = previous?.conditions.find((c) => c.type === type);
  const lastTransitionTime = before && before.status === status ? before.lastTransitionTime : now;
  return { type, status, reason, message, lastTransitionTime };
}

/** Equal but for updatedAt: nothing worth a write. */
export function sameStatus(a: VmStatus, b: VmStatus): boolean {
  // As their canonical encodings would compare (field order cannot make equal statuses differ),
  // without encoding: the planner asks this on every reconcile. The status schema has no
  // transforms and conditions always present, so the two agree (test/reconcilers/domain.test.ts).
  // A reservation is never worth a write of its own: it rides on the status writes that happen
  // anyway (a stop), so a restarted daemon writes nothing for a VM at rest. Until then a start
  // of it claims, as a start did before reservations.
  const { reservedBy: _a, ...restA } = a;
  const { reservedBy: _b, ...restB } = b;
  return jsonEqual({ ...restA, updatedAt: b.updatedAt }, restB);
}

/**
 * The status to record when an action failed: the planned one with a failure condition carrying
 * libvirt's message. A condition that already said the same keeps its lastTransitionTime, so a
 * failure repeated at every back-off retry encodes the same and is not written again.
 */
export function failedStatus(
  planned: VmStatus,
  action: DomainAction,
  reason: string,
  message: string,
  now: string,
  previous: VmStatus | null,
  /** libvirt's state of the domain after the failure; undefined when there is no domain. */
  domainState: string | undefined,
): VmStatus {
  const type = action.kind === 'start' ? 'StartFailed' : action.kind === 'define' ? 'DefineFailed' : 'ActionFailed';
  const others = planned.conditions.filter((c) => c.type !== 'Running' && c.type !== type);
  const since = (t: string, status: Condition['status']): string => {
    const before = previous?.conditions.find((c) => c.type === t);
    return before && before.status === status && before.reason === reason && before.message === message ? before.lastTransitionTime : now;
  };
  const { domainState: _planned, ...rest } = planned;
  return {
    ...rest,
    phase: 'Failed',
    ...(domainState !== undefined && { domainState }),
    conditions: [
      { type: 'Running', status: 'False', reason, message, lastTransitionTime: since('Running', 'False') },
      ...others,
      { type, status: 'True', reason, message, lastTransitionTime: since(type, 'True') },
    ],
    updatedAt: now,
  };
}

/** One line per action, as `vk plan` and dry-run print them. */
export function describeDomainAction(node: string, vm: string, action: DomainAction): string {
  switch (action.kind) {
    case 'define':
      return `${node} ${vm} define (${action.why === 'missing' ? 'not defined here' : 'XML changed'})`;
    case 'claim':
      return `${node} ${vm} claim (status ${action.status.phase} on ${node}, generation ${action.status.observedGeneration})`;
    case 'start':
      return `${node} ${vm} start`;
    case 'shutdown':
      return `${node} ${vm} shutdown (graceful, destroy after ${Math.round(action.timeoutMs / 1000)}s)`;
    case 'destroy':
      return action.stray ? `${node} ${vm} destroy (a stray copy: ${action.stray.owner ? `${action.stray.owner} owns the VM` : 'no node owns the VM'})` : `${node} ${vm} destroy`;
    case 'undefine':
      return `${node} ${vm} undefine`;
    case 'wait':
      return `${node} ${vm} wait ${action.ms}ms (${action.why})`;
    case 'writeStatus':
      return `${node} ${vm} status ${action.status.phase} (generation ${action.status.observedGeneration})`;
    case 'migrate':
      return `${node} ${vm} migrate to ${action.target}`;
  }
}
