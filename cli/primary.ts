// The primary coordinator as the CLI shows it: /config/primary read leniently (the daemons write it;
// a record that cannot be read is reported, never fatal to a listing), each node's role, the phases
// of a hand-over in words, and the DHCP leases the primary keeps under /networks/<vni>/leases.
// DESIGN §4 "Primary coordinator"; the record's shape is schemas/primary.ts.
import type { ZkStore } from '../drivers/zk/index.ts';
import {
  decodeDhcpLease,
  decodePrimaryRecord,
  MAC_PATTERN,
  ValidationError,
  type DhcpLease,
  type PrimaryPhase,
  type PrimaryRecord,
  type ZkPaths,
} from '../schemas/index.ts';
import { ipv4ToNumber } from '../schemas/ip.ts';
import type { Znode } from './cluster.ts';

/** /config/primary: absent (null), readable (znode) or unreadable (problem says why). */
export interface LivePrimary {
  znode: Znode<PrimaryRecord> | null;
  problem?: string;
}

export async function readPrimary(store: ZkStore, paths: ZkPaths): Promise<LivePrimary> {
  const got = await store.get(paths.primary);
  if (!got) return { znode: null };
  try {
    const value = decodePrimaryRecord(got.data);
    return { znode: { value, raw: got.data, version: got.version, stat: got.stat } };
  } catch (error) {
    if (error instanceof ValidationError) return { znode: null, problem: error.message };
    throw error;
  }
}

/** The two ends of the hand-over in progress; null in phase primary. */
export interface Handover {
  from: string;
  to: string;
  phase: Exclude<PrimaryPhase, 'primary'>;
}

export function handoverOf(record: PrimaryRecord): Handover | null {
  switch (record.phase) {
    case 'primary':
      return null;
    case 'gateways':
    case 'release':
      return { from: record.node, to: record.to ?? '?', phase: record.phase };
    case 'dhcp':
      return { from: record.from ?? '?', to: record.node, phase: record.phase };
  }
}

/**
 * A node's role: `primary`, `primary→hv2` / `primary←hv1` for the two ends of a hand-over in
 * progress, `coordinator` for the other coordinators, null for everyone else. `withPhase` adds the
 * hand-over's phase (`primary→hv2 (release)`).
 */
export function nodeRole(name: string, coordinators: readonly string[], record: PrimaryRecord | null, withPhase = false): string | null {
  if (record) {
    const h = handoverOf(record);
    const phase = withPhase && h ? ` (${h.phase})` : '';
    if (!h && record.node === name) return 'primary';
    if (h && h.from === name) return `primary→${h.to}${phase}`;
    if (h && h.to === name) return `primary←${h.from}${phase}`;
  }
  return coordinators.includes(name) ? 'coordinator' : null;
}

/** What happens in a hand-over phase from `from` to `to`, in words (`hv1 → hv2: hv2 adds the gateways and announces them`). */
export function handoverPhaseText(phase: Handover['phase'], from: string, to: string): string {
  const route = `${from} → ${to}`;
  switch (phase) {
    case 'gateways':
      return `${route}: ${to} adds the gateways and announces them`;
    case 'release':
      return `${route}: ${from} removes its gateways, stops DHCP and hands the lock over`;
    case 'dhcp':
      return `${route}: ${to} holds the gateways, takes the lock and starts DHCP`;
  }
}

/** What happens in the record's phase, in words. */
export function phaseText(record: PrimaryRecord): string {
  const h = handoverOf(record);
  if (!h) return `${record.node} is primary (term ${record.term}): it holds the gateways and runs DHCP`;
  return handoverPhaseText(h.phase, h.from, h.to);
}

/** Who holds a managed network's gateway address, by the record (describe network's "Held by"). */
export function gatewayHolders(primary: LivePrimary): string {
  if (primary.problem !== undefined) return `unknown: /config/primary cannot be read (${primary.problem.replace(/\n/g, ' ')})`;
  const record = primary.znode?.value;
  if (!record) return 'nobody: no primary coordinator yet (no /config/primary)';
  const h = handoverOf(record);
  if (!h) return `${record.node} (primary, term ${record.term})`;
  return `${h.from} and ${h.to}: hand-over in phase ${h.phase} since ${record.since} (${phaseText(record)})`;
}

// ------------------------------------------------------------------------------------- leases

/** One child of /networks/<vni>/leases: the lease, or why it cannot be read. */
export type LeaseEntry = { mac: string; lease: DhcpLease } | { mac: string; problem: string };

/** How many leases the network has (the children of its leases znode; 0 when it has none). */
export async function countLeases(store: ZkStore, paths: ZkPaths, vni: string): Promise<number> {
  return (await store.exists(paths.networkLeases(vni)))?.numChildren ?? 0;
}

/** Every lease of the network, by IP address (unreadable ones last, by MAC). */
export async function readLeases(store: ZkStore, paths: ZkPaths, vni: string): Promise<LeaseEntry[]> {
  const base = paths.networkLeases(vni);
  const children = (await store.children(base)) ?? [];
  const entries = await Promise.all(
    children.map(async (mac): Promise<LeaseEntry | null> => {
      const got = await store.get(`${base}/${mac}`);
      if (!got) return null; // expired and removed meanwhile
      if (!MAC_PATTERN.test(mac)) return { mac, problem: 'not a lease: the znode name is not a MAC address' };
      try {
        return { mac, lease: decodeDhcpLease(got.data) };
      } catch (error) {
        if (error instanceof ValidationError) return { mac, problem: error.message };
        throw error;
      }
    }),
  );
  const present = entries.filter((e): e is LeaseEntry => e !== null);
  return present.sort((a, b) => {
    if ('lease' in a && 'lease' in b) return ipv4ToNumber(a.lease.ip) - ipv4ToNumber(b.lease.ip) || a.mac.localeCompare(b.mac);
    if ('lease' in a) return -1;
    if ('lease' in b) return 1;
    return a.mac.localeCompare(b.mac);
  });
}

/** A duration for people: 45s, 12m05s, 3h20m, 2d04h. */
export function shortDuration(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** A lease's end relative to `nowMs`: `in 11h59m`, `expired 3m02s ago`, `never` (0: infinite). */
export function leaseExpiry(expires: number, nowMs: number): string {
  if (expires === 0) return 'never';
  const left = expires * 1000 - nowMs;
  return left >= 0 ? `in ${shortDuration(left)}` : `expired ${shortDuration(left)} ago`;
}
