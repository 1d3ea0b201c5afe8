// The flush or ready moves a node's daemon would make now, read from ZooKeeper and planned by the
// flush reconciler's own pure planner: the part of `vk daemon --dry-run` and `vk plan --node`
// that the domain planner does not cover.
import type { ZkStore } from '../drivers/zk/index.ts';
import type { ZkPaths } from '../schemas/index.ts';
import { readAllNodes, readAllVms, readConfig } from './cluster.ts';
import { liveViews, planNodeMoves } from './plan.ts';

export async function nodeMoveLines(store: ZkStore, paths: ZkPaths, node: string): Promise<string[]> {
  const [liveVms, liveNodes, config] = await Promise.all([readAllVms(store, paths, { status: true, migration: true }), readAllNodes(store, paths), readConfig(store, paths)]);
  const { vms, nodes } = liveViews(liveVms, liveNodes);
  const self = nodes.get(node);
  if (!self) return [];
  const moves = planNodeMoves(self, [...vms.values()], [...nodes.values()], { defaultSelector: config.value.defaultNodeSelector });
  return moves.map((m) => `${node} ${m.description}`);
}
