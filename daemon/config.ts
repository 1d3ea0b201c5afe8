// The daemon's own configuration: a YAML file, then environment variables, then flags (later wins).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_ROOT, InterfaceNameSchema, Ipv4AddressSchema, NameSchema, ValidationError, parseWith } from '../schemas/index.ts';

const positiveInt = z.number().int().min(1);

export const DaemonConfigSchema = z.strictObject({
  node: NameSchema,
  zookeeper: z
    .strictObject({
      hosts: z.string().min(1).default('127.0.0.1:2181'),
      root: z.string().default(DEFAULT_ROOT),
      sessionTimeoutMs: positiveInt.default(10_000),
      /** user:password for digest ACLs. */
      auth: z.string().regex(/^[^:]+:.+$/, 'must be user:password').optional(),
    })
    .prefault({}),
  libvirt: z
    .strictObject({
      socket: z.string().min(1).default('/run/libvirt/libvirt-sock'),
      uri: z.string().min(1).default('qemu:///system'),
    })
    .prefault({}),
  /**
   * How peers reach this node for live migration; published in the node's alive znode
   * (`{…, migration: {uri, migrateUri}}`) so a source can look its target up. Without `uri` the node
   * accepts no live migration (shutdown migrations still work).
   */
  /**
   * Network namespace (as named by `ip netns`) holding this node's VM bridges, when it is not the
   * daemon's own (the sandbox keeps each simulated node's bridges in its own namespace).
   */
  netns: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a network namespace name').optional(),
  network: z
    .strictObject({
      /** Converge this node's links to the Network specs (the network concern). */
      enabled: z.boolean().default(true),
      /** This node's address on the cluster network: the VXLANs' `local` address. */
      clusterAddress: Ipv4AddressSchema.optional(),
      /** The device that carries the cluster network (the VXLANs' `dev`). */
      clusterDevice: InterfaceNameSchema.optional(),
      /** Interface group of every link the daemon creates; it never touches a link outside it. */
      group: positiveInt.max(2_147_483_647).default(4244),
    })
    .prefault({}),
  frr: z
    .strictObject({
      /**
       * Keep this node's FRR config in sync with the cluster config (the FRR concern). It acts only
       * when the cluster config has a `bgp` section; FRR itself is started by systemd, not here.
       */
      enabled: z.boolean().default(true),
      confDir: z.string().min(1).default('/etc/frr'),
      vtySocket: z.string().min(1).default('/var/run/frr'),
      runDir: z.string().min(1).default('/var/run/frr'),
      binDir: z.string().min(1).default('/usr/bin'),
      reloadScript: z.string().min(1).default('/usr/lib/frr/frr-reload.py'),
      /** FRR's hostname when it runs in a UTS namespace other than the daemon's (test rig, sandbox). */
      hostname: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/, 'must be a hostname').optional(),
      /** How often to prove the config in sync and read BGP state when nothing else asks. */
      resyncMs: positiveInt.default(10_000),
      timeoutMs: positiveInt.default(10_000),
    })
    .prefault({}),
  primary: z
    .strictObject({
      /**
       * Take part in the primary coordinator's election when this node is a coordinator (the
       * primary concern): hold the managed networks' gateways and run their DHCP/DNS when primary.
       */
      enabled: z.boolean().default(true),
      /** Interface group of the gateway links (vkgw<N>); never the network concern's group. */
      group: positiveInt.max(2_147_483_647).default(4245),
      /** How long each phase of a planned hand-over waits for the other side. */
      barrierMs: positiveInt.default(5_000),
      /** dnsmasq's pid files, logs, lease script and lease files. */
      runDir: z.string().min(1).default('/run/virtkeeper/primary'),
      dnsmasq: z.string().min(1).default('/usr/sbin/dnsmasq'),
      arping: z.string().min(1).default('arping'),
      /** DHCP lease time handed to clients. */
      leaseTimeS: positiveInt.min(120).default(3600),
    })
    .prefault({}),
  rbd: z
    .strictObject({
      /**
       * Check the RBD locks of a VM's images before this node starts it or receives it (the RBD
       * concern). Off by default: it needs a Ceph client config, and this node's storage address.
       */
      enabled: z.boolean().default(false),
      /** ceph.conf for the `rbd`/`ceph` calls (default: Ceph's own, /etc/ceph/ceph.conf). */
      conf: z.string().min(1).optional(),
      /** Ceph client id without "client." (default: Ceph's, admin). */
      id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a Ceph client id such as admin or virtkeeper').optional(),
      keyring: z.string().min(1).optional(),
      /** This node's address on the storage network: the host part of its QEMUs' lock addresses. */
      storageAddress: Ipv4AddressSchema.optional(),
      /** --client_mount_timeout of every call: a dead monitor costs at most this long. */
      mountTimeoutS: positiveInt.max(300).default(3),
      /** Each call is killed after this long. */
      callTimeoutMs: positiveInt.default(10_000),
      /** How often Ceph's reachability is probed for the node status when nothing else asks. */
      probeMs: positiveInt.default(30_000),
      /** Network namespace the calls run in (default: the top-level netns; the test rig and the sandbox). */
      netns: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a network namespace name').optional(),
    })
    .prefault({})
    .superRefine((rbd, ctx) => {
      if (rbd.enabled && rbd.storageAddress === undefined) {
        ctx.addIssue({ code: 'custom', path: ['storageAddress'], input: undefined, message: 'is required when rbd.enabled is true (the address lockers from this node show)' });
      }
    }),
  fence: z
    .strictObject({
      /**
       * Contend for the fence lock when this node is a coordinator (or the cluster names none), and
       * as its holder fence lost nodes and recover their VMs (reconcilers/fence). The levels are per
       * node in ZooKeeper (`vk node fence set`); the storage level and lock breaking use this
       * daemon's `rbd` settings.
       */
      enabled: z.boolean().default(true),
      ipmitool: z.string().startsWith('/', 'must be an absolute path').default('/usr/bin/ipmitool'),
      /**
       * How often the fence lock's holder looks at every node when nothing else asks: node and
       * config changes are looked at as they come, and the timed steps (grace, retries) ask for
       * their own look; this catches a keepalive that stopped while the session lives.
       */
      resyncMs: positiveInt.default(5_000),
      /**
       * Self-fencing, off unless set: after this long without a ZooKeeper session this daemon
       * destroys its own guests that have RBD disks. Must be shorter than the session timeout plus
       * the cluster's fence grace. Off by default: a whole-ensemble outage would stop every such
       * guest in the cluster though nobody could recover them.
       */
      selfFenceAfterMs: positiveInt.optional(),
    })
    .prefault({}),
  migration: z
    .strictObject({
      /** libvirt URI the source libvirtd connects to (peer-to-peer), e.g. qemu+tcp://198.51.100.2/system. */
      uri: z.string().min(1).optional(),
      /** Where the migration data stream goes, e.g. tcp://198.51.100.2. */
      migrateUri: z.string().min(1).optional(),
      /** Cap on the bandwidth of migrations leaving this node, MiB/s. */
      bandwidthMiBs: positiveInt.optional(),
    })
    .prefault({}),
  /**
   * Node status interval. Unset: the cluster config's keepaliveIntervalMs (default 5000), followed
   * as it changes; set here (or by --keepalive-ms), this node keeps its own.
   */
  keepaliveMs: positiveInt.optional(),
  resyncMs: positiveInt.default(60_000),
  /**
   * One periodic resync in this many looks at every VM; the others leave out the VMs whose last
   * look planned nothing while nothing it read has changed (reconcilers/settled.ts). 1: every one.
   */
  fullResyncEvery: positiveInt.default(10),
  /**
   * How often the daemon scans every VM of the cluster for one that names this node but is missing
   * from its index (core/vm-index.ts), and adds it. A repair: the writers keep the index.
   */
  indexScanMs: positiveInt.default(300_000),
  /** How long a VM this node holds nothing of any more stays followed before its index entry is released. */
  indexReleaseAfterMs: positiveInt.default(30_000),
  consolePollMs: positiveInt.default(500),
  /** Console lines kept per VM. Unset: the cluster config's consoleLogLines (default 1000), followed as it changes. */
  consoleLines: positiveInt.optional(),
  concurrency: positiveInt.default(8),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type DaemonConfig = z.output<typeof DaemonConfigSchema>;

/** Flag and environment overrides, already split into the config's shape. */
export interface DaemonOverrides {
  node?: string;
  zk?: string;
  root?: string;
  auth?: string;
  libvirtSocket?: string;
  libvirtUri?: string;
  keepaliveMs?: number;
  resyncMs?: number;
  fullResyncEvery?: number;
  concurrency?: number;
  logLevel?: string;
  /** false: the daemon leaves the node's links alone (--no-network). */
  network?: boolean;
  /** false: the daemon leaves FRR alone (--no-frr). */
  frr?: boolean;
  /** false: the daemon never becomes the primary coordinator (--no-primary). */
  primary?: boolean;
}

export function envOverrides(env: NodeJS.ProcessEnv): DaemonOverrides {
  const o: DaemonOverrides = {};
  if (env.VK_NODE) o.node = env.VK_NODE;
  if (env.VK_ZK) o.zk = env.VK_ZK;
  if (env.VK_ROOT) o.root = env.VK_ROOT;
  if (env.VK_AUTH) o.auth = env.VK_AUTH;
  if (env.VK_LIBVIRT_SOCKET) o.libvirtSocket = env.VK_LIBVIRT_SOCKET;
  if (env.VK_LIBVIRT_URI) o.libvirtUri = env.VK_LIBVIRT_URI;
  if (env.VK_LOG_LEVEL) o.logLevel = env.VK_LOG_LEVEL;
  return o;
}

/** Reads the file (if any), applies env then flags, validates. Errors name the field and value. */
export function loadDaemonConfig(file: string | undefined, env: DaemonOverrides, flags: DaemonOverrides): DaemonConfig {
  let base: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ValidationError('--config', file, `cannot be read: ${(error as Error).message}`);
    }
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ValidationError(file, parsed, 'must be a YAML mapping');
    }
    base = (parsed ?? {}) as Record<string, unknown>;
  }
  const merged = structuredClone(base) as Record<string, Record<string, unknown> | unknown>;
  for (const o of [env, flags]) apply(merged, o);
  return parseWith(DaemonConfigSchema, merged, file ? `${file}:` : 'config');
}

function apply(target: Record<string, unknown>, o: DaemonOverrides): void {
  const section = (name: string) => {
    const current = target[name];
    if (typeof current !== 'object' || current === null) target[name] = {};
    return target[name] as Record<string, unknown>;
  };
  if (o.node !== undefined) target.node = o.node;
  if (o.zk !== undefined) section('zookeeper').hosts = o.zk;
  if (o.root !== undefined) section('zookeeper').root = o.root;
  if (o.auth !== undefined) section('zookeeper').auth = o.auth;
  if (o.libvirtSocket !== undefined) section('libvirt').socket = o.libvirtSocket;
  if (o.libvirtUri !== undefined) section('libvirt').uri = o.libvirtUri;
  if (o.keepaliveMs !== undefined) target.keepaliveMs = o.keepaliveMs;
  if (o.resyncMs !== undefined) target.resyncMs = o.resyncMs;
  if (o.fullResyncEvery !== undefined) target.fullResyncEvery = o.fullResyncEvery;
  if (o.concurrency !== undefined) target.concurrency = o.concurrency;
  if (o.logLevel !== undefined) target.logLevel = o.logLevel;
  if (o.network !== undefined) section('network').enabled = o.network;
  if (o.frr !== undefined) section('frr').enabled = o.frr;
  if (o.primary !== undefined) section('primary').enabled = o.primary;
}
