// Node flush and ready (seeds 001, 003, 004; DESIGN.md §4 "Node flush / ready"): the pure part.
//
// flush N (spec.domainState flushed): every VM that runs on N (spec.node N, spec.state running),
//   taken in name order, goes to the node its selector picks (meta.nodeSelector, or the cluster
//   default) among the nodes that are alive, ready, not asked to flush, inside meta.nodeLimit and —
//   for a VM that migrates live only — taking live migrations, counting the VMs this flush has
//   already placed (reconcilers/selectors.ts, "Placements"). Its spec gets node = target and
//   previousNode = N unless it already has one (a VM migrated before keeps its original home, seed
//   002; a VM going back to its previous node drops it). A VM with no valid target is shut down
//   (spec.state stopped) and marked: spec.stoppedByFlush = N. The user's meta.autostart is never
//   changed by a flush or a ready: it is a standing setting, the mark is the flush's own.
// ready N: every VM whose previousNode is N comes back (node N, previousNode cleared; started again
//   when a flush stopped it), unless its node limit no longer allows N or it runs elsewhere,
//   migrates live only and N takes no live migration; and every stopped VM homed on N that a flush stopped or
//   whose meta.autostart is on is started (state running, the mark cleared, autostart kept).
//   So a flush/ready cycle leaves every VM's spec as it found it.
//
// The executor (reconcilers/flush/controller.ts) runs the moves under the cluster flush lock, at
// most ClusterConfig.migration.maxOutgoing at a time, and re-checks each move against the fresh
// spec before writing it (stillApplies). `vk plan` (cli/plan.ts) calls planFlush with what
// ZooKeeper holds, so it predicts the moves the flush will make.
import { migrationInFlight, type MigrationRecord, type NodeSelector, type VmSpec, type VmStatus } from '../../schemas/index.ts';
import { place, selectNode, type NodeCandidate, type Placed } from '../selectors.ts';

/** Name of the cluster lock that serializes flushes: /<root>/locks/flush (ZkPaths.lock). */
export const FLUSH_LOCK = 'flush';

/** A VM as the flush sees it: its spec and its size (from its XML). */
export interface FlushVm {
  name: string;
  spec: VmSpec;
  memoryMiB: number;
  vcpus: number;
  /** The node its status says it is on (its guest has not left it yet), when known. */
  statusNode?: string | undefined;
}

export type FlushMove =
  /** Move the VM to `to` (a shutdown or live migration, as the VM's method says). */
  | { kind: 'migrate'; vm: string; from: string; to: string; selector: NodeSelector; memoryMiB: number; vcpus: number }
  /** No valid target: shut the VM down and mark it stopped by this flush (ready starts it again). */
  | { kind: 'stop'; vm: string; from: string; selector: NodeSelector; why: string };

export type ReadyMove =
  /** Bring the VM back from `from` (and start it when a flush shut it down). */
  | { kind: 'return'; vm: string; from: string; to: string }
  /** Start the VM here: a flush shut it down, or its meta.autostart is on. */
  | { kind: 'autostart'; vm: string; node: string; stoppedBy?: string }
  /** Its previous node is here but its node limit no longer allows it: left where it is. */
  | { kind: 'skip'; vm: string; node: string; why: string };

export interface FlushPlanInput {
  /** The node being flushed. */
  node: string;
  /** Every VM of the cluster (the planner picks the ones running on `node`). */
  vms: readonly FlushVm[];
  nodes: readonly NodeCandidate[];
  defaultSelector: NodeSelector;
  /** VMs this flush already placed (a re-plan of the remaining moves). Default: none. */
  placed?: ReadonlyMap<string, Placed>;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The VMs a flush of `node` moves: running there by their spec, in name order. */
export function flushCandidates(node: string, vms: readonly FlushVm[]): FlushVm[] {
  return vms.filter((vm) => vm.spec.node === node && vm.spec.state === 'running').sort(byName);
}

/** Every move of a flush of `input.node`, in the order the executor starts them. */
export function planFlush(input: FlushPlanInput): FlushMove[] {
  let placed: ReadonlyMap<string, Placed> = input.placed ?? new Map();
  const moves: FlushMove[] = [];
  for (const vm of flushCandidates(input.node, input.vms)) {
    const selection = selectNode({
      selector: vm.spec.meta.nodeSelector,
      defaultSelector: input.defaultSelector,
      nodeLimit: vm.spec.meta.nodeLimit,
      current: input.node,
      method: vm.spec.meta.migrationMethod,
      nodes: input.nodes,
      placed,
    });
    if (selection.node === undefined) {
      const why = selection.excluded.filter((e) => e.node !== input.node).map((e) => `${e.node}: ${e.why}`);
      moves.push({
        kind: 'stop',
        vm: vm.name,
        from: input.node,
        selector: selection.selector,
        why: why.length > 0 ? `no valid target (${why.join('; ')})` : 'no other node in the cluster',
      });
      continue;
    }
    moves.push({ kind: 'migrate', vm: vm.name, from: input.node, to: selection.node, selector: selection.selector, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus });
    placed = place(placed, selection.node, vm);
  }
  return moves;
}

/** Whether a flush move still fits the VM's current spec (else someone else changed it: skip it). */
export function flushMoveApplies(move: FlushMove, spec: VmSpec | null): boolean {
  return spec !== null && spec.node === move.from && spec.state === 'running';
}

/** The spec a flush move writes. */
export function flushSpecEdit(spec: VmSpec, move: FlushMove): VmSpec {
  if (move.kind === 'stop') return { ...spec, state: 'stopped', stoppedByFlush: move.from };
  const { previousNode, ...rest } = spec;
  const home = previousNode ?? move.from;
  // Going back where it came from: that is an unmigrate, it has no previous node any more.
  return home === move.to ? { ...rest, node: move.to } : { ...rest, node: move.to, previousNode: home };
}

/** What a ready needs to know of its own node. */
export interface ReadyOptions {
  /** The node takes live migrations (publishes a migration URI); undefined: unknown, assumed so. */
  liveMigration?: boolean | undefined;
}

/** A stopped VM that a flush shut down (and that nobody has changed since). */
export function stoppedByFlush(spec: VmSpec): boolean {
  return spec.state === 'stopped' && spec.stoppedByFlush !== undefined;
}

/** Every move of a ready of `node`, in name order. */
export function planReady(node: string, vms: readonly FlushVm[], options: ReadyOptions = {}): ReadyMove[] {
  const moves: ReadyMove[] = [];
  for (const vm of [...vms].sort(byName)) {
    const { spec } = vm;
    if (spec.previousNode === node) {
      const limit = spec.meta.nodeLimit;
      if (limit.length > 0 && !limit.includes(node)) {
        moves.push({ kind: 'skip', vm: vm.name, node, why: `its node limit [${limit.join(', ')}] no longer includes ${node}` });
      } else if (spec.state === 'running' && spec.meta.migrationMethod === 'live' && options.liveMigration === false && vm.statusNode !== node) {
        moves.push({ kind: 'skip', vm: vm.name, node, why: `it migrates live only and ${node} takes no live migration (publishes no migration URI)` });
      } else moves.push({ kind: 'return', vm: vm.name, from: spec.node, to: node });
    } else if (spec.node === node && spec.state === 'stopped' && (stoppedByFlush(spec) || spec.meta.autostart)) {
      moves.push({ kind: 'autostart', vm: vm.name, node, ...(stoppedByFlush(spec) ? { stoppedBy: spec.stoppedByFlush! } : {}) });
    }
  }
  return moves;
}

export function readyMoveApplies(move: ReadyMove, spec: VmSpec | null): boolean {
  if (spec === null) return false;
  switch (move.kind) {
    case 'return':
      return spec.previousNode === move.to;
    case 'autostart':
      return spec.node === move.node && spec.state === 'stopped' && (stoppedByFlush(spec) || spec.meta.autostart);
    case 'skip':
      return false;
  }
}

/** The spec a ready move writes (a skip writes nothing: the spec is returned as is). */
export function readySpecEdit(spec: VmSpec, move: ReadyMove): VmSpec {
  switch (move.kind) {
    case 'return': {
      const { previousNode: _back, stoppedByFlush: _mark, ...rest } = spec;
      // A VM a flush shut down (e.g. flushed off its previous node, then off the next one) comes
      // back running: the flush stopped it, not its owner.
      return stoppedByFlush(spec) ? { ...rest, node: move.to, state: 'running' } : { ...rest, node: move.to };
    }
    case 'autostart': {
      const { stoppedByFlush: _mark, ...rest } = spec;
      return { ...rest, state: 'running' };
    }
    case 'skip':
      return spec;
  }
}

/** What the executor waits on after writing a move's spec. */
export type Expectation =
  /** The VM runs on `node`. */
  | { kind: 'runs'; vm: string; node: string }
  /** The VM is shut off on `node`. */
  | { kind: 'stops'; vm: string; node: string };

export function expectationOf(move: FlushMove | ReadyMove): Expectation | undefined {
  switch (move.kind) {
    case 'migrate':
      return { kind: 'runs', vm: move.vm, node: move.to };
    case 'stop':
      return { kind: 'stops', vm: move.vm, node: move.from };
    case 'return':
      return { kind: 'runs', vm: move.vm, node: move.to };
    case 'autostart':
      return { kind: 'runs', vm: move.vm, node: move.node };
    case 'skip':
      return undefined;
  }
}

/**
 * Where a written move stands: pending; arrived (the VM is where the move wanted it); failed (the
 * VM's node reports it Failed there); superseded (its spec no longer asks for this move: someone
 * else changed it, or deleted the VM) — the executor stops waiting on everything but pending.
 */
export type Settlement = 'pending' | 'arrived' | 'failed' | 'superseded';

export function settlement(
  expect: Expectation,
  spec: VmSpec | null,
  status: VmStatus | null,
  migration: MigrationRecord | null,
): Settlement {
  if (spec === null || spec.node !== expect.node) return 'superseded';
  if (expect.kind === 'runs') {
    if (spec.state !== 'running') return 'superseded';
    // A migration record still in flight (whoever's): the move is not over.
    if (migration !== null && migrationInFlight(migration, migration.source)) return 'pending';
    if (status?.node !== expect.node) return 'pending';
    if (status.phase === 'Running') return 'arrived';
    if (status.phase === 'Failed') return 'failed';
    return 'pending';
  }
  if (spec.state === 'running') return 'superseded';
  if (status === null) return 'arrived';
  if (status.node !== expect.node) return 'pending';
  return status.phase === 'Stopped' || status.phase === 'Disabled' ? 'arrived' : status.phase === 'Failed' ? 'failed' : 'pending';
}

/** One line per move, as `vk plan` and the daemon's action log print them (without the node). */
export function describeFlushMove(move: FlushMove | ReadyMove, method?: string): string {
  switch (move.kind) {
    case 'migrate':
      return `${move.vm} migrate ${move.from} → ${move.to} (flush; selector ${move.selector}${method ? `, method ${method}` : ''})`;
    case 'stop':
      return `${move.vm} shutdown (flush: ${move.why}; ready starts it again)`;
    case 'return':
      return `${move.vm} migrate ${move.from} → ${move.to} (ready: back to its previous node${method ? `; method ${method}` : ''})`;
    case 'autostart':
      return `${move.vm} start (ready: ${move.stoppedBy !== undefined ? `shut down by the flush of ${move.stoppedBy}` : 'autostart'})`;
    case 'skip':
      return `${move.vm} stays (ready: ${move.why})`;
  }
}
