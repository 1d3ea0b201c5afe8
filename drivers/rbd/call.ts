// One `rbd` or `ceph` call of the RBD driver: argv (no shell) with the client's options
// (--conf, --id, --keyring when given, --client_mount_timeout=N always, --format json where there
// is output to read), inside `ip netns exec NS` when the driver has a namespace, killed with its
// process group after callTimeoutMs (../exec/run.ts). Resolves to stdout; rejects with an
// RbdError (./errors.ts). Arguments that Ceph's parsers could take for options are refused here.
import { isIP } from 'node:net';
import { join } from 'node:path';
import { run, type RunOutcome } from '../exec/run.ts';
import { inNetns } from '../net/ip.ts';
import { callError, type RbdOp } from './errors.ts';
import type { RbdOptions } from './types.ts';

export interface CallSettings {
  conf?: string;
  id?: string;
  keyring?: string;
  netns?: string;
  mountTimeoutS: number;
  callTimeoutMs: number;
  binDir: string;
}

const CLIENT_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const PATH = /^\/[^\0\n]*$/;
const PART = '[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}';
const IMAGE = new RegExp(`^${PART}/${PART}$`);
const LOCKER = /^client\.\d+$/;

/** The options checked and defaulted; TypeError on one that is not usable. */
export function settingsOf(o: RbdOptions): CallSettings {
  const mountTimeoutS = o.mountTimeoutS ?? 3;
  const callTimeoutMs = o.callTimeoutMs ?? 10_000;
  if (!(Number.isFinite(mountTimeoutS) && mountTimeoutS > 0)) throw new TypeError(`RbdOptions.mountTimeoutS must be a positive number (got ${mountTimeoutS})`);
  if (!(Number.isFinite(callTimeoutMs) && callTimeoutMs > 0)) throw new TypeError(`RbdOptions.callTimeoutMs must be positive (got ${callTimeoutMs})`);
  if (o.id !== undefined && !CLIENT_ID.test(o.id)) throw new TypeError(`RbdOptions.id must be a Ceph client id without "client." (got ${JSON.stringify(o.id)})`);
  for (const [k, v] of [['conf', o.conf], ['keyring', o.keyring], ['binDir', o.binDir]] as const) {
    if (v !== undefined && !PATH.test(v)) throw new TypeError(`RbdOptions.${k} must be an absolute path (got ${JSON.stringify(v)})`);
  }
  inNetns({ ...(o.netns !== undefined ? { netns: o.netns } : {}) }, []); // throws on a bad namespace name
  return {
    ...(o.conf !== undefined ? { conf: o.conf } : {}),
    ...(o.id !== undefined ? { id: o.id } : {}),
    ...(o.keyring !== undefined ? { keyring: o.keyring } : {}),
    ...(o.netns !== undefined ? { netns: o.netns } : {}),
    mountTimeoutS,
    callTimeoutMs,
    binDir: o.binDir ?? '/usr/bin',
  };
}

export function checkImage(image: string): string {
  if (!IMAGE.test(image)) throw new TypeError(`RBD image must be POOL/IMAGE (got ${JSON.stringify(image)})`);
  return image;
}

export function checkLocker(locker: string): string {
  if (!LOCKER.test(locker)) throw new TypeError(`RBD locker must be client.N (got ${JSON.stringify(locker)})`);
  return locker;
}

/** A lock id: any text Ceph keeps ("auto 140…" has a space); it goes after `--`. */
export function checkLockId(id: string): string {
  if (id === '' || /[\0\n]/.test(id)) throw new TypeError(`invalid RBD lock id ${JSON.stringify(id)}`);
  return id;
}

/** A blocklist address: "IP", "IP:PORT/NONCE" (v2:/v1: prefixes and [v6] allowed). */
export function checkBlocklistAddress(address: string): string {
  const m = /^(?:v[12]:)?(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3}))(?::\d{1,5}(?:\/\d{1,10})?)?$/.exec(address);
  if (!m || isIP(m[1] ?? m[2]!) === 0) throw new TypeError(`invalid blocklist address ${JSON.stringify(address)} (want e.g. 198.51.100.7:0/0)`);
  return address;
}

/** The options every call carries (before the command's own words). */
function clientArgs(s: CallSettings): string[] {
  return [
    ...(s.conf !== undefined ? ['--conf', s.conf] : []),
    ...(s.id !== undefined ? ['--id', s.id] : []),
    ...(s.keyring !== undefined ? ['--keyring', s.keyring] : []),
    `--client_mount_timeout=${s.mountTimeoutS}`,
  ];
}

export type Tool = 'rbd' | 'ceph';

/** The command as run, without the namespace wrapper. */
export function commandOf(s: CallSettings, tool: Tool, args: readonly string[], json: boolean): string[] {
  return [join(s.binDir, tool), ...clientArgs(s), ...(json ? ['--format', 'json'] : []), ...args];
}

/** Runs the command; its outcome, or an RbdError when it did not exit 0 and `accept` does not take it. */
export async function call(
  s: CallSettings,
  tool: Tool,
  args: readonly string[],
  opts: { json?: boolean; op?: RbdOp; accept?: (o: RunOutcome) => boolean } = {},
): Promise<RunOutcome> {
  const command = commandOf(s, tool, args, opts.json ?? false);
  const o = await run(inNetns(s.netns !== undefined ? { netns: s.netns } : {}, command), s.callTimeoutMs);
  if (o.code === 0 && !o.timedOut && o.failure === undefined) return o;
  if (!o.timedOut && o.failure === undefined && opts.accept?.(o)) return o;
  throw callError(o, command, s.callTimeoutMs, opts.op ?? 'other');
}
