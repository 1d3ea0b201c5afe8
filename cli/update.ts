// Read-modify-write of a spec znode: compare-and-set on the version read, retried (CAS_ATTEMPTS
// rounds) when someone else wrote in between. What the verbs (vk vm …, vk node …) are made of; the
// one daemon-written record a verb edits, /config/primary (vk node primary), goes the same way, and
// so does the one cluster config field a verb flips (vk cluster maintenance).
import { CasConflictError, compareAndSet, NO_CHANGE } from '../drivers/zk/index.ts';
import {
  decodeClusterConfig,
  decodePrimaryRecord,
  defaultClusterConfig,
  encodeClusterConfig,
  encodeNodeSpec,
  encodePrimaryRecord,
  encodeVmSpec,
  ValidationError,
  type ClusterConfig,
  type NodeSpec,
  type PrimaryRecord,
  type VmSpec,
} from '../schemas/index.ts';
import { readExistingVm, readNode, specVersion, type LiveNode, type LiveVm, type Znode } from './cluster.ts';
import { secureAcls, type Cluster } from './connect.ts';
import { CliError, withSource } from './errors.ts';
import { ContentionError, NotFoundError } from '../core/errors.ts';
import { indexOps } from '../core/vm-index.ts';

export interface Updated<T> {
  before: T;
  after: T;
  /** The spec znode's version after the update (its generation). */
  version: number;
  changed: boolean;
}

/**
 * Applies `mutate` to the VM's spec and writes it with a CAS on the version read. `mutate` gets
 * a copy (and the whole VM as read) and may throw to refuse. Writes nothing when the result
 * encodes to the same bytes.
 */
export async function updateVmSpec(
  cluster: Cluster,
  name: string,
  mutate: (spec: VmSpec, vm: LiveVm & { spec: Znode<VmSpec> }) => VmSpec,
): Promise<Updated<VmSpec> & { vm: LiveVm }> {
  const { store, paths } = cluster;
  await secureAcls(cluster, [paths.vmSpec(name)]);
  const outcome = await gaveUp(`vm ${name}`, () =>
    compareAndSet(store, paths.vmSpec(name), {
      read: async () => {
        const vm = await readExistingVm(store, paths, name, { status: true });
        return { value: vm.spec.value, version: vm.spec.version, vm };
      },
      encode: encodeVmSpec,
      // The index entry of the node the spec names, in the same multi (core/vm-index.ts).
      also: (after) => indexOps(store, paths, name, after),
      edit: (before, { vm }) => {
        const after = mutate(structuredClone(before), vm);
        const encoded = withSource(`vm ${name}`, () => encodeVmSpec(after));
        return encoded === vm.spec.raw.toString('utf8') || encoded === encodeVmSpec(before) ? NO_CHANGE : after;
      },
    }),
  );
  if (outcome.kind === 'absent') throw new Error('unreachable: readExistingVm throws for a missing vm');
  const { vm } = outcome.read;
  const before = vm.spec.value;
  if (outcome.kind === 'unchanged') return { before, after: before, version: vm.spec.version, changed: false, vm };
  return { before, after: outcome.value, version: outcome.version, changed: true, vm };
}

/** The same for a node's spec; creates the spec znode when the node has none yet. */
export async function updateNodeSpec(
  cluster: Cluster,
  name: string,
  mutate: (spec: NodeSpec, node: LiveNode) => NodeSpec,
): Promise<Updated<NodeSpec> & { node: LiveNode }> {
  const { store, paths } = cluster;
  await secureAcls(cluster, [paths.nodeSpec(name)]);
  const outcome = await gaveUp(`node ${name}`, () =>
    compareAndSet(store, paths.nodeSpec(name), {
      read: async () => {
        const node = await readNode(store, paths, name);
        if (!node.parent) throw new NotFoundError(`node ${name} not found (nodes appear when their daemon first starts, or with vk apply)`);
        // An unreadable spec (another client's write) is replaced: a node spec is the domainState alone.
        const value: NodeSpec = node.spec?.value ?? { domainState: 'ready' };
        // No spec znode yet (version null): the write creates it.
        return { value, version: specVersion(node) ?? null, node };
      },
      encode: encodeNodeSpec,
      edit: (before, { node }) => {
        const after = mutate(structuredClone(before), node);
        const encoded = withSource(`node ${name}`, () => encodeNodeSpec(after));
        return node.spec && (encoded === node.spec.raw.toString('utf8') || encoded === encodeNodeSpec(before)) ? NO_CHANGE : after;
      },
    }),
  );
  if (outcome.kind === 'absent') throw new Error('unreachable: the node reader never reports an absent spec');
  const { node, value: before } = outcome.read;
  if (outcome.kind === 'unchanged') return { before, after: before, version: node.spec!.version, changed: false, node };
  return { before, after: outcome.value, version: outcome.version, changed: true, node };
}

/**
 * The same for /config/primary, which the coordinators' daemons write: `mutate` gets a copy of the
 * record as read (on every round, so its checks see what the write replaces) and may throw to
 * refuse. A missing record is `null` (nothing written); one that does not decode is a runtime
 * error naming the znode (a daemon's record, not the user's input).
 */
export async function updatePrimaryRecord(
  cluster: Cluster,
  mutate: (record: PrimaryRecord) => PrimaryRecord,
): Promise<Updated<PrimaryRecord> | null> {
  const { store, paths } = cluster;
  await secureAcls(cluster, [paths.primary]);
  const path = paths.primary;
  const outcome = await gaveUp(path, () =>
    compareAndSet(store, path, {
      read: async () => {
        const got = await store.get(path);
        if (!got) return null;
        let value: PrimaryRecord;
        try {
          value = decodePrimaryRecord(got.data);
        } catch (error) {
          if (error instanceof ValidationError) throw new CliError(`${path} cannot be read (${error.message}); nothing was written`);
          throw error;
        }
        return { value, version: got.version, raw: got.data.toString('utf8') };
      },
      encode: encodePrimaryRecord,
      edit: (before, { raw }) => {
        const after = mutate(structuredClone(before));
        const encoded = encodePrimaryRecord(after);
        return encoded === raw || encoded === encodePrimaryRecord(before) ? NO_CHANGE : after;
      },
    }),
  );
  if (outcome.kind === 'absent') return null;
  const before = outcome.read.value;
  if (outcome.kind === 'unchanged') return { before, after: before, version: outcome.read.version!, changed: false };
  return { before, after: outcome.value, version: outcome.version, changed: true };
}

/**
 * The same for the cluster config (/config): `mutate` gets a copy of the config as read, on every
 * round. A missing /config, or the empty one made as /config/primary's parent, is the default
 * config (the write creates or fills it). One that does not decode is a runtime error naming the
 * znode, and nothing is written (vk apply repairs it).
 */
export async function updateClusterConfig(cluster: Cluster, mutate: (config: ClusterConfig) => ClusterConfig): Promise<Updated<ClusterConfig>> {
  const { store, paths } = cluster;
  const path = paths.config;
  const outcome = await gaveUp(path, () =>
    compareAndSet(store, path, {
      read: async () => {
        const got = await store.get(path);
        if (!got) return { value: defaultClusterConfig(), version: null, raw: '' };
        if (got.data.length === 0) return { value: defaultClusterConfig(), version: got.version, raw: '' };
        let value: ClusterConfig;
        try {
          value = decodeClusterConfig(got.data);
        } catch (error) {
          if (error instanceof ValidationError) throw new CliError(`${path} in ZooKeeper is invalid (${error.message}); nothing was written (vk apply a ClusterConfig to repair it)`);
          throw error;
        }
        return { value, version: got.version, raw: got.data.toString('utf8') };
      },
      encode: encodeClusterConfig,
      edit: (before, { raw }) => {
        const after = mutate(structuredClone(before));
        const encoded = encodeClusterConfig(after);
        return encoded === raw || encoded === encodeClusterConfig(before) ? NO_CHANGE : after;
      },
    }),
  );
  if (outcome.kind === 'absent') throw new Error('unreachable: the config reader never reports an absent config');
  const before = outcome.read.value;
  // version -1: no /config yet (the default config needed no write).
  if (outcome.kind === 'unchanged') return { before, after: before, version: outcome.read.version ?? -1, changed: false };
  return { before, after: outcome.value, version: outcome.version, changed: true };
}

/** A verb that kept losing the race: the CLI's error, naming the object. */
async function gaveUp<R>(what: string, update: () => Promise<R>): Promise<R> {
  try {
    return await update();
  } catch (error) {
    if (error instanceof CasConflictError) throw new ContentionError(`${what} kept changing while being updated; gave up after ${error.attempts} attempts`);
    throw error;
  }
}
