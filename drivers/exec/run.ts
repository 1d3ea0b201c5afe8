// One bounded child process, shared by the drivers that run a command per call (FRR's vtysh and
// frr-reload.py, `rbd` and `ceph`, `ipmitool` and fence commands): argv (no shell), stdout and
// stderr collected. The child leads a process group of its own, and on timeout (or an output
// flood) the whole group is killed with SIGKILL: frr-reload.py runs vtysh as its own child, `ip
// netns exec` execs in place but a wrapper may not, and a grandchild left behind would hang on a
// frozen peer forever. Never rejects for the process's sake: the caller maps the outcome to its
// driver's error. Options: the child's environment (a secret that must stay off argv, where `ps`
// shows it, goes here: /proc/PID/environ is readable by the same user and root only). stdin is
// /dev/null.
import { spawn } from 'node:child_process';

export interface RunOutcome {
  /** null when killed or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed after timeoutMs. */
  timedOut: boolean;
  /** Why it could not be run or read (spawn error, output flood); undefined otherwise. */
  failure?: string;
}

const MAX_OUTPUT = 16 * 1024 * 1024;

/** Kills the process group `pid` leads (our child's; it is its own group leader), else the PID alone. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

export interface RunOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export function run(argv: readonly string[], timeoutMs: number, opts: RunOptions = {}): Promise<RunOutcome> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new TypeError('run: empty argv'));
  return new Promise<RunOutcome>((resolve) => {
    // detached: a new process group (and session), so the group can be killed as one.
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...(opts.env !== undefined ? { env: opts.env } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let settled = false;
    let timedOut = false;
    let failure: string | undefined;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        ...(failure !== undefined ? { failure } : {}),
      });
    };
    const abort = (): void => {
      killGroup(child.pid);
      // Do not wait for 'close': a grandchild outside the group could hold the pipes open.
      child.stdout?.destroy();
      child.stderr?.destroy();
      finish(null, 'SIGKILL');
    };
    const timer = setTimeout(() => {
      timedOut = true;
      abort();
    }, timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT) {
        failure ??= `more than ${MAX_OUTPUT} bytes of output (killed)`;
        abort();
        return;
      }
      into.push(chunk);
    };
    child.stdout?.on('data', collect(out));
    child.stderr?.on('data', collect(err));
    child.on('error', (e) => {
      failure ??= e.message;
      finish(null, null);
    });
    child.on('close', (code, signal) => finish(code, signal));
  });
}

/** How a process ended, for a message. */
export function howItEnded(o: RunOutcome, timeoutMs: number): string {
  if (o.timedOut) return `no answer within ${timeoutMs} ms (killed)`;
  if (o.failure !== undefined) return o.failure;
  return o.signal ? `killed by ${o.signal}` : `exit status ${o.code}`;
}

/** ms left before `deadline`, at least 1. */
export const remaining = (deadline: number): number => Math.max(1, deadline - Date.now());

/** argv as a reader would type it: words of safe characters bare, the rest single-quoted. */
export const shown = (argv: readonly string[]): string => argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
