// The Hypervisor interface over one reconnecting libvirt RPC connection.
import { distinctUntilChanged, map, type Observable } from 'rxjs';
import { DOMAIN_RUN_STATES, type DomainRunState, type LocalDomain } from './domain-run-state.ts';
import { DomainStateCache } from './domain-state-cache.ts';
import type { DomainJob, DomainLoad, DomainSummary, LifecycleNotice, LiveMigrationOptions, MigratingHypervisor, NodeResources } from './hypervisor.ts';
import {
  DomainState,
  DomainStatsTypes,
  ErrorCode,
  isLibvirtError,
  JobStatsFlags,
  LibvirtConnection,
  ListDomainsFlags,
  migrateParams,
  MigrateFlags,
  type Domain,
  type DomainRef,
} from './libvirt/index.ts';

function runState(state: number): DomainRunState {
  return DOMAIN_RUN_STATES[state] ?? 'nostate';
}

export interface LibvirtHypervisorOptions {
  socket: string;
  uri: string;
  /** Bound on every call, so a wedged libvirtd cannot stall a reconcile forever. */
  callTimeoutMs?: number;
}

const JOB_KINDS: readonly DomainJob['kind'][] = ['none', 'bounded', 'unbounded', 'completed', 'failed', 'cancelled'];
/** virDomainPausedReason VIR_DOMAIN_PAUSED_POSTCOPY and _POSTCOPY_FAILED. */
const PAUSED_POSTCOPY = new Set([12, 13]);
/** virDomainJobOperation: MIGRATION_IN 4, MIGRATION_OUT 5. */
const JOB_OPERATION_MIGRATION_IN = 4;
const JOB_OPERATION_MIGRATION_OUT = 5;
/** Peer-to-peer live migration, persistent on the destination, undefined on the source. */
const P2P_LIVE = MigrateFlags.LIVE | MigrateFlags.PEER2PEER | MigrateFlags.PERSIST_DEST | MigrateFlags.UNDEFINE_SOURCE;
/** A migration may take long; its RPC must not hit the per-call default timeout. */
const MIGRATE_CALL_TIMEOUT_MS = 24 * 3600_000;

export class LibvirtHypervisor implements MigratingHypervisor {
  readonly lifecycle$: Observable<LifecycleNotice>;
  readonly connected$: Observable<boolean>;

  /**
   * name → {name, uuid} of domains seen, so a call needs no lookup round trip first. libvirt
   * resolves a ref by UUID, so a stale entry can only fail with NO_DOMAIN, never reach another
   * domain; entries go on (re)definition, undefinition, reconnection and NO_DOMAIN.
   */
  private readonly refs = new Map<string, Domain>();
  /** Run state and persistence per name, kept exact by events and our own calls (domain-state-cache.ts). */
  private readonly states = new DomainStateCache();
  /** Whether libvirt answers the bulk statistics call (undefined until tried). */
  private bulkStats: boolean | undefined;
  /** uuid → memory and vCPUs, for libvirts whose bulk statistics lack them; dropped on define and when gone. */
  private readonly sizes = new Map<string, { memoryKiB: number; vcpus: number }>();

  private constructor(readonly conn: LibvirtConnection) {
    conn.lifecycle$.subscribe((e) => {
      this.states.invalidate(e.domain.name);
      if (e.eventName === 'defined' || e.eventName === 'undefined') this.refs.delete(e.domain.name);
    });
    conn.state$.subscribe(() => {
      this.refs.clear();
      this.states.forgetAll();
    });
    this.lifecycle$ = conn.lifecycle$.pipe(map((e) => ({ name: e.domain.name, event: e.eventName })));
    this.connected$ = conn.state$.pipe(
      map((s) => s === 'connected'),
      distinctUntilChanged(),
    );
  }

  static async open(o: LibvirtHypervisorOptions, timeoutMs = 10_000): Promise<LibvirtHypervisor> {
    const conn = await LibvirtConnection.open(
      { target: { path: o.socket }, uri: o.uri, defaultTimeoutMs: o.callTimeoutMs ?? 30_000 },
      timeoutMs,
    );
    return new LibvirtHypervisor(conn);
  }

  async domainState(name: string): Promise<LocalDomain | null> {
    const known = this.states.lookup(name);
    if (known !== undefined) return known;
    const summary = await this.getDomain(name);
    return summary && { state: summary.state, persistent: summary.persistent };
  }

  knownDomainState(name: string): LocalDomain | null | undefined {
    return this.states.lookup(name);
  }

  async refreshDomainStates(): Promise<string[]> {
    const ticket = this.states.begin();
    const [all, persistent, running, paused, shutoff] = await Promise.all(
      [0, ListDomainsFlags.PERSISTENT, ListDomainsFlags.RUNNING, ListDomainsFlags.PAUSED, ListDomainsFlags.SHUTOFF].map((flags) =>
        this.conn.connectListAllDomains(flags).then((list) => new Set(list.map((d) => d.name))),
      ),
    ) as [Set<string>, Set<string>, Set<string>, Set<string>, Set<string>];
    const byState: Array<[DomainRunState, Set<string>]> = [['running', running], ['paused', paused], ['shutoff', shutoff]];
    const entries = new Map<string, LocalDomain | undefined>();
    for (const name of all) {
      // Lists are separate calls: a domain whose state changed in between shows in none or two,
      // stays unknown, and its lifecycle event invalidates it anyway.
      const states = byState.filter(([, names]) => names.has(name));
      entries.set(name, states.length === 1 ? { state: states[0]![0], persistent: persistent.has(name) } : undefined);
    }
    this.states.storeListing(entries, ticket);
    return [...all];
  }

  async getDomain(name: string): Promise<DomainSummary | null> {
    const ticket = this.states.begin();
    const summary = await this.readDomain(name);
    this.states.store(name, summary && { state: summary.state, persistent: summary.persistent }, ticket);
    return summary;
  }

  private async readDomain(name: string): Promise<DomainSummary | null> {
    const cached = this.refs.get(name);
    if (cached) {
      try {
        return await this.summarise(cached);
      } catch (error) {
        if (!isLibvirtError(error, ErrorCode.NO_DOMAIN)) throw error;
        this.refs.delete(name);
      }
    }
    let ref: DomainRef;
    try {
      ref = await this.ref(name);
    } catch (error) {
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
      throw error;
    }
    return this.summarise(ref).catch((error: unknown) => {
      // Gone between the lookup and the next call.
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) {
        this.refs.delete(name);
        return null;
      }
      throw error;
    });
  }

  /** Every domain with its state, memory and vCPUs (domainLoads) and whether it is persistent: one call more. */
  async listDomains(): Promise<DomainSummary[]> {
    const [loads, persistent] = await Promise.all([this.domainLoads(), this.conn.connectListAllDomains(ListDomainsFlags.PERSISTENT)]);
    const persistentNames = new Set(persistent.map((d) => d.name));
    return loads.map((d) => ({ ...d, persistent: persistentNames.has(d.name) }));
  }

  /**
   * Every domain with its state, memory and vCPUs: one call whatever the number of domains (bulk
   * statistics). Memory and vCPUs come from the bulk reply when libvirt gives them (QEMU:
   * balloon.current, vcpu.current), else from one DOMAIN_GET_INFO per domain the first time it is
   * seen, kept until it is redefined or gone (the test driver gives only state). A libvirt without
   * the bulk call gets DOMAIN_GET_INFO per domain each time.
   */
  async domainLoads(): Promise<DomainLoad[]> {
    if (this.bulkStats !== false) {
      try {
        const records = await this.conn.connectGetAllDomainStats(DomainStatsTypes.STATE | DomainStatsTypes.BALLOON | DomainStatsTypes.VCPU);
        this.bulkStats = true;
        const seen = new Set<string>();
        // Sized from the record (or an earlier answer) without a turn of the event loop; only a
        // domain that reports neither costs a call. A keepalive tick maps every domain here.
        const out: Array<DomainLoad | Promise<DomainLoad | null>> = [];
        for (const { domain, params } of records) {
          seen.add(domain.uuid);
          const memory = params['balloon.current'];
          const vcpus = params['vcpu.current'];
          const state = runState(Number(params['state.state'] ?? DomainState.NOSTATE));
          const sized = memory !== undefined && vcpus !== undefined ? { memoryKiB: Number(memory), vcpus: Number(vcpus) } : this.sizes.get(domain.uuid);
          out.push(sized ? { name: domain.name, uuid: domain.uuid, state, ...sized } : this.sizedByInfo(domain, state));
        }
        for (const uuid of [...this.sizes.keys()]) if (!seen.has(uuid)) this.sizes.delete(uuid);
        const loads = out.some((d) => d instanceof Promise) ? await Promise.all(out) : (out as DomainLoad[]);
        return loads.filter((d): d is DomainLoad => d !== null);
      } catch (error) {
        if (this.bulkStats === true || !isLibvirtError(error, ErrorCode.NO_SUPPORT)) throw error;
        this.bulkStats = false;
      }
    }
    const all = await this.conn.connectListAllDomains(0);
    const infos = await Promise.all(
      all.map(async (d): Promise<DomainLoad | null> => {
        try {
          const info = await this.conn.domainGetInfo(d);
          return { name: d.name, uuid: d.uuid, state: runState(info.state), memoryKiB: info.memoryKiB, vcpus: info.nrVirtCpu };
        } catch (error) {
          if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
          throw error;
        }
      }),
    );
    return infos.filter((d): d is DomainLoad => d !== null);
  }

  /** A domain's load when its stats record had no sizes: memory and vCPUs from its info (remembered), or null once it is gone. */
  private async sizedByInfo(domain: DomainRef, state: DomainRunState): Promise<DomainLoad | null> {
    try {
      const info = await this.conn.domainGetInfo(domain);
      const sized = { memoryKiB: info.memoryKiB, vcpus: info.nrVirtCpu };
      this.sizes.set(domain.uuid, sized);
      return { name: domain.name, uuid: domain.uuid, state, ...sized };
    } catch (error) {
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
      throw error;
    }
  }

  async define(xml: string): Promise<void> {
    const domain = await this.conn.domainDefineXmlFlags(xml, 0);
    this.states.invalidate(domain.name);
    this.sizes.delete(domain.uuid);
    this.refs.set(domain.name, domain);
  }

  async start(name: string): Promise<void> {
    await this.mutating(name, () => this.withRef(name, (ref) => this.conn.domainCreate(ref)));
  }

  async shutdown(name: string): Promise<void> {
    await this.mutating(name, async () => this.conn.domainShutdown(await this.ref(name)));
  }

  async destroy(name: string): Promise<void> {
    await this.mutating(name, async () => {
      try {
        await this.withRef(name, (ref) => this.conn.domainDestroy(ref));
      } catch (error) {
        // Already off, or gone: the wanted end state.
        if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) this.refs.delete(name);
        else if (!isLibvirtError(error, ErrorCode.OPERATION_INVALID)) throw error;
      }
    });
  }

  async undefine(name: string): Promise<void> {
    await this.mutating(name, async () => this.conn.domainUndefineFlags(await this.ref(name), 0));
    this.refs.delete(name);
  }

  async nodeResources(): Promise<NodeResources> {
    const info = await this.conn.nodeGetInfo();
    return { memoryKiB: info.memoryKiB, cpus: info.cpus };
  }

  async migrateLive(name: string, destUri: string, migrateUri: string, opts: LiveMigrationOptions, signal?: AbortSignal): Promise<void> {
    const ref = await this.ref(name);
    const params = migrateParams({ uri: migrateUri, ...(opts.bandwidthMiBs !== undefined ? { bandwidthMiBs: opts.bandwidthMiBs } : {}) });
    // Set before the job starts: libvirt applies the domain's max downtime to the next migration.
    if (opts.maxDowntimeMs !== undefined) await this.conn.domainMigrateSetMaxDowntime(ref, opts.maxDowntimeMs).catch(() => undefined);
    await this.mutating(name, () =>
      this.conn.domainMigratePerform3Params(ref, destUri, params, P2P_LIVE, {
        timeoutMs: MIGRATE_CALL_TIMEOUT_MS,
        ...(signal ? { signal } : {}),
      }),
    );
  }

  async abortJob(name: string): Promise<void> {
    await this.mutating(name, async () => this.conn.domainAbortJob(await this.ref(name)));
  }

  async inPostcopy(name: string): Promise<boolean> {
    const state = await this.conn.domainGetState(await this.ref(name));
    return state.state === DomainState.PAUSED && PAUSED_POSTCOPY.has(state.reason);
  }

  async jobStats(name: string, opts: { completed?: boolean } = {}): Promise<DomainJob | null> {
    let ref: Domain;
    try {
      ref = await this.conn.domainLookupByName(name);
    } catch (error) {
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
      throw error;
    }
    try {
      const [job, state] = await Promise.all([
        this.conn.domainGetJobStats(ref, opts.completed ? JobStatsFlags.COMPLETED : 0),
        this.conn.domainGetState(ref),
      ]);
      const num = (key: string): number => {
        const v = job.stats[key];
        return typeof v === 'number' && Number.isFinite(v) ? v : 0;
      };
      const op = job.stats['operation'];
      const kind = JOB_KINDS[job.type] ?? 'none';
      return {
        kind,
        active: kind === 'bounded' || kind === 'unbounded',
        operation: op === undefined ? undefined : op === JOB_OPERATION_MIGRATION_OUT ? 'migrationOut' : op === JOB_OPERATION_MIGRATION_IN ? 'migrationIn' : 'other',
        postcopy: state.state === DomainState.PAUSED && PAUSED_POSTCOPY.has(state.reason),
        elapsedMs: num('time_elapsed'),
        processedBytes: num('data_processed') || num('memory_processed'),
        remainingBytes: num('data_remaining') || num('memory_remaining'),
        totalBytes: num('data_total') || num('memory_total'),
        bandwidthBps: num('memory_bps'),
        downtimeMs: typeof job.stats['downtime'] === 'number' ? (job.stats['downtime'] as number) : undefined,
      };
    } catch (error) {
      if (isLibvirtError(error, ErrorCode.NO_DOMAIN)) return null;
      throw error;
    }
  }

  async resume(name: string): Promise<void> {
    await this.mutating(name, async () => this.conn.domainResume(await this.ref(name)));
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  /** A call that may change `name`: its cached state is forgotten before and after (cache C1). */
  private async mutating<T>(name: string, call: () => Promise<T>): Promise<T> {
    this.states.invalidate(name);
    try {
      return await call();
    } finally {
      this.states.invalidate(name);
    }
  }

  /** fn on the domain's ref; with the ref known, fn is called at once (a start is sent in the caller's turn). */
  private withRef<T>(name: string, fn: (ref: DomainRef) => Promise<T>): Promise<T> {
    const cached = this.refs.get(name);
    return cached ? fn(cached) : this.ref(name).then(fn);
  }

  private async ref(name: string): Promise<DomainRef> {
    const cached = this.refs.get(name);
    if (cached) return cached;
    const found = await this.conn.domainLookupByName(name);
    this.refs.set(name, found);
    return found;
  }

  private async summarise(ref: DomainRef): Promise<DomainSummary> {
    const [info, persistent] = await Promise.all([this.conn.domainGetInfo(ref), this.conn.domainIsPersistent(ref)]);
    return {
      name: ref.name,
      uuid: ref.uuid,
      state: runState(info.state),
      persistent,
      memoryKiB: info.memoryKiB,
      vcpus: info.nrVirtCpu,
    };
  }
}
