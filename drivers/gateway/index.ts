// The primary coordinator's gateways on a node: one macvlan `vkgw<vni>` on the network's bridge
// `vkbr<vni>`, with the gateway's virtual MAC and address, in an interface group of its own (the
// network concern never sees it). Observed with `ip -j -d addr show group G`, changed with one
// `ip -batch`, announced with arping (gratuitous ARP, seed 000).
//
// Addresses carry a valid lifetime: the kernel removes an address whose lifetime runs out, so a
// gateway whose daemon stops renewing it (crashed, frozen, cut off from ZooKeeper) goes away by
// itself. For IPv4, `address change` re-creates an address that is gone: a renewal must look first,
// and must never start late (the caller's deadline, checked by the child process itself).
import { IpCommandError, IpParseError, applyBatch, inNetns, ipArgv, type BatchOutcome } from '../net/ip.ts';
import { run } from '../net/run.ts';

export interface GatewayOptions {
  netns?: string;
  /** The gateways' interface group. */
  group: number;
  timeoutMs?: number;
}

export interface ObservedGateway {
  name: string;
  /** The link it sits on (its lower device). */
  link?: string;
  mac: string;
  up: boolean;
  kind: string;
  addresses: Array<{ address: string; prefixLength: number; validS: number }>;
}

const FOREVER = 4294967295;

export function parseGateways(raw: unknown): ObservedGateway[] {
  if (!Array.isArray(raw)) throw new TypeError('not a JSON array');
  const out: ObservedGateway[] = [];
  for (const l of raw as Array<Record<string, unknown>>) {
    if (typeof l.ifname !== 'string') continue;
    const info = (l.linkinfo ?? {}) as { info_kind?: string };
    const flags = Array.isArray(l.flags) ? (l.flags as string[]) : [];
    const addresses = (Array.isArray(l.addr_info) ? (l.addr_info as Array<Record<string, unknown>>) : [])
      .filter((a) => a.family === 'inet' && typeof a.local === 'string' && typeof a.prefixlen === 'number')
      .map((a) => ({ address: a.local as string, prefixLength: a.prefixlen as number, validS: typeof a.valid_life_time === 'number' ? a.valid_life_time : FOREVER }));
    out.push({
      name: l.ifname,
      ...(typeof l.link === 'string' ? { link: l.link } : {}),
      mac: typeof l.address === 'string' ? l.address : '',
      up: flags.includes('UP'),
      kind: info.info_kind ?? '',
      addresses,
    });
  }
  return out;
}

/** The links of the gateways' group with their IPv4 addresses and lifetimes. */
export async function observeGateways(o: GatewayOptions): Promise<ObservedGateway[]> {
  const argv = [...ipArgv(o), '-j', '-d', 'addr', 'show', 'group', String(o.group)];
  const r = await run(argv, { timeoutMs: o.timeoutMs ?? 10_000 });
  if (r.code !== 0) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
  try {
    return parseGateways(r.stdout.trim() === '' ? [] : JSON.parse(r.stdout));
  } catch (e) {
    throw new IpParseError(argv, r.stderr, (e as Error).message);
  }
}

/**
 * Runs the lines as one `ip -batch` (the net driver's, failures mapped back to lines); with
 * `notAfterMs`, never starting after that time, however late this process runs (IpDeadlineError).
 */
export function applyGatewayLines(lines: readonly string[], o: GatewayOptions, notAfterMs?: number): Promise<BatchOutcome> {
  return applyBatch(lines, {
    ...(o.netns !== undefined ? { netns: o.netns } : {}),
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(notAfterMs !== undefined ? { notAfterMs } : {}),
  });
}

/**
 * Gratuitous ARP for `address` from `device` (Habets arping 2.23: -U unsolicited, -P reply, -c 2
 * at 20 ms, -w 0 no wait for answers; it exits 1 since nobody answers, so only a signal or a
 * missing binary is an error).
 */
export async function announce(device: string, address: string, o: GatewayOptions & { count?: number; intervalS?: number; binary?: string }): Promise<void> {
  const arping = [o.binary ?? 'arping', '-U', '-P', '-c', String(o.count ?? 2), '-W', String(o.intervalS ?? 0.02), '-w', '0', '-i', device, '-S', address, address];
  const argv = inNetns(o, arping);
  const r = await run(argv, { timeoutMs: o.timeoutMs ?? 5_000 });
  if (r.signal !== null || (r.code !== 0 && r.code !== 1)) throw new IpCommandError(argv, r.stderr, r.code, r.signal);
}
