// `vk vm …`: the imperative verbs (as in PVC). The writes themselves are core/vm.ts's, shared with
// the REST API (define goes through vk apply's write path, cli/objects.ts; the verbs that change a
// VM are a compare-and-set of its spec znode, retried on conflicts; remove deletes its znodes in one
// multi); this file turns flags into their inputs, prints, and with --wait follows the VM's status
// until the node has done it.
import { Option, type Command } from 'commander';
import { map } from 'rxjs';
import type { DataState } from '../../drivers/zk/index.ts';
import {
  decodeMigrationRecord,
  decodeNodeStatus,
  decodeVmStatus,
  MAX_DOMAIN_XML_BYTES,
  parseDomainXml,
  VM_MIGRATION_METHODS,
  VM_NODE_SELECTORS,
  VM_STATES,
  type VmMeta,
  type VmMigrationMethod,
  type VmNodeSelector,
  type VmSpec,
  type VmState,
  type VmStatus,
} from '../../schemas/index.ts';
import { changeVmMeta, defineVm, migrateVm, moveVm, prepareDefine, removeVm, restartVm, setVmState, unmigrateVm } from '../../core/vm.ts';
import { readExistingVm } from '../cluster.ts';
import { DEFAULT_CONSOLE_LINES, followConsole, readConsole } from '../../core/console.ts';
import { parsePositiveInt, withCluster, type Cluster } from '../connect.ts';
import { println } from '../output.ts';
import { readNamedFile, withoutFileContent } from '../read-file.ts';
import type { Updated } from '../update.ts';
import { registerFlushLocks } from './flush-locks.ts';
import { addWaitOptions, dataOf, waitFor, watchAll, type WaitFlags, type WaitVerdict } from '../wait.ts';

interface MetaFlags {
  limit?: string;
  selector?: VmNodeSelector;
  autostart?: boolean;
  method?: VmMigrationMethod;
  maxDowntime?: number;
}

function addMetaOptions(cmd: Command): Command {
  return cmd
    .option('--limit <nodes>', 'nodes the VM may run on, comma-separated ("" removes the limit)')
    .addOption(new Option('--selector <selector>', 'how a target node is chosen when none is given').choices(VM_NODE_SELECTORS))
    .option('--autostart', 'start the VM again when its home node becomes ready')
    .option('--no-autostart', 'do not start the VM again automatically')
    .addOption(new Option('--method <method>', 'migration method').choices(VM_MIGRATION_METHODS))
    .option('--max-downtime <ms>', 'maximum downtime of a live migration, in milliseconds', parsePositiveInt);
}

function parseLimit(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The meta fields the flags set (the core merges them over the VM's meta). */
function metaPatch(flags: MetaFlags): Partial<VmMeta> {
  const patch: Partial<VmMeta> = {};
  if (flags.limit !== undefined) patch.nodeLimit = parseLimit(flags.limit);
  if (flags.selector !== undefined) patch.nodeSelector = flags.selector;
  if (flags.autostart !== undefined) patch.autostart = flags.autostart;
  if (flags.method !== undefined) patch.migrationMethod = flags.method;
  if (flags.maxDowntime !== undefined) patch.maxDowntimeMs = flags.maxDowntime;
  return patch;
}

// ------------------------------------------------------------------------------------ waiting

/** The reason a status gives for failing: the first True *Failed condition, else the Running condition. */
export function failureOf(status: VmStatus): string {
  const failed = status.conditions.find((c) => c.status === 'True' && c.type.endsWith('Failed'));
  const running = status.conditions.find((c) => c.type === 'Running' && c.status === 'False');
  const c = failed ?? running;
  return c ? `${c.reason}: ${c.message}` : 'no reason given';
}

function decodeStatus(raw: Buffer): VmStatus {
  return decodeVmStatus(raw);
}

/**
 * Follows the VM's status (and migration record) until `reached` holds for a status that has
 * seen `generation`; a Failed status at that generation is a failure.
 */
async function waitForVm(
  cluster: Cluster,
  name: string,
  generation: number,
  flags: WaitFlags,
  goal: string,
  reached: (status: VmStatus) => boolean,
): Promise<void> {
  const { store, paths } = cluster;
  const source = watchAll(store, [paths.vmStatus(name), paths.vmMigration(name)]);
  const evaluate = ([statusState, migrationState]: DataState[]): WaitVerdict => {
    const status = dataOf(statusState, decodeStatus);
    const migration = dataOf(migrationState, (raw) => decodeMigrationRecord(raw));
    const moving =
      migration && !['done', 'aborted', 'failed'].includes(migration.phase) ? `; migration ${migration.source} → ${migration.target} ${migration.phase}` : '';
    if (!status) return { pending: `no status yet${moving}` };
    if (status.observedGeneration < generation) {
      return { pending: `${status.phase} on ${status.node} (waiting for generation ${generation}, seen ${status.observedGeneration})${moving}` };
    }
    if (status.phase === 'Failed') return { failed: `vm ${name} failed on ${status.node}: ${failureOf(status)}` };
    if (reached(status)) return { done: `vm/${name} ${goal}: ${status.phase} on ${status.node}` };
    return { pending: `${status.phase} on ${status.node}${moving}` };
  };
  println(await waitFor(source, evaluate, { what: `vm/${name}`, timeoutSeconds: flags.timeout }));
}

function phaseFor(state: VmState): VmStatus['phase'] {
  return state === 'running' ? 'Running' : state === 'stopped' ? 'Stopped' : 'Disabled';
}

async function maybeWait(cluster: Cluster, name: string, updated: Updated<VmSpec>, flags: WaitFlags, goal: string, extra?: (s: VmStatus) => boolean) {
  if (!flags.wait) return;
  const spec = updated.after;
  const phase = phaseFor(spec.state);
  await waitForVm(cluster, name, updated.version, flags, goal, (s) => s.node === spec.node && s.phase === phase && (extra ? extra(s) : true));
}

// ------------------------------------------------------------------------------------- verbs

function report(name: string, updated: Updated<VmSpec>, what: string): void {
  println(updated.changed ? `vm/${name} ${what}` : `vm/${name} unchanged (already ${what})`);
}

/**
 * A verb that sets the desired state. `forced`: this stop destroys the domain (a one-off request,
 * spec.forceStopAt); the VM's standing stopMode is never changed by a verb.
 */
function stateVerb(program: Command, verb: string, description: string, state: VmState, forced: boolean, done: string) {
  addWaitOptions(program.command(verb).description(description).argument('<name>', 'VM name')).action(
    async (name: string, flags: WaitFlags, cmd: Command) => {
      await withCluster(cmd, async (cluster) => {
        const updated = await setVmState(cluster, name, state, forced);
        report(name, updated, done);
        await maybeWait(cluster, name, updated, flags, done);
      });
    },
  );
}

interface DefineFlags extends MetaFlags, WaitFlags {
  node?: string;
  state?: VmState;
}

function registerDefine(vm: Command): void {
  addWaitOptions(
    addMetaOptions(
      vm
        .command('define')
        .description('create a VM from a libvirt domain XML file (its name comes from the XML)')
        .argument('<xmlfile>', 'libvirt domain XML')
        .option('--node <node>', 'node to run it on (default: chosen by the selector)'),
    ).addOption(new Option('--state <state>', 'desired state (default running)').choices(VM_STATES)),
  ).action(async (file: string, flags: DefineFlags, cmd: Command) => {
    const xml = readNamedFile(file, MAX_DOMAIN_XML_BYTES, 'a domain XML');
    const state = flags.state ?? 'running';
    // Validate before touching ZooKeeper: a bad name, or a node outside --limit, is bad input.
    const prepared = prepareDefine({ xml, xmlSource: file, state, meta: metaPatch(flags), ...(flags.node !== undefined && { node: flags.node }) }, (text, source) =>
      withoutFileContent(() => parseDomainXml(text, source)),
    );
    await withCluster(cmd, async (cluster) => {
      const { name, node } = await defineVm(cluster, prepared, { nodeField: '--node', uuidField: `${file}/domain/uuid` });
      println(`vm/${name} defined on ${node}`);
      if (flags.wait) await waitForVm(cluster, name, 0, flags, 'defined', (s) => s.node === node && s.phase === phaseFor(state));
    });
  });
}

function registerMeta(vm: Command): void {
  addMetaOptions(vm.command('meta').description("change a VM's metadata (node limit, selector, autostart, migration method, downtime)").argument('<name>', 'VM name')).action(
    async (name: string, flags: MetaFlags, cmd: Command) => {
      await withCluster(cmd, async (cluster) => {
        const updated = await changeVmMeta(cluster, name, metaPatch(flags));
        println(`vm/${name} ${updated.changed ? 'configured' : 'unchanged'}`);
      });
    },
  );
}

interface MigrateFlags extends WaitFlags {
  node?: string;
  force?: boolean;
  forceLive?: boolean;
}

function registerMigrations(vm: Command): void {
  addWaitOptions(
    vm
      .command('migrate')
      .description('move a VM to another node for now (vk vm unmigrate brings it back)')
      .argument('<name>', 'VM name')
      .option('--node <node>', 'target node (default: chosen by the VM\'s selector within its node limit)')
      .option('--force', 'migrate a VM that is already migrated (keeps its original previous node)')
      .option('--force-live', 'live migration only, never fall back to shutdown (sets meta.migrationMethod to live)'),
  ).action(async (name: string, flags: MigrateFlags, cmd: Command) => {
    await withCluster(cmd, async (cluster) => {
      const updated = await migrateVm(cluster, name, { ...(flags.node !== undefined && { node: flags.node }), force: flags.force === true, forceLive: flags.forceLive === true, nodeField: '--node' });
      const target = updated.target;
      const previous = updated.after.previousNode;
      println(`vm/${name} migrating ${updated.before.node} → ${target}${previous ? ` (previous node ${previous})` : ' (back to its previous node)'}`);
      if (flags.forceLive && updated.before.meta.migrationMethod !== 'live') {
        println(`note: meta.migrationMethod is now live for this and later migrations (vk vm meta ${name} --method default to undo)`);
      }
      await maybeWait(cluster, name, updated, flags, 'migrated');
    });
  });

  addWaitOptions(
    vm
      .command('move')
      .description('move a VM to another node permanently (clears its previous node)')
      .argument('<name>', 'VM name')
      .option('--node <node>', 'target node (default: chosen by the VM\'s selector within its node limit)'),
  ).action(async (name: string, flags: MigrateFlags, cmd: Command) => {
    await withCluster(cmd, async (cluster) => {
      const updated = await moveVm(cluster, name, { ...(flags.node !== undefined && { node: flags.node }), nodeField: '--node' });
      const target = updated.target;
      println(`vm/${name} moved ${updated.before.node} → ${target} (permanently)`);
      await maybeWait(cluster, name, updated, flags, 'moved');
    });
  });

  addWaitOptions(vm.command('unmigrate').description('move a migrated VM back to its previous node').argument('<name>', 'VM name')).action(
    async (name: string, flags: WaitFlags, cmd: Command) => {
      await withCluster(cmd, async (cluster) => {
        const updated = await unmigrateVm(cluster, name);
        println(`vm/${name} returning ${updated.before.node} → ${updated.after.node}`);
        await maybeWait(cluster, name, updated, flags, 'unmigrated');
      });
    },
  );
}

interface RemoveFlags extends WaitFlags {
  force?: boolean;
}

function registerRemove(vm: Command): void {
  addWaitOptions(
    vm
      .command('remove')
      .description('delete a VM from the cluster (its node destroys and undefines the domain)')
      .argument('<name>', 'VM name')
      .option('--force', 'remove it even if its desired state is running'),
  ).action(async (name: string, flags: RemoveFlags, cmd: Command) => {
    await withCluster(cmd, async (cluster) => {
      const removed = await removeVm(cluster, name, flags.force === true);
      println(`vm/${name} removed`);
      const node = removed.status?.value.node;
      if (!flags.wait || node === undefined) return;
      // The VM's status went with it; the node's status lists what still runs there.
      const source = cluster.store.watchData(cluster.paths.nodeStatus(node)).pipe(map((s) => [s]));
      const done = await waitFor(
        source,
        ([state]): WaitVerdict => {
          const status = dataOf(state, (raw) => decodeNodeStatus(raw));
          if (!status) return { done: `vm/${name} gone (node ${node} reports no status)` };
          return status.runningVms.includes(name) ? { pending: `still running on ${node}` } : { done: `vm/${name} no longer runs on ${node}` };
        },
        { what: `vm/${name}`, timeoutSeconds: flags.timeout },
      );
      println(done);
    });
  });
}

interface LogFlags {
  follow?: boolean;
  lines?: number;
}

function registerLog(vm: Command): void {
  vm.command('log')
    .description("show the VM's serial console log (the last lines the node keeps in ZooKeeper)")
    .argument('<name>', 'VM name')
    .option('-f, --follow', 'keep printing new lines as they arrive (Ctrl-C to stop)')
    .option('-n, --lines <count>', 'how many of the last lines to show (default 100)', parsePositiveInt)
    .action(async (name: string, flags: LogFlags, cmd: Command) => {
      const count = flags.lines ?? DEFAULT_CONSOLE_LINES;
      await withCluster(cmd, async (cluster) => {
        const { store, paths } = cluster;
        if (!flags.follow) {
          const lines = await readConsole(store, paths, name, count);
          if (lines === null) {
            process.stderr.write(`vm ${name} has no console log yet (its XML needs <serial><log file='…'/></serial>)\n`);
            return;
          }
          for (const line of lines) println(line);
          return;
        }
        await readExistingVm(store, paths, name);
        await new Promise<void>((resolve, reject) => {
          const subscription = followConsole(store, paths, name, count).subscribe({
            next: (fresh) => {
              for (const line of fresh) println(line);
            },
            error: reject,
            complete: resolve,
          });
          const stop = () => {
            subscription.unsubscribe();
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      });
    });
}

export function registerVm(program: Command): void {
  const vm = program.command('vm').description('act on one VM (PVC-style verbs that edit its spec)');
  registerDefine(vm);
  registerMeta(vm);
  stateVerb(vm, 'start', 'set the desired state to running', 'running', false, 'started');
  stateVerb(vm, 'stop', 'stop the VM at once (desired state stopped; this stop destroys the domain, its stopMode stays)', 'stopped', true, 'stopped');
  stateVerb(vm, 'shutdown', 'shut the VM down as its stopMode says (graceful: ACPI, then destroyed after the shutdown timeout)', 'stopped', false, 'shut down');
  stateVerb(vm, 'disable', 'stop the VM and keep it stopped (desired state disabled)', 'disabled', false, 'disabled');
  addWaitOptions(vm.command('restart').description('restart a running VM once (bumps restartedAt)').argument('<name>', 'VM name')).action(
    async (name: string, flags: WaitFlags, cmd: Command) => {
      await withCluster(cmd, async (cluster) => {
        const updated = await restartVm(cluster, name);
        const now = updated.restartedAt;
        println(`vm/${name} restart requested`);
        await maybeWait(cluster, name, updated, flags, 'restarted', (s) => s.restartedAt === now);
      });
    },
  );
  registerMigrations(vm);
  registerRemove(vm);
  registerLog(vm);
  registerFlushLocks(vm);
}
