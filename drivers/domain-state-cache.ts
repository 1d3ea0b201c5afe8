/*
 * DomainStateCache — what libvirt last said of each domain's run state and persistence, so a
 * reconcile that only needs "is it there, does it run" costs no round trip. It holds no I/O: the
 * hypervisor driver feeds it reads, listings and invalidations.
 *
 * Invariants (tested in test/libvirt/domain-state-cache.test.ts):
 *
 *  C1 Anything that may change a domain forgets it: a lifecycle event for its name, a mutating
 *     call on it (when issued and again when it ends), a reconnection (everything).
 *  C2 A read result is kept only if nothing invalidated the name after the read was issued
 *     (tickets), and it was not issued before the last listing applied: a reply that raced a
 *     change never overwrites the change.
 *  C3 A listing covers every name: a name it did not list is known absent, a listed name is known
 *     in the states the listing can tell (running, paused, shut off) and unknown otherwise; names
 *     invalidated after the listing was issued stay unknown.
 *  C4 lookup() answers undefined whenever it cannot be sure; the caller then reads libvirt.
 */
import type { LocalDomain } from './domain-run-state.ts';

/** A point in the cache's history, taken when a read or listing is issued. */
export type Ticket = number;

export class DomainStateCache {
  private clock = 0;
  /**
   * Nothing issued before this ticket may be stored: a reconnection forgot everything, or a
   * listing at least as new has been applied (and older invalidations were dropped with it).
   */
  private floor = 0;
  private readonly invalidatedAt = new Map<string, number>();
  private readonly known = new Map<string, LocalDomain | null>();
  private listing: { ticket: Ticket; names: Set<string> } | undefined;

  /** Take a ticket just before issuing a read or a listing. */
  begin(): Ticket {
    return this.clock;
  }

  /** C1: forget `name`. */
  invalidate(name: string): void {
    this.clock++;
    this.invalidatedAt.set(name, this.clock);
    this.known.delete(name);
  }

  /** C1: forget everything (reconnection: events may have been missed). */
  forgetAll(): void {
    this.clock++;
    this.floor = this.clock;
    this.known.clear();
    this.invalidatedAt.clear();
    this.listing = undefined;
  }

  /** C2: the result of a read of `name` issued at `ticket` (null: no such domain). */
  store(name: string, value: LocalDomain | null, ticket: Ticket): void {
    if (this.fresh(name, ticket)) this.known.set(name, value);
  }

  /** C3: a listing issued at `ticket`; a state of undefined means "listed, state not told". */
  storeListing(entries: Map<string, LocalDomain | undefined>, ticket: Ticket): void {
    if (ticket < this.floor) return;
    // Values read before this listing could be older than it; the listing is the newer truth.
    for (const [name, value] of entries) {
      if (!this.fresh(name, ticket)) continue;
      if (value) this.known.set(name, value);
      else this.known.delete(name);
    }
    for (const name of [...this.known.keys()]) {
      if (!entries.has(name) && this.fresh(name, ticket)) this.known.delete(name);
    }
    this.listing = { ticket, names: new Set(entries.keys()) };
    // Reads issued before the listing are older news than it: refuse them, and drop the
    // invalidations they would have been checked against.
    this.floor = ticket;
    for (const [name, at] of this.invalidatedAt) if (at <= ticket) this.invalidatedAt.delete(name);
  }

  /** C4: the state, null when known absent, undefined when unknown. */
  lookup(name: string): LocalDomain | null | undefined {
    const hit = this.known.get(name);
    if (hit !== undefined) return hit;
    const l = this.listing;
    if (l && !l.names.has(name) && this.fresh(name, l.ticket)) return null;
    return undefined;
  }

  private fresh(name: string, ticket: Ticket): boolean {
    return ticket >= this.floor && (this.invalidatedAt.get(name) ?? 0) <= ticket;
  }
}
