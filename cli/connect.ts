// The connection to the cluster: global options (--zk, --root, --auth), a ZkStore for the
// duration of one command, and the base layout that writing commands make sure exists.
import { INDEX_SCHEMA_VERSION, migrateToIndex } from '../core/vm-index.ts';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { NodeExistsError, parentOf, ZkError, ZkStore } from '../drivers/zk/index.ts';
import { describeAcl, isPrivateTo, openAclSession, tightenedAcl } from '../drivers/zk/acl.ts';
import { DEFAULT_ROOT, ValidationError, ZkPaths } from '../schemas/index.ts';
import { CliError, usageError } from './errors.ts';

export const DEFAULT_ZK = '127.0.0.1:2181';
/** Version 2 added the per-node VM index (core/vm-index.ts); a version-1 cluster is upgraded by its first write. */
export const SCHEMA_VERSION = INDEX_SCHEMA_VERSION;

export interface GlobalOptions {
  zk?: string;
  root?: string;
  auth?: string;
  connectTimeout?: number;
}

export interface Cluster {
  store: ZkStore;
  paths: ZkPaths;
  connectString: string;
  /** --auth: the znodes this command writes must be private to this user (see secureAcls). */
  auth?: { user: string; password: string };
  connectTimeoutMs: number;
}

/** The connection string of the command being run, for error messages. */
export let currentConnectString: string | undefined;

/** Adds --zk, --root, --auth, --connect-timeout to the program (valid before or after the subcommand). */
export function addGlobalOptions(program: Command): void {
  program
    .addOption(new Option('--zk <hosts>', `ZooKeeper hosts, host:port[,host:port…] (default ${DEFAULT_ZK})`).env('VK_ZK'))
    .addOption(new Option('--root <path>', `root znode of the cluster (default ${DEFAULT_ROOT})`).env('VK_ROOT'))
    .addOption(new Option('--auth <user:password>', 'ZooKeeper digest credentials').env('VK_AUTH'))
    .addOption(
      new Option('--connect-timeout <seconds>', 'give up reaching ZooKeeper after this long (default 10)')
        .argParser(parseSeconds)
        .env('VK_CONNECT_TIMEOUT'),
    );
}

/** commander argParser for a positive number of seconds. */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || !(n > 0)) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

/** commander argParser for a positive integer. */
export function parsePositiveInt(value: string): number {
  if (!/^[1-9][0-9]{0,14}$/.test(value)) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function pathsFor(options: GlobalOptions): ZkPaths {
  try {
    return new ZkPaths(options.root || DEFAULT_ROOT);
  } catch (error) {
    if (error instanceof ValidationError) throw usageError(`--root: ${error.message.replace(/^root: /, '')}`);
    throw error;
  }
}

function parseAuth(text: string | undefined): { user: string; password: string } | undefined {
  if (text === undefined || text === '') return undefined;
  const colon = text.indexOf(':');
  if (colon <= 0) throw usageError('--auth: must be user:password');
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Where --zk comes from: the command line, the environment (VK_ZK), or nowhere. */
function zkSource(cmd: Command): string | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const source = c.getOptionValueSource('zk');
    if (source !== undefined) return source;
  }
  return undefined;
}

/**
 * The ZooKeeper connection string: --zk, else VK_ZK, else the default. An empty --zk is bad input
 * (it must not silently mean localhost); an empty VK_ZK counts as unset, as shells have it.
 */
export function connectStringOf(cmd: Command, zk: string | undefined): string {
  if (zk === undefined || (zk.trim() === '' && zkSource(cmd) !== 'cli')) return DEFAULT_ZK;
  const hosts = zk.split('/')[0]!.split(',');
  if (zk.trim() === '' || hosts.some((h) => !/^[^\s,/]+$/.test(h))) {
    throw usageError(`--zk: invalid value ${JSON.stringify(zk)}: must be host:port[,host:port…][/chroot]`);
  }
  return zk;
}

/** Connects, runs `fn`, closes (also when `fn` fails). */
export async function withCluster<T>(cmd: Command, fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const options = globalOptions(cmd);
  const paths = pathsFor(options);
  const auth = parseAuth(options.auth);
  const connectString = connectStringOf(cmd, options.zk);
  currentConnectString = connectString;
  const timeoutMs = Math.round((options.connectTimeout ?? 10) * 1000);
  const store = await ZkStore.connect({
    connectString,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: timeoutMs,
    ...(auth && { auth }),
  });
  try {
    return await fn({ store, paths, connectString, connectTimeoutMs: timeoutMs, ...(auth && { auth }) });
  } finally {
    await store.close().catch(() => undefined);
  }
}

/**
 * Under --auth, makes every existing znode of `written` (and of the base layout, and the parents
 * of `written`) private to the --auth user: nobody else may do more than read it. ZkStore gives
 * the znodes it creates that ACL itself; znodes another client created without ACLs would stay
 * world-writable (anyone could add a VM the daemons would start). A znode whose ACL vk cannot
 * change is refused with a message naming it and its ACL. Without --auth this does nothing.
 */
export async function secureAcls(cluster: Cluster, written: readonly string[] = []): Promise<void> {
  const { auth, paths } = cluster;
  if (!auth) return;
  const layout = [paths.root, paths.schema, paths.vms, paths.networks, paths.nodes, paths.locks, paths.config];
  const inRoot = (p: string) => p === paths.root || p.startsWith(`${paths.root}/`);
  const targets = [...new Set([...layout, ...written.flatMap((p) => [parentOf(p), p])])].filter(inRoot);
  const session = await openAclSession(cluster.connectString, auth, cluster.connectTimeoutMs);
  try {
    for (const path of targets) {
      const current = await session.get(path);
      if (!current || isPrivateTo(current.acl, auth)) continue;
      try {
        await session.set(path, tightenedAcl(current.acl, auth), current.aversion);
      } catch (error) {
        if (!(error instanceof ZkError)) throw error;
        throw new CliError(
          `${path} has the ACL ${describeAcl(current.acl)}, which lets others than ${auth.user} change it, and vk cannot make it private to ${auth.user} (${error.reason}); nothing was written. Have its owner set its ACL (zkCli.sh setAcl), or give the owner's credentials with --auth`,
        );
      }
    }
  } finally {
    session.close();
  }
}

/**
 * Creates whatever is missing of the base layout (root, schema {"version":2}, vms, networks,
 * nodes, locks); upgrades a version-1 cluster (builds the per-node VM index, says so on stderr);
 * refuses a cluster whose schema version this CLI does not know. Under --auth it
 * first makes the existing layout, and the existing znodes of `written`, private (secureAcls).
 */
export async function ensureLayout(cluster: Cluster, written: readonly string[] = []): Promise<void> {
  const { store, paths } = cluster;
  await secureAcls(cluster, written);
  const schema = await store.get(paths.schema);
  if (schema) {
    if (checkSchema(schema.data, paths.schema) === 1) {
      const migrated = await migrateToIndex(store, paths);
      if (migrated) process.stderr.write(`vk: upgraded ${paths.schema} to version ${SCHEMA_VERSION}: built the per-node VM index (${migrated.added.length} entries for ${migrated.vms} VMs)\n`);
    }
    const missing = await Promise.all([paths.vms, paths.networks, paths.nodes, paths.locks].map(async (p) => ((await store.exists(p)) ? null : p)));
    await createAll(store, missing.filter((p): p is string => p !== null));
    return;
  }
  await store.ensurePath(paths.root);
  await createAll(store, [paths.vms, paths.networks, paths.nodes, paths.locks]);
  try {
    await store.create(paths.schema, JSON.stringify({ version: SCHEMA_VERSION }));
  } catch (error) {
    if (!(error instanceof NodeExistsError)) throw error;
  }
}

async function createAll(store: ZkStore, list: string[]): Promise<void> {
  for (const path of list) {
    try {
      await store.create(path);
    } catch (error) {
      if (!(error instanceof NodeExistsError)) throw error;
    }
  }
}

/** The cluster's schema version: this one, or 1 (upgradable); anything else is refused. */
function checkSchema(data: Buffer, path: string): number {
  let version: unknown;
  try {
    version = (JSON.parse(data.toString('utf8')) as { version?: unknown }).version;
  } catch {
    version = undefined;
  }
  if (version !== SCHEMA_VERSION && version !== 1) {
    throw new CliError(`${path} says schema version ${JSON.stringify(version)}; this vk knows versions 1 (upgraded at the first write) and ${SCHEMA_VERSION}`);
  }
  return version;
}
