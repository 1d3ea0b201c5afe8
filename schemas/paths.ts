import { ValidationError } from './errors.ts';
import { MAC_PATTERN, MAC_RULE } from './formats.ts';
import { assertName, assertVni, isValidName, isValidVni } from './names.ts';

export const DEFAULT_ROOT = '/virtkeeper';

// Conservative: what ZooKeeper allows is much wider, but a root is typed by people.
const ROOT_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const ROOT_RULE =
  "must be an absolute znode path without a trailing '/', made of segments of letters, digits, '_', '-', '.' (not '.' or '..')";

function rootProblem(root: string): string | undefined {
  if (!root.startsWith('/') || root === '/' || root.endsWith('/')) return ROOT_RULE;
  const segments = root.slice(1).split('/');
  if (segments.some((s) => !ROOT_SEGMENT.test(s) || s === '.' || s === '..')) return ROOT_RULE;
  if (segments[0] === 'zookeeper') return "must not be under /zookeeper, which ZooKeeper reserves";
  return undefined;
}

/** What a znode path under the root refers to; see ZkPaths.parse. */
export type ZkPathInfo =
  | { kind: 'schema' | 'config' | 'vms' | 'networks' | 'nodes' | 'locks' }
  | { kind: 'vm'; name: string; leaf?: 'spec' | 'xml' | 'status' | 'migration' | 'console' | 'rbd' }
  | { kind: 'primary' }
  | { kind: 'network'; vni: string; leaf?: 'spec' | 'status' | 'leases' }
  | { kind: 'lease'; vni: string; mac: string }
  | { kind: 'node'; name: string; leaf?: 'spec' | 'status' | 'alive' | 'fence' }
  | { kind: 'index' }
  | { kind: 'nodeVms'; node: string; vm?: string }
  | { kind: 'events' }
  | { kind: 'event'; id: string }
  | { kind: 'lock'; name: string; child?: string };

const VM_LEAVES = ['spec', 'xml', 'status', 'migration', 'console', 'rbd'] as const;
const NODE_LEAVES = ['spec', 'status', 'alive', 'fence'] as const;

/**
 * The ZooKeeper key layout (DESIGN.md §3). Fixed znodes are properties,
 * per-object znodes are methods; every method validates its name, so no
 * path built here can contain '/', '..' or anything else unexpected.
 */
export class ZkPaths {
  readonly root: string;
  /** {"version":1} */
  readonly schema: string;
  readonly config: string;
  readonly vms: string;
  readonly networks: string;
  readonly nodes: string;
  readonly locks: string;

  constructor(root: string = DEFAULT_ROOT) {
    if (typeof root !== 'string') throw new ValidationError('root', root, ROOT_RULE, { kind: 'znode path' });
    const problem = rootProblem(root);
    if (problem) throw new ValidationError('root', root, problem, { kind: 'znode path' });
    this.root = root;
    this.schema = `${root}/schema`;
    this.config = `${root}/config`;
    this.vms = `${root}/vms`;
    this.networks = `${root}/networks`;
    this.nodes = `${root}/nodes`;
    this.locks = `${root}/locks`;
  }

  vm(name: string): string {
    return `${this.vms}/${assertName(name, 'vm name')}`;
  }
  vmSpec(name: string): string {
    return `${this.vm(name)}/spec`;
  }
  /** libvirt domain XML. */
  vmXml(name: string): string {
    return `${this.vm(name)}/xml`;
  }
  vmStatus(name: string): string {
    return `${this.vm(name)}/status`;
  }
  /** In-flight migration record. */
  vmMigration(name: string): string {
    return `${this.vm(name)}/migration`;
  }
  /** Last lines of the serial console log. */
  vmConsole(name: string): string {
    return `${this.vm(name)}/console`;
  }
  /** The RBD concern's verdict on the VM's locks (schemas/rbd.ts). */
  vmRbd(name: string): string {
    return `${this.vm(name)}/rbd`;
  }

  /** `vni` may be given as a number; the path holds its decimal form. */
  network(vni: string | number): string {
    return `${this.networks}/${assertVni(vni, 'network vni')}`;
  }
  networkSpec(vni: string | number): string {
    return `${this.network(vni)}/spec`;
  }
  networkStatus(vni: string | number): string {
    return `${this.network(vni)}/status`;
  }
  /** Parent of the network's DHCP leases (written by the primary coordinator). */
  networkLeases(vni: string | number): string {
    return `${this.network(vni)}/leases`;
  }
  /** One DHCP lease, keyed by the client's MAC (lower case, as dnsmasq prints it). */
  networkLease(vni: string | number, mac: string): string {
    if (!MAC_PATTERN.test(mac)) throw new ValidationError('mac', mac, MAC_RULE);
    return `${this.networkLeases(vni)}/${mac}`;
  }

  /** The per-node VM index (core/vm-index.ts): /index/<node>/<vm>, one empty znode per VM whose spec names the node. */
  get index(): string {
    return `${this.root}/index`;
  }
  nodeVms(node: string): string {
    return `${this.index}/${assertName(node, 'node name')}`;
  }
  nodeVmEntry(node: string, vm: string): string {
    return `${this.nodeVms(node)}/${assertName(vm, 'vm name')}`;
  }

  /** {node, phase, since, term, …}: the primary coordinator (reconcilers/primary). */
  get primary(): string {
    return `${this.config}/primary`;
  }
  /** Ephemeral: exists while the primary's session lives. */
  get primaryLock(): string {
    return `${this.locks}/primary`;
  }

  node(name: string): string {
    return `${this.nodes}/${assertName(name, 'node name')}`;
  }
  nodeSpec(name: string): string {
    return `${this.node(name)}/spec`;
  }
  nodeStatus(name: string): string {
    return `${this.node(name)}/status`;
  }
  /** Ephemeral: exists while the node's daemon holds a session. */
  nodeAlive(name: string): string {
    return `${this.node(name)}/alive`;
  }
  /**
   * {renewedAt}: the keepalive's heartbeat, renewed every tick (schemas/node.ts NodeLease). Tiny
   * and watched by nobody: the status carries the figures and is written only when they change.
   */
  nodeLease(name: string): string {
    return `${this.node(name)}/lease`;
  }

  /** The node's fence settings (schemas/fence.ts), under an admin-only ACL when the cluster uses auth. */
  nodeFence(name: string): string {
    return `${this.node(name)}/fence`;
  }

  /** The REST API's bearer tokens kept in ZooKeeper: `sha256hex scope name` lines (api/tokens.ts). */
  get apiTokens(): string {
    return `${this.root}/api/tokens`;
  }

  /** The bounded events log: persistent sequential children `e-<10 digits>` (core/events.ts). */
  get events(): string {
    return `${this.root}/events`;
  }

  /** Parent of a lock recipe's sequential-ephemeral children. */
  lock(name: string): string {
    return `${this.locks}/${assertName(name, 'lock name')}`;
  }

  /**
   * Tells what a path built by this layout refers to (for routing watch
   * events); undefined for paths outside the root or not in the layout.
   */
  parse(path: string): ZkPathInfo | undefined {
    if (!path.startsWith(`${this.root}/`)) return undefined;
    const parts = path.slice(this.root.length + 1).split('/');
    const [top, id, leaf, ...rest] = parts;
    switch (top) {
      case 'schema':
        return parts.length === 1 ? { kind: top } : undefined;
      case 'config':
        if (parts.length === 2 && id === 'primary') return { kind: 'primary' };
        return parts.length === 1 ? { kind: top } : undefined;
      case 'index':
        if (parts.length === 1) return { kind: 'index' };
        if (!isValidName(id!) || parts.length > 3) return undefined;
        if (parts.length === 2) return { kind: 'nodeVms', node: id! };
        return isValidName(leaf!) ? { kind: 'nodeVms', node: id!, vm: leaf! } : undefined;
      case 'events':
        if (parts.length === 1) return { kind: 'events' };
        return parts.length === 2 && /^e-\d{10}$/.test(id!) ? { kind: 'event', id: id! } : undefined;
      case 'vms':
      case 'networks':
      case 'nodes':
      case 'locks':
        if (parts.length === 1) return { kind: top };
        break;
      default:
        return undefined;
    }
    if (top === 'networks' && isValidVni(id) && leaf === 'leases' && rest.length === 1 && MAC_PATTERN.test(rest[0]!)) {
      return { kind: 'lease', vni: id, mac: rest[0]! };
    }
    if (rest.length > 0) return undefined;
    if (top === 'vms' && isValidName(id)) {
      if (leaf === undefined) return { kind: 'vm', name: id };
      return isOneOf(leaf, VM_LEAVES) ? { kind: 'vm', name: id, leaf } : undefined;
    }
    if (top === 'nodes' && isValidName(id)) {
      if (leaf === undefined) return { kind: 'node', name: id };
      return isOneOf(leaf, NODE_LEAVES) ? { kind: 'node', name: id, leaf } : undefined;
    }
    if (top === 'networks' && isValidVni(id)) {
      if (leaf === undefined) return { kind: 'network', vni: id };
      return leaf === 'spec' || leaf === 'status' || leaf === 'leases' ? { kind: 'network', vni: id, leaf } : undefined;
    }
    if (top === 'locks' && isValidName(id)) {
      if (leaf === undefined) return { kind: 'lock', name: id };
      return leaf.length > 0 ? { kind: 'lock', name: id, child: leaf } : undefined;
    }
    return undefined;
  }
}

function isOneOf<T extends string>(value: string, options: readonly T[]): value is T {
  return (options as readonly string[]).includes(value);
}
