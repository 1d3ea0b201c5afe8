// The `ip` driver of the network concern (DESIGN §4 "Networks", §5 "iproute2"): observes a
// namespace's links with one `ip -j -d link show` plus one read of every disable_ipv6 sysctl,
// applies a pass as one `ip -force -batch -`, sets sysctls in one process, follows link changes
// with `ip monitor link`, and probes whether the kernel can make 802.1Q vLANs.
//
// Every function takes { netns } (a namespace from `ip netns`; absent = the daemon's own) and
// bounds every process it starts with a timeout (killed by its PID with SIGKILL). Failures to run
// or read a process are IpError subclasses (./errors.ts) carrying the command and its stderr;
// failures of single lines of a batch or single sysctls are results, not exceptions.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Observable } from 'rxjs';
import { IpCommandError, IpParseError } from './errors.ts';
import { run } from './run.ts';
import type { BatchFailure, BatchResult, LinkObservation, ObservedLink } from './types.ts';

export { IpCommandError, IpDeadlineError, IpError, IpParseError, IpTimeoutError } from './errors.ts';

export interface IpOptions {
  /** A namespace from `ip netns`; absent = the daemon's own namespace. */
  netns?: string;
  /** Bound on each process started (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 15_000;

/** Interface group of the probe's temporary links (not the daemon's group, so a pass never sees them). */
export const PROBE_GROUP = 4095;

const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

function checkNetns(opts: IpOptions): void {
  if (opts.netns !== undefined && !NETNS_NAME.test(opts.netns)) throw new TypeError(`invalid network namespace name ${JSON.stringify(opts.netns)}`);
}

/** `ip` or `ip -n NS`. */
export function ipArgv(opts: IpOptions): string[] {
  checkNetns(opts);
  return opts.netns === undefined ? ['ip'] : ['ip', '-n', opts.netns];
}

/** `argv` run in the namespace (`ip netns exec NS …`), or as it is without one. */
export function inNetns(opts: IpOptions, argv: readonly string[]): string[] {
  checkNetns(opts);
  return opts.netns === undefined ? [...argv] : ['ip', 'netns', 'exec', opts.netns, ...argv];
}

/** A shell (for sysctl reads and writes) in the namespace: `ip netns exec NS sh -c …` or `sh -c …`. */
function shArgv(opts: IpOptions, script: string, args: readonly string[] = []): string[] {
  return inNetns(opts, ['sh', '-c', script, 'sh', ...args]);
}

const timeoutOf = (opts: IpOptions): number => opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;

// ---------------------------------------------------------------------------------------------
// Observation

/** Group names from iproute2's group files (`ip` prints a name when one is defined there). */
let groupNames: Map<string, number> | undefined;

function loadGroupNames(): Map<string, number> {
  if (groupNames) return groupNames;
  const map = new Map<string, number>([['default', 0]]);
  for (const file of ['/usr/share/iproute2/group', '/usr/lib/iproute2/group', '/etc/iproute2/group']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /^\s*(0x[0-9a-fA-F]+|\d+)\s+(\S+)/.exec(line);
      if (m?.[1] && m[2]) map.set(m[2], Number(m[1]));
    }
  }
  groupNames = map;
  return map;
}

/**
 * The group as `ip -j` prints it: a number (as a number or a string, which `-N` asks for) or a
 * name from iproute2's group file ('default' = 0). An unknown name gives -1 (no group of ours).
 */
export function parseGroup(value: unknown, names: ReadonlyMap<string, number> = loadGroupNames()): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value !== 'string') return value === undefined ? 0 : -1;
  if (/^\d+$/.test(value) || /^0x[0-9a-fA-F]+$/.test(value)) return Number(value);
  if (value === 'default') return 0;
  return names.get(value) ?? -1;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined);
/** iproute2 prints booleans as true/false in JSON (older: 0/1, or a flag present/absent). */
const bool = (v: unknown, absent: boolean): boolean => (v === undefined ? absent : v === true || v === 1 || v === 'on');

/** One element of `ip -j -d link show` reduced to an ObservedLink; undefined for a non-link. */
export function parseLink(raw: unknown, names?: ReadonlyMap<string, number>): ObservedLink | undefined {
  if (!isObj(raw)) return undefined;
  const name = str(raw.ifname);
  if (name === undefined) return undefined;
  const flags = Array.isArray(raw.flags) ? raw.flags.filter((f): f is string => typeof f === 'string') : [];
  const linkinfo = isObj(raw.linkinfo) ? raw.linkinfo : {};
  const kind = str(linkinfo.info_kind) ?? '';
  const data = isObj(linkinfo.info_data) ? linkinfo.info_data : {};
  const link: ObservedLink = {
    name,
    kind,
    group: parseGroup(raw.group, names),
    mtu: num(raw.mtu) ?? 0,
    operstate: str(raw.operstate) ?? 'UNKNOWN',
    up: flags.includes('UP'),
  };
  const master = str(raw.master);
  if (master !== undefined) link.master = master;
  if (kind === 'vxlan') {
    const vx: NonNullable<ObservedLink['vxlan']> = { id: num(data.id) ?? -1, dstport: num(data.port) ?? 0, learning: bool(data.learning, true) };
    const local = str(data.local) ?? str(data.local6);
    if (local !== undefined) vx.local = local;
    const dev = str(data.link);
    if (dev !== undefined) vx.dev = dev;
    link.vxlan = vx;
  }
  if (kind === 'vlan') {
    const vl: NonNullable<ObservedLink['vlan']> = { id: num(data.id) ?? -1 };
    const lower = str(raw.link);
    if (lower !== undefined) vl.link = lower;
    link.vlan = vl;
  }
  if (str(linkinfo.info_slave_kind) === 'bridge' && isObj(linkinfo.info_slave_data)) {
    const sd = linkinfo.info_slave_data;
    link.bridgePort = { learning: bool(sd.learning, true), neighSuppress: bool(sd.neigh_suppress, false) };
  }
  return link;
}

/**
 * Every disable_ipv6 of the namespace, one line "<ifname>\t<value>" each (all shell builtins: one
 * process). A sysctl file gives its value on the first read and nothing after it, so the shell's
 * byte-wise `read` sees no newline and fails while it has the value (one byte: enough for 0/1).
 */
const READ_IPV6_SCRIPT = `for f in /proc/sys/net/ipv6/conf/*/disable_ipv6; do
  [ -r "$f" ] || continue
  v=
  IFS= read -r v < "$f" || [ -n "$v" ] || continue
  d=\${f%/disable_ipv6}
  printf '%s\\t%s\\n' "\${d##*/}" "$v"
done`;

/** net.ipv6.conf.<if>.disable_ipv6 per interface name, from one process in the namespace. */
export async function readIpv6Disabled(opts: IpOptions = {}): Promise<Record<string, boolean>> {
  const argv = shArgv(opts, READ_IPV6_SCRIPT);
  const r = await run(argv, { timeoutMs: timeoutOf(opts) });
  if (r.code !== 0) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
  const out: Record<string, boolean> = {};
  for (const line of r.stdout.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab <= 0) continue;
    out[line.slice(0, tab)] = line.slice(tab + 1).trim() !== '0';
  }
  return out;
}

/** One `ip [-n NS] -N -j -d link show` and one sysctl read (run side by side), as one observation. */
export async function observeLinks(opts: IpOptions = {}): Promise<LinkObservation> {
  const argv = [...ipArgv(opts), '-N', '-j', '-d', 'link', 'show'];
  const [r, sysctls] = await Promise.all([run(argv, { timeoutMs: timeoutOf(opts) }), readIpv6Disabled(opts)]);
  if (r.code !== 0) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
  let parsed: unknown;
  try {
    parsed = r.stdout.trim() === '' ? [] : JSON.parse(r.stdout);
  } catch (e) {
    throw new IpParseError(argv, r.stderr, (e as Error).message);
  }
  if (!Array.isArray(parsed)) throw new IpParseError(argv, r.stderr, 'not a JSON array');
  const links = parsed.map((raw) => parseLink(raw)).filter((l): l is ObservedLink => l !== undefined);
  const ipv6Disabled: Record<string, boolean> = {};
  for (const l of links) {
    const v = sysctls[l.name];
    if (v !== undefined) ipv6Disabled[l.name] = v;
  }
  return { links, ipv6Disabled };
}

// ---------------------------------------------------------------------------------------------
// Batches

/**
 * After every line of a batch the driver adds this one; its output on stdout counts the lines ip
 * finished. `-force` carries on past a failing command, but an invalid argument (`invarg`) makes
 * ip exit at once, without "Command failed": the count tells which line that was, and the lines
 * after it go to a new process. Lines handed to applyBatch must therefore print nothing on stdout.
 */
const MARKER = 'link show dev lo';
const MARKER_OUTPUT = /^\d+: lo[:@]/;
const COMMAND_FAILED = /^Command failed (.*):(\d+)\s*$/;

export interface BatchOutcome extends BatchResult {
  /** How many `ip` processes the batch took (1 unless a line stopped ip outright). */
  processes: number;
}

function checkLine(line: string, i: number): void {
  if (/[\n\r\0]/.test(line)) throw new TypeError(`batch line ${i} holds a line break or NUL: ${JSON.stringify(line)}`);
  if (/\\\s*$/.test(line)) throw new TypeError(`batch line ${i} ends with a backslash (ip would join the next line): ${JSON.stringify(line)}`);
}

/**
 * Splits the stderr of `ip -force -batch -` into the failures it reports ("Command failed -:N",
 * preceded by the messages of line N) and what it printed after the last of them (`tail`: the
 * message of a line that stopped ip, or warnings).
 */
export function parseBatchStderr(stderr: string): { failed: Array<{ ipLine: number; message: string }>; tail: string[] } {
  const failed: Array<{ ipLine: number; message: string }> = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    const m = COMMAND_FAILED.exec(line);
    if (m) {
      failed.push({ ipLine: Number(m[2]), message: pending.join('\n') || 'command failed' });
      pending = [];
    } else {
      pending.push(line);
    }
  }
  return { failed, tail: pending };
}

/**
 * Applies lines with `ip [-n NS] -force -batch -` (stdin), normally in one process. Every failed
 * line is reported with its 0-based index and ip's message; the other lines are applied all the
 * same. Success = no failures. Blank and comment lines are skipped. Throws IpError when ip cannot
 * be run, times out, dies of a signal or prints what cannot be attributed to a line. With
 * `notAfterMs`, no process of the batch starts its lines after that time (IpDeadlineError).
 */
export async function applyBatch(lines: readonly string[], opts: IpOptions & { notAfterMs?: number } = {}): Promise<BatchOutcome> {
  lines.forEach(checkLine);
  const argv = [...ipArgv(opts), '-force', '-batch', '-'];
  const failures: BatchFailure[] = [];
  let processes = 0;
  let start = 0;
  while (start < lines.length) {
    // ip's line numbers (1-based) → our indexes; each sent line is followed by its marker.
    const sent: number[] = [];
    const byIpLine = new Map<number, number>();
    const input: string[] = [];
    for (let i = start; i < lines.length; i++) {
      const line = lines[i] as string;
      const t = line.trim();
      if (t === '' || t.startsWith('#')) continue;
      input.push(line, MARKER);
      byIpLine.set(input.length - 1, i);
      sent.push(i);
    }
    if (sent.length === 0) break;
    processes++;
    const r = await run(argv, { input: `${input.join('\n')}\n`, timeoutMs: timeoutOf(opts), ...(opts.notAfterMs !== undefined ? { notAfterMs: opts.notAfterMs } : {}) });
    if (r.signal) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
    const finished = r.stdout.split('\n').filter((l) => MARKER_OUTPUT.test(l)).length;
    const { failed, tail } = parseBatchStderr(r.stderr);
    for (const f of failed) {
      const index = byIpLine.get(f.ipLine);
      if (index !== undefined) failures.push({ line: index, message: f.message });
      else if (f.ipLine % 2 === 0) throw new IpParseError(argv, r.stderr, `ip's own marker line ${f.ipLine} (${MARKER}) failed: ${f.message}`);
      else throw new IpParseError(argv, r.stderr, `a failure on line ${f.ipLine}, which was not sent`);
    }
    if (finished >= sent.length) {
      if (r.code !== 0 && failed.length === 0) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
      break;
    }
    // ip stopped on sent[finished]: that line failed outright; go on after it.
    const stoppedAt = sent[finished] as number;
    if (r.code === 0) throw new IpParseError(argv, r.stderr, `exit 0 after ${finished} of ${sent.length} lines`);
    failures.push({ line: stoppedAt, message: tail.join('\n') || `ip exited with status ${r.code} on this line` });
    start = stoppedAt + 1;
  }
  failures.sort((a, b) => a.line - b.line);
  return { failures, processes };
}

// ---------------------------------------------------------------------------------------------
// Sysctls

export interface SysctlFailure {
  key: string;
  message: string;
}

export interface SysctlResult {
  failures: SysctlFailure[];
}

/** The sysctl key that disables IPv6 on an interface (a dot in the name is a slash in the key). */
export function disableIpv6Key(ifname: string): string {
  return `net.ipv6.conf.${ifname.replace(/\./g, '/')}.disable_ipv6`;
}

/** The /proc/sys path of a dotted sysctl key (sysctl(8)'s convention: '.' separates, '/' stands for a '.'). */
export function sysctlPath(key: string): string {
  if (!/^[A-Za-z0-9_@:+\-./]+$/.test(key)) throw new TypeError(`invalid sysctl key ${JSON.stringify(key)}`);
  const parts = key.split('.').map((p) => p.replace(/\//g, '.'));
  if (parts.some((p) => p === '' || p === '.' || p === '..')) throw new TypeError(`invalid sysctl key ${JSON.stringify(key)}`);
  return `/proc/sys/${parts.join('/')}`;
}

/** Writes "$2" to the file "$1" for each pair; "@i" before and "!i" after a failed write, on stderr (builtins only). */
const WRITE_SYSCTLS_SCRIPT = `i=0
while [ $# -ge 2 ]; do
  printf '@%s\\n' "$i" >&2
  if printf '%s\\n' "$2" > "$1"; then :; else printf '!%s\\n' "$i" >&2; fi
  i=$((i+1))
  shift 2
done`;

/** Sets every key to its value in one process (inside the namespace when given); reports the keys that failed. */
export async function setSysctls(values: Readonly<Record<string, string>>, opts: IpOptions = {}): Promise<SysctlResult> {
  const keys = Object.keys(values);
  if (keys.length === 0) return { failures: [] };
  const args: string[] = [];
  for (const key of keys) {
    const value = values[key] as string;
    if (/[\n\r\0]/.test(value)) throw new TypeError(`sysctl ${key}: value holds a line break or NUL`);
    args.push(sysctlPath(key), value);
  }
  const argv = shArgv(opts, WRITE_SYSCTLS_SCRIPT, args);
  const r = await run(argv, { timeoutMs: timeoutOf(opts) });
  if (r.code !== 0 || r.signal) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
  const failures: SysctlFailure[] = [];
  const seen = new Set<number>();
  let current = -1;
  let messages: string[] = [];
  for (const raw of r.stderr.split('\n')) {
    const line = raw.trimEnd();
    let m: RegExpExecArray | null;
    if ((m = /^@(\d+)$/.exec(line))) {
      current = Number(m[1]);
      seen.add(current);
      messages = [];
    } else if ((m = /^!(\d+)$/.exec(line))) {
      const key = keys[Number(m[1])];
      if (key !== undefined) failures.push({ key, message: messages.join('\n').replace(/^sh: \d+: /gm, '') || 'write failed' });
      messages = [];
    } else if (line !== '') {
      messages.push(line);
    }
  }
  if (seen.size !== keys.length) throw new IpParseError(argv, r.stderr, `${seen.size} of ${keys.length} sysctls were attempted`);
  return { failures };
}

// ---------------------------------------------------------------------------------------------
// Events

export interface WatchOptions extends IpOptions {
  /** First delay before restarting an `ip monitor` that exited (doubles up to maxBackoffMs). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Called with each child's PID when it starts (for tests and logs). */
  onSpawn?: (pid: number) => void;
  /** Called when a child exits while subscribed, before the restart. */
  onExit?: (info: { pid: number | undefined; code: number | null; signal: NodeJS.Signals | null; stderr: string }) => void;
}

/**
 * `ip [-n NS] monitor link`: emits once per event line (an event's continuation lines, indented,
 * are not events). A child that exits while subscribed is restarted after a back-off, and one
 * value is emitted after each restart (events may have been missed meanwhile). Unsubscribing kills
 * the child by its PID (SIGTERM, SIGKILL after 2 s if it is still there).
 */
export function watchLinks(opts: WatchOptions = {}): Observable<void> {
  const argv = [...ipArgv(opts), 'monitor', 'link'];
  const first = opts.backoffMs ?? 200;
  const max = opts.maxBackoffMs ?? 5_000;
  return new Observable<void>((subscriber) => {
    let closed = false;
    let child: ChildProcess | undefined;
    let timer: NodeJS.Timeout | undefined;
    let backoff = first;

    const start = (): void => {
      if (closed) return;
      const startedAt = Date.now();
      const c = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      let buf = '';
      let stderr = '';
      c.stdout?.setEncoding('utf8');
      c.stderr?.setEncoding('utf8');
      c.stdout?.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!closed && line !== '' && !/^\s/.test(line)) subscriber.next();
        }
      });
      c.stderr?.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-4096);
      });
      c.on('error', () => {
        // spawn failure: 'close' follows and restarts it.
      });
      if (c.pid !== undefined) opts.onSpawn?.(c.pid);
      c.on('close', (code, signal) => {
        if (child === c) child = undefined;
        if (closed) return;
        opts.onExit?.({ pid: c.pid, code, signal, stderr });
        if (Date.now() - startedAt > 10 * max) backoff = first; // it ran a good while: start over
        const delay = backoff;
        backoff = Math.min(backoff * 2, max);
        timer = setTimeout(() => {
          timer = undefined;
          start();
          if (!closed) subscriber.next();
        }, delay);
      });
    };

    start();
    return () => {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = child;
      child = undefined;
      if (c?.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
      const pid = c.pid;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      const force = setTimeout(() => {
        if (c.exitCode === null && c.signalCode === null) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }, 2_000);
      force.unref();
      c.once('close', () => clearTimeout(force));
    };
  });
}

// ---------------------------------------------------------------------------------------------
// vLAN probe

export interface VlanProbe {
  supported: boolean;
  /** The kernel's message when it refused (or why the probe could not tell). */
  message?: string;
}

/**
 * Tries to make an 802.1Q vLAN on a temporary veth pair (unique names, group PROBE_GROUP or
 * opts.group) in one batch that also removes them, and says whether the kernel could.
 */
export async function probeVlan(opts: IpOptions & { group?: number } = {}): Promise<VlanProbe> {
  const group = opts.group ?? PROBE_GROUP;
  const id = randomBytes(4).toString('hex');
  const a = `vkpa${id}`;
  const b = `vkpb${id}`;
  const v = `vkpv${id}`;
  const lines = [
    `link add ${a} group ${group} type veth peer name ${b} group ${group}`,
    `link add link ${a} name ${v} group ${group} type vlan id 2`,
    `link del ${v}`,
    `link del ${a}`,
  ];
  const { failures } = await applyBatch(lines, opts);
  const failed = (i: number): BatchFailure | undefined => failures.find((f) => f.line === i);
  const veth = failed(0);
  const vlan = failed(1);
  if (!veth && failed(3)) {
    // The pair is still there: one more try, then say so.
    const again = await applyBatch([`link del ${a}`], opts);
    const f = again.failures[0];
    if (f && !/Cannot find device/.test(f.message)) {
      throw new IpCommandError([...ipArgv(opts), 'link', 'del', a], f.message, null, null, `the vLAN probe could not remove ${a}`);
    }
  }
  if (veth) return { supported: false, message: `cannot probe: the temporary veth pair was refused: ${veth.message}` };
  if (vlan) return { supported: false, message: vlan.message };
  return { supported: true };
}
