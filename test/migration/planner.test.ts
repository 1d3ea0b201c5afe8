// The migration planner with plain data: who does what in each phase, and how the domain planner
// steps aside, hands over and waits around it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LocalDomain } from '../../drivers/domain-run-state.ts';
import { planDomain, type DomainDesired } from '../../reconcilers/domain/plan.ts';
import {
  chooseMethod,
  describeMigrationStep,
  endedRecord,
  handoffStatus,
  historyAfter,
  planMigration,
  prepareVerdict,
  retryDelayMs,
  type MigrationInputs,
  type MigrationStep,
  type PeerInfo,
} from '../../reconcilers/migration/plan.ts';
import { networksNotReady } from '../../reconcilers/network-readiness.ts';
import {
  decodeMigrationRecord,
  decodeNetworkSpec,
  decodeVmSpec,
  defaultClusterConfig,
  encodeMigrationRecord,
  encodeVmStatus,
  type MigrationRecord,
  type VmStatus,
} from '../../schemas/index.ts';

const T0 = Date.parse('2026-11-21T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const S1 = '00000000000000a1';
const S2 = '00000000000000b2';
const S3 = '00000000000000c3';
const HASH = 'a'.repeat(64);
const running: LocalDomain = { state: 'running', persistent: true };
const paused: LocalDomain = { state: 'paused', persistent: false };
const shutoff: LocalDomain = { state: 'shutoff', persistent: true };
const URIS = (n: number) => ({ uri: `qemu+tcp://198.51.100.${n}/system`, migrateUri: `tcp://198.51.100.${n}` });
const PEERS = new Map<string, PeerInfo>([
  ['hv1', { session: S1, migration: URIS(1) }],
  ['hv2', { session: S2, migration: URIS(2) }],
  ['hv3', { session: S3, migration: URIS(3) }],
]);
const config = defaultClusterConfig().migration;

function spec(extra: Record<string, unknown> = {}) {
  return decodeVmSpec({ node: 'hv2', previousNode: 'hv1', ...extra });
}

function status(extra: Partial<VmStatus> = {}): VmStatus {
  return { phase: 'Running', node: 'hv1', observedGeneration: 3, domainState: 'running', xmlHash: HASH, conditions: [], updatedAt: iso(T0 - 60_000), ...extra };
}

function record(extra: Partial<MigrationRecord> = {}): MigrationRecord {
  return decodeMigrationRecord({
    id: 'm1',
    source: 'hv1',
    target: 'hv2',
    method: 'live',
    phase: 'requested',
    startedAt: iso(T0 - 1000),
    phaseSince: iso(T0 - 1000),
    sourceSession: S1,
    ...extra,
  });
}

/** What hv1 (the source, by default) sees. */
function inputs(extra: Partial<MigrationInputs> = {}): MigrationInputs {
  return {
    node: 'hv1',
    vm: 'vm1',
    nowMs: T0,
    session: S1,
    spec: spec(),
    bridges: [],
    status: { value: status(), version: 4 },
    record: null,
    domain: running,
    peers: PEERS,
    orphanForMs: 0,
    outgoing: 0,
    incoming: 0,
    config,
    ...extra,
  };
}

const withRecord = (r: Partial<MigrationRecord>, extra: Partial<MigrationInputs> = {}) => inputs({ record: { value: record(r), version: 5 }, ...extra });
const asTarget = (r: Partial<MigrationRecord>, extra: Partial<MigrationInputs> = {}) =>
  withRecord(r, { node: 'hv2', session: S2, domain: null, ...extra });

function expectKind<K extends MigrationStep['kind']>(step: MigrationStep, kind: K): Extract<MigrationStep, { kind: K }> {
  assert.equal(step.kind, kind, `expected ${kind}, got ${JSON.stringify(step)}`);
  return step as Extract<MigrationStep, { kind: K }>;
}

describe('starting a migration (source)', () => {
  it('the owner running the guest requests a live migration to spec.node', () => {
    const step = expectKind(planMigration(inputs()), 'request');
    assert.equal(step.version, null, 'no record yet: create it');
    assert.equal(step.record.source, 'hv1');
    assert.equal(step.record.target, 'hv2');
    assert.equal(step.record.method, 'live');
    assert.equal(step.record.phase, 'requested');
    assert.equal(step.record.sourceSession, S1);
    assert.equal(step.record.startedAt, iso(T0));
    // The record it writes is valid.
    assert.equal(encodeMigrationRecord(step.record).length > 0, true);
  });

  it('writes over a terminal record with its version and keeps it in the history', () => {
    const done = record({ phase: 'done', target: 'hv3', endedAt: iso(T0 - 500) });
    const step = expectKind(planMigration(inputs({ record: { value: done, version: 9 } })), 'request');
    assert.equal(step.version, 9);
    assert.deepEqual(step.record.history?.map((h) => [h.id, h.phase, h.target]), [['m1', 'done', 'hv3']]);
  });

  it('nobody but the running owner starts one', () => {
    assert.equal(planMigration(inputs({ status: { value: status({ node: 'hv3' }), version: 4 } })).kind, 'none', 'not the owner');
    assert.equal(planMigration(inputs({ status: null })).kind, 'none', 'no status: not the owner');
    assert.equal(planMigration(inputs({ domain: shutoff })).kind, 'none', 'guest not running here');
    assert.equal(planMigration(inputs({ domain: null })).kind, 'none');
    assert.equal(planMigration(inputs({ spec: spec({ state: 'stopped' }) })).kind, 'none', 'not meant to run');
    assert.equal(planMigration(inputs({ spec: spec({ node: 'hv1' }) })).kind, 'none', 'already home');
    assert.equal(planMigration(inputs({ spec: null })).kind, 'none', 'deleted');
  });

  it('waits for a target whose daemon is away; an explicit live waits for a migration URI, default moves by shutdown', () => {
    const peers = new Map(PEERS);
    peers.delete('hv2');
    assert.equal(expectKind(planMigration(inputs({ peers })), 'wait').reason, 'TargetUnavailable');
    peers.set('hv2', { session: S2 });
    const live = spec({ meta: { migrationMethod: 'live' } });
    assert.equal(expectKind(planMigration(inputs({ peers, spec: live })), 'wait').reason, 'TargetNotMigratable');
    // default: live is impossible on that target, so the guest moves by shutdown, and the record says why.
    const fallback = expectKind(planMigration(inputs({ peers })), 'request');
    assert.equal(fallback.record.method, 'shutdown');
    assert.equal(fallback.record.reason, 'FallbackToShutdown');
    assert.match(fallback.record.message ?? '', /publishes no migration URI/);
    // A shutdown migration needs no URI.
    const step = expectKind(planMigration(inputs({ peers, spec: spec({ meta: { migrationMethod: 'shutdown' } }) })), 'request');
    assert.equal(step.record.method, 'shutdown');
  });

  it('respects maxOutgoing', () => {
    const step = expectKind(planMigration(inputs({ outgoing: config.maxOutgoing })), 'wait');
    assert.equal(step.reason, 'OutgoingLimit');
    assert.equal(planMigration(inputs({ outgoing: config.maxOutgoing - 1 })).kind, 'request');
  });

  it('a live failure falls back to shutdown at once when the method is default, never when it is live', () => {
    const failed = record({ phase: 'failed', reason: 'LiveMigrationFailed', endedAt: iso(T0 - 10) });
    const fallback = expectKind(planMigration(inputs({ record: { value: failed, version: 6 } })), 'request');
    assert.equal(fallback.record.method, 'shutdown');
    assert.equal(fallback.record.reason, 'FallbackToShutdown');
    assert.equal(fallback.record.failures, 1);
    const live = planMigration(inputs({ record: { value: failed, version: 6 }, spec: spec({ meta: { migrationMethod: 'live' } }) }));
    assert.equal(expectKind(live, 'wait').reason, 'RetryBackoff');
  });

  it('backs off after a failure, not after an abort the spec asked for', () => {
    const failed = record({ phase: 'failed', reason: 'PhaseTimeout', endedAt: iso(T0 - 500), failures: 1 });
    const wait = expectKind(planMigration(inputs({ record: { value: failed, version: 6 } })), 'wait');
    assert.equal(wait.ms, retryDelayMs(2) - 500);
    const later = expectKind(planMigration(inputs({ record: { value: failed, version: 6 }, nowMs: T0 + retryDelayMs(2) })), 'request');
    assert.equal(later.record.failures, 2);
    assert.equal(later.record.method, 'live', 'only a live failure falls back');
    const retargeted = record({ phase: 'aborted', reason: 'TargetChanged', target: 'hv2', endedAt: iso(T0 - 1) });
    assert.equal(planMigration(inputs({ record: { value: retargeted, version: 6 } })).kind, 'request');
    const lost = record({ phase: 'aborted', reason: 'TargetLost', endedAt: iso(T0 - 1) });
    assert.equal(expectKind(planMigration(inputs({ record: { value: lost, version: 6 } })), 'wait').reason, 'RetryBackoff');
  });

  it('a failure on another route does not delay this one', () => {
    const failed = record({ phase: 'failed', reason: 'PhaseTimeout', target: 'hv3', endedAt: iso(T0 - 1) });
    const step = expectKind(planMigration(inputs({ record: { value: failed, version: 6 } })), 'request');
    assert.equal(step.record.failures, undefined);
  });

  it('first tells the status when a record ended elsewhere (the target refused)', () => {
    const refused = record({ phase: 'failed', reason: 'TargetHypervisorUnavailable', message: 'libvirt on hv2 does not answer', endedAt: iso(T0 - 1) });
    const migrating = status({ phase: 'Migrating', conditions: [{ type: 'Migrating', status: 'True', reason: 'Requested', message: 'x', lastTransitionTime: iso(T0 - 2000) }] });
    const step = expectKind(planMigration(inputs({ record: { value: refused, version: 6 }, status: { value: migrating, version: 8 } })), 'writeStatus');
    assert.equal(step.version, 8);
    assert.equal(step.status.phase, 'Running');
    const c = step.status.conditions.find((x) => x.type === 'Migrating');
    assert.deepEqual([c?.status, c?.reason], ['False', 'TargetHypervisorUnavailable']);
    encodeVmStatus(step.status);
  });

  it('chooseMethod follows meta, then the cluster default', () => {
    assert.equal(chooseMethod('live', 'shutdown', null, 'hv1', 'hv2'), 'live');
    assert.equal(chooseMethod('shutdown', 'live', null, 'hv1', 'hv2'), 'shutdown');
    assert.equal(chooseMethod('default', 'shutdown', null, 'hv1', 'hv2'), 'shutdown');
    assert.equal(chooseMethod('default', 'live', null, 'hv1', 'hv2'), 'live');
  });

  it('history keeps the last ten attempts', () => {
    let last: MigrationRecord | null = null;
    for (let n = 0; n < 13; n++) {
      const next: MigrationRecord = record({ id: `m${n}`, phase: 'aborted', reason: 'TargetChanged', endedAt: iso(T0 + n) });
      const history = historyAfter(last);
      if (history.length) next.history = history;
      decodeMigrationRecord(next);
      last = next;
    }
    const h = historyAfter(last);
    assert.equal(h.length, 10);
    assert.equal(h.at(-1)?.id, 'm12');
    assert.equal(h[0]?.id, 'm3');
  });
});

describe('the source drives the phases', () => {
  it('waits for the target to prepare, and gives up after the phase timeout', () => {
    const wait = expectKind(planMigration(withRecord({ phase: 'requested' })), 'wait');
    assert.equal(wait.reason, 'AwaitingTarget');
    assert.equal(wait.ms, config.phaseTimeoutMs - 1000);
    const late = expectKind(planMigration(withRecord({ phase: 'requested' }, { nowMs: T0 + config.phaseTimeoutMs })), 'end');
    assert.deepEqual([late.phase, late.reason], ['failed', 'PhaseTimeout']);
  });

  it('a retarget before the copy ends the record without touching libvirt', () => {
    for (const phase of ['requested', 'prepared'] as const) {
      const toHv3 = expectKind(planMigration(withRecord({ phase }, { spec: spec({ node: 'hv3' }) })), 'end');
      assert.deepEqual([toHv3.phase, toHv3.reason], ['aborted', 'TargetChanged']);
      const home = expectKind(planMigration(withRecord({ phase }, { spec: spec({ node: 'hv1' }) })), 'end');
      assert.match(home.message, /source: the VM stays/);
    }
    assert.equal(expectKind(planMigration(withRecord({ phase: 'prepared' }, { spec: null })), 'end').reason, 'VmDeleted');
    assert.equal(expectKind(planMigration(withRecord({ phase: 'prepared' }, { spec: spec({ state: 'stopped' }) })), 'end').reason, 'StateChanged');
  });

  it('once prepared: copies live with the target URIs and max downtime, or moves by shutdown', () => {
    const copy = expectKind(planMigration(withRecord({ phase: 'prepared' }, { spec: spec({ meta: { maxDowntimeMs: 120 } }) })), 'copy');
    assert.deepEqual(copy, { kind: 'copy', destUri: URIS(2).uri, migrateUri: URIS(2).migrateUri, maxDowntimeMs: 120 });
    const move = expectKind(planMigration(withRecord({ phase: 'prepared', method: 'shutdown' }, { spec: spec({ shutdownTimeoutMs: 2000 }) })), 'shutdownMove');
    assert.deepEqual(move, { kind: 'shutdownMove', timeoutMs: 2000, force: false });
  });

  it('does not copy to a target that went away, nor a guest that stopped', () => {
    const peers = new Map(PEERS);
    peers.delete('hv2');
    assert.equal(expectKind(planMigration(withRecord({ phase: 'prepared' }, { peers })), 'end').reason, 'TargetLost');
    assert.equal(expectKind(planMigration(withRecord({ phase: 'prepared' }, { domain: shutoff })), 'end').reason, 'SourceDomainStopped');
  });

  it('after a restart during the copy: follows a running job, else settles by where the guest is', () => {
    assert.deepEqual(planMigration(withRecord({ phase: 'copying' }, { job: { active: true, postcopy: false } })), { kind: 'follow', abort: false });
    assert.equal(planMigration(withRecord({ phase: 'copying' }, { job: null, domain: null })).kind, 'complete', 'undefined here: it arrived');
    assert.equal(expectKind(planMigration(withRecord({ phase: 'copying' }, { job: { active: false, postcopy: false } })), 'end').reason, 'Interrupted');
    assert.equal(expectKind(planMigration(withRecord({ phase: 'copying' }, { job: { active: false, postcopy: false }, domain: shutoff })), 'end').reason, 'SourceDomainStopped');
    assert.equal(planMigration(withRecord({ phase: 'copying' })).kind, 'wait', 'the job must be looked up first');
  });

  it('a record of an earlier session of this node is adopted first', () => {
    assert.equal(planMigration(withRecord({ phase: 'copying', sourceSession: '00000000000000ff' }, { job: null })).kind, 'adopt');
  });

  it('aborting: aborts a job still running, waits for the target, then ends it alone', () => {
    assert.deepEqual(planMigration(withRecord({ phase: 'aborting' }, { job: { active: true, postcopy: false } })), { kind: 'follow', abort: true });
    const wait = expectKind(planMigration(withRecord({ phase: 'aborting', reason: 'TargetChanged' }, { job: { active: false, postcopy: false } })), 'wait');
    assert.equal(wait.reason, 'AwaitingAbortConfirmation');
    const alone = expectKind(
      planMigration(withRecord({ phase: 'aborting', reason: 'TargetChanged' }, { job: { active: false, postcopy: false }, nowMs: T0 + config.phaseTimeoutMs })),
      'end',
    );
    assert.deepEqual([alone.phase, alone.reason], ['aborted', 'TargetChanged']);
    const peers = new Map(PEERS);
    peers.delete('hv2');
    assert.equal(planMigration(withRecord({ phase: 'aborting', reason: 'TargetLost' }, { job: null, peers })).kind, 'end');
  });

  it('a shutdown migration resumed after a restart continues', () => {
    assert.equal(planMigration(withRecord({ phase: 'switching', method: 'shutdown' }, { domain: null })).kind, 'shutdownMove');
  });
});

describe('the target acknowledges, confirms and cleans up', () => {
  it('prepares a request naming it, with the VM bridges to check', () => {
    assert.deepEqual(planMigration(asTarget({ phase: 'requested' }, { bridges: ['br100'] })), { kind: 'prepare', bridges: ['br100'] });
  });

  it('respects maxIncoming and ignores a request it is no longer the target of', () => {
    assert.equal(expectKind(planMigration(asTarget({ phase: 'requested' }, { incoming: config.maxIncoming })), 'wait').reason, 'IncomingLimit');
    assert.equal(planMigration(asTarget({ phase: 'requested' }, { spec: spec({ node: 'hv3' }) })).kind, 'none');
  });

  it('leaves the copy to the source while the source session lives', () => {
    for (const phase of ['prepared', 'copying', 'switching'] as const) assert.equal(planMigration(asTarget({ phase })).kind, 'none');
  });

  it('confirms an abort', () => {
    assert.equal(planMigration(asTarget({ phase: 'aborting' })).kind, 'confirmAbort');
  });

  it('an orphaned record (source session gone) waits out the grace period, then is settled by what runs here', () => {
    const gone = new Map(PEERS);
    gone.delete('hv1');
    const restarted = new Map(PEERS).set('hv1', { session: '00000000000000ee', migration: URIS(1) });
    for (const peers of [gone, restarted]) {
      assert.equal(expectKind(planMigration(asTarget({ phase: 'copying' }, { peers, orphanForMs: 10 })), 'wait').reason, 'SourceUnavailable');
    }
    const late = { peers: gone, orphanForMs: config.phaseTimeoutMs };
    assert.equal(planMigration(asTarget({ phase: 'copying' }, { ...late, domain: running })).kind, 'takeOver');
    assert.equal(expectKind(planMigration(asTarget({ phase: 'copying' }, { ...late, domain: paused })), 'wait').reason, 'IncomingInProgress');
    assert.equal(expectKind(planMigration(asTarget({ phase: 'copying' }, late)), 'end').reason, 'SourceLost');
    assert.equal(expectKind(planMigration(asTarget({ phase: 'requested' }, late)), 'end').reason, 'SourceLost');
  });

  it('a third node stays out of it', () => {
    assert.equal(planMigration(withRecord({ phase: 'copying' }, { node: 'hv3', session: S3, domain: null })).kind, 'none');
  });

  it('prepareVerdict refuses a dead libvirt, a live duplicate and missing bridges, and accepts a stale definition', () => {
    assert.equal(prepareVerdict('hv2', { hypervisorError: 'not connected', domain: null, missingBridges: [] })?.reason, 'TargetHypervisorUnavailable');
    assert.equal(prepareVerdict('hv2', { domain: running, missingBridges: [] })?.reason, 'TargetHasDomain');
    assert.equal(prepareVerdict('hv2', { domain: null, missingBridges: ['br7'] })?.reason, 'TargetBridgeMissing');
    assert.equal(prepareVerdict('hv2', { domain: shutoff, missingBridges: [] }), undefined);
  });

  it('prepareVerdict refuses a target where the VM\'s networks are not ready, naming them', () => {
    const v = prepareVerdict('hv2', { domain: null, missingBridges: [], networksNotReady: 'network 100 is not ready on hv2: NoClusterAddress' });
    assert.equal(v?.reason, 'TargetNetworkNotReady');
    assert.match(v?.message ?? '', /network 100/);
  });
});

describe('networksNotReady (reconcilers/network-readiness.ts)', () => {
  const entry = (nodes: Record<string, { ready: boolean; reason?: string }>) => ({
    vni: 100,
    spec: { value: decodeNetworkSpec({ type: 'managed' }), version: 0 },
    status: { value: { nodes: Object.fromEntries(Object.entries(nodes).map(([n, s]) => [n, { ...s, observedGeneration: 0, updatedAt: iso(T0) }])) }, version: 0 },
    loaded: true,
  });
  it('reads the node\'s own entry of each vkbr<N> network, and ignores other bridges', () => {
    assert.equal(networksNotReady('hv2', ['vkbr100', 'br0'], () => entry({ hv2: { ready: true } })), undefined);
    assert.match(networksNotReady('hv2', ['vkbr100'], () => entry({ hv1: { ready: true } })) ?? '', /network 100 is not ready on hv2 yet/);
    assert.match(networksNotReady('hv2', ['vkbr100'], () => entry({ hv2: { ready: false, reason: 'LinkFailed' } })) ?? '', /LinkFailed/);
    assert.match(networksNotReady('hv2', ['vkbr100'], () => undefined) ?? '', /network 100 does not exist/);
    assert.equal(networksNotReady('hv2', ['br0', 'virbr0'], () => undefined), undefined);
  });
});

describe('status hand-over', () => {
  const migrating = status({ phase: 'Migrating', crash: { count: 2, lastAt: iso(T0 - 5000) }, conditions: [{ type: 'MigrationAborted', status: 'True', reason: 'TargetChanged', message: 'x', lastTransitionTime: iso(T0 - 9000) }] });

  it('live: the target owns the running guest', () => {
    const s = handoffStatus(migrating, record({ phase: 'copying' }), 3, iso(T0));
    assert.deepEqual([s.phase, s.node, s.domainState, s.crash], ['Running', 'hv2', 'running', undefined]);
    assert.equal(s.conditions.find((c) => c.type === 'Migrating')?.reason, 'Completed');
    assert.equal(s.conditions.find((c) => c.type === 'MigrationAborted'), undefined);
    encodeVmStatus(s);
  });

  it('shutdown: handed to the target with the guest off, so the new home claims and starts it', () => {
    const s = handoffStatus(migrating, record({ phase: 'switching', method: 'shutdown' }), 3, iso(T0));
    assert.deepEqual([s.phase, s.node, s.domainState], ['Pending', 'hv2', 'shutoff']);
  });

  it('endedRecord stamps the end', () => {
    const r = endedRecord(record({ phase: 'copying' }), 'aborted', iso(T0), 'TargetChanged', 'moved');
    assert.deepEqual([r.phase, r.endedAt, r.phaseSince, r.reason], ['aborted', iso(T0), iso(T0), 'TargetChanged']);
  });

  it('describes steps one line each', () => {
    assert.equal(describeMigrationStep('hv1', 'vm1', planMigration(inputs()), null), 'hv1 vm1 migration requested to hv2 (live)');
  });
});

describe('the domain planner around a migration', () => {
  const desired = (extra: Record<string, unknown> = {}): DomainDesired => ({ spec: spec(extra), generation: 3, xml: '<domain/>', xmlHash: HASH });
  const observed = (node: string, domain: LocalDomain | null, st: VmStatus | null, migration: MigrationRecord | null = null) => ({
    node,
    domain,
    status: st ? { value: st, version: 4 } : null,
    migration,
    now: iso(T0),
  });

  it('the owner running the guest hands it to the migration reconciler instead of destroying it', () => {
    assert.deepEqual(planDomain('vm1', desired(), observed('hv1', running, status())), [{ kind: 'migrate', target: 'hv2' }]);
  });

  it('the new home never starts a guest its owner still runs', () => {
    assert.deepEqual(planDomain('vm1', desired(), observed('hv2', null, status())), []);
    assert.deepEqual(planDomain('vm1', desired(), observed('hv2', null, status({ phase: 'Migrating' }))), []);
    const aborted = record({ phase: 'aborted', reason: 'TargetChanged' });
    assert.deepEqual(planDomain('vm1', desired(), observed('hv2', null, status(), aborted)), []);
  });

  it('after a live hand-over the new home owns it and does not restart it', () => {
    const handed = handoffStatus(status({ phase: 'Migrating' }), record({ phase: 'copying' }), 3, iso(T0));
    const actions = planDomain('vm1', desired(), observed('hv2', running, handed, record({ phase: 'done' })));
    assert.ok(!actions.some((a) => a.kind === 'start' || a.kind === 'define' || a.kind === 'destroy'), JSON.stringify(actions));
  });

  it('after a shutdown hand-over (or any release) the new home defines and starts it', () => {
    const released = handoffStatus(status({ phase: 'Migrating' }), record({ phase: 'switching', method: 'shutdown' }), 3, iso(T0));
    const kinds = planDomain('vm1', desired(), observed('hv2', null, released, record({ phase: 'done', method: 'shutdown' }))).map((a) => a.kind);
    assert.deepEqual(kinds, ['claim', 'define', 'start', 'writeStatus']);
  });

  it('a former owner whose guest is gone releases the status', () => {
    const actions = planDomain('vm1', desired(), observed('hv1', shutoff, status()));
    assert.deepEqual(
      actions.map((a) => a.kind),
      ['undefine', 'writeStatus'],
    );
    const write = actions[1];
    assert.ok(write?.kind === 'writeStatus');
    assert.deepEqual([write.status.node, write.status.phase, write.status.domainState], ['hv1', 'Pending', 'shutoff']);
    // Released once: nothing more to write.
    assert.deepEqual(planDomain('vm1', desired(), observed('hv1', null, write.status)), []);
  });

  it('steps aside while a record involving the node is in flight, aborting included', () => {
    for (const phase of ['requested', 'prepared', 'copying', 'switching', 'aborting'] as const) {
      assert.deepEqual(planDomain('vm1', desired(), observed('hv1', running, status(), record({ phase }))), []);
      assert.deepEqual(planDomain('vm1', desired(), observed('hv2', paused, status(), record({ phase }))), []);
    }
  });

  it('keeps the migration conditions when it writes the status', () => {
    const aborted = status({
      phase: 'Migrating',
      conditions: [{ type: 'MigrationAborted', status: 'True', reason: 'TargetChanged', message: 'to hv2 aborted', lastTransitionTime: iso(T0 - 1) }],
    });
    const actions = planDomain('vm1', desired({ node: 'hv1' }), observed('hv1', running, aborted, record({ phase: 'aborted' })));
    const write = actions.find((a) => a.kind === 'writeStatus');
    assert.ok(write?.kind === 'writeStatus');
    assert.equal(write.status.phase, 'Running');
    assert.equal(write.status.conditions.find((c) => c.type === 'MigrationAborted')?.reason, 'TargetChanged');
  });
});

describe('a whole lockstep migration, planners only', () => {
  it('source and target planners alternate through the record to done, and the target then owns the VM', () => {
    let rec: { value: MigrationRecord; version: number } | null = null;
    let st: VmStatus = status();
    let onHv1: LocalDomain | null = running;
    let onHv2: LocalDomain | null = null;
    let now = T0;
    const seen: string[] = [];
    const src = () => planMigration(inputs({ record: rec, status: { value: st, version: 4 }, domain: onHv1, nowMs: now, job: null }));
    const tgt = () => planMigration(inputs({ node: 'hv2', session: S2, record: rec, status: { value: st, version: 4 }, domain: onHv2, nowMs: now }));
    for (let round = 0; round < 10; round++) {
      now += 100;
      for (const [who, plan] of [['hv1', src], ['hv2', tgt]] as const) {
        const step = plan();
        if (step.kind === 'none' || step.kind === 'wait') continue;
        seen.push(`${who}:${step.kind}`);
        const ts = iso(now);
        if (step.kind === 'request') rec = { value: step.record, version: 0 };
        else if (step.kind === 'prepare') rec = { value: { ...rec!.value, phase: 'prepared', phaseSince: ts }, version: rec!.version + 1 };
        else if (step.kind === 'copy') {
          // The executor writes copying, libvirt moves the guest, the source is undefined.
          onHv2 = running;
          onHv1 = null;
          rec = { value: { ...rec!.value, phase: 'copying', phaseSince: ts }, version: rec!.version + 1 };
        } else if (step.kind === 'complete') {
          st = handoffStatus(st, rec!.value, 3, ts);
          rec = { value: endedRecord(rec!.value, 'done', ts), version: rec!.version + 1 };
        } else assert.fail(`unexpected ${who} step ${step.kind}`);
      }
    }
    assert.deepEqual(seen, ['hv1:request', 'hv2:prepare', 'hv1:copy', 'hv1:complete']);
    assert.equal(st.node, 'hv2');
    assert.equal(rec?.value.phase, 'done');
    // Neither node has anything left to do.
    assert.equal(src().kind, 'none');
    assert.equal(tgt().kind, 'none');
  });
});
