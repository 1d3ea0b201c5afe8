import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { ConditionListSchema } from './condition.ts';
import { checkedString, textProblem, TimestampSchema } from './formats.ts';
import { NameSchema } from './names.ts';
import { intInRange, noDuplicates } from './rules.ts';

export const NODE_SPEC_DOMAIN_STATES = ['ready', 'flushed'] as const;
export const NODE_DAEMON_STATES = ['init', 'run', 'stop', 'dead'] as const;
export const NODE_DOMAIN_STATES = ['ready', 'flushing', 'flushed', 'unflushing'] as const;
export type NodeDaemonState = (typeof NODE_DAEMON_STATES)[number];
export type NodeDomainState = (typeof NODE_DOMAIN_STATES)[number];

/** What admins ask of a node. */
export const NodeSpecSchema = z.strictObject({
  domainState: z.enum(NODE_SPEC_DOMAIN_STATES).default('ready'),
});
export type NodeSpec = z.output<typeof NodeSpecSchema>;
export type NodeSpecInput = z.input<typeof NodeSpecSchema>;

export const NodeMemorySchema = z.strictObject({
  totalMiB: intInRange(0),
  usedMiB: intInRange(0),
  freeMiB: intInRange(0),
  /** Memory of the VMs running here. */
  allocatedMiB: intInRange(0),
  /** Memory of every VM assigned here, running or not. */
  provisionedMiB: intInRange(0),
});
export type NodeMemory = z.output<typeof NodeMemorySchema>;

export const NodeVcpusSchema = z.strictObject({
  total: intInRange(0),
  allocated: intInRange(0),
});

export const NodeStatusSchema = z
  .strictObject({
    daemonState: z.enum(NODE_DAEMON_STATES),
    domainState: z.enum(NODE_DOMAIN_STATES),
    memory: NodeMemorySchema,
    vcpus: NodeVcpusSchema,
    /** One-minute load average. */
    load: z.number({ error: 'must be a non-negative number' }).min(0, { error: 'must be a non-negative number' }),
    runningVms: z.array(NameSchema),
    keepaliveAt: TimestampSchema,
    version: checkedString('version', textProblem(64)),
    /** Version of the node spec znode acted on; -1 before any. Not in the v1 brief, hence defaulted. */
    observedGeneration: intInRange(-1).default(-1),
    conditions: ConditionListSchema,
  })
  .superRefine((status, ctx) => noDuplicates(status.runningVms, ctx, ['runningVms'], 'name'));
export type NodeStatus = z.output<typeof NodeStatusSchema>;
export type NodeStatusInput = z.input<typeof NodeStatusSchema>;

export function decodeNodeSpec(value: unknown, fieldPrefix = 'spec'): NodeSpec {
  return decodeWith(NodeSpecSchema, value, fieldPrefix);
}
export function encodeNodeSpec(spec: NodeSpecInput): string {
  return encodeWith(NodeSpecSchema, spec, 'spec');
}

export function decodeNodeStatus(value: unknown, fieldPrefix = 'status'): NodeStatus {
  return decodeWith(NodeStatusSchema, value, fieldPrefix);
}
export function encodeNodeStatus(status: NodeStatusInput): string {
  return encodeWith(NodeStatusSchema, status, 'status');
}
