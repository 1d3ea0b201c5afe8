// The RBD concern's pure decisions (reconcilers/rbd/plan.ts B1–B4, reconcilers/rbd-readiness.ts
// R1–R3) and how the domain planner reads the verdict.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { candidateOf, checkDueInMs, classifyLocks, flushLocksPending, flushLocksRefusal, ownerOf, POLL_MS, REFRESH_MS } from '../../reconcilers/rbd/plan.ts';
import { RBD_CLEAR_MAX_AGE_MS, rbdIncomingGate, rbdStartGate } from '../../reconcilers/rbd-readiness.ts';
import { planDomain } from '../../reconcilers/domain/plan.ts';
import { addressHost } from '../../drivers/rbd/types.ts';
import { decodeRbdCheck, decodeVmSpec, decodeVmStatus, encodeRbdCheck, type MigrationRecord, type RbdCheck, type VmStatus } from '../../schemas/index.ts';

const NOW = '2026-12-04T12:00:00.000Z';
const nowMs = Date.parse(NOW);
const spec = (over: Record<string, unknown> = {}) => decodeVmSpec({ node: 'hv1', rbd: ['rbd/web1'], ...over });
const status = (over: Partial<VmStatus> = {}): { value: VmStatus; version: number } => ({
  value: decodeVmStatus({ phase: 'Running', node: 'hv1', observedGeneration: 1, conditions: [], updatedAt: NOW, ...over }),
  version: 4,
});
const record = (over: Partial<MigrationRecord> = {}): MigrationRecord =>
  ({ id: 'm1', source: 'hv2', target: 'hv1', method: 'live', phase: 'requested', sourceSession: 'abc', requestedAt: NOW, phaseSince: NOW, ...over }) as MigrationRecord;
const facts = { me: 'hv1', myAddress: '198.51.100.1', nodeOf: new Map([['198.51.100.2', 'hv2']]) };
const lock = (address: string, id = 'auto 1') => ({ id, locker: 'client.4100', address });
const check = (over: Partial<RbdCheck> = {}): RbdCheck =>
  decodeRbdCheck({ node: 'hv1', purpose: 'start', statusVersion: 4, verdict: 'clear', images: [{ image: 'rbd/web1', locks: [] }], checkedAt: NOW, ...over });

describe('addressHost', () => {
  it('takes the host of a Ceph client address in its usual forms', () => {
    assert.equal(addressHost('198.51.100.1:0/3412395771'), '198.51.100.1');
    assert.equal(addressHost('v2:198.51.100.1:0/12'), '198.51.100.1');
    assert.equal(addressHost('[2001:db8::1]:0/7'), '2001:db8::1');
    assert.equal(addressHost('198.51.100.7:0/0'), '198.51.100.7');
  });
});

describe('B1: which VMs this node checks', () => {
  it('a start here: spec names it, running, no active domain, nobody else holds the guest', () => {
    assert.deepEqual(candidateOf('hv1', 'web1', spec(), null, null, false), { vm: 'web1', purpose: 'start', images: ['rbd/web1'], statusVersion: null });
    assert.equal(candidateOf('hv1', 'web1', spec(), status({ phase: 'Stopped', node: 'hv1' }), null, false)?.purpose, 'start');
  });
  it('nothing to check: no RBD disks, another home, stopped, running here, or the guest held by another node', () => {
    assert.equal(candidateOf('hv1', 'web1', spec({ rbd: [] }), null, null, false), undefined);
    assert.equal(candidateOf('hv1', 'web1', spec({ node: 'hv2' }), null, null, false), undefined);
    assert.equal(candidateOf('hv1', 'web1', spec({ state: 'stopped' }), null, null, false), undefined);
    assert.equal(candidateOf('hv1', 'web1', spec(), status(), null, true), undefined);
    assert.equal(candidateOf('hv1', 'web1', spec(), status({ node: 'hv2', phase: 'Running' }), null, false), undefined);
  });
  it('an incoming migration in phase requested, bound to the record', () => {
    const c = candidateOf('hv1', 'web1', spec(), status({ node: 'hv2', phase: 'Running' }), record(), false);
    assert.deepEqual(c, { vm: 'web1', purpose: 'incoming', images: ['rbd/web1'], migration: 'm1', source: 'hv2' });
    assert.equal(candidateOf('hv1', 'web1', spec(), status({ node: 'hv2' }), record({ phase: 'prepared' }), false), undefined);
  });
});

describe('B2: what a lock means', () => {
  it('ownerOf: this node by its own address, others by their published one', () => {
    assert.equal(ownerOf('198.51.100.1:0/1', facts), 'hv1');
    assert.equal(ownerOf('198.51.100.2:0/1', facts), 'hv2');
    assert.equal(ownerOf('192.0.2.9:0/1', facts), undefined);
  });
  it('no lock: clear; own lock without a QEMU here: stale (removed), clear', () => {
    assert.equal(classifyLocks([{ image: 'rbd/web1', lockers: [] }], { ...facts, liveHere: false }).verdict, 'clear');
    const c = classifyLocks([{ image: 'rbd/web1', lockers: [lock('198.51.100.1:0/9')] }], { ...facts, liveHere: false });
    assert.equal(c.verdict, 'clear');
    assert.deepEqual(c.stale, [{ image: 'rbd/web1', lock: { ...lock('198.51.100.1:0/9'), node: 'hv1' } }]);
    assert.deepEqual(c.images[0]!.locks, []);
  });
  it('own lock with a live QEMU here: inUse, never removed', () => {
    const c = classifyLocks([{ image: 'rbd/web1', lockers: [lock('198.51.100.1:0/9')] }], { ...facts, liveHere: true });
    assert.equal(c.verdict, 'inUse');
    assert.deepEqual(c.stale, []);
  });
  it('another node\'s lock: held, naming it; an unknown address is named as such', () => {
    const c = classifyLocks([{ image: 'rbd/web1', lockers: [lock('198.51.100.2:0/5', 'mine')] }], { ...facts, liveHere: false });
    assert.equal(c.verdict, 'held');
    assert.equal(c.reason, 'RbdLockHeld');
    assert.match(c.message!, /rbd\/web1 is locked by hv2 \(client\.4100 198\.51\.100\.2:0\/5\)/);
    const u = classifyLocks([{ image: 'rbd/web1', lockers: [lock('192.0.2.9:0/5')] }], { ...facts, liveHere: false });
    assert.match(u.message!, /a client at 192\.0\.2\.9 that is no node's storage address/);
  });
  it('an incoming migration: the source\'s lock is expected; a third node\'s still refuses', () => {
    assert.equal(classifyLocks([{ image: 'rbd/web1', lockers: [lock('198.51.100.2:0/5')] }], { ...facts, liveHere: false, source: 'hv2' }).verdict, 'clear');
    const three = { ...facts, nodeOf: new Map([...facts.nodeOf, ['198.51.100.3', 'hv3']]) };
    assert.equal(classifyLocks([{ image: 'rbd/web1', lockers: [lock('198.51.100.3:0/5')] }], { ...three, liveHere: false, source: 'hv2' }).verdict, 'held');
  });
});

describe('B4: when a check is due', () => {
  const c = { vm: 'web1', purpose: 'start' as const, images: ['rbd/web1'], statusVersion: 4 };
  it('due with none, for another node, another status version or other images', () => {
    assert.equal(checkDueInMs(c, null, 'hv1', nowMs), undefined);
    assert.equal(checkDueInMs(c, check({ node: 'hv2' }), 'hv1', nowMs), undefined);
    assert.equal(checkDueInMs(c, check({ statusVersion: 3 }), 'hv1', nowMs), undefined);
    assert.equal(checkDueInMs(c, check({ images: [{ image: 'rbd/other', locks: [] }] }), 'hv1', nowMs), undefined);
  });
  it('a clear one is refreshed after REFRESH_MS, a blocked one polled every POLL_MS', () => {
    assert.equal(checkDueInMs(c, check(), 'hv1', nowMs + 1000), REFRESH_MS - 1000);
    assert.equal(checkDueInMs(c, check(), 'hv1', nowMs + REFRESH_MS), undefined);
    assert.equal(checkDueInMs(c, check({ verdict: 'held', reason: 'RbdLockHeld', message: 'x' }), 'hv1', nowMs + 500), POLL_MS - 500);
    assert.ok(REFRESH_MS < RBD_CLEAR_MAX_AGE_MS);
  });
  it('an incoming check is final for its migration', () => {
    const inc = { vm: 'web1', purpose: 'incoming' as const, images: ['rbd/web1'], migration: 'm1', source: 'hv2' };
    assert.equal(checkDueInMs(inc, check({ purpose: 'incoming', migration: 'm1', source: 'hv2' }), 'hv1', nowMs + 60_000), Infinity);
    assert.equal(checkDueInMs(inc, check({ purpose: 'incoming', migration: 'm0', source: 'hv2' }), 'hv1', nowMs), undefined);
  });
});

describe('R1–R3: the gate the domain and migration planners read', () => {
  it('no RBD disks: no gate; a clear, fresh, matching check: clear', () => {
    assert.equal(rbdStartGate('hv1', [], 4, null, nowMs), undefined);
    assert.deepEqual(rbdStartGate('hv1', ['rbd/web1'], 4, check(), nowMs + 1000), { kind: 'clear' });
  });
  it('pending: none, another status version, too old, or inUse', () => {
    assert.equal(rbdStartGate('hv1', ['rbd/web1'], 4, null, nowMs)?.kind, 'pending');
    assert.equal(rbdStartGate('hv1', ['rbd/web1'], 5, check(), nowMs)?.kind, 'pending');
    assert.equal(rbdStartGate('hv1', ['rbd/web1'], 4, check(), nowMs + RBD_CLEAR_MAX_AGE_MS + 1)?.kind, 'pending');
    assert.equal(rbdStartGate('hv1', ['rbd/web1'], 4, check({ verdict: 'inUse' }), nowMs)?.kind, 'pending');
  });
  it('blocked: held or unreachable, with the reason and message (however old: no start either way)', () => {
    const g = rbdStartGate('hv1', ['rbd/web1'], 4, check({ verdict: 'held', reason: 'RbdLockHeld', message: 'rbd/web1 is locked by hv2' }), nowMs + 60_000);
    assert.deepEqual(g, { kind: 'blocked', reason: 'RbdLockHeld', message: 'rbd/web1 is locked by hv2' });
    assert.equal((rbdStartGate('hv1', ['rbd/web1'], 4, check({ verdict: 'unreachable', reason: 'RbdUnreachable', message: 'm' }), nowMs) as { reason: string }).reason, 'RbdUnreachable');
  });
  it('incoming: bound to the migration id', () => {
    const r = record();
    assert.equal(rbdIncomingGate('hv1', ['rbd/web1'], r, check())?.kind, 'pending');
    assert.deepEqual(rbdIncomingGate('hv1', ['rbd/web1'], r, check({ purpose: 'incoming', migration: 'm1', source: 'hv2' })), { kind: 'clear' });
    assert.equal(rbdIncomingGate('hv1', ['rbd/web1'], r, check({ purpose: 'incoming', migration: 'm1', source: 'hv2', verdict: 'held', reason: 'RbdLockHeld', message: 'x' }))?.kind, 'blocked');
  });
});

describe('the domain planner and the gate', () => {
  const desired = (rbd?: ReturnType<typeof rbdStartGate>) => ({ spec: spec(), generation: 1, xml: '<domain/>', xmlHash: 'a'.repeat(64), ...(rbd ? { rbd } : {}) });
  const obs = (st: { value: VmStatus; version: number } | null) => ({ node: 'hv1', domain: null, status: st, migration: null, now: NOW });
  it('pending: no start and no status write', () => {
    assert.deepEqual(planDomain('web1', desired({ kind: 'pending', why: 'x' }), obs(status({ phase: 'Running' }))), []);
  });
  it('blocked: no start; Running False with the reason, and the condition naming the holder', () => {
    const actions = planDomain('web1', desired({ kind: 'blocked', reason: 'RbdLockHeld', message: 'rbd/web1 is locked by hv2' }), obs(status({ phase: 'Stopped' })));
    assert.ok(!actions.some((a) => a.kind === 'start' || a.kind === 'claim'));
    const w = actions.find((a) => a.kind === 'writeStatus');
    assert.ok(w?.kind === 'writeStatus');
    assert.equal(w.status.conditions.find((c) => c.type === 'Running')?.reason, 'RbdLockHeld');
    assert.equal(w.status.conditions.find((c) => c.type === 'RbdLockHeld')?.message, 'rbd/web1 is locked by hv2');
  });
  it('clear: started', () => {
    assert.ok(planDomain('web1', desired({ kind: 'clear' }), obs(null)).some((a) => a.kind === 'start'));
  });
});

describe('flush-locks', () => {
  it('pending once per request, on the VM\'s node', () => {
    const s = spec({ state: 'stopped', flushLocksAt: NOW });
    assert.equal(flushLocksPending('hv1', s, null), NOW);
    assert.equal(flushLocksPending('hv2', s, null), undefined);
    assert.equal(flushLocksPending('hv1', s, check({ flushLocks: { at: NOW, result: 'done', message: 'x', removed: [] } })), undefined);
  });
  it('refused while the VM runs or may start', () => {
    assert.match(flushLocksRefusal(spec(), null, false, 'hv1')!, /desired state is running/);
    assert.match(flushLocksRefusal(spec({ state: 'stopped' }), null, true, 'hv1')!, /runs on hv1/);
    assert.match(flushLocksRefusal(spec({ state: 'stopped' }), status({ phase: 'Running' }).value, false, 'hv1')!, /running on hv1/);
    assert.equal(flushLocksRefusal(spec({ state: 'stopped' }), status({ phase: 'Stopped', domainState: 'shutoff' }).value, false, 'hv1'), undefined);
  });
  it('the check round-trips through its schema', () => {
    const c = check({ verdict: 'held', reason: 'RbdLockHeld', message: 'm', removed: [{ image: 'rbd/web1', ...lock('198.51.100.1:0/1'), node: 'hv1' }] });
    assert.deepEqual(decodeRbdCheck(JSON.parse(encodeRbdCheck(c))), c);
  });
});
