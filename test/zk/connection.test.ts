// Connection and session state against a real ZooKeeper that we kill, restart and freeze:
// suspended vs expired (client-side expiry), new sessions, ephemerals, watches surviving it all.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConnectionLossError, ZkStore, type ConnectionState, type DataState } from '../../drivers/zk/index.ts';
import { freePorts, startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { closeSessionFromOutside, containsInOrder, next, record } from './helpers.ts';

let server: ZkServer;
const stores: ZkStore[] = [];

async function connect(opts: { sessionTimeoutMs: number; connectTimeoutMs?: number }): Promise<ZkStore> {
  const s = await ZkStore.connect({ connectString: server.connectString, ...opts });
  stores.push(s);
  return s;
}

before(async () => {
  server = await startZooKeeper({ tickTime: 100 }); // minSessionTimeout 200 ms
});

after(async () => {
  for (const s of stores) await s.close();
  await server?.cleanup();
});

const text = (s: DataState): string => (s.kind === 'data' ? s.data.toString() : '<deleted>');
const stateIs = (want: ConnectionState) => (s: ConnectionState) => s === want;

describe('connection state', () => {
  it('connect() to nothing rejects with ConnectionLossError after connectTimeoutMs', async () => {
    const [port] = await freePorts(1);
    await assert.rejects(
      ZkStore.connect({ connectString: `127.0.0.1:${port}`, sessionTimeoutMs: 2000, connectTimeoutMs: 300 }),
      ConnectionLossError,
    );
  });

  it('server killed and restarted: suspended, then connected; watches and writes carry on', async () => {
    const store = await connect({ sessionTimeoutMs: 8000 });
    await store.create('/k', 'before');
    const states = record(store.connectionState$);
    const obs = store.watchData('/k');
    const rec = record(obs);
    try {
      await next(obs, (s) => text(s) === 'before', 5000, 'before');
      await server.kill();
      await next(store.connectionState$, stateIs('suspended'), 10000, 'suspended');
      // A call made while suspended waits for the connection (bounded by connectTimeoutMs).
      const pending = store.get('/k');
      await server.start();
      await next(store.connectionState$, stateIs('connected'), 10000, 'connected');
      assert.equal((await pending)?.data.toString(), 'before');
      assert.ok(containsInOrder(states.values, ['connected', 'suspended', 'connected']), states.values.join(' → '));
      const got = await store.get('/k');
      await store.set('/k', 'after', got!.version);
      await next(obs, (s) => text(s) === 'after', 5000, 'after');
      // The re-read after reconnection found nothing new: no duplicate emission.
      assert.deepEqual(rec.values.map(text), ['before', 'after']);
    } finally {
      rec.stop();
      states.stop();
    }
  });

  it('a call made while ZooKeeper is down rejects with ConnectionLossError after connectTimeoutMs', async () => {
    const store = await connect({ sessionTimeoutMs: 8000, connectTimeoutMs: 300 });
    await server.kill();
    try {
      await next(store.connectionState$, stateIs('suspended'), 10000, 'suspended');
      await assert.rejects(store.get('/k'), ConnectionLossError);
      await assert.rejects(store.set('/k', 'x', 0), ConnectionLossError);
    } finally {
      await server.start();
    }
    await next(store.connectionState$, stateIs('connected'), 10000, 'connected');
    assert.ok(await store.exists('/k'));
  });

  it('session lost while ZooKeeper is down: expired, new session, old ephemeral gone, watch continues', async () => {
    const store = await connect({ sessionTimeoutMs: 1500 });
    const observer = await connect({ sessionTimeoutMs: 8000 });
    const sessions = record(store.sessions$);
    const states = record(store.connectionState$);
    const oldSession = store.sessionId;
    assert.deepEqual(sessions.values, [oldSession], 'sessions$ replays the current session');
    await store.create('/alive', 'me', { mode: 'ephemeral' });
    await store.create('/w', 'v0');
    const obs = store.watchData('/w');
    const rec = record(obs);
    try {
      await next(obs, (s) => text(s) === 'v0', 5000, 'v0');
      await server.kill();
      await next(store.connectionState$, stateIs('expired'), 15000, 'expired (client-side timer)');
      await server.start();
      const newSession = await next(store.sessions$, (id) => id !== oldSession, 15000, 'new session');
      assert.notEqual(newSession, oldSession);
      assert.equal(store.sessionId, newSession);
      assert.ok(containsInOrder(states.values, ['connected', 'suspended', 'expired', 'connected']), states.values.join(' → '));
      // The old session was closed before the new one was announced: its ephemeral is gone.
      assert.equal(await store.exists('/alive'), null);
      await next(observer.connectionState$, stateIs('connected'), 15000, 'observer connected');
      assert.equal(await observer.exists('/alive'), null);
      // The daemon's pattern: re-create the ephemeral on the new session.
      await store.create('/alive', 'me again', { mode: 'ephemeral' });
      assert.equal((await observer.exists('/alive'))?.ephemeralOwner, newSession);
      // The watch re-armed on the new session.
      await observer.set('/w', 'v1', 0);
      await next(obs, (s) => text(s) === 'v1', 5000, 'v1 after new session');
      assert.deepEqual(rec.values.map(text), ['v0', 'v1']);
      assert.deepEqual(sessions.values, [oldSession, newSession]);
    } finally {
      rec.stop();
      sessions.stop();
      states.stop();
    }
  });

  it('session expired by the server: expired, then a new session; watches re-armed', async () => {
    const store = await connect({ sessionTimeoutMs: 4000 });
    const observer = await connect({ sessionTimeoutMs: 4000 });
    const oldSession = store.sessionId;
    const states = record(store.connectionState$);
    await store.create('/alive2', 'me', { mode: 'ephemeral' });
    await store.create('/w2', 'v0');
    const obs = store.watchData('/w2');
    const rec = record(obs);
    try {
      await next(obs, (s) => text(s) === 'v0', 5000, 'v0');
      // Close the store's session from another connection (as ZooKeeper does on expiry): the
      // server drops the store's connection, and on reconnect tells it the session is expired.
      // The store's immediate reconnection can win the session back before the close is
      // processed; then the close is simply sent again.
      const { id, password } = store.sessionCredentials();
      let newSession = oldSession;
      for (let attempt = 0; attempt < 10 && newSession === oldSession; attempt++) {
        await closeSessionFromOutside(server.port, id, password);
        newSession = await next(store.sessions$, (s) => s !== oldSession, 2000, 'new session').catch(() => oldSession);
      }
      assert.ok(containsInOrder(states.values, ['connected', 'expired', 'connected']), states.values.join(' → '));
      assert.ok(!states.values.includes('suspended') || states.values.indexOf('suspended') < states.values.indexOf('expired'));
      assert.notEqual(newSession, oldSession);
      assert.equal(await observer.exists('/alive2'), null);
      await observer.set('/w2', 'v1', 0);
      await next(obs, (s) => text(s) === 'v1', 5000, 'v1');
    } finally {
      rec.stop();
      states.stop();
    }
  });

  it('a frozen server (no RST, no answers) is detected by the read timeout; thawed, all works', async () => {
    const store = await connect({ sessionTimeoutMs: 1500 });
    const states = record(store.connectionState$);
    await store.create('/frozen', 'v0');
    const obs = store.watchData('/frozen');
    const rec = record(obs);
    try {
      await next(obs, (s) => text(s) === 'v0', 5000, 'v0');
      server.pause();
      try {
        await next(store.connectionState$, stateIs('suspended'), 10000, 'suspended while frozen');
      } finally {
        server.resume();
      }
      await next(store.connectionState$, stateIs('connected'), 15000, 'connected after thaw');
      assert.ok(containsInOrder(states.values, ['connected', 'suspended', 'connected']), states.values.join(' → '));
      const cur = await store.get('/frozen');
      await store.set('/frozen', 'v1', cur!.version);
      await next(obs, (s) => text(s) === 'v1', 5000, 'v1');
    } finally {
      rec.stop();
      states.stop();
    }
  });

  it('calls in flight when the connection drops are settled: applied once, no spurious error', async () => {
    const store = await connect({ sessionTimeoutMs: 8000 });
    const states = record(store.connectionState$);
    const path = '/inflight';
    await store.create(path, 'v0');
    try {
      for (let i = 0; i < 20; i++) {
        const write = store.set(path, `v${i + 1}`, i);
        store.dropConnection();
        assert.equal((await write).version, i + 1);
      }
      assert.equal((await store.get(path))?.data.toString(), 'v20');
      for (let i = 0; i < 10; i++) {
        const child = `${path}/e${i}`;
        const created = store.create(child, 'x', { mode: i % 2 ? 'ephemeral' : 'persistent' });
        store.dropConnection();
        assert.equal(await created, child);
        assert.equal((await store.get(child))?.data.toString(), 'x');
        const deleted = store.delete(child, 0);
        store.dropConnection();
        await deleted;
        assert.equal(await store.exists(child), null);
      }
      const read = store.get(path);
      store.dropConnection();
      assert.equal((await read)?.data.toString(), 'v20');
      assert.ok(states.values.filter((s) => s === 'suspended').length >= 20, 'the connection really dropped each time');
      assert.equal(states.values.at(-1), 'connected');
      // A multi cannot be settled: its loss is reported (the outcome is unknown to the caller).
      const tx = store.multi([{ op: 'set', path, data: 'tx', version: 20 }]);
      store.dropConnection();
      await assert.rejects(tx, (e: unknown) => e instanceof ConnectionLossError && e.inFlight);
    } finally {
      states.stop();
    }
  });

  it('close() ends the session at once (its ephemerals are gone for others) and completes watches', async () => {
    const store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 8000 });
    const observer = await connect({ sessionTimeoutMs: 8000 });
    await store.create('/bye', 'x', { mode: 'ephemeral' });
    assert.ok(await observer.exists('/bye'));
    let completed = false;
    const sub = store.watchData('/bye').subscribe({ complete: () => (completed = true) });
    await next(store.watchData('/bye'), () => true, 5000, 'first read');
    await store.close();
    assert.ok(completed, 'watch streams complete when the store is closed');
    sub.unsubscribe();
    assert.equal(await observer.exists('/bye'), null);
    await assert.rejects(store.get('/bye'), ConnectionLossError);
  });
});
