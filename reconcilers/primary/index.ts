// The primary concern: one coordinator holds the managed networks' gateways and runs their DHCP/DNS.
import type { Manager } from '../../controllers/manager.ts';
import { PrimaryController, type PrimaryControllerOptions } from './controller.ts';

export type { PrimaryControllerOptions };

export function register(m: Manager, o: PrimaryControllerOptions): PrimaryController {
  return m.add(new PrimaryController(m, o));
}
