// Network namespaces for tests: two namespaces joined by a veth pair, addressed from
// 198.51.100.0/24 (a documentation range). Every namespace created here is deleted by cleanup()
// or, failing that, when the process exits.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const created = new Set<string>();
let hooked = false;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function deleteSync(ns: string): void {
  try {
    ip('netns', 'del', ns);
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
  try {
    ip('netns', 'list');
    return true;
  } catch {
    return false;
  }
}

/** Creates namespaces `<prefix>a` and `<prefix>b` linked by a veth pair: a = 198.51.100.1, b = 198.51.100.2. */
export function createNetnsPair(prefix = `vk${randomBytes(3).toString('hex')}`): NetnsPair {
  hookExit();
  const a: NetnsEnd = { ns: `${prefix}a`, dev: `${prefix}a0`.slice(-15), addr: '198.51.100.1' };
  const b: NetnsEnd = { ns: `${prefix}b`, dev: `${prefix}b0`.slice(-15), addr: '198.51.100.2' };
  try {
    for (const end of [a, b]) {
      ip('netns', 'add', end.ns);
      created.add(end.ns);
      ip('-n', end.ns, 'link', 'set', 'lo', 'up');
    }
    ip('-n', a.ns, 'link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns);
    for (const end of [a, b]) {
      ip('-n', end.ns, 'addr', 'add', `${end.addr}/24`, 'dev', end.dev);
      ip('-n', end.ns, 'link', 'set', end.dev, 'up');
    }
  } catch (err) {
    deleteSync(a.ns);
    deleteSync(b.ns);
    throw err;
  }
  return {
    a,
    b,
    cleanup() {
      deleteSync(a.ns);
      deleteSync(b.ns);
    },
  };
}
