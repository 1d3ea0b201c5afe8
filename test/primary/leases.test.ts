// DHCP leases between dnsmasq's reports and ZooKeeper (reconcilers/primary/leases.ts), against a
// real ZooKeeper: created, updated, kept while dnsmasq has not reported them yet, deleted once
// expired; what the next primary's dnsmasq is given.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import { activeLeases, readZkLeases, syncLeases } from '../../reconcilers/primary/leases.ts';
import { ZkPaths } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

const paths = new ZkPaths('/leases-test');
const NOW = 1_796_400_000;
const at = () => '2026-12-04T12:00:00.000Z';
const a = { mac: '52:54:00:00:00:0a', ip: '192.0.2.110', hostname: 'guest-a', expires: NOW + 600 };
const b = { mac: '52:54:00:00:00:0b', ip: '192.0.2.111', expires: NOW + 600 };

describe('DHCP leases in ZooKeeper', () => {
  let zk: ZkServer;
  let store: ZkStore;
  before(async () => {
    zk = await startZooKeeper();
    store = await ZkStore.connect({ connectString: zk.connectString, sessionTimeoutMs: 4000 });
    await store.create(paths.networkSpec(200), '{"type":"managed"}', { parents: true });
  });
  after(async () => {
    await store?.close();
    await zk?.cleanup();
  });

  it('writes what dnsmasq reported, then only what changed', async () => {
    assert.equal(await syncLeases(store, paths, 200, [a, b], 'hv1', at, NOW), 2);
    const kept = await readZkLeases(store, paths, 200);
    assert.deepEqual(kept.get(a.mac)?.lease, { ...a, node: 'hv1', updatedAt: at() });
    assert.equal(await syncLeases(store, paths, 200, [a, b], 'hv1', at, NOW), 0);
    const renewed = { ...a, expires: NOW + 1200 };
    assert.equal(await syncLeases(store, paths, 200, [renewed, b], 'hv2', at, NOW), 1);
    const after = await readZkLeases(store, paths, 200);
    assert.equal(after.get(a.mac)?.lease.expires, NOW + 1200);
    assert.equal(after.get(a.mac)?.lease.node, 'hv2');
    assert.equal(after.get(a.mac)?.version, 1);
  });

  it('a lease dnsmasq does not report (yet) stays until it expires; then it goes', async () => {
    assert.equal(await syncLeases(store, paths, 200, [], 'hv2', at, NOW), 0);
    assert.equal((await readZkLeases(store, paths, 200)).size, 2);
    assert.equal(await syncLeases(store, paths, 200, [], 'hv2', at, NOW + 1000), 1); // b expired at NOW+600
    assert.deepEqual([...(await readZkLeases(store, paths, 200)).keys()], [a.mac]);
  });

  it('the next primary gets the running leases; an unreadable lease is skipped, not fatal', async () => {
    await store.create(paths.networkLease(200, '52:54:00:00:00:0c'), 'not json');
    const kept = await readZkLeases(store, paths, 200);
    assert.deepEqual([...kept.keys()], [a.mac]);
    const given = activeLeases([...kept.values()].map((k) => k.lease), NOW);
    assert.deepEqual(given, [{ mac: a.mac, ip: a.ip, expires: NOW + 1200, hostname: 'guest-a' }]);
    assert.deepEqual(activeLeases([...kept.values()].map((k) => k.lease), NOW + 5000), []);
    assert.equal(activeLeases([{ ...kept.get(a.mac)!.lease, expires: 0 }], NOW + 1e9).length, 1, 'an infinite lease never expires');
  });
});
