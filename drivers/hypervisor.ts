// The hypervisor as the reconcilers need it: domains by name, their state, and lifecycle events.
// One real implementation (libvirt-hypervisor.ts) speaks libvirt's RPC protocol.
import type { Observable } from 'rxjs';
import type { DomainRunState, LocalDomain } from './domain-run-state.ts';


export interface DomainSummary {
  name: string;
  uuid: string;
  state: DomainRunState;
  persistent: boolean;
  /** Current memory of the domain (libvirt's domain info), KiB. */
  memoryKiB: number;
  vcpus: number;
}

/** A domain's state and size, its persistence not asked. */
export type DomainLoad = Omit<DomainSummary, 'persistent'>;

export interface NodeResources {
  memoryKiB: number;
  cpus: number;
}

export interface LifecycleNotice {
  name: string;
  event: string;
}

export interface Hypervisor {
  /** A fresh read of the domain (and of its state into the state cache). */
  getDomain(name: string): Promise<DomainSummary | null>;
  /**
   * Run state and persistence, from the driver's state cache when it is sure (no lifecycle event
   * or call of ours since it last read the domain), else read: a reconcile's usual question
   * without a round trip. See drivers/domain-state-cache.ts.
   */
  domainState(name: string): Promise<LocalDomain | null>;
  /** The state cache's answer when it is sure (as domainState would give it), else undefined; never a call. */
  knownDomainState(name: string): LocalDomain | null | undefined;
  /** Lists every domain with its state into the state cache; returns their names. */
  refreshDomainStates(): Promise<string[]>;
  listDomains(): Promise<DomainSummary[]>;
  /** listDomains without persistence: one call fewer (the keepalive's, every few seconds). */
  domainLoads(): Promise<DomainLoad[]>;
  define(xml: string): Promise<void>;
  start(name: string): Promise<void>;
  /** Asks the guest to shut down (ACPI); returns at once. */
  shutdown(name: string): Promise<void>;
  /** Stops the domain at once; a domain already off (or gone) is left as it is, not an error. */
  destroy(name: string): Promise<void>;
  undefine(name: string): Promise<void>;
  nodeResources(): Promise<NodeResources>;
  /** "Look at this domain again" signals. */
  readonly lifecycle$: Observable<LifecycleNotice>;
  readonly connected$: Observable<boolean>;
  close(): Promise<void>;
}

/** A domain's current (or, with `completed`, last finished) job, as the migration reconciler needs it. */
export interface DomainJob {
  kind: 'none' | 'bounded' | 'unbounded' | 'completed' | 'failed' | 'cancelled';
  /** A job is running now (bounded or unbounded). */
  active: boolean;
  /** libvirt's job operation, e.g. 'migrationOut'; undefined when libvirt does not say. */
  operation: 'migrationOut' | 'migrationIn' | 'other' | undefined;
  /** The source is in post-copy (paused, reason post-copy): such a migration must never be aborted. */
  postcopy: boolean;
  elapsedMs: number;
  processedBytes: number;
  remainingBytes: number;
  totalBytes: number;
  /** Bytes per second. */
  bandwidthBps: number;
  /** Downtime of a completed migration, when libvirt reports it. */
  downtimeMs: number | undefined;
}

export interface LiveMigrationOptions {
  /** Bandwidth cap in MiB/s (libvirt's unit); unlimited when absent. */
  bandwidthMiBs?: number;
  /** Longest pause of the guest at switch-over. */
  maxDowntimeMs?: number;
}

/**
 * The migration operations (reconcilers/migration/execute.ts). A sibling of Hypervisor rather than
 * more required members of it, so test doubles of the domain-only interface keep compiling.
 */
export interface MigrationOps {
  /**
   * Peer-to-peer live migration to `destUri` (e.g. `qemu+tcp://198.51.100.2/system`) with the data
   * stream on `migrateUri` (`tcp://198.51.100.2`); persistent on the destination, undefined on the
   * source. Resolves once the guest runs on the destination; rejects when the job fails or is
   * aborted (the guest then still runs here). `signal` only stops waiting: libvirt carries on.
   */
  migrateLive(name: string, destUri: string, migrateUri: string, opts: LiveMigrationOptions, signal?: AbortSignal): Promise<void>;
  /** virDomainAbortJob: cancels the running job (a migration leaves the guest running here). */
  abortJob(name: string): Promise<void>;
  /** The guest is in post-copy here (from its state and reason only: no call into QEMU). */
  inPostcopy(name: string): Promise<boolean>;
  /** The domain's current job (or its last completed one); null when there is no such domain. */
  jobStats(name: string, opts?: { completed?: boolean }): Promise<DomainJob | null>;
  /** Resumes a paused guest. */
  resume(name: string): Promise<void>;
}

export type MigratingHypervisor = Hypervisor & MigrationOps;
