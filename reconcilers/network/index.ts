// The network concern: this node's bridges, VXLANs and vLANs converge to every Network spec.
import type { Manager } from '../../controllers/manager.ts';
import { NetworkController, type NetworkControllerOptions } from './controller.ts';

export type { NetworkControllerOptions };

export function register(m: Manager, o: NetworkControllerOptions): NetworkController {
  return m.add(new NetworkController(m, o));
}
