// The RBD concern's effects: list the locks of a VM's images, remove this node's stale ones, and
// say what that means as an RbdCheck (schemas/rbd.ts). Behind RbdEffects, which the daemon wires to
// drivers/rbd and the hypervisor.
import type { Logger } from 'pino';
import { RbdError, type RbdLocker } from '../../drivers/rbd/types.ts';
import type { RbdCheck, RbdLock } from '../../schemas/index.ts';
import { classifyLocks, ownerOf, type Candidate, type LockFacts } from './plan.ts';

export interface RbdEffects {
  listLocks(image: string): Promise<RbdLocker[]>;
  removeLock(image: string, lock: Pick<RbdLocker, 'id' | 'locker'>): Promise<void>;
  /** A QEMU of the VM is active on this node now (asked of libvirt, not a cache). */
  activeHere(vm: string): Promise<boolean>;
  log: Logger;
  onAction?(line: string): void;
}

type Removed = RbdCheck['removed'];

function failure(error: unknown): { verdict: 'unreachable' | 'failed'; reason: string; message: string } {
  if (error instanceof RbdError && error.reason === 'RbdUnreachable') return { verdict: 'unreachable', reason: 'RbdUnreachable', message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { verdict: 'failed', reason: 'RbdCheckFailed', message };
}

async function listAll(images: readonly string[], fx: RbdEffects): Promise<Array<{ image: string; lockers: RbdLocker[] }>> {
  return Promise.all(images.map(async (image) => ({ image, lockers: await fx.listLocks(image) })));
}

/** Lists, classifies, removes this node's stale locks (B2) and answers the check for `c`. */
export async function checkLocks(node: string, c: Candidate, facts: Omit<LockFacts, 'liveHere' | 'source'>, fx: RbdEffects, now: () => string): Promise<RbdCheck> {
  const base = {
    node,
    purpose: c.purpose,
    ...(c.purpose === 'start' ? { statusVersion: c.statusVersion } : { migration: c.migration, source: c.source }),
  };
  const removed: Removed = [];
  try {
    const liveHere = await fx.activeHere(c.vm);
    const f: LockFacts = { ...facts, liveHere, ...(c.purpose === 'incoming' ? { source: c.source } : {}) };
    let found = classifyLocks(await listAll(c.images, fx), f);
    if (found.stale.length > 0) {
      // B2: asked again right before removing, so a QEMU started meanwhile keeps its lock.
      if (await fx.activeHere(c.vm)) {
        found = classifyLocks(await listAll(c.images, fx), { ...f, liveHere: true });
      } else {
        for (const { image, lock } of found.stale) {
          await fx.removeLock(image, lock);
          removed.push({ image, ...lock });
          const line = `${node} ${c.vm} removed stale RBD lock on ${image} (${lock.locker} ${lock.address}): no QEMU of the VM runs on ${node}`;
          fx.log.warn({ vm: c.vm, image, lock }, `rbd: ${line.slice(node.length + 1)}`);
          fx.onAction?.(line);
        }
      }
    }
    return {
      ...base,
      verdict: found.verdict,
      ...(found.reason !== undefined ? { reason: found.reason } : {}),
      ...(found.message !== undefined ? { message: found.message } : {}),
      // classifyLocks lists stale locks apart (found.stale), never in found.images.
      images: found.images,
      removed,
      checkedAt: now(),
    };
  } catch (error) {
    const why = failure(error);
    return { ...base, ...why, images: c.images.map((image) => ({ image, locks: [] as RbdLock[] })), removed, checkedAt: now() };
  }
}

/** `vk vm flush-locks`: removes every lock of the images (the caller proved the VM runs nowhere). */
export async function flushAllLocks(node: string, vm: string, images: readonly string[], facts: Omit<LockFacts, 'liveHere' | 'source'>, fx: RbdEffects): Promise<{ removed: Removed; error?: string }> {
  const removed: Removed = [];
  try {
    for (const { image, lockers } of await listAll(images, fx)) {
      for (const l of lockers) {
        const owner = ownerOf(l.address, facts);
        await fx.removeLock(image, l);
        removed.push({ image, id: l.id, locker: l.locker, address: l.address, ...(owner !== undefined ? { node: owner } : {}) });
        const line = `${node} ${vm} flush-locks removed RBD lock on ${image} (${l.locker} ${l.address}${owner ? `, ${owner}` : ''})`;
        fx.log.warn({ vm, image, lock: l }, `rbd: ${line.slice(node.length + 1)}`);
        fx.onAction?.(line);
      }
    }
    return { removed };
  } catch (error) {
    return { removed, error: failure(error).message };
  }
}
