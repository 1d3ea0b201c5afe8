import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { checkedString, InterfaceNameSchema, textProblem } from './formats.ts';
import { unicastIpv4Problem } from './ip.ts';
import { NameSchema } from './names.ts';
import { intInRange, noDuplicates } from './rules.ts';

export const NODE_SELECTORS = ['mem', 'memprov', 'load', 'vcpus', 'vms'] as const;
export const CONFIG_MIGRATION_METHODS = ['live', 'shutdown'] as const;
export type NodeSelector = (typeof NODE_SELECTORS)[number];

/**
 * Fencing and recovery (DESIGN §4; reconcilers/fence). The levels that can fence a node are the
 * node's own settings (/nodes/<name>/fence, schemas/fence.ts); these are the cluster's timings.
 */
export const FenceConfigSchema = z
  .strictObject({
    /**
     * A node is lost once its alive znode (its daemon's session) has been gone this long, as the
     * fencing coordinator saw it. Long enough for a daemon restarted by systemd to come back.
     */
    graceMs: intInRange(0, 3_600_000).default(5_000),
    /** A failed fence is tried again after this, doubling up to retryMaxMs. */
    retryBaseMs: intInRange(100, 3_600_000).default(2_000),
    retryMaxMs: intInRange(100, 86_400_000).default(60_000),
    /** Recover the VMs a successful fence covers (false: fence only; an admin moves them). */
    recover: z.boolean().default(true),
    /**
     * The v1 layout's fence policy and command: still read (configs written before fencing was
     * built decode as they are) and ignored — the levels are each node's own settings now.
     */
    policy: z.enum(['none', 'ipmi', 'command']).optional(),
    command: checkedString('command', textProblem(4096)).optional(),
  })
  .superRefine((f, ctx) => {
    if (f.retryMaxMs < f.retryBaseMs) {
      ctx.addIssue({ code: 'custom', path: ['retryMaxMs'], input: f.retryMaxMs, message: `must be at least retryBaseMs (${f.retryBaseMs})` });
    }
  });
export type FenceConfig = z.output<typeof FenceConfigSchema>;

export const MigrationConfigSchema = z.strictObject({
  /** Concurrent migrations leaving one node. */
  maxOutgoing: intInRange(1).default(2),
  /** Concurrent migrations arriving on one node. */
  maxIncoming: intInRange(1).default(2),
  defaultMethod: z.enum(CONFIG_MIGRATION_METHODS).default('live'),
  /** How long each lockstep phase may wait on its peer. */
  phaseTimeoutMs: intInRange(1).default(30_000),
  maxDowntimeMs: intInRange(1).default(300),
});
export type MigrationConfig = z.output<typeof MigrationConfigSchema>;

/** Reserved AS numbers (RFC 7300, RFC 6793's AS_TRANS, IANA's reserved block): never a cluster's ASN. */
function asnProblem(asn: number): string | undefined {
  if (asn === 0) return 'is reserved (RFC 7607); use a private ASN such as 64512-65534 or 4200000000-4294967294';
  if (asn === 23456) return 'is AS_TRANS (RFC 6793), reserved; use a private ASN such as 64512-65534';
  if (asn === 65535 || asn === 4294967295) return 'is reserved (RFC 7300); use a private ASN such as 64512-65534 or 4200000000-4294967294';
  if (asn >= 65552 && asn <= 131071) return 'is in the IANA reserved block 65552-131071; use a private ASN such as 64512-65534';
  return undefined;
}

/** BGP EVPN between the nodes (DESIGN §4 "FRR BGP EVPN"): absent, the daemons leave FRR alone. */
export const BgpConfigSchema = z
  .strictObject({
    /** The cluster's AS: every node is in it (iBGP); coordinators are its route reflectors. */
    asn: intInRange(1, 4294967295).superRefine((asn, ctx) => {
      const problem = asnProblem(asn);
      if (problem) ctx.addIssue({ code: 'custom', input: asn, message: problem });
    }),
    keepaliveS: intInRange(1, 21845).default(3),
    holdS: intInRange(3, 65535).default(9),
    /** Seconds between attempts to open a session that is down (FRR's default is 120 in its traditional profile). */
    connectRetryS: intInRange(1, 65535).default(5),
  })
  .superRefine((bgp, ctx) => {
    if (bgp.keepaliveS * 3 > bgp.holdS) {
      ctx.addIssue({ code: 'custom', path: ['keepaliveS'], input: bgp.keepaliveS, message: `must be at most a third of holdS (${bgp.holdS})` });
    }
  });
export type BgpConfig = z.output<typeof BgpConfigSchema>;

/** What the cluster knows of one node besides what its daemon reports. */
export const ClusterNodeSchema = z.strictObject({
  /** The node's address on the cluster network: its VXLANs' local address, its BGP router-id and peering address. */
  clusterAddress: checkedString('cluster address', unicastIpv4Problem, { format: 'ipv4' }),
});
export type ClusterNode = z.output<typeof ClusterNodeSchema>;

export const ClusterConfigSchema = z
  .strictObject({
    /** Nodes that run ZooKeeper and FRR in router mode and may hold network gateways. */
    coordinators: z.array(NameSchema).default([]),
    defaultNodeSelector: z.enum(NODE_SELECTORS).default('mem'),
    keepaliveIntervalMs: intInRange(1).default(5_000),
    keepaliveDeadAfterMs: intInRange(1).default(30_000),
    fence: FenceConfigSchema.prefault({}),
    /** Maintenance: a lost node is reported, never fenced (`vk cluster maintenance on|off`). */
    maintenance: z.boolean().default(false),
    migration: MigrationConfigSchema.prefault({}),
    /** Device that bridged networks put their vLANs on. */
    bridgeDevice: InterfaceNameSchema.optional(),
    /** MTU of the bridge device: a bridged network's MTU may not exceed it. */
    bridgeMtu: intInRange(576, 9216).default(1500),
    /** MTU of the cluster network that carries the VXLANs: a managed network's MTU is at most this − 50. */
    clusterMtu: intInRange(626, 9216).default(1500),
    /** Lines of serial console log kept per VM. */
    consoleLogLines: intInRange(1, 100_000).default(1000),
    bgp: BgpConfigSchema.optional(),
    /** Per node: its cluster address (needed by BGP: the coordinators peer with every node listed here). */
    nodes: z.record(NameSchema, ClusterNodeSchema).optional(),
  })
  .superRefine((config, ctx) => {
    noDuplicates(config.coordinators, ctx, ['coordinators'], 'name');
    const nodes = config.nodes ?? {};
    if (config.bgp) {
      config.coordinators.forEach((name, i) => {
        if (!(name in nodes)) {
          ctx.addIssue({ code: 'custom', path: ['coordinators', i], input: name, message: `is not a node of nodes (a coordinator is a route reflector and needs its clusterAddress there)` });
        }
      });
    }
    const owner = new Map<string, string>();
    for (const [name, node] of Object.entries(nodes)) {
      const first = owner.get(node.clusterAddress);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['nodes', name, 'clusterAddress'], input: node.clusterAddress, message: `is already the cluster address of ${first}` });
      } else owner.set(node.clusterAddress, name);
    }
    if (config.keepaliveDeadAfterMs <= config.keepaliveIntervalMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['keepaliveDeadAfterMs'],
        input: config.keepaliveDeadAfterMs,
        message: `must be greater than keepaliveIntervalMs (${config.keepaliveIntervalMs})`,
      });
    }
  });
export type ClusterConfig = z.output<typeof ClusterConfigSchema>;
export type ClusterConfigInput = z.input<typeof ClusterConfigSchema>;

export function decodeClusterConfig(value: unknown, fieldPrefix = 'config'): ClusterConfig {
  return decodeWith(ClusterConfigSchema, value, fieldPrefix);
}
export function encodeClusterConfig(config: ClusterConfigInput): string {
  return encodeWith(ClusterConfigSchema, config, 'config');
}

/** The configuration of a cluster nobody has configured yet. */
export function defaultClusterConfig(): ClusterConfig {
  return decodeClusterConfig({});
}
