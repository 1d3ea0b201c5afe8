// Numbers of libvirt's RPC protocol (src/rpc/virnetprotocol.x, src/remote/remote_protocol.x,
// src/rpc/virkeepaliveprotocol.x) and of its public enums (include/libvirt/libvirt-domain.h).

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KeepaliveProc = { PING: 1, PONG: 2 } as const;

/** virNetMessageType */
export const MessageType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
} as const;

/** virNetMessageStatus */
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

/** Size of the length word that prefixes every message (it counts itself). */
export const LEN_BYTES = 4;
/** Serialised virNetMessageHeader: prog vers proc type serial status. */
export const HEADER_BYTES = 24;
/** VIR_NET_MESSAGE_MAX of libvirt ≥ 8 (header + payload, not counting the length word). */
export const MESSAGE_MAX = 32 * 1024 * 1024;
/** Largest frame accepted by default, length word included. */
export const DEFAULT_MAX_FRAME_BYTES = MESSAGE_MAX + LEN_BYTES;

// Bounds from remote_protocol.x used when decoding.
export const REMOTE_STRING_MAX = 4194304;
export const REMOTE_DOMAIN_LIST_MAX = 16384;
export const REMOTE_MIGRATE_COOKIE_MAX = 4194304;
export const REMOTE_DOMAIN_MEMORY_STATS_MAX = 1024;
export const REMOTE_DOMAIN_JOB_STATS_MAX = 64;
export const REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX = 262144;

/** virDomainStatsTypes: which groups of statistics CONNECT_GET_ALL_DOMAIN_STATS returns. */
export const DomainStatsTypes = { STATE: 1, CPU_TOTAL: 2, BALLOON: 4, VCPU: 8 } as const;
export const REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX = 64;
export const VIR_UUID_BUFLEN = 16;

/** remote_procedure numbers used by this client. */
export const Proc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  CONNECT_GET_TYPE: 3,
  CONNECT_GET_VERSION: 4,
  NODE_GET_INFO: 6,
  DOMAIN_CREATE: 9,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_GET_INFO: 16,
  DOMAIN_LOOKUP_BY_ID: 22,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  DOMAIN_RESUME: 28,
  DOMAIN_SHUTDOWN: 33,
  DOMAIN_SUSPEND: 34,
  DOMAIN_UNDEFINE: 35,
  CONNECT_NUM_OF_DOMAINS: 51,
  CONNECT_GET_HOSTNAME: 59,
  CONNECT_SUPPORTS_FEATURE: 60,
  DOMAIN_IS_ACTIVE: 150,
  DOMAIN_IS_PERSISTENT: 151,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_MEMORY_STATS: 159,
  DOMAIN_ABORT_JOB: 164,
  DOMAIN_MIGRATE_SET_MAX_DOWNTIME: 166,
  DOMAIN_CREATE_WITH_FLAGS: 196,
  DOMAIN_MIGRATE_SET_MAX_SPEED: 207,
  DOMAIN_GET_STATE: 212,
  DOMAIN_UNDEFINE_FLAGS: 231,
  DOMAIN_DESTROY_FLAGS: 234,
  DOMAIN_MIGRATE_GET_MAX_SPEED: 242,
  DOMAIN_SHUTDOWN_FLAGS: 258,
  CONNECT_LIST_ALL_DOMAINS: 273,
  DOMAIN_GET_JOB_STATS: 298,
  CONNECT_GET_ALL_DOMAIN_STATS: 344,
  DOMAIN_MIGRATE_PERFORM3_PARAMS: 305,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  DOMAIN_DEFINE_XML_FLAGS: 350,
} as const;

const procNames = new Map<number, string>(Object.entries(Proc).map(([k, v]) => [v, k]));
export const procName = (proc: number): string => procNames.get(proc) ?? `PROC_${proc}`;

/** virDrvFeature values accepted by CONNECT_SUPPORTS_FEATURE. */
export const DrvFeature = { TYPED_PARAM_STRING: 9, PROGRAM_KEEPALIVE: 10, MIGRATION_PARAMS: 13, REMOTE_EVENT_CALLBACK: 14 } as const;

/** virDomainState */
export const DomainState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;
export type DomainStateName = Lowercase<keyof typeof DomainState>;
const stateNames: readonly DomainStateName[] = [
  'nostate',
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
];
/** `running`, `shutoff`, …; `undefined` for a number libvirt may add later. */
export const domainStateName = (state: number): DomainStateName | undefined => stateNames[state];

/** virDomainEventID */
export const DomainEventId = { LIFECYCLE: 0, REBOOT: 1, JOB_COMPLETED: 21 } as const;

/** virDomainEventType (lifecycle events) */
export const LifecycleEvent = {
  DEFINED: 0,
  UNDEFINED: 1,
  STARTED: 2,
  SUSPENDED: 3,
  RESUMED: 4,
  STOPPED: 5,
  SHUTDOWN: 6,
  PMSUSPENDED: 7,
  CRASHED: 8,
} as const;
export type LifecycleEventName = Lowercase<keyof typeof LifecycleEvent>;
const eventNames: readonly LifecycleEventName[] = [
  'defined',
  'undefined',
  'started',
  'suspended',
  'resumed',
  'stopped',
  'shutdown',
  'pmsuspended',
  'crashed',
];
export const lifecycleEventName = (event: number): LifecycleEventName | undefined => eventNames[event];

/** virDomainEvent*DetailType names, indexed by event then detail. */
const detailNames: readonly (readonly string[])[] = [
  ['added', 'updated', 'renamed', 'from_snapshot'],
  ['removed', 'renamed'],
  ['booted', 'migrated', 'restored', 'from_snapshot', 'wakeup'],
  ['paused', 'migrated', 'ioerror', 'watchdog', 'restored', 'from_snapshot', 'api_error', 'postcopy', 'postcopy_failed'],
  ['unpaused', 'migrated', 'from_snapshot', 'postcopy', 'postcopy_failed'],
  ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from_snapshot'],
  ['finished', 'guest', 'host'],
  ['memory', 'disk'],
  ['panicked', 'crashloaded'],
];
export const lifecycleDetailName = (event: number, detail: number): string | undefined => detailNames[event]?.[detail];

/** virDomainJobType */
export const JobType = { NONE: 0, BOUNDED: 1, UNBOUNDED: 2, COMPLETED: 3, FAILED: 4, CANCELLED: 5 } as const;

/** virDomainMemoryStatTags */
export const MemoryStatTag = {
  SWAP_IN: 0,
  SWAP_OUT: 1,
  MAJOR_FAULT: 2,
  MINOR_FAULT: 3,
  UNUSED: 4,
  AVAILABLE: 5,
  ACTUAL_BALLOON: 6,
  RSS: 7,
  USABLE: 8,
  LAST_UPDATE: 9,
  DISK_CACHES: 10,
  HUGETLB_PGALLOC: 11,
  HUGETLB_PGFAIL: 12,
} as const;

/** virConnectFlags for CONNECT_OPEN */
export const ConnectFlags = { RO: 1, NO_ALIASES: 2 } as const;

/** virConnectListAllDomainsFlags */
export const ListDomainsFlags = {
  ACTIVE: 1,
  INACTIVE: 2,
  PERSISTENT: 4,
  TRANSIENT: 8,
  RUNNING: 16,
  PAUSED: 32,
  SHUTOFF: 64,
  OTHER: 128,
} as const;

/** virDomainDefineFlags */
export const DefineFlags = { VALIDATE: 1 } as const;
/** virDomainUndefineFlagsValues */
export const UndefineFlags = { MANAGED_SAVE: 1, SNAPSHOTS_METADATA: 2, NVRAM: 4, KEEP_NVRAM: 8, CHECKPOINTS_METADATA: 16 } as const;
/** virDomainDestroyFlagsValues */
export const DestroyFlags = { DEFAULT: 0, GRACEFUL: 1 } as const;
/** virDomainShutdownFlagValues */
export const ShutdownFlags = { DEFAULT: 0, ACPI_POWER_BTN: 1, GUEST_AGENT: 2, INITCTL: 4, SIGNAL: 8, PARAVIRT: 16 } as const;
/** virDomainCreateFlags */
export const CreateFlags = { PAUSED: 1, AUTODESTROY: 2, BYPASS_CACHE: 4, FORCE_BOOT: 8, VALIDATE: 16 } as const;
/** virDomainXMLFlags */
export const XmlFlags = { SECURE: 1, INACTIVE: 2, UPDATE_CPU: 4, MIGRATABLE: 8 } as const;
/** virDomainGetJobStatsFlags */
export const JobStatsFlags = { COMPLETED: 1, KEEP_COMPLETED: 2 } as const;

/** virDomainMigrateFlags */
export const MigrateFlags = {
  LIVE: 1,
  PEER2PEER: 2,
  TUNNELLED: 4,
  PERSIST_DEST: 8,
  UNDEFINE_SOURCE: 16,
  PAUSED: 32,
  NON_SHARED_DISK: 64,
  NON_SHARED_INC: 128,
  CHANGE_PROTECTION: 256,
  UNSAFE: 512,
  OFFLINE: 1024,
  COMPRESSED: 2048,
  ABORT_ON_ERROR: 4096,
  AUTO_CONVERGE: 8192,
} as const;

/** VIR_MIGRATE_PARAM_* typed-parameter names. */
export const MigrateParam = {
  URI: 'migrate_uri',
  DEST_NAME: 'destination_name',
  DEST_XML: 'destination_xml',
  PERSIST_XML: 'persistent_xml',
  BANDWIDTH: 'bandwidth',
  GRAPHICS_URI: 'graphics_uri',
  LISTEN_ADDRESS: 'listen_address',
} as const;
