// What a node must do locally for the duties the state machine (plan.ts) gives it: the gateway
// links and addresses (one `ip -batch`), and which DHCP/DNS servers run. Pure.
//
// INVARIANTS
//  G1  Names are fixed per VNI: the gateway is macvlan `vkgw<N>` on bridge `vkbr<N>`, MAC
//      gatewayMac(N), in the gateways' interface group; nothing outside that group is touched.
//  G2  Without the gateways duty every link of the group is deleted; with it, exactly the desired
//      ones exist, up, each with exactly its gateway address.
//  G3  Every gateway address is added with a valid lifetime (lifetimeS) and renewed by `address
//      change`, only while it is there (for IPv4 the kernel creates a missing address on a change,
//      so a renewal checks first); an address that had to be added is announced (gratuitous ARP).
//  G5  The bridge under a gateway answers no ARP for it (arp_ignore=1), so clients learn the
//      virtual MAC and nothing else.
//  G4  A gateway is desired only on a managed network with gateway4 whose links are ready on this
//      node (its bridge exists).
import type { NetworkSpec, NetworkStatus } from '../../schemas/index.ts';
import { gatewayMac, parseCidr } from '../../schemas/index.ts';
import type { ObservedGateway } from '../../drivers/gateway/index.ts';

export interface DesiredGateway {
  vni: number;
  device: string;
  bridge: string;
  mac: string;
  address: string;
  prefixLength: number;
}

export interface DhcpWanted {
  vni: number;
  interface: string;
  address: string;
  prefixLength: number;
  range?: { start: string; end: string };
  domain?: string;
}

export const gatewayDevice = (vni: number): string => `vkgw${vni}`;

export interface NetworkView {
  vni: number;
  spec: NetworkSpec | undefined;
  status: NetworkStatus | undefined;
}

/** G4: the gateways this node would hold as primary. */
export function desiredGateways(networks: readonly NetworkView[], me: string): DesiredGateway[] {
  const out: DesiredGateway[] = [];
  for (const n of networks) {
    const s = n.spec;
    if (s?.type !== 'managed' || s.gateway4 === undefined) continue;
    if (n.status?.nodes[me]?.ready !== true) continue;
    const cidr = parseCidr(s.gateway4);
    if (!cidr) continue;
    out.push({ vni: n.vni, device: gatewayDevice(n.vni), bridge: `vkbr${n.vni}`, mac: gatewayMac(n.vni), address: cidr.address, prefixLength: cidr.prefix });
  }
  return out.sort((a, b) => a.vni - b.vni);
}

/** The DHCP/DNS servers the primary runs: a managed network with a gateway and a range or a domain. */
export function desiredDhcp(networks: readonly NetworkView[], gateways: readonly DesiredGateway[]): DhcpWanted[] {
  const out: DhcpWanted[] = [];
  for (const g of gateways) {
    const s = networks.find((n) => n.vni === g.vni)?.spec;
    if (!s || (s.dhcp4 === undefined && s.domain === undefined)) continue;
    out.push({
      vni: g.vni,
      interface: g.device,
      address: g.address,
      prefixLength: g.prefixLength,
      ...(s.dhcp4 ? { range: { start: s.dhcp4.start, end: s.dhcp4.end } } : {}),
      ...(s.domain !== undefined ? { domain: s.domain } : {}),
    });
  }
  return out;
}

export interface GatewayPass {
  /** `ip -batch` lines (empty: nothing to change). */
  lines: string[];
  /** Gateways whose address is added by these lines: announce each once they ran. */
  announce: DesiredGateway[];
  /** Human lines for the log and the dry run. */
  actions: string[];
  /** VNIs whose gateway link these lines create anew (a DHCP server bound to the old one must restart). */
  created: number[];
}

/** G2/G3: the lines that bring the group's links to `desired` (all removed when `desired` is empty). */
export function planGateways(desired: readonly DesiredGateway[], observed: readonly ObservedGateway[], group: number, lifetimeS: number): GatewayPass {
  const lines: string[] = [];
  const announce: DesiredGateway[] = [];
  const actions: string[] = [];
  const created: number[] = [];
  const want = new Map(desired.map((d) => [d.device, d]));
  for (const o of observed) {
    if (!want.has(o.name)) {
      lines.push(`link del dev ${o.name}`);
      actions.push(`remove gateway ${o.name}${o.addresses.length ? ` (${o.addresses.map((a) => a.address).join(', ')})` : ''}`);
    }
  }
  const lft = `valid_lft ${lifetimeS} preferred_lft ${lifetimeS}`;
  for (const d of desired) {
    const o = observed.find((x) => x.name === d.device);
    const cidr = `${d.address}/${d.prefixLength}`;
    const add = () => {
      // No IPv6 link-local: two holders in the make-before-break window would fail DAD on it.
      // The address before the link goes up: traffic the fabric sends here finds it at once.
      lines.push(
        `link add ${d.device} link ${d.bridge} address ${d.mac} group ${group} type macvlan mode bridge`,
        `link set dev ${d.device} addrgenmode none`,
        `address add ${cidr} dev ${d.device} ${lft}`,
        `link set dev ${d.device} up`,
      );
      announce.push(d);
      created.push(d.vni);
      actions.push(`add gateway ${cidr} on ${d.device} (${d.bridge}, ${d.mac})`);
    };
    if (!o) {
      add();
      continue;
    }
    if (o.kind !== 'macvlan' || o.mac !== d.mac || (o.link !== undefined && o.link !== d.bridge)) {
      lines.push(`link del dev ${o.name}`);
      add();
      continue;
    }
    if (!o.up) lines.push(`link set dev ${d.device} up`);
    for (const a of o.addresses) {
      if (a.address !== d.address || a.prefixLength !== d.prefixLength) lines.push(`address del ${a.address}/${a.prefixLength} dev ${d.device}`);
    }
    if (o.addresses.some((a) => a.address === d.address && a.prefixLength === d.prefixLength)) {
      lines.push(...renewLines([d], lifetimeS));
    } else {
      lines.push(`address add ${cidr} dev ${d.device} ${lft}`);
      announce.push(d);
      actions.push(`add gateway ${cidr} on ${d.device}`);
    }
  }
  return { lines, announce, actions, created };
}

/**
 * G5: the bridge under a gateway must not answer ARP for it (Linux answers ARP for any local
 * address on any interface by default, and would hand out the bridge's own MAC, which no other
 * coordinator has): arp_ignore=1 answers only on the interface holding the address.
 */
export function gatewaySysctls(desired: readonly DesiredGateway[]): Record<string, string> {
  return Object.fromEntries(desired.map((d) => [`net.ipv4.conf.${d.bridge}.arp_ignore`, '1']));
}

/** G3: the lines that extend these gateway addresses' lifetimes (each must be there: a change re-creates a missing IPv4 address). */
export function renewLines(desired: readonly DesiredGateway[], lifetimeS: number): string[] {
  return desired.map((d) => `address change ${d.address}/${d.prefixLength} dev ${d.device} valid_lft ${lifetimeS} preferred_lft ${lifetimeS}`);
}

/** G3: a renewal renews only the addresses observed on their gateway link; the missing ones are left to a pass (which adds and announces them). */
export function renewPass(desired: readonly DesiredGateway[], observed: readonly ObservedGateway[], lifetimeS: number): { lines: string[]; missing: DesiredGateway[] } {
  const present = (d: DesiredGateway) => observed.some((o) => o.name === d.device && o.mac === d.mac && o.addresses.some((a) => a.address === d.address && a.prefixLength === d.prefixLength));
  return { lines: renewLines(desired.filter(present), lifetimeS), missing: desired.filter((d) => !present(d)) };
}

/**
 * The address lifetime and renewal period for a ZooKeeper session timeout T. A successor can take
 * the role only once ZooKeeper has expired the holder's session: at least T after the holder
 * sent its last confirming read (the request itself keeps the session alive). The address must be
 * gone by then: the time its `ip` lands after that read was sent, plus its lifetime, plus up to
 * 1 s by which the kernel rounds its lifetime check, must stay under T. So a write is started only
 * within RENEW_WITHIN_MS of the read, and one that lands later than `landByMs` after it (the
 * process stalled in between) is undone at once. Half of T, less half a second, as the lifetime
 * leaves `landByMs` ≥ T/2 − 500 ms.
 *
 * The process can also stall after its own check, before its `ip` starts (frozen in fork, or
 * while the child waits for its input), and an `address change` then re-creates a lapsed IPv4
 * address long after the session ended. So the `ip` process itself refuses to start after
 * `startByMs` (half of `landByMs`, the other half left for it to land), by its own clock.
 */
export const RENEW_WITHIN_MS = 500;
export function gatewayTiming(sessionTimeoutMs: number): { lifetimeS: number; renewMs: number; landByMs: number; startByMs: number } {
  const lifetimeS = Math.max(1, Math.floor((sessionTimeoutMs / 2 - RENEW_WITHIN_MS) / 1000));
  const landByMs = sessionTimeoutMs - lifetimeS * 1000 - 1000;
  return { lifetimeS, renewMs: Math.max(100, Math.floor((lifetimeS * 1000) / 4)), landByMs, startByMs: Math.floor(landByMs / 2) };
}
