// The network concern's decision (DESIGN.md §4 "Networks"; seeds 001, 004): from every Network spec
// of the cluster, the cluster config, the node's own network settings and what `ip -j -d link` and
// the IPv6 sysctls show, the link actions of one pass. Pure: no processes, no clock.
//
// Invariants:
// N1 Names are fixed per VNI: bridge vkbr<N>; a managed network's port is the VXLAN vkvx<N>, a
//    bridged network's the vLAN vkvl<N>. Nothing else is ever created.
// N2 Ownership. The daemon owns exactly the links whose group is local.group. A link outside the group
//    is never named in an action (no delete, set or enslave), whatever its name; when it holds a name
//    a network wants, that network is not ready (LinkNotOwned). Every link this plan creates carries
//    `group <local.group>` (batchLines), so it is owned from birth.
// N3 A network that cannot be made ready here (a verdict with a reason) gets no action at all: its
//    links stay as they are (they are wanted, so they are not strays either) until the cause goes.
// N4 A link of our group that no Network wants is deleted, ports first, bridges last — except a bridge
//    that a local domain uses (bridgesInUse): it stays, with the links of our group enslaved to it
//    (and its vkvx/vkvl port), and a BridgeInUse condition names the VMs; it goes once it is free.
// N5 Drift: a missing link is created; a wrong MTU is set; a port not enslaved to its bridge is
//    (re-)enslaved; a VXLAN port's bridge-port flags (learning off, neigh_suppress on) are set; a
//    link that is down is set up; a bridge whose IPv6 is on gets the sysctl. An attribute `ip link
//    set` cannot change (the kind; VXLAN id/local/dstport/learning/dev; vLAN id/link) differs → the
//    link is deleted and created again in the same pass.
// N6 Order: deletes (stray ports and other non-bridge strays, then links to re-create), creates
//    (each network's bridge before its port), sets (enslave, port flags, MTU port then bridge, up
//    bridge then port, IPv6 sysctl), deletes of stray bridges last. Networks in VNI order, strays in
//    name order: the same input gives the same plan.
// N7 Idempotent: the observation of a plan's result plans nothing (tested by applying the actions to
//    the observation). A link being created is planned whole (create with its MTU and group, enslave,
//    flags, up, sysctl), so one pass converges.
// N8 A verdict per network (in VNI order): ready when the actions succeed, else the reason.
//    Reasons: InvalidVni, VlanUnsupported, NoBridgeDevice, NoClusterAddress, NoClusterDevice,
//    MtuTooLarge, LinkNotOwned.
//
// IPv6 on a bridge: the sysctl is planned for a bridge being created and for an existing one whose
// observed value is false; an existing bridge with no value observed (a kernel without IPv6) gets
// none, so a kernel without IPv6 does not make a plan that never converges. The executor may treat a
// missing sysctl file (ENOENT) as success for the same reason.
import type { LinkObservation, ObservedLink } from '../../drivers/net/types.ts';
import type { ClusterConfig, NetworkSpec } from '../../schemas/index.ts';
import { networkOfBridge } from '../network-readiness.ts';

export const bridgeName = (vni: number): string => `vkbr${vni}`;
export const vxlanName = (vni: number): string => `vkvx${vni}`;
export const vlanName = (vni: number): string => `vkvl${vni}`;

/** VXLAN UDP port (IANA). */
export const VXLAN_DSTPORT = 4789;
/** Bytes a VXLAN adds to a frame (IPv4 outer header): a VXLAN's MTU is at most its device's − 50. */
export const VXLAN_OVERHEAD = 50;
export const MAX_VLAN_ID = 4094;
export const MAX_VNI = 16_777_215;

export interface NetworkDesired {
  vni: number;
  spec: NetworkSpec;
  /** The spec znode's version. */
  generation: number;
}

export interface NetworkPlanInput {
  /** Every readable Network spec of the cluster. */
  networks: readonly NetworkDesired[];
  /** bridgeDevice for bridged networks. */
  config: ClusterConfig;
  /** From the daemon config (network.clusterAddress, network.clusterDevice, network.group). */
  local: { clusterAddress?: string | undefined; clusterDevice?: string | undefined; group: number };
  observed: LinkObservation;
  /** Whether this kernel can make 802.1Q links (probed at daemon start). */
  vlanSupported: boolean;
  /** Bridge name → the local domains (VM names) with an interface on it. */
  bridgesInUse: ReadonlyMap<string, readonly string[]>;
}

/**
 * One `ip -batch` line, or one sysctl. `vni` is the network the action is for; undefined only for
 * the delete of a stray link of our group (no network wants it).
 */
export type LinkAction =
  | { kind: 'addBridge'; vni: number; name: string; mtu: number }
  | { kind: 'addVxlan'; vni: number; name: string; mtu: number; id: number; local: string; dstport: number; dev?: string | undefined }
  | { kind: 'addVlan'; vni: number; name: string; mtu: number; id: number; link: string }
  /** Enslave `name` to `master` (`from`: its current master, if any). */
  | { kind: 'setMaster'; vni: number; name: string; master: string; from?: string | undefined }
  | { kind: 'setBridgePort'; vni: number; name: string; learning: boolean; neighSuppress: boolean }
  /** `from`: the observed MTU (undefined when the link is being created in this pass). */
  | { kind: 'setMtu'; vni: number; name: string; mtu: number; from?: number | undefined }
  | { kind: 'setUp'; vni: number; name: string }
  /**
   * Delete a link of our group. `why` stray: no network wants it (vni undefined); recreate: an
   * attribute that cannot be changed differs (vni set, `detail` says which), it is created again later
   * in the plan.
   */
  | { kind: 'delete'; vni: number | undefined; name: string; linkKind: string; why: 'stray' | 'recreate'; detail?: string | undefined }
  /** Write a sysctl: net.ipv6.conf.<name>.disable_ipv6 = '1' (not an ip-batch line). */
  | { kind: 'sysctl'; vni: number; name: string; key: string; value: string };

export interface NetworkVerdict {
  vni: number;
  /** Whether the network's links are ready on this node once the actions succeed. */
  ready: boolean;
  reason?: string;
  message?: string;
}

export interface BridgeInUseCondition {
  type: 'BridgeInUse';
  /** The VNI of the bridge's name (vkbr<N>), when it has that form. */
  vni?: number;
  bridge: string;
  vms: string[];
  message: string;
}

export interface NetworkPlan {
  actions: LinkAction[];
  verdicts: NetworkVerdict[];
  conditions: BridgeInUseCondition[];
}

/** The sysctl key of an interface's IPv6 switch; a dot in the name is a slash in the key. */
export function disableIpv6Key(ifname: string): string {
  return `net.ipv6.conf.${ifname.replaceAll('.', '/')}.disable_ipv6`;
}

/** The VNI in a name of ours (vkbr<N>, vkvx<N>, vkvl<N>), or undefined. */
export function vniOfName(name: string): number | undefined {
  const m = /^vk(?:br|vx|vl)([1-9][0-9]{0,7})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

const isBridgeName = (name: string): boolean => networkOfBridge(name) !== undefined;

/** Names `ip -batch` cannot carry in a line (it cuts a line at '#' and splits on quotes and blanks). */
const unbatchable = (name: string): boolean => /[\s#"'\\]/.test(name);

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface Blocker {
  reason: string;
  message: string;
}

/** Why network `net` cannot be made ready on this node, or undefined. */
function blockerOf(net: NetworkDesired, input: NetworkPlanInput, links: ReadonlyMap<string, ObservedLink>): Blocker | undefined {
  const { vni, spec } = net;
  const { local } = input;
  const maxVni = spec.type === 'bridged' ? MAX_VLAN_ID : MAX_VNI;
  if (!Number.isInteger(vni) || vni < 1 || vni > maxVni) {
    return { reason: 'InvalidVni', message: `VNI ${vni} is outside 1-${maxVni} for a ${spec.type} network` };
  }
  if (spec.type === 'bridged') {
    if (!input.vlanSupported) {
      return { reason: 'VlanUnsupported', message: `this node's kernel cannot make 802.1Q vLANs (${vlanName(vni)})` };
    }
    const device = input.config.bridgeDevice;
    if (device === undefined) {
      return { reason: 'NoBridgeDevice', message: 'the cluster config sets no bridgeDevice for bridged networks' };
    }
    const dev = links.get(device);
    if (!dev) return { reason: 'NoBridgeDevice', message: `bridge device ${device} does not exist on this node` };
    if (spec.mtu > dev.mtu) {
      return { reason: 'MtuTooLarge', message: `MTU ${spec.mtu} is above the MTU ${dev.mtu} of bridge device ${device}` };
    }
  } else {
    if (local.clusterAddress === undefined) {
      return { reason: 'NoClusterAddress', message: `this node's daemon config sets no network.clusterAddress (the local address of ${vxlanName(vni)})` };
    }
    if (local.clusterDevice !== undefined) {
      const dev = links.get(local.clusterDevice);
      if (!dev) return { reason: 'NoClusterDevice', message: `cluster device ${local.clusterDevice} does not exist on this node` };
      if (spec.mtu > dev.mtu - VXLAN_OVERHEAD) {
        return {
          reason: 'MtuTooLarge',
          message: `MTU ${spec.mtu} is above ${dev.mtu - VXLAN_OVERHEAD}: cluster device ${local.clusterDevice} has MTU ${dev.mtu}, a VXLAN needs ${VXLAN_OVERHEAD} bytes`,
        };
      }
    }
  }
  const foreign = [bridgeName(vni), portName(net)].filter((name) => {
    const link = links.get(name);
    return link !== undefined && link.group !== local.group;
  });
  if (foreign.length > 0) {
    const what = foreign.map((name) => `${name} (group ${links.get(name)?.group})`).join(', ');
    return { reason: 'LinkNotOwned', message: `${what} exists outside this daemon's interface group ${local.group}; it is left alone` };
  }
  return undefined;
}

function portName(net: NetworkDesired): string {
  return net.spec.type === 'bridged' ? vlanName(net.vni) : vxlanName(net.vni);
}

/** Why an observed port cannot become the wanted one by `ip link set`, or undefined. */
function immutableDifference(want: LinkAction & { kind: 'addVxlan' | 'addVlan' | 'addBridge' }, link: ObservedLink): string | undefined {
  switch (want.kind) {
    case 'addBridge':
      return link.kind === 'bridge' ? undefined : `kind ${link.kind || 'none'}, want bridge`;
    case 'addVlan': {
      if (link.kind !== 'vlan') return `kind ${link.kind || 'none'}, want vlan`;
      const diffs: string[] = [];
      if (link.vlan?.id !== want.id) diffs.push(`vlan id ${link.vlan?.id ?? 'none'}, want ${want.id}`);
      if (link.vlan?.link !== want.link) diffs.push(`vlan link ${link.vlan?.link ?? 'none'}, want ${want.link}`);
      return diffs.length > 0 ? diffs.join('; ') : undefined;
    }
    case 'addVxlan': {
      if (link.kind !== 'vxlan') return `kind ${link.kind || 'none'}, want vxlan`;
      const x = link.vxlan;
      const diffs: string[] = [];
      if (x?.id !== want.id) diffs.push(`vxlan id ${x?.id ?? 'none'}, want ${want.id}`);
      if (x?.local !== want.local) diffs.push(`local ${x?.local ?? 'none'}, want ${want.local}`);
      if (x?.dstport !== want.dstport) diffs.push(`dstport ${x?.dstport ?? 'none'}, want ${want.dstport}`);
      if (x?.learning !== false) diffs.push('learning on, want nolearning');
      if (x?.dev !== want.dev) diffs.push(`dev ${x?.dev ?? 'none'}, want ${want.dev ?? 'none'}`);
      return diffs.length > 0 ? diffs.join('; ') : undefined;
    }
  }
}

export function planNetworks(input: NetworkPlanInput): NetworkPlan {
  const { local, observed } = input;
  const group = local.group;
  const links = new Map(observed.links.map((l) => [l.name, l] as const));

  // One network per VNI (the spec path is keyed by it); the first one wins should a caller repeat one.
  const networks: NetworkDesired[] = [];
  const seen = new Set<number>();
  for (const net of [...input.networks].sort((a, b) => a.vni - b.vni)) {
    if (seen.has(net.vni)) continue;
    seen.add(net.vni);
    networks.push(net);
  }

  // Every name a network wants, ready or not (N3: a blocked network's links are not strays).
  const wanted = new Set<string>();
  for (const net of networks) {
    wanted.add(bridgeName(net.vni));
    wanted.add(portName(net));
  }

  const verdicts: NetworkVerdict[] = [];
  const strayPortDeletes: LinkAction[] = [];
  const recreateDeletes: LinkAction[] = [];
  const creates: LinkAction[] = [];
  const sets: LinkAction[] = [];
  const strayBridgeDeletes: LinkAction[] = [];
  const conditions: BridgeInUseCondition[] = [];

  for (const net of networks) {
    const blocker = blockerOf(net, input, links);
    if (blocker) {
      verdicts.push({ vni: net.vni, ready: false, reason: blocker.reason, message: blocker.message });
      continue;
    }
    verdicts.push({ vni: net.vni, ready: true });
    const { vni, spec } = net;
    const mtu = spec.mtu;
    const bridge = bridgeName(vni);
    const port = portName(net);
    const wantBridge: LinkAction & { kind: 'addBridge' } = { kind: 'addBridge', vni, name: bridge, mtu };
    const wantPort: LinkAction & { kind: 'addVxlan' | 'addVlan' } =
      spec.type === 'managed'
        ? { kind: 'addVxlan', vni, name: port, mtu, id: vni, local: local.clusterAddress as string, dstport: VXLAN_DSTPORT, dev: local.clusterDevice }
        : { kind: 'addVlan', vni, name: port, mtu, id: vni, link: input.config.bridgeDevice as string };

    // What exists of each after the deletes: undefined when it is (re-)created in this pass.
    const current = (want: LinkAction & { kind: 'addBridge' | 'addVxlan' | 'addVlan' }): ObservedLink | undefined => {
      const link = links.get(want.name);
      if (!link) {
        creates.push(want);
        return undefined;
      }
      const diff = immutableDifference(want, link);
      if (diff === undefined) return link;
      recreateDeletes.push({ kind: 'delete', vni, name: want.name, linkKind: link.kind, why: 'recreate', detail: diff });
      creates.push(want);
      return undefined;
    };
    const b = current(wantBridge);
    const p = current(wantPort);

    if (p?.master !== bridge) sets.push({ kind: 'setMaster', vni, name: port, master: bridge, from: p?.master });
    if (spec.type === 'managed' && (p?.master !== bridge || p.bridgePort?.learning !== false || p.bridgePort?.neighSuppress !== true)) {
      sets.push({ kind: 'setBridgePort', vni, name: port, learning: false, neighSuppress: true });
    }
    // The port first: a bridge whose MTU nobody set follows its smallest port.
    if (p && p.mtu !== mtu) sets.push({ kind: 'setMtu', vni, name: port, mtu, from: p.mtu });
    if (b && b.mtu !== mtu) sets.push({ kind: 'setMtu', vni, name: bridge, mtu, from: b.mtu });
    if (!b?.up) sets.push({ kind: 'setUp', vni, name: bridge });
    if (!p?.up) sets.push({ kind: 'setUp', vni, name: port });
    if (!b || observed.ipv6Disabled[bridge] === false) {
      sets.push({ kind: 'sysctl', vni, name: bridge, key: disableIpv6Key(bridge), value: '1' });
    }
  }

  // Strays (N4): links of our group that no network wants.
  const strays = observed.links.filter((l) => l.group === group && !wanted.has(l.name) && !unbatchable(l.name)).sort((a, b) => byString(a.name, b.name));
  const kept = new Set<string>();
  for (const link of strays) {
    if (link.kind !== 'bridge') continue;
    const vms = [...(input.bridgesInUse.get(link.name) ?? [])].sort(byString);
    if (vms.length === 0) continue;
    kept.add(link.name);
    const vni = vniOfName(link.name);
    const portNames = vni !== undefined && isBridgeName(link.name) ? [vxlanName(vni), vlanName(vni)] : [];
    for (const other of strays) {
      if (other.master === link.name || (portNames.includes(other.name) && other.master === undefined)) kept.add(other.name);
    }
    conditions.push({
      type: 'BridgeInUse',
      ...(vni !== undefined && isBridgeName(link.name) ? { vni } : {}),
      bridge: link.name,
      vms,
      message: `bridge ${link.name} is kept: no network wants it, but local domain${vms.length > 1 ? 's' : ''} ${vms.join(', ')} use${vms.length > 1 ? '' : 's'} it`,
    });
  }
  for (const link of strays) {
    if (kept.has(link.name)) continue;
    const del: LinkAction = { kind: 'delete', vni: undefined, name: link.name, linkKind: link.kind, why: 'stray' };
    (link.kind === 'bridge' ? strayBridgeDeletes : strayPortDeletes).push(del);
  }

  return { actions: [...strayPortDeletes, ...recreateDeletes, ...creates, ...sets, ...strayBridgeDeletes], verdicts, conditions };
}

/** The `ip -batch` line of an action; undefined for a sysctl. */
export function batchLine(action: LinkAction, group: number): string | undefined {
  switch (action.kind) {
    case 'addBridge':
      return `link add ${action.name} group ${group} mtu ${action.mtu} type bridge`;
    case 'addVxlan':
      return `link add ${action.name} group ${group} mtu ${action.mtu} type vxlan id ${action.id} local ${action.local} dstport ${action.dstport}${action.dev !== undefined ? ` dev ${action.dev}` : ''} nolearning`;
    case 'addVlan':
      return `link add link ${action.link} name ${action.name} group ${group} mtu ${action.mtu} type vlan id ${action.id}`;
    case 'setMaster':
      return `link set dev ${action.name} master ${action.master}`;
    case 'setBridgePort':
      return `link set dev ${action.name} type bridge_slave learning ${action.learning ? 'on' : 'off'} neigh_suppress ${action.neighSuppress ? 'on' : 'off'}`;
    case 'setMtu':
      return `link set dev ${action.name} mtu ${action.mtu}`;
    case 'setUp':
      return `link set dev ${action.name} up`;
    case 'delete':
      return `link del dev ${action.name}`;
    case 'sysctl':
      return undefined;
  }
}

/** The ip-batch lines of the actions (sysctl actions excluded), and for each line the index of its action. */
export function batchLines(actions: readonly LinkAction[], group: number): { lines: string[]; actionOf: number[] } {
  const lines: string[] = [];
  const actionOf: number[] = [];
  actions.forEach((action, i) => {
    const line = batchLine(action, group);
    if (line === undefined) return;
    lines.push(line);
    actionOf.push(i);
  });
  return { lines, actionOf };
}

/** The sysctl keys/values of the actions (e.g. net.ipv6.conf.vkbr100.disable_ipv6 = '1'; a dot in an interface name is a slash in the key). */
export function sysctlsOf(actions: readonly LinkAction[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const action of actions) if (action.kind === 'sysctl') out[action.key] = action.value;
  return out;
}

/** One human line per action, as the executor logs it and the dry run prints it. */
export function describeLinkAction(node: string, action: LinkAction): string {
  const who = action.vni === undefined ? node : `${node} network ${action.vni}`;
  switch (action.kind) {
    case 'addBridge':
      return `${who} add bridge ${action.name} (mtu ${action.mtu})`;
    case 'addVxlan':
      return `${who} add vxlan ${action.name} (id ${action.id}, local ${action.local}, dstport ${action.dstport}${action.dev !== undefined ? `, dev ${action.dev}` : ''}, mtu ${action.mtu})`;
    case 'addVlan':
      return `${who} add vlan ${action.name} (id ${action.id} on ${action.link}, mtu ${action.mtu})`;
    case 'setMaster':
      return `${who} enslave ${action.name} to ${action.master}${action.from !== undefined ? ` (was on ${action.from})` : ''}`;
    case 'setBridgePort':
      return `${who} set bridge port ${action.name} learning ${action.learning ? 'on' : 'off'}, neigh_suppress ${action.neighSuppress ? 'on' : 'off'}`;
    case 'setMtu':
      return `${who} set mtu of ${action.name} to ${action.mtu}${action.from !== undefined ? ` (was ${action.from})` : ''}`;
    case 'setUp':
      return `${who} set ${action.name} up`;
    case 'delete':
      return action.why === 'stray'
        ? `${who} delete ${action.linkKind || 'link'} ${action.name} (in our group, no network wants it)`
        : `${who} delete ${action.linkKind || 'link'} ${action.name} to create it again (${action.detail ?? 'attributes differ'})`;
    case 'sysctl':
      return `${who} disable IPv6 on ${action.name} (${action.key} = ${action.value})`;
  }
}
