// The network concern's pure planner (DESIGN §4 "Networks", seeds 001 and 004): from every Network
// spec, the cluster config, the node's own settings and its observed links, the link actions of
// one pass and each network's readiness on this node.
//
//   bridged N (1–4094):       vLAN vkvl<N> (802.1Q id N) on config.bridgeDevice → bridge vkbr<N>
//   managed N (1–16777215):   VXLAN vkvx<N> (id N, dstport 4789, local = the node's cluster address,
//                             nolearning; bridge port learning off, neigh_suppress on) → bridge vkbr<N>
//   every bridge:             IPv6 disabled (sysctl), up; every port up, MTU = spec.mtu everywhere
//
// Invariants (tested in test/network/planner.test.ts):
//   P1  Ownership: only links whose group is the daemon's are ever changed or deleted. A wanted
//       name held by a link outside the group leaves the network alone, not ready (LinkNotOwned).
//   P2  Converged input plans nothing: planning the observation a pass produces gives no action.
//   P3  A link of our group that no network wants is deleted — ports before bridges — except a
//       bridge a local domain uses, which stays (with its ports) under a BridgeInUse condition.
//   P4  A network that cannot be made here (no cluster address, no vLAN support, no bridge device,
//       an MTU above the device's) gets no action and is not ready, with the reason; its links are
//       still wanted (never deleted as strays).
//   P5  Order: deletes of ports, deletes of bridges to re-create, bridges, their settings, ports,
//       their settings, sysctls, deletes of stray bridges last.
import type { LinkObservation, ObservedLink } from '../../drivers/net/types.ts';
import type { ClusterConfig, NetworkSpec } from '../../schemas/index.ts';

export const VXLAN_PORT = 4789;
export const bridgeName = (vni: number): string => `vkbr${vni}`;
export const vxlanName = (vni: number): string => `vkvx${vni}`;
export const vlanName = (vni: number): string => `vkvl${vni}`;

export interface NetworkDesired {
  vni: number;
  spec: NetworkSpec;
  generation: number;
}

export interface NetworkPlanInput {
  networks: readonly NetworkDesired[];
  config: ClusterConfig;
  local: { clusterAddress?: string; clusterDevice?: string; group: number };
  observed: LinkObservation;
  vlanSupported: boolean;
  /** Bridge name → the local domains (VM names) that use it. */
  bridgesInUse: ReadonlyMap<string, readonly string[]>;
}

export type LinkAction =
  | { kind: 'addBridge'; vni: number; name: string; mtu: number }
  | { kind: 'addVxlan'; vni: number; name: string; mtu: number; id: number; local: string; dstport: number; dev?: string }
  | { kind: 'addVlan'; vni: number; name: string; mtu: number; id: number; link: string }
  | { kind: 'setMtu'; vni: number; name: string; mtu: number }
  | { kind: 'setMaster'; vni: number; name: string; master: string }
  | { kind: 'setPortFlags'; vni: number; name: string }
  | { kind: 'setUp'; vni: number; name: string }
  | { kind: 'disableIpv6'; vni: number; name: string }
  | { kind: 'delete'; vni: number | undefined; name: string; why: string };

export interface NetworkVerdict {
  vni: number;
  ready: boolean;
  reason?: string;
  message?: string;
}

export interface BridgeInUse {
  type: 'BridgeInUse';
  vni?: number;
  bridge: string;
  vms: string[];
  message: string;
}

export interface NetworkPlan {
  actions: LinkAction[];
  verdicts: NetworkVerdict[];
  conditions: BridgeInUse[];
}

/** The VNI a vk link name stands for (vkbr100 → 100), or undefined. */
export function vniOfLink(name: string): number | undefined {
  const m = /^vk(?:br|vx|vl)([1-9][0-9]{0,7})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

interface Steps {
  portDeletes: LinkAction[];
  bridgeDeletes: LinkAction[];
  bridges: LinkAction[];
  bridgeSettings: LinkAction[];
  ports: LinkAction[];
  portSettings: LinkAction[];
  sysctls: LinkAction[];
  strayBridges: LinkAction[];
}

export function planNetworks(input: NetworkPlanInput): NetworkPlan {
  const { local, observed } = input;
  const byName = new Map(observed.links.map((l) => [l.name, l]));
  const ours = (l: ObservedLink | undefined): boolean => l !== undefined && l.group === local.group;
  const steps: Steps = { portDeletes: [], bridgeDeletes: [], bridges: [], bridgeSettings: [], ports: [], portSettings: [], sysctls: [], strayBridges: [] };
  const verdicts: NetworkVerdict[] = [];
  const wanted = new Set<string>();

  for (const { vni, spec } of [...input.networks].sort((a, b) => a.vni - b.vni)) {
    const bridge = bridgeName(vni);
    const port = spec.type === 'managed' ? vxlanName(vni) : vlanName(vni);
    wanted.add(bridge);
    wanted.add(port);
    const notReady = (reason: string, message: string) => verdicts.push({ vni, ready: false, reason, message });

    const blocked = precondition(vni, spec, input);
    if (blocked) {
      notReady(blocked.reason, blocked.message);
      continue;
    }
    const foreign = [bridge, port].filter((name) => byName.has(name) && !ours(byName.get(name)));
    if (foreign.length > 0) {
      notReady('LinkNotOwned', `${foreign.join(' and ')} exist${foreign.length === 1 ? 's' : ''} outside interface group ${local.group}: left alone`);
      continue;
    }

    // The bridge.
    const haveBridge = byName.get(bridge);
    let bridgeFresh = false;
    if (haveBridge && haveBridge.kind !== 'bridge') {
      steps.bridgeDeletes.push({ kind: 'delete', vni, name: bridge, why: `re-create: it is a ${haveBridge.kind || 'plain device'}, not a bridge` });
    }
    if (!haveBridge || haveBridge.kind !== 'bridge') {
      steps.bridges.push({ kind: 'addBridge', vni, name: bridge, mtu: spec.mtu });
      bridgeFresh = true;
    } else if (haveBridge.mtu !== spec.mtu) steps.bridgeSettings.push({ kind: 'setMtu', vni, name: bridge, mtu: spec.mtu });
    if (bridgeFresh || !haveBridge!.up) steps.bridgeSettings.push({ kind: 'setUp', vni, name: bridge });
    if (bridgeFresh || observed.ipv6Disabled[bridge] !== true) steps.sysctls.push({ kind: 'disableIpv6', vni, name: bridge });

    // The port (VXLAN or vLAN).
    const want = spec.type === 'managed' ? wantVxlan(vni, spec.mtu, local) : wantVlan(vni, spec.mtu, input.config.bridgeDevice!);
    const havePort = byName.get(port);
    const mismatch = havePort && portMismatch(havePort, want);
    if (havePort && (mismatch || bridgeFresh)) {
      steps.portDeletes.push({ kind: 'delete', vni, name: port, why: `re-create: ${mismatch || 'its bridge is re-created'}` });
    }
    const portFresh = !havePort || !!mismatch || bridgeFresh;
    if (portFresh) steps.ports.push(want);
    else if (havePort.mtu !== spec.mtu) steps.portSettings.push({ kind: 'setMtu', vni, name: port, mtu: spec.mtu });
    const enslave = portFresh || havePort.master !== bridge;
    if (enslave) steps.portSettings.push({ kind: 'setMaster', vni, name: port, master: bridge });
    if (spec.type === 'managed') {
      const flags = !enslave && havePort?.bridgePort;
      if (!flags || flags.learning || !flags.neighSuppress) steps.portSettings.push({ kind: 'setPortFlags', vni, name: port });
    }
    if (portFresh || !havePort.up) steps.portSettings.push({ kind: 'setUp', vni, name: port });
    verdicts.push({ vni, ready: true });
  }

  // Strays: links of our group that no network wants.
  const conditions: BridgeInUse[] = [];
  const kept = new Set<string>();
  for (const link of observed.links) {
    if (!ours(link) || wanted.has(link.name) || link.kind !== 'bridge') continue;
    const vms = input.bridgesInUse.get(link.name);
    if (!vms || vms.length === 0) continue;
    kept.add(link.name);
    const vni = vniOfLink(link.name);
    conditions.push({
      type: 'BridgeInUse',
      ...(vni !== undefined ? { vni } : {}),
      bridge: link.name,
      vms: [...vms].sort(),
      message: `${link.name} stays: local domain${vms.length === 1 ? '' : 's'} ${[...vms].sort().join(', ')} still use${vms.length === 1 ? 's' : ''} it`,
    });
  }
  for (const link of [...observed.links].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!ours(link) || wanted.has(link.name) || kept.has(link.name)) continue;
    if (link.master !== undefined && kept.has(link.master)) continue;
    const step: LinkAction = { kind: 'delete', vni: vniOfLink(link.name), name: link.name, why: 'no network wants it' };
    if (link.kind === 'bridge') steps.strayBridges.push(step);
    else steps.portDeletes.push(step);
  }

  return {
    actions: [...steps.portDeletes, ...steps.bridgeDeletes, ...steps.bridges, ...steps.bridgeSettings, ...steps.ports, ...steps.portSettings, ...steps.sysctls, ...steps.strayBridges],
    verdicts,
    conditions,
  };
}

/** Why the network cannot be made on this node, or undefined. */
function precondition(vni: number, spec: NetworkSpec, input: NetworkPlanInput): { reason: string; message: string } | undefined {
  if (spec.type === 'managed') {
    if (!input.local.clusterAddress) return { reason: 'NoClusterAddress', message: 'the daemon config sets no network.clusterAddress: no VXLAN can be made here' };
    return undefined;
  }
  if (vni > 4094) return { reason: 'InvalidVni', message: `a bridged network's VNI is an 802.1Q id (1-4094), not ${vni}` };
  if (!input.vlanSupported) return { reason: 'VlanUnsupported', message: 'this kernel cannot make 802.1Q vLANs' };
  const device = input.config.bridgeDevice;
  if (!device) return { reason: 'NoBridgeDevice', message: 'the cluster config sets no bridgeDevice for bridged networks' };
  const observed = input.observed.links.find((l) => l.name === device);
  if (!observed) return { reason: 'NoBridgeDevice', message: `bridge device ${device} does not exist on this node` };
  if (spec.mtu > observed.mtu) return { reason: 'MtuTooLarge', message: `mtu ${spec.mtu} is above ${device}'s ${observed.mtu}` };
  return undefined;
}

function wantVxlan(vni: number, mtu: number, local: NetworkPlanInput['local']): Extract<LinkAction, { kind: 'addVxlan' }> {
  return { kind: 'addVxlan', vni, name: vxlanName(vni), mtu, id: vni, local: local.clusterAddress!, dstport: VXLAN_PORT, ...(local.clusterDevice ? { dev: local.clusterDevice } : {}) };
}

function wantVlan(vni: number, mtu: number, device: string): Extract<LinkAction, { kind: 'addVlan' }> {
  return { kind: 'addVlan', vni, name: vlanName(vni), mtu, id: vni, link: device };
}

/** What of an existing port cannot be changed in place (so it is re-created), or undefined. */
function portMismatch(have: ObservedLink, want: Extract<LinkAction, { kind: 'addVxlan' | 'addVlan' }>): string | undefined {
  if (want.kind === 'addVxlan') {
    if (have.kind !== 'vxlan' || !have.vxlan) return `it is a ${have.kind || 'plain device'}, not a vxlan`;
    const v = have.vxlan;
    if (v.id !== want.id) return `vxlan id ${v.id}, not ${want.id}`;
    if (v.local !== want.local) return `local ${v.local ?? 'none'}, not ${want.local}`;
    if (v.dstport !== want.dstport) return `dstport ${v.dstport}, not ${want.dstport}`;
    if (v.learning) return 'learning is on';
    if (want.dev !== undefined && v.dev !== want.dev) return `dev ${v.dev ?? 'none'}, not ${want.dev}`;
    return undefined;
  }
  if (have.kind !== 'vlan' || !have.vlan) return `it is a ${have.kind || 'plain device'}, not a vlan`;
  if (have.vlan.id !== want.id) return `vlan id ${have.vlan.id}, not ${want.id}`;
  if (have.vlan.link !== undefined && have.vlan.link !== want.link) return `on ${have.vlan.link}, not ${want.link}`;
  return undefined;
}

/** The ip-batch lines of the actions (sysctls excluded) and, per line, the index of its action. */
export function batchLines(actions: readonly LinkAction[], group: number): { lines: string[]; actionOf: number[] } {
  const lines: string[] = [];
  const actionOf: number[] = [];
  actions.forEach((a, i) => {
    const line = batchLine(a, group);
    if (line === undefined) return;
    lines.push(line);
    actionOf.push(i);
  });
  return { lines, actionOf };
}

function batchLine(a: LinkAction, group: number): string | undefined {
  switch (a.kind) {
    case 'addBridge':
      return `link add ${a.name} group ${group} mtu ${a.mtu} type bridge`;
    case 'addVxlan':
      return `link add ${a.name} group ${group} mtu ${a.mtu} type vxlan id ${a.id} local ${a.local} dstport ${a.dstport} nolearning${a.dev !== undefined ? ` dev ${a.dev}` : ''}`;
    case 'addVlan':
      return `link add link ${a.link} name ${a.name} group ${group} mtu ${a.mtu} type vlan id ${a.id}`;
    case 'setMtu':
      return `link set dev ${a.name} mtu ${a.mtu}`;
    case 'setMaster':
      return `link set dev ${a.name} master ${a.master}`;
    case 'setPortFlags':
      return `link set dev ${a.name} type bridge_slave learning off neigh_suppress on`;
    case 'setUp':
      return `link set dev ${a.name} up`;
    case 'delete':
      return `link del dev ${a.name}`;
    case 'disableIpv6':
      return undefined;
  }
}

/** The sysctls of the actions: net.ipv6.conf.<if>.disable_ipv6 = 1 (a dot in a name is a slash in the key). */
export function sysctlsOf(actions: readonly LinkAction[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of actions) if (a.kind === 'disableIpv6') out[`net.ipv6.conf.${a.name.replaceAll('.', '/')}.disable_ipv6`] = '1';
  return out;
}

export function describeLinkAction(node: string, a: LinkAction): string {
  const head = `${node} network ${a.vni ?? '-'}`;
  switch (a.kind) {
    case 'addBridge':
      return `${head} add bridge ${a.name} (mtu ${a.mtu})`;
    case 'addVxlan':
      return `${head} add vxlan ${a.name} (id ${a.id}, local ${a.local}, dstport ${a.dstport}${a.dev !== undefined ? `, dev ${a.dev}` : ''}, mtu ${a.mtu})`;
    case 'addVlan':
      return `${head} add vlan ${a.name} (id ${a.id} on ${a.link}, mtu ${a.mtu})`;
    case 'setMtu':
      return `${head} set mtu of ${a.name} to ${a.mtu}`;
    case 'setMaster':
      return `${head} enslave ${a.name} to ${a.master}`;
    case 'setPortFlags':
      return `${head} bridge port ${a.name}: learning off, neigh_suppress on`;
    case 'setUp':
      return `${head} set ${a.name} up`;
    case 'disableIpv6':
      return `${head} disable IPv6 on ${a.name}`;
    case 'delete':
      return `${head} delete ${a.name} (${a.why})`;
  }
}
