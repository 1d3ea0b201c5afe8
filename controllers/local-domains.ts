// Which domain names the local libvirt has, kept from one listing plus lifecycle events, so VMs
// homed on other nodes cost no libvirt call. Until the first listing lands, every name counts as
// possibly present (the caller then looks it up), so the index can only save calls, never hide a
// domain. Events that arrive while a listing is in flight are re-applied on top of its result.
// Its owner calls refresh() (the node controller's resync, which runs on every (re)connection).
import { Subscription } from 'rxjs';
import type { Logger } from 'pino';
import type { Hypervisor } from '../drivers/hypervisor.ts';

export class LocalDomainIndex {
  private names: Set<string> | undefined;
  private pending: Array<{ name: string; present: boolean }> | undefined;
  private readonly subs = new Subscription();

  constructor(
    private readonly hv: Hypervisor,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.subs.add(
      this.hv.lifecycle$.subscribe(({ name, event }) => {
        // 'undefined' removes a persistent domain; anything else means it (still) exists here.
        const present = event !== 'undefined';
        this.pending?.push({ name, present });
        if (this.names) this.apply(this.names, name, present);
      }),
    );
  }

  stop(): void {
    this.subs.unsubscribe();
  }

  /** False only when the domain is known to be absent. */
  mayHave(name: string): boolean {
    return this.names === undefined || this.names.has(name);
  }

  async refresh(): Promise<void> {
    const pending: Array<{ name: string; present: boolean }> = [];
    this.pending = pending;
    try {
      const listed = new Set(await this.hv.listDomainNames());
      for (const { name, present } of pending) this.apply(listed, name, present);
      this.names = listed;
    } catch (error) {
      this.log.warn({ err: error }, 'listing local domains failed; looking each one up');
      this.names = undefined;
    } finally {
      if (this.pending === pending) this.pending = undefined;
    }
  }

  all(): string[] {
    return this.names ? [...this.names] : [];
  }

  private apply(set: Set<string>, name: string, present: boolean): void {
    if (present) set.add(name);
    else set.delete(name);
  }
}
