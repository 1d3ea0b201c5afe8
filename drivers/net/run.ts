// One bounded child process for the `ip` driver: argv (no shell), optional stdin, stdout and stderr
// collected, killed by its PID with SIGKILL when it outlives its timeout or floods its output.
import { spawn } from 'node:child_process';
import { IpCommandError, IpTimeoutError } from './errors.ts';

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
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new TypeError('run: empty argv'));
  const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(file, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
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
      else resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: stderrText() });
    });
    if (child.stdin) {
      // EPIPE when the process exits before reading everything (a parse error ends ip -batch).
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}
