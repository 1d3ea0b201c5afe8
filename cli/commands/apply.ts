// `vk apply`, `vk diff`, `vk plan`: the declarative commands.
import { writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { isValidName, isValidVni, type ZkPaths } from '../../schemas/index.ts';
import type { ZkStore } from '../../drivers/zk/index.ts';
import { withCluster, type Cluster } from '../connect.ts';
import { CliError, EXIT_USAGE, setRuntimeExitCode, usageError } from '../errors.ts';
import { decodeDocuments, loadManifests, MAX_MANIFEST_BYTES } from '../manifests.ts';
import { readNamedFile } from '../read-file.ts';
import { applyObjects, StalePlanError } from '../objects.ts';
import { colors, println, toJson } from '../output.ts';
import { renderPlan, type PlanAction } from '../plan.ts';
import { applyManifests, checkLive, diffManifests, planManifests } from '../../core/declarative.ts';

interface FileFlags {
  filename?: string[];
}

function filenameOption(required: boolean): Option {
  const option = new Option('-f, --filename <paths...>', 'manifest files or directories (recursive: *.yaml, *.yml, *.json); repeatable');
  if (required) option.makeOptionMandatory();
  return option;
}

// ------------------------------------------------------------------------------- plan files

const PLAN_KIND = 'Plan';

interface PlanFile {
  apiVersion: string;
  kind: typeof PLAN_KIND;
  root: string;
  /** ZooKeeper zxid the plan was computed at (decimal string: it is a 64-bit number). */
  zxid: string;
  createdAt: string;
  actions: PlanAction[];
  /** The manifests' objects, fully resolved (inline XML, defaults filled): what `apply --plan` writes. */
  objects: Record<string, unknown>[];
}

function readPlanFile(file: string): PlanFile {
  const text = readNamedFile(file, MAX_MANIFEST_BYTES, 'a plan file');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw usageError(`${file}: not a plan file: ${(error as Error).message.split('\n')[0]}`);
  }
  const plan = value as Partial<PlanFile> | null;
  if (
    plan === null ||
    typeof plan !== 'object' ||
    plan.kind !== PLAN_KIND ||
    typeof plan.root !== 'string' ||
    typeof plan.zxid !== 'string' ||
    !/^[0-9]+$/.test(plan.zxid) ||
    !Array.isArray(plan.objects)
  ) {
    throw usageError(`${file}: not a plan file written by vk plan --out (needs kind "Plan", root, zxid and objects)`);
  }
  return plan as PlanFile;
}

/**
 * The highest zxid at which anything a plan depends on changed: the lists of VMs, networks and
 * nodes (pzxid), every VM's spec and XML, every network and node spec, the cluster config.
 * Statuses, consoles and migration records are the daemons' and change all the time; they are
 * not counted.
 */
export async function desiredStateZxid(store: ZkStore, paths: ZkPaths): Promise<bigint> {
  const [vms, networks, nodes, config, vmsStat, networksStat, nodesStat] = await Promise.all([
    store.children(paths.vms),
    store.children(paths.networks),
    store.children(paths.nodes),
    store.exists(paths.config),
    store.exists(paths.vms),
    store.exists(paths.networks),
    store.exists(paths.nodes),
  ]);
  const leaves = [
    ...(vms ?? []).filter(isValidName).flatMap((n) => [paths.vmSpec(n), paths.vmXml(n)]),
    ...(networks ?? []).filter(isValidVni).map((v) => paths.networkSpec(v)),
    ...(nodes ?? []).filter(isValidName).map((n) => paths.nodeSpec(n)),
  ];
  const stats = await Promise.all(leaves.map((p) => store.exists(p)));
  let max = 0n;
  for (const s of [vmsStat, networksStat, nodesStat]) if (s && s.pzxid > max) max = s.pzxid;
  for (const s of [config, ...stats]) if (s && s.mzxid > max) max = s.mzxid;
  return max;
}

// ------------------------------------------------------------------------------------- apply

interface ApplyFlags extends FileFlags {
  dryRun?: boolean;
  output?: string;
  plan?: string;
}

async function applyPlanFile(cluster: Cluster, file: string, dryRun: boolean): Promise<void> {
  const plan = readPlanFile(file);
  if (plan.root !== cluster.paths.root) {
    throw usageError(`${file}: the plan is for root ${plan.root}, not ${cluster.paths.root}`);
  }
  const planZxid = BigInt(plan.zxid);
  const current = await desiredStateZxid(cluster.store, cluster.paths);
  if (current > planZxid) {
    throw new StalePlanError(`the cluster's desired state changed at zxid ${current}, after the plan was made (zxid ${planZxid})`);
  }
  const objects = decodeDocuments(plan.objects.map((doc, i) => ({ source: `${file}#objects[${i}]`, file, doc })));
  await checkLive(cluster, objects);
  if (objects.length === 0) println('the plan has no objects to write');
  await applyObjects(cluster, objects, { dryRun, planZxid });
}

function registerApplyCommand(program: Command): void {
  program
    .command('apply')
    .description('create or update the objects of manifests (validates every document first; writes nothing if any is bad)')
    .addOption(filenameOption(false))
    .option('--dry-run', 'print what would be created/configured and write nothing')
    .option('--plan <file>', 'apply a plan saved by vk plan --out, refused if the cluster changed since')
    .addOption(new Option('-o, --output <format>', 'print the objects and what was done to each as json (as POST /apply answers)').choices(['json']))
    .action(async (flags: ApplyFlags, cmd: Command) => {
      if (flags.plan !== undefined && flags.filename !== undefined) throw usageError('give either -f or --plan, not both');
      if (flags.plan !== undefined) {
        const file = flags.plan;
        await withCluster(cmd, (cluster) => applyPlanFile(cluster, file, flags.dryRun === true));
        return;
      }
      if (!flags.filename) throw usageError("apply needs -f <paths…> (or --plan <file>)");
      const objects = loadManifests(flags.filename);
      const json = flags.output === 'json';
      await withCluster(cmd, async (cluster) => {
        const outcome = await applyManifests(cluster, objects, { dryRun: flags.dryRun === true, print: json ? () => {} : println });
        if (json) process.stdout.write(toJson(outcome));
      });
    });
}

// -------------------------------------------------------------------------------------- diff

function colourPatch(patch: string): string {
  return patch
    .split('\n')
    .map((line) => {
      if (line.startsWith('+++') || line.startsWith('---')) return colors.bold(line);
      if (line.startsWith('@@')) return colors.cyan(line);
      if (line.startsWith('+')) return colors.green(line);
      if (line.startsWith('-')) return colors.red(line);
      return line;
    })
    .join('\n');
}

function registerDiffCommand(program: Command): void {
  program
    .command('diff')
    .description('show what apply would change, as unified diffs against ZooKeeper (exit 0: none, 1: differences, 2: bad input, 3: error)')
    .addOption(filenameOption(true))
    .addOption(new Option('-o, --output <format>', 'print the objects and their patches as json (as POST /diff answers)').choices(['json']))
    .action(async (flags: FileFlags & { output?: string }, cmd: Command) => {
      setRuntimeExitCode(3);
      const objects = loadManifests(flags.filename ?? []);
      const outcome = await withCluster(cmd, (cluster) => diffManifests(cluster, objects));
      // Before printing: a reader that stops early (vk diff | head -1) ends vk at the next write
      // (EPIPE, see main.ts), which must still exit 1.
      process.exitCode = outcome.differs ? 1 : 0;
      if (flags.output === 'json') process.stdout.write(toJson(outcome));
      else for (const obj of outcome.objects) for (const { patch } of obj.patches) println(colourPatch(patch));
      process.exitCode = outcome.differs ? 1 : 0;
    });
}

// -------------------------------------------------------------------------------------- plan

interface PlanFlags extends FileFlags {
  output?: string;
  out?: string;
  node?: string;
  libvirtSocket?: string;
  libvirtUri?: string;
  config?: string;
}

/** `vk plan --node N`: what that node's daemon would do now against its local libvirt (as vk daemon --dry-run). */
async function planOneNode(flags: PlanFlags, cmd: Command): Promise<void> {
  const { envOverrides, loadDaemonConfig } = await import('../../daemon/config.ts');
  const { planNode } = await import('../../daemon/daemon.ts');
  const { createLogger } = await import('../../controllers/logger.ts');
  const globals = cmd.optsWithGlobals<{ zk?: string; root?: string; auth?: string }>();
  const overrides = {
    node: flags.node,
    ...(globals.zk !== undefined ? { zk: globals.zk } : {}),
    ...(globals.root !== undefined ? { root: globals.root } : {}),
    ...(globals.auth !== undefined ? { auth: globals.auth } : {}),
    ...(flags.libvirtSocket !== undefined ? { libvirtSocket: flags.libvirtSocket } : {}),
    ...(flags.libvirtUri !== undefined ? { libvirtUri: flags.libvirtUri } : {}),
  };
  let cfg;
  try {
    cfg = loadDaemonConfig(flags.config, envOverrides(process.env), overrides);
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_USAGE);
  }
  const lines = await planNode(cfg, createLogger({ level: 'warn', node: cfg.node }));
  process.exitCode = lines.length === 0 ? 0 : 1;
  if (flags.output === 'json') process.stdout.write(toJson({ node: cfg.node, actions: lines }));
  else println(lines.length === 0 ? `${cfg.node}: nothing to do` : lines.join('\n'));
}

function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('show what the cluster would do, per node (exit 0: nothing, 1: actions, 2: bad input, 3: error)')
    .addOption(filenameOption(false))
    .addOption(new Option('-o, --output <format>', 'print the plan as json').choices(['json']))
    .option('--out <file>', 'save the plan (with the manifests\' objects and the zxid it was computed at) for vk apply --plan')
    .option('--node <name>', 'plan one node against its local libvirt, as its daemon would act now (run on that hypervisor)')
    .option('--libvirt-socket <path>', 'with --node: libvirtd unix socket (env VK_LIBVIRT_SOCKET)')
    .option('--libvirt-uri <uri>', 'with --node: libvirt URI, e.g. qemu:///system (env VK_LIBVIRT_URI)')
    .option('--config <file>', 'with --node: the daemon\'s YAML config file')
    .action(async (flags: PlanFlags, cmd: Command) => {
      setRuntimeExitCode(3);
      if (flags.node !== undefined) {
        if (flags.filename || flags.out !== undefined) throw usageError('--node plans the live state of one node; it takes no -f or --out');
        return planOneNode(flags, cmd);
      }
      const objects = flags.filename ? loadManifests(flags.filename) : [];
      const result = await withCluster(cmd, async (cluster) => ({ ...(await planManifests(cluster, objects)), root: cluster.paths.root }));
      const { zxid, actions, prepared } = result;
      // Set before printing, so a closed stdout (vk plan | head -1) still exits 1 (see main.ts).
      process.exitCode = actions.length > 0 ? 1 : 0;
      if (flags.output === 'json') {
        process.stdout.write(toJson({ zxid, actions }));
      } else {
        for (const p of prepared) if (p.result !== 'unchanged') println(`would apply: ${p.id} ${p.result}`);
        println(renderPlan(actions));
      }
      if (flags.out !== undefined) {
        const plan: PlanFile = {
          apiVersion: 'virtkeeper/v1',
          kind: PLAN_KIND,
          root: result.root,
          zxid,
          createdAt: new Date().toISOString(),
          actions,
          objects: objects.map((o) => o.manifest),
        };
        try {
          writeFileSync(flags.out, toJson(plan));
        } catch (error) {
          throw new CliError(`cannot write ${flags.out}: ${(error as Error).message}`, EXIT_USAGE);
        }
        process.stderr.write(`plan saved to ${flags.out} (zxid ${zxid})\n`);
      }
      process.exitCode = actions.length > 0 ? 1 : 0;
    });
}

export function registerDeclarative(program: Command): void {
  registerApplyCommand(program);
  registerDiffCommand(program);
  registerPlanCommand(program);
}
