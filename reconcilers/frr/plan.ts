// The FRR concern's decisions, pure: what a `frr-reload.py --test` delta means, the node status
// the observations make, and when to look again.
//
// Invariants (test/frr/plan.test.ts):
//   P1  A reload happens only when the delta is not empty; an empty delta is "in sync".
//   P2  A delta found while frr.conf already held the rendered text is drift (someone changed
//       FRR's running config, or FRR restarted without it): reported, then reverted by the reload.
//   P3  The status written is a function of the observations; two equal observations give equal
//       statuses (updatedAt aside), so an unchanged node writes nothing.
import type { FrrDelta, BgpPeerObservation, VniObservation } from '../../drivers/frr/types.ts';
import type { FrrState, NodeFrr } from '../../schemas/index.ts';
import type { FrrPeer } from './render.ts';

/** Most drift lines kept in the status (the log has them all). */
export const DRIFT_LINES = 50;

export function deltaLines(delta: FrrDelta): string[] {
  return [...delta.toDelete.map((l) => `- ${l}`), ...delta.toAdd.map((l) => `+ ${l}`)];
}

export function isEmptyDelta(delta: FrrDelta): boolean {
  return delta.toDelete.length === 0 && delta.toAdd.length === 0;
}

/** P1, P2: what a delta calls for, given whether this pass had to (re)write frr.conf. */
export function judgeDelta(delta: FrrDelta, fileRewritten: boolean): { reload: boolean; drift: boolean } {
  const reload = !isEmptyDelta(delta);
  return { reload, drift: reload && !fileRewritten };
}

export interface FrrStatusInput {
  state: FrrState;
  message?: string;
  asn?: number;
  routerId?: string;
  reloads: number;
  lastReloadAt?: string;
  lastDrift?: { at: string; lines: string[] };
  /** The peers the rendered config names (for node names and for peers bgpd does not list yet). */
  expectedPeers: FrrPeer[];
  observedPeers: BgpPeerObservation[];
  vnis: VniObservation[];
  now: string;
}

/** P3: the status of the node's FRR: every expected peer (Idle when bgpd does not list it yet), then any other bgpd lists. */
export function frrStatus(input: FrrStatusInput): NodeFrr {
  const observed = new Map(input.observedPeers.map((p) => [p.address, p]));
  const peers: NodeFrr['peers'] = input.expectedPeers.map((p) => {
    const o = observed.get(p.address);
    return { address: p.address, node: p.name, state: o?.state ?? 'Idle', prefixesReceived: o?.prefixesReceived ?? 0 };
  });
  const expected = new Set(input.expectedPeers.map((p) => p.address));
  for (const o of input.observedPeers) {
    if (!expected.has(o.address)) peers.push({ address: o.address, state: o.state, prefixesReceived: o.prefixesReceived });
  }
  return {
    state: input.state,
    ...(input.message !== undefined ? { message: oneLine(input.message).slice(0, 1024) } : {}),
    ...(input.asn !== undefined ? { asn: input.asn } : {}),
    ...(input.routerId !== undefined ? { routerId: input.routerId } : {}),
    reloads: input.reloads,
    ...(input.lastReloadAt !== undefined ? { lastReloadAt: input.lastReloadAt } : {}),
    ...(input.lastDrift ? { lastDrift: { at: input.lastDrift.at, lines: input.lastDrift.lines.slice(0, DRIFT_LINES).map((l) => oneLine(l).slice(0, 512)) } } : {}),
    peers,
    vnis: [...input.vnis]
      .sort((a, b) => a.vni - b.vni)
      .map((v) => ({ vni: v.vni, remoteVteps: [...v.remoteVteps].sort() })),
    updatedAt: input.now,
  };
}

/** Status text is one line without control characters (FRR's stderr has newlines and, at times, colour codes). */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

/** Equal but for updatedAt. */
export function sameFrrStatus(a: NodeFrr | undefined, b: NodeFrr | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return JSON.stringify({ ...a, updatedAt: '' }) === JSON.stringify({ ...b, updatedAt: '' });
}

export function establishedPeers(status: NodeFrr): number {
  return status.peers.filter((p) => p.state === 'Established').length;
}

/**
 * When to look again: soon while the node is settling (sessions not all Established, or the
 * status changed within the last settle window: VNIs and remote VTEPs follow the sessions), with
 * a back-off doubling from 1 s; otherwise at the resync.
 */
export function nextLookMs(o: { settled: boolean; attempt: number; resyncMs: number }): number | undefined {
  if (o.settled) return undefined;
  return Math.min(o.resyncMs, 1000 * 2 ** Math.min(o.attempt, 10));
}
