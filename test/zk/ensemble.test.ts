// A 3-server ensemble: losing one member (the one the store is connected to) loses nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ZkStore, type DataState } from '../../drivers/zk/index.ts';
import { startEnsemble, type ZkEnsemble, type ZkServer } from '../rig/zookeeper.ts';
import { next, record } from './helpers.ts';

let ensemble: ZkEnsemble;
const stores: ZkStore[] = [];

before(async () => {
  ensemble = await startEnsemble(3);
});

after(async () => {
  for (const s of stores) await s.close();
  await ensemble?.cleanup();
});

const text = (s: DataState): string => (s.kind === 'data' ? s.data.toString() : '<deleted>');

/** The member holding a connection for `sessionId` (4lw cons lists sid=0x…). */
async function memberOf(sessionId: string): Promise<ZkServer | undefined> {
  const sid = `sid=0x${BigInt(`0x${sessionId}`).toString(16)}`;
  for (const m of ensemble.members) {
    if (m.running && (await m.fourLetter('cons')).includes(sid)) return m;
  }
  return undefined;
}

describe('3-server ensemble', () => {
  it('stop the member a client is on: same session, writes and watches continue; it rejoins', async () => {
    const store = await ZkStore.connect({ connectString: ensemble.connectString, sessionTimeoutMs: 6000 });
    stores.push(store);
    const watcher = await ZkStore.connect({ connectString: ensemble.connectString, sessionTimeoutMs: 6000 });
    stores.push(watcher);
    const session = store.sessionId;
    await store.create('/e', 'v0');
    const obs = watcher.watchData('/e');
    const rec = record(obs);
    try {
      await next(obs, (s) => text(s) === 'v0', 5000, 'v0');
      const victim = await memberOf(session);
      assert.ok(victim, 'found the member serving the store');
      await victim.stop();

      // The store moves to a surviving member (a call waits for the reconnection) and writes.
      let version = 0;
      for (let i = 1; i <= 20; i++) version = (await store.set('/e', `v${i}`, version)).version;
      assert.equal(version, 20);
      assert.equal(store.sessionId, session, 'the session survived the member loss');
      const survivor = await memberOf(session);
      assert.ok(survivor && survivor !== victim);
      await next(obs, (s) => text(s) === 'v20', 10000, 'v20 seen by the watcher');
      assert.equal((await watcher.get('/e'))?.data.toString(), 'v20');

      // Two members are a quorum; the third rejoins and catches up.
      await victim.start();
      const fresh = await ZkStore.connect({ connectString: victim.connectString, sessionTimeoutMs: 6000 });
      stores.push(fresh);
      assert.equal((await fresh.get('/e'))?.data.toString(), 'v20');
      const emitted = rec.values.filter((s) => s.kind === 'data').map((s) => (s.kind === 'data' ? s.version : -1));
      for (let i = 1; i < emitted.length; i++) assert.ok(emitted[i]! > emitted[i - 1]!);
    } finally {
      rec.stop();
    }
  });
});
