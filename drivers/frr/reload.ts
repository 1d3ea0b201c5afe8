// frr-reload.py for the FRR driver: `--test` (the delta of confDir/frr.conf against the running
// config, parsed by parseReloadTest) and `--reload` (apply that delta). Both run with --stdout, so
// the script logs to stderr (INFO lines, and coloured ERROR/WARNING lines) instead of
// /var/log/frr/frr-reload.log, and under location.hostname when set (see underHostname).
//
// What FRR 8.4's frr-reload.py --test prints on stdout: nothing when in sync; otherwise
//
//   <blank>
//   Lines To Delete
//   ===============
//   no hostname vm
//   ipv6 forwarding
//   <blank>
//   Lines To Add
//   ============
//   router bgp 65500
//    neighbor 198.51.100.2 peer-group fabric
//   no ip forwarding
//
// either section may be absent; each change is printed with its context lines before it, indented
// one space per level (a context is repeated for every change under it); a deletion is printed
// as the command that undoes it. --test exits 1 when the new config does not parse (vtysh rejects a
// line), and still prints a bogus delta then: stdout is only read when it exits 0.
import { join } from 'node:path';
import { howItEnded, remaining, run } from '../exec/run.ts';
import { commandError, hasErrorLog, looksUnreachable, underHostname } from './run.ts';
import type { FrrDelta, FrrLocation } from './types.ts';
import { checkReachable } from './vtysh.ts';

const DELETE_HEADER = 'Lines To Delete';
const ADD_HEADER = 'Lines To Add';

/**
 * The delta in frr-reload.py --test's stdout: the lines of each section as printed (trailing
 * spaces and blank lines dropped, indentation kept). Throws TypeError on anything else.
 */
export function parseReloadTest(stdout: string): FrrDelta {
  const delta: FrrDelta = { toDelete: [], toAdd: [] };
  const lines = stdout.split('\n').map((l) => l.trimEnd());
  let section: string[] | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    if ((line === DELETE_HEADER || line === ADD_HEADER) && /^=+$/.test(lines[i + 1] ?? '')) {
      section = line === DELETE_HEADER ? delta.toDelete : delta.toAdd;
      i++; // the underline
      continue;
    }
    if (section === undefined) throw new TypeError(`frr-reload.py --test: unexpected line before any section: ${JSON.stringify(line.slice(0, 200))}`);
    section.push(line);
  }
  return delta;
}

export const configFile = (location: FrrLocation): string => join(location.confDir, 'frr.conf');

/** frr-reload.py `--test` or `--reload` of confDir/frr.conf, as meant (before the hostname wrapper). */
export function reloadArgv(location: FrrLocation, mode: '--test' | '--reload'): string[] {
  return [
    location.reloadScript,
    mode,
    '--stdout',
    '--confdir',
    location.confDir,
    '--vty_socket',
    location.vtySocket,
    '--rundir',
    location.runDir,
    '--bindir',
    location.binDir,
    configFile(location),
  ];
}

/** `frr-reload.py --test`: FrrUnreachable when a daemon is down, FrrCommandFailed when it fails otherwise. */
export async function reloadTest(location: FrrLocation): Promise<FrrDelta> {
  const deadline = Date.now() + location.timeoutMs;
  await checkReachable(location, deadline);
  const argv = reloadArgv(location, '--test');
  const o = await run(underHostname(location, argv), remaining(deadline));
  if (o.timedOut) throw commandError('FrrUnreachable', argv, howItEnded(o, location.timeoutMs), o.stderr);
  if (o.code !== 0 || hasErrorLog(o.stderr)) {
    const reason = looksUnreachable(o.stderr) ? 'FrrUnreachable' : 'FrrCommandFailed';
    throw commandError(reason, argv, o.code === 0 ? 'logged an error' : howItEnded(o, location.timeoutMs), o.stderr);
  }
  try {
    return parseReloadTest(o.stdout);
  } catch (e) {
    throw commandError('FrrCommandFailed', argv, (e as Error).message, o.stderr);
  }
}

/**
 * `frr-reload.py --reload`: FrrUnreachable when a daemon is down before it starts (or it says it
 * cannot reach one), ReloadFailed when it exits non-zero, logs an error or runs out of time (the
 * running config may then be half changed: the next --test tells).
 */
export async function reloadApply(location: FrrLocation): Promise<void> {
  const deadline = Date.now() + location.timeoutMs;
  await checkReachable(location, deadline);
  const argv = reloadArgv(location, '--reload');
  const o = await run(underHostname(location, argv), remaining(deadline));
  if (o.timedOut) throw commandError('ReloadFailed', argv, howItEnded(o, location.timeoutMs), o.stderr);
  if (o.code !== 0 || hasErrorLog(o.stderr)) {
    const reason = looksUnreachable(o.stderr) ? 'FrrUnreachable' : 'ReloadFailed';
    throw commandError(reason, argv, o.code === 0 ? 'logged an error' : howItEnded(o, location.timeoutMs), o.stderr);
  }
}
