// Fencing and recovery (DESIGN §4 "Fencing and recovery"): the pure part.
//
// One coordinator at a time holds the session-bound fence lock (/locks/fence) and, for each node,
// decides from what it sees:
//
//   alive, keepalive silent past keepaliveDeadAfterMs  report it (an event), never act on it alone
//   alive znode present ───────────────────────── nothing (or: clear a record of a loss that
//                                                  ended before any fence; lift a fence the
//                                                  admin has answered with `vk node ready`)
//   gone, the daemon said it stopped cleanly ─────  report (lost, not fenced: its guests run on)
//   gone < fence.graceMs (as this holder saw it) ─  wait: a restarted daemon comes back in time
//   gone ≥ graceMs, maintenance on ─────────────── report (lost, not fenced)
//   gone ≥ graceMs, failed before, retry not due ─ wait (back-off)
//   gone ≥ graceMs ─────────────────────────────── fence: the levels in order ipmi → command →
//                                                  storage, the first success wins
//   fenced ─────────────────────────────────────── recover what the level covers (idempotent)
//
// Invariants:
//   F1  Nothing is recovered unless the node's record says fenced: a level succeeded and its
//       result is recorded (planFence returns 'recover' only for state fenced).
//   F2  A level covers a VM only when it proves the VM cannot run on: power (ipmi) and a fence
//       command cover every VM; a storage blocklist covers only a VM whose writable disks are all
//       on RBD (and it has one). Anything else is left in place with the reason (fenceGap).
//   F3  Grace is measured on this holder's own clock from when it saw the alive znode gone; a
//       new holder starts its own count (never compares clocks across nodes), so a lock change
//       can only delay a fence, never hasten it.
//   F4  Only the lock holder decides anything: not holding → no step.
import type { ClusterConfig, FenceLevel, NodeSpec, NodeStatus, VmSpec } from '../../schemas/index.ts';
import { exclusionReason, place, selectNode, type NodeCandidate, type Placed } from '../selectors.ts';

/** The cluster lock one coordinator holds to fence: /<root>/locks/fence. */
export const FENCE_LOCK = 'fence';

export interface FenceFacts {
  /** The node considered. */
  node: string;
  /** This coordinator. */
  me: string;
  /** This coordinator holds the fence lock (and its session is connected). */
  holder: boolean;
  alive: boolean;
  /** How long this holder has seen the alive znode gone (0 while present). */
  absentForMs: number;
  /** How long this holder has seen the node status unchanged (its keepalive not writing) while alive. */
  staleForMs?: number;
  status: NodeStatus | null;
  spec: NodeSpec | null;
  config: Pick<ClusterConfig, 'fence' | 'maintenance' | 'keepaliveDeadAfterMs'>;
  nowMs: number;
}

export type FenceStep =
  | { kind: 'none' }
  | { kind: 'wait'; ms: number; why: string }
  /** Alive, but its keepalive stopped: reported (an event, a log line), never acted on alone. */
  | { kind: 'stale'; message: string }
  /** Record the node as lost but not fenced (skipped when the record already says so). */
  | { kind: 'report'; message: string }
  | { kind: 'fence' }
  /** The node is fenced and still gone: move what the level covers (idempotent). */
  | { kind: 'recover' }
  /** The node is back and its admin asked for ready: lift the storage blocklist, clear the record. */
  | { kind: 'lift' }
  /** The node is back before any fence succeeded: clear the record (nothing was recovered). */
  | { kind: 'clear'; why: string };

export function planFence(f: FenceFacts): FenceStep {
  if (!f.holder || f.node === f.me || f.status === null) return { kind: 'none' };
  const record = f.status.fence;
  if (f.alive) {
    if (!record) {
      const stale = f.staleForMs ?? 0;
      return stale >= f.config.keepaliveDeadAfterMs
        ? { kind: 'stale', message: `${f.node}'s daemon holds its session but its keepalive has not written for ${Math.round(stale / 1000)} s: not fenced while its session lives` }
        : { kind: 'none' };
    }
    if (record.state === 'fenced') return f.spec?.domainState === 'ready' ? { kind: 'lift' } : { kind: 'none' };
    return { kind: 'clear', why: `${f.node} is back before it was fenced; nothing was recovered` };
  }
  if (record?.state === 'fenced') return { kind: 'recover' };
  if (f.status.daemonState === 'stop') return { kind: 'report', message: `${f.node}'s daemon stopped cleanly: not fenced (its guests run on)` };
  const graceMs = f.config.fence.graceMs;
  if (f.absentForMs < graceMs) return { kind: 'wait', ms: graceMs - f.absentForMs, why: `alive znode gone ${f.absentForMs} ms of a ${graceMs} ms grace` };
  if (f.config.maintenance) return { kind: 'report', message: `${f.node} is lost; maintenance is on: not fenced` };
  if (record?.state === 'failed' && record.nextRetryAt !== undefined) {
    const due = Date.parse(record.nextRetryAt) - f.nowMs;
    // A retry time written by another holder is on its clock: never wait longer than the back-off cap for it.
    if (due > 0) return { kind: 'wait', ms: Math.min(due, f.config.fence.retryMaxMs), why: `fence failed ${record.rounds} time(s); next try at ${record.nextRetryAt}` };
  }
  return { kind: 'fence' };
}

/** The wait before fence round `rounds + 1` after `rounds` failed ones: base, doubling, capped. */
export function retryDelayMs(rounds: number, config: Pick<ClusterConfig['fence'], 'retryBaseMs' | 'retryMaxMs'>): number {
  return Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** Math.max(0, Math.min(rounds - 1, 30)));
}

/** What recovery needs of a VM: its spec, its size and its disks (from its XML). */
export interface RecoveryVm {
  name: string;
  spec: VmSpec;
  memoryMiB: number;
  vcpus: number;
  /** RBD images (spec.rbd). */
  rbd: readonly string[];
  /** Writable non-RBD disks (schemas/domain-xml.ts otherDisks); undefined when the XML is unreadable. */
  otherDisks: readonly string[] | undefined;
  /** The node whose status says it holds the guest (running, starting, migrating it…), if any. */
  owner?: string | undefined;
}

/** Why `level` does not prove the VM stopped (F2), or undefined when it does. */
export function fenceGap(level: FenceLevel, vm: Pick<RecoveryVm, 'rbd' | 'otherDisks'>): string | undefined {
  if (level !== 'storage') return undefined;
  if (vm.otherDisks === undefined) return 'its XML cannot be read, so its disks are unknown: a storage fence cannot be proved to cover it';
  if (vm.otherDisks.length > 0) return `disk ${vm.otherDisks.join(', ')} is not on RBD: the storage fence (a Ceph blocklist) does not stop it`;
  if (vm.rbd.length === 0) return 'it has no RBD disk: the storage fence (a Ceph blocklist) does not stop it';
  return undefined;
}

export type RecoveryMove =
  /** Start it on `to` (spec node = to, previousNode = the lost node unless it already has one). */
  | { kind: 'move'; vm: string; to: string; images: readonly string[] }
  /** Covered, but no node can take it: stopped and marked so `vk node ready` of the lost node starts it. */
  | { kind: 'stop'; vm: string; why: string; images: readonly string[] }
  /** Not covered by the level that fenced the node: left where it is, with the reason. */
  | { kind: 'leave'; vm: string; why: string };

export interface RecoveryInput {
  lost: string;
  level: FenceLevel;
  vms: readonly RecoveryVm[];
  nodes: readonly NodeCandidate[];
  defaultSelector: ClusterConfig['defaultNodeSelector'];
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The VMs to recover, in name order: meant to run, and either held by the lost node (its status
 * says the guest is there — also mid-migration away from it) or homed there with no other holder.
 * A VM that another node holds (a migration towards the lost node) is that node's to finish.
 */
export function recoveryCandidates(lost: string, vms: readonly RecoveryVm[]): RecoveryVm[] {
  return vms
    .filter((vm) => vm.spec.state === 'running' && (vm.owner === lost || (vm.owner === undefined && vm.spec.node === lost)))
    .sort(byName);
}

/**
 * The VMs at rest (not meant to run) that the lost node still holds — reserved at rest, or a guest
 * it ran when it was lost — and that `level` covers: recovery releases them, so another node may
 * start them. One the level does not cover stays held by the lost node.
 */
export function heldAtRest(lost: string, level: FenceLevel, vms: readonly RecoveryVm[]): RecoveryVm[] {
  return vms.filter((vm) => vm.spec.state !== 'running' && vm.owner === lost && fenceGap(level, vm) === undefined).sort(byName);
}

/** Every recovery move for a fenced node (F2: a VM its level does not cover is left). */
export function planRecovery(input: RecoveryInput): RecoveryMove[] {
  let placed: ReadonlyMap<string, Placed> = new Map();
  const moves: RecoveryMove[] = [];
  for (const vm of recoveryCandidates(input.lost, input.vms)) {
    const gap = fenceGap(input.level, vm);
    if (gap !== undefined) {
      moves.push({ kind: 'leave', vm: vm.name, why: `${input.lost} was fenced by ${input.level} only; ${gap}` });
      continue;
    }
    // Mid-migration away from the lost node: its spec already names where it goes, if that node can take it.
    const named = vm.spec.node !== input.lost ? input.nodes.find((n) => n.name === vm.spec.node) : undefined;
    if (named && exclusionReason(named, { nodeLimit: vm.spec.meta.nodeLimit, current: input.lost }) === undefined) {
      moves.push({ kind: 'move', vm: vm.name, to: vm.spec.node, images: vm.rbd });
      placed = place(placed, vm.spec.node, vm);
      continue;
    }
    // A recovery starts the guest afresh, so the VM's migration method does not narrow the choice.
    const selection = selectNode({
      selector: vm.spec.meta.nodeSelector,
      defaultSelector: input.defaultSelector,
      nodeLimit: vm.spec.meta.nodeLimit,
      current: input.lost,
      nodes: input.nodes,
      placed,
    });
    if (selection.node === undefined) {
      const why = selection.excluded.filter((e) => e.node !== input.lost).map((e) => `${e.node}: ${e.why}`);
      moves.push({ kind: 'stop', vm: vm.name, images: vm.rbd, why: why.length > 0 ? `no node can take it (${why.join('; ')})` : 'no other node in the cluster' });
      continue;
    }
    moves.push({ kind: 'move', vm: vm.name, to: selection.node, images: vm.rbd });
    placed = place(placed, selection.node, vm);
  }
  return moves;
}

/** The spec a recovery move writes (`leave` writes none). */
export function recoverySpec(spec: VmSpec, move: Exclude<RecoveryMove, { kind: 'leave' }>, lost: string): VmSpec {
  if (move.kind === 'move' && spec.node === move.to) return spec;
  if (move.kind === 'stop') return { ...spec, state: 'stopped', stoppedByFlush: lost };
  const { previousNode, ...rest } = spec;
  const home = previousNode ?? lost;
  return home === move.to ? { ...rest, node: move.to } : { ...rest, node: move.to, previousNode: home };
}

/** Whether a move still fits the VM's fresh spec and owner (someone else may have changed them since the plan). */
export function recoveryApplies(vm: { spec: VmSpec | null; owner?: string | undefined }, lost: string): boolean {
  if (vm.spec === null || vm.spec.state !== 'running') return false;
  return vm.owner === lost || (vm.owner === undefined && vm.spec.node === lost);
}

/**
 * Self-fencing (optional, off by default): what a daemon whose session has been gone for
 * selfFenceAfterMs destroys — its active guests with a disk on shared storage (RBD), which a
 * coordinator may soon recover elsewhere. Guests on local disks only are nobody else's to start.
 */
export function selfFenceTargets(active: readonly string[], rbdOf: (vm: string) => readonly string[] | undefined): string[] {
  return active.filter((vm) => (rbdOf(vm)?.length ?? 0) > 0).sort();
}

/**
 * Why a self-fence deadline is unsafe, or undefined: it must pass before anyone can recover the
 * guests (the session expires, then the grace runs), with a margin for the destroy itself.
 */
export function selfFenceProblem(afterMs: number, sessionTimeoutMs: number, graceMs: number): string | undefined {
  const recoverableAfter = sessionTimeoutMs + graceMs;
  return afterMs + 1_000 <= recoverableAfter ? undefined : `selfFenceAfterMs (${afterMs} ms) must be at least 1 s shorter than the session timeout plus the fence grace (${recoverableAfter} ms), or a coordinator may recover the guests before this node destroys them`;
}
