// `vk node fence set|show|rm NAME`: a node's fence settings, /nodes/<name>/fence (DESIGN §3, §4
// "Fencing and recovery"; schemas/fence.ts): how a fencing coordinator powers the node off (IPMI),
// runs a fence command, or blocklists its storage address.
//
// Invariants:
// - A secret (ipmi.password, command.env values) is never printed, nor taken on argv: `set` reads
//   a file (or stdin), and shows what it wrote through formatNodeFence only.
// - `set` validates the file before it connects: bad input exits 2 naming the field, and nothing
//   is written. A node that does not exist (no /nodes/NAME) is bad input too.
// - With --auth the znode is readable by that user only (a digest ACL with no other entry): it is
//   created so, and an existing one is made so before the new settings go in. Without --auth it is
//   open, and `set` says so on stderr every time.
import { Option, type Command } from 'commander';
import { CAS_ATTEMPTS, NodeExistsError, NoNodeError, VersionConflictError, ZkError } from '../../drivers/zk/index.ts';
import { describeAcl, isSecretTo, openAclSession, secretAcl } from '../../drivers/zk/acl.ts';
import { assertName, encodeNodeFence, FENCE_LEVELS, formatNodeFence, redactNodeFence, type NodeFence } from '../../schemas/index.ts';
import { ContentionError, InvalidInputError, NotFoundError } from '../../core/errors.ts';
import { secureAcls, withCluster, type Cluster } from '../connect.ts';
import { CliError } from '../errors.ts';
import { readFenceFile, readFenceSettings } from '../fence.ts';
import { println, toJson, toYaml } from '../output.ts';

/** Refuses (exit 2) a node that ZooKeeper does not know. */
async function requireNode(cluster: Cluster, name: string): Promise<void> {
  if (!(await cluster.store.exists(cluster.paths.node(name)))) {
    throw new InvalidInputError('node', name, `node ${name} not found (nodes appear when their daemon first starts, or with vk apply); nothing was written`);
  }
}

/** Under --auth: makes `path` readable by the --auth user only, or refuses naming its ACL. */
async function makeSecret(cluster: Cluster, path: string): Promise<void> {
  const auth = cluster.auth!;
  const session = await openAclSession(cluster.connectString, auth, cluster.connectTimeoutMs);
  try {
    const current = await session.get(path);
    if (!current || isSecretTo(current.acl, auth)) return;
    try {
      await session.set(path, secretAcl(auth), current.aversion);
    } catch (error) {
      if (!(error instanceof ZkError)) throw error;
      throw new CliError(
        `${path} has the ACL ${describeAcl(current.acl)}, which lets others than ${auth.user} read it, and vk cannot make it readable by ${auth.user} only (${error.reason}); nothing was written. Remove it with its owner's credentials (vk node fence rm), then set it again`,
      );
    }
  } finally {
    session.close();
  }
}

type Written = 'created' | 'configured' | 'unchanged';

/** Creates /nodes/NAME/fence, or compare-and-sets it at the version read (retried on a lost race). */
async function writeFence(cluster: Cluster, name: string, data: string): Promise<Written> {
  const { store, paths, auth } = cluster;
  const path = paths.nodeFence(name);
  for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
    const got = await store.get(path);
    if (!got) {
      try {
        await store.create(path, data, { acl: auth ? 'digest-private' : 'open' });
        return 'created';
      } catch (error) {
        if (error instanceof NodeExistsError) continue;
        throw error;
      }
    }
    if (auth) await makeSecret(cluster, path);
    if (got.data.toString('utf8') === data) return 'unchanged';
    try {
      await store.set(path, data, got.version);
      return 'configured';
    } catch (error) {
      if (error instanceof VersionConflictError || error instanceof NoNodeError) continue;
      throw error;
    }
  }
  throw new ContentionError(`${path} kept changing while being written; gave up after ${CAS_ATTEMPTS} attempts`);
}

function levelsOf(fence: NodeFence): string {
  const levels = FENCE_LEVELS.filter((l) => fence[l] !== undefined);
  return levels.length > 0 ? levels.join(', ') : 'none';
}

function registerSet(fence: Command): void {
  fence
    .command('set')
    .description("set a node's fence settings from a YAML or JSON file (the IPMI password goes in the file, never on the command line)")
    .argument('<name>', 'node name')
    .requiredOption('-f, --file <file>', 'the settings: ipmi, command and/or storage (- reads stdin)')
    .action(async (nameText: string, flags: { file: string }, cmd: Command) => {
      const name = assertName(nameText, 'node');
      // Validated before connecting: bad input writes nothing.
      const settings = readFenceFile(flags.file);
      const data = encodeNodeFence(settings);
      await withCluster(cmd, async (cluster) => {
        await requireNode(cluster, name);
        await secureAcls(cluster, [cluster.paths.node(name)]);
        const written = await writeFence(cluster, name, data);
        println(`node/${name} fence ${written} (levels: ${levelsOf(settings)})`);
        if (!cluster.auth) {
          process.stderr.write(
            `vk: warning: ${cluster.paths.nodeFence(name)} has no ACL (no --auth): its secrets (the IPMI password, the command's env values) are readable by anyone who can reach ZooKeeper\n`,
          );
        }
      });
    });
}

function registerShow(fence: Command): void {
  fence
    .command('show')
    .description("show a node's fence settings (the password and env values redacted)")
    .argument('<name>', 'node name')
    .addOption(new Option('-o, --output <format>', 'json or yaml (secrets redacted)').choices(['json', 'yaml']))
    .action(async (nameText: string, flags: { output?: 'json' | 'yaml' }, cmd: Command) => {
      const name = assertName(nameText, 'node');
      await withCluster(cmd, async ({ store, paths }) => {
        if (!(await store.exists(paths.node(name)))) throw new NotFoundError(`node ${name} not found`);
        const view = await readFenceSettings(store, paths, name);
        const path = paths.nodeFence(name);
        if (view.kind === 'noAuth') throw new CliError(`${path} is not readable with these credentials (its ACL keeps it to the user who set it); give them with --auth user:password (or VK_AUTH)`);
        if (view.kind === 'invalid') throw new CliError(`${path} cannot be read: ${view.problem}; vk node fence set ${name} -f FILE replaces it`);
        const value = view.kind === 'settings' ? redactNodeFence(view.fence) : null;
        if (flags.output === 'json') process.stdout.write(toJson(value));
        else if (flags.output === 'yaml') process.stdout.write(toYaml(value));
        else if (view.kind === 'none') println(`node/${name}: no fence settings (vk node fence set ${name} -f FILE)`);
        else println(formatNodeFence(view.fence));
      });
    });
}

function registerRemove(fence: Command): void {
  fence
    .command('rm')
    .description("remove a node's fence settings (a lost node without them is not fenced: its fence fails and nothing is recovered)")
    .argument('<name>', 'node name')
    .action(async (nameText: string, _flags: unknown, cmd: Command) => {
      const name = assertName(nameText, 'node');
      await withCluster(cmd, async (cluster) => {
        const { store, paths } = cluster;
        if (!(await store.exists(paths.node(name)))) throw new NotFoundError(`node ${name} not found`);
        await secureAcls(cluster, [paths.node(name)]);
        const path = paths.nodeFence(name);
        for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
          const stat = await store.exists(path);
          if (!stat) throw new NotFoundError(`node ${name} has no fence settings`);
          try {
            await store.delete(path, stat.version);
            println(`node/${name} fence removed`);
            return;
          } catch (error) {
            if (error instanceof VersionConflictError) continue;
            if (error instanceof NoNodeError) throw new NotFoundError(`node ${name} has no fence settings`);
            throw error;
          }
        }
        throw new ContentionError(`${path} kept changing while being removed; gave up after ${CAS_ATTEMPTS} attempts`);
      });
    });
}

export function registerFence(node: Command): void {
  const fence = node
    .command('fence')
    .description("a node's fence settings: how a coordinator powers it off (IPMI), runs a fence command, or blocklists its storage, before its VMs are recovered");
  registerSet(fence);
  registerShow(fence);
  registerRemove(fence);
}
