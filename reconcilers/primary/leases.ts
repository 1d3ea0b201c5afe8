// DHCP leases between the primary's dnsmasq and ZooKeeper (/networks/<vni>/leases/<mac>): what
// dnsmasq's script reported is written there (created, updated, deleted), and read back for the
// next primary's dnsmasq, so a hand-over loses no lease. Only the primary writes leases.
import { compareAndSet, NO_CHANGE, NoNodeError, type ZkStore } from '../../drivers/zk/index.ts';
import { decodeDhcpLease, encodeDhcpLease, MAC_PATTERN, type DhcpLease, type ZkPaths } from '../../schemas/index.ts';
import type { ScriptLease } from './execute.ts';

/** The leases kept for `vni`, unreadable ones skipped. */
export async function readZkLeases(store: ZkStore, paths: ZkPaths, vni: number): Promise<Map<string, { lease: DhcpLease; version: number }>> {
  const out = new Map<string, { lease: DhcpLease; version: number }>();
  const children = (await store.children(paths.networkLeases(vni))) ?? [];
  await Promise.all(
    children
      .filter((c) => MAC_PATTERN.test(c))
      .map(async (mac) => {
        const got = await store.get(paths.networkLease(vni, mac));
        if (!got) return;
        try {
          out.set(mac, { lease: decodeDhcpLease(got.data.toString('utf8')), version: got.version });
        } catch {
          // An unreadable lease is left alone (it is not ours to guess).
        }
      }),
  );
  return out;
}

/** Leases still running at `nowS` (0 = infinite), as dnsmasq's init wants them. */
export function activeLeases(leases: Iterable<DhcpLease>, nowS: number): ScriptLease[] {
  const out: ScriptLease[] = [];
  for (const l of leases) {
    if (l.expires !== 0 && l.expires <= nowS) continue;
    out.push({ mac: l.mac, ip: l.ip, expires: l.expires, ...(l.hostname !== undefined ? { hostname: l.hostname } : {}), ...(l.clientId !== undefined ? { clientId: l.clientId } : {}) });
  }
  return out;
}

const sameLease = (a: DhcpLease, b: ScriptLease): boolean => a.ip === b.ip && a.expires === b.expires && a.hostname === b.hostname && a.clientId === b.clientId;

/**
 * Writes what dnsmasq reported (`reported`) to ZooKeeper; answers the number of changes. A kept
 * lease dnsmasq does not report is deleted only once it has expired: right after a start, dnsmasq
 * has not yet reported the leases it was given, and a lease must not be lost to that moment (a
 * lease a client released early stays until its end: harmless, its address is simply not reused
 * until then).
 */
export async function syncLeases(store: ZkStore, paths: ZkPaths, vni: number, reported: readonly ScriptLease[], node: string, now: () => string, nowS: number): Promise<number> {
  const kept = await readZkLeases(store, paths, vni);
  let changes = 0;
  const seen = new Set<string>();
  for (const r of reported) {
    if (!MAC_PATTERN.test(r.mac)) continue;
    seen.add(r.mac);
    const have = kept.get(r.mac);
    if (have && sameLease(have.lease, r)) continue;
    const lease: DhcpLease = {
      mac: r.mac,
      ip: r.ip,
      ...(r.hostname !== undefined ? { hostname: r.hostname } : {}),
      ...(r.clientId !== undefined ? { clientId: r.clientId } : {}),
      expires: r.expires,
      node,
      updatedAt: now(),
    };
    await store.ensurePath(paths.networkLeases(vni));
    const outcome = await compareAndSet(store, paths.networkLease(vni, r.mac), {
      what: `lease ${r.mac} of network ${vni}`,
      decode: (data) => decodeDhcpLease(data.toString('utf8')),
      absent: () => lease,
      encode: encodeDhcpLease,
      edit: (current, read) => (read.version !== null && sameLease(current, r) ? NO_CHANGE : lease),
    });
    if (outcome.kind === 'written') changes++;
  }
  for (const [mac, have] of kept) {
    if (seen.has(mac) || have.lease.expires === 0 || have.lease.expires > nowS) continue;
    try {
      await store.delete(paths.networkLease(vni, mac), have.version);
      changes++;
    } catch (error) {
      if (!(error instanceof NoNodeError)) throw error;
    }
  }
  return changes;
}
