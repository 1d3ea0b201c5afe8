// How to run a private libvirtd as a simulated hypervisor (DESIGN §5): a directory holding the
// node's private /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
// /var/log/libvirt, bind-mounted over those paths inside mount + UTS namespaces of its own (and
// the node's network namespace, when it has one), with the hostname set to the node's name; a
// distinct host UUID (migration to an identical one is refused); qemu.conf as root without
// cgroups, security driver or namespaces. The sandbox (drivers/sandbox/node.ts) starts it
// detached; the test rig (test/rig/libvirtd.ts) attached. Both only ever signal PIDs they started.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { exeOf, tailFile, waitServing, type LaunchSpec } from './process.ts';

export const LIBVIRTD = '/usr/sbin/libvirtd';
export const QEMU = '/usr/bin/qemu-system-x86_64';
export const VIRSH = '/usr/bin/virsh';

export type LibvirtDriver = 'test' | 'qemu';

/** [directory under the node's dir, where it appears inside the node]. */
export const PRIVATE_DIRS = [
  ['etc', '/etc/libvirt'],
  ['run', '/run/libvirt'],
  ['lib', '/var/lib/libvirt'],
  ['cache', '/var/cache/libvirt'],
  ['log', '/var/log/libvirt'],
] as const;

/** Single-quoted for /bin/sh. */
export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The URI a client inside the node (the daemon) opens on the socket. */
export function libvirtUri(driver: LibvirtDriver): string {
  return driver === 'test' ? 'test:///default' : 'qemu:///system';
}

/** A virsh URI reaching the libvirtd whose socket is `socket`, from the host. */
export function virshUri(socket: string, driver: LibvirtDriver): string {
  return driver === 'test' ? `test+unix:///default?socket=${socket}` : `qemu+unix:///system?socket=${socket}`;
}

function getent(db: 'group' | 'passwd', key: string): boolean {
  try {
    execFileSync('getent', [db, key], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * libvirt's QEMU driver refuses to load unless the user libvirt-qemu and the groups kvm and
 * libvirt-qemu exist (libvirt-daemon-system creates them; a private libvirtd needs none of that
 * package's services). Losing a race with another process creating them is fine.
 */
export function ensureLibvirtUsers(): void {
  for (const g of ['kvm', 'libvirt-qemu']) {
    if (getent('group', g)) continue;
    try {
      execFileSync('groupadd', ['--system', g], { stdio: 'ignore' });
    } catch (err) {
      if (!getent('group', g)) throw err;
    }
  }
  if (!getent('passwd', 'libvirt-qemu')) {
    try {
      execFileSync('useradd', ['--system', '-g', 'kvm', '-d', '/var/lib/libvirt', '-s', '/usr/sbin/nologin', 'libvirt-qemu'], { stdio: 'ignore' });
    } catch (err) {
      if (!getent('passwd', 'libvirt-qemu')) throw err;
    }
  }
}

export interface LibvirtdConfig {
  /** Listen on TCP 16509 without auth (peer-to-peer migration on a private fabric). */
  listenTcp: boolean;
  /** unix_sock_dir; libvirt's default (/run/libvirt inside the node, <dir>/run outside) when absent. */
  unixSockDir?: string;
  /** Where libvirtd logs (a path as libvirtd sees it). */
  logFile: string;
  /** A comment line at the top of libvirtd.conf. */
  comment?: string;
}

/**
 * Makes the private directories under `dir` (etc starts as a copy of the host's /etc/libvirt)
 * and writes etc/libvirtd.conf and etc/qemu.conf.
 */
export function writeLibvirtdConfig(dir: string, c: LibvirtdConfig): void {
  for (const [sub] of PRIVATE_DIRS) mkdirSync(join(dir, sub), { recursive: true });
  cpSync('/etc/libvirt', join(dir, 'etc'), { recursive: true });
  writeFileSync(
    join(dir, 'etc', 'libvirtd.conf'),
    [
      ...(c.comment ? [`# ${c.comment}`] : []),
      ...(c.unixSockDir ? [`unix_sock_dir = "${c.unixSockDir}"`] : []),
      'unix_sock_group = "root"',
      'unix_sock_rw_perms = "0770"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'listen_tls = 0',
      ...(c.listenTcp ? ['listen_tcp = 1', 'auth_tcp = "none"'] : ['listen_tcp = 0']),
      `host_uuid = "${randomUUID()}"`,
      `log_outputs = "3:file:${c.logFile}"`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'etc', 'qemu.conf'),
    ['user = "root"', 'group = "root"', 'security_driver = "none"', 'dynamic_ownership = 0', 'cgroup_controllers = [ ]', 'stdio_handler = "file"', 'namespaces = [ ]', ''].join('\n'),
  );
}

/** The mount points the bind mounts need on the host (they exist once libvirt is installed). */
export function ensureMountPoints(): void {
  for (const [, target] of PRIVATE_DIRS) mkdirSync(target, { recursive: true });
}

export interface NodeNamespaces {
  /** The node's directory (holding PRIVATE_DIRS). */
  dir: string;
  /** The hostname inside the node's UTS namespace. */
  hostname: string;
  /** The node's network namespace (`ip netns`), if the program runs in it. */
  netns?: string;
}

/**
 * argv running `exec` (a shell command line) inside the node: private mount + UTS namespaces with
 * the node's directories bind-mounted and its hostname, in its network namespace when given.
 * unshare, `ip netns exec` and `sh -c 'exec …'` all exec in place (no fork), so the PID spawned
 * ends up being the program's. The bind mounts die with the namespaces: the host's mount table
 * never changes.
 */
export function inNode(n: NodeNamespaces, exec: string): string[] {
  ensureMountPoints();
  const script = [
    'set -e',
    ...PRIVATE_DIRS.map(([sub, target]) => `mount --bind ${shq(join(n.dir, sub))} ${shq(target)}`),
    `echo ${shq(n.hostname)} > /proc/sys/kernel/hostname`,
    `exec ${exec}`,
  ].join('\n');
  const unshare = ['unshare', '--mount', '--uts', '--propagation', 'private', '/bin/sh', '-c', script];
  return n.netns ? ['ip', 'netns', 'exec', n.netns, ...unshare] : unshare;
}

export interface LibvirtdCommand extends NodeNamespaces {
  /** libvirtd.conf and pid file as libvirtd sees them. */
  confFile: string;
  pidFile: string;
  /** Pass --listen (the config's listen_tcp needs it). */
  listen: boolean;
  /** stdout and stderr. */
  outFile: string;
  cwd?: string;
}

export function libvirtdCommand(c: LibvirtdCommand): LaunchSpec {
  return {
    argv: inNode(c, `${LIBVIRTD} -f ${shq(c.confFile)} -p ${shq(c.pidFile)}${c.listen ? ' --listen' : ''}`),
    logFile: c.outFile,
    ...(c.cwd ? { cwd: c.cwd } : {}),
  };
}

export function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The last lines of libvirtd's log and of its stdout/stderr ('' for a file not written yet). */
export function libvirtdLogTail(logFiles: readonly string[], lines = 20): string {
  return logFiles.map((f) => tailFile(f, lines)).filter((s) => s !== '').join('\n');
}

export interface LibvirtdWait {
  what: string;
  socket: string;
  pid: number;
  exited: () => string | undefined;
  timeoutMs: number;
  logFiles: readonly string[];
}

/**
 * Resolves once the socket accepts connections and the PID spawned runs libvirtd itself (every
 * wrapper exec'd in place); throws when it exits first, does not serve in time, or is something else.
 */
export async function waitLibvirtd(w: LibvirtdWait): Promise<void> {
  await waitServing({
    what: w.what,
    exited: w.exited,
    serving: async () => existsSync(w.socket) && (await canConnect(w.socket)),
    timeoutMs: w.timeoutMs,
    pollMs: 50,
    logs: () => libvirtdLogTail(w.logFiles),
  });
  const exe = exeOf(w.pid);
  if (exe !== LIBVIRTD) throw new Error(`${w.what}: PID ${w.pid} runs ${exe}, not ${LIBVIRTD}`);
}

/** PIDs of the QEMU processes the libvirtd of `dir` started (from its private pid files), verified by executable. */
export function qemuPids(dir: string): number[] {
  const run = join(dir, 'run', 'qemu');
  let files: string[];
  try {
    files = readdirSync(run).filter((f) => f.endsWith('.pid') && f !== 'driver.pid');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const f of files) {
    let pid: number;
    try {
      pid = Number.parseInt(readFileSync(join(run, f), 'utf8').trim(), 10);
    } catch {
      continue; // removed meanwhile
    }
    if (!Number.isInteger(pid) || pid <= 1) continue;
    if (exeOf(pid)?.startsWith('/usr/bin/qemu-system-')) pids.push(pid);
  }
  return pids;
}
