// ZkStore reads and writes against a real ZooKeeper: CAS, typed errors, multi, paths.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  NoNodeError,
  NodeExistsError,
  NotEmptyError,
  TransactionError,
  VersionConflictError,
  ZkStore,
} from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

let server: ZkServer;
let store: ZkStore;
let other: ZkStore;

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 4000 });
  other = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 4000 });
});

after(async () => {
  await store?.close();
  await other?.close();
  await server?.cleanup();
});

describe('ZkStore reads and writes', () => {
  it('creates, reads, sets with CAS and deletes', async () => {
    assert.equal(await store.get('/crud'), null);
    assert.equal(await store.exists('/crud'), null);
    assert.equal(await store.create('/crud', '{"a":1}'), '/crud');
    const v0 = await store.get('/crud');
    assert.ok(v0);
    assert.equal(v0.data.toString(), '{"a":1}');
    assert.equal(v0.version, 0);
    assert.equal(v0.stat.ephemeralOwner, null);
    assert.equal(typeof v0.stat.mzxid, 'bigint');
    const st = await store.set('/crud', Buffer.from('{"a":2}'), 0);
    assert.equal(st.version, 1);
    assert.ok(st.mzxid > v0.stat.mzxid, 'mzxid grows with each write');
    assert.equal((await other.get('/crud'))?.data.toString(), '{"a":2}');
    await store.delete('/crud', 1);
    assert.equal(await store.get('/crud'), null);
  });

  it('a set with a stale version is a VersionConflictError and writes nothing', async () => {
    await store.create('/cas', 'one');
    await other.set('/cas', 'two', 0); // someone else wrote first
    await assert.rejects(store.set('/cas', 'mine', 0), (e: unknown) => {
      assert.ok(e instanceof VersionConflictError);
      assert.equal(e.code, 'BAD_VERSION');
      assert.equal(e.reason, 'VersionConflict');
      assert.equal(e.path, '/cas');
      return true;
    });
    assert.equal((await store.get('/cas'))?.data.toString(), 'two');
    await assert.rejects(store.delete('/cas', 0), VersionConflictError);
    assert.ok(await store.exists('/cas'));
  });

  it('refuses blind writes (version -1) before sending anything', async () => {
    await store.create('/blind', 'x');
    await assert.rejects(store.set('/blind', 'y', -1), TypeError);
    await assert.rejects(store.delete('/blind', -1), TypeError);
    await assert.rejects(store.multi([{ op: 'set', path: '/blind', data: 'y', version: -1 }]), TypeError);
    assert.equal((await store.get('/blind'))?.data.toString(), 'x');
  });

  it('typed errors: NodeExists, NoNode, NotEmpty', async () => {
    await store.create('/exists', 'a');
    await assert.rejects(store.create('/exists', 'b'), (e: unknown) => e instanceof NodeExistsError && e.path === '/exists');
    await assert.rejects(store.create('/missing/child'), NoNodeError);
    await assert.rejects(store.set('/missing', 'x', 0), NoNodeError);
    await assert.rejects(store.delete('/missing', 0), NoNodeError);
    await store.create('/exists/kid');
    await assert.rejects(store.delete('/exists', 0), NotEmptyError);
    assert.equal(await store.children('/missing'), null);
  });

  it('create with parents, ensurePath is idempotent, children are sorted', async () => {
    assert.equal(await store.create('/p/q/r', 'deep', { parents: true }), '/p/q/r');
    await store.ensurePath('/p/q/r');
    await store.ensurePath('/p/q/s/t');
    assert.ok(await store.exists('/p/q/s/t'));
    for (const n of ['zeta', 'alpha', 'mid']) await store.create(`/p/q/${n}`);
    assert.deepEqual(await store.children('/p/q'), ['alpha', 'mid', 'r', 's', 'zeta']);
    assert.equal((await store.get('/p/q/r'))?.data.toString(), 'deep');
  });

  it('sequential and ephemeral modes', async () => {
    await store.ensurePath('/seq');
    const a = await store.create('/seq/n-', 'a', { mode: 'persistent_sequential' });
    const b = await store.create('/seq/n-', 'b', { mode: 'ephemeral_sequential' });
    assert.match(a, /^\/seq\/n-\d{10}$/);
    assert.match(b, /^\/seq\/n-\d{10}$/);
    assert.ok(b > a);
    const eph = await store.create('/seq/eph', 'e', { mode: 'ephemeral' });
    const st = await other.exists(eph);
    assert.equal(st?.ephemeralOwner, store.sessionId);
    assert.notEqual(store.sessionId, other.sessionId);
    assert.match(store.sessionId, /^[0-9a-f]{16}$/);
  });

  it('a failing multi writes nothing and names the failing op', async () => {
    await store.create('/tx-target', 'v0');
    await assert.rejects(
      store.multi([
        { op: 'create', path: '/tx-a', data: 'a' },
        { op: 'create', path: '/tx-b', data: 'b' },
        { op: 'set', path: '/tx-target', data: 'new', version: 5 },
      ]),
      (e: unknown) => {
        assert.ok(e instanceof TransactionError);
        assert.equal(e.failedIndex, 2);
        assert.ok(e.cause instanceof VersionConflictError);
        assert.equal(e.path, '/tx-target');
        return true;
      },
    );
    assert.equal(await store.exists('/tx-a'), null);
    assert.equal(await store.exists('/tx-b'), null);
    assert.equal((await store.get('/tx-target'))?.data.toString(), 'v0');

    await assert.rejects(
      store.multi([
        { op: 'create', path: '/tx-c' },
        { op: 'create', path: '/tx-target' },
        { op: 'create', path: '/tx-d' },
      ]),
      (e: unknown) => e instanceof TransactionError && e.failedIndex === 1 && e.cause instanceof NodeExistsError,
    );
    assert.equal(await store.exists('/tx-c'), null);
    assert.equal(await store.exists('/tx-d'), null);
  });

  it('multi honours version 0 (the library would turn it into a blind -1)', async () => {
    await store.create('/v0', 'x');
    await store.set('/v0', 'y', 0); // now at version 1
    for (const op of [
      { op: 'check', path: '/v0', version: 0 },
      { op: 'set', path: '/v0', data: 'z', version: 0 },
      { op: 'delete', path: '/v0', version: 0 },
    ] as const) {
      await assert.rejects(store.multi([op]), (e: unknown) => e instanceof TransactionError && e.cause instanceof VersionConflictError);
    }
    assert.equal((await store.get('/v0'))?.data.toString(), 'y');
  });

  it('a successful multi applies every op and returns per-op results', async () => {
    await store.create('/txok', 'v0');
    const res = await store.multi([
      { op: 'check', path: '/txok', version: 0 },
      { op: 'create', path: '/txok/child', data: 'c' },
      { op: 'set', path: '/txok', data: 'v1', version: 0 },
      { op: 'create', path: '/txok/tmp' },
      { op: 'delete', path: '/txok/tmp', version: 0 },
    ]);
    assert.equal(res.length, 5);
    assert.equal(res[1]?.path, '/txok/child');
    assert.equal(res[2]?.stat?.version, 1);
    assert.equal((await store.get('/txok'))?.data.toString(), 'v1');
    assert.deepEqual(await store.children('/txok'), ['child']);
  });

  it('deleteRecursive removes a whole subtree and ignores a missing path', async () => {
    for (const p of ['/tree/a/1', '/tree/a/2', '/tree/b', '/tree/c/d/e']) await store.create(p, 'x', { parents: true });
    await store.set('/tree/a/1', 'changed', 0); // versions other than 0 are handled
    await store.deleteRecursive('/tree');
    assert.equal(await store.exists('/tree'), null);
    await store.deleteRecursive('/tree');
  });

  it('lastZxid is the highest zxid seen and never goes backwards', async () => {
    const before = store.lastZxid();
    await store.create('/zx', 'a');
    const st = await store.set('/zx', 'b', 0);
    const z = store.lastZxid();
    assert.ok(z >= st.mzxid, `${z} >= ${st.mzxid}`);
    assert.ok(z > before);
    await other.set('/zx', 'c', 1); // another session writes
    const seen = await store.get('/zx'); // a read reply carries the server's newer zxid
    assert.ok(seen && store.lastZxid() >= seen.stat.mzxid);
    assert.ok(store.lastZxid() >= z);
  });

  it('rejects invalid paths', async () => {
    await assert.rejects(store.get('relative'), TypeError);
    await assert.rejects(store.create('/trailing/'), TypeError);
    await assert.rejects(store.create('/a//b'), TypeError);
  });
});
