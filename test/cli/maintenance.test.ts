// `vk cluster maintenance [on|off]` (DESIGN §4: maintenance suppresses fencing): a compare-and-set
// of /config's maintenance flag through the CLI's read-modify-CAS helper, retried on a lost race,
// keeping the rest of the config, logging a cluster.maintenance event when it changed; bad input
// exits 2 with nothing written; `vk get nodes` says so under its table. Real vk, real ZooKeeper.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listEvents } from '../../core/events.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeClusterConfig, encodeClusterConfig, ZkPaths } from '../../schemas/index.ts';
import type { Cluster } from '../../cli/connect.ts';
import { updateClusterConfig } from '../../cli/update.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { errorLines, snapshot, vkFor, type Vk } from './helpers.ts';

const root = '/maint';
const paths = new ZkPaths(root);
let server: ZkServer;
let store: ZkStore;
let vk: Vk;

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  vk = vkFor(server.connectString, root);
  // The root exists (a daemon registered hv1), but nobody applied a config.
  await store.ensurePath(paths.node('hv1'));
});

after(async () => {
  await store?.close();
  await server?.cleanup();
});

describe('vk cluster maintenance', () => {
  const config = () => store.get(paths.config);

  test('no config yet: off; "off" writes nothing; "on" creates the config and logs the event', async () => {
    const show = await vk('cluster', 'maintenance');
    assert.equal(show.code, 0, show.stderr);
    assert.equal(show.stdout, 'maintenance off: lost nodes are fenced and their VMs recovered\n');
    const before = await snapshot(store, root);
    const off = await vk('cluster', 'maintenance', 'off');
    assert.equal(off.code, 0, off.stderr);
    assert.equal(off.stdout, 'maintenance already off: lost nodes are fenced and their VMs recovered\n');
    assert.deepEqual(await snapshot(store, root), before, 'nothing written');

    const eventsBefore = (await listEvents(store, paths)).length;
    const on = await vk('cluster', 'maintenance', 'on');
    assert.equal(on.code, 0, on.stderr);
    assert.equal(on.stdout, 'maintenance on: lost nodes are reported, not fenced\n');
    const got = await config();
    assert.equal(got!.version, 0);
    assert.equal(decodeClusterConfig(got!.data).maintenance, true);
    const events = await listEvents(store, paths);
    assert.equal(events.length, eventsBefore + 1);
    const last = events.at(-1)!.event;
    assert.equal(last.kind, 'cluster.maintenance');
    assert.equal(last.by, 'vk');
    assert.equal(last.message, 'maintenance on: lost nodes are reported, not fenced');
    assert.ok(Math.abs(Date.parse(last.at) - Date.now()) < 60_000, last.at);
    assert.equal((await vk('cluster', 'maintenance')).stdout, 'maintenance on: lost nodes are reported, not fenced\n');
  });

  test('on again: nothing written, no event; off: one write keeping the rest of the config, one event', async () => {
    await put(paths.config, encodeClusterConfig({ coordinators: [], maintenance: true, keepaliveIntervalMs: 2000, fence: { graceMs: 7000, recover: false } }));
    const v = (await config())!.version;
    const n = (await listEvents(store, paths)).length;
    const again = await vk('cluster', 'maintenance', 'on');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'maintenance already on: lost nodes are reported, not fenced\n');
    assert.equal((await config())!.version, v);
    assert.equal((await listEvents(store, paths)).length, n);

    const off = await vk('cluster', 'maintenance', 'off');
    assert.equal(off.code, 0, off.stderr);
    assert.equal(off.stdout, 'maintenance off: lost nodes are fenced (fence.recover is off: their VMs are not recovered)\n');
    const after = await config();
    assert.equal(after!.version, v + 1, 'one write');
    const value = decodeClusterConfig(after!.data);
    assert.equal(value.maintenance, false);
    assert.equal(value.keepaliveIntervalMs, 2000);
    assert.deepEqual(value.fence, { graceMs: 7000, retryBaseMs: 2000, retryMaxMs: 60_000, recover: false });
    const events = await listEvents(store, paths);
    assert.equal(events.length, n + 1);
    assert.equal(events.at(-1)!.event.message, 'maintenance off: lost nodes are fenced (fence.recover is off: their VMs are not recovered)');
  });

  test('a bad argument: exit 2 naming the value, nothing written', async () => {
    const before = await snapshot(store, root);
    for (const arg of ['maybe', 'ON', 'true']) {
      const run = await vk('cluster', 'maintenance', arg);
      assert.equal(run.code, 2, run.stderr);
      assert.deepEqual(errorLines(run), [`vk: maintenance: invalid value "${arg}": must be on or off`]);
      assert.equal(run.stdout, '');
    }
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('an unreadable /config: exit 1 naming it, nothing written', async () => {
    const r = '/broken-config';
    await store.create(`${r}/config`, '{"maintenance": "yes"}', { parents: true });
    const before = await snapshot(store, r);
    const run = await vkFor(server.connectString, r)('cluster', 'maintenance', 'on');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^vk: \/broken-config\/config in ZooKeeper is invalid \(config\.maintenance: .*\); nothing was written/);
    assert.deepEqual(await snapshot(store, r), before);
  });

  test('compare-and-set: a write that lands between the read and the write is kept, and the round retried', async () => {
    await put(paths.config, encodeClusterConfig({ maintenance: false }));
    let raced = false;
    const racing = new Proxy(store, {
      get(target, prop) {
        if (prop === 'get') {
          return async (path: string) => {
            const got = await target.get(path);
            if (!raced && path === paths.config) {
              raced = true;
              // Another admin's vk apply changes the keepalive in between.
              await target.set(path, encodeClusterConfig({ maintenance: false, keepaliveIntervalMs: 3000 }), got!.version);
            }
            return got;
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const cluster = { store: racing, paths, connectString: server.connectString, connectTimeoutMs: 5000 } as Cluster;
    const v = (await config())!.version;
    const updated = await updateClusterConfig(cluster, (c) => ({ ...c, maintenance: true }));
    assert.ok(raced);
    assert.equal(updated.changed, true);
    assert.equal(updated.version, v + 2, 'the other write, then ours');
    const value = decodeClusterConfig((await config())!.data);
    assert.equal(value.maintenance, true);
    assert.equal(value.keepaliveIntervalMs, 3000, 'the write in between is kept');
  });

  test('the empty /config made as the parent of /config/primary is the default config, filled by the write', async () => {
    const r = '/empty-config';
    await store.create(`${r}/config/primary`, '{}', { parents: true });
    const run = await vkFor(server.connectString, r)('cluster', 'maintenance', 'on');
    assert.equal(run.code, 0, run.stderr);
    const got = await store.get(`${r}/config`);
    assert.equal(got!.version, 1);
    assert.deepEqual(decodeClusterConfig(got!.data), { ...decodeClusterConfig({}), maintenance: true });

    // No cluster at all: the layout is made, as vk apply makes it.
    const fresh = await vkFor(server.connectString, '/fresh')('cluster', 'maintenance', 'on');
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal((await store.get('/fresh/schema'))?.data.toString(), '{"version":2}');
    assert.equal(decodeClusterConfig((await store.get('/fresh/config'))!.data).maintenance, true);
    assert.equal((await listEvents(store, new ZkPaths('/fresh'))).at(-1)?.event.kind, 'cluster.maintenance');
  });

  test('vk get nodes says so under the table while maintenance is on, and not when it is off', async () => {
    await store.ensurePath(paths.node('hv1'));
    await put(paths.config, encodeClusterConfig({ maintenance: true }));
    const [on, json] = await Promise.all([vk('get', 'nodes'), vk('get', 'nodes', '-o', 'json')]);
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, /^NAME .* FENCE +FLUSH$/m);
    assert.match(on.stdout, /\n\nmaintenance on: lost nodes are reported, not fenced \(vk cluster maintenance off ends it\)\n$/);
    assert.deepEqual((JSON.parse(json.stdout) as Array<{ name: string }>).map((n) => n.name), ['hv1'], '-o json stays the list alone');
    await put(paths.config, encodeClusterConfig({ maintenance: false }));
    const off = await vk('get', 'nodes');
    assert.doesNotMatch(off.stdout, /maintenance/);
  });

  test('vk apply of a ClusterConfig keeps the maintenance flag as it is (the manifest cannot turn fencing back on mid-maintenance)', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    assert.equal((await vk('cluster', 'maintenance', 'on')).code, 0);
    const dir = mkdtempSync(join(tmpdir(), 'vk-maint-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'kind: ClusterConfig\nmetadata: {name: cluster}\nspec:\n  keepaliveIntervalMs: 4000\n  maintenance: false\n');
    const applied = await vk('apply', '-f', file);
    assert.equal(applied.code, 0, applied.stderr);
    const got = decodeClusterConfig((await config())!.data);
    assert.equal(got.keepaliveIntervalMs, 4000, 'the rest of the manifest is applied');
    assert.equal(got.maintenance, true, 'maintenance is kept');
    const diff = await vk('diff', '-f', file);
    assert.doesNotMatch(diff.stdout, /maintenance/, 'and vk diff shows no change of it');
    assert.equal((await vk('cluster', 'maintenance', 'off')).code, 0);
  });
});

async function put(path: string, data: string): Promise<void> {
  const existing = await store.get(path);
  if (existing) await store.set(path, data, existing.version);
  else await store.create(path, data, { parents: true });
}
