// The migration concern: live and shutdown migrations of VMs whose spec.node moved, stepped in
// lockstep with the peer node through the migration record.
import type { Controller } from '../../controllers/controller.ts';
import type { Manager } from '../../controllers/manager.ts';
import { migrationController, type MigrationControllerOptions } from './controller.ts';

export type { MigrationControllerOptions };

export function register(m: Manager, o: MigrationControllerOptions = {}): Controller<string> {
  return m.add(migrationController(m, o));
}
