// Flushes never clobber each other (seed 003) and never leave an unchangeable state (seed 002):
// two flushes at once are serialized by the cluster flush lock, the waiting one is visible in
// `vk get nodes` and in `--wait`; `ready` cancels a running flush between moves; a flushing
// daemon that is SIGKILLed releases the lock with its session, and the waiting flush proceeds.
//
// Real ZooKeeper, three private libvirtds (test driver: shutdown migrations), daemons in this
// process — hv1's as a `vk daemon` child process for the kill — and the real `vk` binary.
//
// No race decides an outcome here: a06, the sixth VM of hv1 in flush order, has migrationMethod
// live; hv2 and hv3 publish a migration URI (so the flush may send it there) that leads nowhere,
// and the test driver cannot migrate anyway: its live migration fails and is retried, and its move
// never settles. With one move at a time
// (maxOutgoing 1) hv1's flush moves a01-a05, then holds the lock on a06 until a test changes a06's
// method or cancels the flush.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readLockQueue } from '../../drivers/zk/lock.ts';
import type { VmStatus } from '../../schemas/index.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { Cluster, paths } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';

const A = Array.from({ length: 12 }, (_, i) => `a${String(i + 1).padStart(2, '0')}`);
const BLOCKER = 'a06';
const B = ['b01', 'b02', 'b03', 'b04'];
const LOCK = paths.lock('flush');
const LONG = 90_000;
/** A migration URI nothing listens on: live migrations to the node are attempted and fail. */
const NOWHERE = { migration: { uri: 'qemu+tcp://127.0.0.1:9/system', migrateUri: 'tcp://127.0.0.1:9' } };

describe('concurrent, cancelled and orphaned flushes', { timeout: 600_000 }, () => {
  let rig: Cluster;
  let vk: Vk;

  const flushOf = async (node: string) => (await rig.nodeStatus(node))?.flush;
  const allRunOn = async (vms: string[], node: string) => (await Promise.all(vms.map((vm) => rig.runsOn(vm, node)))).every(Boolean);
  const nodeIs = (node: string, domainState: string) => async () => (await rig.nodeStatus(node))?.domainState === domainState;
  const setMethod = async (vm: string, method: string) => {
    const run = await vk('vm', 'meta', vm, '--method', method);
    assert.equal(run.code, 0, run.stderr);
  };

  before(async () => {
    rig = await Cluster.start('test', {
      nodes: ['hv1', 'hv2', 'hv3'],
      clusterConfig: {
        defaultNodeSelector: 'vms',
        migration: { maxOutgoing: 1, maxIncoming: 8, phaseTimeoutMs: 4000 },
      },
    });
    vk = vkFor(rig.zk.connectString, '/virtkeeper');
    for (const name of ['hv1', 'hv2', 'hv3']) await rig.startDaemon(name, name === 'hv1' ? {} : NOWHERE);
    for (const vm of A) {
      await rig.writeVm(vm, { node: 'hv1', state: 'running', shutdownTimeoutMs: 5000, meta: { migrationMethod: vm === BLOCKER ? 'live' : 'shutdown' } });
    }
    for (const vm of B) await rig.writeVm(vm, { node: 'hv2', state: 'running', shutdownTimeoutMs: 5000, meta: { migrationMethod: 'shutdown' } });
    await waitFor('every VM running', async () => (await allRunOn(A, 'hv1')) && (await allRunOn(B, 'hv2')), 60_000);
  });

  after(async () => {
    await rig?.cleanup();
  });

  it('the second flush waits for the first; ready stops the first between moves; then the second runs', async (t) => {
    // At the instant hv1's flush reports its cancellation, every hv1 VM must run on hv1 or on the
    // target its move gave it: a synchronous look at hv1's own informer.
    let atCancel: Array<{ vm: string; node: string; previousNode: string | undefined; status: VmStatus | null }> | undefined;
    rig.actions.onLine = (line) => {
      if (!line.startsWith('hv1 (node) flush cancelled')) return;
      const informer = rig.daemons.get('hv1')!.manager.informers.vms;
      atCancel = A.map((vm) => {
        const e = informer.get(vm)!;
        const spec = e.spec && 'value' in e.spec ? e.spec.value : null;
        return { vm, node: spec!.node, previousNode: spec!.previousNode ?? undefined, status: e.status && 'value' in e.status ? e.status.value : null };
      });
    };

    await rig.setNode('hv1', 'flushed');
    await waitFor('hv1 holding the flush lock', async () => (await flushOf('hv1'))?.phase === 'moving', LONG);

    const second = vk.start('node', 'flush', 'hv2', '--wait', '--timeout', '300');
    await second.until(/node\/hv2 flush requested \(the flush lock is held by hv1: this flush waits for it\)/);
    await second.until(/waiting for the flush lock \(held by hv1; 1 ahead\)/);
    const queued = await waitFor('hv2 queued', async () => {
      const f = await flushOf('hv2');
      return f?.phase === 'queued' && f.lockHolder === 'hv1' ? f : undefined;
    });
    assert.equal(queued.ahead, 1);
    assert.equal((await rig.nodeStatus('hv2'))?.domainState, 'flushing');
    assert.deepEqual(
      (await readLockQueue(rig.store, LOCK)).map((e) => e.owner),
      ['hv1', 'hv2'],
    );

    const table = await vk('get', 'nodes');
    assert.equal(table.code, 0, table.stderr);
    const row = (node: string) => table.stdout.split('\n').find((l) => l.startsWith(`${node} `)) ?? '';
    assert.match(table.stdout.split('\n')[0]!, /\bFLUSH\b/);
    assert.match(row('hv1'), /flushing \d+\/12 \(holds lock\)/);
    assert.match(row('hv2'), /queued #1 \(behind hv1\)/);
    assert.match(row('hv3'), / -$/);
    const asJson = JSON.parse((await vk('get', 'nodes', '-o', 'json')).stdout) as Array<{ name: string; flushLock: { position: number; holder: string } | null }>;
    assert.deepEqual(
      asJson.map((n) => [n.name, n.flushLock?.position ?? null, n.flushLock?.holder ?? null]),
      [
        ['hv1', 0, 'hv1'],
        ['hv2', 1, 'hv1'],
        ['hv3', null, null],
      ],
    );

    // hv1's flush is stuck on a06 and holds the lock: nothing of hv2 has moved.
    await waitFor('a01-a05 moved', async () => ((await flushOf('hv1'))?.moved ?? 0) === 5, LONG);
    for (const vm of B) assert.equal((await rig.spec(vm)).node, 'hv2', `${vm} untouched while hv2 waits`);

    const ready = await vk('node', 'ready', 'hv1', '--wait', '--timeout', '120');
    assert.equal(ready.code, 0, ready.stderr + ready.stdout);

    // The flush stopped between moves: it started nothing after the ready, every move it had started
    // was over (a06's let go at once) before it reported the cancellation.
    const started = rig.actions.filter((l) => /^hv1 a\d\d migrate hv1 → hv\d \(flush;/.test(l)).map((l) => l.split(' ')[1]!);
    const cancelLine = rig.actions.find((l) => l.startsWith('hv1 (node) flush cancelled'));
    assert.ok(cancelLine, `the flush reports its cancellation: ${rig.actions.filter((l) => l.includes('(node)')).join(' | ')}`);
    const moved = Number(/after (\d+) moved/.exec(cancelLine)![1]);
    t.diagnostic(`hv1 flush: ${started.length} moves started, ${moved} finished, then cancelled`);
    assert.deepEqual(started, ['a01', 'a02', 'a03', 'a04', 'a05', 'a06'], 'no move started after a06');
    assert.equal(moved, 5, 'every started move but the one that cannot finish completed');
    assert.ok(atCancel, 'snapshot taken');
    for (const s of atCancel) {
      const where = s.status?.node;
      // a06 may be between two of its failing attempts, or in one.
      const phases = s.vm === BLOCKER ? ['Running', 'Migrating'] : ['Running'];
      assert.ok(phases.includes(s.status?.phase ?? ''), `${s.vm} running at the cancel (${JSON.stringify(s)})`);
      if (started.includes(s.vm) && s.vm !== BLOCKER) assert.equal(where, s.node, `${s.vm} on its flush target`);
      else assert.equal(where, 'hv1', `${s.vm} still on hv1`);
    }
    // Ready: everything is back on hv1, running, without a previous node.
    for (const vm of A) {
      assert.equal(await rig.runsOn(vm, 'hv1'), true, `${vm} back on hv1`);
      assert.equal((await rig.spec(vm)).previousNode, undefined);
    }
    assert.equal((await rig.nodeStatus('hv1'))?.domainState, 'ready');

    // hv1 released the lock; the queued flush took it only then, and completes.
    const done = await second.done;
    assert.equal(done.code, 0, done.stderr + done.stdout);
    assert.match(done.stdout, /node\/hv2 flushed: 4 moved/);
    const i = rig.actions.findIndex((l) => l.startsWith('hv1 (node) flush cancelled'));
    const j = rig.actions.findIndex((l) => l === 'hv2 (node) flush lock held');
    assert.ok(i >= 0 && j > i, `hv2 got the lock after hv1 let go (${i} < ${j})`);
    for (const vm of B) {
      const spec = await rig.spec(vm);
      assert.notEqual(spec.node, 'hv2');
      assert.equal(spec.previousNode, 'hv2');
      assert.equal(await rig.runsOn(vm, spec.node), true, `${vm} runs on ${spec.node}`);
    }
    rig.actions.onLine = undefined;
    assert.equal((await vk('node', 'ready', 'hv2', '--wait', '--timeout', '120')).code, 0);
    await waitFor('b VMs back on hv2', () => allRunOn(B, 'hv2'), LONG);
  });

  it("killing the flushing daemon ends its session and lock; the queued flush proceeds; the restarted daemon resumes", async (t) => {
    await rig.stopDaemon('hv1');
    await rig.spawnDaemon('hv1');
    await waitFor('hv1 and hv2 ready', async () => (await nodeIs('hv1', 'ready')()) && (await nodeIs('hv2', 'ready')()), LONG);

    await rig.setNode('hv1', 'flushed');
    await waitFor('hv1 holding the flush lock', async () => (await flushOf('hv1'))?.phase === 'moving', LONG);
    await rig.setNode('hv2', 'flushed');
    await waitFor('hv2 queued behind hv1', async () => (await flushOf('hv2'))?.lockHolder === 'hv1', LONG);
    const holderSession = (await readLockQueue(rig.store, LOCK))[0]!.session;
    assert.equal(holderSession, (await rig.store.exists(paths.nodeAlive('hv1')))?.ephemeralOwner, "the lock is held by hv1's daemon session");

    // a06 cannot move: hv1's flush holds the lock until its daemon dies.
    await rig.killChild('hv1');
    await waitFor('hv1 session gone', async () => (await rig.store.exists(paths.nodeAlive('hv1'))) === null, LONG);
    const f2 = await waitFor(
      'hv2 flush under way',
      async () => {
        const f = await flushOf('hv2');
        return f && f.phase !== 'queued' ? f : undefined;
      },
      LONG,
    );
    t.diagnostic(`hv2 after the kill: ${f2.phase} ${f2.message}`);
    assert.deepEqual(
      (await readLockQueue(rig.store, LOCK)).map((e) => e.owner),
      ['hv2'],
      "hv1's lock child went with its session",
    );
    // hv1 is dead: nothing of hv2 may go there.
    await waitFor('b VMs moved to hv3', () => allRunOn(B, 'hv3'), LONG);

    // The restarted hv1 daemon resumes its flush (spec flushed, status flushing); a06 can move now.
    await setMethod(BLOCKER, 'shutdown');
    await rig.startDaemon('hv1');
    await waitFor('hv1 flushed', nodeIs('hv1', 'flushed'), LONG);
    await waitFor('hv2 flushed', nodeIs('hv2', 'flushed'), LONG);
    for (const vm of [...A, ...B]) {
      const spec = await rig.spec(vm);
      assert.equal(spec.node, 'hv3', `${vm} on hv3, the only node left`);
      assert.equal(spec.previousNode, vm.startsWith('a') ? 'hv1' : 'hv2', `${vm} keeps its home`);
      assert.equal(await rig.runsOn(vm, 'hv3'), true, `${vm} runs on hv3`);
    }
    assert.deepEqual(await readLockQueue(rig.store, LOCK), [], 'no flush holds or waits for the lock');

    // And back.
    await rig.setNode('hv1', 'ready');
    await rig.setNode('hv2', 'ready');
    await waitFor('all home again', async () => (await allRunOn(A, 'hv1')) && (await allRunOn(B, 'hv2')), LONG);
    await waitFor('both ready', async () => (await nodeIs('hv1', 'ready')()) && (await nodeIs('hv2', 'ready')()), LONG);
  });
});
