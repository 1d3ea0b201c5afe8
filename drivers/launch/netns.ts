// Network namespaces for simulated hypervisors (the sandbox's and the test rig's). One "fabric"
// namespace holds a bridge; every node namespace has an eth0 (a veth whose peer is a port of that
// bridge) addressed from 198.51.100.0/24 (TEST-NET-2, a documentation range), so the nodes'
// libvirtds reach each other for live migration and nothing reaches anything else: the host's
// own namespace gets no interface. Callers record what they create and delete only that.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';

export const FABRIC_CIDR = '198.51.100.0/24';
export const FABRIC_BRIDGE = 'br0';

export function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** True when /run/netns is a mount point of its own (ip makes it one with the first `ip netns add`). */
export function netnsDirIsMount(): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4] === '/run/netns');
  } catch {
    return false;
  }
}

/** `ip netns` works here (root, iproute2, a kernel with network namespaces). */
export function netnsUsable(): string | undefined {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.error) return `ip is not runnable: ${r.error.message}`;
  if (r.status !== 0) return `ip netns list failed: ${r.stderr.trim()}`;
  return undefined;
}

/** A namespace with lo up. */
export function addNetns(netns: string): void {
  ip('netns', 'add', netns);
}

/** The fabric: a namespace holding bridge FABRIC_BRIDGE, up. */
export function createFabric(netns: string): void {
  addNetns(netns);
  ip('-n', netns, 'link', 'add', FABRIC_BRIDGE, 'type', 'bridge');
  ip('-n', netns, 'link', 'set', FABRIC_BRIDGE, 'up');
}

/** The node's namespace with eth0 on the fabric bridge; `port` names the bridge port. */
export function createNodeNetns(netns: string, fabric: string, port: string, address: string): void {
  addNetns(netns);
  ip('-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', fabric);
  ip('-n', fabric, 'link', 'set', port, 'master', FABRIC_BRIDGE, 'up');
  ip('-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  ip('-n', netns, 'link', 'set', 'eth0', 'up');
}

/** PIDs of the processes whose network namespace is `netns` (what `ip netns pids` lists). */
export function pidsIn(netns: string): number[] {
  if (!netnsExists(netns)) return [];
  let ino: number;
  try {
    ino = statSync(`/run/netns/${netns}`).ino;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (statSync(`/proc/${entry}/ns/net`).ino === ino) pids.push(Number(entry));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

export function deleteNetns(netns: string): void {
  if (!netnsExists(netns)) return;
  ip('netns', 'del', netns);
}

/** Lists the namespaces whose name starts with `prefix`. */
export function netnsWithPrefix(prefix: string): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

/** Unmounts /run/netns when it is empty (undoing what the first `ip netns add` did). */
export function unmountNetnsDirIfEmpty(): boolean {
  if (!netnsDirIsMount()) return false;
  if (readdirSync('/run/netns').length > 0) return false;
  const r = spawnSync('umount', ['/run/netns'], { stdio: 'ignore' });
  return r.status === 0;
}
