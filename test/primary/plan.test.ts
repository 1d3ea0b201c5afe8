// The primary coordinator's state machine (reconcilers/primary/plan.ts), as pure data: election,
// the planned hand-over's phases from both sides, barriers, refusals, and P1/P2 checked over every
// reachable state of a three-coordinator cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planPrimary, type NodeFacts, type PrimaryFacts } from '../../reconcilers/primary/plan.ts';
import { PrimaryRecordSchema, type PrimaryRecord } from '../../schemas/index.ts';

const T0 = Date.parse('2026-12-04T12:00:00.000Z');
const SESSION: Record<string, string> = { hv1: 'aaaa000000000001', hv2: 'aaaa000000000002', hv3: 'aaaa000000000003' };

function facts(me: string, over: Partial<PrimaryFacts> = {}, nodes: Record<string, Partial<NodeFacts>> = {}): PrimaryFacts {
  const all = new Map<string, NodeFacts>();
  for (const n of ['hv1', 'hv2', 'hv3']) all.set(n, { alive: true, ready: true, ...nodes[n] });
  return {
    me,
    mySession: SESSION[me]!,
    connected: true,
    stopping: false,
    coordinators: ['hv1', 'hv2', 'hv3'],
    nodes: all,
    record: null,
    lock: null,
    lockAbsentForMs: 0,
    now: T0,
    barrierMs: 5000,
    ...over,
  };
}

const record = (r: Partial<PrimaryRecord>): PrimaryRecord => PrimaryRecordSchema.parse({ node: 'hv1', phase: 'primary', since: new Date(T0 - 1000).toISOString(), term: 3, ...r });
const lockOf = (node: string) => ({ node, term: 3, since: new Date(T0).toISOString(), session: SESSION[node]! });

describe('election', () => {
  it('no record, no lock: every eligible coordinator claims (the multi picks one), term 1', () => {
    const p = planPrimary(facts('hv2'));
    assert.equal(p.step?.kind, 'claim');
    assert.equal(p.step?.when, 'before');
    assert.deepEqual(p.step?.lock, { create: { node: 'hv2', term: 1, since: new Date(T0).toISOString() } });
    assert.equal(p.step?.record.node, 'hv2');
    assert.equal(p.step?.record.term, 1);
    assert.equal(p.step?.record.last?.result, 'elected');
    assert.deepEqual(p.duties, { gateways: false, dhcp: false });
    PrimaryRecordSchema.parse(p.step?.record);
  });

  it('a non-coordinator, a flushed node, a stopping or disconnected daemon never claims', () => {
    assert.equal(planPrimary(facts('hv3', { coordinators: ['hv1', 'hv2'] })).step, undefined);
    assert.equal(planPrimary(facts('hv2', {}, { hv2: { ready: false } })).step, undefined);
    assert.equal(planPrimary(facts('hv2', { stopping: true })).step, undefined);
    assert.deepEqual(planPrimary(facts('hv2', { connected: false })), { duties: { gateways: false, dhcp: false } });
  });

  it('the primary\'s session expired (lock gone, its daemon gone): another coordinator claims at once, from the next term', () => {
    const p = planPrimary(facts('hv2', { record: record({}) }, { hv1: { alive: false } }));
    assert.equal(p.step?.kind, 'claim');
    assert.equal(p.step?.record.term, 4);
    assert.match(p.step!.message, /hv1 holds no lock \(hv1's daemon is not running\)/);
  });

  it('the recorded primary is back with a new session: it takes its lock back; the others leave it one barrier', () => {
    assert.equal(planPrimary(facts('hv1', { record: record({}) })).step?.kind, 'claim');
    const waiting = planPrimary(facts('hv2', { record: record({}), lockAbsentForMs: 1000 }));
    assert.equal(waiting.step, undefined);
    assert.equal(waiting.lookAgainMs, 4001);
    assert.equal(planPrimary(facts('hv2', { record: record({}), lockAbsentForMs: 5001 })).step?.kind, 'claim');
  });

  it('my old session still holds the lock (a restart within the session timeout): no duties, no step', () => {
    const p = planPrimary(facts('hv1', { record: record({}), lock: { ...lockOf('hv1'), session: 'bbbb000000000001' } }));
    assert.deepEqual(p, { duties: { gateways: false, dhcp: false } });
  });
});

describe('the primary and the others in phase primary', () => {
  it('the lock owner holds gateways and DHCP; everyone else nothing (P1)', () => {
    const f = { record: record({}), lock: lockOf('hv1') };
    assert.deepEqual(planPrimary(facts('hv1', f)), { duties: { gateways: true, dhcp: true } });
    assert.deepEqual(planPrimary(facts('hv2', f)), { duties: { gateways: false, dhcp: false } });
  });

  it('a request to a live, ready coordinator begins the hand-over; the request is consumed', () => {
    const r = record({ request: { to: 'hv2', at: new Date(T0).toISOString() } });
    const p = planPrimary(facts('hv1', { record: r, lock: lockOf('hv1') }));
    assert.equal(p.step?.kind, 'begin');
    assert.equal(p.step?.record.phase, 'gateways');
    assert.equal(p.step?.record.to, 'hv2');
    assert.equal(p.step?.record.request, undefined);
    assert.deepEqual(p.duties, { gateways: true, dhcp: true });
  });

  it('a request to a dead, flushed, non-coordinator node or to itself is refused, naming why', () => {
    const ask = (to: string, nodes: Record<string, Partial<NodeFacts>> = {}, coordinators = ['hv1', 'hv2', 'hv3']) =>
      planPrimary(facts('hv1', { coordinators, record: record({ request: { to, at: new Date(T0).toISOString() } }), lock: lockOf('hv1') }, nodes)).step;
    assert.match(ask('hv2', { hv2: { alive: false } })!.record.last!.message, /hv2's daemon is not running/);
    assert.match(ask('hv2', { hv2: { ready: false } })!.record.last!.message, /hv2 is flushed/);
    assert.match(ask('hv3', {}, ['hv1', 'hv2'])!.record.last!.message, /hv3 is not a coordinator/);
    const self = ask('hv1')!;
    assert.equal(self.kind, 'refuse');
    assert.equal(self.record.last?.result, 'refused');
    assert.equal(self.record.request, undefined);
  });

  it('a flushed or stopping primary hands over to the first eligible coordinator by itself; with none it stays', () => {
    const f = { record: record({}), lock: lockOf('hv1') };
    assert.equal(planPrimary(facts('hv1', f, { hv1: { ready: false } })).step?.record.to, 'hv2');
    assert.equal(planPrimary(facts('hv1', { ...f, stopping: true }, { hv2: { alive: false } })).step?.record.to, 'hv3');
    const alone = planPrimary(facts('hv1', { ...f, stopping: true }, { hv2: { alive: false }, hv3: { ready: false } }));
    assert.deepEqual(alone, { duties: { gateways: true, dhcp: true } });
  });
});

describe('a planned hand-over hv1 → hv2, phase by phase', () => {
  const gateways = record({ phase: 'gateways', to: 'hv2', since: new Date(T0 - 100).toISOString() });
  const release = record({ phase: 'release', to: 'hv2', since: new Date(T0 - 100).toISOString() });
  const dhcp = record({ node: 'hv2', phase: 'dhcp', from: 'hv1', since: new Date(T0 - 100).toISOString() });

  it('gateways: hv1 keeps everything; hv2 adds the gateways, then acks (after); hv3 nothing', () => {
    assert.deepEqual(planPrimary(facts('hv1', { record: gateways, lock: lockOf('hv1') })).duties, { gateways: true, dhcp: true });
    const t = planPrimary(facts('hv2', { record: gateways, lock: lockOf('hv1') }));
    assert.deepEqual(t.duties, { gateways: true, dhcp: false });
    assert.equal(t.step?.kind, 'ack');
    assert.equal(t.step?.when, 'after');
    assert.equal(t.step?.record.phase, 'release');
    assert.deepEqual(planPrimary(facts('hv3', { record: gateways, lock: lockOf('hv1') })).duties, { gateways: false, dhcp: false });
    // A target that is stopping takes nothing (the primary rolls back).
    assert.deepEqual(planPrimary(facts('hv2', { record: gateways, lock: lockOf('hv1'), stopping: true })), { duties: { gateways: false, dhcp: false } });
  });

  it('release: hv1 drops everything, then writes dhcp for hv2 and deletes the lock in the same multi; hv2 keeps the gateways', () => {
    const s = planPrimary(facts('hv1', { record: release, lock: lockOf('hv1') }));
    assert.deepEqual(s.duties, { gateways: false, dhcp: false });
    assert.equal(s.step?.kind, 'release');
    assert.equal(s.step?.when, 'after');
    assert.deepEqual(s.step?.lock, { delete: true });
    assert.equal(s.step?.record.node, 'hv2');
    assert.equal(s.step?.record.phase, 'dhcp');
    assert.equal(s.step?.record.from, 'hv1');
    assert.deepEqual(planPrimary(facts('hv2', { record: release, lock: lockOf('hv1') })).duties, { gateways: true, dhcp: false });
  });

  it('dhcp: hv2 takes the lock with phase primary (before DHCP); hv1 and hv3 wait for it', () => {
    const t = planPrimary(facts('hv2', { record: dhcp }));
    assert.equal(t.step?.kind, 'finish');
    assert.equal(t.step?.when, 'before');
    assert.deepEqual(t.duties, { gateways: true, dhcp: false });
    assert.equal(t.step?.record.phase, 'primary');
    assert.equal(t.step?.record.term, 4);
    assert.equal(t.step?.record.last?.result, 'completed');
    assert.deepEqual(t.step?.record.last?.steps.map((s) => s.phase), ['primary']);
    assert.equal(planPrimary(facts('hv1', { record: dhcp })).step, undefined);
    assert.equal(planPrimary(facts('hv3', { record: dhcp })).step, undefined);
  });

  it('barriers: hv2 silent past the barrier → hv1 rolls back; hv2 gone → at once; hv1 stuck in release → hv2 gives the role back', () => {
    const late = record({ phase: 'gateways', to: 'hv2', since: new Date(T0 - 6000).toISOString() });
    const a = planPrimary(facts('hv1', { record: late, lock: lockOf('hv1') }));
    assert.equal(a.step?.kind, 'rollback');
    assert.equal(a.step?.record.phase, 'primary');
    assert.equal(a.step?.record.node, 'hv1');
    assert.equal(a.step?.record.to, undefined);
    assert.equal(a.step?.record.last?.result, 'rolledBack');
    assert.match(a.step!.message, /hv2 did not take the gateways within 5000 ms/);
    assert.equal(planPrimary(facts('hv1', { record: gateways, lock: lockOf('hv1') }, { hv2: { alive: false } })).step?.kind, 'rollback');
    const stuck = record({ phase: 'release', to: 'hv2', since: new Date(T0 - 6000).toISOString() });
    const b = planPrimary(facts('hv2', { record: stuck, lock: lockOf('hv1') }));
    assert.equal(b.step?.kind, 'rollback');
    assert.deepEqual(b.duties, { gateways: false, dhcp: false });
    assert.equal(b.step?.record.node, 'hv1');
  });

  it('the old primary died mid hand-over (lock gone with its session): hv2 claims without dropping its gateways first', () => {
    const p = planPrimary(facts('hv2', { record: release }, { hv1: { alive: false } }));
    assert.equal(p.step?.kind, 'claim');
    assert.equal(p.step?.when, 'before');
  });
});

describe('P1/P2 over every state of three coordinators', () => {
  it('at most one node holds DHCP; two hold gateways only in phases gateways/release (the pair of the hand-over)', () => {
    const phases = ['primary', 'gateways', 'release', 'dhcp'] as const;
    let states = 0;
    for (const phase of phases) {
      for (const node of ['hv1', 'hv2', 'hv3']) {
        for (const to of [undefined, 'hv1', 'hv2', 'hv3']) {
          if ((phase === 'gateways' || phase === 'release') !== (to !== undefined)) continue;
          for (const lockNode of [null, 'hv1', 'hv2', 'hv3']) {
            for (const stale of [false, true]) {
              const r = record({ node, phase, ...(to ? { to } : {}), ...(phase === 'dhcp' ? { from: 'hv3' } : {}) });
              const lock = lockNode === null ? null : { ...lockOf(lockNode), session: stale ? 'ffff000000000000' : SESSION[lockNode]! };
              const duties = ['hv1', 'hv2', 'hv3'].map((me) => ({ me, ...planPrimary(facts(me, { record: r, lock })).duties }));
              const dhcp = duties.filter((d) => d.dhcp).map((d) => d.me);
              const gw = duties.filter((d) => d.gateways).map((d) => d.me);
              states++;
              assert.ok(dhcp.length <= 1, `two DHCP servers in ${JSON.stringify({ r, lock })}`);
              if (gw.length > 1) {
                assert.ok(phase === 'gateways' || phase === 'release', `two gateways in phase ${phase}: ${gw}`);
                assert.deepEqual(gw.sort(), [node, to!].sort());
              }
              if (lock === null || stale) assert.deepEqual(dhcp, [], `DHCP without an owned lock: ${JSON.stringify({ r, lock })}`);
            }
          }
        }
      }
    }
    assert.ok(states > 100);
  });
});
