// The fencing planner (reconcilers/fence/plan.ts) as pure functions of hand-built facts: every
// branch of planFence in the order it decides (F1, F3, F4), the retry back-off, what each level
// covers (F2: fenceGap), the recovery plan (targets by the node selectors, spreading, nodeLimit,
// stop when nobody can take a VM, leave what a storage fence does not cover, a VM mid-migration
// away from the lost node, a migration towards it, stopped VMs), the spec a move writes and
// whether a move still applies.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  fenceGap,
  planFence,
  planRecovery,
  recoveryApplies,
  recoveryCandidates,
  heldAtRest,
  recoverySpec,
  retryDelayMs,
  type FenceFacts,
  type RecoveryInput,
  type RecoveryMove,
  type RecoveryVm,
} from '../../reconcilers/fence/plan.ts';
import type { NodeCandidate } from '../../reconcilers/selectors.ts';
import { decodeClusterConfig, decodeNodeStatus, decodeVmSpec, type NodeFenceStatusInput, type NodeStatus, type VmSpec, type VmSpecInput } from '../../schemas/index.ts';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

// ------------------------------------------------------------------------------------ fixtures

interface StatusOver {
  daemonState?: NodeStatus['daemonState'];
  domainState?: NodeStatus['domainState'];
  total?: number;
  prov?: number;
  fence?: Partial<NodeFenceStatusInput> & { state: NodeFenceStatusInput['state'] };
}

/** A valid node status (decoded, so required fields and defaults are the real ones). */
function status(o: StatusOver = {}): NodeStatus {
  return decodeNodeStatus({
    daemonState: o.daemonState ?? 'run',
    domainState: o.domainState ?? 'ready',
    memory: { totalMiB: o.total ?? 16384, usedMiB: 0, freeMiB: 16384, allocatedMiB: 0, provisionedMiB: o.prov ?? 0 },
    vcpus: { total: 64, allocated: 0 },
    load: 0,
    runningVms: [],
    keepaliveAt: iso(NOW - 60_000),
    version: 'test',
    ...(o.fence
      ? {
          fence: {
            by: 'hv1',
            lostAt: iso(NOW - 30_000),
            rounds: 0,
            results: [],
            message: 'test',
            updatedAt: iso(NOW - 1_000),
            ...o.fence,
          },
        }
      : {}),
  });
}

const CONFIG = decodeClusterConfig({ fence: { graceMs: 5_000, retryBaseMs: 2_000, retryMaxMs: 60_000 } });

/** hv3 lost 10 s ago as seen by hv1, which holds the fence lock: a fence unless something says otherwise. */
function facts(o: Partial<FenceFacts> = {}): FenceFacts {
  return {
    node: 'hv3',
    me: 'hv1',
    holder: true,
    alive: false,
    absentForMs: 10_000,
    status: status(),
    spec: { domainState: 'ready' },
    config: CONFIG,
    nowMs: NOW,
    ...o,
  };
}

function candidate(name: string, o: StatusOver & { alive?: boolean; flushed?: boolean; noStatus?: boolean } = {}): NodeCandidate {
  return { name, alive: o.alive ?? true, spec: { domainState: o.flushed ? 'flushed' : 'ready' }, status: o.noStatus ? null : status(o) };
}

function vm(name: string, spec: Partial<VmSpecInput> & { node: string }, o: Partial<Omit<RecoveryVm, 'name' | 'spec'>> = {}): RecoveryVm {
  const s = decodeVmSpec({ state: 'running', ...spec });
  return { name, spec: s, memoryMiB: 1024, vcpus: 1, rbd: s.rbd, otherDisks: [], ...o };
}

const recover = (o: Partial<RecoveryInput> & Pick<RecoveryInput, 'vms' | 'nodes'>): RecoveryMove[] =>
  planRecovery({ lost: 'hv3', level: 'ipmi', defaultSelector: 'mem', ...o });

const brief = (moves: RecoveryMove[]): string[] => moves.map((m) => (m.kind === 'move' ? `${m.vm}>${m.to}` : `${m.vm}:${m.kind}`));

// ------------------------------------------------------------------------------------ planFence

describe('planFence', () => {
  test('the baseline: gone past the grace, nothing else said → fence', () => {
    assert.deepEqual(planFence(facts()), { kind: 'fence' });
  });

  test('F4: not the lock holder → none, whatever the node looks like', () => {
    assert.deepEqual(planFence(facts({ holder: false })), { kind: 'none' });
    assert.deepEqual(planFence(facts({ holder: false, status: status({ fence: { state: 'fenced', level: 'ipmi' } }) })), { kind: 'none' });
    assert.deepEqual(planFence(facts({ holder: false, alive: true, absentForMs: 0, status: status({ fence: { state: 'fenced', level: 'ipmi' } }) })), { kind: 'none' });
  });

  test('the holder never fences itself', () => {
    assert.deepEqual(planFence(facts({ node: 'hv1', me: 'hv1' })), { kind: 'none' });
  });

  test('a node with no status (never reported) → none', () => {
    assert.deepEqual(planFence(facts({ status: null })), { kind: 'none' });
  });

  describe('alive', () => {
    const alive = { alive: true, absentForMs: 0 };

    test('a keepalive silent past keepaliveDeadAfterMs while the session lives is reported (stale), never fenced', () => {
      const deadAfter = CONFIG.keepaliveDeadAfterMs;
      assert.deepEqual(planFence(facts({ ...alive, staleForMs: deadAfter - 1 })), { kind: 'none' });
      const step = planFence(facts({ ...alive, staleForMs: deadAfter }));
      assert.equal(step.kind, 'stale');
      assert.match((step as { message: string }).message, /not fenced while its session lives/);
      // With a record, a node that is back is cleared, stale or not.
      assert.equal(planFence(facts({ ...alive, staleForMs: deadAfter * 2, status: status({ fence: { state: 'failed' } }) })).kind, 'clear');
    });

    test('no fence record → none', () => {
      assert.deepEqual(planFence(facts({ ...alive })), { kind: 'none' });
      // Even with a stale "stop" daemon state or maintenance on: alive means nothing to do.
      assert.deepEqual(planFence(facts({ ...alive, status: status({ daemonState: 'stop' }) })), { kind: 'none' });
    });

    test('fenced, and its admin asked for ready → lift', () => {
      assert.deepEqual(planFence(facts({ ...alive, status: status({ fence: { state: 'fenced', level: 'storage' } }), spec: { domainState: 'ready' } })), { kind: 'lift' });
    });

    test('fenced, spec still flushed (no `vk node ready` yet) or no spec → none: the record stays', () => {
      assert.deepEqual(planFence(facts({ ...alive, status: status({ fence: { state: 'fenced', level: 'storage' } }), spec: { domainState: 'flushed' } })), { kind: 'none' });
      assert.deepEqual(planFence(facts({ ...alive, status: status({ fence: { state: 'fenced', level: 'ipmi' } }), spec: null })), { kind: 'none' });
    });

    for (const state of ['lost', 'fencing', 'failed'] as const) {
      test(`a ${state} record: back before any fence → clear`, () => {
        const step = planFence(facts({ ...alive, status: status({ fence: { state } }) }));
        assert.equal(step.kind, 'clear');
        assert.match((step as { why: string }).why, /hv3 is back before it was fenced; nothing was recovered/);
      });
    }
  });

  describe('gone', () => {
    test('F1: fenced → recover (before grace, maintenance and a clean stop are looked at: recovery is idempotent)', () => {
      const fenced = status({ fence: { state: 'fenced', level: 'ipmi' } });
      assert.deepEqual(planFence(facts({ status: fenced })), { kind: 'recover' });
      assert.deepEqual(planFence(facts({ status: fenced, absentForMs: 0 })), { kind: 'recover' }, 'a new holder inside its own grace');
      assert.deepEqual(planFence(facts({ status: fenced, config: { ...CONFIG, maintenance: true } })), { kind: 'recover' });
      assert.deepEqual(planFence(facts({ status: status({ daemonState: 'stop', fence: { state: 'fenced', level: 'command' } }) })), { kind: 'recover' });
    });

    test('F1: nothing but state fenced recovers', () => {
      for (const state of ['lost', 'fencing', 'failed'] as const) {
        assert.notEqual(planFence(facts({ status: status({ fence: { state } }) })).kind, 'recover', state);
      }
    });

    test('the daemon stopped cleanly → report, not fenced (also inside the grace)', () => {
      for (const absentForMs of [10_000, 100]) {
        const step = planFence(facts({ absentForMs, status: status({ daemonState: 'stop' }) }));
        assert.equal(step.kind, 'report');
        assert.match((step as { message: string }).message, /^hv3's daemon stopped cleanly: not fenced/);
      }
    });

    test('F3: inside the grace → wait the rest of it', () => {
      assert.deepEqual(planFence(facts({ absentForMs: 1_200 })), { kind: 'wait', ms: 3_800, why: 'alive znode gone 1200 ms of a 5000 ms grace' });
      assert.deepEqual(planFence(facts({ absentForMs: 0 })), { kind: 'wait', ms: 5_000, why: 'alive znode gone 0 ms of a 5000 ms grace' });
      assert.equal(planFence(facts({ absentForMs: 4_999 })).kind, 'wait');
      assert.deepEqual(planFence(facts({ absentForMs: 5_000 })), { kind: 'fence' }, 'the grace is over at exactly graceMs');
    });

    test('F3: a grace of 0 fences at once', () => {
      assert.deepEqual(planFence(facts({ absentForMs: 0, config: decodeClusterConfig({ fence: { graceMs: 0 } }) })), { kind: 'fence' });
    });

    test('maintenance on → report (after the grace; inside it, still wait)', () => {
      const config = { ...CONFIG, maintenance: true };
      const step = planFence(facts({ config }));
      assert.equal(step.kind, 'report');
      assert.match((step as { message: string }).message, /^hv3 is lost; maintenance is on: not fenced$/);
      assert.equal(planFence(facts({ config, absentForMs: 10 })).kind, 'wait');
      // A failed record does not escape maintenance either.
      assert.equal(planFence(facts({ config, status: status({ fence: { state: 'failed', rounds: 2, nextRetryAt: iso(NOW - 1) } }) })).kind, 'report');
    });

    test('failed, retry not due → wait until it; capped at retryMaxMs (another holder\'s clock)', () => {
      const due = planFence(facts({ status: status({ fence: { state: 'failed', rounds: 2, nextRetryAt: iso(NOW + 3_000) } }) }));
      assert.deepEqual(due, { kind: 'wait', ms: 3_000, why: `fence failed 2 time(s); next try at ${iso(NOW + 3_000)}` });
      const far = planFence(facts({ status: status({ fence: { state: 'failed', rounds: 7, nextRetryAt: iso(NOW + 3_600_000) } }) }));
      assert.equal(far.kind, 'wait');
      assert.equal((far as { ms: number }).ms, 60_000, 'never longer than retryMaxMs');
    });

    test('failed, retry due (past or exactly now) or no retry time → fence', () => {
      assert.deepEqual(planFence(facts({ status: status({ fence: { state: 'failed', rounds: 2, nextRetryAt: iso(NOW - 1) } }) })), { kind: 'fence' });
      assert.deepEqual(planFence(facts({ status: status({ fence: { state: 'failed', rounds: 2, nextRetryAt: iso(NOW) } }) })), { kind: 'fence' });
      assert.deepEqual(planFence(facts({ status: status({ fence: { state: 'failed', rounds: 2 } }) })), { kind: 'fence' });
    });

    test('a lost or fencing record (reported earlier, or a holder that died mid-fence) → fence', () => {
      assert.deepEqual(planFence(facts({ status: status({ fence: { state: 'lost' } }) })), { kind: 'fence' });
      assert.deepEqual(planFence(facts({ status: status({ fence: { state: 'fencing', nextRetryAt: iso(NOW + 10_000) } }) })), { kind: 'fence' }, 'nextRetryAt counts only on a failed record');
    });

    test('the daemon states that are not "stop" (run, init, dead) do not stop a fence', () => {
      for (const daemonState of ['run', 'init', 'dead'] as const) assert.deepEqual(planFence(facts({ status: status({ daemonState }) })), { kind: 'fence' }, daemonState);
    });
  });
});

// ------------------------------------------------------------------------------------ retryDelayMs

describe('retryDelayMs', () => {
  const cfg = { retryBaseMs: 2_000, retryMaxMs: 60_000 };

  test('base after the first failure, doubling after each one, capped at retryMaxMs', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((r) => retryDelayMs(r, cfg)), [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  test('0 rounds is the base; a huge round count is the cap (no overflow to Infinity or NaN)', () => {
    assert.equal(retryDelayMs(0, cfg), 2_000);
    assert.equal(retryDelayMs(1_000_000, cfg), 60_000);
    assert.equal(retryDelayMs(1_000_000, { retryBaseMs: 3_600_000, retryMaxMs: 86_400_000 }), 86_400_000);
  });

  test('base equal to the cap: always the cap', () => {
    assert.deepEqual([1, 2, 9].map((r) => retryDelayMs(r, { retryBaseMs: 500, retryMaxMs: 500 })), [500, 500, 500]);
  });
});

// ------------------------------------------------------------------------------------ fenceGap

describe('fenceGap (F2)', () => {
  const shapes = {
    rbdOnly: { rbd: ['rbd/r1'], otherDisks: [] },
    mixed: { rbd: ['rbd/d1'], otherDisks: ['/var/lib/libvirt/images/d1-scratch.qcow2'] },
    localOnly: { rbd: [], otherDisks: ['/var/lib/libvirt/images/l1.qcow2'] },
    diskless: { rbd: [], otherDisks: [] },
    unreadable: { rbd: ['rbd/u1'], otherDisks: undefined },
  };

  test('ipmi and command prove the node off: every VM is covered', () => {
    for (const level of ['ipmi', 'command'] as const) {
      for (const [name, shape] of Object.entries(shapes)) assert.equal(fenceGap(level, shape), undefined, `${level} ${name}`);
    }
  });

  test('storage covers a VM whose disks are all on RBD (and that has one)', () => {
    assert.equal(fenceGap('storage', shapes.rbdOnly), undefined);
    assert.equal(fenceGap('storage', { rbd: ['rbd/a', 'ssd/b'], otherDisks: [] }), undefined);
  });

  test('storage does not cover a VM with a writable non-RBD disk: the why names the disk', () => {
    assert.match(fenceGap('storage', shapes.mixed)!, /^disk \/var\/lib\/libvirt\/images\/d1-scratch\.qcow2 is not on RBD/);
    assert.match(fenceGap('storage', shapes.localOnly)!, /l1\.qcow2 is not on RBD/);
    assert.match(fenceGap('storage', { rbd: [], otherDisks: ['/a.img', '/b.img'] })!, /disk \/a\.img, \/b\.img is not on RBD/);
  });

  test('storage does not cover a VM with no RBD disk at all, nor one whose XML cannot be read', () => {
    assert.match(fenceGap('storage', shapes.diskless)!, /no RBD disk/);
    assert.match(fenceGap('storage', shapes.unreadable)!, /XML cannot be read/);
  });
});

// ------------------------------------------------------------------------------------ recovery

describe('recoveryCandidates', () => {
  test('running VMs the lost node holds or is home to with no other holder, in name order', () => {
    const vms = [
      vm('z-home', { node: 'hv3' }),
      vm('a-held', { node: 'hv3' }, { owner: 'hv3' }),
      vm('m-leaving', { node: 'hv1' }, { owner: 'hv3' }),
      vm('arriving', { node: 'hv3' }, { owner: 'hv2' }),
      vm('elsewhere', { node: 'hv1' }),
      vm('elsewhere-held', { node: 'hv1' }, { owner: 'hv1' }),
      vm('stopped', { node: 'hv3', state: 'stopped' }),
      vm('stopped-held', { node: 'hv3', state: 'stopped' }, { owner: 'hv3' }),
      vm('disabled', { node: 'hv3', state: 'disabled' }),
    ];
    assert.deepEqual(recoveryCandidates('hv3', vms).map((v) => v.name), ['a-held', 'm-leaving', 'z-home']);
  });
});

describe('heldAtRest', () => {
  test('VMs not meant to run that the lost node holds, when the level covers them: recovery releases those', () => {
    const vms = [
      vm('stopped-held', { node: 'hv3', state: 'stopped' }, { owner: 'hv3' }),
      vm('disabled-held', { node: 'hv3', state: 'disabled' }, { owner: 'hv3' }),
      vm('moved-away-held', { node: 'hv1', state: 'stopped' }, { owner: 'hv3' }),
      vm('stopped-free', { node: 'hv3', state: 'stopped' }),
      vm('running-held', { node: 'hv3' }, { owner: 'hv3' }),
      vm('other-holder', { node: 'hv3', state: 'stopped' }, { owner: 'hv2' }),
    ];
    assert.deepEqual(heldAtRest('hv3', 'ipmi', vms).map((v) => v.name), ['disabled-held', 'moved-away-held', 'stopped-held']);
    const local = [vm('local-disk', { node: 'hv3', state: 'stopped' }, { owner: 'hv3', otherDisks: ['/var/lib/a.qcow2'] })];
    assert.deepEqual(heldAtRest('hv3', 'storage', local), [], 'a storage fence does not cover a local disk: it stays held');
    assert.deepEqual(heldAtRest('hv3', 'ipmi', local).map((v) => v.name), ['local-disk']);
  });
});

describe('planRecovery', () => {
  test('the target is the selector\'s choice (mem: most memory left counting provisioned)', () => {
    const nodes = [candidate('hv1', { prov: 8192 }), candidate('hv2', { prov: 1024 }), candidate('hv3', { alive: false })];
    assert.deepEqual(recover({ vms: [vm('r1', { node: 'hv3', rbd: ['rbd/r1'] })], nodes }), [{ kind: 'move', vm: 'r1', to: 'hv2', images: ['rbd/r1'] }]);
  });

  test('the VM\'s own selector wins over the default', () => {
    const nodes = [candidate('hv1', { total: 65536, prov: 32768 }), candidate('hv2', { total: 4096, prov: 512 }), candidate('hv3', { alive: false })];
    assert.deepEqual(brief(recover({ vms: [vm('a', { node: 'hv3' })], nodes })), ['a>hv1'], 'mem: 32 GiB left on hv1');
    assert.deepEqual(brief(recover({ vms: [vm('a', { node: 'hv3', meta: { nodeSelector: 'memprov' } })], nodes })), ['a>hv2'], 'memprov: 1/8 < 1/2');
    assert.deepEqual(brief(recover({ vms: [vm('a', { node: 'hv3' })], nodes, defaultSelector: 'memprov' })), ['a>hv2']);
  });

  test('dead, not ready, flushed and status-less nodes and the lost node are never targets, however good they look', () => {
    const nodes = [
      candidate('hv1', { prov: 15000 }),
      candidate('hv2', { alive: false, total: 1 << 20 }),
      // The lost node itself, with a stale status that still looks alive and empty.
      candidate('hv3', { alive: true, total: 1 << 20 }),
      candidate('hv4', { flushed: true, total: 1 << 20 }),
      candidate('hv5', { domainState: 'flushing', total: 1 << 20 }),
      candidate('hv6', { noStatus: true }),
    ];
    assert.deepEqual(brief(recover({ vms: [vm('a', { node: 'hv3' }), vm('b', { node: 'hv3' })], nodes })), ['a>hv1', 'b>hv1']);
  });

  test('nodeLimit is honoured', () => {
    const nodes = [candidate('hv1', { prov: 0 }), candidate('hv2', { prov: 8000 }), candidate('hv3', { alive: false })];
    assert.deepEqual(brief(recover({ vms: [vm('a', { node: 'hv3', meta: { nodeLimit: ['hv2', 'hv3'] } })], nodes })), ['a>hv2']);
  });

  test('several VMs spread by placement: mem with equal nodes alternates, ties to the first name', () => {
    const nodes = [candidate('hv2'), candidate('hv1'), candidate('hv3', { alive: false })];
    const vms = ['e', 'c', 'a', 'd', 'b'].map((n) => vm(n, { node: 'hv3' }));
    assert.deepEqual(brief(recover({ vms, nodes })), ['a>hv1', 'b>hv2', 'c>hv1', 'd>hv2', 'e>hv1']);
  });

  test('placement counts the VM\'s size (vms selector counts VMs, vcpus counts vCPUs)', () => {
    const nodes = [candidate('hv1'), candidate('hv2'), candidate('hv3', { alive: false })];
    const big = vm('a', { node: 'hv3' }, { memoryMiB: 8192, vcpus: 8 });
    const small = ['b', 'c', 'd'].map((n) => vm(n, { node: 'hv3' }, { memoryMiB: 1024, vcpus: 1 }));
    // mem: a (8 GiB) on hv1, then hv2 has more left for b, c and d (16 − 3 > 16 − 8).
    assert.deepEqual(brief(recover({ vms: [big, ...small], nodes })), ['a>hv1', 'b>hv2', 'c>hv2', 'd>hv2']);
    assert.deepEqual(brief(recover({ vms: [big, ...small], nodes, defaultSelector: 'vms' })), ['a>hv1', 'b>hv2', 'c>hv1', 'd>hv2']);
    assert.deepEqual(brief(recover({ vms: [big, ...small], nodes, defaultSelector: 'vcpus' })), ['a>hv1', 'b>hv2', 'c>hv2', 'd>hv2']);
  });

  test('no node can take it → stop, with why each node could not (the lost node not listed)', () => {
    const nodes = [candidate('hv1', { alive: false }), candidate('hv2', { flushed: true }), candidate('hv3', { alive: false }), candidate('hv4', { domainState: 'flushing' })];
    const moves = recover({ vms: [vm('r1', { node: 'hv3', rbd: ['rbd/r1'] })], nodes });
    assert.equal(moves.length, 1);
    const m = moves[0]!;
    assert.equal(m.kind, 'stop');
    assert.equal(m.vm, 'r1');
    assert.deepEqual((m as Extract<RecoveryMove, { kind: 'stop' }>).images, ['rbd/r1']);
    const why = (m as { why: string }).why;
    assert.equal(why, 'no node can take it (hv1: its daemon is not running; hv2: it is asked to flush; hv4: it is flushing)');
    assert.ok(!why.includes('hv3'), why);
  });

  test('stop when the only others are outside the nodeLimit; "no other node" when the lost node is alone', () => {
    const limited = recover({ vms: [vm('a', { node: 'hv3', meta: { nodeLimit: ['hv3'] } })], nodes: [candidate('hv1'), candidate('hv3', { alive: false })] });
    assert.deepEqual(limited.map((m) => [m.kind, (m as { why?: string }).why]), [['stop', 'no node can take it (hv1: outside the node limit)']]);
    const alone = recover({ vms: [vm('a', { node: 'hv3' })], nodes: [candidate('hv3', { alive: false })] });
    assert.deepEqual(alone.map((m) => [m.kind, (m as { why?: string }).why]), [['stop', 'no other node in the cluster']]);
    assert.deepEqual(recover({ vms: [vm('a', { node: 'hv3' })], nodes: [] }).map((m) => m.kind), ['stop']);
  });

  test('a VM no node can take does not hold the others back, nor take room anywhere', () => {
    const nodes = [candidate('hv1'), candidate('hv2'), candidate('hv3', { alive: false })];
    const moves = recover({ vms: [vm('a', { node: 'hv3', meta: { nodeLimit: ['hv3'] } }), vm('b', { node: 'hv3' }), vm('c', { node: 'hv3' })], nodes });
    assert.deepEqual(brief(moves), ['a:stop', 'b>hv1', 'c>hv2']);
  });

  test('F2 under storage: a VM with a local disk is left where it is, the why names the level and the disk; RBD-only VMs move', () => {
    const nodes = [candidate('hv1'), candidate('hv2'), candidate('hv3', { alive: false })];
    const vms = [
      vm('d1', { node: 'hv3', rbd: ['rbd/d1'] }, { otherDisks: ['/var/lib/libvirt/images/d1-scratch.qcow2'] }),
      vm('r1', { node: 'hv3', rbd: ['rbd/r1'] }),
      vm('u1', { node: 'hv3', rbd: ['rbd/u1'] }, { otherDisks: undefined }),
      vm('n1', { node: 'hv3' }),
    ];
    const moves = recover({ level: 'storage', vms, nodes });
    assert.deepEqual(brief(moves), ['d1:leave', 'n1:leave', 'r1>hv1', 'u1:leave']);
    const d1 = moves[0] as Extract<RecoveryMove, { kind: 'leave' }>;
    assert.match(d1.why, /^hv3 was fenced by storage only; disk \/var\/lib\/libvirt\/images\/d1-scratch\.qcow2 is not on RBD/);
    assert.match((moves[1] as { why: string }).why, /no RBD disk/);
    assert.match((moves[3] as { why: string }).why, /XML cannot be read/);
    // The same VMs under ipmi all move (a left VM takes no room: r1 still goes to hv1 under storage).
    assert.deepEqual(brief(recover({ level: 'ipmi', vms, nodes })), ['d1>hv1', 'n1>hv2', 'r1>hv1', 'u1>hv2']);
  });

  test('a VM mid-migration away from the lost node (owner hv3, spec.node hv1) goes to its spec.node, and counts there', () => {
    const nodes = [candidate('hv1'), candidate('hv2', { prov: 512 }), candidate('hv3', { alive: false })];
    const vms = [vm('a', { node: 'hv1', previousNode: 'hv3', rbd: ['rbd/a'] }, { owner: 'hv3' }), vm('b', { node: 'hv3' })];
    const moves = recover({ vms, nodes });
    // Without a's placement on hv1, b would go to hv1 (more left); with it, hv2.
    assert.deepEqual(moves, [
      { kind: 'move', vm: 'a', to: 'hv1', images: ['rbd/a'] },
      { kind: 'move', vm: 'b', to: 'hv2', images: [] },
    ]);
  });

  test('a VM another node holds (a migration towards the lost node) is not recovered; stopped VMs neither', () => {
    const nodes = [candidate('hv1'), candidate('hv2'), candidate('hv3', { alive: false })];
    const vms = [
      vm('arriving', { node: 'hv3', previousNode: 'hv2' }, { owner: 'hv2' }),
      vm('stopped', { node: 'hv3', state: 'stopped' }),
      vm('disabled', { node: 'hv3', state: 'disabled' }, { owner: 'hv3' }),
      vm('other', { node: 'hv1' }, { owner: 'hv1' }),
    ];
    assert.deepEqual(recover({ vms, nodes }), []);
  });
});

// ------------------------------------------------------------------------------------ recoverySpec

describe('recoverySpec', () => {
  const spec = (o: Partial<VmSpecInput> = {}): VmSpec => decodeVmSpec({ node: 'hv3', state: 'running', rbd: ['rbd/r1'], ...o });
  const move = (to: string): Extract<RecoveryMove, { kind: 'move' }> => ({ kind: 'move', vm: 'r1', to, images: ['rbd/r1'] });

  test('move: the new node, previousNode the lost node', () => {
    const out = recoverySpec(spec(), move('hv2'), 'hv3');
    assert.deepEqual(out, { ...spec(), node: 'hv2', previousNode: 'hv3' });
    // What it writes is a valid spec.
    assert.deepEqual(decodeVmSpec(JSON.parse(JSON.stringify(out))), out);
  });

  test('move: a previousNode already set is kept; null counts as none', () => {
    assert.equal(recoverySpec(spec({ previousNode: 'hv1' }), move('hv2'), 'hv3').previousNode, 'hv1');
    assert.equal(recoverySpec(spec({ previousNode: null }), move('hv2'), 'hv3').previousNode, 'hv3');
  });

  test('move back to the previousNode: previousNode dropped (no unmigrate to where it is)', () => {
    const out = recoverySpec(spec({ previousNode: 'hv2' }), move('hv2'), 'hv3');
    assert.equal(out.node, 'hv2');
    assert.ok(!('previousNode' in out), JSON.stringify(out));
    assert.deepEqual(decodeVmSpec(JSON.parse(JSON.stringify(out))), out);
  });

  test('move to the node the spec already names (mid-migration): the spec unchanged', () => {
    const s = spec({ node: 'hv1', previousNode: 'hv3' });
    assert.equal(recoverySpec(s, move('hv1'), 'hv3'), s);
  });

  test('the rest of the spec is kept (meta, rbd, stop mode)', () => {
    const s = spec({ stopMode: 'force', meta: { nodeSelector: 'load', autostart: true, nodeLimit: ['hv2', 'hv3'] } });
    const out = recoverySpec(s, move('hv2'), 'hv3');
    assert.deepEqual(out.meta, s.meta);
    assert.deepEqual(out.rbd, s.rbd);
    assert.equal(out.stopMode, 'force');
    assert.equal(out.state, 'running');
  });

  test('stop: state stopped, stoppedByFlush the lost node, node unchanged (so `vk node ready hv3` starts it)', () => {
    const s = spec({ previousNode: 'hv1' });
    const out = recoverySpec(s, { kind: 'stop', vm: 'r1', why: 'no node can take it', images: ['rbd/r1'] }, 'hv3');
    assert.deepEqual(out, { ...s, state: 'stopped', stoppedByFlush: 'hv3' });
    assert.deepEqual(decodeVmSpec(JSON.parse(JSON.stringify(out))), out, 'the mark survives a decode (the VM is stopped)');
  });

  test('the input spec is not changed', () => {
    const s = spec({ previousNode: 'hv2' });
    const copy = structuredClone(s);
    recoverySpec(s, move('hv2'), 'hv3');
    recoverySpec(s, move('hv1'), 'hv3');
    recoverySpec(s, { kind: 'stop', vm: 'r1', why: 'x', images: [] }, 'hv3');
    assert.deepEqual(s, copy);
  });
});

// ------------------------------------------------------------------------------------ recoveryApplies

describe('recoveryApplies', () => {
  const s = (o: Partial<VmSpecInput> = {}): VmSpec => decodeVmSpec({ node: 'hv3', state: 'running', ...o });

  test('still running and held by or homed on the lost node → applies', () => {
    assert.equal(recoveryApplies({ spec: s() }, 'hv3'), true);
    assert.equal(recoveryApplies({ spec: s(), owner: undefined }, 'hv3'), true);
    assert.equal(recoveryApplies({ spec: s(), owner: 'hv3' }, 'hv3'), true);
    assert.equal(recoveryApplies({ spec: s({ node: 'hv1' }), owner: 'hv3' }, 'hv3'), true, 'mid-migration away');
  });

  test('deleted, stopped, disabled, moved by someone else, or held by another node → does not apply', () => {
    assert.equal(recoveryApplies({ spec: null }, 'hv3'), false);
    assert.equal(recoveryApplies({ spec: s({ state: 'stopped' }) }, 'hv3'), false);
    assert.equal(recoveryApplies({ spec: s({ state: 'disabled' }), owner: 'hv3' }, 'hv3'), false);
    assert.equal(recoveryApplies({ spec: s({ node: 'hv2' }) }, 'hv3'), false);
    assert.equal(recoveryApplies({ spec: s(), owner: 'hv2' }, 'hv3'), false);
  });

  test('agrees with recoveryCandidates', () => {
    const vms = [
      vm('a', { node: 'hv3' }),
      vm('b', { node: 'hv3' }, { owner: 'hv3' }),
      vm('c', { node: 'hv1' }, { owner: 'hv3' }),
      vm('d', { node: 'hv3' }, { owner: 'hv2' }),
      vm('e', { node: 'hv1' }),
      vm('f', { node: 'hv3', state: 'stopped' }),
    ];
    const candidates = new Set(recoveryCandidates('hv3', vms).map((v) => v.name));
    for (const v of vms) assert.equal(recoveryApplies(v, 'hv3'), candidates.has(v.name), v.name);
  });
});
