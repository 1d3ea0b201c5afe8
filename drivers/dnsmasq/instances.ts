// Finding a VNI's running dnsmasq from its pidfile, and the processes it leaves behind. A pidfile
// counts only when its PID is a live process (not a zombie) whose command line names that very
// pidfile (`--pid-file=RUN/dnsmasq-<vni>.pid`): a PID reused by anything else is never signalled.
// dnsmasq forks one helper (same command line, same process group) that runs the lease script as
// root; it exits after dnsmasq does, and stop() waits for it too.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { isAlive, refOf, type ProcRef } from '../launch/process.ts';
import { argvHash, PIDFILE_NAME, pidFileArg, vniFiles } from './args.ts';

/** The argv of a process, or undefined when it is gone (or a zombie, whose cmdline is empty). */
export function cmdlineOf(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  if (text === '') return undefined;
  return text.replace(/\0$/, '').split('\0');
}

/** Process group of a process (field 5 of /proc/<pid>/stat). */
function pgrpOf(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return Number(f[2]);
  } catch {
    return undefined;
  }
}

export interface Found {
  vni: number;
  ref: ProcRef;
  /** argvHash of its command line. */
  specHash: string;
}

function readPid(file: string): { text: string; pid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = /^\s*([1-9][0-9]{0,9})\s*$/.exec(text)?.[1];
  return { text, pid: pid === undefined ? 0 : Number(pid) };
}

/** The live dnsmasq of `vni` named by its pidfile; undefined when none. A stale pidfile is removed when `removeStale`. */
export function findInstance(runDir: string, vni: number, removeStale: boolean): Found | undefined {
  const { pidFile } = vniFiles(runDir, vni);
  const read = readPid(pidFile);
  if (!read) return undefined;
  const ref = read.pid > 0 ? refOf(read.pid) : undefined;
  const argv = ref && isAlive(ref) ? cmdlineOf(ref.pid) : undefined;
  if (ref && argv?.includes(pidFileArg(runDir, vni)) && isAlive(ref)) return { vni, ref, specHash: argvHash(argv) };
  // Stale. Remove it only if it still says what we read (another process may just have started one).
  if (removeStale && readPid(pidFile)?.text === read.text) rmSync(pidFile, { force: true });
  return undefined;
}

/** Every live dnsmasq of the run dir, by VNI. */
export function findInstances(runDir: string, removeStale: boolean): Found[] {
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    return [];
  }
  const out: Found[] = [];
  for (const name of names) {
    const m = PIDFILE_NAME.exec(name);
    if (!m) continue;
    const found = findInstance(runDir, Number(m[1]), removeStale);
    if (found) out.push(found);
  }
  return out.sort((a, b) => a.vni - b.vni);
}

/**
 * Live processes of process group `pgid` whose command line mentions one of `marks` (dnsmasq's
 * helper names the pidfile, a lease script being run names the script), `pgid` itself excluded.
 * A PID that leads a group is not reused while the group has members, so these are its own.
 */
export function leftovers(pgid: number, marks: readonly string[]): ProcRef[] {
  const out: ProcRef[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === pgid || pgrpOf(pid) !== pgid) continue;
    const argv = cmdlineOf(pid);
    if (!argv || !argv.some((a) => marks.some((m) => a.includes(m)))) continue;
    const ref = refOf(pid);
    if (ref && isAlive(ref)) out.push(ref);
  }
  return out;
}
