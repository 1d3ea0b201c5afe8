// vtysh for the FRR driver: whether FRR's daemons answer on their vty sockets, `show … json`
// commands, and the pure parsers of what FRR 8.4 prints for them.
//
// `show bgp l2vpn evpn summary json` (FRR 8.4):
//   {"routerId":"198.51.100.1","as":65500,…,"peers":{"198.51.100.2":{"hostname":"hv2",
//    "remoteAs":65500,…,"pfxRcd":1,"pfxSnt":2,"state":"Established","peerState":"OK",…}},…}
//   `{}` when bgpd has no `router bgp`.
// `show evpn vni json`:
//   {"100":{"vni":100,"type":"L2","vxlanIf":"vkvx100",…,"numRemoteVteps":1,
//    "remoteVteps":["198.51.100.2"]}}
//   remoteVteps is absent when there is none; `{}` with advertise-all-vni and no VNI; nothing at
//   all (empty output, exit 0) when EVPN is not configured.
// A daemon that is down: vtysh exits 1 with "bgpd is not running" (one down) or "Exiting: failed
// to connect to any daemons." (all down) on stderr.
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { howItEnded, remaining, run } from '../exec/run.ts';
import { commandError, looksUnreachable } from './run.ts';
import { FrrError, type BgpPeerObservation, type FrrLocation, type VniObservation } from './types.ts';

export const DEFAULT_DAEMONS: readonly string[] = ['zebra', 'bgpd'];

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Resolves undefined when something accepts a connection on the unix socket `path`, else why not. */
function probeSocket(path: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = createConnection({ path });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(`${path} did not accept a connection within ${timeoutMs} ms`);
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(undefined);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(
        e.code === 'ENOENT'
          ? `no vty socket ${path}`
          : e.code === 'ECONNREFUSED'
            ? `${path} refuses connections`
            : e.code === 'EAGAIN'
              ? `${path} takes no more connections: its queue is full (the daemon is frozen or overloaded)`
              : `${path}: ${e.message}`,
      );
    });
  });
}

/**
 * Throws FrrUnreachable unless every daemon of location.daemons accepts a connection on its vty
 * socket. A frozen daemon still accepts (the kernel queues the connection) until its listen queue
 * is full: the command after this then runs into its timeout; once the queue is full, the probe
 * itself fails with EAGAIN.
 */
export async function checkReachable(location: FrrLocation, deadline: number): Promise<void> {
  const daemons = location.daemons ?? DEFAULT_DAEMONS;
  const why = await Promise.all(daemons.map((d) => probeSocket(join(location.vtySocket, `${d}.vty`), remaining(deadline))));
  const down = daemons.flatMap((d, i) => (why[i] === undefined ? [] : [`${d}: ${why[i]}`]));
  if (down.length > 0) throw new FrrError('FrrUnreachable', `FRR is not running: ${down.join('; ')}`);
}

/** `vtysh --vty_socket S --config_dir C -c COMMAND` as meant (no hostname wrapper: shows do not print it). */
export function vtyshArgv(location: FrrLocation, ...commands: string[]): string[] {
  return [join(location.binDir, 'vtysh'), '--vty_socket', location.vtySocket, '--config_dir', location.confDir, ...commands.flatMap((c) => ['-c', c])];
}

/** Runs a `show … json` command (after the reachability check) and parses its output; empty output is `{}`. */
export async function showJson(location: FrrLocation, command: string): Promise<unknown> {
  const deadline = Date.now() + location.timeoutMs;
  await checkReachable(location, deadline);
  const argv = vtyshArgv(location, command);
  const o = await run(argv, remaining(deadline));
  if (o.timedOut) throw commandError('FrrUnreachable', argv, howItEnded(o, location.timeoutMs), o.stderr);
  if (o.code !== 0) {
    const reason = looksUnreachable(o.stderr) || looksUnreachable(o.stdout) ? 'FrrUnreachable' : 'FrrCommandFailed';
    throw commandError(reason, argv, howItEnded(o, location.timeoutMs), o.stderr || o.stdout);
  }
  const text = o.stdout.trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // vtysh prints `% Unknown command: …` and friends on stdout with exit 0.
    throw commandError('FrrCommandFailed', argv, `cannot parse the output as JSON: ${text.slice(0, 200)}`, o.stderr);
  }
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined);

/** Orders IPv4 addresses numerically, anything else after them as text. */
export function compareAddresses(a: string, b: string): number {
  const key = (s: string): number[] | undefined => {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
    return m ? m.slice(1).map(Number) : undefined;
  };
  const ka = key(a);
  const kb = key(b);
  if (ka && kb) {
    for (let i = 0; i < 4; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
    return 0;
  }
  if (ka) return -1;
  if (kb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `show bgp l2vpn evpn summary json` → its peers, by address; [] without `router bgp` (`{}`). */
export function parseBgpSummary(json: unknown): BgpPeerObservation[] {
  if (!isObj(json)) throw new TypeError('BGP summary: not a JSON object');
  if (json.peers === undefined) return [];
  if (!isObj(json.peers)) throw new TypeError('BGP summary: "peers" is not an object');
  const peers: BgpPeerObservation[] = [];
  for (const [address, raw] of Object.entries(json.peers)) {
    if (!isObj(raw)) throw new TypeError(`BGP summary: peer ${address} is not an object`);
    const state = typeof raw.state === 'string' ? raw.state : undefined;
    if (state === undefined) throw new TypeError(`BGP summary: peer ${address} has no state`);
    peers.push({ address, state, prefixesReceived: num(raw.pfxRcd) ?? 0 });
  }
  return peers.sort((a, b) => compareAddresses(a.address, b.address));
}

/** `show evpn vni json` → VNIs in ascending order, remote VTEPs sorted ([] when absent). */
export function parseEvpnVnis(json: unknown): VniObservation[] {
  if (!isObj(json)) throw new TypeError('EVPN VNIs: not a JSON object');
  const vnis: VniObservation[] = [];
  for (const [key, raw] of Object.entries(json)) {
    if (!isObj(raw)) throw new TypeError(`EVPN VNIs: entry ${key} is not an object`);
    const vni = num(raw.vni) ?? num(key);
    if (vni === undefined) throw new TypeError(`EVPN VNIs: entry ${key} has no VNI number`);
    const vteps = raw.remoteVteps === undefined ? [] : raw.remoteVteps;
    if (!Array.isArray(vteps)) throw new TypeError(`EVPN VNIs: remoteVteps of ${key} is not an array`);
    // FRR 8.4 prints addresses here; an object with an "ip" (as FRR's per-VNI detail prints them) is taken too.
    const remoteVteps = vteps
      .map((v: unknown) => (typeof v === 'string' ? v : isObj(v) && typeof v.ip === 'string' ? v.ip : undefined))
      .filter((v): v is string => v !== undefined)
      .sort(compareAddresses);
    vnis.push({ vni, remoteVteps });
  }
  return vnis.sort((a, b) => a.vni - b.vni);
}

/** Parses with `parse`, turning a TypeError into FrrCommandFailed naming the command. */
export function parsed<T>(location: FrrLocation, command: string, json: unknown, parse: (j: unknown) => T): T {
  try {
    return parse(json);
  } catch (e) {
    throw commandError('FrrCommandFailed', vtyshArgv(location, command), `unexpected output: ${(e as Error).message}`);
  }
}
