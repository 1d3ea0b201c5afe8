// The per-node VM index (issue 20, core/vm-index.ts) against a real ZooKeeper and two daemons on
// libvirt's test driver: the writers keep it (vk's verbs, apply, removal), a daemon follows only its
// own VMs, a VM moving to a node is in that node's index before any migration record names it, an
// entry deleted behind the daemons' back is recreated and the VM stays converged, a VM missing from
// the index is added by the scan, and a version-1 cluster is upgraded with its index built.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeVmSpec, encodeVmStatus } from '../../schemas/index.ts';
import { indexOps, migrateToIndex, releaseIndexEntry, removalIndexOps, repairIndexEntry, scanIndex } from '../../core/vm-index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, editSpec, paths, readStatus, runDaemon, startHv, stopHv, testXml, writeVm, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';

const entries = async (store: ZkStore, node: string) => ((await store.children(paths.nodeVms(node))) ?? []).sort();

describe('the per-node VM index', () => {
  let zk: ZkServer;
  let store: ZkStore;
  let vk: Vk;
  const hvs: HvRig[] = [];
  const daemons = new Map<string, RunningDaemon>();

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
    vk = vkFor(zk.connectString, paths.root);
    for (const node of ['hv1', 'hv2']) {
      const hv = await startHv(node);
      hvs.push(hv);
      // A short scan period, so the repair scan is seen here.
      daemons.set(node, await runDaemon(daemonConfig(node, zk.connectString, hv.libvirtd.socketPath, { indexScanMs: 1_500, indexReleaseAfterMs: 1_000 })));
    }
  });

  after(async () => {
    for (const d of daemons.values()) await d.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    for (const hv of hvs) await stopHv(hv);
    await zk?.cleanup();
  });

  const informer = (node: string) => daemons.get(node)!.manager.informers.vms;

  it('a daemon follows the VMs of its own index only', async () => {
    await writeVm(store, 'a1', { node: 'hv1', state: 'running' });
    await writeVm(store, 'b1', { node: 'hv2', state: 'running' });
    await waitFor('a1 runs on hv1', async () => (await domainState(hvs[0]!, 'a1')) === 'running');
    await waitFor('b1 runs on hv2', async () => (await domainState(hvs[1]!, 'b1')) === 'running');
    assert.deepEqual(await entries(store, 'hv1'), ['a1']);
    assert.deepEqual(await entries(store, 'hv2'), ['b1']);
    assert.deepEqual(informer('hv1').names(), ['a1'], 'hv1 follows a1 only');
    assert.deepEqual(informer('hv2').names(), ['b1'], 'hv2 follows b1 only');
  });

  it('vk migrate writes the target\'s entry with the spec, before any migration record names it; the source keeps its entry (previous node)', async () => {
    const res = await vk('vm', 'migrate', 'a1', '--node', 'hv2');
    assert.equal(res.code, 0, res.stderr);
    const entry = await store.exists(paths.nodeVmEntry('hv2', 'a1'));
    const spec = await store.exists(paths.vmSpec('a1'));
    assert.ok(entry && spec, 'hv2 has an entry for a1');
    assert.equal(entry.czxid, spec.mzxid, 'created in the very transaction that named hv2');
    const record = await waitFor('a migration record naming hv2', async () => {
      const got = await store.get(paths.vmMigration('a1'));
      return got && got.data.toString().includes('"target":"hv2"') ? got : undefined;
    });
    assert.ok(record.stat.czxid > entry.czxid, 'the record came after the entry: hv2 watched a1 from the moment the record named it');
    assert.ok(informer('hv2').get('a1')?.migration, "hv2's informer has the record");
    await waitFor('a1 runs on hv2', async () => (await domainState(hvs[1]!, 'a1')) === 'running');
    assert.equal(await domainState(hvs[0]!, 'a1'), null, 'and not on hv1');
    assert.deepEqual(await entries(store, 'hv1'), ['a1'], 'hv1 keeps it: it is its previous node (vk vm unmigrate brings it back)');
    // A permanent move drops the previous node: hv1 holds nothing of a1 and releases its entry.
    assert.equal((await vk('vm', 'move', 'a1', '--node', 'hv2')).code, 0);
    await waitFor('hv1 released a1', async () => (await entries(store, 'hv1')).length === 0);
    await waitFor('hv1 no longer follows a1', () => informer('hv1').get('a1') === undefined);
    assert.equal((await readStatus(store, 'a1'))?.phase, 'Running');
  });

  it('an entry deleted behind the daemons\' back is recreated at once, and the VM stays converged', async () => {
    const before = (await readStatus(store, 'b1'))!;
    await store.delete(paths.nodeVmEntry('hv2', 'b1'), 0);
    await waitFor('the entry is back', async () => (await store.exists(paths.nodeVmEntry('hv2', 'b1'))) !== null, 10_000);
    assert.equal(await domainState(hvs[1]!, 'b1'), 'running', 'b1 was never touched');
    assert.ok(informer('hv2').get('b1'), 'still followed');
    // And converges on a change as before.
    await editSpec(store, 'b1', (s) => (s['state'] = 'stopped'));
    await waitFor('b1 stopped', async () => (await readStatus(store, 'b1'))?.phase === 'Stopped');
    assert.ok(Number(before.observedGeneration) < Number((await readStatus(store, 'b1'))!.observedGeneration));
  });

  it('a VM written without its entry (another tool) is added by the scan and then converged', async () => {
    await store.multi([
      { op: 'create', path: paths.vm('c1') },
      { op: 'create', path: paths.vmSpec('c1'), data: encodeVmSpec({ node: 'hv1', state: 'running' }) },
      { op: 'create', path: paths.vmXml('c1'), data: testXml('c1') },
    ]);
    await waitFor('the scan added c1 to hv1', async () => (await entries(store, 'hv1')).includes('c1'), 15_000);
    await waitFor('c1 runs on hv1', async () => (await domainState(hvs[0]!, 'c1')) === 'running', 15_000);
  });

  it('vk vm remove deletes the entries with the VM', async () => {
    assert.equal((await vk('vm', 'stop', 'c1')).code, 0);
    await waitFor('c1 stopped', async () => (await readStatus(store, 'c1'))?.phase === 'Stopped');
    assert.equal((await vk('vm', 'remove', 'c1')).code, 0);
    assert.equal(await store.exists(paths.nodeVmEntry('hv1', 'c1')), null);
    await waitFor('hv1 forgot c1', async () => informer('hv1').get('c1') === undefined && (await domainState(hvs[0]!, 'c1')) === null);
  });
});

describe('index helpers', () => {
  let zk: ZkServer;
  let store: ZkStore;

  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString });
  });

  after(async () => {
    await store?.close().catch(() => undefined);
    await zk?.cleanup();
  });

  it('indexOps: creates (with /index and /index/<node>) when missing, checks when present; a lost race fails the multi', async () => {
    await store.ensurePath(paths.vms);
    const ops = await indexOps(store, paths, 'x1', { node: 'hv1', previousNode: 'hv2' });
    assert.deepEqual(ops.map((o) => `${o.op} ${o.path}`), [`create ${paths.index}`, `create ${paths.nodeVms('hv1')}`, `create ${paths.nodeVmEntry('hv1', 'x1')}`, `create ${paths.nodeVms('hv2')}`, `create ${paths.nodeVmEntry('hv2', 'x1')}`]);
    await store.multi(ops);
    const again = await indexOps(store, paths, 'x1', { node: 'hv1' });
    assert.deepEqual(again, [{ op: 'check', path: paths.nodeVmEntry('hv1', 'x1'), version: 0 }]);
    await store.delete(paths.nodeVmEntry('hv1', 'x1'), 0);
    await assert.rejects(store.multi(again), 'a check of an entry that went fails the write');
  });

  it('indexOps reads /index only when a node list is to be created: an entry or a list that exists is below it', async () => {
    await store.ensurePath(paths.nodeVms('hv1'));
    const reads: string[] = [];
    const counting = Object.create(store, { exists: { value: (path: string) => (reads.push(path), store.exists(path)) } }) as ZkStore;
    // A new VM on a node whose list exists: its entry and that list are read, not the root.
    assert.deepEqual(await indexOps(counting, paths, 'x9', { node: 'hv1' }), [{ op: 'create', path: paths.nodeVmEntry('hv1', 'x9') }]);
    assert.deepEqual(reads, [paths.nodeVmEntry('hv1', 'x9'), paths.nodeVms('hv1')]);
    // A node with no list yet: the root is read, and not created again.
    reads.length = 0;
    const ops = await indexOps(counting, paths, 'x9', { node: 'hv7' });
    assert.deepEqual(ops.map((o) => `${o.op} ${o.path}`), [`create ${paths.nodeVms('hv7')}`, `create ${paths.nodeVmEntry('hv7', 'x9')}`]);
    assert.deepEqual(reads, [paths.nodeVmEntry('hv7', 'x9'), paths.nodeVms('hv7'), paths.index]);
    await store.multi(ops);
  });

  it('repairIndexEntry creates an entry only while what it was decided from is unchanged: a repair racing a removal leaves none', async () => {
    await store.multi([{ op: 'create', path: paths.vm('x3') }, { op: 'create', path: paths.vmSpec('x3'), data: encodeVmSpec({ node: 'hv1', state: 'stopped' }) }]);
    const read = (await store.get(paths.vmSpec('x3')))!;
    // The VM is removed between the repair's read and its write.
    await store.delete(paths.vmSpec('x3'), read.version);
    assert.equal(await repairIndexEntry(store, paths, 'x3', 'hv1', { path: paths.vmSpec('x3'), version: read.version }), false);
    assert.equal(await store.exists(paths.nodeVmEntry('hv1', 'x3')), null, 'no entry for a VM that is gone');
    // Unchanged: created, once.
    await store.create(paths.vmSpec('x3'), encodeVmSpec({ node: 'hv1', state: 'stopped' }));
    const now = { path: paths.vmSpec('x3'), version: (await store.get(paths.vmSpec('x3')))!.version };
    assert.equal(await repairIndexEntry(store, paths, 'x3', 'hv1', now), true);
    assert.ok(await store.exists(paths.nodeVmEntry('hv1', 'x3')));
    assert.equal(await repairIndexEntry(store, paths, 'x3', 'hv1', now), false);
  });

  it('releaseIndexEntry refuses while the spec changed; removalIndexOps deletes every entry', async () => {
    await store.multi([{ op: 'create', path: paths.vm('x2') }, { op: 'create', path: paths.vmSpec('x2'), data: encodeVmSpec({ node: 'hv1', state: 'stopped' }) }, ...(await indexOps(store, paths, 'x2', { node: 'hv1', previousNode: 'hv2' }))]);
    assert.equal(await releaseIndexEntry(store, paths, 'x2', 'hv2', 5), false, 'spec is not at version 5: kept');
    assert.ok(await store.exists(paths.nodeVmEntry('hv2', 'x2')));
    assert.equal(await releaseIndexEntry(store, paths, 'x2', 'hv2', 0), true);
    assert.equal(await store.exists(paths.nodeVmEntry('hv2', 'x2')), null);
    const removal = await removalIndexOps(store, paths, 'x2');
    assert.deepEqual(removal.map((o) => o.path), [paths.nodeVmEntry('hv1', 'x2')]);
  });

  it('a version-1 cluster is upgraded: the index built from specs and statuses, schema says 2; a second upgrade does nothing', async () => {
    await store.create(paths.schema, JSON.stringify({ version: 1 }));
    await store.multi([{ op: 'create', path: paths.vm('old1') }, { op: 'create', path: paths.vmSpec('old1'), data: encodeVmSpec({ node: 'hv3', state: 'running', previousNode: 'hv4' } as never) }]);
    await store.create(paths.vmStatus('old1'), encodeVmStatus({ phase: 'Running', node: 'hv5', observedGeneration: 0, conditions: [], updatedAt: new Date().toISOString() } as never));
    const scan = await migrateToIndex(store, paths);
    assert.ok(scan);
    for (const node of ['hv3', 'hv4', 'hv5']) assert.ok(await store.exists(paths.nodeVmEntry(node, 'old1')), `an entry on ${node}`);
    assert.deepEqual(JSON.parse((await store.get(paths.schema))!.data.toString()), { version: 2 });
    assert.equal(await migrateToIndex(store, paths), null);
    assert.deepEqual((await scanIndex(store, paths)).added, [], 'nothing missing');
  });
});
