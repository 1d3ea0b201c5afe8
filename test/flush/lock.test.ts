// The ZooKeeper lock recipe (drivers/zk/lock.ts) against a real ZooKeeper: order, queue, cancel,
// release, and a lock that dies with its holder's session (closed, or expired from outside).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LockLostError, ZkLock, orderContenders, readLockQueue, type LockHandle, type LockQueue } from '../../drivers/zk/lock.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { closeSessionFromOutside } from '../zk/helpers.ts';
import { waitFor } from '../rig/wait.ts';

let server: ZkServer;
const stores: ZkStore[] = [];
let n = 0;

async function connect(sessionTimeoutMs = 4000): Promise<ZkStore> {
  const s = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs });
  stores.push(s);
  return s;
}

/** A fresh lock path per test. */
const lockPath = () => `/locks-test/l${++n}`;

/** Whether `p` settled (without waiting for it). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 50));
  return done;
}

before(async () => {
  server = await startZooKeeper({ tickTime: 100 });
});

after(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await server?.cleanup();
});

describe('orderContenders (pure)', () => {
  it('orders by the sequence suffix, not the name; ignores non-contenders', () => {
    const ordered = orderContenders([
      '_c_ffffffff-ffff-4fff-8fff-ffffffffffff-lock-0000000003',
      '_c_00000000-0000-4000-8000-000000000000-lock-0000000010',
      'junk',
      'x-lock-0000000001',
    ]);
    assert.deepEqual(
      ordered.map((c) => c.sequence),
      [1, 3, 10],
    );
  });
});

describe('ZkLock against ZooKeeper', { timeout: 60_000 }, () => {
  it('one holder at a time; waiters get it in queue order; the queue is readable with owners', async () => {
    const path = lockPath();
    const [s1, s2, s3] = [await connect(), await connect(), await connect()];
    const a = new ZkLock(s1, path, { owner: 'hv1' });
    const b = new ZkLock(s2, path, { owner: 'hv2' });
    const c = new ZkLock(s3, path, { owner: 'hv3' });
    const ha = await a.acquire(new AbortController().signal);
    const queuesB: LockQueue[] = [];
    const pb = b.acquire(new AbortController().signal, (q) => queuesB.push(q));
    await waitFor('hv2 queued', async () => ((await readLockQueue(s1, path)).length === 2 ? true : undefined));
    const pc = c.acquire(new AbortController().signal);
    await waitFor('hv3 queued', async () => ((await readLockQueue(s1, path)).length === 3 ? true : undefined));
    assert.deepEqual(
      (await readLockQueue(s1, path)).map((e) => e.owner),
      ['hv1', 'hv2', 'hv3'],
    );
    assert.equal(await settled(pb), false, 'hv2 waits while hv1 holds');
    assert.equal(await settled(pc), false, 'hv3 waits too');
    const seen = await waitFor('hv2 saw hv1 as holder', () => queuesB.find((q) => q.holder !== null));
    assert.equal(seen.holder?.owner, 'hv1');
    assert.equal(seen.ahead.length, 1);

    await ha.release();
    assert.equal(ha.lost.aborted, true, 'released: lost is aborted');
    const hb = await pb;
    assert.equal(await settled(pc), false, 'hv3 still waits: hv2 was ahead');
    assert.deepEqual(
      (await readLockQueue(s1, path)).map((e) => e.owner),
      ['hv2', 'hv3'],
    );
    await hb.release();
    const hc = await pc;
    await hc.release();
    await hc.release(); // idempotent
    assert.deepEqual(await readLockQueue(s1, path), []);
  });

  it('a cancelled waiter leaves the queue at once; the one behind it is next', async () => {
    const path = lockPath();
    const [s1, s2, s3] = [await connect(), await connect(), await connect()];
    const ha = await new ZkLock(s1, path, { owner: 'hv1' }).acquire(new AbortController().signal);
    const cancel = new AbortController();
    const pb = new ZkLock(s2, path, { owner: 'hv2' }).acquire(cancel.signal);
    await waitFor('hv2 queued', async () => ((await readLockQueue(s1, path)).length === 2 ? true : undefined));
    const pc = new ZkLock(s3, path, { owner: 'hv3' }).acquire(new AbortController().signal);
    await waitFor('hv3 queued', async () => ((await readLockQueue(s1, path)).length === 3 ? true : undefined));
    cancel.abort(new Error('ready requested'));
    await assert.rejects(pb, /ready requested/);
    assert.deepEqual(
      (await readLockQueue(s1, path)).map((e) => e.owner),
      ['hv1', 'hv3'],
      "hv2's child is gone",
    );
    await ha.release();
    const hc = await pc;
    await hc.release();
  });

  it('an acquire whose signal is already aborted creates nothing', async () => {
    const path = lockPath();
    const s1 = await connect();
    const ac = new AbortController();
    ac.abort(new Error('no'));
    await assert.rejects(new ZkLock(s1, path, { owner: 'hv1' }).acquire(ac.signal), /no/);
    assert.deepEqual(await readLockQueue(s1, path), []);
  });

  it("the lock dies with its holder's session: closed store, then a session expired from outside", async () => {
    const path = lockPath();
    const holderStore = await connect();
    const s2 = await connect();
    const s3 = await connect(1500);
    const observer = await connect();
    await new ZkLock(holderStore, path, { owner: 'hv1' }).acquire(new AbortController().signal);
    const pb = new ZkLock(s2, path, { owner: 'hv2' }).acquire(new AbortController().signal);
    await waitFor('hv2 queued', async () => ((await readLockQueue(observer, path)).length === 2 ? true : undefined));
    assert.equal(await settled(pb), false);
    // The holder "crashes": its session ends without a release.
    await holderStore.close();
    const hb: LockHandle = await pb;
    assert.deepEqual(
      (await readLockQueue(observer, path)).map((e) => e.owner),
      ['hv2'],
    );

    // hv3 queues behind hv2; hv2's session is expired by the server (as after a partition).
    const pc = new ZkLock(s3, path, { owner: 'hv3' }).acquire(new AbortController().signal);
    await waitFor('hv3 queued', async () => ((await readLockQueue(observer, path)).length === 2 ? true : undefined));
    const oldSession = s2.sessionId;
    for (let attempt = 0; attempt < 10 && s2.sessionId === oldSession; attempt++) {
      const { id, password } = s2.sessionCredentials();
      await closeSessionFromOutside(server.port, id, password);
      await waitFor('hv2 lost the lock', () => (hb.lost.aborted ? true : undefined), 3000).catch(() => undefined);
      if (hb.lost.aborted) break;
    }
    assert.equal(hb.lost.aborted, true, 'the holder learns it lost the lock');
    assert.ok(hb.lost.reason instanceof LockLostError, String(hb.lost.reason));
    const hc = await pc;
    assert.deepEqual(
      (await readLockQueue(observer, path)).map((e) => e.owner),
      ['hv3'],
    );
    await hb.release(); // a lost lock's release is harmless
    assert.deepEqual(
      (await readLockQueue(observer, path)).map((e) => e.owner),
      ['hv3'],
      "releasing a lost lock does not touch the new holder's child",
    );
    await hc.release();
  });

  it('a waiter whose session expired queues again at the back and still gets the lock', async () => {
    const path = lockPath();
    const s1 = await connect();
    const s2 = await connect(1500);
    const observer = await connect();
    const ha = await new ZkLock(s1, path, { owner: 'hv1' }).acquire(new AbortController().signal);
    const pb = new ZkLock(s2, path, { owner: 'hv2' }).acquire(new AbortController().signal);
    const first = await waitFor('hv2 queued', async () => {
      const q = await readLockQueue(observer, path);
      return q.length === 2 ? q[1]!.child : undefined;
    });
    const oldSession = s2.sessionId;
    for (let attempt = 0; attempt < 10 && s2.sessionId === oldSession; attempt++) {
      const { id, password } = s2.sessionCredentials();
      await closeSessionFromOutside(server.port, id, password);
      await waitFor('new session', () => (s2.sessionId !== oldSession ? true : undefined), 3000).catch(() => undefined);
    }
    const requeued = await waitFor('hv2 queued again', async () => {
      const q = await readLockQueue(observer, path);
      return q.length === 2 && q[1]!.child !== first && q[1]!.owner === 'hv2' ? q[1]! : undefined;
    });
    assert.equal(requeued.session, s2.sessionId, 'the new child belongs to the new session');
    await ha.release();
    const hb = await pb;
    await hb.release();
  });
});
