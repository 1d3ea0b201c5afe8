// The RBD concern's verdict on one VM (DESIGN §4 "RBD locks"): /vms/<name>/rbd, written by the node
// about to start the VM (its spec.node) or to receive it in a migration, read by that node's domain
// and migration planners (reconcilers/rbd-readiness.ts). Never a lock itself: QEMU's librbd
// exclusive lock is the lock; this says what the lockers were when the node last looked.
import { z } from 'zod';
import { decodeWith, encodeWith } from './codec.ts';
import { MessageSchema, ReasonSchema } from './condition.ts';
import { checkedString, IdSchema, RbdImageSchema, textProblem, TimestampSchema } from './formats.ts';
import { NameSchema } from './names.ts';
import { intInRange } from './rules.ts';

/**
 * clear        nothing stops a start (or the incoming migration) here: no lock, or only the
 *              migration source's, or stale locks of this node that this check removed
 * inUse        this node's live QEMU for the VM holds the lock (a running guest; no start needed)
 * held         another node holds a lock (RbdLockHeld)
 * unreachable  the monitor did not answer in time (RbdUnreachable)
 * failed       anything else went wrong (RbdCheckFailed)
 */
export const RBD_VERDICTS = ['clear', 'inUse', 'held', 'unreachable', 'failed'] as const;
export type RbdVerdict = (typeof RBD_VERDICTS)[number];

const text = (what: string, max: number) => checkedString(what, textProblem(max));

export const RbdLockSchema = z.strictObject({
  id: text('lock id', 256),
  locker: text('locker', 128),
  address: text('address', 128),
  /** The node whose storage address it is, when known. */
  node: NameSchema.optional(),
});
export type RbdLock = z.output<typeof RbdLockSchema>;

export const RbdCheckSchema = z.strictObject({
  /** The node that checked: the one about to start the VM or to receive it. */
  node: NameSchema,
  /** start: for a start here; incoming: for the migration `migration` from `source`. */
  purpose: z.enum(['start', 'incoming']),
  /** For a start: the version of the VM status the check saw (null: none yet). Any status write since makes the verdict old. */
  statusVersion: intInRange(0).nullable().optional(),
  /** For incoming: the migration record's id. */
  migration: IdSchema.optional(),
  source: NameSchema.optional(),
  verdict: z.enum(RBD_VERDICTS),
  /** RbdLockHeld, RbdUnreachable, RbdCheckFailed (absent when clear or inUse). */
  reason: ReasonSchema.optional(),
  message: MessageSchema.optional(),
  /** Every image of spec.rbd, with the locks seen on it (after the stale ones were removed). */
  images: z.array(z.strictObject({ image: RbdImageSchema, locks: z.array(RbdLockSchema) })),
  /** Stale locks of this node this check removed (no live QEMU of the VM here held them). */
  removed: z.array(RbdLockSchema.extend({ image: RbdImageSchema })).default([]),
  checkedAt: TimestampSchema,
  /** The last `vk vm flush-locks` request (spec.flushLocksAt) this node answered, and how. */
  flushLocks: z
    .strictObject({
      at: TimestampSchema,
      result: z.enum(['done', 'refused', 'failed']),
      message: MessageSchema,
      removed: z.array(RbdLockSchema.extend({ image: RbdImageSchema })).default([]),
    })
    .optional(),
});
export type RbdCheck = z.output<typeof RbdCheckSchema>;
export type RbdCheckInput = z.input<typeof RbdCheckSchema>;

export function decodeRbdCheck(value: unknown, fieldPrefix = 'rbd'): RbdCheck {
  return decodeWith(RbdCheckSchema, value, fieldPrefix);
}
export function encodeRbdCheck(check: RbdCheckInput): string {
  return encodeWith(RbdCheckSchema, check, 'rbd');
}

/** What a node publishes about its storage network (node status `storage`, owned by the RBD concern). */
export const NodeStorageSchema = z.strictObject({
  /** The address this node's Ceph clients (its QEMUs, its daemon) use: lockers from it are this node's. */
  address: checkedString('storage address', textProblem(64)),
  /** Whether the monitor answered the last call. */
  reachable: z.boolean(),
  message: MessageSchema.optional(),
  checkedAt: TimestampSchema,
});
export type NodeStorage = z.output<typeof NodeStorageSchema>;
