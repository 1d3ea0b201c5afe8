// Runs the domain planner's actions through the hypervisor driver and the status writer.
import type { Logger } from 'pino';
import type { Hypervisor } from '../drivers/hypervisor.ts';
import type { VmStatus } from '../schemas/index.ts';
import { describeDomainAction, failedStatus, isActive, sameStatus, type DomainAction } from './domain.ts';
import { sleep } from './sleep.ts';

export interface DomainEffects {
  hv: Hypervisor;
  /** Writes the VM status with a compare-and-set on `version` (null: create). */
  writeStatus(vm: string, status: VmStatus, version: number | null): Promise<void>;
  /** The status as last read (for a repeated failure, which is then not written again). */
  currentStatus?(vm: string): VmStatus | null;
  /** Bound to the VM and the reconcile id by the caller (the work queue's per-run logger). */
  log: Logger;
  now(): string;
  /** Called with each action's line once it has been carried out (dry-run parity, audit). */
  onAction?(line: string): void;
  /** How often a graceful shutdown polls the domain state. */
  shutdownPollMs?: number;
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
  let outcome: DomainOutcome = { kind: 'done' };
  for (const action of actions) {
    signal.throwIfAborted();
    try {
      const waitMs = await perform(vm, action, fx, signal);
      if (waitMs !== undefined) outcome = { kind: 'requeueAfter', ms: waitMs };
    } catch (error) {
      if (signal.aborted || action.kind === 'writeStatus' || !plannedStatus || plannedStatus.kind !== 'writeStatus') throw error;
      const reason = reasonOf(action, error);
      const message = (error as Error).message;
      const previous = fx.currentStatus?.(vm) ?? null;
      const failed = failedStatus(plannedStatus.status, action, reason, message, fx.now(), previous);
      if (!previous || !sameStatus(previous, failed)) await fx.writeStatus(vm, failed, plannedStatus.version);
      throw new DomainActionError(action.kind, reason, message, { cause: error });
    }
    fx.log.info({ action: action.kind }, describeDomainAction(node, vm, action));
    fx.onAction?.(describeDomainAction(node, vm, action));
  }
  return outcome;
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
      if (isActive(await fx.hv.getDomain(vm))) await fx.hv.destroy(vm);
      return;
    case 'undefine':
      if (await fx.hv.getDomain(vm)) await fx.hv.undefine(vm);
      return;
    case 'wait':
      return action.ms;
    case 'writeStatus':
      await fx.writeStatus(vm, action.status, action.version);
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
