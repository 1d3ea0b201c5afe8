// Reading the cluster's objects from ZooKeeper, decoded. Only a foreign writer can put a spec that
// does not decode into ZooKeeper; such a spec is kept as an InvalidZnode (raw bytes and the reason)
// next to a null spec, so listings show the object with the reason and `vk apply`, `vk vm remove
// --force` and `vk node flush|ready` can repair it. Statuses and migration records that do not
// decode are reported as absent with the problem kept. Only the cluster config is still strict.
import { ConnectionLossError, SessionExpiredError, ZkError, type ZkStat, type ZkStore } from '../drivers/zk/index.ts';
import {
  decodeClusterConfig,
  decodeMigrationRecord,
  decodeNetworkSpec,
  decodeRbdCheck,
  decodeNetworkStatus,
  decodeNodeSpec,
  decodeNodeLease,
  decodeNodeStatus,
  decodeVmSpec,
  decodeVmStatus,
  defaultClusterConfig,
  isValidName,
  isValidVni,
  parseDomainXml,
  ValidationError,
  type ClusterConfig,
  type DomainInfo,
  type MigrationRecord,
  type RbdCheck,
  type NetworkSpec,
  type NetworkStatus,
  type NodeSpec,
  type NodeStatus,
  type VmSpec,
  type VmStatus,
  type ZkPaths,
} from '../schemas/index.ts';
import { CliError } from './errors.ts';
import { NotFoundError, RefusedError } from '../core/errors.ts';
import { aliveTakesLiveMigration } from '../reconcilers/selectors.ts';

/**
 * Bridge naming convention: the bridge of network <VNI> is `vkbr<VNI>` (at most 12 characters, within
 * Linux's 15). A VM's `<interface type='bridge'><source bridge='vkbr100'/>` attaches it to network 100.
 */
export const BRIDGE_PREFIX = 'vkbr';

export function bridgeName(vni: string | number): string {
  return `${BRIDGE_PREFIX}${vni}`;
}

/** The VNI a bridge name refers to under the convention, or undefined. */
export function vniOfBridge(bridge: string): string | undefined {
  if (!bridge.startsWith(BRIDGE_PREFIX)) return undefined;
  const vni = bridge.slice(BRIDGE_PREFIX.length);
  return isValidVni(vni) ? vni : undefined;
}

export interface Znode<T> {
  value: T;
  raw: Buffer;
  version: number;
  stat: ZkStat;
}

/** A znode whose value does not decode: what it holds and why it cannot be read. */
export interface InvalidZnode {
  path: string;
  raw: Buffer;
  version: number;
  stat: ZkStat;
  problem: string;
}

/** The spec znode an object was read with, readable or not (for CAS writes that replace it). */
export function specVersion(object: { spec: { version: number } | null; invalidSpec?: InvalidZnode | undefined }): number | undefined {
  return object.spec?.version ?? object.invalidSpec?.version;
}

/** One line saying why an object's spec cannot be read and how to repair it. */
export function unreadableSpec(what: string, invalid: InvalidZnode, repair: string): CliError {
  return new RefusedError(`${what}: its spec ${invalid.path} cannot be read (${invalid.problem}); ${repair}`);
}

export interface XmlZnode {
  text: string;
  version: number;
  stat: ZkStat;
  /** null when the stored XML does not parse (problem says why); both parsed on first use. */
  readonly info: DomainInfo | null;
  readonly problem?: string | undefined;
}

/** A VM as read from ZooKeeper: its znodes, decoded (not to be confused with schemas' VmState, the desired run state). */
export interface LiveVm {
  name: string;
  /** Stat of /vms/<name>; null when the VM does not exist at all. */
  parent: ZkStat | null;
  spec: Znode<VmSpec> | null;
  /** Set when the spec znode exists but does not decode (spec is null then). */
  invalidSpec?: InvalidZnode;
  xml: XmlZnode | null;
  status: Znode<VmStatus> | null;
  statusProblem?: string;
  migration: Znode<MigrationRecord> | null;
  /** Console text (lines joined by '\n'), when asked for. */
  console?: { text: string; version: number } | null;
  /** The RBD concern's last check of its locks, when asked for (null: none, or unreadable). */
  rbd?: Znode<RbdCheck> | null;
}

function decodeStrict<T>(path: string, raw: Buffer, decode: (v: unknown) => T): T {
  try {
    return decode(raw);
  } catch (error) {
    if (error instanceof ValidationError) throw new CliError(`${path} in ZooKeeper is invalid: ${error.message}`);
    throw error;
  }
}

/** Decodes a spec znode; one that does not decode comes back as an InvalidZnode. */
function decodeSpec<T>(path: string, node: { data: Buffer; version: number; stat: ZkStat }, decode: (v: unknown) => T): { spec: Znode<T> } | { invalidSpec: InvalidZnode } {
  const decoded = decodeLenient(node.data, decode);
  if ('value' in decoded) return { spec: { value: decoded.value, raw: node.data, version: node.version, stat: node.stat } };
  return { invalidSpec: { path, raw: node.data, version: node.version, stat: node.stat, problem: decoded.problem } };
}

function decodeLenient<T>(raw: Buffer, decode: (v: unknown) => T): { value: T } | { problem: string } {
  try {
    return { value: decode(raw) };
  } catch (error) {
    if (error instanceof ValidationError) return { problem: error.message };
    throw error;
  }
}

export interface VmReadParts {
  status?: boolean;
  migration?: boolean;
  console?: boolean;
  rbd?: boolean;
}

/** The XML znode, parsed on first use of info or problem: `vk get vms` needs neither. */
function xmlZnode(text: string, version: number, stat: ZkStat): XmlZnode {
  let parsed: { info: DomainInfo | null; problem?: string } | undefined;
  const parse = (): { info: DomainInfo | null; problem?: string } => {
    if (parsed) return parsed;
    try {
      parsed = { info: parseDomainXml(text) };
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      parsed = { info: null, problem: error.message };
    }
    return parsed;
  };
  return {
    text,
    version,
    stat,
    get info() {
      return parse().info;
    },
    get problem() {
      return parse().problem;
    },
  };
}

export async function readVm(store: ZkStore, paths: ZkPaths, name: string, parts: VmReadParts = {}): Promise<LiveVm> {
  const [parent, spec, xml, status, migration, consoleNode, rbd] = await Promise.all([
    store.exists(paths.vm(name)),
    store.get(paths.vmSpec(name)),
    store.get(paths.vmXml(name)),
    parts.status ? store.get(paths.vmStatus(name)) : null,
    parts.migration ? store.get(paths.vmMigration(name)) : null,
    parts.console ? store.get(paths.vmConsole(name)) : null,
    parts.rbd ? store.get(paths.vmRbd(name)) : null,
  ]);
  const vm: LiveVm = { name, parent, spec: null, xml: null, status: null, migration: null };
  if (spec) Object.assign(vm, decodeSpec(paths.vmSpec(name), spec, (v) => decodeVmSpec(v)));
  if (xml) vm.xml = xmlZnode(xml.data.toString('utf8'), xml.version, xml.stat);
  if (status) {
    const decoded = decodeLenient(status.data, (v) => decodeVmStatus(v));
    if ('value' in decoded) vm.status = { value: decoded.value, raw: status.data, version: status.version, stat: status.stat };
    else vm.statusProblem = decoded.problem;
  }
  if (migration) {
    const decoded = decodeLenient(migration.data, (v) => decodeMigrationRecord(v));
    if ('value' in decoded) vm.migration = { value: decoded.value, raw: migration.data, version: migration.version, stat: migration.stat };
  }
  if (parts.console) vm.console = consoleNode ? { text: consoleNode.data.toString('utf8'), version: consoleNode.version } : null;
  if (parts.rbd) {
    const decoded = rbd ? decodeLenient(rbd.data, (v) => decodeRbdCheck(v)) : null;
    vm.rbd = rbd && decoded && 'value' in decoded ? { value: decoded.value, raw: rbd.data, version: rbd.version, stat: rbd.stat } : null;
  }
  return vm;
}

/** Reads a VM that must exist (it has a spec), readable or not. */
export async function readVmOrFail(store: ZkStore, paths: ZkPaths, name: string, parts: VmReadParts = {}): Promise<LiveVm> {
  const vm = await readVm(store, paths, name, parts);
  if (!vm.spec && !vm.invalidSpec) throw new NotFoundError(`vm ${name} not found`);
  return vm;
}

/** Reads a VM that must exist and whose spec must be readable. */
export async function readExistingVm(store: ZkStore, paths: ZkPaths, name: string, parts: VmReadParts = {}): Promise<LiveVm & { spec: Znode<VmSpec> }> {
  const vm = await readVmOrFail(store, paths, name, parts);
  if (vm.invalidSpec) throw unreadableSpec(`vm ${name}`, vm.invalidSpec, 'repair it with vk apply, or delete it with vk vm remove --force');
  return vm as LiveVm & { spec: Znode<VmSpec> };
}

async function childNames(store: ZkStore, path: string, valid: (n: string) => boolean): Promise<string[]> {
  return ((await store.children(path)) ?? []).filter(valid).sort();
}

export async function listVmNames(store: ZkStore, paths: ZkPaths): Promise<string[]> {
  return childNames(store, paths.vms, isValidName);
}

/** Every VM that has a spec znode (readable, or with invalidSpec set). */
export async function readAllVms(store: ZkStore, paths: ZkPaths, parts: VmReadParts = {}): Promise<LiveVm[]> {
  const names = await listVmNames(store, paths);
  const vms = await Promise.all(names.map((n) => readVm(store, paths, n, parts)));
  return vms.filter((vm) => vm.spec !== null || vm.invalidSpec !== undefined);
}

/** A node as read from ZooKeeper: its znodes, decoded, and whether its daemon is alive. */
export interface LiveNode {
  name: string;
  parent: ZkStat | null;
  spec: Znode<NodeSpec> | null;
  /** Set when the spec znode exists but does not decode (spec is null then). */
  invalidSpec?: InvalidZnode;
  status: Znode<NodeStatus> | null;
  statusProblem?: string;
  /** The daemon holds a session (the ephemeral alive znode exists). */
  alive: boolean;
  /** Its alive znode publishes a migration URI: it takes live migrations. */
  liveMigration: boolean;
  /** The keepalive's last lease renewal (its node's clock); absent before the first or when unreadable. */
  leaseRenewedAt?: string;
}

export async function readNode(store: ZkStore, paths: ZkPaths, name: string): Promise<LiveNode> {
  const [parent, spec, status, alive, lease] = await Promise.all([
    store.exists(paths.node(name)),
    store.get(paths.nodeSpec(name)),
    store.get(paths.nodeStatus(name)),
    store.get(paths.nodeAlive(name)),
    store.get(paths.nodeLease(name)),
  ]);
  const node: LiveNode = { name, parent, spec: null, status: null, alive: alive !== null, liveMigration: alive !== null && aliveTakesLiveMigration(alive.data.toString('utf8')) };
  if (lease) {
    const decoded = decodeLenient(lease.data, (v) => decodeNodeLease(v));
    if ('value' in decoded) node.leaseRenewedAt = decoded.value.renewedAt;
  }
  if (spec) Object.assign(node, decodeSpec(paths.nodeSpec(name), spec, (v) => decodeNodeSpec(v)));
  if (status) {
    const decoded = decodeLenient(status.data, (v) => decodeNodeStatus(v));
    if ('value' in decoded) node.status = { value: decoded.value, raw: status.data, version: status.version, stat: status.stat };
    else node.statusProblem = decoded.problem;
  }
  return node;
}

/** The nodes ZooKeeper knows (a /nodes/<name> znode each), sorted. */
export async function listNodeNames(store: ZkStore, paths: ZkPaths): Promise<string[]> {
  return childNames(store, paths.nodes, isValidName);
}

export async function readAllNodes(store: ZkStore, paths: ZkPaths): Promise<LiveNode[]> {
  const names = await listNodeNames(store, paths);
  return Promise.all(names.map((n) => readNode(store, paths, n)));
}

/** A network as read from ZooKeeper: its znodes, decoded. */
export interface LiveNetwork {
  vni: string;
  parent: ZkStat | null;
  spec: Znode<NetworkSpec> | null;
  /** Set when the spec znode exists but does not decode (spec is null then). */
  invalidSpec?: InvalidZnode;
  /** /networks/<vni>/status (the nodes' daemons write it), when asked for and readable. */
  status?: Znode<NetworkStatus> | null;
  /** Why the status znode could not be read or decoded (status is null then). */
  statusProblem?: string;
  /** How many DHCP leases the primary keeps under /networks/<vni>/leases, when asked for. */
  leases?: number;
}

export interface NetworkReadParts {
  status?: boolean;
  /** Count the leases (the children of the leases znode; a listing never reads them). */
  leases?: boolean;
}

/** Reads a znode the daemons write; a failure to read it is a problem to report, not an error. */
async function getLenient(store: ZkStore, path: string): Promise<{ node: { data: Buffer; version: number; stat: ZkStat } | null } | { problem: string }> {
  try {
    return { node: await store.get(path) };
  } catch (error) {
    if (error instanceof ZkError && !(error instanceof ConnectionLossError) && !(error instanceof SessionExpiredError)) return { problem: error.message };
    throw error;
  }
}

export async function readNetwork(store: ZkStore, paths: ZkPaths, vni: string, parts: NetworkReadParts = {}): Promise<LiveNetwork> {
  const [parent, spec, status, leases] = await Promise.all([
    store.exists(paths.network(vni)),
    store.get(paths.networkSpec(vni)),
    parts.status ? getLenient(store, paths.networkStatus(vni)) : null,
    parts.leases ? store.exists(paths.networkLeases(vni)) : null,
  ]);
  const network: LiveNetwork = { vni, parent, spec: null };
  if (parts.leases) network.leases = leases?.numChildren ?? 0;
  if (spec) Object.assign(network, decodeSpec(paths.networkSpec(vni), spec, (v) => decodeNetworkSpec(v)));
  if (status) {
    network.status = null;
    if ('problem' in status) network.statusProblem = status.problem;
    else if (status.node) {
      const node = status.node;
      const decoded = decodeLenient(node.data, (v) => decodeNetworkStatus(v));
      if ('value' in decoded) network.status = { value: decoded.value, raw: node.data, version: node.version, stat: node.stat };
      else network.statusProblem = decoded.problem;
    }
  }
  return network;
}

/** Networks that have a spec znode (readable or not), by VNI in numeric order. */
export async function readAllNetworks(store: ZkStore, paths: ZkPaths, parts: NetworkReadParts = {}): Promise<LiveNetwork[]> {
  const vnis = (await childNames(store, paths.networks, isValidVni)).sort((a, b) => Number(a) - Number(b));
  const list = await Promise.all(vnis.map((v) => readNetwork(store, paths, v, parts)));
  return list.filter((n) => n.spec !== null || n.invalidSpec !== undefined);
}

/** One node's state of a network: ready (for the spec's generation), not ready, or pending (no report for this generation yet). */
export type NetworkNodeState = 'ready' | 'notReady' | 'pending';

export interface NetworkNodeView {
  node: string;
  state: NetworkNodeState;
  /** The node's entry in the status znode, if any. */
  entry: NetworkStatus['nodes'][string] | null;
  /** False for an entry of a node that is not (any more) in /nodes. */
  member: boolean;
}

/**
 * Per node of the cluster (and per node that reported without being one), the network's state: an
 * entry counts as ready only when it is about the spec's generation or a later one.
 */
export function networkReadiness(network: LiveNetwork, clusterNodes: readonly string[]): { ready: number; total: number; nodes: NetworkNodeView[] } {
  const entries = network.status?.value.nodes ?? {};
  const generation = network.spec?.version;
  const stateOf = (entry: NetworkStatus['nodes'][string] | undefined): NetworkNodeState => {
    if (!entry || generation === undefined || entry.observedGeneration < generation) return 'pending';
    return entry.ready ? 'ready' : 'notReady';
  };
  const members = new Set(clusterNodes);
  const nodes: NetworkNodeView[] = [...clusterNodes].sort().map((node) => ({ node, state: stateOf(entries[node]), entry: entries[node] ?? null, member: true }));
  for (const node of Object.keys(entries).sort()) {
    if (!members.has(node)) nodes.push({ node, state: stateOf(entries[node]), entry: entries[node]!, member: false });
  }
  return { ready: nodes.filter((n) => n.member && n.state === 'ready').length, total: clusterNodes.length, nodes };
}

/**
 * The cluster config. An empty /config znode (created only as the parent of /config/primary, before
 * anyone applied a ClusterConfig) is the default config, as a missing one is.
 */
export async function readConfig(store: ZkStore, paths: ZkPaths): Promise<{ value: ClusterConfig; znode: Znode<ClusterConfig> | null }> {
  const config = await store.get(paths.config);
  if (!config || config.data.length === 0) return { value: defaultClusterConfig(), znode: null };
  const value = decodeStrict(paths.config, config.data, (v) => decodeClusterConfig(v));
  return { value, znode: { value, raw: config.data, version: config.version, stat: config.stat } };
}

/** The networks a VM's XML attaches to: VNIs of existing networks, and bridges that match none. */
export function vmNetworks(info: DomainInfo | null, existing: ReadonlySet<string>): { vnis: string[]; invalid: string[] } {
  const vnis: string[] = [];
  const invalid: string[] = [];
  for (const bridge of info?.bridges ?? []) {
    const vni = vniOfBridge(bridge);
    if (vni !== undefined && existing.has(vni)) vnis.push(vni);
    else invalid.push(bridge);
  }
  return { vnis, invalid };
}
