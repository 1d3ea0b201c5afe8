// What each key's last no-op look read, so a 'drift' resync (controllers/controller.ts) can leave
// out the keys that would be looked at for nothing.
//
// A look is recorded as the tuple of what it read: the informer's objects (it replaces a field's
// object on every change, so identity means "unchanged"), and plain values for the rest (a
// domain's state, the session id, an epoch counting changes of a source).
//
// Invariants:
//   S1  holds(k, now) is true only when k's last recorded look read exactly `now`: same length,
//       every element Object.is-equal. Anything else (no look, a longer or shorter tuple) is false.
//   S2  A look is recorded only by the reconcile that found nothing to do; any other outcome of
//       k calls forget(k), so a key that acted, waited or failed is always looked at again.
export class SettledLooks<K> {
  private readonly looks = new Map<K, readonly unknown[]>();

  /** k's reconcile found nothing to do, having read `inputs`. */
  note(key: K, inputs: readonly unknown[]): void {
    this.looks.set(key, inputs);
  }

  forget(key: K): void {
    this.looks.delete(key);
  }

  /** k's last look was a no-op over these very inputs (S1). */
  holds(key: K, inputs: readonly unknown[] | undefined): boolean {
    const last = this.looks.get(key);
    if (!last || !inputs || last.length !== inputs.length) return false;
    for (let i = 0; i < last.length; i++) if (!Object.is(last[i], inputs[i])) return false;
    return true;
  }

  get size(): number {
    return this.looks.size;
  }
}
