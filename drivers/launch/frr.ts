// How to run FRR 8.4 (zebra + bgpd of the Debian package frr) as a simulated hypervisor's routing
// suite (DESIGN §5 "FRR 8.4"): everything under one directory D owned by user frr (vtysh.conf with
// `service integrated-vtysh-config`, frr.conf, the vty sockets, zserv.api, pid files and logs),
// each daemon started daemonized (-d) in the node's network namespace and in a UTS namespace whose
// hostname is the node's:
//
//   ip netns exec NS unshare --uts sh -c 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"' hv1 \
//     /usr/lib/frr/zebra -d -F datacenter --vty_socket D -z D/zserv.api -f /dev/null \
//     -i D/zebra.pid --log file:D/zebra.log
//
// zebra first (bgpd needs zserv.api), then bgpd, then optionally the config: `vtysh -b` reads
// D/frr.conf as systemd's frr.service would on a real host. The daemons are known only by their
// pid files, recorded as ProcRefs (PID + start time); they are stopped with SIGKILL by those, never
// by name. The test rig (test/rig/frr.ts) and the sandbox share this.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { accessSync, chownSync, closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FrrLocation } from '../frr/types.ts';
import { allThreadsGone, exeOf, isAlive, killProcess, refOf, tailFile, waitServing, type ProcRef } from './process.ts';

export const FRR_LIBDIR = '/usr/lib/frr';
export const ZEBRA = `${FRR_LIBDIR}/zebra`;
export const BGPD = `${FRR_LIBDIR}/bgpd`;
export const FRR_RELOAD = `${FRR_LIBDIR}/frr-reload.py`;
export const FRR_BINDIR = '/usr/bin';
export const VTYSH = `${FRR_BINDIR}/vtysh`;
export const FRR_USER = 'frr';

const DAEMONS = [
  { name: 'zebra', exe: ZEBRA, ready: 'zserv.api' },
  { name: 'bgpd', exe: BGPD, ready: 'bgpd.vty' },
] as const;
type DaemonName = (typeof DAEMONS)[number]['name'];

/** UTS namespace with the node's hostname; "$0" is the hostname, "$@" the program. */
const HOSTNAME_SCRIPT = 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"';
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;
const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/** Why FRR cannot be run here, or undefined when it can (the binaries, frr-reload.py, user frr, unshare). */
export function frrInstalled(): string | undefined {
  for (const f of [ZEBRA, BGPD, VTYSH, FRR_RELOAD, '/usr/bin/unshare']) {
    try {
      accessSync(f, constants.X_OK);
    } catch {
      return `${f} is missing or not executable (Debian packages frr and frr-pythontools)`;
    }
  }
  if (frrIds() === undefined) return `there is no user ${FRR_USER}`;
  if (process.getuid?.() !== 0) return 'FRR is started as root (it drops to user frr itself)';
  return undefined;
}

/** uid and gid of user frr. */
export function frrIds(): { uid: number; gid: number } | undefined {
  try {
    const line = execFileSync('getent', ['passwd', FRR_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/** Where the FRR driver finds the FRR of directory `dir`. */
export function frrLocation(dir: string, hostname: string | undefined, timeoutMs = 10_000): FrrLocation {
  return {
    confDir: dir,
    vtySocket: dir,
    runDir: dir,
    binDir: FRR_BINDIR,
    reloadScript: FRR_RELOAD,
    ...(hostname !== undefined ? { hostname } : {}),
    timeoutMs,
  };
}

/** Makes `dir` (if needed) with vtysh.conf, everything in it owned by frr; removes stale sockets and pid files. */
export function prepareFrrDir(dir: string): void {
  const ids = frrIds();
  if (!ids) throw new Error(`there is no user ${FRR_USER}`);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  writeFileSync(join(dir, 'vtysh.conf'), 'service integrated-vtysh-config\n');
  for (const d of DAEMONS) for (const f of [`${d.name}.pid`, `${d.name}.vty`]) rmSync(join(dir, f), { force: true });
  rmSync(join(dir, 'zserv.api'), { force: true });
  chownSync(dir, ids.uid, ids.gid);
  for (const f of readdirSync(dir)) chownSync(join(dir, f), ids.uid, ids.gid);
}

export interface FrrNodeOptions {
  /** The node's network namespace (`ip netns`); absent = this process's. */
  netns?: string;
  /** The hostname of the daemons' UTS namespace (also what frr.conf's `hostname` should say). */
  hostname: string;
  dir: string;
}

/** `[ip netns exec NS] unshare --uts sh -c … HOSTNAME argv…`. */
export function inFrrNode(o: Pick<FrrNodeOptions, 'netns' | 'hostname'>, argv: readonly string[]): string[] {
  if (!HOSTNAME.test(o.hostname)) throw new TypeError(`invalid hostname ${JSON.stringify(o.hostname)}`);
  if (o.netns !== undefined && !NETNS_NAME.test(o.netns)) throw new TypeError(`invalid network namespace name ${JSON.stringify(o.netns)}`);
  const uts = ['unshare', '--uts', 'sh', '-c', HOSTNAME_SCRIPT, o.hostname, ...argv];
  return o.netns === undefined ? uts : ['ip', 'netns', 'exec', o.netns, ...uts];
}

export function frrDaemonArgv(daemon: DaemonName, o: FrrNodeOptions): string[] {
  const d = DAEMONS.find((x) => x.name === daemon)!;
  const { dir } = o;
  return inFrrNode(o, [
    d.exe,
    '-d',
    '-F',
    'datacenter',
    '--vty_socket',
    dir,
    '-z',
    join(dir, 'zserv.api'),
    '-f',
    '/dev/null',
    '-i',
    join(dir, `${daemon}.pid`),
    '--log',
    `file:${join(dir, `${daemon}.log`)}`,
  ]);
}

export interface StartFrrOptions extends FrrNodeOptions {
  /** After both daemons serve, load D/frr.conf with `vtysh -b` when it exists. */
  loadConfig?: boolean;
  /** Per daemon, ms (default 15 s). */
  readyTimeoutMs?: number;
}

/** A started FRR: JSON-serializable (the sandbox keeps it in its state file). */
export interface FrrHandle {
  dir: string;
  netns?: string;
  hostname: string;
  zebraPid: number;
  bgpdPid: number;
  zebra: ProcRef;
  bgpd: ProcRef;
}

/** The PID in D/<daemon>.pid when that process runs the daemon's executable. */
export function daemonRef(dir: string, daemon: DaemonName): ProcRef | undefined {
  const exe = DAEMONS.find((x) => x.name === daemon)!.exe;
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(dir, `${daemon}.pid`), 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || exeOf(pid) !== exe) return undefined;
  return refOf(pid);
}

/** The last lines of D/<daemon>.log and of what its launcher printed (D/<daemon>.out). */
export function frrLogTail(dir: string, daemon: DaemonName, lines = 20): string {
  return [`${daemon}.log`, `${daemon}.out`]
    .map((f) => {
      const t = tailFile(join(dir, f), lines);
      return t === '' ? '' : `--- ${f}\n${t}`;
    })
    .filter((s) => s !== '')
    .join('\n');
}

async function startDaemon(daemon: DaemonName, o: FrrNodeOptions, timeoutMs: number): Promise<ProcRef> {
  const { dir } = o;
  const argv = frrDaemonArgv(daemon, o);
  const out = openSync(join(dir, `${daemon}.out`), 'a');
  let launcherEnded: string | undefined;
  try {
    // The launcher (ip netns exec … <daemon> -d) exits once the daemon has forked off.
    const launcher = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out] });
    launcher.on('error', (e) => (launcherEnded = `could not be started: ${e.message}`));
    launcher.on('exit', (code, signal) => {
      if (code !== 0) launcherEnded = `exited (code ${code}, signal ${signal})`;
    });
  } finally {
    closeSync(out);
  }
  const ready = join(dir, DAEMONS.find((x) => x.name === daemon)!.ready);
  let ref: ProcRef | undefined;
  try {
    await waitServing({
      what: `FRR ${daemon} of ${o.hostname}`,
      exited: () => launcherEnded,
      serving: () => {
        ref ??= daemonRef(dir, daemon);
        return ref !== undefined && isAlive(ref) && existsSync(ready);
      },
      timeoutMs,
      pollMs: 20,
      logs: () => frrLogTail(dir, daemon),
    });
  } catch (err) {
    // It may run without having got ready: stop it by the PID it wrote.
    const late = ref ?? daemonRef(dir, daemon);
    if (late) await killProcess(late);
    throw err;
  }
  return ref!;
}

/** `vtysh -b` of D/frr.conf under the node's hostname. */
export function loadFrrConfig(o: FrrNodeOptions, timeoutMs = 15_000): Promise<void> {
  const argv = inFrrNode({ hostname: o.hostname }, [VTYSH, '--vty_socket', o.dir, '--config_dir', o.dir, '-b']);
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`vtysh -b of ${join(o.dir, 'frr.conf')} failed (${err.message.split('\n')[0]}): ${`${stdout}\n${stderr}`.trim().slice(-1000)}`));
      else resolve();
    });
  });
}

/** Starts zebra, then bgpd, then (loadConfig, and D/frr.conf exists) loads the config. On failure stops what it started. */
export async function startFrr(o: StartFrrOptions): Promise<FrrHandle> {
  const timeoutMs = o.readyTimeoutMs ?? 15_000;
  prepareFrrDir(o.dir);
  const zebra = await startDaemon('zebra', o, timeoutMs);
  let bgpd: ProcRef | undefined;
  try {
    bgpd = await startDaemon('bgpd', o, timeoutMs);
    if (o.loadConfig && existsSync(join(o.dir, 'frr.conf'))) await loadFrrConfig(o, timeoutMs);
  } catch (err) {
    await Promise.all([killProcess(zebra), bgpd ? killProcess(bgpd) : undefined]);
    throw err;
  }
  return { dir: o.dir, ...(o.netns !== undefined ? { netns: o.netns } : {}), hostname: o.hostname, zebraPid: zebra.pid, bgpdPid: bgpd.pid, zebra, bgpd };
}

/** SIGKILL to both daemons (by PID and start time) and wait until they are gone, every thread. */
export async function stopFrr(h: Pick<FrrHandle, 'zebra' | 'bgpd'>): Promise<void> {
  await Promise.all([killProcess(h.bgpd), killProcess(h.zebra)]);
  for (const ref of [h.bgpd, h.zebra]) if (!allThreadsGone(ref)) throw new Error(`FRR process ${ref.pid} survived SIGKILL`);
}

/** For exit handlers: SIGKILL to both, no waiting. */
export function killFrrSync(h: Pick<FrrHandle, 'zebra' | 'bgpd'>): void {
  for (const ref of [h.bgpd, h.zebra]) {
    if (!isAlive(ref)) continue;
    try {
      process.kill(ref.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
