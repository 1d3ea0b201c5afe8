import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  crashBackoffMs,
  describeDomainAction,
  planDomain,
  type DomainAction,
  type DomainDesired,
  type DomainObserved,
} from '../../reconcilers/domain/plan.ts';
import type { LocalDomain } from '../../drivers/domain-run-state.ts';
import { decodeVmSpec, decodeVmStatus, encodeVmStatus, type VmStatus } from '../../schemas/index.ts';

const NOW = '2026-11-21T12:00:00.000Z';
const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

function desired(spec: Record<string, unknown> = {}, xmlHash = HASH_A): DomainDesired {
  return { spec: decodeVmSpec({ node: 'hv1', ...spec }), generation: 3, xml: `<domain/>`, xmlHash };
}

function observed(domain: LocalDomain | null, status: Partial<VmStatus> | null = null, extra: Partial<DomainObserved> = {}): DomainObserved {
  const full: VmStatus | null = status
    ? { phase: 'Running', node: 'hv1', observedGeneration: 3, domainState: 'running', xmlHash: HASH_A, conditions: [], updatedAt: NOW, ...status }
    : null;
  return { node: 'hv1', domain, status: full ? { value: full, version: 7 } : null, migration: null, now: NOW, ...extra };
}

const kinds = (actions: DomainAction[]) => actions.map((a) => a.kind);
const running: LocalDomain = { state: 'running', persistent: true };
const shutoff: LocalDomain = { state: 'shutoff', persistent: true };

/** The status a converged, running VM has: what the planner writes after starting it. */
function convergedStatus(d: DomainDesired, domain: LocalDomain | null): VmStatus {
  const first = planDomain('web1', d, observed(domain));
  const write = first.find((a) => a.kind === 'writeStatus');
  assert.ok(write && write.kind === 'writeStatus');
  return write.status;
}

describe('planDomain on the home node', () => {
  it('defines and starts a VM that does not exist, then writes Running status', () => {
    const actions = planDomain('web1', desired(), observed(null));
    assert.deepEqual(kinds(actions), ['claim', 'define', 'start', 'writeStatus']);
    const write = actions[3];
    assert.ok(write?.kind === 'writeStatus');
    assert.equal(write.status.phase, 'Running');
    assert.equal(write.status.observedGeneration, 3);
    assert.equal(write.status.xmlHash, HASH_A);
    assert.equal(write.version, null);
  });

  it('does nothing once converged (no status write either)', () => {
    const d = desired();
    const status = convergedStatus(d, null);
    assert.deepEqual(planDomain('web1', d, observed(running, status)), []);
  });

  it('does not redefine an unchanged XML after a daemon restart', () => {
    const d = desired();
    const status = convergedStatus(d, null);
    assert.ok(!kinds(planDomain('web1', d, observed(running, status))).includes('define'));
  });

  it('redefines a changed XML while running and marks a restart pending', () => {
    const d = desired({}, HASH_B);
    const actions = planDomain('web1', d, observed(running, convergedStatus(desired(), null)));
    assert.deepEqual(kinds(actions), ['define', 'writeStatus']);
    const write = actions[1];
    assert.ok(write?.kind === 'writeStatus');
    const pending = write.status.conditions.find((c) => c.type === 'RestartPending');
    assert.equal(pending?.status, 'True');
    assert.equal(pending?.reason, 'XmlChanged');
  });

  it('gracefully shuts down a running VM whose state is stopped, with its timeout', () => {
    const actions = planDomain('web1', desired({ state: 'stopped', shutdownTimeoutMs: 5000 }), observed(running, {}));
    assert.deepEqual(actions[0], { kind: 'shutdown', timeoutMs: 5000 });
    const write = actions.at(-1);
    assert.ok(write?.kind === 'writeStatus');
    assert.equal(write.status.phase, 'Stopped');
  });

  it('a forced stop (vk vm stop: forceStopAt) is one-off: honoured once, later stops are graceful again', () => {
    const at = '2026-11-21T11:59:00.000Z';
    const stop = planDomain('web1', desired({ state: 'stopped', forceStopAt: at, shutdownTimeoutMs: 5000 }), observed(running, {}));
    assert.deepEqual(kinds(stop), ['destroy', 'writeStatus']);
    const written = stop[1];
    assert.ok(written?.kind === 'writeStatus');
    assert.equal(written.status.forceStopAt, at, 'the status records the request as honoured');
    // Started again, then stopped again (a flush, vk vm shutdown): the old request no longer forces anything.
    const again = planDomain('web1', desired({ state: 'stopped', forceStopAt: at, shutdownTimeoutMs: 5000 }), observed(running, { forceStopAt: at }));
    assert.deepEqual(again[0], { kind: 'shutdown', timeoutMs: 5000 });
  });

  it('destroys at once when stopMode is force', () => {
    assert.deepEqual(kinds(planDomain('web1', desired({ state: 'stopped', stopMode: 'force' }), observed(running, {}))), [
      'destroy',
      'writeStatus',
    ]);
  });

  it('disables: stops the domain, keeps it defined, phase Disabled', () => {
    const actions = planDomain('web1', desired({ state: 'disabled' }), observed(running, {}));
    assert.deepEqual(kinds(actions), ['shutdown', 'writeStatus']);
    const write = actions[1];
    assert.ok(write?.kind === 'writeStatus');
    assert.equal(write.status.phase, 'Disabled');
  });

  it('restarts once per new restartedAt, and not again for the same value', () => {
    const at = '2026-11-21T11:59:00.000Z';
    const d = desired({ restartedAt: at });
    const before = convergedStatus(desired(), null);
    const actions = planDomain('web1', d, observed(running, before));
    assert.deepEqual(kinds(actions), ['shutdown', 'start', 'writeStatus']);
    const write = actions[2];
    assert.ok(write?.kind === 'writeStatus');
    assert.equal(write.status.restartedAt, at);
    assert.deepEqual(planDomain('web1', d, observed(running, write.status)), []);
  });

  it('starts a domain that died while it should run, at once the first time', () => {
    const d = desired();
    const status = convergedStatus(d, null);
    const actions = planDomain('web1', d, observed(shutoff, status));
    assert.deepEqual(kinds(actions), ['start', 'writeStatus']);
    const write = actions[1];
    assert.ok(write?.kind === 'writeStatus');
    assert.deepEqual(write.status.crash, { count: 1, lastAt: NOW });
  });

  it('backs off when a domain keeps dying, and starts it once the back-off has passed', () => {
    const d = desired();
    const status: VmStatus = { ...convergedStatus(d, null), crash: { count: 2, lastAt: '2026-11-21T11:59:59.500Z' } };
    const actions = planDomain('web1', d, observed(shutoff, status));
    assert.deepEqual(kinds(actions), ['wait', 'writeStatus']);
    assert.equal(actions[0]?.kind === 'wait' && actions[0].ms, crashBackoffMs(3));
    const written = actions[1];
    assert.ok(written?.kind === 'writeStatus');
    assert.equal(written.status.phase, 'Pending');
    // Later, past the back-off: the next look starts it.
    const later = new Date(Date.parse(NOW) + crashBackoffMs(3)).toISOString();
    // The back-off status (Pending) holds no guest: the start must win the VM again first.
    assert.deepEqual(kinds(planDomain('web1', d, observed(shutoff, written.status, { now: later }))), ['claim', 'start', 'writeStatus']);
  });

  it('crash back-off grows and is capped', () => {
    assert.equal(crashBackoffMs(1), 0);
    assert.equal(crashBackoffMs(2), 1000);
    assert.equal(crashBackoffMs(3), 2000);
    assert.equal(crashBackoffMs(50), 300_000);
  });

  it('leaves the VM alone while a migration involving this node is in flight', () => {
    const migration = { id: 'm1', source: 'hv1', target: 'hv2', method: 'live' as const, phase: 'copying' as const, startedAt: NOW };
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2' }), observed(running, {}, { migration })), []);
  });
});

describe('planDomain elsewhere', () => {
  it('destroys and undefines a domain running on a node that is not its spec.node', () => {
    assert.deepEqual(kinds(planDomain('web1', desired({ node: 'hv2' }), observed(running))), ['destroy', 'undefine']);
  });

  it('undefines a stopped leftover definition', () => {
    assert.deepEqual(kinds(planDomain('web1', desired({ node: 'hv2' }), observed(shutoff))), ['undefine']);
  });

  it('removes a domain whose VM was deleted from ZooKeeper', () => {
    assert.deepEqual(kinds(planDomain('web1', undefined, observed(running))), ['destroy', 'undefine']);
  });

  it('never writes the status of a VM homed on another node', () => {
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2' }), observed(null)), []);
  });
});

describe('ownership: a VM never runs on two nodes (issue 12 §1)', () => {
  const claimOf = (actions: DomainAction[]) => {
    const claim = actions.find((a) => a.kind === 'claim');
    assert.ok(claim?.kind === 'claim', `a claim in ${JSON.stringify(kinds(actions))}`);
    return claim;
  };

  it('claims the VM at the version it read before defining and starting it', () => {
    const actions = planDomain('web1', desired(), observed(null, { phase: 'Pending', node: 'hv3', domainState: 'shutoff' }));
    assert.deepEqual(kinds(actions), ['claim', 'define', 'start', 'writeStatus']);
    const claim = claimOf(actions);
    assert.equal(claim.version, 7, 'a compare-and-set on the status version the plan read');
    assert.deepEqual([claim.status.node, claim.status.phase, claim.status.domainState], ['hv1', 'Starting', undefined]);
  });

  it('a claimed status holds the guest: no other node starts it, and a copy there is a stray', () => {
    const claim = claimOf(planDomain('web1', desired(), observed(null)));
    const onHv2: DomainObserved = { ...observed(null), node: 'hv2', status: { value: claim.status, version: 0 } };
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2' }), onHv2), [], 'hv2 (stale spec) waits for hv1');
    const strayOnHv2 = planDomain('web1', desired({ node: 'hv2' }), { ...onHv2, domain: running });
    assert.deepEqual(strayOnHv2, [{ kind: 'destroy', stray: { owner: 'hv1' } }]);
  });

  it('needs no claim where the status already holds the guest for this node (a crash restart)', () => {
    const d = desired();
    const actions = planDomain('web1', d, observed(shutoff, convergedStatus(d, null)));
    assert.deepEqual(kinds(actions), ['start', 'writeStatus']);
  });

  it('retries a failed start without a new claim: a Failed status keeps the VM for its node', () => {
    const failed = { phase: 'Failed' as const, domainState: 'shutoff' };
    assert.deepEqual(kinds(planDomain('web1', desired(), observed(shutoff, failed))), ['start', 'writeStatus']);
    const onHv2: DomainObserved = { ...observed(null, failed), node: 'hv2' };
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2' }), onHv2), [], 'hv2 waits until hv1 releases it');
    const released = planDomain('web1', desired({ node: 'hv2' }), observed(shutoff, failed));
    assert.deepEqual(kinds(released), ['undefine', 'writeStatus'], 'hv1 releases it once spec.node moves');
  });

  it('a restart of a running guest claims nothing: it is already held here', () => {
    const d = desired();
    const actions = planDomain('web1', desired({ restartedAt: NOW }), observed(running, convergedStatus(d, null)));
    assert.deepEqual(kinds(actions), ['shutdown', 'start', 'writeStatus']);
  });

  it('destroys a running copy on its home node while another node holds the guest (stale domains, a manual start)', () => {
    const actions = planDomain('web1', desired(), observed(running, { node: 'hv2', phase: 'Running' }));
    assert.deepEqual(actions, [{ kind: 'destroy', stray: { owner: 'hv2' } }]);
    assert.equal(describeDomainAction('hv1', 'web1', actions[0]!), 'hv1 web1 destroy (a stray copy: hv2 owns the VM)');
  });

  it('destroys a running copy elsewhere as a stray, but stops its own guest plainly', () => {
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2' }), observed(running, { node: 'hv3' }))[0], { kind: 'destroy', stray: { owner: 'hv3' } });
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2', state: 'stopped' }), observed(running, { node: 'hv1' }))[0], { kind: 'destroy' });
    assert.deepEqual(planDomain('web1', undefined, observed(running, { node: 'hv1' }))[0], { kind: 'destroy' });
  });
});

describe('reservations: a VM at rest stays held by its node, so its session starts it without a claim', () => {
  const S1 = '0123456789abcdef';
  const S2 = 'fedcba9876543210';
  const session = (id = S1, proven = true) => ({ session: { id, proven } });
  /** The status hv1 writes for web1 stopped there, under session S1. */
  const stoppedHere = (): VmStatus => {
    const write = planDomain('web1', desired({ state: 'stopped' }), observed(shutoff, null, session())).find((a) => a.kind === 'writeStatus');
    assert.ok(write?.kind === 'writeStatus');
    return write.status;
  };

  it('writes the session as reservedBy with a Stopped or Disabled status, and not with Running or Pending', () => {
    assert.equal(stoppedHere().phase, 'Stopped');
    assert.equal(stoppedHere().reservedBy, S1);
    const disabled = planDomain('web1', desired({ state: 'disabled' }), observed(shutoff, null, session())).find((a) => a.kind === 'writeStatus');
    assert.ok(disabled?.kind === 'writeStatus' && disabled.status.reservedBy === S1);
    const started = planDomain('web1', desired(), observed(shutoff, stoppedHere(), session())).find((a) => a.kind === 'writeStatus');
    assert.ok(started?.kind === 'writeStatus' && started.status.phase === 'Running' && started.status.reservedBy === undefined);
  });

  it('starts a VM reserved by its own proven session with no claim', () => {
    assert.deepEqual(kinds(planDomain('web1', desired(), observed(shutoff, stoppedHere(), session()))), ['start', 'writeStatus']);
  });

  it('claims first when the session is not proven alive, or the reservation is another session\'s', () => {
    assert.deepEqual(kinds(planDomain('web1', desired(), observed(shutoff, stoppedHere(), session(S1, false)))), ['claim', 'start', 'writeStatus']);
    assert.deepEqual(kinds(planDomain('web1', desired(), observed(shutoff, stoppedHere(), session(S2)))), ['claim', 'start', 'writeStatus']);
    assert.deepEqual(kinds(planDomain('web1', desired(), observed(shutoff, stoppedHere()))), ['claim', 'start', 'writeStatus'], 'no session known: claim');
  });

  it('an unproven session claims even a crash restart of a guest held here', () => {
    const d = desired();
    assert.deepEqual(kinds(planDomain('web1', d, observed(shutoff, convergedStatus(d, null), session(S1, false)))), ['claim', 'start', 'writeStatus']);
  });

  it('no other node claims a reserved VM: it waits for the release, which the owner writes once spec.node moves', () => {
    const onHv2: DomainObserved = { ...observed(null, stoppedHere(), session(S2)), node: 'hv2' };
    assert.deepEqual(planDomain('web1', desired({ node: 'hv2' }), onHv2), [], 'hv2 waits');
    const release = planDomain('web1', desired({ node: 'hv2' }), observed(shutoff, stoppedHere(), session()));
    assert.deepEqual(kinds(release), ['undefine', 'writeStatus']);
    const released = release[1];
    assert.ok(released?.kind === 'writeStatus');
    assert.equal(released.status.reservedBy, undefined);
    assert.equal(released.version, 7, 'the release is a compare-and-set too');
    const after: DomainObserved = { ...onHv2, status: { value: released.status, version: 8 } };
    assert.deepEqual(kinds(planDomain('web1', desired({ node: 'hv2' }), after)), ['claim', 'define', 'start', 'writeStatus'], 'then hv2 claims it');
  });

  it('a reservation is never a write of its own (no write after a restart): it rides on the next status write', () => {
    const d = desired({ state: 'stopped' });
    assert.deepEqual(planDomain('web1', d, observed(shutoff, stoppedHere(), session(S2))), [], 'an earlier session\'s reservation stays');
    const unreserved = { ...stoppedHere() };
    delete unreserved.reservedBy;
    assert.deepEqual(planDomain('web1', d, observed(shutoff, unreserved, session())), [], 'an unreserved status at rest stays so');
    const stopped = planDomain('web1', d, observed(running, convergedStatus(desired(), null), session())).find((a) => a.kind === 'writeStatus');
    assert.ok(stopped?.kind === 'writeStatus' && stopped.status.reservedBy === S1, 'the stop\'s own status write reserves it');
  });
});

describe('describeDomainAction', () => {
  it('prints one line per action naming node and VM', () => {
    assert.equal(describeDomainAction('hv1', 'web1', { kind: 'start' }), 'hv1 web1 start');
    assert.equal(describeDomainAction('hv1', 'web1', { kind: 'shutdown', timeoutMs: 90_000 }), 'hv1 web1 shutdown (graceful, destroy after 90s)');
  });
});

describe('status comparison', () => {
  it('treats a status as unchanged whatever its key order (no write loop after a restart)', () => {
    const d = desired({ restartedAt: '2026-11-21T11:59:00.000Z' });
    const first = planDomain('web1', d, observed(running, convergedStatus(desired(), null)));
    const write = first.find((a) => a.kind === 'writeStatus');
    assert.ok(write?.kind === 'writeStatus');
    // What the informer hands back after the write: the decoded znode, keys in schema order.
    const decoded = decodeVmStatus(encodeVmStatus(write.status));
    assert.notEqual(JSON.stringify(decoded), JSON.stringify(write.status), 'precondition: key order differs');
    const seen: DomainObserved = { ...observed(running), status: { value: decoded, version: 8 } };
    assert.deepEqual(planDomain('web1', d, seen), []);
  });
});

describe('planDomain and the networks of a VM', () => {
  it('does not start a VM whose networks are not ready here: status Pending with NetworkNotReady; a running guest keeps running', () => {
    const gated: DomainDesired = { ...desired(), networksNotReady: 'network 400 does not exist' };
    const actions = planDomain('web1', gated, observed(null));
    assert.deepEqual(kinds(actions), ['define', 'writeStatus'], 'no claim, no start');
    const write = actions[1];
    assert.ok(write?.kind === 'writeStatus');
    assert.equal(write.status.phase, 'Pending');
    const c = write.status.conditions.find((x) => x.type === 'NetworkNotReady');
    assert.equal(c?.message, 'network 400 does not exist');
    assert.equal(write.status.conditions.find((x) => x.type === 'Running')?.reason, 'NetworkNotReady');

    // Once ready: claim and start, and the condition goes.
    const ready = planDomain('web1', desired(), observed(shutoff, write.status));
    assert.deepEqual(kinds(ready), ['claim', 'start', 'writeStatus']);
    const after = ready[2];
    assert.ok(after?.kind === 'writeStatus');
    assert.ok(!after.status.conditions.some((x) => x.type === 'NetworkNotReady'));

    // A guest already running is not stopped because a network went not ready.
    const status = convergedStatus(desired(), null);
    assert.ok(!planDomain('web1', gated, observed(running, status)).some((a) => a.kind === 'shutdown' || a.kind === 'destroy'));
  });
});
