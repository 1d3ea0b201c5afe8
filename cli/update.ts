// Read-modify-write of a spec znode: compare-and-set on the version read, retried a few times
// when someone else wrote in between. What the verbs (vk vm …, vk node …) are made of.
import { NodeExistsError, VersionConflictError } from '../drivers/zk/index.ts';
import { encodeNodeSpec, encodeVmSpec, ValidationError, type NodeSpec, type VmSpec } from '../schemas/index.ts';
import { readExistingVm, readNode, specVersion, type NodeState, type VmState, type Znode } from './cluster.ts';
import { secureAcls, type Cluster } from './connect.ts';
import { CliError } from './errors.ts';

const ATTEMPTS = 5;

export interface Updated<T> {
  before: T;
  after: T;
  /** The spec znode's version after the update (its generation). */
  version: number;
  changed: boolean;
}

function withSource<T>(source: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValidationError) throw error.withSource(source);
    throw error;
  }
}

/**
 * Applies `mutate` to the VM's spec and writes it with a CAS on the version read. `mutate` gets
 * a copy (and the whole VM as read) and may throw to refuse. Writes nothing when the result
 * encodes to the same bytes.
 */
export async function updateVmSpec(
  cluster: Cluster,
  name: string,
  mutate: (spec: VmSpec, vm: VmState & { spec: Znode<VmSpec> }) => VmSpec,
): Promise<Updated<VmSpec> & { vm: VmState }> {
  const { store, paths } = cluster;
  await secureAcls(cluster, [paths.vmSpec(name)]);
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const vm = await readExistingVm(store, paths, name, { status: true });
    const before = vm.spec.value;
    const after = mutate(structuredClone(before), vm);
    const encoded = withSource(`vm ${name}`, () => encodeVmSpec(after));
    if (encoded === vm.spec.raw.toString('utf8') || encoded === encodeVmSpec(before)) {
      return { before, after: before, version: vm.spec.version, changed: false, vm };
    }
    try {
      const stat = await store.set(paths.vmSpec(name), encoded, vm.spec.version);
      return { before, after, version: stat.version, changed: true, vm };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
    }
  }
  throw new CliError(`vm ${name} kept changing while being updated; gave up after ${ATTEMPTS} attempts`);
}

/** The same for a node's spec; creates the spec znode when the node has none yet. */
export async function updateNodeSpec(
  cluster: Cluster,
  name: string,
  mutate: (spec: NodeSpec, node: NodeState) => NodeSpec,
): Promise<Updated<NodeSpec> & { node: NodeState }> {
  const { store, paths } = cluster;
  await secureAcls(cluster, [paths.nodeSpec(name)]);
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const node = await readNode(store, paths, name);
    if (!node.parent) throw new CliError(`node ${name} not found (nodes appear when their daemon first starts, or with vk apply)`);
    // An unreadable spec (another client's write) is replaced: a node spec is the domainState alone.
    const before: NodeSpec = node.spec?.value ?? { domainState: 'ready' };
    const after = mutate(structuredClone(before), node);
    const encoded = withSource(`node ${name}`, () => encodeNodeSpec(after));
    if (node.spec && (encoded === node.spec.raw.toString('utf8') || encoded === encodeNodeSpec(before))) {
      return { before, after: before, version: node.spec.version, changed: false, node };
    }
    const version = specVersion(node);
    try {
      if (version !== undefined) {
        const stat = await store.set(paths.nodeSpec(name), encoded, version);
        return { before, after, version: stat.version, changed: true, node };
      }
      await store.create(paths.nodeSpec(name), encoded);
      return { before, after, version: 0, changed: true, node };
    } catch (error) {
      if (!(error instanceof VersionConflictError) && !(error instanceof NodeExistsError)) throw error;
    }
  }
  throw new CliError(`node ${name} kept changing while being updated; gave up after ${ATTEMPTS} attempts`);
}
