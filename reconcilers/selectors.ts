// Choosing a target node for a VM (seed 004), as pure functions of what the nodes report.
// Used by the node flush (reconcilers/flush/plan.ts), `vk vm migrate|move` without --node
// (cli/commands/vm.ts) and `vk plan`.
//
//   mem      most free memory counting provisioned memory (every VM assigned to the node, running
//            or not): highest totalMiB - provisionedMiB
//   memprov  least provisioned relative to total: lowest provisionedMiB / totalMiB (a node that
//            reports no memory at all is the worst)
//   load     lowest one-minute load average
//   vcpus    fewest allocated vCPUs
//   vms      fewest VMs running
//   default  the cluster config's defaultNodeSelector
//
// Candidates: nodes whose daemon is alive (its ephemeral alive znode exists), whose status says
// domainState ready and whose spec does not ask for a flush, within the VM's nodeLimit (when it has
// one), other than the node the VM is on, and — for a VM that migrates live only
// (meta.migrationMethod live) — that take live migrations (publish a migration URI in their alive
// znode; reconcilers/migration/plan.ts would otherwise wait forever with TargetNotMigratable). Ties go to the node whose name sorts first, so the same
// input always gives the same node.
//
// Placements. A caller that places several VMs in one go (a flush) passes what it has already
// placed on each node; it is added to that node's figures before scoring: the memory to
// provisionedMiB, one VM to the VM count, the vCPUs to the allocated vCPUs, and the vCPUs to the
// load too (a conservative estimate: a busy vCPU adds one to the load average). Without it, 20 VMs
// flushed at once would all land on the node that looked best before the first of them arrived.
import type { NodeSelector, NodeSpec, NodeStatus, VmMigrationMethod, VmNodeSelector } from '../schemas/index.ts';

export interface NodeCandidate {
  name: string;
  /** The daemon holds a session (ephemeral /nodes/<name>/alive exists). */
  alive: boolean;
  spec: NodeSpec | null;
  status: NodeStatus | null;
  /**
   * The node takes live migrations: its alive znode publishes a migration URI (daemon config
   * migration.uri and migrateUri). Undefined when the caller does not know: not held against it.
   */
  liveMigration?: boolean | undefined;
}

/** What a caller has already put on a node and the node's status does not show yet. */
export interface Placed {
  memoryMiB: number;
  vcpus: number;
  vms: number;
}

export interface SelectInput {
  selector: VmNodeSelector;
  /** ClusterConfig.defaultNodeSelector, used for selector 'default'. */
  defaultSelector: NodeSelector;
  /** Empty: any node. */
  nodeLimit: readonly string[];
  /** The node the VM is on now: never chosen. */
  current?: string | undefined;
  /** The VM's meta.migrationMethod: `live` rules out nodes that take no live migration. Default: any. */
  method?: VmMigrationMethod | undefined;
  nodes: readonly NodeCandidate[];
  /** Load already placed on nodes by the caller (see the top of this file). */
  placed?: ReadonlyMap<string, Placed>;
}

export interface Selection {
  node: string | undefined;
  /** The selector actually used (default resolved). */
  selector: NodeSelector;
  /** Why each node was left out, for error messages. */
  excluded: Array<{ node: string; why: string }>;
}

/** The figures a selector compares: the node's status plus what the caller placed there. */
export interface NodeFigures {
  totalMiB: number;
  provisionedMiB: number;
  load: number;
  vcpus: number;
  vms: number;
}

export function resolveSelector(selector: VmNodeSelector, defaultSelector: NodeSelector): NodeSelector {
  return selector === 'default' ? defaultSelector : selector;
}

export function figuresOf(status: NodeStatus, placed?: Placed): NodeFigures {
  return {
    totalMiB: status.memory.totalMiB,
    provisionedMiB: status.memory.provisionedMiB + (placed?.memoryMiB ?? 0),
    load: status.load + (placed?.vcpus ?? 0),
    vcpus: status.vcpus.allocated + (placed?.vcpus ?? 0),
    vms: status.runningVms.length + (placed?.vms ?? 0),
  };
}

/** Negative when `a` is the better target under `selector`, positive when `b` is, 0 on a tie. */
export function compareFigures(selector: NodeSelector, a: NodeFigures, b: NodeFigures): number {
  switch (selector) {
    case 'mem':
      return b.totalMiB - b.provisionedMiB - (a.totalMiB - a.provisionedMiB);
    case 'memprov': {
      // provisioned/total compared exactly (cross-multiplied); no memory reported is worst.
      if (a.totalMiB <= 0 || b.totalMiB <= 0) return (a.totalMiB <= 0 ? 1 : 0) - (b.totalMiB <= 0 ? 1 : 0);
      return a.provisionedMiB * b.totalMiB - b.provisionedMiB * a.totalMiB;
    }
    case 'load':
      return a.load - b.load;
    case 'vcpus':
      return a.vcpus - b.vcpus;
    case 'vms':
      return a.vms - b.vms;
  }
}

/** Why `node` may not take the VM, or undefined when it may. */
export function exclusionReason(node: NodeCandidate, input: Pick<SelectInput, 'nodeLimit' | 'current' | 'method'>): string | undefined {
  if (node.name === input.current) return 'the VM is there now';
  if (input.nodeLimit.length > 0 && !input.nodeLimit.includes(node.name)) return 'outside the node limit';
  if (!node.alive) return 'its daemon is not running';
  if (!node.status) return 'it has reported no status';
  if (node.status.domainState !== 'ready') return `it is ${node.status.domainState}`;
  if (node.spec?.domainState === 'flushed') return 'it is asked to flush';
  if (input.method === 'live' && node.liveMigration === false) return 'it takes no live migration (publishes no migration URI) and the VM migrates live only';
  return undefined;
}

/**
 * Whether a node's alive znode payload publishes a migration URI (daemon/daemon.ts writes
 * `migration: {uri, migrateUri}` when the daemon's config has both; the migration controller's
 * parsePeer reads the same): without one, the node takes no live migration.
 */
export function aliveTakesLiveMigration(payload: string): boolean {
  try {
    const m = (JSON.parse(payload) as { migration?: { uri?: unknown; migrateUri?: unknown } } | null)?.migration;
    return typeof m?.uri === 'string' && typeof m.migrateUri === 'string';
  } catch {
    return false;
  }
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function selectNode(input: SelectInput): Selection {
  const selector = resolveSelector(input.selector, input.defaultSelector);
  const excluded: Selection['excluded'] = [];
  let best: { name: string; figures: NodeFigures } | undefined;
  for (const node of [...input.nodes].sort(byName)) {
    const why = exclusionReason(node, input);
    if (why !== undefined) {
      excluded.push({ node: node.name, why });
      continue;
    }
    const figures = figuresOf(node.status!, input.placed?.get(node.name));
    // Visited in name order and replaced only when strictly better: a tie keeps the first name.
    if (best === undefined || compareFigures(selector, figures, best.figures) < 0) best = { name: node.name, figures };
  }
  return { node: best?.name, selector, excluded };
}

/** Adds one VM to `placed` on `node` (returns a new map; the input is not changed). */
export function place(placed: ReadonlyMap<string, Placed>, node: string, vm: { memoryMiB: number; vcpus: number }): Map<string, Placed> {
  const next = new Map(placed);
  const before = placed.get(node) ?? { memoryMiB: 0, vcpus: 0, vms: 0 };
  next.set(node, { memoryMiB: before.memoryMiB + vm.memoryMiB, vcpus: before.vcpus + vm.vcpus, vms: before.vms + 1 });
  return next;
}
