// The FRR concern's pure decisions (reconcilers/frr/plan.ts), invariants P1-P3, with plain data.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeFrrSchema } from '../../schemas/index.ts';
import { DRIFT_LINES, deltaLines, establishedPeers, frrStatus, judgeDelta, nextLookMs, sameFrrStatus, type FrrStatusInput } from '../../reconcilers/frr/plan.ts';

const EMPTY = { toDelete: [], toAdd: [] };
const HAND_EDIT = { toDelete: [], toAdd: ['router bgp 65500', ' neighbor 198.51.100.3 peer-group fabric'] };

const base: FrrStatusInput = {
  state: 'InSync',
  asn: 65500,
  routerId: '198.51.100.1',
  reloads: 1,
  expectedPeers: [
    { name: 'hv2', address: '198.51.100.2', reflectorClient: true },
    { name: 'hv3', address: '198.51.100.3', reflectorClient: true },
  ],
  observedPeers: [
    { address: '198.51.100.3', state: 'Established', prefixesReceived: 2 },
    { address: '198.51.100.2', state: 'Established', prefixesReceived: 1 },
  ],
  vnis: [
    { vni: 200, remoteVteps: ['198.51.100.3', '198.51.100.2'] },
    { vni: 100, remoteVteps: ['198.51.100.2'] },
  ],
  now: '2026-12-04T10:00:00.000Z',
};

describe('FRR decisions', () => {
  test('P1: an empty delta is in sync and reloads nothing', () => {
    assert.deepEqual(judgeDelta(EMPTY, true), { reload: false, drift: false });
    assert.deepEqual(judgeDelta(EMPTY, false), { reload: false, drift: false });
  });

  test('P2: a delta after rewriting frr.conf is a change; with frr.conf already rendered it is drift', () => {
    assert.deepEqual(judgeDelta(HAND_EDIT, true), { reload: true, drift: false });
    assert.deepEqual(judgeDelta(HAND_EDIT, false), { reload: true, drift: true });
    assert.deepEqual(judgeDelta({ toDelete: ['ipv6 forwarding'], toAdd: [] }, false), { reload: true, drift: true });
  });

  test('delta lines are marked - (to delete) and + (to add)', () => {
    assert.deepEqual(deltaLines({ toDelete: ['ip forwarding'], toAdd: ['no ip forwarding'] }), ['- ip forwarding', '+ no ip forwarding']);
  });

  test('P3: the status lists every expected peer in order, with its node, then peers bgpd has that the config does not', () => {
    const status = frrStatus({ ...base, observedPeers: [...base.observedPeers.slice(0, 1), { address: '203.0.113.9', state: 'Active', prefixesReceived: 0 }] });
    assert.deepEqual(status.peers, [
      { address: '198.51.100.2', node: 'hv2', state: 'Idle', prefixesReceived: 0 },
      { address: '198.51.100.3', node: 'hv3', state: 'Established', prefixesReceived: 2 },
      { address: '203.0.113.9', state: 'Active', prefixesReceived: 0 },
    ]);
    assert.equal(establishedPeers(status), 1);
  });

  test('P3: VNIs and their remote VTEPs are sorted; equal observations give equal statuses', () => {
    const a = frrStatus(base);
    assert.deepEqual(a.vnis, [
      { vni: 100, remoteVteps: ['198.51.100.2'] },
      { vni: 200, remoteVteps: ['198.51.100.2', '198.51.100.3'] },
    ]);
    const b = frrStatus({ ...base, observedPeers: [...base.observedPeers].reverse(), vnis: [...base.vnis].reverse(), now: '2026-12-04T10:05:00.000Z' });
    assert.ok(sameFrrStatus(a, b), 'only updatedAt differs');
    assert.ok(!sameFrrStatus(a, frrStatus({ ...base, reloads: 2 })));
    assert.ok(!sameFrrStatus(a, undefined));
    assert.ok(sameFrrStatus(undefined, undefined));
  });

  test('a message with newlines and control characters becomes one line the status schema takes', () => {
    const status = frrStatus({ ...base, state: 'FrrUnreachable', message: 'vtysh failed:\n\u001b[31mbgpd is not running\u001b[0m\n' });
    assert.equal(status.message, 'vtysh failed: [31mbgpd is not running [0m');
    // The node status's frr field goes through this schema, which refuses control characters.
    assert.doesNotThrow(() => NodeFrrSchema.parse(status));
  });

  test('drift lines are capped for the status', () => {
    const lines = Array.from({ length: 80 }, (_, i) => `+ line ${i}`);
    const status = frrStatus({ ...base, lastDrift: { at: base.now, lines } });
    assert.equal(status.lastDrift?.lines.length, DRIFT_LINES);
  });

  test('look again in 1 s, 2 s, 4 s… while settling, capped by the resync; not at all once settled', () => {
    assert.equal(nextLookMs({ settled: true, attempt: 3, resyncMs: 10_000 }), undefined);
    assert.deepEqual([0, 1, 2, 3, 4, 20].map((attempt) => nextLookMs({ settled: false, attempt, resyncMs: 10_000 })), [1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});
