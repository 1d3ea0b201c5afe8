// The FRR concern: this node's FRR runs the BGP EVPN config rendered from the cluster config.
import type { Manager } from '../../controllers/manager.ts';
import { FrrController, type FrrControllerOptions } from './controller.ts';

export type { FrrControllerOptions };

export function register(m: Manager, o: FrrControllerOptions): FrrController {
  return m.add(new FrrController(m, o));
}
