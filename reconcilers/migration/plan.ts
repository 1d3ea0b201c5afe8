// The migration reconciler's decision: a pure function from what one node sees to the one next
// step of a lockstep migration (seed 004; DESIGN.md §4 "Migration").
//
// Roles. The *source* is the node that owns the VM (status.node) and runs its guest; it starts a
// migration when spec.node names another node, and drives it. The *target* is the node the record
// names; it prepares and acknowledges, and confirms aborts. Every other node stays out of it.
//
// The record /vms/<name>/migration, every write a compare-and-set:
//
//   source: requested ──(target: prepared)──► copying (live) ──► done      (+ status handed over)
//                                          └► switching (shutdown) ──► done (+ status released)
//           any phase before done ──► aborted | failed   (retarget before the copy, timeouts)
//           copying ──(spec.node changed, target gone)──► ABORT_JOB ──► aborting ──(target: aborted)
//   target: requested ──► prepared | failed (refused: libvirtd down, stale active domain, bridges)
//           aborting ──► aborted (after making sure nothing of the VM runs there)
//
// Each phase is a barrier with ClusterConfig migration.phaseTimeoutMs, and every step is
// idempotent: a restarted daemon re-plans from the record, its libvirt job and where the guest is.
import type { Condition, MigrationConfig, MigrationHistoryEntry, MigrationMethod, MigrationRecord, VmMigrationMethod, VmSpec, VmStatus } from '../../schemas/index.ts';
import { MIGRATION_HISTORY_MAX } from '../../schemas/index.ts';
import { isActive, type LocalDomain } from '../../drivers/domain-run-state.ts';
import type { RbdGate } from '../rbd-readiness.ts';

export type MigrationPhase = MigrationRecord['phase'];
const TERMINAL: ReadonlySet<MigrationPhase> = new Set(['done', 'aborted', 'failed']);

export function isTerminal(phase: MigrationPhase): boolean {
  return TERMINAL.has(phase);
}

/** What a node publishes in its alive znode, as the source needs it. */
export interface PeerInfo {
  /** The ZooKeeper session holding the node's alive znode. */
  session: string;
  migration?: { uri: string; migrateUri: string };
}

/** The local libvirt job of the VM (looked up only when the planner needs it). */
export interface LocalJob {
  active: boolean;
  postcopy: boolean;
}

export interface MigrationInputs {
  /** The node this planner runs for. */
  node: string;
  vm: string;
  nowMs: number;
  /** This daemon's ZooKeeper session. */
  session: string;
  /** null when the VM was deleted. */
  spec: VmSpec | null;
  /** Bridges of the VM's interfaces (from its XML). */
  bridges: string[];
  status: { value: VmStatus; version: number } | null;
  record: { value: MigrationRecord; version: number } | null;
  domain: LocalDomain | null;
  /** The local job; undefined when not looked up, null when there is no domain. */
  job?: LocalJob | null;
  /** Nodes whose daemon holds a session now. */
  peers: ReadonlyMap<string, PeerInfo>;
  /** How long this node has seen the record's source session gone (0: not orphaned). */
  orphanForMs: number;
  /** Migrations leaving this node now, other than this VM's. */
  outgoing: number;
  /** Migrations this node has acknowledged as target and that are still in flight, other than this VM's. */
  incoming: number;
  config: MigrationConfig;
  /**
   * When the RBD concern runs here and the VM has RBD disks: its verdict on receiving this
   * migration (reconcilers/rbd-readiness.ts). The source's own locks never block it: both QEMUs
   * share the images during a live migration.
   */
  rbd?: RbdGate;
}

export type MigrationStep =
  | { kind: 'none' }
  /** Look again in `ms` (a barrier not reached yet, a limit, a back-off). */
  | { kind: 'wait'; ms: number; reason: string; message: string }
  /** Source: write a fresh record over a terminal one (version) or create it (null). */
  | { kind: 'request'; record: MigrationRecord; version: number | null }
  /** Source: the record was written by an earlier session of this node: claim it, then re-plan. */
  | { kind: 'adopt' }
  /** End the record without libvirt work. */
  | { kind: 'end'; phase: 'aborted' | 'failed'; reason: string; message: string }
  /** Source: re-check spec.node, write copying, run the peer-to-peer live migration. */
  | { kind: 'copy'; destUri: string; migrateUri: string; maxDowntimeMs: number }
  /** Source: a libvirt job runs that this process did not start (restart): follow it to its end. */
  | { kind: 'follow'; abort: boolean }
  /** Source: shut the guest down (graceful with timeout, or forced) and release it to the target. */
  | { kind: 'shutdownMove'; timeoutMs: number; force: boolean }
  /** Source: the guest left (libvirt undefined it here): write done and hand the status over. */
  | { kind: 'complete' }
  /** Target: check and clean up, then acknowledge (prepared) or refuse (failed). */
  | { kind: 'prepare'; bridges: string[] }
  /** Target: make sure nothing of the VM runs here, then write aborted. */
  | { kind: 'confirmAbort' }
  /** Target: the source is gone and the guest runs here: finish the record and take the status. */
  | { kind: 'takeOver' }
  /** Source: a record ended elsewhere (the target refused, timed out): the status says so. */
  | { kind: 'writeStatus'; status: VmStatus; version: number };

const NONE: MigrationStep = { kind: 'none' };

/** Retry back-off after a failed attempt: 2 s doubling to 60 s. */
export const RETRY_BACKOFF = { baseMs: 2_000, maxMs: 60_000 } as const;

export function retryDelayMs(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(RETRY_BACKOFF.maxMs, RETRY_BACKOFF.baseMs * 2 ** Math.min(failures - 1, 20));
}

/** The spec still wants the guest running on `target`. */
export function wantsOn(spec: VmSpec | null, target: string): boolean {
  return spec !== null && spec.state === 'running' && spec.node === target;
}

/** Why a migration to `target` is no longer wanted, for the abort's reason and message. */
export function changeReason(spec: VmSpec | null, record: MigrationRecord): { reason: string; message: string } {
  if (spec === null) return { reason: 'VmDeleted', message: `migration ${record.id} to ${record.target} aborted: the VM was deleted` };
  if (spec.state !== 'running') {
    return { reason: 'StateChanged', message: `migration ${record.id} to ${record.target} aborted: desired state is now ${spec.state}` };
  }
  const where = spec.node === record.source ? `${spec.node} (the source: the VM stays)` : spec.node;
  return { reason: 'TargetChanged', message: `migration ${record.id} to ${record.target} aborted: spec.node is now ${where}` };
}

/**
 * The method of the next attempt: meta.migrationMethod live or shutdown as given; default means
 * the cluster's default method, except right after a failed live attempt to the same target, which
 * falls back to shutdown (a fresh lockstep round, so a target that is down never gets the guest).
 */
export function chooseMethod(meta: VmMigrationMethod, clusterDefault: MigrationMethod, last: MigrationRecord | null, source: string, target: string): MigrationMethod {
  if (meta === 'live' || meta === 'shutdown') return meta;
  if (isLiveFailure(last, source, target)) return 'shutdown';
  return clusterDefault;
}

function isLiveFailure(last: MigrationRecord | null, source: string, target: string): boolean {
  return (
    last !== null &&
    last.phase === 'failed' &&
    last.method === 'live' &&
    last.reason === 'LiveMigrationFailed' &&
    last.source === source &&
    last.target === target
  );
}

/** Aborts asked for by the spec are not failures; everything else that did not finish is. */
function countsAsFailure(record: MigrationRecord): boolean {
  if (record.phase === 'failed') return true;
  if (record.phase === 'aborted') return !['TargetChanged', 'StateChanged', 'VmDeleted'].includes(record.reason ?? '');
  return false;
}

function since(record: MigrationRecord): number {
  return Date.parse(record.phaseSince ?? record.startedAt);
}

export function planMigration(i: MigrationInputs): MigrationStep {
  const record = i.record?.value ?? null;
  if (record && !isTerminal(record.phase)) {
    if (record.source === i.node) return planSource(i, record);
    if (record.target === i.node) return planTarget(i, record);
    return NONE;
  }
  return planStart(i, record);
}

function planStart(i: MigrationInputs, last: MigrationRecord | null): MigrationStep {
  const { spec, node } = i;
  const status = i.status;
  if (last && last.phase !== 'done' && status && status.value.node === node && hasTrue(status.value, 'Migrating')) {
    const now = new Date(i.nowMs).toISOString();
    const reason = last.reason ?? (last.phase === 'aborted' ? 'Aborted' : 'Failed');
    const message = last.message ?? `migration ${last.id} to ${last.target} ${last.phase}`;
    return { kind: 'writeStatus', status: notMigratedStatus(status.value, last, reason, message, last.phase === 'aborted', now), version: status.version };
  }
  if (!spec || spec.state !== 'running' || spec.node === node) return NONE;
  // Only the owner that runs the guest moves it; anything else is the domain reconciler's.
  if (i.status?.value.node !== node || !isActive(i.domain)) return NONE;
  const target = spec.node;
  let method = chooseMethod(spec.meta.migrationMethod, i.config.defaultMethod, last, node, target);
  const fallback = method === 'shutdown' && spec.meta.migrationMethod === 'default' && isLiveFailure(last, node, target);
  const sameRoute = last !== null && last.source === node && last.target === target;
  const failures = last && sameRoute && countsAsFailure(last) ? (last.failures ?? 0) + 1 : 0;
  if (last && failures > 0 && !fallback) {
    const ended = Date.parse(last.endedAt ?? last.phaseSince ?? last.startedAt);
    const left = ended + retryDelayMs(failures) - i.nowMs;
    if (left > 0) {
      return { kind: 'wait', ms: left, reason: 'RetryBackoff', message: `attempt ${failures + 1} to ${target} in ${left} ms (last: ${last.reason ?? last.phase})` };
    }
  }
  const peer = i.peers.get(target);
  if (!peer) return { kind: 'wait', ms: 5_000, reason: 'TargetUnavailable', message: `no daemon holds a session on ${target}` };
  // A target that takes no live migration makes live fail before it starts: only an explicit
  // `live` waits for one; otherwise the guest moves by shutdown.
  const liveImpossible = method === 'live' && !peer.migration;
  if (liveImpossible && spec.meta.migrationMethod === 'live') {
    return { kind: 'wait', ms: 5_000, reason: 'TargetNotMigratable', message: `${target} publishes no migration URI` };
  }
  if (liveImpossible) method = 'shutdown';
  if (i.outgoing >= i.config.maxOutgoing) {
    return { kind: 'wait', ms: 1_000, reason: 'OutgoingLimit', message: `${i.outgoing} migrations already leave ${node} (maxOutgoing ${i.config.maxOutgoing})` };
  }
  const now = new Date(i.nowMs).toISOString();
  const record: MigrationRecord = {
    id: recordId(now, node, target),
    source: node,
    target,
    method,
    phase: 'requested',
    startedAt: now,
    phaseSince: now,
    sourceSession: i.session,
  };
  if (fallback) {
    record.reason = 'FallbackToShutdown';
    record.message = `live migration to ${target} failed; migrating by shutdown`;
  } else if (liveImpossible) {
    record.reason = 'FallbackToShutdown';
    record.message = `${target} publishes no migration URI; migrating by shutdown`;
  }
  if (failures > 0) record.failures = failures;
  const history = historyAfter(last);
  if (history.length > 0) record.history = history;
  return { kind: 'request', record, version: i.record?.version ?? null };
}

function recordId(now: string, source: string, target: string): string {
  return `${now}.${source}.${target}`.slice(0, 128);
}

/** The history a new record carries: the old one's, plus the old attempt itself. */
export function historyAfter(last: MigrationRecord | null): MigrationHistoryEntry[] {
  if (!last) return [];
  const entry: MigrationHistoryEntry = {
    id: last.id,
    target: last.target,
    method: last.method,
    phase: last.phase as MigrationHistoryEntry['phase'],
    endedAt: last.endedAt ?? last.phaseSince ?? last.startedAt,
  };
  if (last.reason !== undefined) entry.reason = last.reason;
  if (last.message !== undefined) entry.message = last.message;
  return [...(last.history ?? []), entry].slice(-MIGRATION_HISTORY_MAX);
}

function planSource(i: MigrationInputs, record: MigrationRecord): MigrationStep {
  // Written by an earlier session of this node (a restart, an expired session): claim it first,
  // so the target stops treating it as orphaned.
  if (record.sourceSession !== i.session) return { kind: 'adopt' };
  const wanted = wantsOn(i.spec, record.target);
  const timeout = i.config.phaseTimeoutMs;
  const elapsed = i.nowMs - since(record);
  switch (record.phase) {
    case 'requested': {
      if (!wanted) return { kind: 'end', phase: 'aborted', ...changeReason(i.spec, record) };
      if (elapsed >= timeout) {
        return { kind: 'end', phase: 'failed', reason: 'PhaseTimeout', message: `${record.target} did not prepare within ${timeout} ms` };
      }
      return { kind: 'wait', ms: timeout - elapsed, reason: 'AwaitingTarget', message: `waiting for ${record.target} to prepare` };
    }
    case 'prepared': {
      if (!wanted) return { kind: 'end', phase: 'aborted', ...changeReason(i.spec, record) };
      if (!isActive(i.domain)) {
        return { kind: 'end', phase: 'failed', reason: 'SourceDomainStopped', message: `the guest stopped on ${i.node} before the migration began` };
      }
      const peer = i.peers.get(record.target);
      if (!peer) return { kind: 'end', phase: 'failed', reason: 'TargetLost', message: `${record.target}'s daemon went away after preparing` };
      if (record.method === 'shutdown') return { kind: 'shutdownMove', timeoutMs: i.spec!.shutdownTimeoutMs, force: i.spec!.stopMode === 'force' };
      if (!peer.migration) return { kind: 'end', phase: 'failed', reason: 'TargetNotMigratable', message: `${record.target} publishes no migration URI` };
      return { kind: 'copy', destUri: peer.migration.uri, migrateUri: peer.migration.migrateUri, maxDowntimeMs: i.spec!.meta.maxDowntimeMs };
    }
    case 'copying': {
      // No copy of this process runs (the work queue never runs a key twice at once): a restart.
      if (i.job === undefined) return { kind: 'wait', ms: 0, reason: 'JobUnknown', message: 'the libvirt job must be looked up' };
      if (i.job?.active) return { kind: 'follow', abort: false };
      // libvirt undefines the source only when the guest arrived on the target.
      if (i.domain === null) return { kind: 'complete' };
      if (isActive(i.domain)) {
        return { kind: 'end', phase: 'failed', reason: 'Interrupted', message: `the copy to ${record.target} ended while its daemon was away; the guest still runs on ${i.node}` };
      }
      return { kind: 'end', phase: 'failed', reason: 'SourceDomainStopped', message: `the guest is no longer running on ${i.node}` };
    }
    case 'switching':
      return { kind: 'shutdownMove', timeoutMs: i.spec?.shutdownTimeoutMs ?? 0, force: !i.spec || i.spec.stopMode === 'force' };
    case 'aborting': {
      if (i.job === undefined) return { kind: 'wait', ms: 0, reason: 'JobUnknown', message: 'the libvirt job must be looked up' };
      if (i.job?.active) return { kind: 'follow', abort: true };
      if (!i.peers.has(record.target) || elapsed >= timeout) {
        return {
          kind: 'end',
          phase: 'aborted',
          reason: record.reason ?? 'Aborted',
          message: `${record.message ?? 'aborted'} (${record.target} did not confirm within ${timeout} ms)`,
        };
      }
      return { kind: 'wait', ms: timeout - elapsed, reason: 'AwaitingAbortConfirmation', message: `waiting for ${record.target} to confirm the abort` };
    }
    default:
      return NONE;
  }
}

function planTarget(i: MigrationInputs, record: MigrationRecord): MigrationStep {
  const timeout = i.config.phaseTimeoutMs;
  const orphaned = i.peers.get(record.source)?.session !== record.sourceSession;
  if (record.phase === 'aborting') return { kind: 'confirmAbort' };
  if (orphaned) {
    // The source's session is gone. A restarted source adopts the record within the grace period;
    // after it, the target settles the record by what it finds here.
    if (i.orphanForMs < timeout) {
      return { kind: 'wait', ms: timeout - i.orphanForMs, reason: 'SourceUnavailable', message: `${record.source}'s session is gone; waiting for it to come back` };
    }
    if (record.phase === 'copying' && i.domain?.state === 'running') return { kind: 'takeOver' };
    if (record.phase === 'copying' && isActive(i.domain)) {
      return { kind: 'wait', ms: 1_000, reason: 'IncomingInProgress', message: 'an incoming migration is still running here' };
    }
    return { kind: 'end', phase: 'failed', reason: 'SourceLost', message: `${record.source}'s daemon went away during phase ${record.phase}` };
  }
  if (record.phase !== 'requested') return NONE;
  // Retargeted before we acknowledged: the source ends it.
  if (!wantsOn(i.spec, i.node)) return NONE;
  if (i.incoming >= i.config.maxIncoming) {
    return { kind: 'wait', ms: 1_000, reason: 'IncomingLimit', message: `${i.incoming} migrations already arrive on ${i.node} (maxIncoming ${i.config.maxIncoming})` };
  }
  if (i.rbd?.kind === 'pending') return { kind: 'wait', ms: 1_000, reason: 'AwaitingRbdCheck', message: i.rbd.why };
  if (i.rbd?.kind === 'blocked') return { kind: 'end', phase: 'failed', reason: `Target${i.rbd.reason}`, message: i.rbd.message };
  return { kind: 'prepare', bridges: i.bridges };
}

/**
 * A spec.node that names no node of the cluster (written by another tool: `vk` refuses it) must not
 * go unsaid: one node puts an UnknownNode condition on the status — its owner, or for a VM without
 * a status the first live node by name — and takes it off once spec.node is known again. Pure; the
 * migration controller writes the result with a compare-and-set (null version: create).
 */
export function planPlacementCondition(
  node: string,
  spec: VmSpec | null,
  status: { value: VmStatus; version: number } | null,
  knownNodes: ReadonlySet<string>,
  liveNodes: readonly string[],
  now: string,
): { status: VmStatus; version: number | null } | undefined {
  if (!spec) return undefined;
  const unknown = !knownNodes.has(spec.node);
  const reporter = status?.value.node ?? [...liveNodes].sort()[0];
  if (reporter !== node) return undefined;
  const has = status?.value.conditions.some((c) => c.type === UNKNOWN_NODE && c.status === 'True') ?? false;
  if (!unknown) {
    if (!has || !status) return undefined;
    const conditions = status.value.conditions.filter((c) => c.type !== UNKNOWN_NODE);
    return { status: { ...status.value, conditions, updatedAt: now }, version: status.version };
  }
  const message = `spec.node names ${spec.node}, which is not a node of this cluster; the VM stays where it is`;
  const mark = { type: UNKNOWN_NODE, status: 'True' as const, reason: UNKNOWN_NODE, message };
  if (!status) {
    return { status: { phase: 'Pending', node, observedGeneration: -1, conditions: [{ ...mark, lastTransitionTime: now }], updatedAt: now }, version: null };
  }
  if (has && status.value.conditions.some((c) => c.type === UNKNOWN_NODE && c.message === message)) return undefined;
  return { status: { ...status.value, conditions: setCondition(status.value.conditions, mark, now), updatedAt: now }, version: status.version };
}

export const UNKNOWN_NODE = 'UnknownNode';

/** The target's verdict on preparing: undefined to acknowledge, else why it refuses. */
export function prepareVerdict(
  node: string,
  checks: { hypervisorError?: string; domain: LocalDomain | null; missingBridges: string[]; networksNotReady?: string },
): { reason: string; message: string } | undefined {
  if (checks.hypervisorError !== undefined) {
    return { reason: 'TargetHypervisorUnavailable', message: `libvirt on ${node} does not answer: ${checks.hypervisorError}` };
  }
  if (isActive(checks.domain)) return { reason: 'TargetHasDomain', message: `a domain of that name is already active on ${node}` };
  if (checks.networksNotReady !== undefined) return { reason: 'TargetNetworkNotReady', message: checks.networksNotReady };
  if (checks.missingBridges.length > 0) {
    return { reason: 'TargetBridgeMissing', message: `bridge ${checks.missingBridges.join(', ')} missing on ${node}` };
  }
  return undefined;
}

// ------------------------------------------------------------------------------ status helpers
//
// The source owns the VM's status during a migration (the domain reconcilers of both nodes step
// aside); these build what it writes. Conditions: Migrating (True while in flight) and
// MigrationAborted (the last abort, kept until a migration completes).

export function setCondition(conditions: readonly Condition[], next: Omit<Condition, 'lastTransitionTime'>, now: string): Condition[] {
  const before = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = before && before.status === next.status ? before.lastTransitionTime : now;
  const out = conditions.filter((c) => c.type !== next.type);
  out.push({ ...next, lastTransitionTime });
  return out;
}

function hasTrue(status: VmStatus, type: string): boolean {
  return status.conditions.some((c) => c.type === type && c.status === 'True');
}

/** In flight: phase Migrating, Migrating True with the step as reason. */
export function migratingStatus(previous: VmStatus, record: MigrationRecord, reason: string, now: string): VmStatus {
  return {
    ...previous,
    phase: 'Migrating',
    conditions: setCondition(previous.conditions, { type: 'Migrating', status: 'True', reason, message: `${record.method} migration ${record.id} from ${record.source} to ${record.target}` }, now),
    updatedAt: now,
  };
}

/** The guest still runs on the source after an abort or a failure. */
export function notMigratedStatus(previous: VmStatus, record: MigrationRecord, reason: string, message: string, aborted: boolean, now: string): VmStatus {
  let conditions = setCondition(previous.conditions, { type: 'Migrating', status: 'False', reason, message }, now);
  if (aborted) conditions = setCondition(conditions, { type: 'MigrationAborted', status: 'True', reason, message }, now);
  return { ...previous, phase: previous.phase === 'Migrating' ? 'Running' : previous.phase, node: record.source, conditions, updatedAt: now };
}

/**
 * The status a completed migration hands over. live: the guest runs on the target, which owns the
 * VM from now on. shutdown: the guest is off and the target owns the VM, which it starts after a claim.
 */
export function handoffStatus(previous: VmStatus | null, record: MigrationRecord, generation: number, now: string): VmStatus {
  const base: VmStatus = previous ?? { phase: 'Pending', node: record.source, observedGeneration: generation, conditions: [], updatedAt: now };
  const { crash: _crash, ...rest } = base;
  let conditions = setCondition(base.conditions, { type: 'Migrating', status: 'False', reason: 'Completed', message: `${record.method} migration ${record.id} from ${record.source} to ${record.target} completed` }, now);
  conditions = conditions.filter((c) => c.type !== 'MigrationAborted');
  if (record.method === 'live') {
    conditions = setCondition(conditions, { type: 'Running', status: 'True', reason: 'DomainRunning', message: `running on ${record.target}` }, now);
    return { ...rest, phase: 'Running', node: record.target, domainState: 'running', conditions, updatedAt: now };
  }
  conditions = setCondition(conditions, { type: 'Running', status: 'False', reason: 'MigratedByShutdown', message: `shut down on ${record.source}; ${record.target} starts it` }, now);
  // Ownership passes to the target explicitly; the guest is off, so whichever node spec.node names
  // when it starts must still win it with a claim (reconcilers/domain/plan.ts).
  return { ...rest, phase: 'Pending', node: record.target, domainState: 'shutoff', conditions, updatedAt: now };
}

/** The record after a step ends it. */
export function endedRecord(record: MigrationRecord, phase: 'done' | 'aborted' | 'failed', now: string, reason?: string, message?: string): MigrationRecord {
  const out: MigrationRecord = { ...record, phase, phaseSince: now, endedAt: now };
  if (reason !== undefined) out.reason = reason;
  if (message !== undefined) out.message = message;
  return out;
}

/** One line per step, as dry-run and the action log print them. */
export function describeMigrationStep(node: string, vm: string, step: MigrationStep, record: MigrationRecord | null): string {
  const to = record ? ` to ${record.target}` : '';
  switch (step.kind) {
    case 'none':
      return `${node} ${vm} migration: nothing to do`;
    case 'wait':
      return `${node} ${vm} migration: wait ${step.ms}ms (${step.reason}: ${step.message})`;
    case 'request':
      return `${node} ${vm} migration requested to ${step.record.target} (${step.record.method})`;
    case 'adopt':
      return `${node} ${vm} migration${to} adopted by this session`;
    case 'end':
      return `${node} ${vm} migration${to} ${step.phase} (${step.reason})`;
    case 'copy':
      return `${node} ${vm} live migration${to} (peer-to-peer via ${step.destUri})`;
    case 'follow':
      return `${node} ${vm} follow the running migration job${to}${step.abort ? ' and abort it' : ''}`;
    case 'shutdownMove':
      return `${node} ${vm} shutdown migration${to}`;
    case 'complete':
      return `${node} ${vm} migration${to} done`;
    case 'prepare':
      return `${node} ${vm} prepare for incoming migration from ${record?.source ?? '?'}`;
    case 'confirmAbort':
      return `${node} ${vm} confirm aborted migration from ${record?.source ?? '?'}`;
    case 'takeOver':
      return `${node} ${vm} take over the migrated guest from ${record?.source ?? '?'}`;
    case 'writeStatus':
      return `${node} ${vm} status ${step.status.phase} (migration ${record?.phase ?? 'ended'})`;
  }
}
