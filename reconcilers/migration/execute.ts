// Runs the migration planner's steps through the hypervisor and ZooKeeper (every record write a
// compare-and-set on the version the step was planned against).
//
// The live copy is the one long step: it blocks on libvirt's peer-to-peer migration while it
//  - watches spec.node (and the target's session): when the spec no longer wants the guest on the
//    target, it issues ABORT_JOB at once (never in post-copy), then records the abort;
//  - copies the job's progress into the record at most once per progressIntervalMs.
// When the copy ends, where the guest is decides what happened: undefined here means libvirt moved
// it (done, status handed to the target); still active here means it did not (aborting/failed).
// An aborted AbortSignal (daemon stopping) only stops following: libvirt carries on, and the next
// daemon follows the job from the record.
import { performance } from 'node:perf_hooks';
import { Subscription, filter, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import type { DomainJob, MigratingHypervisor } from '../../drivers/hypervisor.ts';
import type { MigrationRecord, VmSpec, VmStatus } from '../../schemas/index.ts';
import { isActive, type LocalDomain } from '../../drivers/domain-run-state.ts';
import {
  changeReason,
  describeMigrationStep,
  endedRecord,
  handoffStatus,
  migratingStatus,
  notMigratedStatus,
  prepareVerdict,
  wantsOn,
  type MigrationInputs,
  type MigrationStep,
} from './plan.ts';
import { networkOfBridge } from '../network-readiness.ts';
import { sleep } from '../sleep.ts';

export type MigrationDriver = Pick<
  MigratingHypervisor,
  'getDomain' | 'shutdown' | 'destroy' | 'undefine' | 'migrateLive' | 'abortJob' | 'inPostcopy' | 'jobStats' | 'resume'
>;

export interface MigrationEvent {
  type: 'MigrationRequested' | 'MigrationStarted' | 'MigrationCompleted' | 'MigrationAborted' | 'MigrationFailed' | 'MigrationRefused';
  vm: string;
  id: string;
  source: string;
  target: string;
  reason?: string;
  message: string;
}

export interface MigrationEffects {
  node: string;
  hv: MigrationDriver;
  /** Bound to the VM and the reconcile id by the caller (the work queue's per-run logger). */
  log: Logger;
  nowMs(): number;
  /** This daemon's ZooKeeper session id. */
  session(): string;
  /** CAS write of the record (null: create); resolves to its new version. */
  writeRecord(vm: string, record: MigrationRecord, version: number | null): Promise<number>;
  /**
   * The record and the status in one transaction; `status` computes the new status from the
   * current one (re-read and retried when only the status changed meanwhile; null leaves the
   * status alone). Resolves to the record's new version.
   */
  writeRecordAndStatus(vm: string, record: MigrationRecord, version: number | null, status: (current: VmStatus | null) => VmStatus | null): Promise<number>;
  /** Best-effort read-modify-write of the status (skipped when there is none, or `next` says null). */
  updateStatus(vm: string, next: (current: VmStatus) => VmStatus | null): Promise<void>;
  /** CAS write of the status with the version the step was planned against. */
  writeStatus(vm: string, status: VmStatus, version: number): Promise<void>;
  /** The spec as ZooKeeper has it now (the lockstep re-check before the copy). */
  readSpec(vm: string): Promise<VmSpec | null>;
  /** The spec now and at every change; null when deleted. */
  watchSpec(vm: string): Observable<VmSpec | null>;
  /** The session holding `node`'s alive znode now and at every change; null while there is none. */
  watchPeerSession(node: string): Observable<string | null>;
  bandwidthMiBs: number | undefined;
  bridgeExists(name: string): Promise<boolean>;
  /**
   * When the network concern runs here: why the networks behind these bridges are not all ready
   * on this node (undefined when they are). Their bridges are then not looked up with bridgeExists.
   */
  networksNotReady?(bridges: readonly string[]): string | undefined;
  /** Progress is copied into the record at most this often (default 1000 ms). */
  progressIntervalMs?: number;
  /** How often a followed job and a graceful shutdown are polled (default 200 ms). */
  pollMs?: number;
  onAction?(line: string): void;
  onEvent?(event: MigrationEvent): void;
  /** performance.now() at the instant ABORT_JOB is sent (bench/migration.ts). */
  onAbortIssued?(vm: string, atMs: number): void;
}

export interface MigrationOutcome {
  /** Look again after this long. */
  requeueMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function executeMigration(vm: string, step: MigrationStep, i: MigrationInputs, fx: MigrationEffects, signal: AbortSignal): Promise<MigrationOutcome> {
  const rec = i.record;
  if (step.kind !== 'none' && step.kind !== 'wait') {
    const line = describeMigrationStep(fx.node, vm, step, rec?.value ?? null);
    fx.log.info({ step: step.kind, id: rec?.value.id }, line);
    fx.onAction?.(line);
  }
  switch (step.kind) {
    case 'none':
      return {};
    case 'wait':
      return { requeueMs: step.ms };
    case 'request': {
      const record = step.record;
      await fx.writeRecordAndStatus(vm, record, step.version, (current) =>
        current ? migratingStatus(current, record, 'Requested', iso(fx.nowMs())) : null,
      );
      emit(fx, 'MigrationRequested', vm, record, `${record.method} migration to ${record.target} requested`);
      return {};
    }
    case 'adopt': {
      const adopted = { ...rec!.value, sourceSession: fx.session() };
      await fx.writeRecord(vm, adopted, rec!.version);
      return { requeueMs: 0 };
    }
    case 'end':
      await endRecord(vm, rec!.value, rec!.version, step.phase, step.reason, step.message, fx);
      return {};
    case 'copy':
      await copy(vm, step, i, fx, signal);
      return {};
    case 'follow':
      await runJob(vm, rec!.value, rec!.version, null, step.abort, i, fx, signal);
      return {};
    case 'shutdownMove':
      await shutdownMove(vm, step, i, fx, signal);
      return {};
    case 'complete':
      await complete(vm, rec!.value, rec!.version, fx);
      return {};
    case 'prepare':
      await prepare(vm, step.bridges, rec!.value, rec!.version, fx);
      return {};
    case 'confirmAbort':
      await confirmAbort(vm, rec!.value, rec!.version, fx);
      return {};
    case 'takeOver': {
      const r = rec!.value;
      const now = iso(fx.nowMs());
      await fx.writeRecordAndStatus(vm, endedRecord(r, 'done', now, 'TakenOverByTarget', `${r.source} went away; the guest runs on ${r.target}`), rec!.version, (current) =>
        handoffStatus(current, { ...r, method: 'live' }, current?.observedGeneration ?? -1, now),
      );
      emit(fx, 'MigrationCompleted', vm, r, `${r.source} went away after the copy; ${r.target} took the guest over`);
      return {};
    }
    case 'writeStatus':
      await fx.writeStatus(vm, step.status, step.version);
      return {};
  }
}

function emit(fx: MigrationEffects, type: MigrationEvent['type'], vm: string, r: MigrationRecord, message: string, reason?: string): void {
  const event: MigrationEvent = { type, vm, id: r.id, source: r.source, target: r.target, message, ...(reason !== undefined ? { reason } : {}) };
  const level = type === 'MigrationAborted' || type === 'MigrationFailed' || type === 'MigrationRefused' ? 'warn' : 'info';
  fx.log[level]({ event: type, id: r.id, source: r.source, target: r.target, reason }, message);
  fx.onEvent?.(event);
}

/** Ends a record; the source also says so in the status. */
async function endRecord(vm: string, r: MigrationRecord, version: number, phase: 'aborted' | 'failed', reason: string, message: string, fx: MigrationEffects): Promise<void> {
  const now = iso(fx.nowMs());
  await fx.writeRecord(vm, endedRecord(r, phase, now, reason, message), version);
  if (r.source === fx.node) {
    await fx.updateStatus(vm, (current) => (current.node === fx.node ? notMigratedStatus(current, r, reason, message, phase === 'aborted', now) : null));
  }
  emit(fx, phase === 'aborted' ? 'MigrationAborted' : r.target === fx.node ? 'MigrationRefused' : 'MigrationFailed', vm, r, message, reason);
}

/** Source: the guest left; record done and hand the status over. */
async function complete(vm: string, r: MigrationRecord, version: number, fx: MigrationEffects): Promise<void> {
  const now = iso(fx.nowMs());
  await fx.writeRecordAndStatus(vm, endedRecord(r, 'done', now), version, (current) => handoffStatus(current, r, current?.observedGeneration ?? -1, now));
  emit(fx, 'MigrationCompleted', vm, r, `${r.method} migration from ${r.source} to ${r.target} completed`);
}

function localDomain(d: { state: LocalDomain['state']; persistent: boolean } | null): LocalDomain | null {
  return d && { state: d.state, persistent: d.persistent };
}

/** Target: check, clean up what is stale, then acknowledge (or refuse). */
async function prepare(vm: string, bridges: string[], r: MigrationRecord, version: number, fx: MigrationEffects): Promise<void> {
  let hypervisorError: string | undefined;
  let domain: LocalDomain | null = null;
  try {
    domain = localDomain(await fx.hv.getDomain(vm));
  } catch (error) {
    hypervisorError = (error as Error).message;
  }
  const networksNotReady = fx.networksNotReady?.(bridges);
  const missingBridges: string[] = [];
  for (const bridge of bridges) {
    if (fx.networksNotReady && networkOfBridge(bridge) !== undefined) continue;
    if (!(await fx.bridgeExists(bridge))) missingBridges.push(bridge);
  }
  const verdict = prepareVerdict(fx.node, { ...(hypervisorError !== undefined ? { hypervisorError } : {}), domain, missingBridges, ...(networksNotReady !== undefined ? { networksNotReady } : {}) });
  if (verdict) {
    await endRecord(vm, r, version, 'failed', verdict.reason, verdict.message, fx);
    return;
  }
  // A leftover definition (an earlier failed attempt, a stale copy): nothing stale may stay.
  if (domain) await fx.hv.undefine(vm);
  await fx.writeRecord(vm, { ...r, phase: 'prepared', phaseSince: iso(fx.nowMs()) }, version);
}

/** Target: after an abort nothing of the VM may run or stay defined here. */
async function confirmAbort(vm: string, r: MigrationRecord, version: number, fx: MigrationEffects): Promise<void> {
  const domain = await fx.hv.getDomain(vm);
  if (domain && isActive(localDomain(domain))) {
    fx.log.warn({ state: domain.state }, 'destroying the leftover of an aborted incoming migration');
    await fx.hv.destroy(vm);
  }
  if (await fx.hv.getDomain(vm)) await fx.hv.undefine(vm);
  await fx.writeRecord(vm, endedRecord(r, 'aborted', iso(fx.nowMs()), r.reason, r.message), version);
}

/** Source, phase prepared → copying: the lockstep re-check of spec.node, then the live copy. */
async function copy(vm: string, step: Extract<MigrationStep, { kind: 'copy' }>, i: MigrationInputs, fx: MigrationEffects, signal: AbortSignal): Promise<void> {
  const r0 = i.record!.value;
  const fresh = await fx.readSpec(vm);
  if (!wantsOn(fresh, r0.target)) {
    const why = changeReason(fresh, r0);
    await endRecord(vm, r0, i.record!.version, 'aborted', why.reason, why.message, fx);
    return;
  }
  const now = iso(fx.nowMs());
  const r = { ...r0, phase: 'copying' as const, phaseSince: now };
  const version = await fx.writeRecord(vm, r, i.record!.version);
  await fx.updateStatus(vm, (current) => (current.node === fx.node ? migratingStatus(current, r, 'Copying', now) : null));
  emit(fx, 'MigrationStarted', vm, r, `live copy to ${r.target} started`);
  await runJob(vm, r, version, step, false, i, fx, signal);
}

/**
 * Runs (start given) or follows (start null) the live migration job of `vm`, aborting it when the
 * spec stops wanting the guest on the target, the target's session goes, or `abortAtOnce`; then
 * records the outcome by where the guest is.
 */
async function runJob(
  vm: string,
  r0: MigrationRecord,
  version0: number,
  start: Extract<MigrationStep, { kind: 'copy' }> | null,
  abortAtOnce: boolean,
  i: MigrationInputs,
  fx: MigrationEffects,
  signal: AbortSignal,
): Promise<void> {
  const state = { record: r0, version: version0 };
  let settled = false;
  let abort: { reason: string; message: string } | undefined;
  let abortIssued: Promise<void> = Promise.resolve();
  const pollMs = fx.pollMs ?? 200;

  const requestAbort = (why: { reason: string; message: string }): void => {
    if (abort || settled) return;
    abort = why;
    abortIssued = issueAbort(vm, () => settled, fx).catch((error: unknown) => fx.log.error({ err: error }, 'could not abort the migration job'));
  };

  const subs = new Subscription();
  subs.add(
    fx.watchSpec(vm).subscribe((spec) => {
      if (!wantsOn(spec, r0.target)) requestAbort(changeReason(spec, r0));
    }),
  );
  const targetSession = i.peers.get(r0.target)?.session ?? null;
  subs.add(
    fx
      .watchPeerSession(r0.target)
      .pipe(filter((s) => s !== targetSession))
      .subscribe(() =>
        requestAbort({ reason: 'TargetLost', message: `${r0.target}'s daemon went away during the copy; the guest stays on ${fx.node}` }),
      ),
  );
  if (abortAtOnce) requestAbort({ reason: r0.reason ?? 'Aborted', message: r0.message ?? `migration ${r0.id} aborted` });

  // Progress: at most once per interval, one write at a time, never after the job settled.
  let writing: Promise<void> = Promise.resolve();
  let progressBroken = false;
  const timer = setInterval(() => {
    writing = writing.then(async () => {
      if (settled || progressBroken) return;
      const job = await fx.hv.jobStats(vm).catch(() => null);
      if (!job?.active || settled) return;
      const next: MigrationRecord = { ...state.record, progress: progressOf(job, fx.nowMs()) };
      try {
        state.version = await fx.writeRecord(vm, next, state.version);
        state.record = next;
      } catch (error) {
        progressBroken = true;
        fx.log.warn({ err: error }, 'could not record migration progress');
      }
    });
  }, fx.progressIntervalMs ?? 1000);

  let failure: unknown;
  try {
    if (start) {
      await fx.hv.migrateLive(vm, start.destUri, start.migrateUri, { ...(fx.bandwidthMiBs !== undefined ? { bandwidthMiBs: fx.bandwidthMiBs } : {}), maxDowntimeMs: start.maxDowntimeMs }, signal);
    } else {
      await followJob(vm, pollMs, signal, fx);
    }
  } catch (error) {
    failure = error;
  } finally {
    settled = true;
    clearInterval(timer);
    subs.unsubscribe();
  }
  await writing;
  await abortIssued;
  if (signal.aborted) throw signal.reason ?? new Error('aborted');

  // Where is the guest? (A lost libvirt connection throws here: the outcome is unknown; re-plan later.)
  const here = localDomain(await fx.hv.getDomain(vm));
  if (here === null) {
    if (abort) fx.log.warn({ reason: abort.reason }, 'the migration completed before the abort took effect');
    await complete(vm, state.record, state.version, fx);
    return;
  }
  if (!isActive(here)) {
    await endRecord(vm, state.record, state.version, 'failed', 'SourceDomainStopped', `the guest stopped on ${fx.node} during the copy`, fx);
    return;
  }
  if (here.state === 'paused') {
    // libvirt resumes the source after a failed or cancelled migration; make sure of it.
    await fx.hv.resume(vm).catch((error: unknown) => fx.log.warn({ err: error }, 'could not resume the guest after the migration ended'));
  }
  const now = iso(fx.nowMs());
  if (abort) {
    const message = `${abort.message}; the guest still runs on ${fx.node}`;
    const aborting: MigrationRecord = { ...state.record, phase: 'aborting', phaseSince: now, reason: abort.reason, message };
    if (state.record.phase !== 'aborting') state.version = await fx.writeRecord(vm, aborting, state.version);
    await fx.updateStatus(vm, (current) => (current.node === fx.node ? notMigratedStatus(current, aborting, abort!.reason, message, true, now) : null));
    emit(fx, 'MigrationAborted', vm, aborting, message, abort.reason);
    return;
  }
  const message = `live migration to ${state.record.target} failed: ${failure instanceof Error ? failure.message : 'the job ended without moving the guest'}`;
  await endRecord(vm, state.record, state.version, 'failed', 'LiveMigrationFailed', message.slice(0, 4000), fx);
}

/** ABORT_JOB as soon as there is a job to abort, retried until the migration call settles. */
async function issueAbort(vm: string, settled: () => boolean, fx: MigrationEffects): Promise<void> {
  for (let attempt = 0; !settled(); attempt++) {
    try {
      // Never abort in post-copy: the guest already runs on the target.
      if (await fx.hv.inPostcopy(vm)) {
        fx.log.warn('migration is in post-copy; not aborting it');
        return;
      }
      fx.onAbortIssued?.(vm, performance.now());
      await fx.hv.abortJob(vm);
      fx.log.info({ attempt }, 'ABORT_JOB issued');
      return;
    } catch (error) {
      // No job yet (the migrate call has not started it) or a blip: try again shortly.
      if (settled()) return;
      if (attempt % 50 === 0) fx.log.debug({ err: error }, 'ABORT_JOB not accepted yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function followJob(vm: string, pollMs: number, signal: AbortSignal, fx: MigrationEffects): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    const job = await fx.hv.jobStats(vm);
    if (!job?.active) return;
    await sleep(pollMs, signal);
  }
}

function progressOf(job: DomainJob, nowMs: number): NonNullable<MigrationRecord['progress']> {
  const n = (x: number) => Math.max(0, Math.round(x));
  return { processedBytes: n(job.processedBytes), remainingBytes: n(job.remainingBytes), bandwidthBps: n(job.bandwidthBps), updatedAt: iso(nowMs) };
}

/** Source, shutdown method: shut the guest down (graceful, then destroy), undefine it, release the status. */
async function shutdownMove(vm: string, step: Extract<MigrationStep, { kind: 'shutdownMove' }>, i: MigrationInputs, fx: MigrationEffects, signal: AbortSignal): Promise<void> {
  let r = i.record!.value;
  let version = i.record!.version;
  if (r.phase === 'prepared') {
    const fresh = await fx.readSpec(vm);
    if (!wantsOn(fresh, r.target)) {
      const why = changeReason(fresh, r);
      await endRecord(vm, r, version, 'aborted', why.reason, why.message, fx);
      return;
    }
    const now = iso(fx.nowMs());
    r = { ...r, phase: 'switching', phaseSince: now };
    version = await fx.writeRecord(vm, r, version);
    await fx.updateStatus(vm, (current) => (current.node === fx.node ? { ...migratingStatus(current, r, 'ShuttingDown', now), domainState: 'shutdown' } : null));
  }
  const domain = localDomain(await fx.hv.getDomain(vm));
  if (isActive(domain)) {
    if (step.force) await fx.hv.destroy(vm);
    else {
      await fx.hv.shutdown(vm);
      const deadline = fx.nowMs() + step.timeoutMs;
      while (fx.nowMs() < deadline && isActive(localDomain(await fx.hv.getDomain(vm)))) await sleep(fx.pollMs ?? 200, signal);
      if (isActive(localDomain(await fx.hv.getDomain(vm)))) {
        fx.log.warn({ timeoutMs: step.timeoutMs }, 'guest did not shut down in time; destroying it');
        await fx.hv.destroy(vm);
      }
    }
  }
  if (await fx.hv.getDomain(vm)) await fx.hv.undefine(vm);
  await complete(vm, r, version, fx);
}

