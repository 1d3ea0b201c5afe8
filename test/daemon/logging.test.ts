// The daemon's log lines: JSON, and every line of a reconcile carries node, vm and the reconcile
// id, so `grep <reconcileId>` tells one reconcile's story (real ZooKeeper, real libvirtd).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type RunningDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../controllers/logger.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, editSpec, readStatus, startHv, stopHv, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

describe('daemon logs', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;
  const lines: Array<Record<string, unknown>> = [];

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    hv1 = await startHv('hv1');
    const log = createLogger({ level: 'info', node: 'hv1', destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) } });
    daemon = await startDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath), { log });
  });

  after(async () => {
    await daemon?.stop();
    await store?.close();
    await stopHv(hv1);
    await zk?.cleanup();
  });

  it('every action line carries node, vm and a reconcile id shared by one reconcile', async () => {
    await writeVm(store, 'log1', { node: 'hv1', state: 'running', stopMode: 'force' });
    await waitFor('log1 Running', async () => (await readStatus(store, 'log1'))?.phase === 'Running');
    await editSpec(store, 'log1', (s) => (s.state = 'stopped'));
    await waitFor('log1 Stopped', async () => (await readStatus(store, 'log1'))?.phase === 'Stopped');

    const actions = lines.filter((l) => typeof l['action'] === 'string');
    assert.deepEqual(
      actions.map((l) => l['action']),
      ['claim', 'define', 'start', 'writeStatus', 'destroy', 'writeStatus'],
    );
    for (const l of actions) {
      assert.equal(l['node'], 'hv1');
      assert.equal(l['vm'], 'log1');
      assert.match(String(l['reconcileId']), /^[0-9a-f]{8}$/);
    }
    const ids = actions.map((l) => l['reconcileId']);
    assert.equal(new Set(ids.slice(0, 4)).size, 1, 'claim, define, start and its status: one reconcile');
    assert.equal(new Set(ids.slice(4)).size, 1, 'destroy and its status: one reconcile');
    assert.notEqual(ids[0], ids[4], 'the stop was another reconcile');
  });
});
