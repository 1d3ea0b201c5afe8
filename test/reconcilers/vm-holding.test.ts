import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { guestOccupies, statusHoldsGuest } from '../../reconcilers/vm-holding.ts';
import type { VmStatus } from '../../schemas/index.ts';

const status = (extra: Partial<VmStatus>): VmStatus => ({ phase: 'Stopped', node: 'hv1', observedGeneration: 0, conditions: [], updatedAt: '2026-12-05T00:00:00.000Z', ...extra });

describe('vm-holding: whether a status holds the VM for its node', () => {
  it('a guest starting, running, migrating or failed (retrying) occupies its node; pending or stopped does not', () => {
    for (const phase of ['Starting', 'Running', 'Migrating', 'Failed'] as const) assert.equal(guestOccupies(status({ phase })), true, phase);
    for (const phase of ['Pending', 'Stopped'] as const) assert.equal(guestOccupies(status({ phase })), false, phase);
  });
  it('an active domain state occupies it whatever the phase; a shut-off one does not', () => {
    assert.equal(guestOccupies(status({ phase: 'Stopped', domainState: 'running' })), true);
    assert.equal(guestOccupies(status({ phase: 'Stopped', domainState: 'paused' })), true);
    assert.equal(guestOccupies(status({ phase: 'Stopped', domainState: 'shutoff' })), false);
  });
  it('a reservation at rest holds it too, without occupying it', () => {
    const reserved = status({ phase: 'Stopped', reservedBy: '0x1' });
    assert.equal(guestOccupies(reserved), false);
    assert.equal(statusHoldsGuest(reserved), true);
    assert.equal(statusHoldsGuest(status({ phase: 'Stopped' })), false);
  });
});
