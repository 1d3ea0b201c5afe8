// Whether a VM's status holds the guest for its node: shared by the domain concern (which starts a
// VM only while its status holds it here) and the fencing coordinator (which recovers only what a
// fenced node holds). Pure.
import { ACTIVE_RUN_STATES } from '../drivers/domain-run-state.ts';
import type { VmStatus } from '../schemas/index.ts';

const ACTIVE_STATE_NAMES: ReadonlySet<string> = ACTIVE_RUN_STATES;
// Failed: the owner's start (or stop) failed; it retries under its back-off without a new claim,
// and releases the VM when spec.node moves away, like a running guest.
const HOLDING_PHASES: ReadonlySet<VmStatus['phase']> = new Set(['Starting', 'Running', 'Migrating', 'Failed']);

/** The status says the guest occupies its node (status.node). */
export function guestOccupies(status: VmStatus): boolean {
  return HOLDING_PHASES.has(status.phase) || (status.domainState !== undefined && ACTIVE_STATE_NAMES.has(status.domainState));
}

/** The status holds the VM for its node (status.node): the guest occupies it, or the node reserves it at rest. */
export function statusHoldsGuest(status: VmStatus): boolean {
  return guestOccupies(status) || status.reservedBy !== undefined;
}
