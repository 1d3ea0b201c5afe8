import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { checkedString, InterfaceNameSchema, textProblem } from './formats.ts';
import { NameSchema } from './names.ts';
import { intInRange, noDuplicates } from './rules.ts';

export const NODE_SELECTORS = ['mem', 'memprov', 'load', 'vcpus', 'vms'] as const;
export const FENCE_POLICIES = ['none', 'ipmi', 'command'] as const;
export const CONFIG_MIGRATION_METHODS = ['live', 'shutdown'] as const;
export type NodeSelector = (typeof NODE_SELECTORS)[number];
export type FencePolicy = (typeof FENCE_POLICIES)[number];

export const FenceConfigSchema = z
  .strictObject({
    policy: z.enum(FENCE_POLICIES).default('none'),
    /** Run to fence a node when policy is 'command'. */
    command: checkedString('command', textProblem(4096)).optional(),
  })
  .superRefine((fence, ctx) => {
    if (fence.policy === 'command' && fence.command === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['command'],
        input: undefined,
        message: "is required when fence.policy is 'command'",
      });
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

export const ClusterConfigSchema = z
  .strictObject({
    /** Nodes that run ZooKeeper and FRR in router mode and may hold network gateways. */
    coordinators: z.array(NameSchema).default([]),
    defaultNodeSelector: z.enum(NODE_SELECTORS).default('mem'),
    keepaliveIntervalMs: intInRange(1).default(5_000),
    keepaliveDeadAfterMs: intInRange(1).default(30_000),
    fence: FenceConfigSchema.prefault({}),
    migration: MigrationConfigSchema.prefault({}),
    /** Device that bridged networks put their vLANs on. */
    bridgeDevice: InterfaceNameSchema.optional(),
    /** MTU of the bridge device: a bridged network's MTU may not exceed it. */
    bridgeMtu: intInRange(576, 9216).default(1500),
    /** MTU of the cluster network that carries the VXLANs: a managed network's MTU is at most this − 50. */
    clusterMtu: intInRange(626, 9216).default(1500),
    /** Lines of serial console log kept per VM. */
    consoleLogLines: intInRange(1, 100_000).default(1000),
  })
  .superRefine((config, ctx) => {
    noDuplicates(config.coordinators, ctx, ['coordinators'], 'name');
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
