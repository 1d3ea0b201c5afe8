// Runs the domain planner's actions through the hypervisor driver and the status writer.
import type { Logger } from 'pino';
import type { Hypervisor } from '../../drivers/hypervisor.ts';
import type { VmStatus } from '../../schemas/index.ts';
import { isActive } from '../../drivers/domain-run-state.ts';
import { describeDomainAction, failedStatus, sameStatus, statusHoldsGuest, STRAY_CONDITION, type DomainAction } from './plan.ts';
import { sleep } from '../sleep.ts';

export interface DomainEffects {
  hv: Hypervisor;
  /**
   * Writes the VM status with a compare-and-set on `version` (null: create); resolves to the new
   * version. Throws StatusConflictError when the status changed since `version` was read.
   */
  writeStatus(vm: string, status: VmStatus, version: number | null): Promise<number>;
  /** The status as last read (for a repeated failure, which is then not written again). */
  currentStatus?(vm: string): VmStatus | null;
  /**
   * A fresh read of who may run the VM, straight from ZooKeeper (not the cache): the status with
   * its version, and whether a migration that involves this node is in flight.
   */
  readOwnership(vm: string): Promise<{ status: { value: VmStatus; version: number } | null; migrationHere: boolean }>;
  /** Bound to the VM and the reconcile id by the caller (the work queue's per-run logger). */
  log: Logger;
  now(): string;
  /** Called with each action's line once it has been carried out (dry-run parity, audit). */
  onAction?(line: string): void;
  /** How often a graceful shutdown polls the domain state. */
  shutdownPollMs?: number;
}

/** The status changed since the plan read it: another writer won (a lost claim). */
export class StatusConflictError extends Error {
  constructor(vm: string, options?: { cause?: unknown }) {
    super(`the status of ${vm} changed since it was read`, options);
    this.name = 'StatusConflictError';
  }
}

export type DomainOutcome = { kind: 'done' } | { kind: 'requeueAfter'; ms: number };

/** A failed action with libvirt's reason; its status has already been recorded. */
export class DomainActionError extends Error {
  constructor(
    readonly action: DomainAction['kind'],
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DomainActionError';
  }
}

export async function executeDomain(
  node: string,
  vm: string,
  actions: DomainAction[],
  fx: DomainEffects,
  signal: AbortSignal,
): Promise<DomainOutcome> {
  const plannedStatus = actions.find((a) => a.kind === 'writeStatus');
  // Every status write is a compare-and-set; a claim moves the version the later writes expect.
  let statusVersion = actions.find((a) => a.kind === 'claim' || a.kind === 'writeStatus')?.version ?? null;
  let outcome: DomainOutcome = { kind: 'done' };
  for (const action of actions) {
    signal.throwIfAborted();
    try {
      switch (action.kind) {
        case 'claim':
        case 'writeStatus':
          statusVersion = await fx.writeStatus(vm, action.status, statusVersion);
          break;
        case 'destroy':
          if (action.stray) {
            const status = await confirmStray(node, vm, fx);
            if (status === false) return { kind: 'requeueAfter', ms: 0 };
            await perform(vm, action, fx, signal);
            await noteStray(node, vm, action.stray.owner, status, fx);
          } else await perform(vm, action, fx, signal);
          break;
        default: {
          const waitMs = await perform(vm, action, fx, signal);
          if (waitMs !== undefined) outcome = { kind: 'requeueAfter', ms: waitMs };
        }
      }
    } catch (error) {
      if (action.kind === 'claim' && error instanceof StatusConflictError) {
        // Another node won the VM (or the status moved on): start nothing; the change brings us back.
        fx.log.info({ action: 'claim' }, `${node} ${vm} lost the claim: the status changed since it was read; starting nothing`);
        return { kind: 'done' };
      }
      if (signal.aborted || action.kind === 'writeStatus' || action.kind === 'claim' || !plannedStatus || plannedStatus.kind !== 'writeStatus') throw error;
      const reason = reasonOf(action, error);
      const message = (error as Error).message;
      const previous = fx.currentStatus?.(vm) ?? null;
      const domain = await fx.hv.getDomain(vm).catch(() => null);
      const failed = failedStatus(plannedStatus.status, action, reason, message, fx.now(), previous, domain?.state);
      if (!previous || !sameStatus(previous, failed)) await fx.writeStatus(vm, failed, statusVersion);
      throw new DomainActionError(action.kind, reason, message, { cause: error });
    }
    fx.log.info({ action: action.kind }, describeDomainAction(node, vm, action));
    fx.onAction?.(describeDomainAction(node, vm, action));
  }
  return outcome;
}

type FreshStatus = Awaited<ReturnType<DomainEffects['readOwnership']>>['status'];

/**
 * The copy is still a stray by a fresh read: the status holds it for no one here, and no migration
 * of it involves this node. Resolves to that fresh status (the condition is written against it), or
 * false when the copy is not a stray after all.
 */
async function confirmStray(node: string, vm: string, fx: DomainEffects): Promise<FreshStatus | false> {
  const fresh = await fx.readOwnership(vm);
  const ours = fresh.status !== null && fresh.status.value.node === node && statusHoldsGuest(fresh.status.value);
  if (ours || fresh.migrationHere) {
    fx.log.info({ action: 'destroy' }, `${node} ${vm} is not a stray after all (a fresh read says this node owns it or migrates it); keeping it`);
    return false;
  }
  return fresh.status;
}

/** Says on the status that a stray copy was destroyed here (best effort: the owner's write may win). */
async function noteStray(node: string, vm: string, owner: string | null, fresh: FreshStatus, fx: DomainEffects): Promise<void> {
  const message = `a running copy on ${node}, which does not own the VM${owner ? ` (${owner} does)` : ''}, was destroyed`;
  fx.log.warn({ action: 'destroy', owner }, `${node} ${vm}: ${message}`);
  if (!fresh) return;
  const now = fx.now();
  const conditions = [
    ...fresh.value.conditions.filter((c) => c.type !== STRAY_CONDITION),
    { type: STRAY_CONDITION, status: 'True' as const, reason: 'NotOwner', message, lastTransitionTime: now },
  ];
  try {
    await fx.writeStatus(vm, { ...fresh.value, conditions, updatedAt: now }, fresh.version);
  } catch (error) {
    if (!(error instanceof StatusConflictError)) throw error;
  }
}

async function perform(vm: string, action: DomainAction, fx: DomainEffects, signal: AbortSignal): Promise<number | undefined> {
  switch (action.kind) {
    case 'define':
      await fx.hv.define(action.xml);
      return;
    case 'start':
      await fx.hv.start(vm);
      return;
    case 'shutdown':
      await gracefulShutdown(vm, action.timeoutMs, fx, signal);
      return;
    case 'destroy':
      // No fresh read first (one libvirt round trip less on every forced stop): destroying a domain
      // that is already off, or gone, is no error (the driver's contract).
      await fx.hv.destroy(vm);
      return;
    case 'undefine':
      if (await fx.hv.getDomain(vm)) await fx.hv.undefine(vm);
      return;
    case 'wait':
      return action.ms;
    case 'claim':
    case 'writeStatus':
    case 'migrate':
      return;
  }
}

/** ACPI shutdown, then destroy once the timeout has passed with the guest still up. */
async function gracefulShutdown(vm: string, timeoutMs: number, fx: DomainEffects, signal: AbortSignal): Promise<void> {
  await fx.hv.shutdown(vm);
  const deadline = Date.now() + timeoutMs;
  const pollMs = fx.shutdownPollMs ?? 100;
  while (Date.now() < deadline) {
    if (!isActive(await fx.hv.getDomain(vm))) return;
    await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), signal);
  }
  if (isActive(await fx.hv.getDomain(vm))) {
    fx.log.warn({ timeoutMs }, 'guest did not shut down in time; destroying it');
    await fx.hv.destroy(vm);
  }
}

function reasonOf(action: DomainAction, error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const base = action.kind === 'start' ? 'StartFailed' : action.kind === 'define' ? 'DefineFailed' : 'ActionFailed';
  return typeof code === 'number' ? `${base}Code${code}` : base;
}
