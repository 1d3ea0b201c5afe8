// The per-node index of VMs: /index/<node>/<vm>, an empty znode for each VM whose spec names the
// node (spec.node, or spec.previousNode: a VM migrated away is still its previous node's to bring
// back) (a tree of its own: an entry for a node that does not exist, written by another tool, does
// not make it one). A daemon watches its own index and the VMs in it, not every VM of the cluster
// (controllers/informers/vms.ts), so what it costs grows with what its node holds.
//
// Invariants:
//  (1) Every spec write (the CLI, the API, apply, the flush, recovery) checks or creates the entries
//      of the nodes its spec names in the same multi: after any spec write, they exist.
//  (2) An entry goes only with its VM (removalIndexOps, in the removal's multi), or by its node's
//      daemon once the node holds nothing of the VM (releaseIndexEntry: a multi that also checks
//      the spec's version, so a spec write naming the node again in between keeps it).
//  (3) The index is repairable, never trusted blindly: a daemon that sees one of its entries go
//      while the VM still names its node creates it again, and scanIndex adds any entry missing.
import { TransactionError, type Op, type ZkStore } from '../drivers/zk/index.ts';
import { decodeVmSpec, decodeVmStatus, isValidName, type ZkPaths } from '../schemas/index.ts';

/** The schema version that has the index (version 1 had none). */
export const INDEX_SCHEMA_VERSION = 2;

/**
 * The ops that keep invariant (1) for a spec write naming `node`: a check of the entry when it
 * exists (entries are never written, so the check is of the version read), else its create, after
 * the creates of whichever of /index and /index/<node> are missing. It only reads: a dry
 * run that computes it writes nothing. A concurrent create or release makes the multi fail; the
 * writer reads again and retries, as for any lost race. (Several writes in one multi may each
 * create the same parent: dedupeCreates keeps the first.)
 */
export async function indexOps(store: ZkStore, paths: ZkPaths, vm: string, spec: { node: string; previousNode?: string | null | undefined }): Promise<Op[]> {
  const nodes = [spec.node, ...(spec.previousNode && spec.previousNode !== spec.node ? [spec.previousNode] : [])];
  // The usual case, entries that exist, costs one read per node; parents are looked at only when one is missing.
  const ops = (await Promise.all(nodes.map((node) => nodeIndexOps(store, paths, vm, node)))).flat();
  // An entry or node list that exists has /index above it: the root is read only when a list is to
  // be created (a new VM on a node that has VMs costs two reads, as a move to such a node does).
  const lists = new Set(nodes.map((node) => paths.nodeVms(node)));
  if (!ops.some((op) => op.op === 'create' && lists.has(op.path))) return ops;
  const rootStat = await store.exists(paths.index);
  return [...(rootStat ? [] : [{ op: 'create' as const, path: paths.index }]), ...ops];
}

async function nodeIndexOps(store: ZkStore, paths: ZkPaths, vm: string, node: string): Promise<Op[]> {
  const entry = paths.nodeVmEntry(node, vm);
  const entryStat = await store.exists(entry);
  if (entryStat) return [{ op: 'check', path: entry, version: entryStat.version }];
  const listStat = await store.exists(paths.nodeVms(node));
  return [...(listStat ? [] : [{ op: 'create' as const, path: paths.nodeVms(node) }]), { op: 'create', path: entry }];
}

/** `ops` without a second create (with no data) of a path an earlier op creates: several index ops in one multi. */
export function dedupeCreates(ops: readonly Op[]): Op[] {
  const created = new Set<string>();
  return ops.filter((op) => {
    if (op.op !== 'create') return true;
    if (created.has(op.path)) return op.data !== undefined;
    created.add(op.path);
    return true;
  });
}

/** The deletes of every entry of `vm` (for the multi that removes the VM). */
export async function removalIndexOps(store: ZkStore, paths: ZkPaths, vm: string): Promise<Op[]> {
  const nodes = ((await store.children(paths.index)) ?? []).filter(isValidName);
  const stats = await Promise.all(nodes.map((node) => store.exists(paths.nodeVmEntry(node, vm))));
  return nodes.flatMap((node, i) => (stats[i] ? [{ op: 'delete' as const, path: paths.nodeVmEntry(node, vm), version: stats[i]!.version }] : []));
}

/**
 * Deletes `node`'s entry of `vm`, only while the spec is still at `specVersion` (which does not
 * name the node): invariant (2). False when the spec changed (the entry stays; look again).
 */
export async function releaseIndexEntry(store: ZkStore, paths: ZkPaths, vm: string, node: string, specVersion: number | null): Promise<boolean> {
  const entry = paths.nodeVmEntry(node, vm);
  const stat = await store.exists(entry);
  if (!stat) return true;
  const guard: Op[] = specVersion === null ? [] : [{ op: 'check', path: paths.vmSpec(vm), version: specVersion }];
  try {
    await store.multi([...guard, { op: 'delete', path: entry, version: stat.version }]);
    return true;
  } catch (error) {
    if (error instanceof TransactionError) return false;
    throw error;
  }
}

/**
 * Creates `node`'s entry of `vm` when missing (a repair), only while the znode the caller read to
 * decide it (the spec, or the status of a VM with no spec) is still at the version read: a VM
 * removed (or rewritten) since gets no entry from that read, so a repair racing `vk vm remove`
 * cannot leave an entry of a VM that is gone. True when the entry was created; false when it
 * existed or that znode moved on (the next look decides again).
 */
export async function repairIndexEntry(store: ZkStore, paths: ZkPaths, vm: string, node: string, readAt: { path: string; version: number }): Promise<boolean> {
  const entry = paths.nodeVmEntry(node, vm);
  if (await store.exists(entry)) return false;
  await store.ensurePath(paths.nodeVms(node));
  try {
    await store.multi([
      { op: 'check', path: readAt.path, version: readAt.version },
      { op: 'create', path: entry },
    ]);
    return true;
  } catch (error) {
    if (error instanceof TransactionError) return false;
    throw error;
  }
}

/**
 * The nodes whose index should list a VM, from its spec and status as read (undecodable ones name
 * none): spec.node, spec.previousNode, and status.node (a VM still held there).
 */
export function namedNodes(spec: { data: Buffer } | null, status: { data: Buffer } | null): Set<string> {
  const nodes = new Set<string>();
  try {
    if (spec) {
      const value = decodeVmSpec(spec.data);
      nodes.add(value.node);
      if (value.previousNode) nodes.add(value.previousNode);
    }
  } catch {
    // An unreadable spec names no node; its VM is repaired by whoever rewrites the spec.
  }
  try {
    if (status) nodes.add(decodeVmStatus(status.data).node);
  } catch {
    // An unreadable status names no node.
  }
  return nodes;
}

/** The znode (and its version) a repair decided from: the spec, or the status of a VM with no spec. */
export function decidedBy(paths: ZkPaths, vm: string, spec: { version: number } | null, status: { version: number } | null): { path: string; version: number } | undefined {
  if (spec) return { path: paths.vmSpec(vm), version: spec.version };
  if (status) return { path: paths.vmStatus(vm), version: status.version };
  return undefined;
}

export interface IndexScan {
  /** `node/vm` of each entry that was missing and was created. */
  added: string[];
  vms: number;
}

/**
 * Reads every VM's spec and status (no watches) and creates each missing entry: of the nodes the
 * spec names and of the node the status names (a VM still running there).
 * `only`: look only at what names this node (a daemon's repair scan). At most `concurrency` reads
 * in flight, so a scan of a large cluster does not flood ZooKeeper.
 */
export async function scanIndex(store: ZkStore, paths: ZkPaths, opts: { only?: string; concurrency?: number } = {}): Promise<IndexScan> {
  const names = ((await store.children(paths.vms)) ?? []).filter(isValidName);
  const added: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const vm = names[next++]!;
      const [spec, status] = await Promise.all([store.get(paths.vmSpec(vm)), store.get(paths.vmStatus(vm))]);
      const readAt = decidedBy(paths, vm, spec, status);
      for (const node of namedNodes(spec, status)) {
        if (opts.only !== undefined && node !== opts.only) continue;
        if (await repairIndexEntry(store, paths, vm, node, readAt!)) added.push(`${node}/${vm}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 32) }, worker));
  return { added: added.sort(), vms: names.length };
}

/**
 * Brings a version-1 cluster to version 2: builds the index from every VM's spec and status, then
 * says version 2 (a compare-and-set: two upgraders at once both build, one writes the version).
 * Returns the entries it added; none for a cluster already at version 2.
 */
export async function migrateToIndex(store: ZkStore, paths: ZkPaths): Promise<IndexScan | null> {
  const schema = await store.get(paths.schema);
  if (!schema) return null;
  let version: unknown;
  try {
    version = (JSON.parse(schema.data.toString('utf8')) as { version?: unknown }).version;
  } catch {
    return null;
  }
  if (version !== 1) return null;
  const scan = await scanIndex(store, paths);
  try {
    await store.set(paths.schema, JSON.stringify({ version: INDEX_SCHEMA_VERSION }), schema.version);
  } catch {
    // Another upgrader wrote it first: its scan built the same index.
  }
  return scan;
}
