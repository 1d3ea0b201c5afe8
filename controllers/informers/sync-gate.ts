// The "has every watch answered once?" gate every informer has: synced() waits for it, and the
// informer calls check() whenever a first answer arrives.
export class SyncGate {
  private waiters: Array<() => void> = [];

  constructor(private readonly isSynced: () => boolean) {}

  /** Resolves once isSynced() holds (at once when it already does). */
  wait(): Promise<void> {
    if (this.isSynced()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Releases the waiters if isSynced() holds now. */
  check(): void {
    if (!this.isSynced()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
