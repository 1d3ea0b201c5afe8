// Network namespaces for tests, made with the launcher's recipes (drivers/launch/netns.ts):
// two namespaces joined by a veth pair, or n namespaces on the bridge of a fabric namespace, all
// addressed from 198.51.100.0/24 (a documentation range). Every namespace created here is deleted
// by cleanup() or, failing that, when the process exits.
import { randomBytes } from 'node:crypto';
import { addNetns, createFabric as createFabricNetns, createNodeNetns, deleteNetns, ip, netnsUsable } from '../../drivers/launch/netns.ts';

const created = new Set<string>();
let hooked = false;

function deleteSync(ns: string): void {
  try {
    deleteNetns(ns);
  } catch {
    // already gone
  }
  created.delete(ns);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const ns of [...created]) deleteSync(ns);
  });
}

/** Runs make(record) where record(ns) must be called before ns is created; on failure deletes what was recorded. */
function making(namespaces: string[], make: (record: (ns: string) => void) => void): void {
  hookExit();
  try {
    make((ns) => {
      namespaces.push(ns);
      created.add(ns);
    });
  } catch (err) {
    namespaces.forEach(deleteSync);
    throw err;
  }
}

export interface NetnsEnd {
  /** namespace name, for `ip netns exec` */
  ns: string;
  /** the veth end inside it */
  dev: string;
  /** its address, without prefix length */
  addr: string;
}

export interface NetnsPair {
  a: NetnsEnd;
  b: NetnsEnd;
  /** Deletes both namespaces (and with them the veth pair). */
  cleanup(): void;
}

export function netnsSupported(): boolean {
  return netnsUsable() === undefined;
}

const randomPrefix = (): string => `vk${randomBytes(3).toString('hex')}`;

/** Creates namespaces `<prefix>a` and `<prefix>b` linked by a veth pair: a = 198.51.100.1, b = 198.51.100.2. */
export function createNetnsPair(prefix = randomPrefix()): NetnsPair {
  const a: NetnsEnd = { ns: `${prefix}a`, dev: `${prefix}a0`.slice(-15), addr: '198.51.100.1' };
  const b: NetnsEnd = { ns: `${prefix}b`, dev: `${prefix}b0`.slice(-15), addr: '198.51.100.2' };
  const all: string[] = [];
  making(all, (record) => {
    for (const end of [a, b]) {
      record(end.ns);
      addNetns(end.ns);
    }
    ip('-n', a.ns, 'link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns);
    for (const end of [a, b]) {
      ip('-n', end.ns, 'addr', 'add', `${end.addr}/24`, 'dev', end.dev);
      ip('-n', end.ns, 'link', 'set', end.dev, 'up');
    }
  });
  return { a, b, cleanup: () => all.forEach(deleteSync) };
}

export interface Fabric {
  /** Per hypervisor: namespace and address (198.51.100.<i+1>), its eth0 on the fabric's bridge. */
  hosts: Array<{ ns: string; addr: string }>;
  fabricNs: string;
  cleanup(): void;
}

/** n namespaces joined through a bridge in a fabric namespace (as the sandbox's); addresses 198.51.100.1…n. */
export function createFabric(n: number, prefix = randomPrefix()): Fabric {
  const fabricNs = `${prefix}f`;
  const hosts = Array.from({ length: n }, (_, i) => ({ ns: `${prefix}h${i + 1}`, addr: `198.51.100.${i + 1}` }));
  const all: string[] = [];
  making(all, (record) => {
    record(fabricNs);
    createFabricNetns(fabricNs);
    hosts.forEach((h, i) => {
      record(h.ns);
      createNodeNetns(h.ns, fabricNs, `p${i + 1}`, h.addr);
    });
  });
  return { hosts, fabricNs, cleanup: () => all.forEach(deleteSync) };
}
