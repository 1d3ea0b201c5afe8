// How a failed `rbd` or `ceph` call maps to an RbdError reason, from what Ceph 16.2 prints:
//
//   monitor down     rbd: exit 110, "monclient(hunting): authenticate timed out after 3" and
//                    "rbd: couldn't connect to the cluster!"; ceph: exit 1, "[errno 110] RADOS timed
//                    out (error connecting to the cluster)"
//   lock taken       rbd lock add: exit 16, "rbd: lock is already held by someone else"
//   no image/pool    rbd: exit 2, "rbd: error opening image X: (2) No such file or directory"
//   lock gone        rbd lock rm: exit 2, "rbd: releasing lock failed: (2) No such file or directory"
//   no keyring       rbd: exit 2 + "couldn't connect"; ceph: "[errno 2] RADOS object not found (error
//                    connecting to the cluster)", after "no keyring found at …, disabling cephx"
//
// `rbd` exits with the errno of the failure (1 is also its plain EXIT_FAILURE); `ceph` exits 1 and
// names the errno as "[errno N]" or "Error ENAME:". A refusal of authentication is checked before
// "couldn't connect" (both are said then), and "couldn't connect" before the errno of the image.
import { howItEnded, shown, type RunOutcome } from '../exec/run.ts';
import { RbdError, type RbdErrorReason } from './types.ts';

/** Which call failed: EBUSY means RbdLockHeld only for `lock add`. */
export type RbdOp = 'lockAdd' | 'other';

const ERRNO_NAMES: Record<string, number> = { EPERM: 1, ENOENT: 2, EACCES: 13, EBUSY: 16, EINVAL: 22, ETIMEDOUT: 110 };

/** The errno a failure names: "(2) No such file", "[errno 110]", "Error ENOENT:", else rbd's exit status (when above 1). */
export function errnoOf(o: Pick<RunOutcome, 'code' | 'stderr'>): number | undefined {
  const text = o.stderr;
  const m = /\[errno (\d+)\]/.exec(text) ?? /\((\d+)\) [A-Z]/.exec(text);
  if (m) return Number(m[1]);
  const named = /\bError (E[A-Z]+)\b/.exec(text);
  if (named && ERRNO_NAMES[named[1]!] !== undefined) return ERRNO_NAMES[named[1]!];
  return o.code !== null && o.code > 1 ? o.code : undefined;
}

const DENIED = /permission denied|operation not permitted|no keyring found|handle_auth_bad_method|\bEACCES\b|\bEPERM\b/i;
const UNREACHABLE = /couldn't connect to the cluster|error connecting to the cluster|connection timed out|timed out/i;
const BUSY = /device or resource busy|already held/i;
const NOT_FOUND = /no such file or directory|\bENOENT\b|does not exist/i;

export function reasonOf(o: Pick<RunOutcome, 'code' | 'stderr' | 'timedOut' | 'failure'>, op: RbdOp): RbdErrorReason {
  if (o.timedOut) return 'RbdUnreachable';
  if (o.failure !== undefined) return 'RbdFailed';
  const errno = errnoOf(o);
  const text = o.stderr;
  if (errno === 13 || errno === 1 || DENIED.test(text)) return 'RbdDenied';
  if (errno === 110 || UNREACHABLE.test(text)) return 'RbdUnreachable';
  if (op === 'lockAdd' && (errno === 16 || BUSY.test(text))) return 'RbdLockHeld';
  if (errno === 2 || NOT_FOUND.test(text)) return 'RbdNotFound';
  return 'RbdFailed';
}

/** `rbd lock rm` of a lock that is not there (any more). */
export function lockGone(o: Pick<RunOutcome, 'code' | 'stderr'>): boolean {
  return /releasing lock failed: \(2\)/.test(o.stderr);
}

const MAX_EXCERPT = 800;

/** stderr for a message: blank and repeated lines dropped, the last MAX_EXCERPT characters. */
export function stderrExcerpt(stderr: string): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    // Ceph's log prefix ("2026-12-04T20:19:21.278+0000 7f431229c380  0 ") differs per line: compare without it.
    const key = line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+[+-]\d{4} [0-9a-f]+ +-?\d+ /, '');
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    lines.push(key);
  }
  const text = lines.join('\n');
  return text.length > MAX_EXCERPT ? `…${text.slice(-MAX_EXCERPT)}` : text;
}

/** The RbdError of a call that did not exit 0. */
export function callError(o: RunOutcome, command: readonly string[], timeoutMs: number, op: RbdOp): RbdError {
  const excerpt = stderrExcerpt(o.stderr);
  return new RbdError(reasonOf(o, op), `${shown(command)}: ${howItEnded(o, timeoutMs)}${excerpt ? `: ${excerpt}` : ''}`, command);
}
