// Whether the RBD concern's last check lets this node start a VM, or receive it in a migration:
// read from the VM informer's cache (/vms/<name>/rbd, written by this node's RBD concern). Shared by
// the domain concern (no start while another node holds a lock) and the migration concern (no
// incoming migration then): pure, no effects.
//
// INVARIANTS
//  R1  A VM without RBD disks is never gated.
//  R2  Only a `clear` check permits: made by this node, for this purpose (a start: bound to the
//      VM status version the planner sees, so any status write since makes it old; an incoming
//      migration: bound to the record's id), covering exactly spec.rbd, and a start's is no older
//      than RBD_CLEAR_MAX_AGE_MS (locks change without telling anyone).
//  R3  A check that does not apply yet is `pending`: the planner waits and writes nothing (the RBD
//      concern looks at the VM again when its status, its migration or its domain changes).
import type { MigrationRecord, RbdCheck } from '../schemas/index.ts';

/** How long a clear check permits a start (the RBD concern refreshes a waiting VM's check more often). */
export const RBD_CLEAR_MAX_AGE_MS = 10_000;

export type RbdGate = { kind: 'clear' } | { kind: 'pending'; why: string } | { kind: 'blocked'; reason: string; message: string };

/** The check covers exactly these images (in any order). */
export function sameImages(check: RbdCheck, images: readonly string[]): boolean {
  const a = check.images.map((i) => i.image).sort();
  const b = [...images].sort();
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function blocked(check: RbdCheck): RbdGate | undefined {
  if (check.verdict === 'clear') return undefined;
  if (check.verdict === 'inUse') return { kind: 'pending', why: `its RBD locks are held by this node's own running guest` };
  const reason = check.reason ?? (check.verdict === 'held' ? 'RbdLockHeld' : check.verdict === 'unreachable' ? 'RbdUnreachable' : 'RbdCheckFailed');
  return { kind: 'blocked', reason, message: check.message ?? reason };
}

/** R1–R3 for a start on `node`; undefined when the VM has no RBD disks. */
export function rbdStartGate(
  node: string,
  images: readonly string[],
  statusVersion: number | null,
  check: RbdCheck | null | undefined,
  nowMs: number,
): RbdGate | undefined {
  if (images.length === 0) return undefined;
  if (!check || check.node !== node || check.purpose !== 'start') return { kind: 'pending', why: 'waiting for its RBD locks to be checked here' };
  if ((check.statusVersion ?? null) !== statusVersion || !sameImages(check, images)) return { kind: 'pending', why: 'waiting for a new check of its RBD locks' };
  const no = blocked(check);
  if (no) return no;
  if (nowMs - Date.parse(check.checkedAt) > RBD_CLEAR_MAX_AGE_MS) return { kind: 'pending', why: 'waiting for a fresh check of its RBD locks' };
  return { kind: 'clear' };
}

/** R1–R3 for the incoming migration `record` on `node`; undefined when the VM has no RBD disks. */
export function rbdIncomingGate(node: string, images: readonly string[], record: MigrationRecord, check: RbdCheck | null | undefined): RbdGate | undefined {
  if (images.length === 0) return undefined;
  if (!check || check.node !== node || check.purpose !== 'incoming' || check.migration !== record.id || !sameImages(check, images)) {
    return { kind: 'pending', why: `waiting for ${node} to check the RBD locks` };
  }
  return blocked(check) ?? { kind: 'clear' };
}
