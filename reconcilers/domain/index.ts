// The domain concern: this node's libvirt domains converge to the VM specs homed (or owned) here.
import type { Controller } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import { domainController, type DomainControllerOptions } from './controller.ts';
import { reservationRelease } from './release-on-stop.ts';

export type { DomainControllerOptions };

export function register(m: Manager, o: DomainControllerOptions = {}): Controller<string> {
  // Before the controller: the Manager stops it after the controller (reservations released last).
  m.add(reservationRelease(m));
  return m.add(domainController(m, o));
}
