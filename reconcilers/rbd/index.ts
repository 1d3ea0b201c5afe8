// The RBD concern: before this node starts a VM with RBD disks, or receives one, it checks the
// images' locks and publishes its verdict for the domain and migration planners.
import type { Manager } from '../../controllers/manager.ts';
import { RbdController, type RbdControllerOptions } from './controller.ts';

export type { RbdControllerOptions };

export function register(m: Manager, o: RbdControllerOptions): RbdController {
  return m.add(new RbdController(m, o));
}
