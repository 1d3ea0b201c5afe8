// Choosing a target node for a VM (seed 004), as a pure function of what the nodes report.
//
//   mem      most free memory, counting provisioned memory (every VM assigned to the node,
//            running or not): highest totalMiB - provisionedMiB
//   memprov  least provisioned share: lowest provisionedMiB / totalMiB
//   load     lowest load average
//   vcpus    fewest allocated vCPUs
//   vms      fewest running VMs
//   default  the cluster config's defaultNodeSelector
//
// Candidates: nodes whose daemon is alive, whose status says domainState ready (and whose spec
// does not ask for a flush), within the VM's nodeLimit (when it has one), other than the node the
// VM is on. Ties go to the node whose name sorts first.
// (A later issue moves this to reconcilers/, where node flush needs it too.)
import type { NodeSelector, NodeSpec, NodeStatus, VmNodeSelector } from '../schemas/index.ts';

export interface NodeCandidate {
  name: string;
  alive: boolean;
  spec: NodeSpec | null;
  status: NodeStatus | null;
}

export interface SelectInput {
  selector: VmNodeSelector;
  /** ClusterConfig.defaultNodeSelector, used for selector 'default'. */
  defaultSelector: NodeSelector;
  /** Empty: any node. */
  nodeLimit: readonly string[];
  /** The node the VM is on now: never chosen. */
  current?: string | undefined;
  nodes: readonly NodeCandidate[];
}

export interface Selection {
  node: string | undefined;
  /** The selector actually used (default resolved). */
  selector: NodeSelector;
  /** Why each node was left out, for error messages. */
  excluded: Array<{ node: string; why: string }>;
}

/** Lower is better. */
function score(selector: NodeSelector, status: NodeStatus): number {
  switch (selector) {
    case 'mem':
      return -(status.memory.totalMiB - status.memory.provisionedMiB);
    case 'memprov':
      return status.memory.totalMiB > 0 ? status.memory.provisionedMiB / status.memory.totalMiB : Number.POSITIVE_INFINITY;
    case 'load':
      return status.load;
    case 'vcpus':
      return status.vcpus.allocated;
    case 'vms':
      return status.runningVms.length;
  }
}

export function exclusionReason(node: NodeCandidate, input: Pick<SelectInput, 'nodeLimit' | 'current'>): string | undefined {
  if (node.name === input.current) return 'the VM is there now';
  if (input.nodeLimit.length > 0 && !input.nodeLimit.includes(node.name)) return 'outside the node limit';
  if (!node.alive) return 'its daemon is not running';
  if (!node.status) return 'it has reported no status';
  if (node.status.domainState !== 'ready') return `it is ${node.status.domainState}`;
  if (node.spec?.domainState === 'flushed') return 'it is asked to flush';
  return undefined;
}

export function selectNode(input: SelectInput): Selection {
  const selector: NodeSelector = input.selector === 'default' ? input.defaultSelector : input.selector;
  const excluded: Selection['excluded'] = [];
  let best: { name: string; score: number } | undefined;
  const ordered = [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const node of ordered) {
    const why = exclusionReason(node, input);
    if (why !== undefined) {
      excluded.push({ node: node.name, why });
      continue;
    }
    const s = score(selector, node.status!);
    if (best === undefined || s < best.score) best = { name: node.name, score: s };
  }
  return { node: best?.name, selector, excluded };
}
