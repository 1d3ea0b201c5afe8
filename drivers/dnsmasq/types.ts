// The dnsmasq driver's interface (DESIGN §4 "Primary coordinator", §5 "dnsmasq"): one dnsmasq per
// managed network, run by the primary coordinator's daemon, serving DHCP on the network's gateway
// interface and DNS for its domain. Its leases live outside dnsmasq (`--leasefile-ro` plus a
// `--dhcp-script`): the script keeps one file per MAC, which the daemon copies to ZooKeeper, and
// start() hands them back to the next dnsmasq. These types are the driver's own (drivers import
// nothing above drivers/).

/** Where this node's dnsmasq instances live. */
export interface DnsmasqLocation {
  /** pidfiles, logs, scripts, init files and lease dirs live here (created 0755 if missing). An absolute path of [A-Za-z0-9._+/-]. */
  runDir: string;
  /** Run inside `ip netns exec NETNS` (the rig and the sandbox keep each node in its own network namespace). */
  netns?: string;
  /** Default /usr/sbin/dnsmasq. */
  binary?: string;
  /** Bound of start and stop, ms; default 5000. */
  timeoutMs?: number;
}

/** One managed network's dnsmasq. */
export interface DnsmasqSpec {
  vni: number;
  /** The device holding the gateway address, e.g. vkgw200 (a macvlan on vkbr200). */
  interface: string;
  /** Gateway IPv4 address, e.g. 203.0.113.1. */
  address: string;
  /** e.g. 24. */
  prefixLength: number;
  /** DHCP range, inside address/prefixLength; absent: no DHCP (DNS only). */
  range?: { start: string; end: string };
  /** DHCP lease time in seconds, at least 120 (dnsmasq's minimum); default 3600. */
  leaseTimeS?: number;
  /** DNS domain it answers for (its DHCP clients' hostnames); absent: DNS off (--port=0). */
  domain?: string;
}

/**
 * A DHCP lease as the script reports it and start() takes it: a line of dnsmasq's lease-file
 * format `<expires> <mac> <ip> <hostname|*> <clientid|*>`.
 */
export interface ScriptLease {
  /** Lower-case Ethernet MAC, aa:bb:cc:dd:ee:ff. */
  mac: string;
  ip: string;
  /** The client's hostname (one DNS label, as dnsmasq accepts it), when it sent one. */
  hostname?: string;
  /** DHCP client id as colon-separated hex bytes (01:aa:bb:…), when it sent one. */
  clientId?: string;
  /** Seconds since the epoch when the lease ends; 0: infinite. */
  expires: number;
}

/** A running dnsmasq of this runDir. */
export interface DnsmasqInstance {
  vni: number;
  pid: number;
  /** Hash of the argv it runs with (its /proc cmdline), to tell a changed spec: compare with specHash(spec). */
  specHash: string;
}

export interface DnsmasqDriver {
  /** Running instances named by this runDir's pidfiles, each verified live in /proc with a cmdline naming that pidfile; stale pidfiles are removed. */
  list(): Promise<DnsmasqInstance[]>;
  /**
   * Starts the network's dnsmasq: replaces its lease dir and init file with `leases` (expired ones,
   * malformed ones and ones outside the range left out), writes its lease script, starts dnsmasq
   * and resolves once dnsmasq wrote its pidfile and lives. Rejects with DnsmasqError AlreadyRunning
   * when one runs for the VNI, StartFailed (naming the log's last lines) when it exits or does not
   * come up within timeoutMs (it is stopped then); TypeError for an invalid spec.
   */
  start(spec: DnsmasqSpec, leases: readonly ScriptLease[]): Promise<DnsmasqInstance>;
  /** SIGTERM by PID, SIGKILL after timeoutMs, resolves once it and its script helper are gone; idempotent. */
  stop(vni: number): Promise<void>;
  /** The leases the network's dnsmasq last reported through its script (one file per MAC; malformed files ignored), by address. */
  readLeases(vni: number): ScriptLease[];
  /** Calls onChange(vni) when a lease dir changes ("look again": level-triggered, coalesced, may over-report). Returns unsubscribe. */
  watchLeases(onChange: (vni: number) => void): () => void;
  /** The hash list() reports for an instance started from `spec` by this driver. */
  specHash(spec: DnsmasqSpec): string;
}

/** Why a call failed. */
export type DnsmasqErrorReason = 'AlreadyRunning' | 'StartFailed' | 'StopFailed';

export class DnsmasqError extends Error {
  override name = 'DnsmasqError';
  constructor(
    readonly reason: DnsmasqErrorReason,
    message: string,
    readonly vni: number,
    /** The last lines of the instance's log, when they tell something. */
    readonly log?: string,
  ) {
    super(message);
  }
}
