// What the FRR driver adds to the shared bounded runner (../exec/run.ts): running under FRR's
// hostname, and the texts of its errors (frr-reload.py's log lines, "failed to connect").
import { shown } from '../exec/run.ts';
import { FrrError, type FrrErrorReason, type FrrLocation } from './types.ts';

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

/** An FrrError whose message names the command, how it ended and the excerpt of its stderr. */
export function commandError(reason: FrrErrorReason, command: readonly string[], how: string, stderr = ''): FrrError {
  const excerpt = stderrExcerpt(stderr);
  return new FrrError(reason, `${shown(command)}: ${how}${excerpt ? `: ${excerpt}` : ''}`, command, stderr);
}
