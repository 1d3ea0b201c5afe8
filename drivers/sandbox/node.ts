// One simulated hypervisor of the sandbox: a private libvirtd in the node's network namespace,
// and the node's `vk daemon`, both in mount + UTS namespaces of their own where the node's
// directories are bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
// /var/cache/libvirt and /var/log/libvirt and the hostname is the node's name. The daemon stays in
// the host's network namespace (it reaches ZooKeeper on 127.0.0.1) but sees the node's files
// where a real hypervisor has them: the libvirt socket at /run/libvirt/libvirt-sock, serial logs
// under /var/log/libvirt/qemu. The bind mounts live and die with the private mount namespaces, so
// the host's mount table never changes. libvirt 9.0 quirks as in DESIGN §5 and test/rig/libvirtd.ts.
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { LibvirtHypervisor } from '../libvirt-hypervisor.ts';
import { GUEST_IMAGE, writeGuestImage } from './guest-image.ts';
import { HOLDING } from './holder.ts';
import { exeOf, isAlive, refOf, sleep, spawnDetached, tailFile, type ProcRef } from './proc.ts';
import { REPO_ROOT, type NodeState, type SandboxDriver } from './state.ts';

export const LIBVIRTD = '/usr/sbin/libvirtd';
export const VK_BIN = join(REPO_ROOT, 'cli', 'vk.mjs');

/** [directory under the node's dir, where it appears inside the node]. */
export const PRIVATE_DIRS = [
  ['etc', '/etc/libvirt'],
  ['run', '/run/libvirt'],
  ['lib', '/var/lib/libvirt'],
  ['cache', '/var/cache/libvirt'],
  ['log', '/var/log/libvirt'],
] as const;

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function libvirtUri(driver: SandboxDriver): string {
  return driver === 'test' ? 'test:///default' : 'qemu:///system';
}

/** A virsh URI reaching the node's libvirtd from the host. */
export function virshUri(node: NodeState, driver: SandboxDriver): string {
  return driver === 'test' ? `test+unix:///default?socket=${node.socket}` : `qemu+unix:///system?socket=${node.socket}`;
}

/** Lays out DIR/<node>: private libvirt directories with the sandbox's libvirtd.conf and qemu.conf, the guest disk. */
export function prepareNodeDir(node: NodeState): void {
  rmSync(node.dir, { recursive: true, force: true });
  for (const [sub] of PRIVATE_DIRS) mkdirSync(join(node.dir, sub), { recursive: true });
  cpSync('/etc/libvirt', join(node.dir, 'etc'), { recursive: true });
  writeFileSync(
    join(node.dir, 'etc', 'libvirtd.conf'),
    [
      '# virtkeeper sandbox node: written by vk sandbox up',
      'unix_sock_group = "root"',
      'unix_sock_rw_perms = "0770"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      // TCP without auth for peer-to-peer migration, reachable only on the sandbox fabric.
      'listen_tls = 0',
      'listen_tcp = 1',
      'auth_tcp = "none"',
      `host_uuid = "${randomUUID()}"`,
      'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(node.dir, 'etc', 'qemu.conf'),
    ['user = "root"', 'group = "root"', 'security_driver = "none"', 'dynamic_ownership = 0', 'cgroup_controllers = [ ]', 'stdio_handler = "file"', 'namespaces = [ ]', ''].join(
      '\n',
    ),
  );
  mkdirSync(join(node.dir, 'log', 'qemu'), { recursive: true });
  writeGuestImage(join(node.dir, 'lib', GUEST_IMAGE.slice('/var/lib/libvirt/'.length)));
}

/** The shell prologue both of the node's processes run: bind mounts, hostname. */
function nodeScript(node: NodeState, exec: string): string {
  return [
    'set -e',
    ...PRIVATE_DIRS.map(([sub, target]) => `mount --bind ${q(join(node.dir, sub))} ${q(target)}`),
    `echo ${q(node.name)} > /proc/sys/kernel/hostname`,
    `exec ${exec}`,
  ].join('\n');
}

function ensureMountPoints(): void {
  for (const [, target] of PRIVATE_DIRS) mkdirSync(target, { recursive: true });
}

export function launchLibvirtd(node: NodeState): ProcRef {
  ensureMountPoints();
  const script = nodeScript(node, `${LIBVIRTD} -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid --listen`);
  return spawnDetached(['ip', 'netns', 'exec', node.netns, 'unshare', '--mount', '--uts', '--propagation', 'private', '/bin/sh', '-c', script], {
    logFile: join(node.dir, 'libvirtd.out'),
    cwd: node.dir,
  });
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function libvirtdLogTail(node: NodeState, lines = 20): string {
  return [tailFile(join(node.dir, 'log', 'libvirtd.log'), lines), tailFile(join(node.dir, 'libvirtd.out'), lines)].filter((s) => s !== '').join('\n');
}

export async function waitLibvirtd(node: NodeState, proc: ProcRef, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(proc)) throw new Error(`libvirtd of ${node.name} exited during start:\n${libvirtdLogTail(node)}`);
    if (existsSync(node.socket) && (await canConnect(node.socket))) {
      const exe = exeOf(proc.pid);
      if (exe !== LIBVIRTD) throw new Error(`libvirtd of ${node.name}: PID ${proc.pid} runs ${exe}, not ${LIBVIRTD}`);
      return;
    }
    await sleep(50);
  }
  throw new Error(`libvirtd of ${node.name}: no socket at ${node.socket} after ${timeoutMs} ms:\n${libvirtdLogTail(node)}`);
}

/** QEMU processes the node's libvirtd started, from its pid files, verified by executable. */
export function qemuProcs(node: NodeState): ProcRef[] {
  const dir = join(node.dir, 'run', 'qemu');
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.pid'));
  } catch {
    return [];
  }
  const refs: ProcRef[] = [];
  for (const f of files) {
    const pid = Number.parseInt(readFileSync(join(dir, f), 'utf8').trim(), 10);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    if (!exeOf(pid)?.startsWith('/usr/bin/qemu-system-')) continue;
    const ref = refOf(pid);
    if (ref) refs.push(ref);
  }
  return refs;
}

export interface DaemonSettings {
  zk: string;
  driver: SandboxDriver;
  /** Reachable on the fabric; live migration comes to this node there (QEMU only). */
  address: string;
  logLevel?: string;
}

/** The daemon's config file, DIR/<node>/virtkeeper.yaml: the same format as on a real hypervisor. */
export function writeDaemonConfig(node: NodeState, s: DaemonSettings): string {
  const config: Record<string, unknown> = {
    node: node.name,
    zookeeper: { hosts: s.zk, sessionTimeoutMs: 10_000 },
    libvirt: { socket: '/run/libvirt/libvirt-sock', uri: libvirtUri(s.driver) },
    // The node's VM bridges live in its network namespace; the daemon runs in the host's.
    netns: node.netns,
    ...(s.driver === 'qemu' ? { migration: { uri: `qemu+tcp://${s.address}/system`, migrateUri: `tcp://${s.address}` } } : {}),
    logLevel: s.logLevel ?? 'info',
  };
  const file = join(node.dir, 'virtkeeper.yaml');
  writeFileSync(file, `# vk daemon config of sandbox node ${node.name} (written by vk sandbox up)\n${toYaml(config)}`);
  return file;
}

/** The environment of the node's processes: no VK_* of the caller's shell may override their config. */
function nodeEnv(): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VK_'))), NO_COLOR: '1' };
}

export function holderLog(node: NodeState): string {
  return join(node.dir, 'holder.log');
}

/**
 * Test driver only: `vk sandbox hold`, which keeps a connection to the node's test driver open
 * for the node's whole life (drivers/sandbox/holder.ts). It needs no namespace: it reaches
 * libvirtd through the socket's path on the host.
 */
export function launchHolder(node: NodeState): ProcRef {
  return spawnDetached([process.execPath, VK_BIN, 'sandbox', 'hold', '--socket', node.socket, '--uri', libvirtUri('test')], {
    logFile: holderLog(node),
    cwd: node.dir,
    env: nodeEnv(),
  });
}

/** Waits until the holder says it holds its connection (a line of its log naming its PID). */
export async function waitHolder(node: NodeState, proc: ProcRef, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const line = new RegExp(`${HOLDING} .* \\(pid ${proc.pid},`);
  while (Date.now() < deadline) {
    if (!isAlive(proc)) throw new Error(`the test-driver holder of ${node.name} exited during start:\n${tailFile(holderLog(node))}`);
    if (line.test(tailFile(holderLog(node), 50))) return;
    await sleep(50);
  }
  throw new Error(`the test-driver holder of ${node.name} (pid ${proc.pid}) did not connect in ${timeoutMs} ms:\n${tailFile(holderLog(node))}`);
}

export function launchDaemon(node: NodeState, configFile: string): ProcRef {
  ensureMountPoints();
  const script = nodeScript(node, `${q(process.execPath)} ${q(VK_BIN)} daemon --config ${q(configFile)}`);
  return spawnDetached(['unshare', '--mount', '--uts', '--propagation', 'private', '/bin/sh', '-c', script], {
    logFile: join(node.dir, 'daemon.log'),
    cwd: node.dir,
    // The config file says everything: no VK_* of the caller's shell may override it.
    env: nodeEnv(),
  });
}

/**
 * The test driver starts with a domain called "test" (8 GiB, running). It is not the cluster's, so
 * the daemon leaves it alone; remove it so node statistics and `virsh list` show only cluster VMs.
 * Call this while the node's holder runs: the test driver's state lives only as long as some
 * connection is open, and would come back with "test" after the last one closed.
 */
export async function removeTestDomain(node: NodeState): Promise<boolean> {
  const hv = await LibvirtHypervisor.open({ socket: node.socket, uri: 'test:///default' });
  try {
    const d = await hv.getDomain('test');
    if (!d) return false;
    if (d.state !== 'shutoff') await hv.destroy('test');
    await hv.undefine('test');
    return true;
  } finally {
    await hv.close();
  }
}
