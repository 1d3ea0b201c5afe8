// DomainStateCache invariants C1–C4 (drivers/domain-state-cache.ts), on plain data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainStateCache } from '../../drivers/domain-state-cache.ts';
import type { LocalDomain } from '../../drivers/domain-run-state.ts';

const running: LocalDomain = { state: 'running', persistent: true };
const shutoff: LocalDomain = { state: 'shutoff', persistent: true };

test('C4: nothing is known before a read or a listing', () => {
  assert.equal(new DomainStateCache().lookup('vm1'), undefined);
});

test('C2: a read is kept, and absence (null) is kept too', () => {
  const c = new DomainStateCache();
  c.store('vm1', running, c.begin());
  c.store('vm2', null, c.begin());
  assert.deepEqual(c.lookup('vm1'), running);
  assert.equal(c.lookup('vm2'), null);
});

test('C1: an event (or a mutating call) forgets the name, and only that name', () => {
  const c = new DomainStateCache();
  c.store('vm1', running, c.begin());
  c.store('vm2', running, c.begin());
  c.invalidate('vm1');
  assert.equal(c.lookup('vm1'), undefined);
  assert.deepEqual(c.lookup('vm2'), running);
});

test('C2: a read issued before an invalidation is not stored when its reply comes after it', () => {
  const c = new DomainStateCache();
  const ticket = c.begin();
  c.invalidate('vm1'); // e.g. the domain was started while the read was in flight
  c.store('vm1', shutoff, ticket);
  assert.equal(c.lookup('vm1'), undefined);
  const later = c.begin();
  c.store('vm1', running, later);
  assert.deepEqual(c.lookup('vm1'), running);
});

test('C1: a reconnection forgets everything, and refuses reads issued before it', () => {
  const c = new DomainStateCache();
  c.store('vm1', running, c.begin());
  c.storeListing(new Map([['vm1', running]]), c.begin());
  const inFlight = c.begin();
  c.forgetAll();
  assert.equal(c.lookup('vm1'), undefined);
  assert.equal(c.lookup('other'), undefined, 'the listing no longer proves absence');
  c.store('vm1', running, inFlight);
  assert.equal(c.lookup('vm1'), undefined);
});

test('C3: a listing makes unlisted names absent and listed names known or unknown', () => {
  const c = new DomainStateCache();
  c.store('gone', running, c.begin());
  c.storeListing(new Map<string, LocalDomain | undefined>([['vm1', running], ['odd', undefined]]), c.begin());
  assert.deepEqual(c.lookup('vm1'), running);
  assert.equal(c.lookup('odd'), undefined, 'listed in a state the listing cannot tell');
  assert.equal(c.lookup('gone'), null, 'a stored name the listing lacks is absent now');
  assert.equal(c.lookup('never-seen'), null);
});

test('C3: a name invalidated while a listing is in flight stays unknown', () => {
  const c = new DomainStateCache();
  const ticket = c.begin();
  c.invalidate('vm1'); // defined while listing
  c.invalidate('vm2'); // undefined while listing
  c.storeListing(new Map([['vm2', shutoff]]), ticket);
  assert.equal(c.lookup('vm1'), undefined, 'not listed, but may exist now');
  assert.equal(c.lookup('vm2'), undefined, 'listed, but may be gone now');
  c.invalidate('vm3');
  assert.equal(c.lookup('vm3'), undefined, 'invalidated after the listing');
});

test('C2: a read issued before the last listing is refused, one issued after it is kept', () => {
  const c = new DomainStateCache();
  const old = c.begin();
  c.invalidate('vm1');
  const listingTicket = c.begin();
  c.storeListing(new Map([['vm1', running]]), listingTicket);
  c.store('vm1', shutoff, old); // older news than the listing
  assert.deepEqual(c.lookup('vm1'), running);
  c.invalidate('vm1');
  c.store('vm1', shutoff, c.begin());
  assert.deepEqual(c.lookup('vm1'), shutoff);
});

test('C3: an older listing arriving after a newer one is ignored', () => {
  const c = new DomainStateCache();
  const first = c.begin();
  c.invalidate('vm1');
  const second = c.begin();
  c.storeListing(new Map([['vm1', running]]), second);
  c.storeListing(new Map(), first);
  assert.deepEqual(c.lookup('vm1'), running);
});
