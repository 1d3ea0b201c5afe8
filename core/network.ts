// Client networks: create and remove (`vk network add|remove`, POST /network, DELETE
// /network/{vni}). Changing one is `vk apply` / POST /apply (core/declarative.ts).
//
// Invariants: a network is validated (its spec, its VNI against its type, its MTU against the
// cluster config in force) before the first write; it is created in one multi; it is removed whole
// (spec, the daemons' status, the primary's leases) in one multi with the versions read, and never
// while a VM attaches to its bridge.
import { ZkError, type Op, type ZkStore } from '../drivers/zk/index.ts';
import { API_VERSION, decodeNetworkSpec, encodeNetworkSpec, networkVniProblem, ValidationError, type NetworkSpecInput } from '../schemas/index.ts';
import { bridgeName, readAllVms, readNetwork, specVersion } from '../cli/cluster.ts';
import { ensureLayout, type Cluster } from '../cli/connect.ts';
import { withSource } from '../cli/errors.ts';
import { checkAgainstCluster, checkNetworkRemoval, readClusterView, type DesiredObject } from '../cli/manifests.ts';
import { MAX_TRANSACTION_BYTES, transactionBytes } from '../cli/objects.ts';
import { ContentionError, NotFoundError, RefusedError } from './errors.ts';

export interface CreatedNetwork {
  vni: string;
  bridge: string;
  generation: number;
}

/** Creates network `vni` (already a valid VNI) with `spec`; refused when it exists. */
export async function createNetwork(cluster: Cluster, vni: string, spec: NetworkSpecInput): Promise<CreatedNetwork> {
  const source = `network ${vni}`;
  const encoded = withSource(source, () => encodeNetworkSpec(spec));
  const decoded = decodeNetworkSpec(encoded);
  const vniProblem = networkVniProblem(decoded.type, vni);
  if (vniProblem) throw new ValidationError('vni', Number(vni), vniProblem, { kind: 'VNI', source });
  // The object vk apply would write for the same network: the same cluster checks (MTU against the config in force).
  const obj: DesiredObject = { kind: 'Network', name: vni, source, spec: decoded, manifest: { apiVersion: API_VERSION, kind: 'Network', metadata: { name: vni }, spec: decoded } };
  const { store, paths } = cluster;
  const existing = await readNetwork(store, paths, vni);
  if (existing.spec || existing.invalidSpec) throw new RefusedError(`network ${vni} already exists; change it with vk apply`);
  checkAgainstCluster([obj], await readClusterView(store, paths, [obj]));
  await ensureLayout(cluster, [paths.networkSpec(vni)]);
  await store.multi([
    ...(existing.parent ? [] : [{ op: 'create' as const, path: paths.network(vni) }]),
    { op: 'create' as const, path: paths.networkSpec(vni), data: encoded },
  ]);
  return { vni, bridge: bridgeName(vni), generation: 0 };
}

/** Removes network `vni`: 404 when it does not exist, refused while a VM attaches to it. */
export async function removeNetwork(cluster: Cluster, vni: string): Promise<void> {
  const { store, paths } = cluster;
  await removeSubtree(store, paths.network(vni), paths.networkLeases(vni), async () => {
    const existing = await readNetwork(store, paths, vni);
    if (specVersion(existing) === undefined || !existing.parent) throw new NotFoundError(`network ${vni} not found`);
    checkNetworkRemoval(vni, await readAllVms(store, paths));
  });
}

/** Every znode under `path` (included), deepest first, with the version read: the delete ops of the subtree. */
async function subtreeDeletes(store: ZkStore, path: string): Promise<Op[] | null> {
  const stat = await store.exists(path);
  if (!stat) return null;
  const children = (await store.children(path)) ?? [];
  const below = await Promise.all(children.map((child) => subtreeDeletes(store, `${path}/${child}`)));
  return [...below.flatMap((ops) => ops ?? []), { op: 'delete', path, version: stat.version }];
}

const REMOVE_ATTEMPTS = 5;

/**
 * Deletes the network's whole subtree (spec, the daemons' status, the primary's DHCP leases,
 * anything else under it) in one multi with the versions read, after `check` (which throws to
 * refuse) has passed on the same read. A daemon writing in between makes the multi fail: read,
 * check and try again. Leases too many for one ZooKeeper request (a large DHCP range) are deleted
 * first, in chunks: they are the primary's records of the network being removed, and the spec and
 * status still go in one transaction.
 */
async function removeSubtree(store: ZkStore, path: string, leases: string, check: () => Promise<void>): Promise<void> {
  let leasesFirst = false;
  for (let attempt = 1; attempt <= REMOVE_ATTEMPTS; attempt++) {
    await check();
    const ops = await subtreeDeletes(store, path);
    if (!ops) continue;
    if (transactionBytes(ops) > MAX_TRANSACTION_BYTES && !leasesFirst) {
      leasesFirst = true;
      await store.deleteRecursive(leases);
      continue;
    }
    try {
      await store.multi(ops);
      return;
    } catch (error) {
      if (!(error instanceof ZkError) || !['BAD_VERSION', 'NO_NODE', 'NOT_EMPTY', 'NODE_EXISTS'].includes(error.code)) throw error;
    }
  }
  const removed = leasesFirst ? 'only its DHCP leases were removed' : 'nothing was removed';
  throw new ContentionError(`${path} kept changing while being removed; gave up after ${REMOVE_ATTEMPTS} attempts (${removed})`);
}
