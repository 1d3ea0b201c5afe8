// The node concern's pure part (seed 004): the node status a keepalive writes, computed from what
// the hypervisor, the host and the VM informer report (computeNodeStatus), how old a keepalive is,
// and which keepalive interval and console length are in force.
//
// Memory figures come only from domains that run. "allocated" is the memory of the domains
// running here; "provisioned" is the memory of every VM assigned here whatever its state, taken
// from the running domain when there is one and from the VM's XML otherwise.
import type { DomainRunState } from '../../drivers/domain-run-state.ts';
import type { HostMemory } from '../../drivers/host.ts';
import type { DomainLoad, NodeResources } from '../../drivers/hypervisor.ts';
import { jsonEqual } from '../json-equal.ts';
import { isValidName, type ClusterConfig, type Condition, type NodeDaemonState, type NodeDomainState, type NodeFlush, type NodeFrr, type NodeStorage, type NodeStatus, type NodeFenceStatus, type VmState } from '../../schemas/index.ts';

/**
 * How old a node's last keepalive is, and whether it is stale: older than the cluster config's
 * keepaliveDeadAfterMs. Reported only (`vk get nodes`, `vk describe node`), never acted on alone
 * (DESIGN §4 "Fencing": a lost node is one whose alive znode is gone). keepaliveAt is the node's
 * clock and nowMs the reader's, so this is as good as the two clocks agree.
 */
export function keepaliveAge(keepaliveAt: string, deadAfterMs: number, nowMs: number): { ageMs: number; stale: boolean } | undefined {
  const at = Date.parse(keepaliveAt);
  if (Number.isNaN(at)) return undefined;
  const ageMs = Math.max(0, nowMs - at);
  return { ageMs, stale: ageMs > deadAfterMs };
}

/** Domain states whose memory and vCPUs are in use and may be read. */
const RUNNING: ReadonlySet<DomainRunState> = new Set(['running', 'blocked']);

export function isRunningState(state: DomainRunState): boolean {
  return RUNNING.has(state);
}

/** A VM whose spec.node is this node, with the size its XML gives. */
export interface AssignedVm {
  name: string;
  /** spec.state; informational: provisioned memory counts every state (as PVC does). */
  state?: VmState;
  memoryKiB: number;
  vcpus: number;
}

/** Why the hypervisor figures of this tick are stale (the last known ones were used). */
export interface HypervisorProblem {
  reason: string;
  message: string;
}

export interface KeepaliveInput {
  node: string;
  /** Daemon version string. */
  version: string;
  /** ISO time of this keepalive. */
  now: string;
  resources: NodeResources;
  hostMemory: HostMemory;
  /** One-minute load average. */
  load: number;
  /** The domains of the local libvirt. */
  domains: DomainLoad[];
  /** Every VM whose spec.node is this node. */
  assigned: AssignedVm[];
  /** Kept as is: the node flush/ready reconciler owns it. */
  domainState: NodeDomainState;
  daemonState: NodeDaemonState;
  /** Kept as is from the current status (default -1). */
  observedGeneration?: number;
  /** Conditions of the current status: kept, except HypervisorResponding which the keepalive owns. */
  conditions?: Condition[];
  /** Kept as is: flush/ready progress, owned by the flush reconciler (reconcilers/flush/plan.ts). */
  flush?: NodeFlush;
  /** Kept as is: BGP EVPN state, owned by the FRR reconciler. */
  frr?: NodeFrr;
  /** Kept as is: the storage address and Ceph's reachability, owned by the RBD reconciler. */
  storage?: NodeStorage;
  /** Kept as is: lost / fenced, owned by the fencing coordinator (reconcilers/fence). */
  fence?: NodeFenceStatus;
  /** Set when libvirt did not answer this tick. */
  hypervisorProblem?: HypervisorProblem | null;
}

export const HYPERVISOR_CONDITION = 'HypervisorResponding';

const kibToMib = (kib: number): number => Math.max(0, Math.round(kib / 1024));

export function computeNodeStatus(input: KeepaliveInput): NodeStatus {
  const running = input.domains.filter((d) => isRunningState(d.state));
  const runningByName = new Map(running.map((d) => [d.name, d]));

  const allocatedKiB = sum(running.map((d) => d.memoryKiB));
  const allocatedVcpus = sum(running.map((d) => d.vcpus));

  const seen = new Set<string>();
  let provisionedKiB = 0;
  for (const vm of input.assigned) {
    if (seen.has(vm.name)) continue;
    seen.add(vm.name);
    provisionedKiB += nonNegative(runningByName.get(vm.name)?.memoryKiB ?? vm.memoryKiB);
  }

  const totalMiB = kibToMib(input.hostMemory.totalKiB);
  const freeMiB = Math.min(totalMiB, kibToMib(input.hostMemory.availableKiB));

  return {
    daemonState: input.daemonState,
    domainState: input.domainState,
    memory: {
      totalMiB,
      usedMiB: totalMiB - freeMiB,
      freeMiB,
      allocatedMiB: kibToMib(allocatedKiB),
      provisionedMiB: kibToMib(provisionedKiB),
    },
    vcpus: { total: Math.max(0, Math.floor(input.resources.cpus)), allocated: allocatedVcpus },
    load: Number.isFinite(input.load) && input.load > 0 ? input.load : 0,
    // A domain someone defined by hand under a name virtkeeper refuses still counts as allocated above.
    runningVms: [...new Set(running.map((d) => d.name).filter(isValidName))].sort(),
    keepaliveAt: input.now,
    version: input.version,
    observedGeneration: input.observedGeneration ?? -1,
    conditions: nextConditions(input),
    ...(input.flush ? { flush: input.flush } : {}),
    ...(input.frr ? { frr: input.frr } : {}),
    ...(input.storage ? { storage: input.storage } : {}),
    ...(input.fence ? { fence: input.fence } : {}),
  };
}

function nextConditions(input: KeepaliveInput): Condition[] {
  const previous = input.conditions ?? [];
  const before = previous.find((c) => c.type === HYPERVISOR_CONDITION);
  const problem = input.hypervisorProblem ?? null;
  const status: Condition['status'] = problem ? 'False' : 'True';
  const mine: Condition = {
    type: HYPERVISOR_CONDITION,
    status,
    reason: problem ? problem.reason : 'Responding',
    message: problem ? problem.message : `libvirt on ${input.node} answers`,
    lastTransitionTime: before && before.status === status ? before.lastTransitionTime : input.now,
  };
  return [...previous.filter((c) => c.type !== HYPERVISOR_CONDITION), mine];
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + nonNegative(b), 0);
}

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The keepalive interval and console lines in force: the node's own setting, else the cluster's. */
export function effectiveSettings(own: { keepaliveMs: number | undefined; consoleLines: number | undefined }, config: ClusterConfig): { keepaliveMs: number; consoleLines: number } {
  return { keepaliveMs: own.keepaliveMs ?? config.keepaliveIntervalMs, consoleLines: own.consoleLines ?? config.consoleLogLines };
}

/** Used or free memory moving by less than this is not a change worth a status write (MiB, or 1 % of the total). */
export const MEMORY_NOISE_MIB = 64;
/** The load average moving by less than this is not a change worth a status write. */
export const LOAD_NOISE = 0.5;

/**
 * Whether `next` says something `prev` does not (a status write is due): anything but the
 * keepalive time, the host's used and free memory within max(MEMORY_NOISE_MIB, 1 % of the total)
 * and the load average within LOAD_NOISE (those drift all the time; the selectors need them only
 * roughly, and the periodic refresh brings them up to date).
 */
export function statusFiguresChanged(prev: NodeStatus, next: NodeStatus): boolean {
  const memNoise = Math.max(MEMORY_NOISE_MIB, next.memory.totalMiB / 100);
  if (Math.abs(prev.memory.usedMiB - next.memory.usedMiB) >= memNoise || Math.abs(prev.memory.freeMiB - next.memory.freeMiB) >= memNoise) return true;
  if (Math.abs(prev.load - next.load) >= LOAD_NOISE) return true;
  const steady = (s: NodeStatus) => ({ ...s, keepaliveAt: '', load: 0, memory: { ...s.memory, usedMiB: 0, freeMiB: 0 } });
  return !jsonEqual(steady(prev), steady(next));
}
