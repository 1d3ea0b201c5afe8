// `vk daemon --dry-run` and `vk plan --node` during a pending flush: they print the flush moves the
// node's daemon then makes, not only its domain actions (two private libvirtds, test driver).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { Cluster } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';

const VMS = ['app1', 'app2', 'app3'];

describe('dry-run of a node with a pending flush', { timeout: 120_000 }, () => {
  let rig: Cluster;
  let vk: Vk;

  before(async () => {
    rig = await Cluster.start('test', { nodes: ['hv1', 'hv2'], clusterConfig: { defaultNodeSelector: 'vms' } });
    vk = vkFor(rig.zk.connectString, '/virtkeeper');
    for (const name of ['hv1', 'hv2']) await rig.startDaemon(name);
    for (const vm of VMS) await rig.writeVm(vm, { node: 'hv1', state: 'running', stopMode: 'force' });
    for (const vm of VMS) await waitFor(`${vm} on hv1`, () => rig.runsOn(vm, 'hv1'));
  });

  after(async () => {
    await rig?.cleanup();
  });

  it('prints every move of the flush, and the daemon then makes exactly those moves', async () => {
    // hv1's daemon is down while the flush is asked for: nothing moves until it is back.
    await rig.stopDaemon('hv1');
    await rig.setNode('hv1', 'flushed');
    const socket = rig.hv('hv1').libvirtd.socketPath;
    const local = ['--node', 'hv1', '--libvirt-socket', socket, '--libvirt-uri', 'test:///default'];
    const expected = VMS.map((vm) => `hv1 ${vm} migrate hv1 → hv2 (flush; selector vms, method default)`);

    const dry = await vk('daemon', ...local, '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(dry.stdout.trimEnd().split('\n'), expected);
    const plan = await vk('plan', ...local);
    assert.equal(plan.code, 1, plan.stderr);
    assert.deepEqual(plan.stdout.trimEnd().split('\n'), expected);
    for (const vm of VMS) assert.equal((await rig.spec(vm)).node, 'hv1', `${vm}: the dry runs wrote nothing`);

    await rig.startDaemon('hv1');
    await waitFor('hv1 flushed', async () => (await rig.nodeStatus('hv1'))?.domainState === 'flushed', 60_000);
    for (const vm of VMS) {
      assert.equal((await rig.spec(vm)).node, 'hv2', `${vm} moved as printed`);
      await waitFor(`${vm} on hv2`, () => rig.runsOn(vm, 'hv2'), 30_000);
    }
  });
});
