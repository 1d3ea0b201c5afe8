// The flush/ready planner (reconcilers/flush/plan.ts) with plain data.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  describeFlushMove,
  expectationOf,
  flushCandidates,
  flushMoveApplies,
  flushSpecEdit,
  planFlush,
  planReady,
  readyMoveApplies,
  readySpecEdit,
  settlement,
  type FlushMove,
  type FlushVm,
} from '../../reconcilers/flush/plan.ts';
import type { NodeCandidate } from '../../reconcilers/selectors.ts';
import { computeNodeStatus } from '../../reconcilers/node/plan.ts';
import { planCluster, renderPlan, type NodeView, type VmView } from '../../cli/plan.ts';
import { decodeMigrationRecord, decodeNodeStatus, decodeVmSpec, encodeNodeStatus, encodeVmSpec, xmlHash, type NodeStatus, type VmSpecInput, type VmStatus } from '../../schemas/index.ts';

function node(name: string, o: { total?: number; prov?: number; state?: NodeStatus['domainState']; alive?: boolean; flushed?: boolean; vms?: number } = {}): NodeCandidate {
  return {
    name,
    alive: o.alive ?? true,
    spec: { domainState: o.flushed ? 'flushed' : 'ready' },
    status: decodeNodeStatus({
      daemonState: 'run',
      domainState: o.state ?? 'ready',
      memory: { totalMiB: o.total ?? 16384, usedMiB: 0, freeMiB: 16384, allocatedMiB: 0, provisionedMiB: o.prov ?? 0 },
      vcpus: { total: 64, allocated: 0 },
      load: 0,
      runningVms: Array.from({ length: o.vms ?? 0 }, (_, i) => `x${i}`),
      keepaliveAt: '2026-01-01T00:00:00.000Z',
      version: 'test',
    }),
  };
}

function vm(name: string, spec: Partial<VmSpecInput> & { node: string }, memoryMiB = 256, vcpus = 1): FlushVm {
  return { name, spec: decodeVmSpec({ state: 'running', ...spec }), memoryMiB, vcpus };
}

describe('planFlush', () => {
  test('mem: each VM goes where the most memory is left counting provisioned and what the flush placed', () => {
    const nodes = [node('hv1', { prov: 0 }), node('hv2', { prov: 1024 }), node('hv3', { prov: 0 })];
    const vms = [vm('a', { node: 'hv1' }, 512), vm('b', { node: 'hv1' }, 512), vm('c', { node: 'hv1' }, 2048), vm('d', { node: 'hv1' }, 256), vm('other', { node: 'hv2' })];
    const moves = planFlush({ node: 'hv1', vms, nodes, defaultSelector: 'mem' });
    // Provisioned hv2/hv3 before each VM: a 1024/0 → hv3; b 1024/512 → hv3; c 1024/1024, a tie → hv2
    // (by name); d 3072/1024 → hv3. hv1 is the flushed node, never a target.
    assert.deepEqual(
      moves.map((m) => (m.kind === 'migrate' ? `${m.vm}>${m.to}` : `${m.vm}:stop`)),
      ['a>hv3', 'b>hv3', 'c>hv2', 'd>hv3'],
    );
    assert.ok(moves.every((m) => m.kind === 'migrate' && m.from === 'hv1' && m.selector === 'mem'));
  });

  test('only VMs running on the node by their spec, in name order; stopped and disabled ones stay', () => {
    const vms = [vm('z', { node: 'hv1' }), vm('s', { node: 'hv1', state: 'stopped' }), vm('d', { node: 'hv1', state: 'disabled' }), vm('a', { node: 'hv1' }), vm('e', { node: 'hv2' })];
    assert.deepEqual(
      flushCandidates('hv1', vms).map((v) => v.name),
      ['a', 'z'],
    );
  });

  test('node limits are obeyed; a VM whose limit allows only the flushed node is stopped with the reasons', () => {
    const nodes = [node('hv1'), node('hv2', { prov: 8000 }), node('hv3')];
    const vms = [vm('pinned', { node: 'hv1', meta: { nodeLimit: ['hv1'] } }), vm('tohv2', { node: 'hv1', meta: { nodeLimit: ['hv1', 'hv2'] } }), vm('free', { node: 'hv1' })];
    const moves = planFlush({ node: 'hv1', vms, nodes, defaultSelector: 'mem' });
    assert.deepEqual(
      moves.map((m) => [m.vm, m.kind, m.kind === 'migrate' ? m.to : m.why]),
      [
        ['free', 'migrate', 'hv3'],
        ['pinned', 'stop', 'no valid target (hv2: outside the node limit; hv3: outside the node limit)'],
        ['tohv2', 'migrate', 'hv2'],
      ],
    );
  });

  test('targets that are not ready, dead or asked to flush are skipped; none left means stop', () => {
    const nodes = [node('hv1'), node('hv2', { state: 'flushing' }), node('hv3', { alive: false }), node('hv4', { flushed: true }), node('hv5', { prov: 15000 })];
    const moves = planFlush({ node: 'hv1', vms: [vm('a', { node: 'hv1' }), vm('b', { node: 'hv1', meta: { nodeLimit: ['hv1', 'hv2', 'hv3', 'hv4'] } })], nodes, defaultSelector: 'mem' });
    assert.deepEqual([moves[0]?.kind, moves[0]?.kind === 'migrate' ? moves[0].to : undefined], ['migrate', 'hv5']);
    assert.equal(moves[1]!.kind, 'stop');
    const alone = planFlush({ node: 'hv1', vms: [vm('a', { node: 'hv1' })], nodes: [node('hv1')], defaultSelector: 'mem' });
    assert.deepEqual(alone, [{ kind: 'stop', vm: 'a', from: 'hv1', selector: 'mem', why: 'no other node in the cluster' }]);
  });

  test("each VM uses its own selector; 'default' is the cluster's", () => {
    const nodes = [node('hv1'), node('hv2', { prov: 0, vms: 9 }), node('hv3', { prov: 4000, vms: 0 })];
    const moves = planFlush({
      node: 'hv1',
      vms: [vm('a', { node: 'hv1', meta: { nodeSelector: 'vms' } }), vm('b', { node: 'hv1', meta: { nodeSelector: 'mem' } }), vm('c', { node: 'hv1' })],
      nodes,
      defaultSelector: 'vms',
    });
    assert.deepEqual(
      moves.map((m) => [m.vm, m.kind === 'migrate' ? m.to : '-', m.selector]),
      [
        ['a', 'hv3', 'vms'],
        ['b', 'hv2', 'mem'],
        ['c', 'hv3', 'vms'],
      ],
    );
  });

  test('20 VMs over two equal nodes: the flush accounts for its own placements (10/10 under mem and vms)', () => {
    const vms = Array.from({ length: 20 }, (_, i) => vm(`vm${String(i).padStart(2, '0')}`, { node: 'hv1' }, 256));
    for (const selector of ['mem', 'vms', 'vcpus', 'memprov', 'load'] as const) {
      const moves = planFlush({ node: 'hv1', vms, nodes: [node('hv1'), node('hv2'), node('hv3')], defaultSelector: selector });
      const counts = new Map<string, number>();
      for (const m of moves) if (m.kind === 'migrate') counts.set(m.to, (counts.get(m.to) ?? 0) + 1);
      assert.deepEqual(Object.fromEntries(counts), { hv2: 10, hv3: 10 }, selector);
    }
  });

  test('deterministic: the same input gives the same plan, whatever the input order', () => {
    const nodes = [node('hv1'), node('hv2', { prov: 300 }), node('hv3', { prov: 100 })];
    const vms = Array.from({ length: 12 }, (_, i) => vm(`v${i}`, { node: 'hv1' }, 64 * (1 + (i % 5))));
    const one = planFlush({ node: 'hv1', vms, nodes, defaultSelector: 'mem' });
    const two = planFlush({ node: 'hv1', vms: [...vms].reverse(), nodes: [...nodes].reverse(), defaultSelector: 'mem' });
    assert.deepEqual(two, one);
  });
});

describe('flush spec edits', () => {
  const spec = (over: Partial<VmSpecInput> = {}) => decodeVmSpec({ node: 'hv1', state: 'running', ...over });
  const migrate = (to: string): FlushMove => ({ kind: 'migrate', vm: 'a', from: 'hv1', to, selector: 'mem', memoryMiB: 1, vcpus: 1 });

  test('migrate: node = target, previousNode = the flushed node unless it has one already', () => {
    assert.deepEqual(flushSpecEdit(spec(), migrate('hv2')), spec({ node: 'hv2', previousNode: 'hv1' }));
    assert.deepEqual(flushSpecEdit(spec({ previousNode: 'hv4' }), migrate('hv2')), spec({ node: 'hv2', previousNode: 'hv4' }), 'the original home is kept');
    const back = flushSpecEdit(spec({ previousNode: 'hv2' }), migrate('hv2'));
    assert.equal(back.node, 'hv2');
    assert.equal(back.previousNode, undefined, 'back where it came from: no previous node');
  });

  test("stop: state stopped and marked stopped by this flush; the user's autostart and the rest as they were", () => {
    const s = spec({ meta: { nodeLimit: ['hv1'], migrationMethod: 'shutdown' } });
    const out = flushSpecEdit(s, { kind: 'stop', vm: 'a', from: 'hv1', selector: 'mem', why: 'x' });
    assert.equal(out.state, 'stopped');
    assert.equal(out.stoppedByFlush, 'hv1');
    assert.equal(out.meta.autostart, false, 'autostart is the user\'s: the flush does not touch it');
    assert.equal(flushSpecEdit(spec({ meta: { autostart: true } }), { kind: 'stop', vm: 'a', from: 'hv1', selector: 'mem', why: 'x' }).meta.autostart, true);
    assert.deepEqual(out.meta.nodeLimit, ['hv1']);
    assert.equal(out.node, 'hv1');
  });

  test('a move applies only while the spec still runs the VM on the flushed node', () => {
    assert.equal(flushMoveApplies(migrate('hv2'), spec()), true);
    assert.equal(flushMoveApplies(migrate('hv2'), spec({ node: 'hv3' })), false);
    assert.equal(flushMoveApplies(migrate('hv2'), spec({ state: 'stopped' })), false);
    assert.equal(flushMoveApplies(migrate('hv2'), null), false);
  });
});

describe('planReady', () => {
  test('brings back exactly the VMs whose previous node is here, and starts autostart VMs homed here', () => {
    const vms = [
      vm('back1', { node: 'hv2', previousNode: 'hv1' }),
      vm('back2', { node: 'hv3', previousNode: 'hv1', state: 'stopped' }),
      vm('elsewhere', { node: 'hv2', previousNode: 'hv3' }),
      vm('auto', { node: 'hv1', state: 'stopped', meta: { autostart: true } }),
      vm('autoDisabled', { node: 'hv1', state: 'disabled', meta: { autostart: true } }),
      vm('autoOther', { node: 'hv2', state: 'stopped', meta: { autostart: true } }),
      vm('plainStopped', { node: 'hv1', state: 'stopped' }),
      vm('limited', { node: 'hv2', previousNode: 'hv1', meta: { nodeLimit: ['hv2', 'hv3'] } }),
    ];
    assert.deepEqual(planReady('hv1', vms), [
      { kind: 'autostart', vm: 'auto', node: 'hv1' },
      { kind: 'return', vm: 'back1', from: 'hv2', to: 'hv1' },
      { kind: 'return', vm: 'back2', from: 'hv3', to: 'hv1' },
      { kind: 'skip', vm: 'limited', node: 'hv1', why: 'its node limit [hv2, hv3] no longer includes hv1' },
    ]);
  });

  test("edits: return clears previousNode; autostart starts and keeps the user's flag", () => {
    const s = decodeVmSpec({ node: 'hv2', previousNode: 'hv1', state: 'running' });
    const back = readySpecEdit(s, { kind: 'return', vm: 'a', from: 'hv2', to: 'hv1' });
    assert.equal(back.node, 'hv1');
    assert.equal('previousNode' in back, false);
    const a = decodeVmSpec({ node: 'hv1', state: 'stopped', meta: { autostart: true } });
    const started = readySpecEdit(a, { kind: 'autostart', vm: 'a', node: 'hv1' });
    assert.equal(started.state, 'running');
    assert.equal(started.meta.autostart, true, 'a standing setting: it survives the ready');
    assert.equal(readyMoveApplies({ kind: 'autostart', vm: 'a', node: 'hv1' }, started), false, 'done once');
    assert.equal(readyMoveApplies({ kind: 'return', vm: 'a', from: 'hv2', to: 'hv1' }, back), false, 'done once');
    assert.equal(readyMoveApplies({ kind: 'return', vm: 'a', from: 'hv2', to: 'hv1' }, s), true);
  });
});

describe('settlement: when a written move is over', () => {
  const spec = (over: Partial<VmSpecInput> = {}) => decodeVmSpec({ node: 'hv2', state: 'running', ...over });
  const status = (node: string, phase: VmStatus['phase']): VmStatus => ({ phase, node, observedGeneration: 1, conditions: [], updatedAt: '2026-01-01T00:00:00.000Z' });
  const record = (phase: string) =>
    decodeMigrationRecord({ id: 'm1', source: 'hv1', target: 'hv2', method: 'shutdown', phase, startedAt: '2026-01-01T00:00:00.000Z' });
  const runs = expectationOf({ kind: 'migrate', vm: 'a', from: 'hv1', to: 'hv2', selector: 'mem', memoryMiB: 1, vcpus: 1 })!;
  const stops = expectationOf({ kind: 'stop', vm: 'a', from: 'hv1', selector: 'mem', why: 'x' })!;

  test('a migration: pending until the VM runs on the target and no record is in flight', () => {
    assert.equal(settlement(runs, spec(), status('hv1', 'Running'), null), 'pending');
    assert.equal(settlement(runs, spec(), status('hv1', 'Migrating'), record('switching')), 'pending');
    assert.equal(settlement(runs, spec(), status('hv2', 'Running'), record('switching')), 'pending');
    assert.equal(settlement(runs, spec(), status('hv2', 'Starting'), record('done')), 'pending');
    assert.equal(settlement(runs, spec(), status('hv2', 'Running'), record('done')), 'arrived');
    assert.equal(settlement(runs, spec(), status('hv2', 'Failed'), record('done')), 'failed');
    assert.equal(settlement(runs, spec({ node: 'hv3' }), status('hv1', 'Running'), null), 'superseded');
    assert.equal(settlement(runs, spec({ state: 'stopped' }), status('hv1', 'Running'), null), 'superseded');
    assert.equal(settlement(runs, null, null, null), 'superseded');
  });

  test('a stop: arrived once the VM is stopped there', () => {
    const stopped = decodeVmSpec({ node: 'hv1', state: 'stopped', meta: { autostart: true } });
    assert.equal(settlement(stops, stopped, status('hv1', 'ShuttingDown'), null), 'pending');
    assert.equal(settlement(stops, stopped, status('hv1', 'Stopped'), null), 'arrived');
    assert.equal(settlement(stops, stopped, null, null), 'arrived');
    assert.equal(settlement(stops, decodeVmSpec({ node: 'hv1', state: 'running' }), status('hv1', 'Running'), null), 'superseded');
  });
});

test('describeFlushMove', () => {
  assert.equal(
    describeFlushMove({ kind: 'migrate', vm: 'a', from: 'hv1', to: 'hv2', selector: 'mem', memoryMiB: 1, vcpus: 1 }, 'shutdown'),
    'a migrate hv1 → hv2 (flush; selector mem, method shutdown)',
  );
  assert.equal(describeFlushMove({ kind: 'stop', vm: 'b', from: 'hv1', selector: 'mem', why: 'no other node in the cluster' }), 'b shutdown (flush: no other node in the cluster; ready starts it again)');
  assert.equal(describeFlushMove({ kind: 'autostart', vm: 'c', node: 'hv1' }), 'c start (ready: autostart)');
  assert.equal(describeFlushMove({ kind: 'autostart', vm: 'c', node: 'hv1', stoppedBy: 'hv1' }), 'c start (ready: shut down by the flush of hv1)');
});

describe('vk plan (cli/plan.ts) shows a pending flush or ready move by move', () => {
  const xml = (name: string, mib: number) => `<domain type='test'><name>${name}</name><memory unit='MiB'>${mib}</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;
  const view = (name: string, spec: Partial<VmSpecInput> & { node: string }, mib = 256): VmView => ({
    name,
    spec: decodeVmSpec({ state: 'running', ...spec }),
    generation: 1,
    xml: xml(name, mib),
    status: {
      value: {
        phase: spec.state === 'stopped' ? 'Stopped' : 'Running',
        node: spec.node,
        observedGeneration: 1,
        domainState: spec.state === 'stopped' ? 'shutoff' : 'running',
        xmlHash: xmlHash(xml(name, mib)),
        conditions: [],
        updatedAt: '2026-01-01T00:00:00.000Z',
      },
      version: 1,
    },
    migration: null,
  });
  const nodeView = (name: string, wanted: 'ready' | 'flushed', now: NodeStatus['domainState'], prov = 0, alive = true): NodeView => {
    const c = node(name, { prov, state: now, alive });
    return { name, spec: { domainState: wanted }, status: c.status, alive };
  };

  test('a node asked to flush: the same moves as planFlush, under the flushed node; nothing without a context', () => {
    const vms = [view('a', { node: 'hv1' }, 512), view('b', { node: 'hv1', meta: { nodeLimit: ['hv1'] } }), view('c', { node: 'hv1' }, 128), view('d', { node: 'hv2' })];
    const nodes = [nodeView('hv1', 'flushed', 'ready'), nodeView('hv2', 'ready', 'ready', 100), nodeView('hv3', 'ready', 'ready', 0), nodeView('hv4', 'ready', 'ready', 0, false)];
    const actions = planCluster(vms, nodes, '2026-01-01T00:00:00.000Z', { defaultSelector: 'mem' });
    assert.deepEqual(
      actions.map((a) => [a.node, a.vm, a.action, a.to ?? null]),
      [
        ['hv1', null, 'flush', null],
        ['hv1', 'a', 'migrate', 'hv3'],
        ['hv1', 'b', 'shutdown', null],
        ['hv1', 'c', 'migrate', 'hv2'],
      ],
    );
    assert.match(renderPlan(actions), /a migrate hv1 → hv3 \(flush; selector mem, method default\)/);
    assert.match(renderPlan(actions), /b shutdown \(flush: no valid target .*; ready starts it again\)/);
    const expected = planFlush({
      node: 'hv1',
      vms: vms.map((v) => ({ name: v.name, spec: v.spec, memoryMiB: v.name === 'a' ? 512 : v.name === 'c' ? 128 : 256, vcpus: 1 })),
      nodes: nodes.map((n) => ({ name: n.name, alive: n.alive!, spec: n.spec, status: n.status })),
      defaultSelector: 'mem',
    });
    assert.deepEqual(
      actions.filter((a) => a.vm).map((a) => [a.vm, a.to ?? null]),
      expected.map((m) => [m.vm, m.kind === 'migrate' ? m.to : null]),
    );
    assert.deepEqual(
      planCluster(vms, nodes, '2026-01-01T00:00:00.000Z').map((a) => a.action),
      ['flush'],
    );
  });

  test('a node asked to be ready: its VMs come back and autostart VMs start', () => {
    const vms = [view('a', { node: 'hv2', previousNode: 'hv1' }), view('s', { node: 'hv1', state: 'stopped', meta: { autostart: true } })];
    const nodes = [nodeView('hv1', 'ready', 'flushed'), nodeView('hv2', 'ready', 'ready')];
    assert.deepEqual(
      planCluster(vms, nodes, '2026-01-01T00:00:00.000Z', { defaultSelector: 'mem' }).map((a) => [a.node, a.vm, a.action, a.to ?? null]),
      [
        ['hv1', null, 'ready', null],
        ['hv1', 's', 'start', null],
        ['hv2', 'a', 'migrate', 'hv1'],
      ],
    );
  });
});

test('the keepalive carries the flush progress over (it is the flush reconciler\'s field)', () => {
  const flush = {
    operation: 'flush' as const,
    generation: 3,
    phase: 'moving' as const,
    total: 5,
    moved: 2,
    stopped: 0,
    inFlight: 1,
    message: '2/5 done',
    startedAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:01.000Z',
  };
  const base = {
    node: 'hv1',
    version: 'test',
    now: '2026-01-01T00:00:02.000Z',
    resources: { memoryKiB: 1024 * 1024, cpus: 4 },
    hostMemory: { totalKiB: 1024 * 1024, availableKiB: 512 * 1024 },
    load: 0,
    domains: [],
    assigned: [],
    domainState: 'flushing' as const,
    daemonState: 'run' as const,
  };
  assert.deepEqual(computeNodeStatus({ ...base, flush }).flush, flush);
  assert.equal('flush' in computeNodeStatus(base), false);
  assert.deepEqual(decodeNodeStatus(JSON.parse(encodeNodeStatus(computeNodeStatus({ ...base, flush })))).flush, flush);
});

// Issue 12 §3 and §4: moves that cannot happen are not planned; a flush/ready cycle gives every VM
// its spec back.
describe('live-only VMs and flush/ready cycles (issue 12)', () => {
  const live = (over: Partial<NodeCandidate> = {}, name = 'hv1') => ({ ...node(name), liveMigration: true, ...over });

  test('a live-only VM skips targets that take no live migration, with the reason; with none left it is shut down', () => {
    // hv3 has the least memory left: under mem, hv2 wins for every VM it may take.
    const nodes = [live({}, 'hv1'), live({ liveMigration: false }, 'hv2'), { ...node('hv3', { prov: 8192 }), liveMigration: true }];
    const vms = [vm('l', { node: 'hv1', meta: { migrationMethod: 'live' } }), vm('d', { node: 'hv1', meta: { nodeLimit: ['hv1', 'hv2'] } })];
    const moves = planFlush({ node: 'hv1', vms, nodes, defaultSelector: 'mem' });
    // hv2 would win for l under mem, but it cannot take a live migration.
    assert.deepEqual(
      moves.map((m) => (m.kind === 'migrate' ? `${m.vm}>${m.to}` : `${m.vm}:stop`)),
      ['d>hv2', 'l>hv3'],
      'a default-method VM may still go to hv2 (it falls back to shutdown there)',
    );

    const only = planFlush({ node: 'hv1', vms: [vm('l', { node: 'hv1', meta: { migrationMethod: 'live', nodeLimit: ['hv1', 'hv2'] } })], nodes, defaultSelector: 'mem' });
    assert.equal(only.length, 1);
    assert.equal(only[0]!.kind, 'stop');
    assert.match((only[0] as Extract<FlushMove, { kind: 'stop' }>).why, /hv2: it takes no live migration \(publishes no migration URI\)/);
  });

  test('planReady: a VM a flush shut down comes back running; a running live-only VM does not come back to a node without live migration', () => {
    const vms = [
      vm('flushStopped', { node: 'hv2', previousNode: 'hv1', state: 'stopped', stoppedByFlush: 'hv2' }),
      vm('userStopped', { node: 'hv2', previousNode: 'hv1', state: 'stopped' }),
      vm('liveOnly', { node: 'hv2', previousNode: 'hv1', meta: { migrationMethod: 'live' } }),
      vm('homeStopped', { node: 'hv1', state: 'stopped', stoppedByFlush: 'hv1' }),
      // Its move away never happened (its guest is still here): coming back needs no migration.
      { ...vm('liveStillHere', { node: 'hv2', previousNode: 'hv1', meta: { migrationMethod: 'live' } }), statusNode: 'hv1' },
    ];
    const moves = planReady('hv1', vms, { liveMigration: false });
    assert.deepEqual(moves, [
      { kind: 'return', vm: 'flushStopped', from: 'hv2', to: 'hv1' },
      { kind: 'autostart', vm: 'homeStopped', node: 'hv1', stoppedBy: 'hv1' },
      { kind: 'skip', vm: 'liveOnly', node: 'hv1', why: 'it migrates live only and hv1 takes no live migration (publishes no migration URI)' },
      { kind: 'return', vm: 'liveStillHere', from: 'hv2', to: 'hv1' },
      { kind: 'return', vm: 'userStopped', from: 'hv2', to: 'hv1' },
    ]);
    const back = readySpecEdit(vms[0]!.spec, moves[0]!);
    assert.deepEqual([back.node, back.state, back.previousNode, back.stoppedByFlush], ['hv1', 'running', undefined, undefined]);
    const user = readySpecEdit(vms[1]!.spec, moves[4]!);
    assert.deepEqual([user.node, user.state], ['hv1', 'stopped'], 'a VM its user stopped stays stopped');
    assert.equal(planReady('hv1', vms).some((m) => m.vm === 'liveOnly' && m.kind === 'return'), true, 'unknown: assumed to take it');
  });

  test('the mark means something only on a stopped VM: decode and encode drop it otherwise', () => {
    assert.equal(decodeVmSpec({ node: 'hv1', state: 'stopped', stoppedByFlush: 'hv1' }).stoppedByFlush, 'hv1');
    assert.equal(decodeVmSpec({ node: 'hv1', state: 'running', stoppedByFlush: 'hv1' }).stoppedByFlush, undefined);
    assert.equal('stoppedByFlush' in JSON.parse(encodeVmSpec({ node: 'hv1', state: 'running', stoppedByFlush: 'hv1' })), false);
    assert.throws(() => decodeVmSpec({ node: 'hv1', state: 'stopped', stoppedByFlush: 'HV/1' }), /stoppedByFlush/);
  });

  test("flush hv1, flush hv2, ready hv1, ready hv2 over the examples' VMs (test driver: no live migration) gives every spec back", () => {
    const examples: FlushVm[] = [
      vm('web1', { node: 'hv1', shutdownTimeoutMs: 5000, meta: { nodeLimit: ['hv1', 'hv2'], nodeSelector: 'mem', autostart: true } }),
      vm('web2', { node: 'hv2', shutdownTimeoutMs: 5000, meta: { nodeLimit: ['hv1', 'hv2'], nodeSelector: 'mem', autostart: true, migrationMethod: 'live' } }),
      vm('db1', { node: 'hv3', shutdownTimeoutMs: 5000, meta: { nodeSelector: 'vms', maxDowntimeMs: 500 } }),
      vm('cache1', { node: 'hv1', shutdownTimeoutMs: 5000, meta: { nodeLimit: ['hv1', 'hv3'], nodeSelector: 'vcpus', migrationMethod: 'shutdown' } }),
      vm('batch1', { node: 'hv2', state: 'stopped', shutdownTimeoutMs: 5000, meta: { nodeSelector: 'load' } }),
    ];
    const specs = new Map(examples.map((v) => [v.name, v.spec]));
    const nodeState = new Map<string, { wanted: 'ready' | 'flushed'; now: NodeStatus['domainState'] }>(['hv1', 'hv2', 'hv3'].map((n) => [n, { wanted: 'ready', now: 'ready' }]));
    const candidates = (): NodeCandidate[] =>
      [...nodeState].map(([name, st]) => ({ ...node(name, { state: st.now, flushed: st.wanted === 'flushed' }), liveMigration: false }));
    const current = () => examples.map((v) => ({ ...v, spec: specs.get(v.name)! }));
    const flush = (n: string) => {
      nodeState.set(n, { wanted: 'flushed', now: 'flushing' });
      for (const move of planFlush({ node: n, vms: current(), nodes: candidates(), defaultSelector: 'mem' })) {
        const spec = specs.get(move.vm)!;
        assert.ok(flushMoveApplies(move, spec));
        specs.set(move.vm, decodeVmSpec(JSON.parse(encodeVmSpec(flushSpecEdit(spec, move)))));
      }
      nodeState.set(n, { wanted: 'flushed', now: 'flushed' });
    };
    const ready = (n: string) => {
      nodeState.set(n, { wanted: 'ready', now: 'unflushing' });
      for (const move of planReady(n, current(), { liveMigration: false })) {
        const spec = specs.get(move.vm)!;
        if (!readyMoveApplies(move, spec)) continue;
        specs.set(move.vm, decodeVmSpec(JSON.parse(encodeVmSpec(readySpecEdit(spec, move)))));
      }
      nodeState.set(n, { wanted: 'ready', now: 'ready' });
    };
    flush('hv1');
    assert.deepEqual([specs.get('web1')!.node, specs.get('cache1')!.node], ['hv2', 'hv3']);
    flush('hv2');
    assert.deepEqual([specs.get('web1')!.state, specs.get('web1')!.stoppedByFlush, specs.get('web2')!.state, specs.get('web2')!.stoppedByFlush], ['stopped', 'hv2', 'stopped', 'hv2']);
    ready('hv1');
    ready('hv2');
    for (const v of examples) assert.deepEqual(specs.get(v.name), v.spec, `${v.name} has its spec back`);
  });
});
