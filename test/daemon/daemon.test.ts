// The reconcile daemon against a real ZooKeeper and a real libvirtd (test driver).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { planNode, type RunningDaemon } from '../../daemon/daemon.ts';
import { createLogger } from '../../controllers/logger.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import {
  daemonConfig,
  paths,
  domainState,
  editSpec,
  readStatus,
  runDaemon,
  startHv,
  stopHv,
  writeVm,
  testXml,
  type HvRig,
} from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';

const VK = fileURLToPath(new URL('../../cli/vk.mjs', import.meta.url));

describe('vk daemon with the libvirt test driver', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let hv1: HvRig;
  let daemon: RunningDaemon | undefined;
  const actions: string[] = [];

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    hv1 = await startHv('hv1');
    daemon = await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath), actions);
  });

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    if (hv1) await stopHv(hv1);
    await zk?.cleanup();
  });

  it('a VM spec written to ZooKeeper becomes a running domain and status says so', async () => {
    await writeVm(store, 'web1', { node: 'hv1', state: 'running' });
    await waitFor('web1 running', async () => (await domainState(hv1, 'web1')) === 'running');
    const status = await waitFor('Running status', async () => {
      const s = await readStatus(store, 'web1');
      return s?.phase === 'Running' ? s : undefined;
    });
    assert.equal(status.node, 'hv1');
    assert.equal(status.observedGeneration, 0);
    const running = (status.conditions as Array<{ type: string; status: string }>).find((c) => c.type === 'Running');
    assert.equal(running?.status, 'True');
  });

  it('graceful stop, then start, restart and disable converge', async () => {
    await editSpec(store, 'web1', (s) => (s.state = 'stopped'));
    await waitFor('web1 shut off', async () => (await domainState(hv1, 'web1')) === 'shutoff');
    await waitFor('Stopped status', async () => (await readStatus(store, 'web1'))?.phase === 'Stopped');

    await editSpec(store, 'web1', (s) => (s.state = 'running'));
    await waitFor('web1 running again', async () => (await domainState(hv1, 'web1')) === 'running');
    // libvirt says running before the daemon's start call has returned and been logged: wait for the
    // status written after it, so the start is not counted as part of the restart below.
    await waitFor('Running status again', async () => (await readStatus(store, 'web1'))?.phase === 'Running');
    await daemon!.domain.queue.idle();

    const before = actions.length;
    await editSpec(store, 'web1', (s) => (s.restartedAt = new Date().toISOString()));
    await waitFor('restart honoured', async () => {
      const s = await readStatus(store, 'web1');
      return typeof s?.restartedAt === 'string';
    });
    const restartLines = actions.slice(before).filter((l) => !l.includes(' status '));
    assert.deepEqual(restartLines, ['hv1 web1 shutdown (graceful, destroy after 90s)', 'hv1 web1 start']);
    assert.equal(await domainState(hv1, 'web1'), 'running');

    await editSpec(store, 'web1', (s) => {
      s.state = 'disabled';
      s.stopMode = 'force';
    });
    await waitFor('Disabled', async () => (await readStatus(store, 'web1'))?.phase === 'Disabled');
    assert.equal(await domainState(hv1, 'web1'), 'shutoff');
    await editSpec(store, 'web1', (s) => (s.state = 'running'));
    await waitFor('web1 running after disable', async () => (await domainState(hv1, 'web1')) === 'running');
  });

  it('a domain destroyed behind the daemon\'s back is started again', async () => {
    await waitFor('Running status', async () => (await readStatus(store, 'web1'))?.phase === 'Running');
    await hv1.hv.destroy('web1');
    await waitFor('web1 restarted', async () => (await domainState(hv1, 'web1')) === 'running');
    const status = await readStatus(store, 'web1');
    assert.equal((status?.crash as { count: number } | undefined)?.count, 1);
  });

  it('a domain defined on a node that is not its spec.node is removed there', async () => {
    // hv2 is a node of the cluster (its daemon is down): a spec naming an unknown node would get an UnknownNode condition.
    await store.ensurePath(paths.node('hv2'));
    await writeVm(store, 'stray1', { node: 'hv2', state: 'running' });
    await hv1.hv.define(testXml('stray1'));
    await hv1.hv.start('stray1');
    await waitFor('stray1 removed from hv1', async () => (await domainState(hv1, 'stray1')) === null);
    assert.equal(await readStatus(store, 'stray1'), null, 'hv1 must not write the status of a VM homed on hv2');
  });

  it('restarting the daemon repeats nothing: no second start, no redefine', async () => {
    await waitFor('web1 Running', async () => (await readStatus(store, 'web1'))?.phase === 'Running');
    await daemon!.stop();
    const statusBefore = await store.get('/virtkeeper/vms/web1/status');
    const restartActions: string[] = [];
    daemon = await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath), restartActions);
    await daemon.domain.queue.idle();
    // A resync is queued at start; let it run out.
    await new Promise((r) => setTimeout(r, 300));
    await daemon.domain.queue.idle();
    assert.deepEqual(restartActions, []);
    const statusAfter = await store.get('/virtkeeper/vms/web1/status');
    assert.equal(statusAfter?.version, statusBefore?.version, 'no status write either');
  });

  it('dry-run changes nothing, and prints exactly the actions the executor then performs', async () => {
    await daemon!.stop();
    daemon = undefined;
    await writeVm(store, 'db1', { node: 'hv1', state: 'running' });
    await editSpec(store, 'web1', (s) => (s.state = 'stopped'));
    const cfg = daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath);
    const planned = await planNode(cfg, createLogger({ level: 'silent' }));
    assert.deepEqual(planned, [
      // db1 is new: hv1 wins it (creates its status) before it defines and starts it.
      'hv1 db1 claim (status Starting on hv1, generation 0)',
      'hv1 db1 define (not defined here)',
      'hv1 db1 start',
      'hv1 db1 status Running (generation 0)',
      // stopMode is still force from the disable above.
      'hv1 web1 destroy',
      'hv1 web1 status Stopped (generation 6)',
    ]);
    // The same plan from the CLI, as an operator runs it on the hypervisor.
    const cli = spawnSync(
      process.execPath,
      [VK, 'plan', '--node', 'hv1', '--zk', zk.connectString, '--libvirt-socket', hv1.libvirtd.socketPath, '--libvirt-uri', 'test:///default'],
      { encoding: 'utf8' },
    );
    assert.equal(cli.status, 1, cli.stderr);
    assert.deepEqual(cli.stdout.trimEnd().split('\n'), planned);
    // Nothing changed: db1 still absent, web1 still running, no status for db1.
    assert.equal(await domainState(hv1, 'db1'), null);
    assert.equal(await domainState(hv1, 'web1'), 'running');
    assert.equal(await readStatus(store, 'db1'), null);

    const performed: string[] = [];
    daemon = await runDaemon(cfg, performed);
    await waitFor('db1 running', async () => (await domainState(hv1, 'db1')) === 'running');
    await waitFor('web1 stopped', async () => (await readStatus(store, 'web1'))?.phase === 'Stopped');
    await daemon.domain.queue.idle();
    assert.deepEqual([...performed].sort(), [...planned].sort());
  });
});
