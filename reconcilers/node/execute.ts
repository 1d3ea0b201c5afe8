// The node keepalive's executor: every few seconds it records what the hypervisor holds in
// /nodes/<name>/status (seed 004). runKeepalive() gathers the inputs of computeNodeStatus()
// (./plan.ts), bounds every call with a timeout and writes the result with a compare-and-set.
//
// It makes no per-domain hypervisor call at all: domainLoads() already carries state, memory and
// vCPUs, so a paused or incoming domain (which stalled PVC's keepalive in memoryStats) is never
// asked anything.
import type { Logger } from 'pino';
import type { HostSample } from '../../drivers/host.ts';
import type { DomainLoad, Hypervisor, NodeResources } from '../../drivers/hypervisor.ts';
import type { NodeDaemonState, NodeStatus } from '../../schemas/index.ts';
import { sleep } from '../sleep.ts';
import { computeNodeStatus, statusFiguresChanged, type AssignedVm, type HypervisorProblem } from './plan.ts';

export interface KeepaliveEffects {
  node: string;
  /** Daemon version string. */
  version: string;
  /** Only domainLoads() and nodeResources() are called. */
  hv: Pick<Hypervisor, 'domainLoads' | 'nodeResources'>;
  /** Every VM whose spec.node is this node, with the size its XML gives. */
  readAssigned(signal: AbortSignal): Promise<AssignedVm[]>;
  /** The current node status and its znode version; null when there is none. */
  readNodeStatus(signal: AbortSignal): Promise<{ value: NodeStatus; version: number } | null>;
  /**
   * Compare-and-set on `version`; null: create. Resolving to the znode's new version lets the next
   * tick write on top of it without reading the status first (a conflict still re-reads it).
   */
  writeNodeStatus(status: NodeStatus, version: number | null): Promise<number | void>;
  /**
   * Renews the node's lease (/nodes/<name>/lease) with this tick's time. When given, the status is
   * written only when its figures changed (statusFiguresChanged) or `statusRefreshMs` passed since
   * it was last written, and the lease alone says the keepalive runs; without it, every tick writes
   * the status.
   */
  renewLease?(renewedAt: string): Promise<void>;
  /** With renewLease: the longest a status goes unwritten while its figures hold. Default 60000. */
  statusRefreshMs?: number;
  readHost(): HostSample | Promise<HostSample>;
  /** Default: always 'run'. */
  daemonState?(): NodeDaemonState;
  log: Logger;
  signal: AbortSignal;
  /** Default 5000. The first tick runs at once. */
  intervalMs?: number;
  /** Bound on each call of a tick (libvirt, ZooKeeper, host). Default min(2000, intervalMs). */
  callTimeoutMs?: number;
  /** Default: new Date().toISOString(). */
  now?(): string;
  /** Whether a write failed on the version check (default: reason VersionConflict or NodeExists, as ZkError has). */
  isConflict?(error: unknown): boolean;
  /** Called after each tick with the status written (null when nothing could be written). */
  onTick?(status: NodeStatus | null): void;
}

/** Thrown (internally) when a call of the tick ran past its bound. */
export class CallTimeoutError extends Error {
  readonly reason = 'CallTimedOut';
  constructor(readonly call: string, readonly timeoutMs: number) {
    super(`${call} did not answer within ${timeoutMs} ms`);
    this.name = 'CallTimeoutError';
  }
}

export function isVersionConflict(error: unknown): boolean {
  const reason = (error as { reason?: unknown } | null)?.reason;
  return reason === 'VersionConflict' || reason === 'NodeExists';
}

interface LastKnown {
  domains: DomainLoad[] | null;
  resources: NodeResources | null;
  assigned: AssignedVm[] | null;
  host: HostSample | null;
  /**
   * The status this loop wrote last and the version it got, while nothing is known to have
   * changed it since: the next tick computes on top of it instead of reading it again. Anyone
   * else's write changes the version, so the compare-and-set fails and the tick re-reads.
   */
  written: { value: NodeStatus; version: number } | null;
  /** Date.now() of the last status write (with a lease, the status is written only on change). */
  writtenAt: number;
}

/** Ticks until `signal` aborts; resolves once the tick in progress has settled (no write after that). */
export async function runKeepalive(fx: KeepaliveEffects): Promise<void> {
  const intervalMs = fx.intervalMs ?? 5_000;
  const callTimeoutMs = fx.callTimeoutMs ?? Math.min(2_000, intervalMs);
  const last: LastKnown = { domains: null, resources: null, assigned: null, host: null, written: null, writtenAt: 0 };
  const log = fx.log.child({ component: 'keepalive' });
  while (!fx.signal.aborted) {
    const started = Date.now();
    let written: NodeStatus | null = null;
    try {
      written = await keepaliveTick(fx, last, callTimeoutMs, log);
    } catch (error) {
      if (!fx.signal.aborted) log.warn({ err: error }, 'keepalive tick failed');
    }
    if (fx.signal.aborted) break;
    fx.onTick?.(written);
    // Resolves early on abort: the loop then sees the signal and ends.
    await sleep(Math.max(0, started + intervalMs - Date.now()), fx.signal).catch(() => undefined);
  }
}

async function keepaliveTick(fx: KeepaliveEffects, last: LastKnown, timeoutMs: number, log: Logger): Promise<NodeStatus | null> {
  const { signal } = fx;
  const call = <T>(name: string, fn: () => T | Promise<T>) => bounded(name, fn, timeoutMs, signal);

  const [domains, resources, assigned, host] = await Promise.allSettled([
    call('libvirt domainLoads', () => fx.hv.domainLoads()),
    call('libvirt nodeResources', () => fx.hv.nodeResources()),
    call('readAssigned', () => fx.readAssigned(signal)),
    call('readHost', () => fx.readHost()),
  ]);
  signal.throwIfAborted();

  let hypervisorProblem: HypervisorProblem | null = null;
  const take = <K extends keyof LastKnown>(key: K, r: PromiseSettledResult<NonNullable<LastKnown[K]>>, libvirt: boolean) => {
    if (r.status === 'fulfilled') {
      last[key] = r.value;
      return;
    }
    const timedOut = r.reason instanceof CallTimeoutError;
    const message = (r.reason as Error)?.message ?? String(r.reason);
    log.warn({ err: r.reason, use: last[key] ? 'last known' : 'none' }, `keepalive: ${message}; ${last[key] ? 'using the last known value' : 'no value yet'}`);
    if (libvirt && !hypervisorProblem) {
      hypervisorProblem = {
        reason: timedOut ? 'HypervisorTimeout' : 'HypervisorError',
        message: `${message}; figures are ${last[key] ? 'the last known ones' : 'incomplete'}`,
      };
    }
  };
  take('domains', domains, true);
  take('resources', resources, true);
  take('assigned', assigned, false);
  take('host', host, false);

  const now = (fx.now ?? (() => new Date().toISOString()))();
  const compute = (current: { value: NodeStatus; version: number } | null): NodeStatus =>
    computeNodeStatus({
      node: fx.node,
      version: fx.version,
      now,
      resources: last.resources ?? { memoryKiB: 0, cpus: 0 },
      hostMemory: last.host?.memory ?? { totalKiB: 0, availableKiB: 0 },
      load: last.host?.load ?? 0,
      domains: last.domains ?? [],
      assigned: last.assigned ?? [],
      domainState: current?.value.domainState ?? 'ready',
      daemonState: fx.daemonState?.() ?? 'run',
      observedGeneration: current?.value.observedGeneration ?? -1,
      conditions: current?.value.conditions ?? [],
      ...(current?.value.flush ? { flush: current.value.flush } : {}),
      ...(current?.value.frr ? { frr: current.value.frr } : {}),
      ...(current?.value.storage ? { storage: current.value.storage } : {}),
      ...(current?.value.fence ? { fence: current.value.fence } : {}),
      hypervisorProblem,
    });

  // With a lease, a status whose figures hold is not written again (until the refresh is due):
  // the lease says the keepalive runs. Another writer's change to the status is not lost: the next
  // status write is a compare-and-set on the version this loop wrote, so it re-reads first.
  if (fx.renewLease && last.written && Date.now() - last.writtenAt < (fx.statusRefreshMs ?? 60_000) && !statusFiguresChanged(last.written.value, compute(last.written))) {
    await renew(fx, now, call, log);
    return last.written.value;
  }
  const status = await writeStatus(fx, last, compute, call, log);
  if (fx.renewLease) await renew(fx, now, call, log);
  return status;
}

/** The lease renewal of a tick; a failure is logged (the next tick renews again). */
async function renew(fx: KeepaliveEffects, now: string, call: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>, log: Logger): Promise<void> {
  try {
    await call('renewLease', () => fx.renewLease!(now));
  } catch (error) {
    if (!fx.signal.aborted) log.warn({ err: error }, 'keepalive: the lease was not renewed');
  }
}

async function writeStatus(
  fx: KeepaliveEffects,
  last: LastKnown,
  compute: (current: { value: NodeStatus; version: number } | null) => NodeStatus,
  call: <T>(name: string, fn: () => T | Promise<T>) => Promise<T>,
  log: Logger,
): Promise<NodeStatus> {
  const { signal } = fx;
  const isConflict = fx.isConflict ?? isVersionConflict;
  // A write on top of our own last one that conflicts costs no retry of the read's.
  const retries = last.written ? 2 : 1;
  let current = last.written ?? (await call('readNodeStatus', () => fx.readNodeStatus(signal)));
  last.written = null;
  for (let attempt = 0; ; attempt++) {
    const status = compute(current);
    signal.throwIfAborted();
    try {
      const version = await call('writeNodeStatus', () => fx.writeNodeStatus(status, current?.version ?? null));
      if (typeof version === 'number') last.written = { value: status, version };
      last.writtenAt = Date.now();
      return status;
    } catch (error) {
      if (attempt >= retries || !isConflict(error)) throw error;
      log.debug({ err: error }, 'node status changed under the keepalive; re-reading it');
      current = await call('readNodeStatus', () => fx.readNodeStatus(signal));
    }
  }
}

/**
 * Runs fn, giving up after timeoutMs or on abort. A call given up on is left to settle on its own
 * (its outcome is ignored); the next tick issues a fresh one.
 */
export function bounded<T>(name: string, fn: () => T | Promise<T>, timeoutMs: number, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let settled = false;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      settle();
    };
    const onAbort = () => finish(() => reject(signal.reason));
    const timer = setTimeout(() => finish(() => reject(new CallTimeoutError(name, timeoutMs))), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(fn());
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}

