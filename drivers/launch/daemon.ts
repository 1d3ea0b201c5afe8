// How to run `vk daemon`: this checkout's cli/vk.mjs under the running Node.js, with a config file
// (the same format as on a real hypervisor). The sandbox (drivers/sandbox/node.ts) starts it
// detached inside the node's namespaces; the test rig (test/rig/daemon-process.ts) attached.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The checkout this code runs from: the nearest directory upwards holding virtkeeper's
 * package.json (this module runs from drivers/launch/ through tsx, or from cli/vk.bundle.mjs).
 */
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      if ((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'virtkeeper') return dir;
    } catch {
      // no package.json here
    }
    if (dirname(dir) === dir) throw new Error(`cannot find virtkeeper's package.json above ${start}`);
  }
}
export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const VK_BIN = join(REPO_ROOT, 'cli', 'vk.mjs');

/**
 * Node.js flags the daemon runs with (here, in manifests/systemd/vk-daemon.service and in the
 * benches). --single-threaded-gc: a daemon idles between keepalives, and a parallel scavenge
 * wakes V8's helper threads (one per core) for a collection the main thread does in about a
 * millisecond; measured by bench/converge, idle CPU of a daemon holding 333 VMs fell from
 * 0.87 % to 0.65 % of a core. Converging is not measurably slower.
 * --no-memory-reducer: V8's memory reducer shrinks the heap once allocation slows down, with up to
 * three full collections after each major one (made for background browser tabs). A daemon's
 * working set is its caches: the heap grows right back, and full collections also drop optimized
 * code whose embedded objects died ("weak objects" in --trace-deopt), compiled again on the helper
 * threads. Measured by bench/converge (60 s windows): idle CPU 0.79–0.99 % → 0.36–0.60 % of a core,
 * RSS 88 → 101 MB.
 * --min-semi-space-size=8 (MiB): the young generation otherwise stays at its smallest, and an idle
 * daemon's keepalives and resyncs fill it every few seconds: 6–15 scavenges per 30 s at 1.5–4 ms
 * each (--trace-gc), each costing what survives, not what died. Measured by bench/converge over
 * 180 s: 0.44–0.50 % → 0.42–0.43 % of a core, RSS 104 → 108 MB.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--single-threaded-gc', '--no-memory-reducer', '--min-semi-space-size=8'];

/** `vk ARGS…` as an argv. */
export function vkArgv(...args: string[]): string[] {
  return [process.execPath, VK_BIN, ...args];
}

/** `vk daemon --config FILE` as an argv. */
export function daemonArgv(configFile: string): string[] {
  return [process.execPath, ...DAEMON_NODE_FLAGS, VK_BIN, 'daemon', '--config', configFile];
}
