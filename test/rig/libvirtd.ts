// A private libvirtd for tests (DESIGN §5): its own mount + UTS (+ network, when given a
// namespace) namespaces, private directories bind-mounted over /etc/libvirt, /run/libvirt,
// /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt, a distinct host UUID and its own
// unix socket under a temp dir. Only processes started here are ever signalled, always by PID.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LIBVIRTD = '/usr/sbin/libvirtd';
export const QEMU = '/usr/bin/qemu-system-x86_64';
const VIRSH = '/usr/bin/virsh';

export interface StartLibvirtdOptions {
  /** Also the hostname inside its UTS namespace. */
  name: string;
  /** Run inside this network namespace (from `ip netns add`), which also turns on the TCP listener. */
  netns?: string;
  /** Listen on TCP 16509 without auth (default: true when netns is given, else false). */
  listenTcp?: boolean;
  /** How long to wait for the socket (default 30 s). */
  readyTimeoutMs?: number;
}

export interface Libvirtd {
  readonly name: string;
  readonly netns: string | undefined;
  /** Temp dir holding config, state, logs and the socket. */
  readonly dir: string;
  /** The read-write unix socket. */
  readonly socketPath: string;
  /** PID of the running libvirtd, 0 when it is not running. */
  readonly pid: number;
  readonly running: boolean;
  /** A URI for virsh reaching this libvirtd, e.g. `test+unix:///default?socket=…`. */
  virshUri(driver: 'test' | 'qemu'): string;
  /** Last lines of libvirtd's log (errors and warnings). */
  logTail(lines?: number): string;
  /** Starts libvirtd again after stop() or kill(), with the same state directories. */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period. QEMU guests keep running (as with a real libvirtd restart). */
  stop(): Promise<void>;
  /** SIGKILL (a crash). */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a hung libvirtd that keeps its socket open. */
  freeze(): void;
  thaw(): void;
  /** Stops libvirtd, kills the QEMU processes it started and removes the temp dir. Idempotent. */
  cleanup(): Promise<void>;
}

const live = new Set<LibvirtdRig>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const rig of [...live]) rig.cleanupSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const rig of [...live]) rig.cleanupSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

const here = dirname(fileURLToPath(import.meta.url));

/** Installs the Debian packages if libvirtd or QEMU is missing (test/rig/install-deps.sh). */
export function ensureLibvirtInstalled(): void {
  if (existsSync(LIBVIRTD) && existsSync(QEMU) && existsSync(VIRSH)) return;
  try {
    execFileSync('bash', [join(here, 'install-deps.sh')], { stdio: 'inherit' });
  } catch (err) {
    if (!existsSync(LIBVIRTD)) throw err; // QEMU alone missing: the QEMU tests skip themselves
  }
}

export const qemuAvailable = (): boolean => existsSync(QEMU);

function getent(db: 'group' | 'passwd', key: string): boolean {
  try {
    execFileSync('getent', [db, key], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** libvirt's QEMU driver refuses to start unless the Debian user/groups libvirt-qemu and kvm exist. */
export function ensureLibvirtUsers(): void {
  for (const g of ['kvm', 'libvirt-qemu']) {
    if (getent('group', g)) continue;
    try {
      execFileSync('groupadd', ['--system', g], { stdio: 'ignore' });
    } catch (err) {
      if (!getent('group', g)) throw err; // lost a race with another test process otherwise
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

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const PRIVATE_DIRS = [
  ['etc', '/etc/libvirt'],
  ['run', '/run/libvirt'],
  ['lib', '/var/lib/libvirt'],
  ['cache', '/var/cache/libvirt'],
  ['log', '/var/log/libvirt'],
] as const;

class LibvirtdRig implements Libvirtd {
  readonly dir: string;
  readonly socketPath: string;
  readonly name: string;
  readonly netns: string | undefined;
  private readonly listenTcp: boolean;
  private readonly readyTimeoutMs: number;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private cleaned = false;

  constructor(opts: StartLibvirtdOptions) {
    if (!/^[a-zA-Z0-9-]{1,40}$/.test(opts.name)) throw new Error(`bad libvirtd name ${JSON.stringify(opts.name)}`);
    this.name = opts.name;
    this.netns = opts.netns;
    this.listenTcp = opts.listenTcp ?? opts.netns !== undefined;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
    this.dir = mkdtempSync(join(tmpdir(), `vk-libvirtd-${opts.name}-`));
    this.socketPath = join(this.dir, 'sock', 'libvirt-sock');
    this.writeConfig();
  }

  get pid(): number {
    return this.running ? this.child!.pid! : 0;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  virshUri(driver: 'test' | 'qemu'): string {
    return driver === 'test' ? `test+unix:///default?socket=${this.socketPath}` : `qemu+unix:///system?socket=${this.socketPath}`;
  }

  logTail(lines = 20): string {
    const out: string[] = [];
    for (const f of [join(this.dir, 'log', 'libvirtd.log'), join(this.dir, 'libvirtd.out')]) {
      try {
        out.push(...readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines));
      } catch {
        // not written yet
      }
    }
    return out.join('\n');
  }

  private writeConfig(): void {
    for (const [sub] of PRIVATE_DIRS) mkdirSync(join(this.dir, sub), { recursive: true });
    mkdirSync(join(this.dir, 'sock'), { recursive: true });
    cpSync('/etc/libvirt', join(this.dir, 'etc'), { recursive: true });
    const tcp = this.listenTcp ? ['listen_tls = 0', 'listen_tcp = 1', 'auth_tcp = "none"'] : ['listen_tls = 0', 'listen_tcp = 0'];
    writeFileSync(
      join(this.dir, 'etc', 'libvirtd.conf'),
      [
        `unix_sock_dir = "${join(this.dir, 'sock')}"`,
        'unix_sock_group = "root"',
        'unix_sock_rw_perms = "0770"',
        'auth_unix_rw = "none"',
        'auth_unix_ro = "none"',
        ...tcp,
        `host_uuid = "${randomUUID()}"`,
        `log_outputs = "3:file:${join(this.dir, 'log', 'libvirtd.log')}"`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(this.dir, 'etc', 'qemu.conf'),
      [
        'user = "root"',
        'group = "root"',
        'security_driver = "none"',
        'dynamic_ownership = 0',
        'cgroup_controllers = [ ]',
        'stdio_handler = "file"',
        'namespaces = [ ]',
        '',
      ].join('\n'),
    );
  }

  async start(): Promise<void> {
    if (this.cleaned) throw new Error(`libvirtd ${this.name} was cleaned up`);
    if (this.running) throw new Error(`libvirtd ${this.name} is already running (pid ${this.pid})`);
    for (const [, target] of PRIVATE_DIRS) mkdirSync(target, { recursive: true }); // mount points
    for (const f of readdirSync(join(this.dir, 'sock'))) rmSync(join(this.dir, 'sock', f), { force: true });
    const script = [
      'set -e',
      ...PRIVATE_DIRS.map(([sub, target]) => `mount --bind ${q(join(this.dir, sub))} ${q(target)}`),
      `echo ${q(this.name)} > /proc/sys/kernel/hostname`,
      `exec ${LIBVIRTD} -f ${q(join(this.dir, 'etc', 'libvirtd.conf'))} -p ${q(join(this.dir, 'libvirtd.pid'))}${this.listenTcp ? ' --listen' : ''}`,
    ].join('\n');
    // unshare and `ip netns exec` both exec in place (no fork), so the spawned PID ends up being libvirtd's.
    const unshare = ['unshare', '--mount', '--uts', '--propagation', 'private', '/bin/sh', '-c', script];
    const argv = this.netns ? ['ip', 'netns', 'exec', this.netns, ...unshare] : unshare;
    const out = openSync(join(this.dir, 'libvirtd.out'), 'a');
    try {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out] });
      this.child = child;
      this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
      live.add(this);
      hookExit();
    } finally {
      closeSync(out);
    }
    await this.waitReady();
    const exe = readlinkSync(`/proc/${this.pid}/exe`);
    if (exe !== LIBVIRTD) {
      await this.kill();
      throw new Error(`libvirtd ${this.name}: spawned PID runs ${exe}, not ${LIBVIRTD}`);
    }
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + this.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(`libvirtd ${this.name} exited during start (code ${this.child?.exitCode}, signal ${this.child?.signalCode}):\n${this.logTail()}`);
      }
      if (existsSync(this.socketPath) && (await canConnect(this.socketPath))) return;
      await sleep(50);
    }
    await this.kill();
    throw new Error(`libvirtd ${this.name}: no socket at ${this.socketPath} after ${this.readyTimeoutMs} ms:\n${this.logTail()}`);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const child = this.child!;
    child.kill('SIGTERM');
    child.kill('SIGCONT'); // in case it was frozen
    const timer = setTimeout(() => {
      if (this.running) child.kill('SIGKILL');
    }, 15_000);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  freeze(): void {
    if (this.running) this.child!.kill('SIGSTOP');
  }

  thaw(): void {
    if (this.running) this.child!.kill('SIGCONT');
  }

  /** PIDs of QEMU processes this libvirtd started (from its private pid files), verified by executable. */
  private qemuPids(): number[] {
    const dir = join(this.dir, 'run', 'qemu');
    const pids: number[] = [];
    let files: string[] = [];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.pid') && f !== 'driver.pid');
    } catch {
      return pids;
    }
    for (const f of files) {
      const pid = Number.parseInt(readFileSync(join(dir, f), 'utf8').trim(), 10);
      if (!Number.isInteger(pid) || pid <= 1) continue;
      try {
        if (readlinkSync(`/proc/${pid}/exe`).startsWith('/usr/bin/qemu-system-')) pids.push(pid);
      } catch {
        // gone already
      }
    }
    return pids;
  }

  private killQemus(): number[] {
    const pids = this.qemuPids();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    return pids;
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    await this.stop();
    const pids = this.killQemus();
    const deadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < deadline) await sleep(20);
    this.cleaned = true;
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** For exit handlers: no waiting. */
  cleanupSync(): void {
    if (this.cleaned) return;
    if (this.running) this.child!.kill('SIGKILL');
    this.killQemus();
    this.cleaned = true;
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startLibvirtd(opts: StartLibvirtdOptions): Promise<Libvirtd> {
  ensureLibvirtInstalled();
  ensureLibvirtUsers();
  const rig = new LibvirtdRig(opts);
  try {
    await rig.start();
  } catch (err) {
    await rig.cleanup();
    throw err;
  }
  return rig;
}

/**
 * 256 MiB, no disks, no graphics, serial on a pty. QEMU migrates all-zero pages almost for free,
 * so a `loader` device fills 8 MiB of guest RAM with random bytes: at 1 MiB/s the migration then
 * takes several seconds, which leaves a wide window to observe and abort it.
 */
export function guestXml(name: string, blob: string): string {
  return `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'/><console type='pty'/>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-device'/>
    <qemu:arg value='loader,file=${blob},addr=0x2000000,force-raw=on'/>
  </qemu:commandline>
</domain>`;
}
