// compareAndSet (drivers/zk/cas.ts) against a real ZooKeeper: no change writes nothing, a lost race
// is re-read and retried, a race lost CAS_ATTEMPTS times is CasConflictError, create when absent.
// Races are real: a second session writes the znode between our read and our write.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CAS_ATTEMPTS,
  CasConflictError,
  compareAndSet,
  NO_CHANGE,
  NoNodeError,
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

interface Counter {
  n: number;
}
const decode = (data: Buffer): Counter => JSON.parse(data.toString('utf8')) as Counter;
const encode = (value: Counter): string => JSON.stringify(value);

/**
 * `store`, except that after each of its first `races` reads the other session writes the znode
 * (n + 100, or creates it at n = 100 when absent): the read's version is stale by the time we write.
 */
function racing(races: number): ZkStore & { reads: number } {
  const wrapper = {
    reads: 0,
    async get(path: string) {
      wrapper.reads++;
      const got = await store.get(path);
      if (races-- > 0) {
        if (got) await other.set(path, encode({ n: decode(got.data).n + 100 }), got.version);
        else await other.create(path, encode({ n: 100 }));
      }
      return got;
    },
    set: (path: string, data: string | Buffer, version: number) => store.set(path, data, version),
    create: (path: string, data?: string | Buffer) => store.create(path, data),
  };
  return wrapper as unknown as ZkStore & { reads: number };
}

describe('compareAndSet', () => {
  it('writes the edit with the version read', async () => {
    await store.create('/cas-write', encode({ n: 1 }));
    const outcome = await compareAndSet(store, '/cas-write', { decode, encode, edit: (c) => ({ n: c.n + 1 }) });
    assert.equal(outcome.kind, 'written');
    assert.ok(outcome.kind === 'written');
    assert.deepEqual(outcome.value, { n: 2 });
    assert.equal(outcome.version, 1);
    assert.equal(outcome.created, false);
    assert.deepEqual(outcome.read, { value: { n: 1 }, version: 0 });
    assert.equal((await other.get('/cas-write'))?.data.toString(), '{"n":2}');
  });

  it('writes nothing when the edit says NO_CHANGE', async () => {
    await store.create('/cas-same', encode({ n: 1 }));
    const before = await store.exists('/cas-same');
    let edits = 0;
    const outcome = await compareAndSet(store, '/cas-same', {
      decode,
      encode,
      edit: () => {
        edits++;
        return NO_CHANGE;
      },
    });
    assert.deepEqual(outcome, { kind: 'unchanged', read: { value: { n: 1 }, version: 0 } });
    assert.equal(edits, 1);
    const after = await store.exists('/cas-same');
    assert.equal(after?.version, 0);
    assert.equal(after?.mzxid, before?.mzxid, 'no write reached ZooKeeper');
  });

  it('re-reads and retries after losing the race, and keeps the other write', async () => {
    await store.create('/cas-race', encode({ n: 1 }));
    const seen: number[] = [];
    const s = racing(2);
    const outcome = await compareAndSet(s, '/cas-race', {
      decode,
      encode,
      edit: (c) => {
        seen.push(c.n);
        return { n: c.n + 1 };
      },
    });
    assert.equal(outcome.kind, 'written');
    assert.deepEqual(seen, [1, 101, 201], 'each round edits a fresh read');
    assert.equal(s.reads, 3);
    const got = await store.get('/cas-race');
    assert.equal(got?.data.toString(), '{"n":202}');
    assert.equal(got?.version, 3, 'two writes of the other session, then ours');
  });

  it(`gives up with CasConflictError after ${CAS_ATTEMPTS} lost races, naming the znode`, async () => {
    await store.create('/cas-storm', encode({ n: 0 }));
    let edits = 0;
    const s = racing(Number.POSITIVE_INFINITY);
    await assert.rejects(
      compareAndSet(s, '/cas-storm', {
        what: 'the storm counter',
        decode,
        encode,
        edit: (c) => {
          edits++;
          return { n: c.n + 1 };
        },
      }),
      (e: unknown) => {
        assert.ok(e instanceof CasConflictError);
        assert.equal(e.reason, 'CasConflict');
        assert.equal(e.path, '/cas-storm');
        assert.equal(e.attempts, CAS_ATTEMPTS);
        assert.ok(e.cause instanceof VersionConflictError);
        assert.equal(e.message, `the storm counter kept changing; gave up after ${CAS_ATTEMPTS} attempts`);
        return true;
      },
    );
    assert.equal(edits, CAS_ATTEMPTS);
    assert.equal(s.reads, CAS_ATTEMPTS);
    const got = await store.get('/cas-storm');
    assert.equal(got?.data.toString(), JSON.stringify({ n: CAS_ATTEMPTS * 100 }), 'none of our writes landed');
  });

  it('leaves an absent znode absent unless the caller allows a create', async () => {
    let edits = 0;
    const outcome = await compareAndSet(store, '/cas-absent', {
      decode,
      encode,
      edit: (c) => {
        edits++;
        return c;
      },
    });
    assert.deepEqual(outcome, { kind: 'absent' });
    assert.equal(edits, 0);
    assert.equal(await store.exists('/cas-absent'), null);
  });

  it('creates an absent znode from absent() when allowed', async () => {
    const outcome = await compareAndSet(store, '/cas-create', { decode, encode, absent: () => ({ n: 0 }), edit: (c) => ({ n: c.n + 1 }) });
    assert.ok(outcome.kind === 'written');
    assert.equal(outcome.created, true);
    assert.equal(outcome.version, 0);
    assert.deepEqual(outcome.read, { value: { n: 0 }, version: null });
    assert.equal((await store.get('/cas-create'))?.data.toString(), '{"n":1}');
  });

  it('a create that loses to another create (NodeExists) edits what the other wrote', async () => {
    const seen: number[] = [];
    const outcome = await compareAndSet(racing(1), '/cas-create-race', {
      decode,
      encode,
      absent: () => ({ n: 0 }),
      edit: (c) => {
        seen.push(c.n);
        return { n: c.n + 1 };
      },
    });
    assert.ok(outcome.kind === 'written');
    assert.equal(outcome.created, false);
    assert.deepEqual(seen, [0, 100]);
    const got = await store.get('/cas-create-race');
    assert.equal(got?.data.toString(), '{"n":101}');
    assert.equal(got?.version, 1);
  });

  it("a custom reader's context reaches the edit and the outcome", async () => {
    await store.create('/cas-read', encode({ n: 5 }));
    const outcome = await compareAndSet(store, '/cas-read', {
      read: async () => {
        const got = await store.get('/cas-read');
        return got ? { value: decode(got.data), version: got.version, note: 'extra' } : null;
      },
      encode,
      edit: (c, read) => (read.note === 'extra' ? { n: c.n * 2 } : NO_CHANGE),
    });
    assert.ok(outcome.kind === 'written');
    assert.equal(outcome.read.note, 'extra');
    assert.deepEqual(outcome.value, { n: 10 });
  });

  it('does not retry anything but a lost race', async () => {
    await store.create('/cas-bad', 'not json');
    const s = racing(0);
    await assert.rejects(compareAndSet(s, '/cas-bad', { decode, encode, edit: (c) => c }), SyntaxError);
    assert.equal(s.reads, 1);

    // Deleted between our read and our write: NO_NODE ends the update.
    await store.create('/cas-gone', encode({ n: 1 }));
    await assert.rejects(
      compareAndSet(store, '/cas-gone', {
        read: async () => {
          const got = await store.get('/cas-gone');
          await other.delete('/cas-gone', got!.version);
          return { value: decode(got!.data), version: got!.version };
        },
        encode,
        edit: (c) => ({ n: c.n + 1 }),
      }),
      NoNodeError,
    );
  });

  it('writes `with` ops in the same multi, retries only a race lost on the edited znode, and writes them alone on NO_CHANGE', async () => {
    await store.create('/cas-with', encode({ n: 1 }));
    await store.create('/cas-with-record', encode({ n: 0 }));
    let reads = 0;
    const readRacing = async () => {
      const got = (await store.get('/cas-with'))!;
      // The first read loses its race: another session writes the edited znode.
      if (reads++ === 0) await other.set('/cas-with', encode({ n: 50 }), got.version);
      return { value: decode(got.data), version: got.version };
    };
    const record = (await store.get('/cas-with-record'))!;
    const outcome = await compareAndSet(store, '/cas-with', {
      read: readRacing,
      encode,
      edit: (c) => ({ n: c.n + 1 }),
      with: [{ op: 'set', path: '/cas-with-record', data: encode({ n: 7 }), version: record.version }],
    });
    assert.equal(reads, 2, 'the lost race was read again');
    assert.ok(outcome.kind === 'written');
    assert.deepEqual(outcome.value, { n: 51 });
    assert.equal(outcome.with?.[0]?.stat?.version, record.version + 1, 'the with op\'s result comes back');
    assert.deepEqual(decode((await store.get('/cas-with'))!.data), { n: 51 });
    assert.deepEqual(decode((await store.get('/cas-with-record'))!.data), { n: 7 });

    // A with op that fails (stale version) ends the update: nothing is written, nothing retried.
    let tries = 0;
    await assert.rejects(
      compareAndSet(store, '/cas-with', {
        decode,
        encode,
        edit: (c) => {
          tries++;
          return { n: c.n + 1 };
        },
        with: [{ op: 'set', path: '/cas-with-record', data: encode({ n: 8 }), version: record.version }],
      }),
      (error: unknown) => error instanceof TransactionError && error.failedIndex === 0,
    );
    assert.equal(tries, 1);
    assert.deepEqual(decode((await store.get('/cas-with'))!.data), { n: 51 }, 'all or nothing');

    // NO_CHANGE: the with ops alone.
    const now = (await store.get('/cas-with-record'))!;
    const unchanged = await compareAndSet(store, '/cas-with', {
      decode,
      encode,
      edit: () => NO_CHANGE,
      with: [{ op: 'set', path: '/cas-with-record', data: encode({ n: 9 }), version: now.version }],
    });
    assert.equal(unchanged.kind, 'unchanged');
    assert.deepEqual(decode((await store.get('/cas-with-record'))!.data), { n: 9 });
    assert.deepEqual(decode((await store.get('/cas-with'))!.data), { n: 51 });
  });
});
