import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { ConditionListSchema, MessageSchema, ReasonSchema } from './condition.ts';
import { formatValue } from './errors.ts';
import { checkedString, IdSchema, RbdImageSchema, Sha256Schema, textProblem, TimestampSchema } from './formats.ts';
import { NameSchema } from './names.ts';
import { intInRange, noDuplicates } from './rules.ts';

export const VM_STATES = ['running', 'stopped', 'disabled'] as const;
export const STOP_MODES = ['graceful', 'force'] as const;
export const VM_NODE_SELECTORS = ['mem', 'memprov', 'load', 'vcpus', 'vms', 'default'] as const;
export const VM_MIGRATION_METHODS = ['default', 'live', 'shutdown'] as const;
export type VmState = (typeof VM_STATES)[number];
export type StopMode = (typeof STOP_MODES)[number];
export type VmNodeSelector = (typeof VM_NODE_SELECTORS)[number];
export type VmMigrationMethod = (typeof VM_MIGRATION_METHODS)[number];

export const VmMetaSchema = z
  .strictObject({
    /** Hosts the VM may run on; empty means any. */
    nodeLimit: z.array(NameSchema).default([]),
    nodeSelector: z.enum(VM_NODE_SELECTORS).default('default'),
    /** Start again when its home node becomes ready. */
    autostart: z.boolean().default(false),
    migrationMethod: z.enum(VM_MIGRATION_METHODS).default('default'),
    maxDowntimeMs: intInRange(1).default(300),
  })
  .superRefine((meta, ctx) => noDuplicates(meta.nodeLimit, ctx, ['nodeLimit'], 'name'));

/** The fields of a VM spec, also used (with xml/xmlFile) by the VM manifest. */
export const vmSpecShape = {
  state: z.enum(VM_STATES).default('running'),
  stopMode: z.enum(STOP_MODES).default('graceful'),
  shutdownTimeoutMs: intInRange(1).default(90_000),
  /** Bumped by `vk vm restart`; the node restarts the domain once per new value. */
  restartedAt: TimestampSchema.optional(),
  /**
   * Bumped by `vk vm stop`: the stop of that request destroys the domain instead of shutting it
   * down gracefully, once per new value. A one-off: stopMode, the standing setting, is unchanged.
   */
  forceStopAt: TimestampSchema.optional(),
  /**
   * Bumped by `vk vm flush-locks`: the VM's node clears every lock of its RBD images once per new
   * value, if the VM runs nowhere (the answer is in /vms/<name>/rbd, flushLocks).
   */
  flushLocksAt: TimestampSchema.optional(),
  node: NameSchema,
  /** Where the VM came from, for unmigrate; null when it has none. */
  previousNode: NameSchema.nullable().optional(),
  /**
   * The node whose flush shut this VM down because no node could take it (DESIGN.md §4 "Node flush
   * / ready": no target → stopped + autostart). `vk node ready` of the VM's node (or of its
   * previousNode, which brings it back) starts it again and clears this. It is the flush's mark,
   * kept apart from the user's meta.autostart, which no flush or ready changes. It means something
   * only on a stopped VM: decode and encode drop it whenever state is not stopped.
   */
  stoppedByFlush: NameSchema.optional(),
  meta: VmMetaSchema.prefault({}),
  /** 'pool/image' of every RBD disk, derived from the XML at define time. */
  rbd: z.array(RbdImageSchema).default([]),
};

/** Cross-field rules of a VM spec (run only once every field is valid). */
export function checkVmSpec(
  spec: { node: string; meta: { nodeLimit: string[] }; rbd: string[] },
  ctx: z.RefinementCtx,
): void {
  const limit = spec.meta.nodeLimit;
  if (limit.length > 0 && !limit.includes(spec.node)) {
    ctx.addIssue({
      code: 'custom',
      path: ['node'],
      input: spec.node,
      params: { kind: 'name' },
      message: `not in meta.nodeLimit ${formatValue(limit)}`,
    });
  }
  noDuplicates(spec.rbd, ctx, ['rbd'], 'RBD image');
}

export const VmSpecSchema = z.strictObject(vmSpecShape).superRefine(checkVmSpec);
export type VmSpec = z.output<typeof VmSpecSchema>;
/** What encodeVmSpec accepts: defaulted fields may be left out. */
export type VmSpecInput = z.input<typeof VmSpecSchema>;
export type VmMeta = VmSpec['meta'];

export const VM_PHASES = [
  'Pending',
  'Starting',
  'Running',
  'ShuttingDown',
  'Stopped',
  'Disabled',
  'Migrating',
  'Failed',
] as const;
export type VmPhase = (typeof VM_PHASES)[number];

/** A ZooKeeper session id as drivers/zk prints it. */
const SessionIdSchema = checkedString('session id', (v) => (/^[0-9a-f]{16}$/.test(v) ? undefined : 'must be 16 lower-case hex digits'), { pattern: '^[0-9a-f]{16}$' });

export const VmStatusSchema = z.strictObject({
  phase: z.enum(VM_PHASES),
  node: NameSchema,
  /** Version of the spec znode acted on; -1 before any. */
  observedGeneration: intInRange(-1),
  /** libvirt's domain state as last seen, e.g. "running", "shutoff". */
  domainState: checkedString('domain state', textProblem(64)).optional(),
  /** The last spec.restartedAt this node honoured. */
  restartedAt: TimestampSchema.optional(),
  /** The last spec.forceStopAt this node honoured (or saw overtaken by a start). */
  forceStopAt: TimestampSchema.optional(),
  /** xmlHash() of the XML the domain was defined from. */
  xmlHash: Sha256Schema.optional(),
  /** Consecutive unexpected deaths and the last one, for the restart back-off. */
  crash: z.strictObject({ count: intInRange(1), lastAt: TimestampSchema }).optional(),
  /**
   * A VM at rest on its node (Stopped, Disabled) that the node keeps for itself: the ZooKeeper
   * session that wrote it. No other node claims the VM until its node releases it (or it is fenced),
   * so that session may start the VM without claiming it first (reconcilers/domain/plan.ts).
   */
  reservedBy: SessionIdSchema.optional(),
  conditions: ConditionListSchema,
  updatedAt: TimestampSchema,
});
export type VmStatus = z.output<typeof VmStatusSchema>;
export type VmStatusInput = z.input<typeof VmStatusSchema>;

export const MIGRATION_METHODS = ['live', 'shutdown'] as const;
/**
 * Lockstep phases (reconcilers/migration/plan.ts): the source writes requested → (the target writes
 * prepared) → copying (live) | switching (shutdown) → done | failed; on a retarget or a lost
 * target the source writes aborting and the target confirms with aborted (or the source does,
 * after the phase timeout). done, aborted and failed are terminal.
 */
export const MIGRATION_PHASES = ['requested', 'prepared', 'copying', 'switching', 'aborting', 'done', 'aborted', 'failed'] as const;
export type MigrationMethod = (typeof MIGRATION_METHODS)[number];
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

export const MigrationProgressSchema = z.strictObject({
  processedBytes: intInRange(0),
  remainingBytes: intInRange(0),
  bandwidthBps: intInRange(0),
  updatedAt: TimestampSchema,
});
export type MigrationProgress = z.output<typeof MigrationProgressSchema>;

/** One ended attempt, kept in the next record's history (the migration's event trail). */
export const MigrationHistoryEntrySchema = z.strictObject({
  id: IdSchema,
  target: NameSchema,
  method: z.enum(MIGRATION_METHODS),
  phase: z.enum(['done', 'aborted', 'failed']),
  reason: ReasonSchema.optional(),
  message: MessageSchema.optional(),
  endedAt: TimestampSchema,
});
export type MigrationHistoryEntry = z.output<typeof MigrationHistoryEntrySchema>;
export const MIGRATION_HISTORY_MAX = 10;

export const MigrationRecordSchema = z
  .strictObject({
    id: IdSchema,
    source: NameSchema,
    target: NameSchema,
    method: z.enum(MIGRATION_METHODS),
    phase: z.enum(MIGRATION_PHASES),
    startedAt: TimestampSchema,
    progress: MigrationProgressSchema.optional(),
    reason: ReasonSchema.optional(),
    message: MessageSchema.optional(),
    /** When the record entered its current phase (the phase barrier's timeout runs from here). */
    phaseSince: TimestampSchema.optional(),
    /** When it reached a terminal phase. */
    endedAt: TimestampSchema.optional(),
    /** ZooKeeper session (16 hex digits) of the source daemon that owns the record. */
    sourceSession: SessionIdSchema.optional(),
    /** Consecutive failed attempts before this one (for the retry back-off). */
    failures: intInRange(0).optional(),
    /** The previous attempts of this VM, oldest first (at most MIGRATION_HISTORY_MAX). */
    history: z.array(MigrationHistoryEntrySchema).max(MIGRATION_HISTORY_MAX).optional(),
  })
  .superRefine((record, ctx) => {
    if (record.source === record.target) {
      ctx.addIssue({
        code: 'custom',
        path: ['target'],
        input: record.target,
        params: { kind: 'name' },
        message: 'must differ from source',
      });
    }
  });
export type MigrationRecord = z.output<typeof MigrationRecordSchema>;
export type MigrationRecordInput = z.input<typeof MigrationRecordSchema>;

/** A flush's mark outlives no change of state: a VM started (or disabled) since is no longer the flush's. */
function dropStaleMarks(spec: VmSpec): VmSpec {
  if (spec.stoppedByFlush === undefined || spec.state === 'stopped') return spec;
  const { stoppedByFlush: _stale, ...rest } = spec;
  return rest;
}

export function decodeVmSpec(value: unknown, fieldPrefix = 'spec'): VmSpec {
  return dropStaleMarks(decodeWith(VmSpecSchema, value, fieldPrefix));
}
export function encodeVmSpec(spec: VmSpecInput): string {
  return JSON.stringify(dropStaleMarks(decodeWith(VmSpecSchema, spec, 'spec')));
}

export function decodeVmStatus(value: unknown, fieldPrefix = 'status'): VmStatus {
  return decodeWith(VmStatusSchema, value, fieldPrefix);
}
export function encodeVmStatus(status: VmStatusInput): string {
  return encodeWith(VmStatusSchema, status, 'status');
}

/** The status znode's codec, as a compare-and-set of it takes it (drivers/zk compareAndSet). */
export const VM_STATUS_ZNODE = {
  decode: (data: Buffer): VmStatus => decodeVmStatus(data.toString('utf8')),
  encode: encodeVmStatus,
} as const;

/** Whether a migration of this VM that involves this node is in flight: the migration concern owns it then. */
export function migrationInFlight(migration: MigrationRecord | null, node: string): boolean {
  if (!migration) return false;
  if (migration.phase === 'done' || migration.phase === 'aborted' || migration.phase === 'failed') return false;
  return migration.source === node || migration.target === node;
}

export function decodeMigrationRecord(value: unknown, fieldPrefix = 'migration'): MigrationRecord {
  return decodeWith(MigrationRecordSchema, value, fieldPrefix);
}
export function encodeMigrationRecord(record: MigrationRecordInput): string {
  return encodeWith(MigrationRecordSchema, record, 'migration');
}
