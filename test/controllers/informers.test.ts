// The shared informers against a real ZooKeeper: NodeInformer (controllers/informers/nodes.ts,
// N1–N3, its streams, the alive znode's session) and ConfigInformer
// (controllers/informers/config.ts, K1–K3). One ZooKeeper for the file; every test works under
// its own root so their node lists do not mix.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Logger } from 'pino';
import { ConfigInformer } from '../../controllers/informers/config.ts';
import { NetworkInformer } from '../../controllers/informers/networks.ts';
import { NodeInformer, valueOf } from '../../controllers/informers/nodes.ts';
import { createLogger, silentLogger } from '../../controllers/logger.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import {
  defaultClusterConfig,
  encodeClusterConfig,
  encodeNodeSpec,
  encodeNetworkSpec,
  encodeNetworkStatus,
  encodeNodeStatus,
  ZkPaths,
  type ClusterConfig,
  type NodeStatusInput,
} from '../../schemas/index.ts';
import { waitFor } from '../rig/wait.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

let zk: ZkServer;
let store: ZkStore;
const log = silentLogger();
/** No test waits forever: a synced() that never resolves fails its test. */
const T = { timeout: 15_000 };

before(async () => {
  zk = await startZooKeeper();
  store = await ZkStore.connect({ connectString: zk.connectString, sessionTimeoutMs: 4000 });
});

/** Every store and informer a test opened: closed here too, in case that test never got to it. */
const extraStores: ZkStore[] = [];
const informers: Array<{ stop(): void }> = [];

after(async () => {
  for (const inf of informers) inf.stop();
  for (const s of extraStores) await s.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  await zk?.cleanup();
});

async function connect(extra: { auth?: { user: string; password: string } } = {}): Promise<ZkStore> {
  const s = await ZkStore.connect({ connectString: zk.connectString, sessionTimeoutMs: 4000, ...extra });
  extraStores.push(s);
  return s;
}

function track<I extends { stop(): void }>(informer: I): I {
  informers.push(informer);
  return informer;
}

function status(extra: Partial<NodeStatusInput> = {}): string {
  return encodeNodeStatus({
    daemonState: 'run',
    domainState: 'ready',
    memory: { totalMiB: 4096, usedMiB: 1024, freeMiB: 3072, allocatedMiB: 0, provisionedMiB: 0 },
    vcpus: { total: 4, allocated: 0 },
    load: 0.25,
    runningVms: [],
    keepaliveAt: '2026-01-01T00:00:00.000Z',
    version: 'test',
    conditions: [],
    ...extra,
  });
}

function capture(level: 'warn' | 'error'): { lines: Array<Record<string, unknown>>; logger: Logger } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level, node: 'hv-test', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { lines, logger };
}

/** Every value a stream emits, and whether it completed. */
function record<T>(subject: { subscribe(o: { next(v: T): void; complete(): void }): unknown }): { values: T[]; completed: () => boolean } {
  const values: T[] = [];
  let completed = false;
  subject.subscribe({ next: (v) => values.push(v), complete: () => (completed = true) });
  return { values, completed: () => completed };
}

describe('NodeInformer', () => {
  it('N1: synced() resolves with the node list read and every node’s three znodes loaded', T, async () => {
    const paths = new ZkPaths('/n1');
    await store.ensurePath(paths.nodes);
    await store.create(paths.node('hv1'));
    await store.create(paths.nodeSpec('hv1'), encodeNodeSpec({ domainState: 'flushed' }));
    await store.create(paths.nodeStatus('hv1'), status({ load: 1.5 }));
    await store.create(paths.nodeAlive('hv1'), '{"pid":1}', { mode: 'ephemeral' });
    await store.create(paths.node('hv2'));
    await store.create(paths.nodeSpec('hv2'), encodeNodeSpec({}));
    await store.create(`${paths.nodes}/Not_A_Name`); // not a valid node name: ignored

    const inf = track(new NodeInformer(store, paths, log));
    inf.start();
    try {
      await inf.synced();
      // Checked synchronously after synced(): no watch emission can have arrived in between.
      assert.equal(inf.isListed, true);
      assert.deepEqual(inf.names(), ['hv1', 'hv2']);
      const hv1 = inf.get('hv1')!;
      const hv2 = inf.get('hv2')!;
      assert.equal(hv1.loaded, true);
      assert.equal(hv2.loaded, true);
      assert.equal(valueOf(hv1.spec)?.domainState, 'flushed');
      assert.equal(hv1.spec?.version, 0);
      assert.equal(valueOf(hv1.status)?.load, 1.5);
      assert.deepEqual(hv1.alive, { session: store.sessionId, payload: '{"pid":1}' });
      assert.equal(valueOf(hv2.spec)?.domainState, 'ready');
      assert.equal(hv2.status, null, 'an absent status is null');
      assert.equal(hv2.alive, null, 'no alive znode: no daemon');
      assert.equal(inf.get('Not_A_Name'), undefined);
    } finally {
      inf.stop();
    }
  });

  it('N1: synced() resolves with no nodes when /nodes does not exist', T, async () => {
    const inf = track(new NodeInformer(store, new ZkPaths('/n-absent'), log));
    inf.start();
    try {
      await inf.synced();
      assert.equal(inf.isListed, true);
      assert.deepEqual(inf.names(), []);
    } finally {
      inf.stop();
    }
  });

  it('list$, changes$ and alive$: a node joins, changes and leaves', T, async () => {
    const paths = new ZkPaths('/n2');
    await store.ensurePath(paths.nodes);
    const inf = track(new NodeInformer(store, paths, log));
    const lists = record<ReadonlySet<string>>(inf.list$);
    const changes = record<string>(inf.changes$);
    const alive = record<string>(inf.alive$);
    inf.start();
    try {
      await inf.synced();
      assert.deepEqual(lists.values.map((s) => [...s]), [[]], 'the first listing is emitted');

      await store.create(paths.node('hv3'));
      await store.create(paths.nodeSpec('hv3'), encodeNodeSpec({}));
      await waitFor('hv3 listed', () => lists.values.some((s) => s.has('hv3')));
      // Its three znodes are read in any order: wait for all of them, not only the spec.
      await waitFor('hv3 loaded with its spec', () => inf.get('hv3')?.loaded === true && valueOf(inf.get('hv3')?.spec)?.domainState === 'ready');
      assert.ok(changes.values.includes('hv3'));
      assert.ok(alive.values.includes('hv3'), 'the first read of the alive znode is an alive$ emission');

      const before = changes.values.length;
      const aliveBefore = alive.values.length;
      await store.set(paths.nodeSpec('hv3'), encodeNodeSpec({ domainState: 'flushed' }), 0);
      await waitFor('the new spec cached', () => valueOf(inf.get('hv3')?.spec)?.domainState === 'flushed');
      assert.ok(changes.values.slice(before).includes('hv3'), 'a spec change is a changes$ emission');
      assert.equal(inf.get('hv3')?.spec?.version, 1);
      assert.equal(alive.values.length, aliveBefore, 'a spec change is not an alive$ emission');

      const gone = changes.values.length;
      const aliveGone = alive.values.length;
      await store.deleteRecursive(paths.node('hv3'));
      await waitFor('hv3 left the list', () => inf.get('hv3') === undefined);
      assert.equal(lists.values.at(-1)?.has('hv3'), false);
      assert.deepEqual(inf.names(), []);
      assert.ok(changes.values.slice(gone).includes('hv3'), 'a node leaving is a changes$ emission');
      assert.ok(alive.values.slice(aliveGone).includes('hv3'), 'a node leaving is an alive$ emission');
    } finally {
      inf.stop();
    }
    assert.ok(lists.completed() && changes.completed() && alive.completed(), 'stop() completes list$, changes$ and alive$');
  });

  it('alive carries the session holding the ephemeral znode and its payload; null once that session ends', T, async () => {
    const paths = new ZkPaths('/n3');
    await store.ensurePath(paths.node('hv4'));
    const inf = track(new NodeInformer(store, paths, log));
    const alive = record<string>(inf.alive$);
    inf.start();
    const daemon = await connect();
    try {
      await inf.synced();
      assert.equal(inf.get('hv4')?.alive, null);
      assert.notEqual(daemon.sessionId, store.sessionId);
      const payload = JSON.stringify({ pid: 4242, version: '0.1.0', since: '2026-01-01T00:00:00.000Z' });
      await daemon.create(paths.nodeAlive('hv4'), payload, { mode: 'ephemeral' });
      const a = await waitFor('hv4 alive', () => inf.get('hv4')?.alive);
      assert.equal(a.session, daemon.sessionId, 'alive.session is not the session of the ephemeral znode');
      assert.equal(a.payload, payload);
      const count = alive.values.length;
      await daemon.close();
      await waitFor('hv4 no longer alive', () => inf.get('hv4')?.alive === null);
      assert.ok(alive.values.slice(count).includes('hv4'), 'the session ending is an alive$ emission');
    } finally {
      await daemon.close();
      inf.stop();
    }
  });

  it('N2: noteStatus caches our own write at once, and a cached status never steps back', T, async () => {
    const paths = new ZkPaths('/n4');
    await store.ensurePath(paths.node('hv5'));
    await store.create(paths.nodeStatus('hv5'), status({ load: 1 }));
    const inf = track(new NodeInformer(store, paths, log));
    inf.start();
    try {
      await inf.synced();
      assert.equal(inf.get('hv5')?.status?.version, 0);

      // Our own write of version 1: cached before any watch emission.
      const mine = JSON.parse(status({ load: 2 })) as Parameters<NodeInformer['noteStatus']>[1];
      await store.set(paths.nodeStatus('hv5'), status({ load: 2 }), 0);
      inf.noteStatus('hv5', mine, 1);
      assert.equal(valueOf(inf.get('hv5')?.status)?.load, 2);
      assert.equal(inf.get('hv5')?.status?.version, 1);

      // An older version noted later is ignored.
      inf.noteStatus('hv5', JSON.parse(status({ load: 9 })), 0);
      assert.equal(valueOf(inf.get('hv5')?.status)?.load, 2, 'noteStatus stepped back to an older version');

      // A version noted ahead of ZooKeeper (version 3) is not replaced by the watch's version 2.
      // The informer's watch is the store's shared stream of that path: once our own subscriber
      // to it has seen version 2, the informer (subscribed earlier) has handled it too.
      let watched = -1;
      const own = store.watchData(paths.nodeStatus('hv5')).subscribe((s) => (watched = s.kind === 'data' ? s.version : -1));
      try {
        inf.noteStatus('hv5', JSON.parse(status({ load: 3 })), 3);
        await store.set(paths.nodeStatus('hv5'), status({ load: 7 }), 1);
        await waitFor('version 2 emitted by the status watch', () => watched === 2);
      } finally {
        own.unsubscribe();
      }
      assert.equal(inf.get('hv5')?.status?.version, 3, 'a watch emission older than a noted version replaced it');
      assert.equal(valueOf(inf.get('hv5')?.status)?.load, 3);

      // A newer version from the watch does replace it.
      await store.set(paths.nodeStatus('hv5'), status({ load: 4 }), 2);
      await store.set(paths.nodeStatus('hv5'), status({ load: 5 }), 3);
      await waitFor('version 4 cached', () => inf.get('hv5')?.status?.version === 4);
      assert.equal(valueOf(inf.get('hv5')?.status)?.load, 5);

      // noteStatus of an unknown node creates nothing.
      inf.noteStatus('nobody', JSON.parse(status()), 10);
      assert.equal(inf.get('nobody'), undefined);
    } finally {
      inf.stop();
    }
  });

  it('N3: an undecodable spec or status is kept as { error, raw, version }', T, async () => {
    const paths = new ZkPaths('/n5');
    await store.ensurePath(paths.node('hv6'));
    await store.create(paths.nodeSpec('hv6'), 'not json at all');
    await store.create(paths.nodeStatus('hv6'), '{"daemonState":"sleeping"}');
    const inf = track(new NodeInformer(store, paths, log));
    inf.start();
    try {
      await inf.synced();
      const entry = inf.get('hv6')!;
      assert.ok(entry.spec && 'error' in entry.spec, 'an unreadable spec was dropped or decoded');
      assert.equal(entry.spec.raw, 'not json at all');
      assert.equal(entry.spec.version, 0);
      assert.ok(entry.status && 'error' in entry.status, 'an unreadable status was dropped or decoded');
      assert.equal(entry.status.raw, '{"daemonState":"sleeping"}');
      assert.equal(valueOf(entry.spec), null);

      // Fixed: the readable value replaces the error.
      await store.set(paths.nodeSpec('hv6'), encodeNodeSpec({ domainState: 'flushed' }), 0);
      await waitFor('the repaired spec', () => valueOf(inf.get('hv6')?.spec)?.domainState === 'flushed');
      assert.equal(inf.get('hv6')?.spec?.version, 1);
    } finally {
      inf.stop();
    }
  });
});

describe('ConfigInformer', () => {
  it('K1/K2/K3: the defaults while the config is absent, synced after that first answer, which changes$ emits', T, async () => {
    const inf = track(new ConfigInformer(store, new ZkPaths('/k1'), log));
    const changes = record<ClusterConfig>(inf.changes$);
    inf.start();
    try {
      await inf.synced();
      assert.deepEqual(inf.value, defaultClusterConfig());
      assert.equal(changes.values.length, 1, 'the first answer is a changes$ emission');
      assert.deepEqual(changes.values[0], defaultClusterConfig());
    } finally {
      inf.stop();
    }
    assert.equal(changes.completed(), true, 'stop() completes changes$');
  });

  it('K2: synced() resolves only once the config written before start() is in force', T, async () => {
    const paths = new ZkPaths('/k2');
    await store.create(paths.config, encodeClusterConfig({ keepaliveIntervalMs: 1234, keepaliveDeadAfterMs: 9999, coordinators: ['zk1'] }), { parents: true });
    const inf = track(new ConfigInformer(store, paths, log));
    inf.start();
    try {
      await inf.synced();
      assert.equal(inf.value.keepaliveIntervalMs, 1234, 'synced() resolved before the config was read');
      assert.equal(inf.value.keepaliveDeadAfterMs, 9999);
      assert.deepEqual(inf.value.coordinators, ['zk1']);
      assert.equal(inf.value.migration.maxOutgoing, 2, 'defaults fill what the config leaves out');
    } finally {
      inf.stop();
    }
  });

  it('K1/K3: an unreadable config keeps the last readable one in force; deleting it brings back the defaults; one changes$ per answer', T, async () => {
    const { lines, logger } = capture('warn');
    const paths = new ZkPaths('/k3');
    await store.ensurePath(paths.root);
    const inf = track(new ConfigInformer(store, paths, logger));
    const changes = record<ClusterConfig>(inf.changes$);
    inf.start();
    try {
      await inf.synced();
      assert.equal(changes.values.length, 1);

      await store.create(paths.config, encodeClusterConfig({ keepaliveIntervalMs: 2000, keepaliveDeadAfterMs: 8000 }));
      await waitFor('the second answer', () => changes.values.length === 2);
      assert.equal(inf.value.keepaliveIntervalMs, 2000);
      assert.equal(changes.values[1]?.keepaliveIntervalMs, 2000);
      const readable = inf.value;

      await store.set(paths.config, '{ this is not json', 0);
      await waitFor('the third answer (unreadable text)', () => changes.values.length === 3);
      assert.deepEqual(inf.value, readable, 'unreadable text replaced the config in force');
      assert.deepEqual(changes.values[2], readable);

      // Valid JSON, invalid config (dead-after not above the interval): not half-applied either.
      await store.set(paths.config, JSON.stringify({ keepaliveIntervalMs: 50, keepaliveDeadAfterMs: 10 }), 1);
      await waitFor('the fourth answer (invalid config)', () => changes.values.length === 4);
      assert.deepEqual(inf.value, readable, 'an invalid config was (half-)applied');
      assert.equal(lines.filter((l) => l['msg'] === 'unreadable cluster config; keeping the one in force').length, 2);

      await store.delete(paths.config, 2);
      await waitFor('the fifth answer (deleted)', () => changes.values.length === 5);
      assert.deepEqual(inf.value, defaultClusterConfig());
    } finally {
      inf.stop();
    }
  });

  it('K2: a watch error (NoAuth) still syncs, with the defaults in force and the error logged', T, async () => {
    const paths = new ZkPaths('/k4');
    const owner = await connect({ auth: { user: 'admin', password: 'secret' } });
    const { lines, logger } = capture('error');
    const inf = track(new ConfigInformer(store, paths, logger));
    const changes = record<ClusterConfig>(inf.changes$);
    try {
      await owner.create(paths.config, encodeClusterConfig({ keepaliveIntervalMs: 3000, keepaliveDeadAfterMs: 9000 }), { parents: true });
      await assert.rejects(store.get(paths.config), /NoAuth|not authori[sz]ed|auth/i, 'the config must be unreadable to the informer’s store');
      inf.start();
      await inf.synced();
      assert.deepEqual(inf.value, defaultClusterConfig());
      assert.equal(changes.values.length, 1, 'the error answer is a changes$ emission');
      assert.ok(lines.some((l) => l['msg'] === 'cannot watch the cluster config; the settings in force stay'), 'the watch error was not logged');
    } finally {
      inf.stop();
      await owner.close();
    }
  });
});

describe('NetworkInformer', () => {
  it('W1/W3: synced with every listed network read; a child that is not a VNI ignored; an unreadable spec kept as an error', T, async () => {
    const paths = new ZkPaths('/w1');
    await store.ensurePath(paths.network(100));
    await store.create(paths.networkSpec(100), encodeNetworkSpec({ type: 'managed' }));
    await store.create(paths.networkStatus(100), encodeNetworkStatus({ nodes: { hv1: { ready: true, observedGeneration: 0, updatedAt: '2026-12-04T00:00:00.000Z' } } }));
    await store.ensurePath(paths.network(7));
    await store.create(paths.networkSpec(7), 'not json');
    await store.ensurePath(`${paths.networks}/web`);
    const inf = track(new NetworkInformer(store, paths, log));
    inf.start();
    await inf.synced();
    assert.deepEqual(inf.vnis(), [7, 100]);
    assert.equal(valueOf(inf.get(100)?.spec)?.type, 'managed');
    assert.equal(valueOf(inf.get(100)?.status)?.nodes['hv1']?.ready, true);
    assert.equal(inf.get(100)?.loaded, true);
    const seven = inf.get(7)!;
    assert.ok(seven.spec && 'error' in seven.spec, 'the unreadable spec is kept as an error');
    assert.equal(seven.status, null, 'an absent status reads as null');

    // A new network, and one removed: changes$ says so for each.
    const seen: number[] = [];
    const sub = inf.changes$.subscribe((vni) => seen.push(vni));
    await store.ensurePath(paths.network(200));
    await store.create(paths.networkSpec(200), encodeNetworkSpec({ type: 'bridged' }));
    await waitFor('network 200 listed', () => valueOf(inf.get(200)?.spec)?.type === 'bridged');
    await store.deleteRecursive(paths.network(7));
    await waitFor('network 7 gone', () => inf.get(7) === undefined);
    sub.unsubscribe();
    assert.ok(seen.includes(200) && seen.includes(7), `changes$: ${seen.join(',')}`);
  });

  it('W1: synced() resolves with no networks when /networks does not exist', T, async () => {
    const inf = track(new NetworkInformer(store, new ZkPaths('/w2'), log));
    inf.start();
    await inf.synced();
    assert.deepEqual(inf.vnis(), []);
  });

  it('W2: noteStatus caches our own write at once and never steps back', T, async () => {
    const paths = new ZkPaths('/w3');
    await store.ensurePath(paths.network(5));
    await store.create(paths.networkSpec(5), encodeNetworkSpec({ type: 'managed' }));
    const inf = track(new NetworkInformer(store, paths, log));
    inf.start();
    await inf.synced();
    const mine = { nodes: { hv1: { ready: true, observedGeneration: 0, updatedAt: '2026-12-04T00:00:00.000Z' } } };
    inf.noteStatus(5, mine, 3);
    assert.equal(inf.get(5)?.status?.version, 3);
    inf.noteStatus(5, { nodes: {} }, 2);
    assert.equal(valueOf(inf.get(5)?.status)?.nodes['hv1']?.ready, true, 'an older version stepped over ours');
    // The watch brings version 0 (older than what we noted): ignored.
    await store.create(paths.networkStatus(5), encodeNetworkStatus({ nodes: {} }));
    // The store shares one watch per path: once our own subscriber has seen version 0, so has the informer.
    await new Promise<void>((resolve) => {
      const sub = store.watchData(paths.networkStatus(5)).subscribe((s) => {
        if (s.kind === 'data' && s.version === 0) {
          queueMicrotask(() => sub.unsubscribe());
          resolve();
        }
      });
    });
    assert.equal(inf.get(5)?.status?.version, 3);
  });
});
