// The one dry-run path (issue 13): `vk plan --node` asks every registered concern for its plan.
// hv1's daemon is stopped while three changes wait for it — a domain change (chg: stop it), a
// migration (mig: spec.node → hv2) and a flush (hv1 flushed; fl must move) — and the plan prints
// all three. Started, the daemon then carries out exactly those actions (three libvirt
// test-driver hypervisors, real ZooKeeper, the real `vk` binary).
import { indexOps } from '../../core/vm-index.ts';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { encodeVmSpec, type VmSpec } from '../../schemas/index.ts';
import { Cluster, paths } from '../rig/cluster.ts';
import { waitFor } from '../rig/wait.ts';

/** The VM an action line is about: "hv1 <vm> …" (node lines read "hv1 (node) …"). */
const vmOf = (line: string): string => line.split(' ')[1] ?? '';

describe('one dry-run path for every concern', { timeout: 180_000 }, () => {
  let rig: Cluster;
  let vk: Vk;

  before(async () => {
    rig = await Cluster.start('test', { nodes: ['hv1', 'hv2', 'hv3'], clusterConfig: { defaultNodeSelector: 'vms' } });
    vk = vkFor(rig.zk.connectString, '/virtkeeper');
    for (const name of ['hv1', 'hv2', 'hv3']) await rig.startDaemon(name);
    for (const vm of ['chg', 'mig', 'fl']) await rig.writeVm(vm, { node: 'hv1', state: 'running', stopMode: 'force', ...(vm === 'fl' ? { meta: { nodeLimit: ['hv1', 'hv3'] } } : {}) });
    await rig.writeVm('idle', { node: 'hv1', state: 'stopped', stopMode: 'force' });
    for (const vm of ['chg', 'mig', 'fl']) await waitFor(`${vm} on hv1`, () => rig.runsOn(vm, 'hv1'));
    await waitFor('idle Stopped', async () => (await rig.status('idle'))?.phase === 'Stopped');
  });

  after(async () => {
    await rig?.cleanup();
  });

  it('vk plan --node prints the domain change, the migration and the flush, and the daemon then does exactly those', async () => {
    await rig.stopDaemon('hv1');
    const edit = async (vm: string, change: Partial<VmSpec>) => {
      const got = (await rig.store.get(paths.vmSpec(vm)))!;
      const next = { ...(await rig.spec(vm)), ...change };
      await rig.store.multi([{ op: 'set', path: paths.vmSpec(vm), data: encodeVmSpec(next), version: got.version }, ...(await indexOps(rig.store, paths, vm, next))]);
    };
    await edit('chg', { state: 'stopped' });
    await edit('mig', { node: 'hv2' });
    await rig.setNode('hv1', 'flushed');

    const local = ['--node', 'hv1', '--libvirt-socket', rig.hv('hv1').libvirtd.socketPath, '--libvirt-uri', 'test:///default'];
    const plan = await vk('plan', ...local);
    assert.equal(plan.code, 1, plan.stderr);
    const planned = plan.stdout.trimEnd().split('\n');
    // One line or more from each concern: domain, migration, flush.
    assert.ok(planned.some((l) => l.startsWith('hv1 chg ')), `a domain action for chg:\n${plan.stdout}`);
    assert.ok(planned.includes('hv1 mig migration requested to hv2 (shutdown)'), `the migration of mig:\n${plan.stdout}`);
    assert.ok(planned.includes('hv1 fl migrate hv1 → hv3 (flush; selector vms, method default)'), `the flush move of fl:\n${plan.stdout}`);
    assert.ok(!planned.some((l) => vmOf(l) === 'idle'), `nothing for idle:\n${plan.stdout}`);
    const dry = await vk('daemon', ...local, '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(dry.stdout.trimEnd().split('\n'), planned, 'vk daemon --dry-run prints the same plan');
    assert.equal((await rig.spec('fl')).node, 'hv1', 'the dry runs wrote nothing');
    assert.deepEqual(await rig.runningOn('chg'), ['hv1'], 'the dry runs stopped nothing');

    const before = rig.actions.length;
    await rig.startDaemon('hv1');
    await waitFor('hv1 flushed', async () => (await rig.nodeStatus('hv1'))?.domainState === 'flushed', 60_000);
    await waitFor('mig on hv2', () => rig.runsOn('mig', 'hv2'), 60_000);
    await waitFor('fl on hv3', () => rig.runsOn('fl', 'hv3'), 60_000);
    await waitFor('chg stopped', async () => (await rig.status('chg'))?.phase === 'Stopped', 30_000);
    await rig.daemons.get('hv1')!.domain.queue.idle();

    // hv1's own actions on VMs ("(node)" lines are the flush's progress reports, not actions).
    const done = rig.actions.slice(before).filter((l) => l.startsWith('hv1 ') && vmOf(l) !== '(node)');
    for (const line of planned) assert.equal(done.filter((l) => l === line).length, 1, `carried out once: ${line}\nactions:\n${done.join('\n')}`);
    const linesOf = (vm: string, lines: string[]) => lines.filter((l) => vmOf(l) === vm);
    // The domain change is exactly what was planned, in order.
    assert.deepEqual(linesOf('chg', done), linesOf('chg', planned));
    // The planned step of mig and fl came first; what follows are the steps of those migrations.
    for (const vm of ['mig', 'fl']) {
      assert.equal(linesOf(vm, done)[0], linesOf(vm, planned)[0], `${vm}: the planned action first`);
      for (const line of linesOf(vm, done).slice(linesOf(vm, planned).length)) assert.match(line, /migration/, `${vm}: a step of its migration`);
    }
    assert.deepEqual(linesOf('idle', done), [], 'nothing was done to idle');
    assert.deepEqual(
      [...new Set(done.map(vmOf))].sort(),
      ['chg', 'fl', 'mig'],
      `actions only on the VMs the plan named:\n${done.join('\n')}`,
    );
  });
});
