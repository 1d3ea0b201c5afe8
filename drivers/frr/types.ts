// The FRR driver's interface (DESIGN §4 "FRR BGP EVPN", §5 "FRR 8.4"): the daemon owns FRR's
// integrated config file and proves it in sync with `frr-reload.py --test`; it reads BGP and VNI
// state through vtysh. Every call has a timeout; a FRR that is down is an FrrError, never a hang.

/** Where this node's FRR lives and how to reach it. */
export interface FrrLocation {
  /** Directory holding frr.conf (and vtysh.conf with `service integrated-vtysh-config`). */
  confDir: string;
  /** Directory of the daemons' vty sockets (vtysh --vty_socket). */
  vtySocket: string;
  /** Scratch directory frr-reload.py may write to (its --rundir). */
  runDir: string;
  /** Directory holding vtysh (frr-reload.py --bindir). */
  binDir: string;
  /** Path of frr-reload.py. */
  reloadScript: string;
  /**
   * The hostname FRR's daemons run under, when it is not this process's own (the test rig and the
   * sandbox run each node's FRR in a UTS namespace of its own): vtysh prints its own hostname in
   * the running config, so the tools run under this hostname too or every check shows a delta.
   */
  hostname?: string;
  /**
   * The daemons that must answer on their vty socket (vtySocket/<name>.vty) for FRR to count as
   * reachable; default zebra and bgpd. frr-reload.py skips a daemon that is down without a word (a
   * missing bgpd makes `--test` show the whole `router bgp` to add and `--reload` exit 0), so
   * every call first checks that each of these accepts a connection.
   */
  daemons?: readonly string[];
  /** Per call, ms: the whole call (reachability check and every process it runs). */
  timeoutMs: number;
}

/**
 * What `frr-reload.py --test` reports: the lines it would delete and add; both empty = in sync.
 * The lines are as it prints them (blank lines dropped, indentation kept): every change comes with
 * its context lines before it, so a context repeats, e.g. toAdd
 * `['router bgp 65500', ' neighbor 198.51.100.2 peer-group fabric', 'no ip forwarding']`.
 * A deletion is printed as the command that undoes it (`no hostname vm`, `ipv6 forwarding`).
 */
export interface FrrDelta {
  toDelete: string[];
  toAdd: string[];
}

export interface BgpPeerObservation {
  address: string;
  /** BGP FSM state (Established, Active, …). */
  state: string;
  /** EVPN prefixes received. */
  prefixesReceived: number;
}

export interface VniObservation {
  vni: number;
  remoteVteps: string[];
}

/** Why a call failed: FRR is not running or not reachable (FrrUnreachable), a reload did not apply (ReloadFailed), anything else (FrrCommandFailed). */
export type FrrErrorReason = 'FrrUnreachable' | 'ReloadFailed' | 'FrrCommandFailed';

export class FrrError extends Error {
  override name = 'FrrError';
  constructor(
    readonly reason: FrrErrorReason,
    message: string,
    /** The command that failed (argv as meant, without the hostname wrapper), when one ran. */
    readonly command?: readonly string[],
    /** What it wrote to stderr, in full. */
    readonly stderr?: string,
  ) {
    super(message);
  }
}

export interface FrrDriver {
  /** The current content of confDir/frr.conf, or undefined when there is none. */
  readConfig(): Promise<string | undefined>;
  /** Replaces confDir/frr.conf atomically (write + rename), readable by FRR's user. */
  writeConfig(text: string): Promise<void>;
  /** `frr-reload.py --test` of confDir/frr.conf against the running config. */
  delta(): Promise<FrrDelta>;
  /** `frr-reload.py --reload` of confDir/frr.conf. */
  reload(): Promise<void>;
  /** `show bgp l2vpn evpn summary json`: the configured peers (none when bgpd has no router bgp). */
  bgpPeers(): Promise<BgpPeerObservation[]>;
  /** `show evpn vni json`. */
  evpnVnis(): Promise<VniObservation[]>;
}
