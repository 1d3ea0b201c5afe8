// `vk get vms|nodes|networks` (tables, wide, json, yaml) and `vk describe vm|node|network NAME`.
import { Argument, Option, type Command } from 'commander';
import { defaultClusterConfig, gatewayMac, type ClusterConfig, type Condition, type NodeFrr, type RbdCheck, type PrimaryRecord, type ZkPaths } from '../../schemas/index.ts';
import {
  bridgeName,
  listNodeNames,
  networkReadiness,
  readAllNetworks,
  readAllNodes,
  readAllVms,
  readConfig,
  readNetwork,
  readNode,
  readVmOrFail,
  vmNetworks,
  type InvalidZnode,
  type LiveNetwork,
  type LiveNode,
  type LiveVm,
} from '../cluster.ts';
import { withCluster } from '../connect.ts';
import { readLockQueue, type LockEntry } from '../../drivers/zk/lock.ts';
import { FLUSH_LOCK } from '../../reconcilers/flush/plan.ts';
import { establishedPeers } from '../../reconcilers/frr/plan.ts';
import { keepaliveAge } from '../../reconcilers/node/plan.ts';
import type { ZkStore } from '../../drivers/zk/index.ts';
import { CliError, usageError } from '../errors.ts';
import { fenceBlock, fenceCell, maintenanceNote, readFenceSettings } from '../fence.ts';
import { networkUsers } from '../manifests.ts';
import { colors, indent, orDash, println, rawText, table, toJson, toYaml, type NoteRow, type OutputFormat } from '../output.ts';
import { countLeases, gatewayHolders, leaseExpiry, nodeRole, phaseText, readLeases, readPrimary, type LivePrimary } from '../primary.ts';

export interface GetFlags {
  output?: OutputFormat;
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'wide (more columns), json or yaml').choices(['wide', 'json', 'yaml']);
}

function structured(format: OutputFormat, value: unknown): boolean {
  if (format === 'json') {
    process.stdout.write(toJson(value));
    return true;
  }
  if (format === 'yaml') {
    process.stdout.write(toYaml(value));
    return true;
  }
  return false;
}

// ------------------------------------------------------------------------- unreadable specs

/** What a listing shows in place of the fields of an object whose spec cannot be read. */
function invalidNote(invalid: InvalidZnode): string {
  return colors.red(`invalid spec: ${invalid.problem.replace(/\n/g, ' ')}`);
}

/** The structured form (-o json|yaml) of an unreadable spec. */
function invalidJson(invalid: InvalidZnode | undefined) {
  return invalid ? { invalid: { znode: invalid.path, error: invalid.problem, raw: invalid.raw.toString('utf8') } } : {};
}

/** describe's lines for an unreadable spec: the znode, the error and the raw value. */
function invalidLines(invalid: InvalidZnode, repair: string): string[] {
  return [field('Spec', `unreadable (${repair})`), field('Spec znode', invalid.path), field('Spec error', invalid.problem), 'Spec raw value:', indent(rawText(invalid.raw))];
}

// ---------------------------------------------------------------------------------------- VMs

function networksCell(vm: LiveVm, existing: ReadonlySet<string>): string {
  const { vnis, invalid } = vmNetworks(vm.xml?.info ?? null, existing);
  const cells = [...vnis, ...invalid.map((b) => `${b}(invalid)`)];
  const text = cells.join(',');
  // As PVC does: the whole list is coloured when any network is invalid.
  return invalid.length > 0 ? colors.red(text) : orDash(text);
}

/** A VM as `vk get vms -o json` prints it (and the REST API returns it). */
export function vmJson(vm: LiveVm) {
  return {
    name: vm.name,
    spec: vm.spec?.value ?? null,
    generation: vm.spec?.version ?? null,
    status: vm.status?.value ?? null,
    migration: vm.migration?.value ?? null,
    uuid: vm.xml?.info?.uuid ?? null,
    networks: vm.xml?.info?.bridges ?? [],
    ...invalidJson(vm.invalidSpec),
  };
}

export function printVms(vms: readonly LiveVm[], networks: readonly LiveNetwork[], format: OutputFormat): void {
  if (structured(format, vms.map(vmJson))) return;
  const existing = new Set(networks.map((n) => n.vni));
  const headers = ['NAME', 'NODE', 'STATE', 'PHASE', 'PREVIOUS'];
  if (format === 'wide') headers.push('LIMIT', 'SELECTOR', 'AUTOSTART', 'METHOD', 'NETWORKS');
  const rows = vms.map((vm): string[] | NoteRow => {
    if (!vm.spec) return { cells: [vm.name], note: vm.invalidSpec ? invalidNote(vm.invalidSpec) : '-' };
    const spec = vm.spec.value;
    const status = vm.status?.value;
    const phase = status ? (status.node === spec.node ? status.phase : `${status.phase}@${status.node}`) : '-';
    const row = [vm.name, spec.node, spec.state, phase, orDash(spec.previousNode)];
    if (format === 'wide') {
      row.push(
        orDash(spec.meta.nodeLimit.join(',')),
        spec.meta.nodeSelector,
        spec.meta.autostart ? 'yes' : 'no',
        spec.meta.migrationMethod,
        networksCell(vm, existing),
      );
    }
    return row;
  });
  println(table(headers, rows));
}

// -------------------------------------------------------------------------------------- nodes

/** Where a node stands in the cluster flush lock's queue: 0 holds it, n > 0 waits behind n others. */
function flushLockOf(node: string, queue: readonly LockEntry[]): { position: number; holder: string | null; child: string } | null {
  const index = queue.findIndex((e) => e.owner === node);
  return index < 0 ? null : { position: index, holder: queue[0]?.owner ?? null, child: queue[index]!.child };
}

/** The FLUSH column: the lock queue (holder, waiting) and the progress the node reports. */
function flushCell(node: LiveNode, queue: readonly LockEntry[]): string {
  const lock = flushLockOf(node.name, queue);
  const f = node.status?.value.flush;
  const progress = f && f.phase === 'moving' ? ` ${f.moved + f.stopped}/${f.total}` : '';
  if (lock && lock.position === 0) return `flushing${progress} (holds lock)`;
  if (lock) return `queued #${lock.position} (behind ${lock.holder ?? '?'})`;
  if (f && f.operation === 'ready' && f.phase === 'moving') return `ready${progress}`;
  return '-';
}

/** BGP: sessions up of the node's peers (`2/2`); `-` when the node reports no FRR state or BGP is not configured. */
function bgpCell(node: LiveNode): string {
  const frr = node.status?.value.frr;
  if (!frr || frr.state === 'NotConfigured') return '-';
  const up = establishedPeers(frr);
  const text = `${up}/${frr.peers.length}`;
  return up < frr.peers.length || frr.state !== 'InSync' ? colors.red(text) : text;
}

/** FRR (wide): the FRR concern's state (InSync, NotConfigured, FrrUnreachable, ReloadFailed, Failed). */
function frrCell(node: LiveNode): string {
  const state = node.status?.value.frr?.state;
  if (state === undefined) return '-';
  return state !== 'InSync' ? colors.red(state) : state;
}

/** The cluster config (the default when it is missing or unreadable: the views are reports). */
async function configForViews(store: ZkStore, paths: ZkPaths): Promise<ClusterConfig> {
  try {
    return (await readConfig(store, paths)).value;
  } catch {
    return defaultClusterConfig();
  }
}

/**
 * The node's keepalive age, stale when older than keepaliveDeadAfterMs; undefined without a status.
 * The later of the lease's renewal (every tick) and the status's keepaliveAt (written on change).
 */
function keepaliveOf(node: LiveNode, deadAfter: number, nowMs: number) {
  const written = node.status?.value.keepaliveAt;
  if (written === undefined) return undefined;
  const renewed = node.leaseRenewedAt;
  const at = renewed !== undefined && Date.parse(renewed) > Date.parse(written) ? renewed : written;
  const age = keepaliveAge(at, deadAfter, nowMs);
  return age && { at, ageMs: age.ageMs, stale: age.stale, deadAfterMs: deadAfter };
}

/** ALIVE: yes, no, or stale (a session but no keepalive for longer than keepaliveDeadAfterMs: reported, not acted on). */
function aliveCell(node: LiveNode, deadAfter: number, nowMs: number): string {
  if (!node.alive) return 'no';
  return keepaliveOf(node, deadAfter, nowMs)?.stale ? 'stale' : 'yes';
}

/** Who is primary and who may be: the ROLE column's input. */
export interface NodeRoles {
  coordinators: readonly string[];
  /** /config/primary's record (null: none, or unreadable). */
  primary: PrimaryRecord | null;
}

const NO_ROLES: NodeRoles = { coordinators: [], primary: null };

function nodeJson(node: LiveNode, queue: readonly LockEntry[], deadAfter: number, nowMs: number, roles: NodeRoles) {
  return {
    name: node.name,
    role: nodeRole(node.name, roles.coordinators, roles.primary),
    alive: node.alive,
    keepalive: keepaliveOf(node, deadAfter, nowMs) ?? null,
    spec: node.spec?.value ?? null,
    status: node.status?.value ?? null,
    flushLock: flushLockOf(node.name, queue),
    ...invalidJson(node.invalidSpec),
  };
}

export function printNodes(
  nodes: readonly LiveNode[],
  format: OutputFormat,
  flushQueue: readonly LockEntry[] = [],
  deadAfter = defaultClusterConfig().keepaliveDeadAfterMs,
  nowMs = Date.now(),
  roles: NodeRoles = NO_ROLES,
  config?: ClusterConfig,
): void {
  if (structured(format, nodes.map((n) => nodeJson(n, flushQueue, deadAfter, nowMs, roles)))) return;
  // ROLE, BGP (and in wide FRR), FENCE, then FLUSH last: the flush lock queue and progress (columns before it keep their places).
  const headers = ['NAME', 'ALIVE', 'SPEC', 'DOMAIN', 'DAEMON', 'VMS', 'LOAD', 'FREE_MIB', 'PROV_MIB', 'TOTAL_MIB'];
  if (format === 'wide') headers.push('VCPUS', 'KEEPALIVE', 'VERSION');
  headers.push('ROLE', 'BGP');
  if (format === 'wide') headers.push('FRR');
  headers.push('FENCE', 'FLUSH');
  const rows = nodes.map((node): string[] | NoteRow => {
    if (node.invalidSpec) return { cells: [node.name, node.alive ? 'yes' : 'no'], note: invalidNote(node.invalidSpec) };
    const s = node.status?.value;
    const row = [
      node.name,
      aliveCell(node, deadAfter, nowMs),
      node.spec?.value.domainState ?? 'ready',
      orDash(s?.domainState),
      orDash(s?.daemonState),
      orDash(s?.runningVms.length),
      orDash(s?.load.toFixed(2)),
      orDash(s?.memory.freeMiB),
      orDash(s?.memory.provisionedMiB),
      orDash(s?.memory.totalMiB),
    ];
    if (format === 'wide') row.push(s ? `${s.vcpus.allocated}/${s.vcpus.total}` : '-', orDash(keepaliveOf(node, deadAfter, nowMs)?.at), orDash(s?.version));
    row.push(orDash(nodeRole(node.name, roles.coordinators, roles.primary, format === 'wide')), bgpCell(node));
    if (format === 'wide') row.push(frrCell(node));
    row.push(fenceCell(s?.fence), flushCell(node, flushQueue));
    return row;
  });
  println(table(headers, rows));
  // Maintenance changes what a lost node means: said under the table, where FENCE is read.
  const note = config && maintenanceNote(config);
  if (note) println(`\n${note}`);
}

// ----------------------------------------------------------------------------------- networks

const usersOf = networkUsers;

/** READY: on how many of the cluster's nodes the network is ready for its current spec ("?" when its status cannot be read). */
function readyCell(n: LiveNetwork, nodes: readonly string[]): string {
  const { ready, total } = networkReadiness(n, nodes);
  return n.statusProblem !== undefined ? colors.red(`?/${total}`) : `${ready}/${total}`;
}

/** LEASES: the DHCP leases of a managed network with a dhcp4 range ('-' for other networks, unless some are left over). */
function leasesCell(n: LiveNetwork): string {
  const spec = n.spec?.value;
  if (spec?.type === 'managed' && spec.dhcp4) return String(n.leases ?? 0);
  return n.leases ? String(n.leases) : '-';
}

function networkJson(n: LiveNetwork, vms: readonly LiveVm[], nodes: readonly string[]) {
  const readiness = networkReadiness(n, nodes);
  return {
    vni: n.vni,
    bridge: bridgeName(n.vni),
    spec: n.spec?.value ?? null,
    generation: n.spec?.version ?? null,
    vms: usersOf(n.vni, vms),
    leases: n.leases ?? null,
    status: n.status?.value ?? null,
    ...(n.statusProblem !== undefined && { statusProblem: n.statusProblem }),
    ready: { ready: readiness.ready, nodes: readiness.total, byNode: Object.fromEntries(readiness.nodes.map((v) => [v.node, v.state])) },
    ...invalidJson(n.invalidSpec),
  };
}

export function printNetworks(networks: readonly LiveNetwork[], vms: readonly LiveVm[], nodes: readonly string[], format: OutputFormat): void {
  if (structured(format, networks.map((n) => networkJson(n, vms, nodes)))) return;
  // DESCRIPTION stays last of the narrow table: it is free text.
  const headers = ['VNI', 'TYPE', 'MTU', 'BRIDGE', 'READY', 'LEASES', 'DESCRIPTION'];
  if (format === 'wide') headers.push('GATEWAY4', 'GATEWAY6', 'DHCP4', 'VMS');
  const rows = networks.map((n): string[] | NoteRow => {
    if (!n.spec) return { cells: [n.vni], note: n.invalidSpec ? invalidNote(n.invalidSpec) : '-' };
    const spec = n.spec.value;
    const row = [n.vni, spec.type, String(spec.mtu), bridgeName(n.vni), readyCell(n, nodes), leasesCell(n), orDash(spec.description)];
    if (format === 'wide') {
      row.push(orDash(spec.gateway4), orDash(spec.gateway6), spec.dhcp4 ? `${spec.dhcp4.start}-${spec.dhcp4.end}` : '-', orDash(usersOf(n.vni, vms).join(',')));
    }
    return row;
  });
  println(table(headers, rows));
}

// ---------------------------------------------------------------------------------------- get

const RESOURCES: Record<string, 'vms' | 'nodes' | 'networks'> = {
  vm: 'vms',
  vms: 'vms',
  node: 'nodes',
  nodes: 'nodes',
  network: 'networks',
  networks: 'networks',
  net: 'networks',
};

function pick<T>(list: readonly T[], names: readonly string[], nameOf: (t: T) => string, kind: string): T[] {
  if (names.length === 0) return [...list];
  const missing = names.filter((n) => !list.some((t) => nameOf(t) === n));
  if (missing.length > 0) throw new CliError(`${kind} not found: ${missing.join(', ')}`);
  return list.filter((t) => names.includes(nameOf(t)));
}

/** What `vk get nodes` shows, read. */
export async function readNodesView(store: ZkStore, paths: ZkPaths) {
  const [nodes, queue, config, primary] = await Promise.all([
    readAllNodes(store, paths),
    readLockQueue(store, paths.lock(FLUSH_LOCK)),
    configForViews(store, paths),
    readPrimary(store, paths),
  ]);
  const roles: NodeRoles = { coordinators: config.coordinators, primary: primary.znode?.value ?? null };
  return { nodes, queue, config, roles };
}

/** The nodes as `vk get nodes -o json` prints them (and the REST API returns them). */
export async function nodeViews(store: ZkStore, paths: ZkPaths) {
  const { nodes, queue, config, roles } = await readNodesView(store, paths);
  const now = Date.now();
  return nodes.map((n) => nodeJson(n, queue, config.keepaliveDeadAfterMs, now, roles));
}

/** What `vk get networks` shows, read. */
export async function readNetworksView(store: ZkStore, paths: ZkPaths) {
  const [networks, vms, nodes] = await Promise.all([readAllNetworks(store, paths, { status: true, leases: true }), readAllVms(store, paths), listNodeNames(store, paths)]);
  return { networks, vms, nodes };
}

/** The networks as `vk get networks -o json` prints them (and the REST API returns them). */
export async function networkViews(store: ZkStore, paths: ZkPaths) {
  const { networks, vms, nodes } = await readNetworksView(store, paths);
  return networks.map((n) => networkJson(n, vms, nodes));
}

function registerGet(program: Command): void {
  program
    .command('get')
    .description('list VMs, nodes or networks')
    .addArgument(new Argument('<resource>', 'vms, nodes or networks').choices(Object.keys(RESOURCES)))
    .argument('[names...]', 'only these objects')
    .addOption(outputOption())
    .action(async (resource: string, names: string[], flags: GetFlags, cmd: Command) => {
      const kind = RESOURCES[resource]!;
      const format = flags.output ?? 'table';
      await withCluster(cmd, async ({ store, paths }) => {
        switch (kind) {
          case 'vms': {
            const [vms, networks] = await Promise.all([readAllVms(store, paths, { status: true, migration: true }), readAllNetworks(store, paths)]);
            printVms(pick(vms, names, (v) => v.name, 'vm'), networks, format);
            return;
          }
          case 'nodes': {
            const { nodes, queue, config, roles } = await readNodesView(store, paths);
            printNodes(pick(nodes, names, (n) => n.name, 'node'), format, queue, config.keepaliveDeadAfterMs, Date.now(), roles, config);
            return;
          }
          case 'networks': {
            const { networks, vms, nodes } = await readNetworksView(store, paths);
            printNetworks(pick(networks, names, (n) => n.vni, 'network'), vms, nodes, format);
            return;
          }
        }
      });
    });
}

// ----------------------------------------------------------------------------------- describe

function field(label: string, value: unknown): string {
  return `${`${label}:`.padEnd(22)}${value === undefined || value === null || value === '' ? '-' : String(value)}`;
}

function conditionsBlock(conditions: readonly Condition[]): string[] {
  if (conditions.length === 0) return ['Conditions:            -'];
  return [
    'Conditions:',
    indent(
      table(
        ['TYPE', 'STATUS', 'REASON', 'LAST TRANSITION', 'MESSAGE'],
        conditions.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime, c.message.replace(/\n/g, ' ')]),
      ),
    ),
  ];
}

async function describeVm(cmd: Command, name: string): Promise<void> {
  await withCluster(cmd, async ({ store, paths }) => {
    const [vm, networks] = await Promise.all([readVmOrFail(store, paths, name, { status: true, migration: true, console: true, rbd: true }), readAllNetworks(store, paths)]);
    const spec = vm.spec?.value;
    const info = vm.xml?.info ?? null;
    const { vnis, invalid } = vmNetworks(info, new Set(networks.map((n) => n.vni)));
    const lines = [
      field('Name', vm.name),
      field('UUID', info?.uuid),
      field('Domain type', info?.type),
      field('Memory', info ? `${Math.round(info.memoryKiB / 1024)} MiB` : undefined),
      field('vCPUs', info?.vcpus),
      field('Networks', [...vnis.map((v) => `${v} (${bridgeName(v)})`), ...invalid.map((b) => `${b} (invalid: no such network)`)].join(', ')),
      field('RBD disks', spec?.rbd.join(', ')),
      field('Generation', vm.spec?.version),
    ];
    if (!vm.xml) lines.push(field('XML problem', 'no xml znode'));
    else if (vm.xml.problem) lines.push(field('XML problem', vm.xml.problem));
    if (vm.invalidSpec) lines.push(...invalidLines(vm.invalidSpec, 'repair it with vk apply, or delete it with vk vm remove --force'));
    else lines.push('Spec:', indent(toYaml(spec)));
    const status = vm.status?.value;
    if (status) {
      lines.push(
        'Status:',
        indent(
          [
            field('Phase', status.phase),
            field('Node', status.node),
            field('Domain state', status.domainState),
            field('Observed generation', status.observedGeneration),
            field('Restarted at', status.restartedAt),
            field('Crashes', status.crash ? `${status.crash.count} (last ${status.crash.lastAt})` : undefined),
            field('Updated at', status.updatedAt),
          ].join('\n'),
        ),
        ...conditionsBlock(status.conditions),
      );
    } else {
      lines.push(field('Status', vm.statusProblem ? `invalid: ${vm.statusProblem}` : 'none yet (no node has reported on it)'));
    }
    const m = vm.migration?.value;
    if (m) {
      lines.push(
        'Migration:',
        indent(
          [
            field('Id', m.id),
            field('Route', `${m.source} → ${m.target}`),
            field('Method', m.method),
            field('Phase', m.phase),
            field('Started at', m.startedAt),
            field(
              'Progress',
              m.progress ? `${m.progress.processedBytes} bytes copied, ${m.progress.remainingBytes} remaining, ${m.progress.bandwidthBps} B/s` : undefined,
            ),
            field('Reason', m.reason ? `${m.reason}: ${m.message ?? ''}` : undefined),
          ].join('\n'),
        ),
      );
    } else {
      lines.push(field('Migration', 'none'));
    }
    if (spec && spec.rbd.length > 0) lines.push(...rbdBlock(vm.rbd?.value));
    const consoleLines = vm.console ? (vm.console.text === '' ? [] : vm.console.text.split('\n')).slice(-10) : [];
    if (consoleLines.length > 0) lines.push('Console (last 10 lines):', ...consoleLines.map((l) => `  ${l}`));
    else lines.push(field('Console', 'no log'));
    println(lines.join('\n'));
  });
}

/** describe vm's RBD block: the last lock check of its node (/vms/<name>/rbd) and the last flush-locks. */
function rbdBlock(check: RbdCheck | undefined): string[] {
  if (!check) return [field('RBD locks', 'not checked (its node checks them before a start; the RBD concern may be off there)')];
  const locks = check.images.flatMap((i) => (i.locks.length === 0 ? [[i.image, '-', '-', '-']] : i.locks.map((l) => [i.image, l.node ?? '?', l.locker, l.address])));
  const lines = [
    'RBD locks:',
    indent(
      [
        field('Checked by', `${check.node} at ${check.checkedAt} (${check.purpose === 'start' ? 'before a start' : `incoming migration ${check.migration} from ${check.source}`})`),
        field('Verdict', check.reason ? `${check.verdict} (${check.reason})` : check.verdict),
        field('Message', check.message === undefined ? undefined : oneLine(check.message)),
        ...(check.removed.length > 0 ? [field('Stale locks removed', check.removed.map((l) => `${l.image} ${l.locker} ${l.address}`).join(', '))] : []),
        ...(check.flushLocks ? [field('Last flush-locks', `${check.flushLocks.at}: ${check.flushLocks.result}, ${oneLine(check.flushLocks.message)}`)] : []),
      ].join('\n'),
    ),
    indent(table(['IMAGE', 'NODE', 'LOCKER', 'ADDRESS'], locks)),
  ];
  return lines;
}

/** One line of text for a table cell or a field (FRR's messages may hold newlines). */
function oneLine(text: string): string {
  return text.replace(/\n/g, ' ');
}

/** describe node's FRR block: the concern's state, BGP sessions and the VNIs EVPN knows (status.frr). */
function frrBlock(frr: NodeFrr | undefined): string[] {
  if (!frr) return [field('FRR', 'not reported (no bgp in the cluster config, or a daemon without the FRR concern)')];
  const drift = frr.lastDrift;
  const lines = [
    field('State', frr.state),
    field('Message', frr.message === undefined ? undefined : oneLine(frr.message)),
    field('ASN', frr.asn),
    field('Router ID', frr.routerId),
    field('Reloads', frr.reloads),
    field('Last reload at', frr.lastReloadAt),
    field('Last drift', drift ? `${drift.at} (${drift.lines.length} line${drift.lines.length === 1 ? '' : 's'})` : 'none seen'),
    ...(drift ? drift.lines.map((l) => `  ${l}`.trimEnd()) : []),
    field('Updated at', frr.updatedAt),
  ];
  if (frr.peers.length === 0) lines.push(field('Peers', 'none'));
  else {
    lines.push(
      `Peers (${establishedPeers(frr)}/${frr.peers.length} established):`,
      indent(table(['PEER', 'NODE', 'STATE', 'PREFIXES'], frr.peers.map((p) => [p.address, orDash(p.node), p.state, String(p.prefixesReceived)]))),
    );
  }
  if (frr.vnis.length === 0) lines.push(field('VNIs', 'none'));
  else lines.push('VNIs:', indent(table(['VNI', 'REMOTE VTEPS'], frr.vnis.map((v) => [String(v.vni), orDash(v.remoteVteps.join(','))]))));
  return ['FRR:', indent(lines.join('\n'))];
}

/** describe node's Role: its ROLE cell, with the hand-over or pending request it takes part in. */
function roleText(name: string, config: ClusterConfig, primary: LivePrimary): string {
  const record = primary.znode?.value ?? null;
  const role = nodeRole(name, config.coordinators, record);
  if (role === null) return '-';
  if (!record) return primary.problem !== undefined ? `${role} (/config/primary cannot be read: ${primary.problem.replace(/\n/g, ' ')})` : role;
  const notes: string[] = [];
  if (role !== 'coordinator' && role !== 'primary') notes.push(`hand-over in phase ${record.phase} since ${record.since}: ${phaseText(record)}`);
  else if (role === 'primary') notes.push(`term ${record.term}, since ${record.since}`);
  if (record.request && (record.request.to === name || record.node === name)) notes.push(`hand-over to ${record.request.to} requested at ${record.request.at}`);
  return notes.length > 0 ? `${role} (${notes.join('; ')})` : role;
}

async function describeNode(cmd: Command, name: string): Promise<void> {
  await withCluster(cmd, async ({ store, paths }) => {
    const [node, vms, config, primary] = await Promise.all([readNode(store, paths, name), readAllVms(store, paths, { status: true }), configForViews(store, paths), readPrimary(store, paths)]);
    if (!node.parent) throw new CliError(`node ${name} not found`);
    const fenceSettings = await readFenceSettings(store, paths, name);
    const deadAfter = config.keepaliveDeadAfterMs;
    const s = node.status?.value;
    const keepalive = keepaliveOf(node, deadAfter, Date.now());
    const alive = node.alive ? (keepalive?.stale ? 'stale (its daemon holds a session, but its keepalive is old)' : 'yes (its daemon holds a session)') : 'no';
    const lines = [
      field('Name', name),
      field('Alive', alive),
      // What the cluster config says of this node.
      field('Coordinator', config.coordinators.includes(name) ? (config.bgp ? 'yes (a BGP route reflector)' : 'yes') : 'no'),
      field('Role', roleText(name, config, primary)),
      field('Cluster address', config.nodes?.[name]?.clusterAddress ?? (config.bgp ? 'none: not in the cluster config\'s nodes (no BGP peering with the coordinators)' : undefined)),
    ];
    if (node.invalidSpec) lines.push(...invalidLines(node.invalidSpec, 'vk node flush or vk node ready rewrites it'));
    else lines.push(field('Spec domain state', node.spec?.value.domainState ?? 'ready (default)'));
    if (s) {
      lines.push(
        'Status:',
        indent(
          [
            field('Daemon state', s.daemonState),
            field('Domain state', s.domainState),
            field('Memory (MiB)', `total ${s.memory.totalMiB}, used ${s.memory.usedMiB}, free ${s.memory.freeMiB}, allocated ${s.memory.allocatedMiB}, provisioned ${s.memory.provisionedMiB}`),
            field('vCPUs', `${s.vcpus.allocated} allocated of ${s.vcpus.total}`),
            field('Load', s.load),
            field('Running VMs', s.runningVms.join(', ')),
            field(
              'Keepalive at',
              keepalive
                ? `${keepalive.at} (${Math.round(keepalive.ageMs / 1000)} s ago${keepalive.stale ? `, STALE: older than keepaliveDeadAfterMs ${deadAfter}` : ''})`
                : s.keepaliveAt,
            ),
            field('Version', s.version),
            field('Observed generation', s.observedGeneration),
          ].join('\n'),
        ),
        ...conditionsBlock(s.conditions),
        ...frrBlock(s.frr),
        field(
          'Storage',
          s.storage ? `${s.storage.address}, Ceph ${s.storage.reachable ? 'reachable' : `UNREACHABLE${s.storage.message ? `: ${oneLine(s.storage.message)}` : ''}`} (since ${s.storage.checkedAt})` : 'not reported (the RBD concern is off on this node)',
        ),
      );
    } else {
      lines.push(field('Status', node.statusProblem ? `invalid: ${node.statusProblem}` : 'none yet'));
    }
    lines.push(...fenceBlock(name, s?.fence, fenceSettings, config));
    const assigned = vms.filter((vm) => vm.spec?.value.node === name).map((vm) => vm.name);
    const migratedAway = vms.filter((vm) => vm.spec?.value.previousNode === name).map((vm) => vm.name);
    lines.push(field('VMs assigned', assigned.join(', ')), field('VMs migrated away', migratedAway.join(', ')));
    println(lines.join('\n'));
  });
}

const NODE_STATE_TEXT = { ready: 'ready', notReady: 'not ready', pending: 'pending' } as const;

/** describe network's per-node block: every node of the cluster, ready or not, with the reason its daemon gave. */
function networkNodesBlock(network: LiveNetwork, nodes: readonly string[]): string[] {
  if (network.statusProblem !== undefined) {
    return [field('Nodes', `unknown: the status znode cannot be read (${network.statusProblem.replace(/\n/g, ' ')})`)];
  }
  const readiness = networkReadiness(network, nodes);
  const head = field('Ready', `${readiness.ready}/${readiness.total} nodes`);
  if (readiness.nodes.length === 0) return [head, field('Nodes', 'none in the cluster')];
  const generation = network.spec?.version;
  const rows = readiness.nodes.map((v) => {
    const e = v.entry;
    let state: string = NODE_STATE_TEXT[v.state];
    let message = e?.message ?? '';
    if (!e) message = 'no report from this node yet';
    else if (v.state === 'pending') message = `reported on generation ${e.observedGeneration}, the spec is at ${generation ?? '?'}${message ? `; ${message}` : ''}`;
    if (!v.member) state += ' (not a node of the cluster)';
    return [v.node, state, orDash(e?.reason), e ? String(e.observedGeneration) : '-', orDash(e?.updatedAt), orDash(message.replace(/\n/g, ' '))];
  });
  return [head, 'Nodes:', indent(table(['NODE', 'STATE', 'REASON', 'OBSERVED', 'UPDATED', 'MESSAGE'], rows))];
}

/** How many leases describe network lists (the count is always the whole number). */
export const LEASES_SHOWN = 20;

/**
 * describe network's gateway block, for a managed network with gateway4: its address, virtual MAC
 * and who holds it (from /config/primary), then its DHCP leases (the first LEASES_SHOWN by address).
 */
async function gatewayBlock(store: ZkStore, paths: ZkPaths, network: LiveNetwork): Promise<string[]> {
  const spec = network.spec?.value;
  const vni = network.vni;
  if (!spec || spec.type !== 'managed' || spec.gateway4 === undefined) {
    // Leases left over under a network that has no gateway (any more) still show as a count.
    const count = await countLeases(store, paths, vni);
    return count > 0 ? [field('DHCP leases', `${count} (left over: the network has no gateway4)`)] : [];
  }
  const [primary, leases] = await Promise.all([readPrimary(store, paths), readLeases(store, paths, vni)]);
  const lines = [
    'Gateway:',
    indent(
      [
        field('Address', spec.gateway4),
        field('Virtual MAC', gatewayMac(Number(vni))),
        field('Held by', gatewayHolders(primary)),
        field('DNS domain', spec.domain),
      ].join('\n'),
    ),
  ];
  const range = spec.dhcp4 ? `range ${spec.dhcp4.start}-${spec.dhcp4.end}` : 'no dhcp4 range';
  lines.push(field('DHCP leases', `${leases.length} (${range})`));
  if (leases.length > 0) {
    const now = Date.now();
    const rows = leases.slice(0, LEASES_SHOWN).map((e) =>
      'lease' in e ? [e.mac, e.lease.ip, orDash(e.lease.hostname), leaseExpiry(e.lease.expires, now), e.lease.node] : [e.mac, '?', '-', '-', colors.red(`unreadable: ${e.problem.replace(/\n/g, ' ')}`)],
    );
    lines.push(indent(table(['MAC', 'IP', 'HOSTNAME', 'EXPIRES', 'BY'], rows)));
    if (leases.length > LEASES_SHOWN) lines.push(`  … and ${leases.length - LEASES_SHOWN} more`);
  }
  return lines;
}

async function describeNetwork(cmd: Command, vni: string): Promise<void> {
  await withCluster(cmd, async ({ store, paths }) => {
    let network: LiveNetwork;
    try {
      network = await readNetwork(store, paths, vni, { status: true });
    } catch (error) {
      if (error instanceof Error && error.name === 'ValidationError') throw usageError(error.message);
      throw error;
    }
    if (!network.spec && !network.invalidSpec) throw new CliError(`network ${vni} not found`);
    const [vms, nodes, gateway] = await Promise.all([readAllVms(store, paths), listNodeNames(store, paths), gatewayBlock(store, paths, network)]);
    const spec = network.spec ? [field('Generation', network.spec.version), 'Spec:', indent(toYaml(network.spec.value))] : invalidLines(network.invalidSpec!, 'repair it with vk apply, or delete it with vk network remove');
    println([field('VNI', vni), field('Bridge', bridgeName(vni)), ...spec, field('VMs', usersOf(vni, vms).join(', ')), ...networkNodesBlock(network, nodes), ...gateway].join('\n'));
  });
}

function registerDescribe(program: Command): void {
  program
    .command('describe')
    .description('show everything about one VM, node or network (spec, status, conditions, migration, console)')
    .addArgument(new Argument('<resource>', 'vm, node or network').choices(Object.keys(RESOURCES)))
    .argument('<name>', 'VM name, node name or network VNI')
    .action(async (resource: string, name: string, _flags: unknown, cmd: Command) => {
      switch (RESOURCES[resource]) {
        case 'vms':
          return describeVm(cmd, name);
        case 'nodes':
          return describeNode(cmd, name);
        default:
          return describeNetwork(cmd, name);
      }
    });
}

export function registerInspect(program: Command): void {
  registerGet(program);
  registerDescribe(program);
}
