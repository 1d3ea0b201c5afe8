// Typed libvirt procedures over an RpcChannel (one Transport, or a reconnecting LibvirtConnection).
// Argument and reply layouts follow libvirt's src/remote/remote_protocol.x.

import type { Observable } from 'rxjs';
import {
  domainStateName,
  MigrateParam,
  Proc,
  REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX,
  REMOTE_DOMAIN_JOB_STATS_MAX,
  REMOTE_DOMAIN_LIST_MAX,
  REMOTE_DOMAIN_MEMORY_STATS_MAX,
  REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX,
  REMOTE_MIGRATE_COOKIE_MAX,
  REMOTE_STRING_MAX,
  type DomainStateName,
} from './constants.ts';
import { lifecycleEvents, type LifecycleEvent } from './events.ts';
import { Transport, type CallOptions, type RemoteEvent, type RpcChannel, type SocketTarget, type TransportOptions } from './transport.ts';
import { DOMAIN_MIN_BYTES, readDomain, uuidToBytes, writeDomain, type Domain, type DomainRef } from './types.ts';
import {
  readTypedParams,
  typedParamsToRecord,
  writeTypedParams,
  XdrReader,
  XdrWriter,
  type TypedParam,
  type TypedParamValue,
} from './xdr.ts';

export interface DomainStateInfo {
  /** virDomainState */
  state: number;
  /** virDomain*Reason of `state` */
  reason: number;
  stateName: DomainStateName | undefined;
}

/** One domain's statistics from CONNECT_GET_ALL_DOMAIN_STATS (names as libvirt's: state.state, balloon.current, vcpu.current…). */
export interface DomainStatsRecord {
  domain: Domain;
  params: Record<string, TypedParamValue>;
}

export interface DomainInfo {
  state: number;
  stateName: DomainStateName | undefined;
  maxMemKiB: number;
  memoryKiB: number;
  nrVirtCpu: number;
  cpuTimeNs: bigint;
}

export interface NodeInfo {
  model: string;
  memoryKiB: number;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
}

export interface MemoryStat {
  /** virDomainMemoryStatTags */
  tag: number;
  value: bigint;
}

export interface JobStats {
  /** virDomainJobType: NONE 0, BOUNDED 1, UNBOUNDED 2, COMPLETED 3, FAILED 4, CANCELLED 5 */
  type: number;
  params: TypedParam[];
  /** `params` as a record; 64-bit values converted to number (exact below 2^53). */
  stats: Record<string, number | string | boolean>;
}

export interface MigrateParamsInput {
  /** VIR_MIGRATE_PARAM_URI (`migrate_uri`), e.g. `tcp://198.51.100.2` */
  uri?: string;
  /** VIR_MIGRATE_PARAM_BANDWIDTH (`bandwidth`), MiB/s */
  bandwidthMiBs?: number;
  destName?: string;
  destXml?: string;
  persistXml?: string;
  listenAddress?: string;
}

/** Typed parameters for DOMAIN_MIGRATE_PERFORM3_PARAMS. */
export function migrateParams(p: MigrateParamsInput): TypedParam[] {
  const out: TypedParam[] = [];
  if (p.uri !== undefined) out.push({ field: MigrateParam.URI, type: 'string', value: p.uri });
  if (p.bandwidthMiBs !== undefined) out.push({ field: MigrateParam.BANDWIDTH, type: 'ullong', value: BigInt(p.bandwidthMiBs) });
  if (p.destName !== undefined) out.push({ field: MigrateParam.DEST_NAME, type: 'string', value: p.destName });
  if (p.destXml !== undefined) out.push({ field: MigrateParam.DEST_XML, type: 'string', value: p.destXml });
  if (p.persistXml !== undefined) out.push({ field: MigrateParam.PERSIST_XML, type: 'string', value: p.persistXml });
  if (p.listenAddress !== undefined) out.push({ field: MigrateParam.LISTEN_ADDRESS, type: 'string', value: p.listenAddress });
  return out;
}

type Args = (w: XdrWriter) => void;

const str = (s: string) => (w: XdrWriter) => w.string(s, REMOTE_STRING_MAX);
const dom = (d: DomainRef) => (w: XdrWriter) => writeDomain(w, d);
const domFlags = (d: DomainRef, flags: number) => (w: XdrWriter) => {
  writeDomain(w, d);
  w.uint(flags);
};
const readDomainReply = (r: XdrReader): Domain => readDomain(r);

export interface LibvirtClientOptions {
  /** Applied to every call that does not pass its own timeoutMs. */
  defaultTimeoutMs?: number;
}

export class LibvirtClient {
  /** Lifecycle events of every callback registered on this connection (see connectDomainEventCallbackRegisterAny). */
  readonly lifecycle$: Observable<LifecycleEvent>;
  /** Every event message of the remote program, undecoded (for event types other than lifecycle). */
  readonly remoteEvents$: Observable<RemoteEvent>;

  constructor(
    protected readonly channel: RpcChannel,
    protected readonly clientOptions: LibvirtClientOptions = {},
  ) {
    this.remoteEvents$ = channel.events$;
    this.lifecycle$ = channel.events$.pipe(lifecycleEvents());
  }

  /** Connects one socket (no reconnection) and runs CONNECT_OPEN on it. */
  static async connect(
    target: SocketTarget,
    uri: string,
    opts: TransportOptions & LibvirtClientOptions & { openFlags?: number } = {},
  ): Promise<{ client: LibvirtClient; transport: Transport }> {
    const transport = await Transport.connect(target, opts);
    const client = new LibvirtClient(transport, opts);
    try {
      await client.connectOpen(uri, opts.openFlags ?? 0);
    } catch (err) {
      await transport.close();
      throw err;
    }
    return { client, transport };
  }

  protected async invoke<T>(proc: number, args: Args | undefined, read: ((r: XdrReader) => T) | undefined, opts?: CallOptions): Promise<T> {
    let payload: Buffer | undefined;
    if (args) {
      const w = new XdrWriter();
      args(w);
      payload = w.finish();
    }
    const body = await this.channel.call(proc, payload, {
      timeoutMs: opts?.timeoutMs ?? this.clientOptions.defaultTimeoutMs,
      signal: opts?.signal,
    });
    const r = new XdrReader(body);
    const out = read ? read(r) : (undefined as T);
    r.done();
    return out;
  }

  // ---- connection ----

  connectOpen(uri: string | null, flags = 0, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.CONNECT_OPEN, (w) => w.optional(uri, (ww, u) => ww.string(u, REMOTE_STRING_MAX)).uint(flags), undefined, opts);
  }

  connectClose(opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.CONNECT_CLOSE, undefined, undefined, opts);
  }

  connectGetHostname(opts?: CallOptions): Promise<string> {
    return this.invoke(Proc.CONNECT_GET_HOSTNAME, undefined, (r) => r.string(REMOTE_STRING_MAX), opts);
  }

  /** libvirt version as major * 1,000,000 + minor * 1,000 + release. */
  connectGetLibVersion(opts?: CallOptions): Promise<number> {
    return this.invoke(Proc.CONNECT_GET_LIB_VERSION, undefined, (r) => Number(r.uhyper()), opts);
  }

  connectSupportsFeature(feature: number, opts?: CallOptions): Promise<boolean> {
    return this.invoke(Proc.CONNECT_SUPPORTS_FEATURE, (w) => w.int(feature), (r) => r.int() !== 0, opts);
  }

  nodeGetInfo(opts?: CallOptions): Promise<NodeInfo> {
    return this.invoke(
      Proc.NODE_GET_INFO,
      undefined,
      (r) => {
        // `char model[32]`: a fixed array of XDR chars, each one a 4-byte int.
        const bytes: number[] = [];
        for (let i = 0; i < 32; i++) bytes.push(r.int() & 0xff);
        const end = bytes.indexOf(0);
        const model = Buffer.from(end === -1 ? bytes : bytes.slice(0, end)).toString('utf8');
        return {
          model,
          memoryKiB: Number(r.uhyper()),
          cpus: r.int(),
          mhz: r.int(),
          nodes: r.int(),
          sockets: r.int(),
          cores: r.int(),
          threads: r.int(),
        };
      },
      opts,
    );
  }

  // ---- domains ----

  /** How many domains are active (running or paused): one int, however many there are. */
  connectNumOfDomains(opts?: CallOptions): Promise<number> {
    return this.invoke(Proc.CONNECT_NUM_OF_DOMAINS, undefined, (r) => r.int(), opts);
  }

  /** Flags: ListDomainsFlags (0 = all). */
  connectListAllDomains(flags = 0, opts?: CallOptions): Promise<Domain[]> {
    return this.invoke(
      Proc.CONNECT_LIST_ALL_DOMAINS,
      (w) => w.int(1).uint(flags),
      (r) => {
        const domains = r.array(REMOTE_DOMAIN_LIST_MAX, readDomain, DOMAIN_MIN_BYTES);
        r.uint();
        return domains;
      },
      opts,
    );
  }

  /**
   * Statistics of every domain in one call (virConnectGetAllDomainStats): `stats` is a sum of
   * DomainStatsTypes, `flags` filters the domains (ListDomainsFlags' values: active, persistent…).
   */
  connectGetAllDomainStats(stats: number, flags = 0, opts?: CallOptions): Promise<DomainStatsRecord[]> {
    return this.invoke(
      Proc.CONNECT_GET_ALL_DOMAIN_STATS,
      (w) => w.uint(0).uint(stats).uint(flags), // no domains listed: all of them
      (r) =>
        r.array(
          REMOTE_DOMAIN_LIST_MAX,
          (rr) => ({ domain: readDomain(rr), params: typedParamsToRecord(readTypedParams(rr, REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX, REMOTE_STRING_MAX)) }),
          DOMAIN_MIN_BYTES + 4,
        ),
      opts,
    );
  }

  domainLookupByName(name: string, opts?: CallOptions): Promise<Domain> {
    return this.invoke(Proc.DOMAIN_LOOKUP_BY_NAME, str(name), readDomainReply, opts);
  }

  domainLookupByUuid(uuid: string, opts?: CallOptions): Promise<Domain> {
    const bytes = uuidToBytes(uuid);
    return this.invoke(Proc.DOMAIN_LOOKUP_BY_UUID, (w) => w.fixedOpaque(bytes, 16), readDomainReply, opts);
  }

  domainLookupById(id: number, opts?: CallOptions): Promise<Domain> {
    return this.invoke(Proc.DOMAIN_LOOKUP_BY_ID, (w) => w.int(id), readDomainReply, opts);
  }

  /** Flags: DefineFlags. */
  domainDefineXmlFlags(xml: string, flags = 0, opts?: CallOptions): Promise<Domain> {
    return this.invoke(Proc.DOMAIN_DEFINE_XML_FLAGS, (w) => w.string(xml, REMOTE_STRING_MAX).uint(flags), readDomainReply, opts);
  }

  /** Flags: UndefineFlags. */
  domainUndefineFlags(d: DomainRef, flags = 0, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_UNDEFINE_FLAGS, domFlags(d, flags), undefined, opts);
  }

  domainCreate(d: DomainRef, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_CREATE, dom(d), undefined, opts);
  }

  /** Flags: CreateFlags. Returns the domain with its new id. */
  domainCreateWithFlags(d: DomainRef, flags = 0, opts?: CallOptions): Promise<Domain> {
    return this.invoke(Proc.DOMAIN_CREATE_WITH_FLAGS, domFlags(d, flags), readDomainReply, opts);
  }

  domainShutdown(d: DomainRef, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_SHUTDOWN, dom(d), undefined, opts);
  }

  /** Flags: ShutdownFlags. */
  domainShutdownFlags(d: DomainRef, flags = 0, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_SHUTDOWN_FLAGS, domFlags(d, flags), undefined, opts);
  }

  domainDestroy(d: DomainRef, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_DESTROY, dom(d), undefined, opts);
  }

  /** Flags: DestroyFlags. */
  domainDestroyFlags(d: DomainRef, flags = 0, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_DESTROY_FLAGS, domFlags(d, flags), undefined, opts);
  }

  domainSuspend(d: DomainRef, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_SUSPEND, dom(d), undefined, opts);
  }

  domainResume(d: DomainRef, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_RESUME, dom(d), undefined, opts);
  }

  domainGetState(d: DomainRef, flags = 0, opts?: CallOptions): Promise<DomainStateInfo> {
    return this.invoke(
      Proc.DOMAIN_GET_STATE,
      domFlags(d, flags),
      (r) => {
        const state = r.int();
        const reason = r.int();
        return { state, reason, stateName: domainStateName(state) };
      },
      opts,
    );
  }

  domainGetInfo(d: DomainRef, opts?: CallOptions): Promise<DomainInfo> {
    return this.invoke(
      Proc.DOMAIN_GET_INFO,
      dom(d),
      (r) => {
        const state = r.uint() & 0xff; // unsigned char, sent as a 4-byte int
        return {
          state,
          stateName: domainStateName(state),
          maxMemKiB: Number(r.uhyper()),
          memoryKiB: Number(r.uhyper()),
          nrVirtCpu: r.uint() & 0xffff, // unsigned short, sent as a 4-byte int
          cpuTimeNs: r.uhyper(),
        };
      },
      opts,
    );
  }

  domainIsActive(d: DomainRef, opts?: CallOptions): Promise<boolean> {
    return this.invoke(Proc.DOMAIN_IS_ACTIVE, dom(d), (r) => r.int() !== 0, opts);
  }

  domainIsPersistent(d: DomainRef, opts?: CallOptions): Promise<boolean> {
    return this.invoke(Proc.DOMAIN_IS_PERSISTENT, dom(d), (r) => r.int() !== 0, opts);
  }

  /** Flags: XmlFlags. */
  domainGetXmlDesc(d: DomainRef, flags = 0, opts?: CallOptions): Promise<string> {
    return this.invoke(Proc.DOMAIN_GET_XML_DESC, domFlags(d, flags), (r) => r.string(REMOTE_STRING_MAX), opts);
  }

  domainMemoryStats(d: DomainRef, maxStats = 16, flags = 0, opts?: CallOptions): Promise<MemoryStat[]> {
    return this.invoke(
      Proc.DOMAIN_MEMORY_STATS,
      (w) => {
        writeDomain(w, d);
        w.uint(maxStats).uint(flags);
      },
      (r) => r.array(REMOTE_DOMAIN_MEMORY_STATS_MAX, (rr) => ({ tag: rr.int(), value: rr.uhyper() }), 12),
      opts,
    );
  }

  /** Flags: JobStatsFlags. */
  domainGetJobStats(d: DomainRef, flags = 0, opts?: CallOptions): Promise<JobStats> {
    return this.invoke(
      Proc.DOMAIN_GET_JOB_STATS,
      domFlags(d, flags),
      (r) => {
        const type = r.int();
        const params = readTypedParams(r, REMOTE_DOMAIN_JOB_STATS_MAX, REMOTE_STRING_MAX);
        const stats: Record<string, number | string | boolean> = {};
        for (const [k, v] of Object.entries(typedParamsToRecord(params))) stats[k] = typeof v === 'bigint' ? Number(v) : v;
        return { type, params, stats };
      },
      opts,
    );
  }

  domainAbortJob(d: DomainRef, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.DOMAIN_ABORT_JOB, dom(d), undefined, opts);
  }

  /** Maximum tolerable downtime of a live migration, in milliseconds. */
  domainMigrateSetMaxDowntime(d: DomainRef, downtimeMs: number | bigint, flags = 0, opts?: CallOptions): Promise<void> {
    return this.invoke(
      Proc.DOMAIN_MIGRATE_SET_MAX_DOWNTIME,
      (w) => {
        writeDomain(w, d);
        w.uhyper(downtimeMs).uint(flags);
      },
      undefined,
      opts,
    );
  }

  /** Bandwidth of a (running or future) migration in MiB/s. */
  domainMigrateSetMaxSpeed(d: DomainRef, bandwidthMiBs: number | bigint, flags = 0, opts?: CallOptions): Promise<void> {
    return this.invoke(
      Proc.DOMAIN_MIGRATE_SET_MAX_SPEED,
      (w) => {
        writeDomain(w, d);
        w.uhyper(bandwidthMiBs).uint(flags);
      },
      undefined,
      opts,
    );
  }

  domainMigrateGetMaxSpeed(d: DomainRef, flags = 0, opts?: CallOptions): Promise<bigint> {
    return this.invoke(Proc.DOMAIN_MIGRATE_GET_MAX_SPEED, domFlags(d, flags), (r) => r.uhyper(), opts);
  }

  /**
   * Peer-to-peer migration (flags must include MigrateFlags.PEER2PEER): libvirtd itself connects
   * to `dconnuri` (e.g. `qemu+tcp://198.51.100.2/system`). Resolves when the migration has ended;
   * an aborted migration rejects with LibvirtError code OPERATION_ABORTED (78). Build `params`
   * with migrateParams(). Returns the (normally empty) cookie.
   */
  domainMigratePerform3Params(
    d: DomainRef,
    dconnuri: string | null,
    params: readonly TypedParam[],
    flags: number,
    opts?: CallOptions,
  ): Promise<Uint8Array> {
    return this.invoke(
      Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS,
      (w) => {
        writeDomain(w, d);
        w.optional(dconnuri, (ww, u) => ww.string(u, REMOTE_STRING_MAX));
        writeTypedParams(w, params, REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX, REMOTE_STRING_MAX);
        w.opaque(new Uint8Array(0), REMOTE_MIGRATE_COOKIE_MAX);
        w.uint(flags);
      },
      (r) => r.opaque(REMOTE_MIGRATE_COOKIE_MAX),
      opts,
    );
  }

  // ---- events ----

  /** Registers for `eventId` (DomainEventId) of one domain or (null) all; returns the callback id. */
  connectDomainEventCallbackRegisterAny(eventId: number, d: DomainRef | null = null, opts?: CallOptions): Promise<number> {
    return this.invoke(
      Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
      (w) => {
        w.int(eventId);
        w.optional(d, (ww, dd) => writeDomain(ww, dd));
      },
      (r) => r.int(),
      opts,
    );
  }

  connectDomainEventCallbackDeregisterAny(callbackId: number, opts?: CallOptions): Promise<void> {
    return this.invoke(Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, (w) => w.int(callbackId), undefined, opts);
  }
}
