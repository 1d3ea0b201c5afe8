// `vk cluster maintenance [on|off]`: the cluster config's `maintenance` flag (DESIGN §4 "Fencing
// and recovery": maintenance suppresses fencing; a lost node is reported, not fenced). Without an
// argument it prints the flag. Setting it is one compare-and-set of /config (cli/update.ts,
// retried on a lost race) and, when it changed, a `cluster.maintenance` event.
import type { Command } from 'commander';
import { EVENT_BY_CLI, eventMessage, ValidationError } from '../../schemas/index.ts';
import { appendEvent } from '../../core/events.ts';
import { readConfig } from '../cluster.ts';
import { ensureLayout, secureAcls, withCluster, type Cluster } from '../connect.ts';
import { maintenanceText } from '../fence.ts';
import { println } from '../output.ts';
import { updateClusterConfig } from '../update.ts';

const SWITCH: Record<string, boolean> = { on: true, off: false };

/** `on` → true, `off` → false; anything else is bad input (exit 2) naming the value. */
export function parseSwitch(value: string, field: string): boolean {
  const on = SWITCH[value];
  if (on === undefined) throw new ValidationError(field, value, 'must be on or off');
  return on;
}

/** Appends the event of a change; the change is made, so a failure here is a warning, not an error. */
async function logChange(cluster: Cluster, message: string): Promise<void> {
  const who = cluster.auth ? ` (vk --auth ${cluster.auth.user})` : '';
  try {
    await appendEvent(cluster.store, cluster.paths, { at: new Date().toISOString(), kind: 'cluster.maintenance', by: EVENT_BY_CLI, message: eventMessage(`${message}${who}`) });
  } catch (error) {
    process.stderr.write(`vk: warning: the change was made, but its event could not be logged: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}

function registerMaintenance(cluster: Command): void {
  cluster
    .command('maintenance')
    .description('show or set cluster maintenance: while on, a lost node is reported and never fenced, and nothing is recovered')
    .argument('[state]', 'on or off (without it: print the current value)')
    .action(async (state: string | undefined, _flags: unknown, cmd: Command) => {
      const wanted = state === undefined ? undefined : parseSwitch(state, 'maintenance');
      await withCluster(cmd, async (c) => {
        if (wanted === undefined) {
          println(maintenanceText((await readConfig(c.store, c.paths)).value));
          return;
        }
        // A cluster nobody set up yet gets its layout; otherwise nothing but /config is written.
        if (await c.store.exists(c.paths.root)) await secureAcls(c, [c.paths.config, c.paths.events]);
        else await ensureLayout(c, [c.paths.config, c.paths.events]);
        const updated = await updateClusterConfig(c, (config) => ({ ...config, maintenance: wanted }));
        const text = maintenanceText(updated.after);
        if (!updated.changed) {
          println(text.replace(/^maintenance /, 'maintenance already '));
          return;
        }
        println(text);
        await logChange(c, text);
      });
    });
}

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('cluster-wide switches (maintenance)');
  registerMaintenance(cluster);
}
