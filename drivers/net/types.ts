// What the network concern observes of, and asks of, a node's Linux links (iproute2 in the daemon's
// network namespace or a named one). The types are the contract between the `ip` driver
// (drivers/net/ip.ts) and the network planner (reconcilers/network/plan.ts).

/** One link as `ip -j -d link show` reports it, reduced to what the planner compares. */
export interface ObservedLink {
  name: string;
  /** linkinfo.info_kind: 'bridge', 'vxlan', 'vlan', 'veth', …; '' for a plain device. */
  kind: string;
  /** Interface group number (0 = default). The daemon owns exactly the links in its group. */
  group: number;
  mtu: number;
  /** The bridge it is enslaved to, if any. */
  master?: string;
  /** 'UP', 'DOWN', 'UNKNOWN', … (operstate) and whether the admin flag UP is set. */
  operstate: string;
  up: boolean;
  vxlan?: { id: number; local?: string; dstport: number; learning: boolean; dev?: string };
  vlan?: { id: number; link?: string };
  /** Bridge-port flags of a link enslaved to a bridge. */
  bridgePort?: { learning: boolean; neighSuppress: boolean };
}

/** The node's links and the IPv6 sysctl of each, as one observation. */
export interface LinkObservation {
  links: ObservedLink[];
  /** net.ipv6.conf.<if>.disable_ipv6 per link name (absent: unknown, e.g. IPv6 off in the kernel). */
  ipv6Disabled: Record<string, boolean>;
}

/** One `ip -batch` line that failed, mapped back to the line it was. */
export interface BatchFailure {
  /** 0-based index into the lines handed to applyBatch. */
  line: number;
  message: string;
}

/** The outcome of one pass: the failures (empty when every line succeeded). */
export interface BatchResult {
  failures: BatchFailure[];
}
