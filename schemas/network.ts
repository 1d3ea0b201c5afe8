import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { checkedString, textProblem } from './formats.ts';
import { gatewayProblem, ipv4InSubnet, ipv4Problem, ipv4ToNumber, parseCidr } from './ip.ts';
import { intInRange } from './rules.ts';
import { VNI_MAX, VNI_MIN } from './names.ts';

export const NETWORK_TYPES = ['bridged', 'managed'] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];

/** A bridged network's VNI is its 802.1Q vLAN id: 1–4094 (4095 is reserved). */
export const BRIDGED_VNI_MAX = 4094;
/** Bytes a VXLAN adds to each frame (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8). */
export const VXLAN_OVERHEAD = 50;

/** The VNIs a network of `type` may have. */
export function vniRange(type: NetworkType): { min: number; max: number } {
  return { min: VNI_MIN, max: type === 'bridged' ? BRIDGED_VNI_MAX : VNI_MAX };
}

/** Why `vni` cannot name a network of `type` (undefined when it can). */
export function networkVniProblem(type: NetworkType, vni: number | string): string | undefined {
  const { min, max } = vniRange(type);
  const n = typeof vni === 'number' ? vni : /^[1-9][0-9]*$/.test(vni) ? Number(vni) : NaN;
  if (Number.isInteger(n) && n >= min && n <= max) return undefined;
  return type === 'bridged'
    ? `a bridged network's VNI is its vLAN id: must be an integer from ${min} to ${max}`
    : `a managed network's VNI is its VXLAN id: must be an integer from ${min} to ${max}`;
}

/** The cluster config settings a network's MTU is checked against. */
export interface NetworkMtuLimits {
  bridgeMtu: number;
  clusterMtu: number;
}

/** The largest MTU a network of `type` may have under `limits`, and the rule that sets it. */
export function networkMtuLimit(type: NetworkType, limits: NetworkMtuLimits): { max: number; rule: string } {
  if (type === 'bridged') return { max: limits.bridgeMtu, rule: `the cluster config's bridgeMtu (${limits.bridgeMtu})` };
  return { max: limits.clusterMtu - VXLAN_OVERHEAD, rule: `the cluster config's clusterMtu (${limits.clusterMtu}) - ${VXLAN_OVERHEAD} (VXLAN overhead)` };
}

/** Why a network of `type` cannot have `mtu` under the cluster config `limits` (undefined when it can). */
export function networkMtuProblem(type: NetworkType, mtu: number, limits: NetworkMtuLimits): string | undefined {
  const { max, rule } = networkMtuLimit(type, limits);
  return mtu <= max ? undefined : `a ${type} network's MTU must be at most ${max}: ${rule}`;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why `domain` is not a DNS domain name (lower-case labels of letters, digits and '-', at most 253 characters). */
export function dnsDomainProblem(domain: string): string | undefined {
  if (domain.length === 0 || domain.length > 253) return 'must be 1 to 253 characters';
  if (!domain.split('.').every((l) => DNS_LABEL.test(l))) {
    return "must be dot-separated labels of 1-63 lower-case letters, digits and '-' (not at a label's start or end)";
  }
  return undefined;
}

export const Ipv4AddressSchema = checkedString('IPv4 address', ipv4Problem, { format: 'ipv4' });

export const DhcpRangeSchema = z.strictObject({
  start: Ipv4AddressSchema,
  end: Ipv4AddressSchema,
});
export type DhcpRange = z.output<typeof DhcpRangeSchema>;

/** The MTU of a network whose spec gives none: what the default cluster config allows for its type. */
export const DEFAULT_NETWORK_MTU = { bridged: 1500, managed: 1500 - VXLAN_OVERHEAD } as const satisfies Record<NetworkType, number>;

export const NetworkSpecSchema = z
  .strictObject({
    /** bridged: a vLAN on the cluster bridge device; managed: a VXLAN whose gateway and DHCP the coordinators run. */
    type: z.enum(NETWORK_TYPES),
    description: checkedString('description', textProblem(256, { allowEmpty: true })).default(''),
    /** Default: 1500 for bridged, 1450 (1500 - VXLAN overhead) for managed networks. */
    mtu: intInRange(576, 9216).optional(),
    /** Gateway address with prefix length, e.g. 192.0.2.1/24. */
    gateway4: checkedString('CIDR', gatewayProblem(4), { examples: ['192.0.2.1/24'] }).optional(),
    gateway6: checkedString('CIDR', gatewayProblem(6), { examples: ['2001:db8::1/64'] }).optional(),
    dhcp4: DhcpRangeSchema.optional(),
    /** DNS domain the primary's dnsmasq answers for on this network (its DHCP clients' names). */
    domain: checkedString('DNS domain', dnsDomainProblem, { examples: ['tenant.example'] }).optional(),
  })
  .superRefine((spec, ctx) => {
    // As in PVC, bridged networks are plain L2: the cluster runs no gateway or DHCP on them.
    if (spec.type === 'bridged') {
      for (const key of ['gateway4', 'gateway6', 'dhcp4', 'domain'] as const) {
        if (spec[key] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            input: spec[key],
            message: "is only allowed on networks of type 'managed'",
          });
        }
      }
      return;
    }
    if (spec.domain !== undefined && spec.gateway4 === undefined) {
      ctx.addIssue({ code: 'custom', path: ['domain'], input: spec.domain, message: 'needs gateway4: the DNS server listens on the gateway address' });
    }
    const dhcp = spec.dhcp4;
    if (!dhcp) return;
    const addIssue = (field: 'start' | 'end', message: string) =>
      ctx.addIssue({
        code: 'custom',
        path: ['dhcp4', field],
        input: dhcp[field],
        params: { kind: 'IPv4 address' },
        message,
      });
    if (ipv4ToNumber(dhcp.end) < ipv4ToNumber(dhcp.start)) {
      addIssue('end', `must not be lower than dhcp4.start (${dhcp.start})`);
    }
    const gateway = spec.gateway4 === undefined ? undefined : parseCidr(spec.gateway4);
    if (!gateway) {
      addIssue('start', 'needs gateway4: a DHCP range lies in the gateway subnet');
      return;
    }
    for (const field of ['start', 'end'] as const) {
      if (!ipv4InSubnet(dhcp[field], gateway)) addIssue(field, `is outside the gateway4 subnet ${spec.gateway4}`);
    }
    const gw = ipv4ToNumber(gateway.address);
    if (gw >= ipv4ToNumber(dhcp.start) && gw <= ipv4ToNumber(dhcp.end)) {
      addIssue('start', `range ${dhcp.start}-${dhcp.end} contains the gateway address ${gateway.address}`);
    }
  })
  // The default MTU depends on the type; keys stay in schema order so equal specs encode to equal bytes.
  .transform(({ type, description, mtu, ...rest }) => ({ type, description, mtu: mtu ?? DEFAULT_NETWORK_MTU[type], ...rest }));
export type NetworkSpec = z.output<typeof NetworkSpecSchema>;
export type NetworkSpecInput = z.input<typeof NetworkSpecSchema>;

export function decodeNetworkSpec(value: unknown, fieldPrefix = 'spec'): NetworkSpec {
  return decodeWith(NetworkSpecSchema, value, fieldPrefix);
}
export function encodeNetworkSpec(spec: NetworkSpecInput): string {
  return encodeWith(NetworkSpecSchema, spec, 'spec');
}

/** One node's readiness of a network's links (written by that node's daemon). */
export const NetworkNodeStatusSchema = z.strictObject({
  ready: z.boolean(),
  /** CamelCase reason when not ready (LinkFailed, VlanUnsupported, BridgeInUse, …). */
  reason: z.string().max(64).optional(),
  message: z.string().max(1024).optional(),
  /** The network spec version (generation) this readiness is about. */
  observedGeneration: z.number().int().min(-1),
  updatedAt: z.string(),
});
export type NetworkNodeStatus = z.output<typeof NetworkNodeStatusSchema>;

/** /networks/<vni>/status: per node, whether the network's links are ready there. */
export const NetworkStatusSchema = z.strictObject({
  nodes: z.record(z.string(), NetworkNodeStatusSchema).default({}),
});
export type NetworkStatus = z.output<typeof NetworkStatusSchema>;

export function decodeNetworkStatus(value: unknown, fieldPrefix = 'status'): NetworkStatus {
  return decodeWith(NetworkStatusSchema, value, fieldPrefix);
}
export function encodeNetworkStatus(status: NetworkStatus): string {
  return encodeWith(NetworkStatusSchema, status, 'status');
}
