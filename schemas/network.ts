import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { checkedString, textProblem } from './formats.ts';
import { gatewayProblem, ipv4InSubnet, ipv4Problem, ipv4ToNumber, parseCidr } from './ip.ts';
import { intInRange } from './rules.ts';

export const NETWORK_TYPES = ['bridged', 'managed'] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];

export const Ipv4AddressSchema = checkedString('IPv4 address', ipv4Problem, { format: 'ipv4' });

export const DhcpRangeSchema = z.strictObject({
  start: Ipv4AddressSchema,
  end: Ipv4AddressSchema,
});
export type DhcpRange = z.output<typeof DhcpRangeSchema>;

export const NetworkSpecSchema = z
  .strictObject({
    /** bridged: a vLAN on the cluster bridge device; managed: a VXLAN whose gateway and DHCP the coordinators run. */
    type: z.enum(NETWORK_TYPES),
    description: checkedString('description', textProblem(256, { allowEmpty: true })).default(''),
    mtu: intInRange(576, 9216).default(1500),
    /** Gateway address with prefix length, e.g. 192.0.2.1/24. */
    gateway4: checkedString('CIDR', gatewayProblem(4), { examples: ['192.0.2.1/24'] }).optional(),
    gateway6: checkedString('CIDR', gatewayProblem(6), { examples: ['2001:db8::1/64'] }).optional(),
    dhcp4: DhcpRangeSchema.optional(),
  })
  .superRefine((spec, ctx) => {
    // As in PVC, bridged networks are plain L2: the cluster runs no gateway or DHCP on them.
    if (spec.type === 'bridged') {
      for (const key of ['gateway4', 'gateway6', 'dhcp4'] as const) {
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
  });
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
