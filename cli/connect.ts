// The connection to the cluster: global options (--zk, --root, --auth), a ZkStore for the
// duration of one command, and the base layout that writing commands make sure exists.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { NodeExistsError, ZkStore } from '../controllers/zk/index.ts';
import { DEFAULT_ROOT, ValidationError, ZkPaths } from '../schemas/index.ts';
import { CliError, usageError } from './errors.ts';

export const DEFAULT_ZK = '127.0.0.1:2181';
export const SCHEMA_VERSION = 1;

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

/** Connects, runs `fn`, closes (also when `fn` fails). */
export async function withCluster<T>(cmd: Command, fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const options = globalOptions(cmd);
  const paths = pathsFor(options);
  const auth = parseAuth(options.auth);
  const connectString = options.zk && options.zk !== '' ? options.zk : DEFAULT_ZK;
  currentConnectString = connectString;
  const timeoutMs = Math.round((options.connectTimeout ?? 10) * 1000);
  const store = await ZkStore.connect({
    connectString,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: timeoutMs,
    ...(auth && { auth }),
  });
  try {
    return await fn({ store, paths, connectString });
  } finally {
    await store.close().catch(() => undefined);
  }
}

/**
 * Creates whatever is missing of the base layout (root, schema {"version":1}, vms, networks,
 * nodes, locks); refuses a cluster whose schema version this CLI does not know.
 */
export async function ensureLayout({ store, paths }: Cluster): Promise<void> {
  const schema = await store.get(paths.schema);
  if (schema) {
    checkSchema(schema.data, paths.schema);
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

function checkSchema(data: Buffer, path: string): void {
  let version: unknown;
  try {
    version = (JSON.parse(data.toString('utf8')) as { version?: unknown }).version;
  } catch {
    version = undefined;
  }
  if (version !== SCHEMA_VERSION) {
    throw new CliError(`${path} says schema version ${JSON.stringify(version)}; this vk knows version ${SCHEMA_VERSION} only`);
  }
}
