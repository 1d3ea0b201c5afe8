// How the launchers of drivers/launch/ start a process, in one of two ways:
//
// - detached (the sandbox, `vk sandbox up`): its own session, stdio to a log file, so it outlives
//   the CLI, and known afterwards only by what the sandbox's state file records: the PID and the
//   kernel's start time of that PID. A PID is signalled only while its start time still matches,
//   so a PID reused by an unrelated process after a reboot or a crash is never touched.
// - attached (the test rig, test/rig/): a child of this process, optionally under
//   `setpriv --pdeathsig SIGKILL` so that it dies with us even when we are SIGKILLed; the rig
//   keeps the ChildProcess and signals it by PID.
//
// Each launcher (./zookeeper.ts, ./libvirtd.ts, ./daemon.ts) says what to run as a LaunchSpec
// and how to tell that it serves; the caller picks the way to start it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** What to run: argv, where its stdout and stderr go (appended), its working dir and environment. */
export interface LaunchSpec {
  argv: readonly string[];
  /** stdout and stderr are appended here. */
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** A process the sandbox started. */
export interface ProcRef {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): with the PID, the process's identity. */
  startTime: number;
}

/** /proc/<pid>/stat split after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after ") ": state is field 3, so index 0 here is field 3.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

export function procStartTime(pid: number): number | undefined {
  const f = statFields(pid);
  const v = f?.[19]; // field 22
  return v === undefined ? undefined : Number(v);
}

/** The process's state letter (field 3 of its stat: R, S, Z, …), or undefined once it is gone. */
export function procState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

/** The process recorded is a zombie: it exited and its parent has not reaped it. */
export function isZombie(ref: ProcRef): boolean {
  const f = statFields(ref.pid);
  return f?.[0] === 'Z' && Number(f[19]) === ref.startTime;
}

/** The process exists, is not a zombie, and is the one recorded (same start time). */
export function isAlive(ref: ProcRef | undefined): boolean {
  if (!ref || !Number.isInteger(ref.pid) || ref.pid <= 1) return false;
  const f = statFields(ref.pid);
  if (!f) return false;
  if (f[0] === 'Z' || f[0] === 'X') return false;
  return Number(f[19]) === ref.startTime;
}

/**
 * True once every thread of the process has exited (reaped, or a zombie with no thread left). A
 * multi-threaded process (zebra, bgpd, libvirtd, a JVM) killed with SIGKILL turns zombie in its
 * main thread — isAlive is false then — while its other threads are still exiting and its sockets
 * still open: a socket can accept a connection for a moment after isAlive went false.
 */
export function allThreadsGone(ref: ProcRef): boolean {
  if (procStartTime(ref.pid) !== ref.startTime) return true; // reaped (or the PID reused)
  try {
    return readdirSync(`/proc/${ref.pid}/task`).every((tid) => tid === String(ref.pid)) && !isAlive(ref);
  } catch {
    return true;
  }
}

/** Same PID and start time, zombie or not (a zombie still holds its PID). */
export function exists(ref: ProcRef): boolean {
  const f = statFields(ref.pid);
  return f !== undefined && Number(f[19]) === ref.startTime;
}

export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

export function refOf(pid: number): ProcRef | undefined {
  const startTime = procStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/**
 * Starts argv in its own session (setsid: no controlling terminal, no SIGHUP or Ctrl-C from the
 * shell of `vk sandbox up`), stdin from /dev/null, stdout and stderr appended to logFile.
 * Every wrapper in the argv chains used here (ip netns exec, unshare, sh -c 'exec …') execs in
 * place, so the PID returned ends up being the final program's.
 */
export function spawnDetached(spec: LaunchSpec): ProcRef {
  const { argv } = spec;
  const out = openSync(spec.logFile, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', out, out],
      cwd: spec.cwd,
      env: spec.env ?? process.env,
    });
    child.on('error', () => undefined); // reported through the readiness checks
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start ${argv[0]}`);
    const ref = refOf(pid);
    // A process that died already has no start time left to read; record one that never matches.
    return ref ?? { pid, startTime: -1 };
  } finally {
    closeSync(out);
  }
}

export interface AttachedOptions {
  /** Run under `setpriv --pdeathsig <signal>` (which execs in place): the kernel sends the signal when we die. */
  pdeathsig?: NodeJS.Signals;
}

/**
 * Starts argv as a child of this process (same session), stdin from /dev/null, stdout and stderr
 * appended to the spec's log file. The caller keeps the ChildProcess and signals it by its PID.
 */
export function spawnAttached(spec: LaunchSpec, opts: AttachedOptions = {}): ChildProcess {
  const argv = opts.pdeathsig ? ['/usr/bin/setpriv', '--pdeathsig', opts.pdeathsig, '--', ...spec.argv] : spec.argv;
  const out = openSync(spec.logFile, 'a');
  try {
    return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], cwd: spec.cwd, env: spec.env ?? process.env });
  } finally {
    closeSync(out);
  }
}

/** A ChildProcess that has not exited yet. */
export const childRunning = (child: ChildProcess | undefined): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function signal(ref: ProcRef, sig: NodeJS.Signals): boolean {
  if (!exists(ref)) return false;
  try {
    process.kill(ref.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGTERM (and SIGCONT, in case it is stopped), SIGKILL after graceMs, then waits until the
 * process is gone (or a zombie: its parent, PID 1 or us, reaps it). Resolves to how it ended.
 */
export async function stopProcess(ref: ProcRef | undefined, graceMs: number): Promise<'notRunning' | 'terminated' | 'killed'> {
  if (!ref || !isAlive(ref)) return 'notRunning';
  signal(ref, 'SIGTERM');
  signal(ref, 'SIGCONT');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (allThreadsGone(ref)) return 'terminated';
    await sleep(25);
  }
  signal(ref, 'SIGKILL');
  const hard = Date.now() + 10_000;
  while (!allThreadsGone(ref) && Date.now() < hard) await sleep(25);
  if (!allThreadsGone(ref)) throw new Error(`process ${ref.pid} survived SIGKILL`);
  return 'killed';
}

/** SIGKILL and wait until every thread is gone, for processes that need no grace (QEMU guests of a sandbox being torn down, FRR). */
export async function killProcess(ref: ProcRef): Promise<void> {
  if (!isAlive(ref)) return;
  signal(ref, 'SIGKILL');
  const hard = Date.now() + 10_000;
  while (!allThreadsGone(ref) && Date.now() < hard) await sleep(10);
}

/** Last lines of a log file ('' when it does not exist). */
export function tailFile(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export interface ServingWait {
  /** For error messages: "ZooKeeper", "libvirtd of hv1", … */
  what: string;
  /** Undefined while the process lives; else how it ended ("exited (code 1)"). */
  exited: () => string | undefined;
  /** True once it serves. */
  serving: () => boolean | Promise<boolean>;
  timeoutMs: number;
  pollMs: number;
  /** Log lines to add to an error. */
  logs: () => string;
}

/**
 * Polls until the process serves; throws at once when it exits meanwhile, and when the timeout
 * passes (the caller then stops it: this touches no process).
 */
export async function waitServing(w: ServingWait): Promise<void> {
  const deadline = Date.now() + w.timeoutMs;
  while (Date.now() < deadline) {
    const ended = w.exited();
    if (ended !== undefined) throw new Error(`${w.what} ${ended} during start:\n${w.logs()}`);
    if (await w.serving()) return;
    await sleep(w.pollMs);
  }
  throw new Error(`${w.what} not serving after ${w.timeoutMs} ms:\n${w.logs()}`);
}
