// One bounded child process for the FRR driver: argv (no shell), stdout and stderr collected. The
// child leads a process group of its own, and on timeout (or an output flood) the whole group is
// killed with SIGKILL: frr-reload.py runs vtysh as its own child, and a vtysh left behind would
// hang on a frozen daemon forever. Never rejects: the caller maps the outcome to an FrrError.
import { spawn } from 'node:child_process';
import { FrrError, type FrrErrorReason, type FrrLocation } from './types.ts';

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

export function run(argv: readonly string[], timeoutMs: number): Promise<RunOutcome> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new TypeError('run: empty argv'));
  return new Promise<RunOutcome>((resolve) => {
    // detached: a new process group (and session), so the group can be killed as one.
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
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

const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;

/**
 * argv run under location.hostname when set: a UTS namespace of its own whose hostname is FRR's
 * (vtysh prints its own hostname into the running config). Needs root (CAP_SYS_ADMIN).
 */
export function underHostname(location: FrrLocation, argv: readonly string[]): string[] {
  if (location.hostname === undefined) return [...argv];
  if (!HOSTNAME.test(location.hostname)) throw new TypeError(`invalid hostname ${JSON.stringify(location.hostname)}`);
  return ['unshare', '--uts', 'sh', '-c', 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"', location.hostname, ...argv];
}

// ---------------------------------------------------------------------------------------------
// Error texts

/** frr-reload.py colours ERROR and WARNING. */
const ANSI = /\x1b\[[0-9;]*m/g;
/** frr-reload.py's INFO/DEBUG log lines, which say nothing about a failure. */
const LOG_NOISE = /^\d{4}-\d\d-\d\d [\d:,]+\s+(INFO|DEBUG):/;
const MAX_EXCERPT = 600;

/** stderr for a message: colours stripped, frr-reload.py's INFO lines dropped, trimmed, the last MAX_EXCERPT characters. */
export function stderrExcerpt(stderr: string): string {
  const lines = stderr
    .replace(ANSI, '')
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '' && !LOG_NOISE.test(l));
  const text = lines.join('\n').trim();
  return text.length > MAX_EXCERPT ? `…${text.slice(-MAX_EXCERPT)}` : text;
}

/** An error line of frr-reload.py's log (it may still exit 0 after one). */
export function hasErrorLog(stderr: string): boolean {
  return /^\d{4}-\d\d-\d\d [\d:,]+\s+(ERROR|CRITICAL):/m.test(stderr.replace(ANSI, ''));
}

/** What vtysh and frr-reload.py print when a daemon is down or nothing answers. */
const UNREACHABLE = /failed to connect|is not running/i;

export function looksUnreachable(text: string): boolean {
  return UNREACHABLE.test(text);
}

const shown = (argv: readonly string[]): string => argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');

/** An FrrError whose message names the command, how it ended and the excerpt of its stderr. */
export function commandError(reason: FrrErrorReason, command: readonly string[], how: string, stderr = ''): FrrError {
  const excerpt = stderrExcerpt(stderr);
  return new FrrError(reason, `${shown(command)}: ${how}${excerpt ? `: ${excerpt}` : ''}`, command, stderr);
}

/** How a process ended, for a message. */
export function howItEnded(o: RunOutcome, timeoutMs: number): string {
  if (o.timedOut) return `no answer within ${timeoutMs} ms (killed)`;
  if (o.failure !== undefined) return o.failure;
  return o.signal ? `killed by ${o.signal}` : `exit status ${o.code}`;
}

/** ms left before `deadline`, at least 1. */
export const remaining = (deadline: number): number => Math.max(1, deadline - Date.now());
