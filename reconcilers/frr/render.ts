// The FRR renderer (DESIGN §4 "FRR BGP EVPN"): a pure function from the cluster config and one
// node to that node's whole frr.conf, in one canonical form.
//
// Invariants (test/frr/render.test.ts):
//   R1  Same input, same bytes: peers are ordered by address, nothing depends on time or order of
//       the config's maps.
//   R2  Coordinators are route reflectors: a coordinator peers with every other node listed in the
//       config, each a route-reflector client; any other node peers with the coordinators only.
//       With no coordinator listed every node peers with every other (a full iBGP mesh).
//   R3  A node never peers with itself, and only nodes with a cluster address are peers.
//   R4  The text is what FRR's own `show running-config` prints for it (line for line, so that
//       `frr-reload.py --test` finds no delta once it is applied): IP forwarding stated as
//       `no ip forwarding` / `no ipv6 forwarding` (a VTEP bridges, it does not route; FRR prints
//       forwarding only when it is off), timers on the peer-group, the hostname FRR runs under.
import type { BgpConfig, ClusterConfig } from '../../schemas/index.ts';
import { ipv4ToNumber } from '../../schemas/ip.ts';

export const PEER_GROUP = 'fabric';

export interface NodeAddress {
  name: string;
  address: string;
}

export interface FrrRenderInput {
  /** The node rendered for. */
  node: string;
  /** Its cluster address: router-id and VTEP address. */
  address: string;
  /** The hostname FRR runs under (FRR prints it; the file must say the same). */
  hostname: string;
  bgp: BgpConfig;
  /** Every node with a cluster address (the node itself included), and which are coordinators. */
  nodes: NodeAddress[];
  coordinators: string[];
}

export interface FrrPeer extends NodeAddress {
  /** This node reflects the peer's routes (it is a coordinator). */
  reflectorClient: boolean;
}

/** Whom the node peers with (R2, R3), ordered by address (R1). */
export function frrPeers(input: Pick<FrrRenderInput, 'node' | 'nodes' | 'coordinators'>): FrrPeer[] {
  const coordinators = new Set(input.coordinators);
  const others = input.nodes.filter((n) => n.name !== input.node);
  const isCoordinator = coordinators.has(input.node);
  const anyCoordinator = input.nodes.some((n) => coordinators.has(n.name));
  const peers = isCoordinator || !anyCoordinator ? others : others.filter((n) => coordinators.has(n.name));
  return peers
    .map((n) => ({ name: n.name, address: n.address, reflectorClient: isCoordinator }))
    .sort((a, b) => ipv4ToNumber(a.address) - ipv4ToNumber(b.address) || a.name.localeCompare(b.name));
}

export function renderFrrConfig(input: FrrRenderInput): string {
  const { bgp } = input;
  const peers = frrPeers(input);
  const reflector = peers.some((p) => p.reflectorClient);
  const lines = [
    `! frr.conf of ${input.node}, rendered by virtkeeper from the cluster config: edits here or in vtysh are reverted.`,
    `hostname ${input.hostname}`,
    'service integrated-vtysh-config',
    '!',
    'no ip forwarding',
    'no ipv6 forwarding',
    '!',
    `router bgp ${bgp.asn}`,
    ` bgp router-id ${input.address}`,
    ' no bgp default ipv4-unicast',
    ` neighbor ${PEER_GROUP} peer-group`,
    ` neighbor ${PEER_GROUP} remote-as internal`,
    ` neighbor ${PEER_GROUP} timers ${bgp.keepaliveS} ${bgp.holdS}`,
    ` neighbor ${PEER_GROUP} timers connect ${bgp.connectRetryS}`,
    ...peers.map((p) => ` neighbor ${p.address} peer-group ${PEER_GROUP}`),
    ' !',
    ' address-family l2vpn evpn',
    `  neighbor ${PEER_GROUP} activate`,
    ...(reflector ? [`  neighbor ${PEER_GROUP} route-reflector-client`] : []),
    '  advertise-all-vni',
    ' exit-address-family',
    'exit',
    '!',
  ];
  return `${lines.join('\n')}\n`;
}

export type FrrDesired =
  | { kind: 'off' }
  | { kind: 'notConfigured'; message: string }
  | { kind: 'render'; input: FrrRenderInput; text: string; peers: FrrPeer[] };

/**
 * What FRR on `node` should run: nothing to do without a `bgp` section ('off'); a message when
 * the node has no cluster address; else the rendered text. The node's address is the cluster
 * config's, or the daemon config's when the cluster config lists none for it (then no coordinator
 * peers with it, which the status shows as peers that never come up).
 */
export function desiredFrr(config: ClusterConfig, node: string, o: { hostname: string; fallbackAddress?: string }): FrrDesired {
  if (!config.bgp) return { kind: 'off' };
  const listed = config.nodes ?? {};
  const address = listed[node]?.clusterAddress ?? o.fallbackAddress;
  if (address === undefined) {
    return { kind: 'notConfigured', message: `the cluster config lists no clusterAddress for ${node} (nodes.${node}.clusterAddress)` };
  }
  const nodes = Object.entries(listed).map(([name, n]) => ({ name, address: n.clusterAddress }));
  if (!(node in listed)) nodes.push({ name: node, address });
  const input: FrrRenderInput = { node, address, hostname: o.hostname, bgp: config.bgp, nodes, coordinators: config.coordinators };
  return { kind: 'render', input, text: renderFrrConfig(input), peers: frrPeers(input) };
}
