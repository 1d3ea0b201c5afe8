// DIR/sandbox.json: everything a sandbox made, written as soon as each thing exists, so that
// `vk sandbox down` (or a failed `up`) finds and removes exactly that, and `status` can check it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../launch/daemon.ts';
import type { ProcRef } from '../launch/process.ts';
import type { LibvirtDriver } from '../launch/libvirtd.ts';

export { REPO_ROOT };

export const STATE_FILE = 'sandbox.json';
/**
 * Version 1 throughout: fields are only ever added, optional, so an older file still reads (a node
 * recorded before FRR has no `frr`: `status` shows its FRR down, and `up` builds such a sandbox
 * anew instead of repairing it in place, since its daemons' configs do not name the node's FRR).
 */
export const STATE_VERSION = 1;

/** `.sandbox/` in the repository (gitignored); VK_SANDBOX_DIR overrides it. */
export function defaultSandboxDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.VK_SANDBOX_DIR && env.VK_SANDBOX_DIR !== '' ? env.VK_SANDBOX_DIR : join(REPO_ROOT, '.sandbox'));
}

export type SandboxDriver = LibvirtDriver;

/** Node i (1-based) gets 198.51.100.(10+i) on the sandbox's fabric. */
export function nodeAddress(index: number): string {
  return `198.51.100.${10 + index}`;
}

export interface NodeState {
  name: string;
  /** Network namespace (ip netns) of the node; libvirtd and its QEMU guests run in it. */
  netns: string;
  /** The node's address on the sandbox fabric (its eth0), e.g. 198.51.100.11. */
  address: string;
  /** DIR/<name>: the node's private /etc/libvirt, /run/libvirt, /var/lib/libvirt, … and logs. */
  dir: string;
  /** libvirtd's read-write socket as seen from outside the node's mount namespace. */
  socket: string;
  libvirtd?: ProcRef;
  /**
   * Test driver only: `vk sandbox hold`, a process that keeps a connection to the node's test
   * driver open, so its guests outlive the daemon (drivers/sandbox/holder.ts).
   */
  holder?: ProcRef;
  daemon?: ProcRef;
  /**
   * The node's FRR (zebra + bgpd) in its network namespace, under its hostname, with everything in
   * DIR/<name>/frr (drivers/launch/frr.ts). Started before the daemon, which keeps its frr.conf.
   */
  frr?: { zebra: ProcRef; bgpd: ProcRef };
  /** Where the node's FRR files are when not DIR/<name>/frr (user frr cannot reach DIR). */
  frrDir?: string;
}

/** DIR/<node>/frr (or the recorded frrDir): the node's frr.conf, vtysh.conf, vty sockets, zserv.api, pid files and logs (owned by user frr). */
export function frrDir(node: Pick<NodeState, 'dir' | 'frrDir'>): string {
  return node.frrDir ?? join(node.dir, 'frr');
}

export interface SandboxState {
  version: number;
  dir: string;
  /** Prefix of every network namespace this sandbox makes (vks + 4 hex digits of the dir). */
  prefix: string;
  driver: SandboxDriver;
  createdAt: string;
  zookeeper: { port: number; connectString: string; dir: string; proc?: ProcRef };
  fabric: { netns: string; bridge: string; cidr: string; created: boolean };
  /** /run/netns was not a mount point before the first `ip netns add` of this sandbox (ip made it one). */
  madeNetnsMount: boolean;
  nodes: NodeState[];
  /** The REST API server (drivers/sandbox/api.ts): `vk api` on loopback. */
  api?: { port: number; url: string; proc?: ProcRef };
  /** `vk sandbox vm-side`: VM-side namespaces plugged into a node's bridge (drivers/sandbox/vm-side.ts). */
  vmSides?: Array<{ netns: string; node: string; vni: number }>;
  /** 'up' once `vk sandbox up` finished; 'starting' while it runs or if it died half-way. */
  phase: 'starting' | 'up' | 'failed';
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

export function readState(dir: string): SandboxState | undefined {
  const file = statePath(dir);
  if (!existsSync(file)) return undefined;
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as SandboxState;
  if (parsed.version !== STATE_VERSION) throw new Error(`${file}: state version ${parsed.version}, expected ${STATE_VERSION}`);
  return parsed;
}

/** Atomic (write + rename), so a reader never sees half a file. */
export function writeState(state: SandboxState): void {
  const file = statePath(state.dir);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** Namespace prefix derived from the directory: two sandboxes in two directories never collide. */
export function prefixFor(dir: string): string {
  return `vks${createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 4)}`;
}

/** The ZooKeeper port this directory prefers (stable across down/up, so `export VK_ZK=…` stays right). */
export function preferredPort(dir: string): number {
  const h = createHash('sha256').update(`port:${resolve(dir)}`).digest().readUInt16BE(0);
  return 21810 + (h % 180);
}
