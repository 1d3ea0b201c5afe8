// watchData / watchChildren against a real ZooKeeper: level-triggered, ordered, deduped, cleaned up.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ZkStore, type ChildrenState, type DataState } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { next, record } from './helpers.ts';

let server: ZkServer;
let watcher: ZkStore;
let writer: ZkStore;

before(async () => {
  server = await startZooKeeper();
  watcher = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 4000 });
  writer = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 4000 });
});

after(async () => {
  await watcher?.close();
  await writer?.close();
  await server?.cleanup();
});

const text = (s: DataState): string => (s.kind === 'data' ? s.data.toString() : '<deleted>');

/** Paths the server holds a watch for (4lw wchp), for our sessions. */
async function watchedPaths(): Promise<string[]> {
  const out = await server.fourLetter('wchp');
  return out.split('\n').filter((l) => l.startsWith('/'));
}

describe('watchData', () => {
  it('emits deleted for an absent znode, then sees it created', async () => {
    const rec = record(watcher.watchData('/late'));
    try {
      await next(watcher.watchData('/late'), (s) => s.kind === 'deleted', 5000, 'initial deleted');
      await writer.create('/late', 'here');
      const s = await next(watcher.watchData('/late'), (x) => x.kind === 'data', 5000, 'creation');
      assert.equal(text(s), 'here');
      assert.deepEqual(rec.values.map(text), ['<deleted>', 'here']);
    } finally {
      rec.stop();
    }
  });

  it('expectAbsent probes with exists() first: absent, created and already-present znodes all read right', async () => {
    const absent = watcher.watchData('/probe-absent', { expectAbsent: true });
    const rec = record(absent);
    try {
      await next(absent, (s) => s.kind === 'deleted', 5000, 'initial deleted');
      await writer.create('/probe-absent', 'now');
      await next(absent, (s) => s.kind === 'data', 5000, 'creation');
      await writer.set('/probe-absent', 'changed', 0);
      await next(absent, (s) => s.kind === 'data' && s.version === 1, 5000, 'change');
      assert.deepEqual(rec.values.map(text), ['<deleted>', 'now', 'changed']);
    } finally {
      rec.stop();
    }
    await writer.create('/probe-present', 'there');
    const present = watcher.watchData('/probe-present', { expectAbsent: true });
    assert.equal(text(await next(present, () => true, 5000, 'first state')), 'there');
  });

  it('1,000 rapid writes: the last value is always seen, versions never go backwards', async () => {
    const path = '/rapid';
    await writer.create(path, 'init');
    const obs = watcher.watchData(path);
    const rec = record(obs);
    try {
      await next(obs, (s) => s.kind === 'data', 5000, 'first read');
      // Pipelined CAS writes from another session: version i → i+1, each must apply in order.
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 1000; i++) writes.push(writer.set(path, `w${i}`, i));
      await Promise.all(writes);
      const last = await next(obs, (s) => s.kind === 'data' && s.version === 1000, 15000, 'version 1000');
      assert.equal(text(last), 'w999');
      const data = rec.values.filter((s): s is Extract<DataState, { kind: 'data' }> => s.kind === 'data');
      assert.equal(rec.values.length, data.length, 'no deleted in between');
      for (let i = 1; i < data.length; i++) {
        assert.ok(data[i]!.version > data[i - 1]!.version, `emission ${i}: version ${data[i]!.version} after ${data[i - 1]!.version}`);
      }
      for (const s of data) {
        // each emission is a consistent snapshot: data written at version v is `w${v-1}`
        assert.equal(s.data.toString(), s.version === 0 ? 'init' : `w${s.version - 1}`);
      }
      assert.equal(rec.values.at(-1), last, 'the last emission is the last written value');
      assert.ok(rec.values.length <= 1001);
    } finally {
      rec.stop();
    }
  });

  it('delete then re-create is observed as data → deleted → data', async () => {
    const path = '/recreate';
    await writer.create(path, 'first');
    const obs = watcher.watchData(path);
    const rec = record(obs);
    try {
      await next(obs, (s) => text(s) === 'first', 5000, 'first');
      await writer.delete(path, 0);
      await next(obs, (s) => s.kind === 'deleted', 5000, 'deleted');
      await writer.create(path, 'second');
      const s = await next(obs, (x) => text(x) === 'second', 5000, 'second');
      assert.equal(s.kind === 'data' && s.version, 0);
      assert.deepEqual(rec.values.map(text), ['first', '<deleted>', 'second']);
    } finally {
      rec.stop();
    }
  });

  it('emits data changes only (children changes of the znode do not emit)', async () => {
    const path = '/dedupe';
    await writer.create(path, 'x');
    const obs = watcher.watchData(path);
    const rec = record(obs);
    try {
      await next(obs, () => true, 5000, 'first');
      await writer.create(`${path}/kid`);
      await writer.set(path, 'y', 0);
      await next(obs, (s) => text(s) === 'y', 5000, 'y');
      const versions = rec.values.map((s) => (s.kind === 'data' ? s.version : -1));
      assert.deepEqual(versions, [0, 1]);
    } finally {
      rec.stop();
    }
  });

  it('unsubscribe stops reads: a later event re-arms nothing', async () => {
    const path = '/unsub';
    await watcher.create(path, 'a');
    const rec = record(watcher.watchData(path));
    await next(watcher.watchData(path), (s) => text(s) === 'a', 5000, 'a');
    assert.ok((await watchedPaths()).includes(path), 'the watch is armed while subscribed');
    rec.stop();
    // The server still holds the one-shot watch; this write fires it. The notification reaches
    // the watcher's client before the write's reply (same session), so a wrongly re-armed watch
    // would have sent its getData before the barrier read below.
    await watcher.set(path, 'b', 0);
    await watcher.get('/'); // barrier
    assert.ok(!(await watchedPaths()).includes(path), 'no read re-armed the watch after unsubscribe');
    assert.deepEqual(rec.values.map(text), ['a']);
  });

  it('subscribers of one path share a watch; the last unsubscribe ends it', async () => {
    const path = '/shared';
    await watcher.create(path, 'a');
    const r1 = record(watcher.watchData(path));
    await next(watcher.watchData(path), (s) => text(s) === 'a', 5000, 'a');
    const r2 = record(watcher.watchData(path)); // late subscriber: gets the current state at once
    assert.deepEqual(r2.values.map(text), ['a']);
    r1.stop();
    await watcher.set(path, 'b', 0);
    await next(watcher.watchData(path), (s) => text(s) === 'b', 5000, 'b');
    assert.deepEqual(r2.values.map(text), ['a', 'b']);
    assert.deepEqual(r1.values.map(text), ['a']);
    r2.stop();
    await watcher.set(path, 'c', 1);
    await watcher.get('/'); // barrier
    assert.ok(!(await watchedPaths()).includes(path));
  });
});

describe('watchChildren', () => {
  it('sees adds and removes, sorted, and the parent being deleted and re-created', async () => {
    const path = '/kids';
    const obs = watcher.watchChildren(path);
    const rec = record(obs);
    const names = (s: ChildrenState): string => (s.kind === 'children' ? s.children.join(',') : '<deleted>');
    try {
      await next(obs, (s) => s.kind === 'deleted', 5000, 'initial deleted');
      await writer.create(path);
      await next(obs, (s) => names(s) === '', 5000, 'empty');
      await writer.create(`${path}/b`);
      await next(obs, (s) => names(s) === 'b', 5000, 'b');
      await writer.multi([
        { op: 'create', path: `${path}/c` },
        { op: 'create', path: `${path}/a` },
      ]);
      await next(obs, (s) => names(s) === 'a,b,c', 5000, 'a,b,c');
      await writer.delete(`${path}/b`, 0);
      await next(obs, (s) => names(s) === 'a,c', 5000, 'a,c');
      // data changes of the parent or of a child are not children changes
      await writer.set(path, 'data', 0);
      await writer.set(`${path}/a`, 'data', 0);
      await writer.deleteRecursive(path);
      await next(obs, (s) => s.kind === 'deleted', 5000, 'deleted');
      await writer.create(`${path}/z`, undefined, { parents: true });
      await next(obs, (s) => names(s) === 'z', 5000, 'z');
      const seen = rec.values.map(names);
      assert.deepEqual(seen.slice(0, 5), ['<deleted>', '', 'b', 'a,b,c', 'a,c']);
      assert.ok(seen.indexOf('<deleted>', 1) > 4, 'deletion of the parent seen');
      assert.equal(seen.at(-1), 'z');
      for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], 'no repeated state');
    } finally {
      rec.stop();
    }
  });
});
