// The RBD concern's decisions, as pure functions (DESIGN §4 "RBD locks"): which VMs this node must
// check, what each lock on their images means, and when a check is due again.
//
// INVARIANTS
//  B1  Only the node named in spec.node checks a VM, and only when it is about to start it (spec
//      running, no active domain here, no other node holding the guest) or to receive it (a
//      migration record in phase requested naming this node as target).
//  B2  A lock from this node's storage address is stale only when no QEMU of the VM runs here;
//      then, and only then, it is removed (never with a blocklist entry). Any other node's lock
//      refuses, naming the node (or the address, when it is no node's); the migration source's
//      lock never blocks its incoming migration (both QEMUs share the image).
//  B3  A check that went wrong says why (RbdUnreachable, RbdCheckFailed) and permits nothing.
//  B4  A blocked or unanswered check is looked at again every POLL_MS (the holder may release
//      without telling anyone); a clear one for a start is refreshed before it ages out
//      (REFRESH_MS < RBD_CLEAR_MAX_AGE_MS); an incoming one is final for its migration.
import { addressHost, type RbdLocker } from '../../drivers/rbd/types.ts';
import type { MigrationRecord, RbdCheck, RbdLock, RbdVerdict, VmSpec, VmStatus } from '../../schemas/index.ts';
import { RBD_CLEAR_MAX_AGE_MS, sameImages } from '../rbd-readiness.ts';

export const POLL_MS = 2_000;
export const REFRESH_MS = Math.floor(RBD_CLEAR_MAX_AGE_MS / 2);

export type Candidate =
  | { vm: string; purpose: 'start'; images: string[]; statusVersion: number | null }
  | { vm: string; purpose: 'incoming'; images: string[]; migration: string; source: string };

const HOLDING: ReadonlySet<VmStatus['phase']> = new Set(['Starting', 'Running', 'Migrating', 'Failed']);

/** B1: what, if anything, this node must check for `vm`. */
export function candidateOf(
  node: string,
  vm: string,
  spec: VmSpec | null,
  status: { value: VmStatus; version: number } | null,
  record: MigrationRecord | null,
  activeHere: boolean,
): Candidate | undefined {
  if (!spec || spec.rbd.length === 0 || spec.node !== node) return undefined;
  if (record && record.target === node && record.source !== node && record.phase === 'requested') {
    return { vm, purpose: 'incoming', images: [...spec.rbd], migration: record.id, source: record.source };
  }
  if (spec.state !== 'running' || activeHere) return undefined;
  const holder = status?.value.node;
  if (holder !== undefined && holder !== node && HOLDING.has(status!.value.phase)) return undefined;
  return { vm, purpose: 'start', images: [...spec.rbd], statusVersion: status ? status.version : null };
}

export interface LockFacts {
  me: string;
  myAddress: string;
  /** Storage address → node, from the nodes' statuses. */
  nodeOf: ReadonlyMap<string, string>;
  /** A QEMU of the VM is active on this node now. */
  liveHere: boolean;
  /** For an incoming migration: its source, whose locks are expected. */
  source?: string;
}

export interface Classified {
  verdict: Exclude<RbdVerdict, 'unreachable' | 'failed'>;
  reason?: string;
  message?: string;
  /** B2: this node's locks with no QEMU of the VM here. */
  stale: Array<{ image: string; lock: RbdLock }>;
  images: Array<{ image: string; locks: RbdLock[] }>;
}

/** The node a lock's address belongs to, if any. */
export function ownerOf(address: string, f: Pick<LockFacts, 'me' | 'myAddress' | 'nodeOf'>): string | undefined {
  const host = addressHost(address);
  return host === f.myAddress ? f.me : f.nodeOf.get(host);
}

/** B2: what the locks on the VM's images mean for this node. */
export function classifyLocks(images: ReadonlyArray<{ image: string; lockers: readonly RbdLocker[] }>, f: LockFacts): Classified {
  const stale: Classified['stale'] = [];
  const held: string[] = [];
  let inUse = false;
  const out: Classified['images'] = [];
  for (const { image, lockers } of images) {
    const locks: RbdLock[] = [];
    for (const l of lockers) {
      const node = ownerOf(l.address, f);
      const lock: RbdLock = { id: l.id, locker: l.locker, address: l.address, ...(node !== undefined ? { node } : {}) };
      if (node === f.me) {
        if (f.liveHere) {
          inUse = true;
          locks.push(lock);
        } else stale.push({ image, lock });
        continue;
      }
      locks.push(lock);
      if (node !== undefined && node === f.source) continue;
      held.push(`${image} is locked by ${node ?? `a client at ${addressHost(l.address)} that is no node's storage address`} (${l.locker} ${l.address})`);
    }
    out.push({ image, locks });
  }
  if (held.length > 0) return { verdict: 'held', reason: 'RbdLockHeld', message: held.join('; '), stale, images: out };
  return { verdict: inUse ? 'inUse' : 'clear', stale, images: out };
}

/** B4: whether `existing` already answers `c` (and until when); undefined when a check is due now. */
export function checkDueInMs(c: Candidate, existing: RbdCheck | null, me: string, nowMs: number): number | undefined {
  if (!existing || existing.node !== me || existing.purpose !== c.purpose) return undefined;
  if (!sameImages(existing, c.images)) return undefined;
  const age = nowMs - Date.parse(existing.checkedAt);
  if (c.purpose === 'incoming') return existing.migration === c.migration ? Infinity : undefined;
  if ((existing.statusVersion ?? null) !== c.statusVersion) return undefined;
  const every = existing.verdict === 'clear' ? REFRESH_MS : POLL_MS;
  return age >= every || age < 0 ? undefined : every - age;
}

/** A flush-locks request (spec.flushLocksAt) this node has not answered yet. */
export function flushLocksPending(node: string, spec: VmSpec | null, existing: RbdCheck | null): string | undefined {
  if (!spec?.flushLocksAt || spec.node !== node || spec.rbd.length === 0) return undefined;
  return existing?.flushLocks?.at === spec.flushLocksAt ? undefined : spec.flushLocksAt;
}

/** Why the VM's locks may not be flushed now (it runs, or may), or undefined. */
export function flushLocksRefusal(spec: VmSpec, status: VmStatus | null, activeHere: boolean, me: string): string | undefined {
  if (activeHere) return `it runs on ${me}`;
  if (spec.state === 'running') return `its desired state is running (stop it first: vk vm stop)`;
  if (status && HOLDING.has(status.phase)) return `its status says it is ${status.phase.toLowerCase()} on ${status.node}`;
  if (status?.domainState === 'running' || status?.domainState === 'paused') return `its status says its domain is ${status.domainState} on ${status.node}`;
  return undefined;
}
