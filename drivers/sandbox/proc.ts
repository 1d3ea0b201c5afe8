// Processes of the sandbox: started detached (their own session, stdio to a log file) so they
// outlive `vk sandbox up`, and known afterwards only by what the state file records: the PID and
// the kernel's start time of that PID. A PID is signalled only while its start time still matches,
// so a PID reused by an unrelated process after a reboot or a crash is never touched.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readlinkSync } from 'node:fs';

/** A process the sandbox started. */
export interface ProcRef {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): with the PID, the process's identity. */
  startTime: number;
}

export interface DetachedOptions {
  /** stdout and stderr are appended here. */
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
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

/** The process exists, is not a zombie, and is the one recorded (same start time). */
export function isAlive(ref: ProcRef | undefined): boolean {
  if (!ref || !Number.isInteger(ref.pid) || ref.pid <= 1) return false;
  const f = statFields(ref.pid);
  if (!f) return false;
  if (f[0] === 'Z' || f[0] === 'X') return false;
  return Number(f[19]) === ref.startTime;
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
export function spawnDetached(argv: readonly string[], opts: DetachedOptions): ProcRef {
  const out = openSync(opts.logFile, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', out, out],
      cwd: opts.cwd,
      env: opts.env ?? process.env,
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
    if (!isAlive(ref)) return 'terminated';
    await sleep(25);
  }
  signal(ref, 'SIGKILL');
  const hard = Date.now() + 10_000;
  while (isAlive(ref) && Date.now() < hard) await sleep(25);
  if (isAlive(ref)) throw new Error(`process ${ref.pid} survived SIGKILL`);
  return 'killed';
}

/** SIGKILL and wait, for processes that need no grace (QEMU guests of a sandbox being torn down). */
export async function killProcess(ref: ProcRef): Promise<void> {
  if (!isAlive(ref)) return;
  signal(ref, 'SIGKILL');
  const hard = Date.now() + 10_000;
  while (isAlive(ref) && Date.now() < hard) await sleep(20);
}

/** Last lines of a log file ('' when it does not exist). */
export function tailFile(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
