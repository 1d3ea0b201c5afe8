// The flush concern: a node spec saying flushed (or ready) moves the node's VMs away (or back).
import type { Manager } from '../../controllers/manager.ts';
import { FlushController, type FlushControllerOptions } from './controller.ts';

export type { FlushControllerOptions };

export function register(m: Manager, o: FlushControllerOptions = {}): FlushController {
  return m.add(new FlushController(m, o));
}
