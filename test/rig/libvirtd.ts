// A private libvirtd for tests (DESIGN §5): its own mount + UTS (+ network, when given a
// namespace) namespaces, private directories bind-mounted over /etc/libvirt, /run/libvirt,
// /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt, a distinct host UUID and its own
// unix socket under a temp dir. Only processes started here are ever signalled, always by PID.

import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ensureLibvirtUsers,
  libvirtdCommand,
  libvirtdLogTail,
  LIBVIRTD,
  QEMU,
  qemuPids,
  VIRSH,
  virshUri,
  waitLibvirtd,
  writeLibvirtdConfig,
  type LibvirtDriver,
} from '../../drivers/launch/libvirtd.ts';
import { childRunning, isAlive, refOf, sleep, spawnAttached } from '../../drivers/launch/process.ts';
import { cleanupAtExit } from './exit.ts';

export { ensureLibvirtUsers, LIBVIRTD, QEMU };

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
  /** SIGKILL every QEMU this libvirtd started (a power loss takes the guests too); resolves to their PIDs. */
  killGuests(): number[];
  /** SIGSTOP / SIGCONT: a hung libvirtd that keeps its socket open. */
  freeze(): void;
  thaw(): void;
  /** Stops libvirtd, kills the QEMU processes it started and removes the temp dir. Idempotent. */
  cleanup(): Promise<void>;
}

const live = new Set<LibvirtdRig>();

function cleanupAllSync(): void {
  for (const rig of [...live]) rig.cleanupSync();
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
    return childRunning(this.child);
  }

  virshUri(driver: LibvirtDriver): string {
    return virshUri(this.socketPath, driver);
  }

  private get logFiles(): string[] {
    return [join(this.dir, 'log', 'libvirtd.log'), join(this.dir, 'libvirtd.out')];
  }

  logTail(lines = 20): string {
    return libvirtdLogTail(this.logFiles, lines);
  }

  private writeConfig(): void {
    writeLibvirtdConfig(this.dir, { unixSockDir: join(this.dir, 'sock'), listenTcp: this.listenTcp, logFile: join(this.dir, 'log', 'libvirtd.log') });
    mkdirSync(join(this.dir, 'sock'), { recursive: true });
  }

  async start(): Promise<void> {
    if (this.cleaned) throw new Error(`libvirtd ${this.name} was cleaned up`);
    if (this.running) throw new Error(`libvirtd ${this.name} is already running (pid ${this.pid})`);
    for (const f of readdirSync(join(this.dir, 'sock'))) rmSync(join(this.dir, 'sock', f), { force: true });
    const child = spawnAttached(
      libvirtdCommand({
        dir: this.dir,
        hostname: this.name,
        ...(this.netns ? { netns: this.netns } : {}),
        confFile: join(this.dir, 'etc', 'libvirtd.conf'),
        pidFile: join(this.dir, 'libvirtd.pid'),
        listen: this.listenTcp,
        outFile: join(this.dir, 'libvirtd.out'),
      }),
    );
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    live.add(this);
    cleanupAtExit(cleanupAllSync);
    try {
      await waitLibvirtd({
        what: `libvirtd ${this.name}`,
        socket: this.socketPath,
        pid: child.pid!,
        exited: () => (childRunning(child) ? undefined : `exited (code ${child.exitCode}, signal ${child.signalCode})`),
        timeoutMs: this.readyTimeoutMs,
        logFiles: this.logFiles,
      });
    } catch (err) {
      await this.kill();
      throw err;
    }
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

  killGuests(): number[] {
    return this.killQemus();
  }

  private killQemus(): number[] {
    const pids = qemuPids(this.dir);
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
const alive = (pid: number): boolean => isAlive(refOf(pid));

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
