import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { ConditionListSchema } from './condition.ts';
import { checkedString, textProblem, TimestampSchema } from './formats.ts';
import { NameSchema } from './names.ts';
import { intInRange, noDuplicates } from './rules.ts';
import { NodeStorageSchema } from './rbd.ts';
import { NodeFenceStatusSchema } from './fence.ts';

export const NODE_SPEC_DOMAIN_STATES = ['ready', 'flushed'] as const;
/** stop: the daemon stopped cleanly (a lost node that stopped cleanly is reported, not fenced); dead: a fencing coordinator found it lost. */
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

export const NODE_FLUSH_OPERATIONS = ['flush', 'ready'] as const;
/**
 * queued: waiting for the cluster flush lock (flush only); moving: VMs are being moved (or brought
 * back); done: finished; cancelled: stopped between moves by a newer request (a ready).
 */
export const NODE_FLUSH_PHASES = ['queued', 'moving', 'done', 'cancelled'] as const;
export type NodeFlushPhase = (typeof NODE_FLUSH_PHASES)[number];

/** Progress of the node's last flush or ready (reconcilers/flush/plan.ts), written by its daemon. */
export const NodeFlushSchema = z.strictObject({
  operation: z.enum(NODE_FLUSH_OPERATIONS),
  /** Version of the node spec znode this operation serves. */
  generation: intInRange(-1),
  phase: z.enum(NODE_FLUSH_PHASES),
  /** VMs this operation moves (flush: off the node; ready: back to it) or starts. */
  total: intInRange(0),
  /** Moves finished: the VM runs on its target (flush) or back here (ready). */
  moved: intInRange(0),
  /** Flush: VMs shut down for want of a target (marked stoppedByFlush). Ready: VMs started (shut down by a flush, or autostart). */
  stopped: intInRange(0),
  /** Moves under way now. */
  inFlight: intInRange(0),
  /** While queued: the node holding the flush lock, and how many flushes are ahead of this one. */
  lockHolder: NameSchema.optional(),
  ahead: intInRange(0).optional(),
  message: checkedString('message', textProblem(1024, { allowEmpty: true })),
  startedAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type NodeFlush = z.output<typeof NodeFlushSchema>;

/** InSync: no delta; NotConfigured: this node has no cluster address; FrrUnreachable: vtysh cannot reach FRR; ReloadFailed: a reload left a delta; Failed: any other FRR command failed. */
export const FRR_STATES = ['InSync', 'NotConfigured', 'FrrUnreachable', 'ReloadFailed', 'Failed'] as const;
export type FrrState = (typeof FRR_STATES)[number];

/** One BGP peer as this node's bgpd sees it (`show bgp l2vpn evpn summary json`). */
export const FrrPeerSchema = z.strictObject({
  address: checkedString('address', textProblem(64)),
  /** The node whose cluster address this is, when the cluster config names one. */
  node: NameSchema.optional(),
  /** BGP FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established. */
  state: checkedString('state', textProblem(32)),
  /** EVPN prefixes received from the peer. */
  prefixesReceived: intInRange(0),
});
export type FrrPeer = z.output<typeof FrrPeerSchema>;

/** One VNI as this node's zebra sees it (`show evpn vni json`). */
export const FrrVniSchema = z.strictObject({
  vni: intInRange(1, 16_777_215),
  /** The other VTEPs (cluster addresses) EVPN told zebra about. */
  remoteVteps: z.array(checkedString('address', textProblem(64))),
});
export type FrrVni = z.output<typeof FrrVniSchema>;

/** The FRR concern's view of this node (reconcilers/frr): config in sync, sessions, VNIs. */
export const NodeFrrSchema = z.strictObject({
  /** InSync: `frr-reload.py --test` shows no delta against the rendered config. */
  state: z.enum(FRR_STATES),
  message: checkedString('message', textProblem(1024, { allowEmpty: true })).optional(),
  asn: intInRange(1, 4294967295).optional(),
  routerId: checkedString('address', textProblem(64)).optional(),
  /** Reloads this daemon made since it started. */
  reloads: intInRange(0),
  lastReloadAt: TimestampSchema.optional(),
  /** The last time FRR's running config was found to differ from the rendered one without a config change (a hand edit, a restarted FRR), and how. */
  lastDrift: z
    .strictObject({
      at: TimestampSchema,
      lines: z.array(checkedString('line', textProblem(512, { allowEmpty: true }))).max(50),
    })
    .optional(),
  peers: z.array(FrrPeerSchema),
  vnis: z.array(FrrVniSchema),
  updatedAt: TimestampSchema,
});
export type NodeFrr = z.output<typeof NodeFrrSchema>;

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
    /** Progress of the last flush or ready; owned by the flush reconciler, carried over by the keepalive. */
    flush: NodeFlushSchema.optional(),
    /** BGP EVPN state; owned by the FRR reconciler, carried over by the keepalive. */
    frr: NodeFrrSchema.optional(),
    /** The storage address and whether Ceph answers; owned by the RBD reconciler, carried over by the keepalive. */
    storage: NodeStorageSchema.optional(),
    /** Lost / fencing / fenced / failed, and how; owned by the fencing coordinator (reconcilers/fence), carried over by the keepalive. */
    fence: NodeFenceStatusSchema.optional(),
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

/**
 * The keepalive's heartbeat (/nodes/<name>/lease), renewed every tick, as Kubernetes' node Lease:
 * the full status is written only when its figures change (or to refresh it now and then), so a
 * steady cluster does not send every node's status to every daemon every few seconds.
 */
export const NodeLeaseSchema = z.strictObject({
  /** The node's clock at the renewal. */
  renewedAt: TimestampSchema,
});
export type NodeLease = z.output<typeof NodeLeaseSchema>;

export function decodeNodeLease(value: unknown, fieldPrefix = 'lease'): NodeLease {
  return decodeWith(NodeLeaseSchema, value, fieldPrefix);
}
export function encodeNodeLease(lease: NodeLease): string {
  return encodeWith(NodeLeaseSchema, lease, 'lease');
}
