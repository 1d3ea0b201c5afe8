// The primary concern's effects: the gateway links (ip, arping) and the DHCP/DNS servers
// (dnsmasq), behind one interface the daemon wires to the drivers. Ordering (DESIGN §4): gateways
// come before DHCP and go after it, since dnsmasq binds to the gateway's address.
import type { Logger } from 'pino';
import type { ObservedGateway } from '../../drivers/gateway/index.ts';
import type { BatchResult } from '../../drivers/net/types.ts';
import { IpDeadlineError } from '../../drivers/net/errors.ts';
import type { DnsmasqDriver, DnsmasqSpec, ScriptLease } from '../../drivers/dnsmasq/types.ts';
import { gatewaySysctls, planGateways, type DesiredGateway, type DhcpWanted } from './local.ts';

/** The DHCP/DNS servers (drivers/dnsmasq). */
export type DhcpServers = DnsmasqDriver;
export type { ScriptLease };

export interface PrimaryEffects {
  observeGateways(): Promise<ObservedGateway[]>;
  /** With `notAfterMs`: nothing of it starts after that time, however late this process runs (rejects then). */
  applyGatewayLines(lines: readonly string[], notAfterMs?: number): Promise<BatchResult>;
  announce(device: string, address: string): Promise<void>;
  setSysctls(values: Record<string, string>): Promise<{ failures: Array<{ key: string; message: string }> }>;
  dhcp: DhcpServers;
}

export interface LocalContext {
  node: string;
  effects: PrimaryEffects;
  group: number;
  lifetimeS: number;
  leaseTimeS?: number;
  log: Logger;
  onAction?(line: string): void;
}

export interface GatewayOutcome {
  /** Lines that failed (message per device), empty when all ran. */
  failures: string[];
  added: number;
  removed: number;
  /** VNIs whose gateway link was created anew in this pass. */
  created: number[];
}

/** When a pass that adds or renews gateways may write (its confirmation from ZooKeeper). */
export interface GatewayDeadline {
  /** Asked right before the write: false when the confirmation went stale meanwhile. */
  fresh(): boolean;
  /** Date.now() after which the write must not start, however late this process runs. */
  notAfterMs: number;
}

/**
 * Brings the gateway links to `desired` (all removed for []), announcing every address added.
 * With desired gateways, `deadline` bounds the write: a pass whose confirmation went stale (the
 * process was frozen while it observed, or between its check and the write) adds nothing and
 * says so.
 */
export async function convergeGateways(desired: readonly DesiredGateway[], ctx: LocalContext, deadline?: GatewayDeadline): Promise<GatewayOutcome> {
  const observed = await ctx.effects.observeGateways();
  const pass = planGateways(desired, observed, ctx.group, ctx.lifetimeS);
  if (pass.lines.length === 0) return { failures: [], added: 0, removed: 0, created: [] };
  if (pass.announce.length > 0) {
    const s = await ctx.effects.setSysctls(gatewaySysctls(pass.announce));
    if (s.failures.length > 0) ctx.log.warn({ failures: s.failures }, 'primary: cannot stop the bridges answering ARP for the gateways');
  }
  // Asked last, right before the write (the sysctls above take time too).
  const stale = { failures: ['the confirmation from ZooKeeper went stale during the pass: nothing added'], added: 0, removed: 0, created: [] };
  if (desired.length > 0 && deadline && !deadline.fresh()) return stale;
  let result: BatchResult;
  try {
    result = await ctx.effects.applyGatewayLines(pass.lines, desired.length > 0 ? deadline?.notAfterMs : undefined);
  } catch (error) {
    if (error instanceof IpDeadlineError) return stale;
    throw error;
  }
  const failures = result.failures.map((f) => `${pass.lines[f.line]}: ${f.message}`);
  for (const a of pass.actions) {
    ctx.onAction?.(`${ctx.node} primary ${a}`);
    ctx.log.info({ action: a }, 'primary: gateway');
  }
  const failedDevices = new Set(result.failures.map((f) => /dev (\S+)/.exec(pass.lines[f.line] ?? '')?.[1] ?? /^link add (\S+)/.exec(pass.lines[f.line] ?? '')?.[1]));
  // Announce after every line ran: the address is there, the neighbours' caches and the bridges learn it.
  await Promise.all(
    pass.announce
      .filter((g) => !failedDevices.has(g.device))
      .map((g) =>
        ctx.effects.announce(g.device, g.address).then(
          () => ctx.onAction?.(`${ctx.node} primary announce ${g.address} on ${g.device}`),
          (error: unknown) => ctx.log.warn({ err: error, device: g.device }, 'primary: gratuitous ARP failed'),
        ),
      ),
  );
  if (failures.length > 0) ctx.log.warn({ failures }, 'primary: some gateway changes failed');
  return { failures, added: pass.announce.length, removed: pass.actions.filter((a) => a.startsWith('remove')).length, created: pass.created };
}

const toSpec = (w: DhcpWanted, leaseTimeS: number | undefined): DnsmasqSpec => ({
  vni: w.vni,
  interface: w.interface,
  address: w.address,
  prefixLength: w.prefixLength,
  ...(w.range ? { range: w.range } : {}),
  ...(w.domain !== undefined ? { domain: w.domain } : {}),
  ...(leaseTimeS !== undefined ? { leaseTimeS } : {}),
});

/**
 * Brings the running DHCP/DNS servers to `wanted` (all stopped for []): stops the unwanted and the
 * changed ones, starts the missing ones with the leases `leasesOf` gives (from ZooKeeper).
 */
export async function convergeDhcp(wanted: readonly DhcpWanted[], leasesOf: (vni: number) => Promise<ScriptLease[]>, ctx: LocalContext, restart: ReadonlySet<number> = new Set()): Promise<string[]> {
  const dhcp = ctx.effects.dhcp;
  const running = await dhcp.list();
  const failures: string[] = [];
  const specs = new Map(wanted.map((w) => [w.vni, toSpec(w, ctx.leaseTimeS)]));
  for (const r of running) {
    const spec = specs.get(r.vni);
    if (spec && dhcp.specHash(spec) === r.specHash && !restart.has(r.vni)) continue;
    await dhcp.stop(r.vni);
    ctx.onAction?.(`${ctx.node} primary stop dnsmasq for ${r.vni}${!spec ? '' : restart.has(r.vni) ? ' (its gateway link was re-created)' : ' (its settings changed)'}`);
    ctx.log.info({ vni: r.vni, pid: r.pid }, 'primary: dnsmasq stopped');
  }
  const still = new Set(running.filter((r) => specs.has(r.vni) && dhcp.specHash(specs.get(r.vni)!) === r.specHash && !restart.has(r.vni)).map((r) => r.vni));
  for (const spec of specs.values()) {
    if (still.has(spec.vni)) continue;
    try {
      const leases = await leasesOf(spec.vni);
      const started = await dhcp.start(spec, leases);
      ctx.onAction?.(`${ctx.node} primary start dnsmasq for ${spec.vni} with ${leases.length} leases`);
      ctx.log.info({ vni: spec.vni, pid: started.pid, leases: leases.length }, 'primary: dnsmasq started');
    } catch (error) {
      failures.push(`dnsmasq for ${spec.vni}: ${(error as Error).message}`);
      ctx.log.warn({ err: error, vni: spec.vni }, 'primary: dnsmasq did not start');
    }
  }
  return failures;
}
