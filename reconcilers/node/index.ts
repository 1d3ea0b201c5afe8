// The node concern: the keepalive (this node's status) and the console follower (the serial logs
// of the VMs homed here). It must start before the flush concern, which edits the status the
// keepalive creates.
import type { Manager } from '../../controllers/manager.ts';
import { NodeServices, type NodeServicesOptions } from './controller.ts';

export type { NodeServicesOptions };

export function register(m: Manager, o: NodeServicesOptions): NodeServices {
  return m.add(new NodeServices(m, o));
}
