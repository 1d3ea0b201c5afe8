// GET /vm/{name}?waitFor=GEN: the API's --wait. Follows the VM's spec, status and migration record
// (cli/wait.ts's watchAll and followUntil) until the status has seen generation GEN and shows the
// spec's node and state reached, the status is Failed at that generation, or the timeout passes.
// It never throws for a failure or a timeout: the answer says which.
import { decodeMigrationRecord, decodeVmSpec, decodeVmStatus, type VmState, type VmStatus } from '../schemas/index.ts';
import type { Cluster } from '../cli/connect.ts';
import type { DataState } from '../drivers/zk/index.ts';
import { dataOf, DEFAULT_WAIT_SECONDS, followUntil, watchAll } from '../cli/wait.ts';
import { failureOf } from '../cli/commands/vm.ts';

export interface WaitOutcome {
  result: 'done' | 'failed' | 'timeout';
  message: string;
}

function phaseFor(state: VmState): VmStatus['phase'] {
  return state === 'running' ? 'Running' : state === 'stopped' ? 'Stopped' : 'Disabled';
}

export function waitForGeneration(cluster: Cluster, name: string, generation: number, timeoutSeconds = DEFAULT_WAIT_SECONDS): Promise<WaitOutcome> {
  const { store, paths } = cluster;
  let last = 'no status yet';
  const source = watchAll(store, [paths.vmSpec(name), paths.vmStatus(name), paths.vmMigration(name)]);
  return followUntil<DataState[], WaitOutcome>(source, {
    timeoutMs: Math.round(timeoutSeconds * 1000),
    closed: `stopped following vm/${name}: the connection to ZooKeeper closed`,
    onValue: ([specState, statusState, migrationState]) => {
      const spec = dataOf(specState, (raw) => decodeVmSpec(raw));
      if (!spec) return { result: 'failed', message: `vm ${name} is gone` };
      const status = dataOf(statusState, (raw) => decodeVmStatus(raw));
      const migration = dataOf(migrationState, (raw) => decodeMigrationRecord(raw));
      const moving = migration && !['done', 'aborted', 'failed'].includes(migration.phase) ? `; migration ${migration.source} → ${migration.target} ${migration.phase}` : '';
      if (!status) {
        last = `no status yet${moving}`;
        return undefined;
      }
      if (status.observedGeneration < generation) {
        last = `${status.phase} on ${status.node} (waiting for generation ${generation}, seen ${status.observedGeneration})${moving}`;
        return undefined;
      }
      if (status.phase === 'Failed') return { result: 'failed', message: `vm ${name} failed on ${status.node}: ${failureOf(status)}` };
      if (status.node === spec.node && status.phase === phaseFor(spec.state)) return { result: 'done', message: `vm/${name}: ${status.phase} on ${status.node}` };
      last = `${status.phase} on ${status.node}${moving}`;
      return undefined;
    },
    onTimeout: () => ({ result: 'timeout', message: `timed out after ${timeoutSeconds}s waiting for vm/${name} (last: ${last})` }),
  });
}
