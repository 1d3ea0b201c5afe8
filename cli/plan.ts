// `vk plan`: what the cluster would do, per node, computed from what ZooKeeper holds.
//
// The CLI cannot see the nodes' libvirts, so the observation is the VM's status: the domain is
// taken to be on status.node, in status.domainState (else a state inferred from status.phase).
// planDomain (the domain reconciler's own pure planner) then runs for spec.node and, when the
// status names another node, for that node too. A running VM whose spec.node moved is shown as
// one migration `web1 migrate hv1 → hv2` instead of a destroy there and a start here. Status
// writes are bookkeeping and left out. A node whose spec asks for another domainState than its
// status reports shows a flush or ready, and (given a PlanContext) every move of it, from the
// flush reconciler's own pure planner (reconcilers/flush/plan.ts): what the node's daemon will do.
import { DOMAIN_RUN_STATES, type DomainRunState, type LocalDomain } from '../drivers/domain-run-state.ts';
import { planDomain, describeDomainAction, type DomainAction } from '../reconcilers/domain/plan.ts';
import { migrationInFlight } from '../schemas/index.ts';
import { describeFlushMove, planFlush, planReady, type FlushMove, type FlushVm, type ReadyMove } from '../reconcilers/flush/plan.ts';
import type { LiveNode, LiveVm } from './cluster.ts';
import { parseVmXml, xmlHash, type MigrationRecord, type NodeSelector, type NodeSpec, type NodeStatus, type VmSpec, type VmStatus } from '../schemas/index.ts';

export interface VmView {
  name: string;
  spec: VmSpec;
  generation: number;
  xml: string;
  status: { value: VmStatus; version: number } | null;
  migration: MigrationRecord | null;
}

export interface NodeView {
  name: string;
  spec: NodeSpec | null;
  status: NodeStatus | null;
  /** Its daemon holds a session (alive znode). Unknown: taken as alive when it has a status. */
  alive?: boolean;
  /** It takes live migrations (its alive znode publishes a migration URI). Unknown: assumed so. */
  liveMigration?: boolean;
}

/** The planner's views of what ZooKeeper holds (a VM without spec or XML has nothing to plan). */
export function liveViews(liveVms: readonly LiveVm[], liveNodes: readonly LiveNode[]): { vms: Map<string, VmView>; nodes: Map<string, NodeView> } {
  const vms = new Map<string, VmView>();
  for (const vm of liveVms) {
    if (!vm.spec || !vm.xml) continue;
    vms.set(vm.name, {
      name: vm.name,
      spec: vm.spec.value,
      generation: vm.spec.version,
      xml: vm.xml.text,
      status: vm.status && { value: vm.status.value, version: vm.status.version },
      migration: vm.migration?.value ?? null,
    });
  }
  const nodes = new Map<string, NodeView>(liveNodes.map((n) => [n.name, { name: n.name, spec: n.spec?.value ?? null, status: n.status?.value ?? null, alive: n.alive, liveMigration: n.liveMigration }]));
  return { vms, nodes };
}

/** What flush/ready moves need beyond the objects: the cluster's default node selector. */
export interface PlanContext {
  defaultSelector: NodeSelector;
}

export interface PlanAction {
  node: string;
  /** null for an action of the node itself (flush, ready). */
  vm: string | null;
  action: string;
  /** The line printed under the node. */
  description: string;
  [detail: string]: unknown;
}

const RUN_STATES: ReadonlySet<string> = new Set<DomainRunState>(DOMAIN_RUN_STATES);

/** The domain a status describes, as the node that wrote it would see it. */
export function domainFromStatus(status: VmStatus | null): LocalDomain | null {
  if (!status) return null;
  if (status.domainState !== undefined && RUN_STATES.has(status.domainState)) {
    return { state: status.domainState as DomainRunState, persistent: true };
  }
  switch (status.phase) {
    case 'Running':
    case 'Starting':
    case 'ShuttingDown':
    case 'Migrating':
      return { state: 'running', persistent: true };
    default:
      return { state: 'shutoff', persistent: true };
  }
}

function fromDomainAction(node: string, vm: string, action: DomainAction): PlanAction {
  const description = describeDomainAction(node, vm, action).slice(node.length + 1);
  switch (action.kind) {
    case 'define':
      return { node, vm, action: 'define', why: action.why, description };
    case 'shutdown':
      return { node, vm, action: 'shutdown', timeoutMs: action.timeoutMs, description };
    case 'wait':
      return { node, vm, action: 'wait', ms: action.ms, why: action.why, description };
    default:
      return { node, vm, action: action.kind, description };
  }
}

function migrateAction(vm: VmView, from: string, to: string, note?: string): PlanAction {
  const method = vm.spec.meta.migrationMethod;
  const description = `${vm.name} migrate ${from} → ${to} (method ${method}${note ? `; ${note}` : ''})`;
  return { node: from, vm: vm.name, action: 'migrate', from, to, method, description };
}

export function planVm(vm: VmView, now: string): PlanAction[] {
  const desired = { spec: vm.spec, generation: vm.generation, xml: vm.xml, xmlHash: xmlHash(vm.xml) };
  const status = vm.status?.value ?? null;
  const target = vm.spec.node;
  const run = (node: string, domain: LocalDomain | null) =>
    planDomain(vm.name, desired, { node, domain, status: vm.status, migration: vm.migration, now })
      // Status bookkeeping (including the claim that wins the VM before a start) is not a change to show.
      .filter((a) => a.kind !== 'writeStatus' && a.kind !== 'claim')
      .map((a) => fromDomainAction(node, vm.name, a));

  // A migration in flight: the migration reconciler owns the VM; a new target means abort and retarget.
  const record = vm.migration;
  if (record && migrationInFlight(record, record.source)) {
    if (record.target !== target && record.source !== target) {
      return [migrateAction(vm, record.source, target, `aborts the migration to ${record.target} in flight`)];
    }
    return [];
  }

  const here = status && status.node === target ? domainFromStatus(status) : null;
  const onTarget = run(target, here);
  if (!status || status.node === target) return onTarget;

  const elsewhere = domainFromStatus(status);
  const active = elsewhere !== null && ['running', 'blocked', 'paused', 'pmsuspended'].includes(elsewhere.state);
  if (active && vm.spec.state === 'running') return [migrateAction(vm, status.node, target)];
  return [...run(status.node, elsewhere), ...onTarget];
}

export function planNodeDomainState(node: NodeView): PlanAction[] {
  if (!node.spec || !node.status) return [];
  const wanted = node.spec.domainState;
  const now = node.status.domainState;
  if (wanted === 'flushed' && (now === 'ready' || now === 'unflushing')) {
    return [{ node: node.name, vm: null, action: 'flush', description: `(node) flush: move its VMs away (now ${now})` }];
  }
  if (wanted === 'ready' && (now === 'flushed' || now === 'flushing')) {
    return [{ node: node.name, vm: null, action: 'ready', description: `(node) ready: take its VMs back (now ${now})` }];
  }
  return [];
}

function flushVmOf(vm: VmView): FlushVm {
  let memoryMiB = 0;
  let vcpus = 0;
  try {
    const info = parseVmXml(vm.xml, vm.name);
    memoryMiB = Math.max(0, Math.round(info.memoryKiB / 1024));
    vcpus = info.vcpus;
  } catch {
    // An unreadable XML sizes the VM at nothing, as the daemon's informer does.
  }
  return { name: vm.name, spec: vm.spec, memoryMiB, vcpus, statusNode: vm.status?.value.node };
}

function fromMove(move: FlushMove | ReadyMove, vm: VmView | undefined): PlanAction {
  const method = vm?.spec.meta.migrationMethod;
  const description = describeFlushMove(move, method);
  switch (move.kind) {
    case 'migrate':
      return { node: move.from, vm: move.vm, action: 'migrate', from: move.from, to: move.to, method, selector: move.selector, by: 'flush', description };
    case 'stop':
      return { node: move.from, vm: move.vm, action: 'shutdown', stoppedByFlush: move.from, by: 'flush', why: move.why, description };
    case 'return':
      return { node: move.from, vm: move.vm, action: 'migrate', from: move.from, to: move.to, method, by: 'ready', description };
    case 'autostart':
      return { node: move.node, vm: move.vm, action: 'start', by: 'ready', description };
    case 'skip':
      return { node: move.node, vm: move.vm, action: 'stay', by: 'ready', why: move.why, description };
  }
}

/** The moves of a node's pending flush or ready: exactly what reconcilers/flush/plan.ts plans for it. */
export function planNodeMoves(node: NodeView, vms: readonly VmView[], nodes: readonly NodeView[], ctx: PlanContext): PlanAction[] {
  if (!node.spec || !node.status) return [];
  const wanted = node.spec.domainState;
  const now = node.status.domainState;
  const byName = new Map(vms.map((v) => [v.name, v]));
  const sized = vms.map(flushVmOf);
  if (wanted === 'flushed' && now !== 'flushed') {
    const candidates = nodes.map((n) => ({ name: n.name, alive: n.alive ?? n.status !== null, liveMigration: n.liveMigration, spec: n.spec, status: n.status }));
    return planFlush({ node: node.name, vms: sized, nodes: candidates, defaultSelector: ctx.defaultSelector }).map((m) => fromMove(m, byName.get(m.vm)));
  }
  if (wanted === 'ready' && now !== 'ready') return planReady(node.name, sized, { liveMigration: node.liveMigration }).map((m) => fromMove(m, byName.get(m.vm)));
  return [];
}

/** Every action, sorted by node, then node actions first, then VM. */
export function planCluster(vms: readonly VmView[], nodes: readonly NodeView[], now: string, ctx?: PlanContext): PlanAction[] {
  const moves = ctx ? nodes.flatMap((n) => planNodeMoves(n, vms, nodes, ctx)) : [];
  const actions = [...nodes.flatMap(planNodeDomainState), ...moves, ...vms.flatMap((vm) => planVm(vm, now))];
  const key = (a: PlanAction) => `${a.node}\u0000${a.vm === null ? '' : `\u0001${a.vm}`}`;
  return actions
    .map((a, i) => ({ a, i }))
    .sort((x, y) => (key(x.a) < key(y.a) ? -1 : key(x.a) > key(y.a) ? 1 : x.i - y.i))
    .map(({ a }) => a);
}

/** Human rendering: one block per node. */
export function renderPlan(actions: readonly PlanAction[]): string {
  if (actions.length === 0) return 'No changes: the cluster is converged.';
  const lines: string[] = [];
  let node: string | undefined;
  for (const a of actions) {
    if (a.node !== node) {
      node = a.node;
      lines.push(`${node}:`);
    }
    lines.push(`  ${a.description}`);
  }
  const count = (kind: string) => actions.filter((a) => a.action === kind).length;
  const summary = [
    ['start', 'to start'],
    ['shutdown', 'to shut down'],
    ['destroy', 'to destroy'],
    ['migrate', 'to migrate'],
    ['define', 'to define'],
    ['undefine', 'to undefine'],
  ]
    .map(([kind, text]) => [count(kind!), text] as const)
    .filter(([n]) => n > 0)
    .map(([n, text]) => `${n} ${text}`);
  lines.push(`Plan: ${actions.length} action${actions.length === 1 ? '' : 's'}${summary.length > 0 ? ` (${summary.join(', ')})` : ''}.`);
  return lines.join('\n');
}
