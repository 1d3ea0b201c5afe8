// One bounded child process for the `ip` driver: argv (no shell), optional stdin, stdout and stderr
// collected, killed by its PID with SIGKILL when it outlives its timeout or floods its output.
//
// A run with a deadline (`notAfterMs`) is checked by the child itself, by its own clock, right
// before it executes the command, and its input is fixed before the child exists (a file, not a
// pipe written afterwards). So a caller frozen at any point after its own check (SIGSTOP, a stall
// in fork: a signal restarts fork) can never make the command run late: once the caller thaws,
// the child sees the deadline passed and runs nothing.
import { spawn } from 'node:child_process';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpCommandError, IpDeadlineError, IpTimeoutError } from './errors.ts';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs: number;
  /** Bytes of stdout + stderr after which the process is killed and the run fails. */
  maxOutput?: number;
  /** Date.now() after which the command must not start: the child checks it (IpDeadlineError). */
  notAfterMs?: number;
}

/** Exit status and stderr line of the deadline guard (not one `ip` uses). */
const DEADLINE_STATUS = 75;
const DEADLINE_LINE = 'vk: deadline passed, not run';
// bash's EPOCHREALTIME is a builtin (no process), in microseconds with the locale's decimal mark.
const GUARD = `d=\${EPOCHREALTIME/[.,]/}; if (( d > $1 )); then echo '${DEADLINE_LINE}' >&2; exit ${DEADLINE_STATUS}; fi; shift; exec "$@"`;

/** argv behind the deadline guard: `bash -c GUARD vk-not-after <µs> argv…`. */
function guardedArgv(argv: readonly string[], notAfterMs: number): string[] {
  return ['bash', '-c', GUARD, 'vk-not-after', String(Math.floor(notAfterMs) * 1000), ...argv];
}

let inputFiles = 0;
/** A file descriptor reading `input` from its start, on a file already unlinked (nothing left behind). */
function inputFd(input: string): number {
  const path = join(tmpdir(), `vk-ip-input-${process.pid}-${inputFiles++}`);
  const fd = openSync(path, 'wx+', 0o600);
  try {
    unlinkSync(path);
    const data = Buffer.from(input, 'utf8');
    // pwrite: the offset stays at 0, where the child starts reading.
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at, at);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;

function killPid(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Runs argv to its end; rejects with IpTimeoutError / IpCommandError only when it cannot be run or read. */
export function run(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  if (argv.length === 0) return Promise.reject(new TypeError('run: empty argv'));
  const guarded = opts.notAfterMs !== undefined;
  const [file, ...args] = guarded ? guardedArgv(argv, opts.notAfterMs!) : argv;
  const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  let fd: number | undefined;
  try {
    if (guarded && opts.input !== undefined) fd = inputFd(opts.input);
  } catch (error) {
    return Promise.reject(new IpCommandError(argv, '', null, null, `cannot write its input: ${(error as Error).message}`));
  }
  return new Promise<RunResult>((resolve, reject) => {
    const stdin = fd ?? (opts.input === undefined ? 'ignore' : 'pipe');
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(file!, args, { stdio: [stdin, 'pipe', 'pipe'] });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let failure: Error | undefined;
    let settled = false;
    const stderrText = (): string => Buffer.concat(err).toString('utf8');
    const fail = (e: Error): void => {
      if (failure) return;
      failure = e;
      killPid(child.pid);
    };
    const timer = setTimeout(() => fail(new IpTimeoutError(argv, stderrText(), opts.timeoutMs)), opts.timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxOutput) {
        fail(new IpCommandError(argv, stderrText(), null, null, `more than ${maxOutput} bytes of output (killed)`));
        return;
      }
      into.push(chunk);
    };
    child.stdout?.on('data', collect(out));
    child.stderr?.on('data', collect(err));
    child.on('error', (e) => {
      // spawn failed (ENOENT, EACCES, …): no 'close' may follow.
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(failure ?? new IpCommandError(argv, '', null, null, e.message));
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (failure) reject(failure);
      else if (guarded && code === DEADLINE_STATUS && stderrText().includes(DEADLINE_LINE)) reject(new IpDeadlineError(argv, opts.notAfterMs!));
      else resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: stderrText() });
    });
    if (child.stdin && fd === undefined) {
      // EPIPE when the process exits before reading everything (a parse error ends ip -batch).
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}
