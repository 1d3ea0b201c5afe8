// The node writes, shared by the CLI (`vk node flush|ready|primary`) and the REST API (POST
// /node/{name}/flush|ready|primary): one implementation of each. They print nothing and throw
// typed errors (schemas' ValidationError for bad input: nothing is written).
//
// Invariants: a flush or ready is one compare-and-set of the node's spec (no change: no write);
// a primary request is one compare-and-set of /config/primary, its candidate checked first.
import { readLockQueue } from '../drivers/zk/lock.ts';
import { FLUSH_LOCK } from '../reconcilers/flush/plan.ts';
import { ValidationError, type NodeSpec, type PrimaryRecord } from '../schemas/index.ts';
import { readConfig, readNode } from '../cli/cluster.ts';
import type { Cluster } from '../cli/connect.ts';
import { CliError } from '../cli/errors.ts';
import { handoverOf, phaseText } from '../cli/primary.ts';
import { updateNodeSpec, updatePrimaryRecord, type Updated } from '../cli/update.ts';

/** Flush (`flushed`) or ready (`ready`) a node. `flushLockHolder`: another node holding the flush lock this flush queues behind. */
export async function setNodeDomainState(cluster: Cluster, name: string, domainState: NodeSpec['domainState']): Promise<Updated<NodeSpec> & { flushLockHolder?: string }> {
  const updated = await updateNodeSpec(cluster, name, (spec) => ({ ...spec, domainState }));
  const holder = domainState === 'flushed' && updated.changed ? (await readLockQueue(cluster.store, cluster.paths.lock(FLUSH_LOCK)))[0]?.owner : undefined;
  return { ...updated, ...(holder && holder !== name ? { flushLockHolder: holder } : {}) };
}

export const NO_PRIMARY = 'no primary coordinator yet: no coordinator daemon has taken the role';

/** Refuses (exit 2 / HTTP 400, nothing written) a NAME that cannot become primary: not a live, ready coordinator. */
export async function checkPrimaryCandidate(cluster: Cluster, name: string): Promise<void> {
  const { store, paths } = cluster;
  const refuse = (reason: string) => new ValidationError('node', name, reason);
  const [{ value: config }, node] = await Promise.all([readConfig(store, paths), readNode(store, paths, name)]);
  if (!config.coordinators.includes(name)) {
    const list = config.coordinators.length > 0 ? config.coordinators.join(', ') : 'none';
    throw refuse(`is not a coordinator (the cluster config's coordinators: ${list}); only a coordinator can be primary`);
  }
  if (!node.alive) throw refuse(`its daemon is not alive (${paths.nodeAlive(name)} does not exist); only a live coordinator can take over`);
  if (node.invalidSpec) throw refuse(`its spec ${node.invalidSpec.path} cannot be read (${node.invalidSpec.problem}); vk node ready ${name} rewrites it`);
  const state = node.spec?.value.domainState ?? 'ready';
  if (state !== 'ready') throw refuse(`is not ready (its spec's domainState is ${state}); vk node ready ${name} first`);
}

/** What a primary request found: NAME already primary, its request already pending, or a request written. */
export type Asked = 'already' | 'pending' | 'requested';

/**
 * The edit of /config/primary that asks for a hand-over to `name` (run on every CAS round, so a
 * daemon's write in between is checked again): the record with `request: {to: name, at}`, or the
 * record as it is when NAME is already primary or already requested. Throws (exit 1) while another
 * hand-over is in progress or requested.
 */
export function handoverRequest(record: PrimaryRecord, name: string, at: string): { record: PrimaryRecord; asked: Asked } {
  if (record.node === name && record.phase === 'primary') return { record, asked: 'already' };
  const h = handoverOf(record);
  if (h) throw new CliError(`a hand-over is already in progress: ${phaseText(record)} (phase ${h.phase} since ${record.since}); wait for it to end`);
  if (record.request && record.request.to !== name) {
    throw new CliError(`a hand-over to ${record.request.to} is already requested (at ${record.request.at}, primary now: ${record.node}); wait for it to end`);
  }
  if (record.request) return { record, asked: 'pending' };
  return { record: { ...record, request: { to: name, at } }, asked: 'requested' };
}

/** `vk node primary NAME` / POST /node/{name}/primary: the candidate checked, then the request written. */
export async function requestPrimary(cluster: Cluster, name: string): Promise<{ asked: Asked; record: PrimaryRecord }> {
  await checkPrimaryCandidate(cluster, name);
  const at = new Date().toISOString();
  let asked: Asked = 'requested';
  const updated = await updatePrimaryRecord(cluster, (current) => {
    const edit = handoverRequest(current, name, at);
    asked = edit.asked;
    return edit.record;
  });
  if (!updated) throw new CliError(NO_PRIMARY);
  return { asked, record: updated.after };
}
