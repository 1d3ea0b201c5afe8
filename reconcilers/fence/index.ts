// The fence concern (DESIGN §4 "Fencing and recovery"): on the coordinators, one holder of the
// fence lock fences lost nodes (ipmi → command → storage) and recovers the VMs a fence covers.
import type { Manager } from '../../controllers/manager.ts';
import { FenceController, type FenceControllerOptions, type FenceEvent } from './controller.ts';

export type { FenceControllerOptions, FenceEvent };
export { FenceController };

export function register(m: Manager, o: FenceControllerOptions): FenceController {
  return m.add(new FenceController(m, o));
}
