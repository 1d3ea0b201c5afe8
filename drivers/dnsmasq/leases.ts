// Leases in dnsmasq's lease-file format, one per line: `<expires> <mac> <ip> <hostname|*> <clientid|*>`
// (expires in seconds since the epoch, 0 = infinite). The init file start() writes holds one lease
// a line; the lease dir holds one file per MAC, named by the MAC, holding that MAC's line, written
// by the lease script (script.ts). The parser is strict: a line that is not plainly a lease (a
// hostname with other characters than dnsmasq allows, a file named for another MAC, a second line)
// is ignored, never half-read.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { ipv4ToNumber } from './ipv4.ts';
import type { ScriptLease } from './types.ts';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** One DNS label as dnsmasq's legal_hostname accepts it ('_' included). */
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
/** Colon-separated hex bytes, at most 255 of them (DHCP option 61). */
const CLIENT_ID = /^[0-9a-f]{2}(:[0-9a-f]{2}){0,254}$/;
const EXPIRES = /^(0|[1-9][0-9]{0,11})$/;

/** The lease with its MAC and client id in lower case, a hostname or client id dnsmasq would not take dropped; undefined when its MAC, address or expiry is not plainly one. */
export function normalizeLease(l: ScriptLease): ScriptLease | undefined {
  const mac = typeof l.mac === 'string' ? l.mac.toLowerCase() : '';
  if (!MAC.test(mac) || typeof l.ip !== 'string' || ipv4ToNumber(l.ip) === undefined) return undefined;
  if (!Number.isInteger(l.expires) || !EXPIRES.test(String(l.expires))) return undefined;
  const clientId = typeof l.clientId === 'string' ? l.clientId.toLowerCase() : undefined;
  return {
    mac,
    ip: l.ip,
    ...(typeof l.hostname === 'string' && HOSTNAME.test(l.hostname) ? { hostname: l.hostname } : {}),
    ...(clientId !== undefined && CLIENT_ID.test(clientId) ? { clientId } : {}),
    expires: l.expires,
  };
}

/** The lease-file line of a lease (no newline); the lease must be normalized. */
export function formatLease(l: ScriptLease): string {
  return `${l.expires} ${l.mac} ${l.ip} ${l.hostname ?? '*'} ${l.clientId ?? '*'}`;
}

/** One lease-file line, or undefined when it is not plainly one. */
export function parseLeaseLine(line: string): ScriptLease | undefined {
  const f = line.split(' ');
  if (f.length !== 5) return undefined;
  const [expires, mac, ip, hostname, clientId] = f as [string, string, string, string, string];
  if (!EXPIRES.test(expires) || !MAC.test(mac) || ipv4ToNumber(ip) === undefined) return undefined;
  if (hostname !== '*' && !HOSTNAME.test(hostname)) return undefined;
  if (clientId !== '*' && !CLIENT_ID.test(clientId)) return undefined;
  return {
    mac,
    ip,
    ...(hostname !== '*' ? { hostname } : {}),
    ...(clientId !== '*' ? { clientId } : {}),
    expires: Number(expires),
  };
}

/** The content of a lease dir file: exactly one line, for the MAC the file is named by. */
export function parseLeaseFile(name: string, text: string): ScriptLease | undefined {
  if (!text.endsWith('\n') || text.indexOf('\n') !== text.length - 1) return undefined;
  const lease = parseLeaseLine(text.slice(0, -1));
  return lease && lease.mac === name ? lease : undefined;
}

const byAddress = (a: ScriptLease, b: ScriptLease): number => ipv4ToNumber(a.ip)! - ipv4ToNumber(b.ip)! || a.mac.localeCompare(b.mac);

/** Later of two expiries (0 = infinite is the latest). */
const outlasts = (a: ScriptLease, b: ScriptLease): boolean => (a.expires === 0 ? b.expires !== 0 : b.expires !== 0 && a.expires > b.expires);

/**
 * The leases to give a starting dnsmasq: normalized, not expired at `nowS`, inside [first, last]
 * when given, one per MAC and one per address (the one that lasts longer), by address.
 */
export function initLeases(leases: readonly ScriptLease[], nowS: number, range?: { first: number; last: number }): ScriptLease[] {
  const byMac = new Map<string, ScriptLease>();
  for (const raw of leases) {
    const l = normalizeLease(raw);
    if (!l || (l.expires !== 0 && l.expires <= nowS)) continue;
    const a = ipv4ToNumber(l.ip)!;
    if (range && (a < range.first || a > range.last)) continue;
    const seen = byMac.get(l.mac);
    if (!seen || outlasts(l, seen)) byMac.set(l.mac, l);
  }
  const byIp = new Map<string, ScriptLease>();
  for (const l of byMac.values()) {
    const seen = byIp.get(l.ip);
    if (!seen || outlasts(l, seen)) byIp.set(l.ip, l);
  }
  return [...byIp.values()].sort(byAddress);
}

/** The leases of a lease dir (files whose name starts with '.' are the script's temporaries), by address; [] when there is no dir. */
export function readLeaseDir(dir: string): ScriptLease[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: ScriptLease[] = [];
  for (const name of names) {
    if (name.startsWith('.') || !MAC.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`${dir}/${name}`, 'utf8');
    } catch {
      continue; // removed meanwhile, or not a file
    }
    const lease = parseLeaseFile(name, text);
    if (lease) out.push(lease);
  }
  return out.sort(byAddress);
}

/** Writes `path` through a temporary file in the same directory and a rename, fsynced. */
export function writeFileAtomic(path: string, text: string, mode = 0o644): void {
  const slash = path.lastIndexOf('/');
  const tmp = `${path.slice(0, slash)}/.${path.slice(slash + 1)}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Makes `dir` hold exactly `leases` (normalized), one file per MAC; the dir itself is kept (a watcher on it stays valid). */
export function replaceLeaseDir(dir: string, leases: readonly ScriptLease[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const keep = new Set(leases.map((l) => l.mac));
  for (const name of readdirSync(dir)) if (!keep.has(name)) rmSync(`${dir}/${name}`, { force: true, recursive: true });
  for (const l of leases) writeFileAtomic(`${dir}/${l.mac}`, `${formatLease(l)}\n`);
}
