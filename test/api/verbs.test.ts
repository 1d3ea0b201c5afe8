// The verbs over HTTP (issue 19): POST /vm/{name}/migrate|unmigrate|move|restart|flush-locks,
// POST /node/{name}/flush|ready|primary and GET /events (and its follow stream),
// against the real server and a real ZooKeeper. Each route writes exactly what `vk` writes (a twin
// VM changed by the real CLI is compared field by field), bad input or a refusal writes nothing
// (every znode's version under the root compared), and the routes are in /openapi.json.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeVmSpec, type VmSpec } from '../../schemas/index.ts';
import type { ZkServer } from '../rig/zookeeper.ts';
import { ApiFixture, streamReader } from './helpers.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';

const fx = new ApiFixture('/apiverbs');
const { root, paths, reader } = fx;
let server: ZkServer;
let store: ZkStore;
let vk: Vk;
const call = fx.call.bind(fx);
const versions = fx.versions.bind(fx);
const spec = fx.spec.bind(fx);
const XML = (name: string, disk = '') => `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>${disk}</domain>`;
const RBD = (image: string) => `<devices><disk type='network' device='disk'><source protocol='rbd' name='${image}'/><target dev='vda'/></disk></devices>`;

async function refused(status: number, fn: () => Promise<{ status: number; json: any }>, message?: RegExp): Promise<void> {
  const before = await versions();
  const res = await fn();
  assert.equal(res.status, status, JSON.stringify(res.json));
  assert.equal(typeof res.json.error.reason, 'string');
  if (message) assert.match(res.json.error.message, message);
  assert.deepEqual(await versions(), before, 'nothing written');
}

/** Two identical VMs: `api-<n>` changed over HTTP, `cli-<n>` by vk. */
async function twins(n: string, s: Partial<VmSpec> = {}, xml = XML): Promise<void> {
  for (const vm of [`api-${n}`, `cli-${n}`]) {
    await store.create(paths.vmSpec(vm), encodeVmSpec({ node: 'hv1', state: 'running', ...s } as never), { parents: true });
    await store.create(paths.vmXml(vm), xml(vm));
  }
}

/** The two specs agree on everything but the timestamps a verb stamps. */
async function sameChange(n: string): Promise<VmSpec> {
  const strip = ({ version: _v, restartedAt: _r, flushLocksAt: _f, ...rest }: VmSpec & { version: number }) => rest;
  const [a, c] = [await spec(`api-${n}`), await spec(`cli-${n}`)];
  assert.deepEqual(strip(a), strip(c));
  assert.equal(a.version, c.version, 'one write each');
  return a;
}

before(async () => {
  await fx.start();
  ({ server, store } = fx);
  vk = vkFor(server.connectString, root);
});

after(() => fx.stop());

describe('POST /vm/{name}/migrate, /unmigrate, /move, /restart', () => {
  test('migrate then unmigrate: the same specs as vk vm migrate / unmigrate, with the generation to wait for', async () => {
    await twins('m');
    const res = await call('POST', '/vm/api-m/migrate', { node: 'hv2' });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json, { name: 'api-m', generation: 1, changed: true, node: 'hv2' });
    assert.equal((await vk('vm', 'migrate', 'cli-m', '--node', 'hv2')).code, 0);
    const s = await sameChange('m');
    assert.equal(s.node, 'hv2');
    assert.equal(s.previousNode, 'hv1');
    // Already migrated: 409 with vk's reason, nothing written.
    await refused(409, () => call('POST', '/vm/api-m/migrate', { node: 'hv1' }), /already migrated \(from hv1\)/);
    const back = await call('POST', '/vm/api-m/unmigrate');
    assert.equal(back.status, 200, JSON.stringify(back.json));
    assert.equal(back.json.node, 'hv1');
    assert.equal((await vk('vm', 'unmigrate', 'cli-m')).code, 0);
    assert.equal((await sameChange('m')).previousNode, undefined);
    await refused(409, () => call('POST', '/vm/api-m/unmigrate'), /not migrated/);
  });

  test('move: permanent, no previous node; live migration only sets the method', async () => {
    await twins('v');
    const res = await call('POST', '/vm/api-v/move', { node: 'hv2' });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal((await vk('vm', 'move', 'cli-v', '--node', 'hv2')).code, 0);
    const s = await sameChange('v');
    assert.equal(s.node, 'hv2');
    assert.equal(s.previousNode, undefined);
    const live = await call('POST', '/vm/api-v/migrate', { node: 'hv1', live: true });
    assert.equal(live.status, 200, JSON.stringify(live.json));
    assert.equal((await spec('api-v')).meta.migrationMethod, 'live');
  });

  test('restart: a new restartedAt, returned', async () => {
    await twins('r');
    const res = await call('POST', '/vm/api-r/restart');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal((await vk('vm', 'restart', 'cli-r')).code, 0);
    const s = await sameChange('r');
    assert.equal(s.restartedAt, res.json.restartedAt);
    assert.equal(res.json.generation, (await spec('api-r')).version);
  });

  test('bad input is a 400 naming the field, an unknown VM or node a 404/400, nothing written; a read token is 403; no token 401', async () => {
    await twins('b');
    await refused(400, () => call('POST', '/vm/api-b/migrate', { node: 'no such node!' }));
    await refused(400, () => call('POST', '/vm/api-b/migrate', { node: 'hv2', speed: 'fast' }));
    await refused(400, () => call('POST', '/vm/api-b/migrate', { node: 'hv9' }), /hv9/);
    await refused(404, () => call('POST', '/vm/nope/restart'));
    await refused(403, () => call('POST', '/vm/api-b/restart', undefined, reader.token));
    await refused(401, () => call('POST', '/vm/api-b/restart', undefined, null));
  });
});

describe('POST /vm/{name}/flush-locks', () => {
  test('refused (409, nothing written) for a running VM and for one without RBD disks, as vk refuses them (exit 2)', async () => {
    await twins('f', { rbd: ['rbd/f'] } as never, (vm) => XML(vm, RBD(`rbd/${vm}`)));
    await refused(409, () => call('POST', '/vm/api-f/flush-locks'), /locks not flushed: its desired state is running/);
    const cli = await vk('vm', 'flush-locks', 'cli-f');
    assert.equal(cli.code, 2, cli.stderr);
    await twins('n');
    await refused(409, () => call('POST', '/vm/api-n/flush-locks'), /no RBD disks/);
  });

  test('a stopped VM: 202 with the node and the stamp its answer will carry; spec.flushLocksAt is that stamp', async () => {
    await twins('s', { state: 'stopped', rbd: ['rbd/s'] } as never, (vm) => XML(vm, RBD(`rbd/${vm}`)));
    const res = await call('POST', '/vm/api-s/flush-locks');
    assert.equal(res.status, 202, JSON.stringify(res.json));
    assert.equal(res.json.node, 'hv1');
    assert.deepEqual(res.json.images, ['rbd/s']);
    const s = await spec('api-s');
    assert.equal(s.flushLocksAt, res.json.at);
    assert.equal(res.json.generation, s.version);
  });
});

describe('POST /node/{name}/flush, /ready, /primary', () => {
  test('flush and ready: the node spec as vk node flush / ready writes it, unchanged the second time; an unknown node 404', async () => {
    const res = await call('POST', '/node/hv2/flush');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const got = await store.get(paths.nodeSpec('hv2'));
    assert.equal(JSON.parse(got!.data.toString('utf8')).domainState, 'flushed');
    assert.deepEqual(res.json, { name: 'hv2', generation: got!.version, changed: true, domainState: 'flushed' });
    const again = await call('POST', '/node/hv2/flush');
    assert.equal(again.json.changed, false);
    assert.equal((await store.get(paths.nodeSpec('hv2')))!.version, got!.version, 'no second write');
    const ready = await call('POST', '/node/hv2/ready');
    assert.equal(ready.status, 200);
    assert.equal(JSON.parse((await store.get(paths.nodeSpec('hv2')))!.data.toString('utf8')).domainState, 'ready');
    // vk does the same to hv1: same spec text.
    assert.equal((await vk('node', 'flush', 'hv1')).code, 0);
    assert.equal((await call('POST', '/node/hv1/ready')).status, 200);
    assert.equal((await store.get(paths.nodeSpec('hv1')))!.data.toString('utf8'), (await store.get(paths.nodeSpec('hv2')))!.data.toString('utf8'));
    await refused(404, () => call('POST', '/node/hv9/flush'), /node hv9 not found/);
    await refused(403, () => call('POST', '/node/hv1/flush', undefined, reader.token));
  });

  test('primary: a node that is not a coordinator is a 400 naming it, nothing written', async () => {
    await refused(400, () => call('POST', '/node/hv1/primary'), /is not a coordinator/);
  });
});

describe('GET /events', () => {
  test('the log oldest first, filtered by node; follow=true streams the backlog then each new event (NDJSON)', async () => {
    const { appendEvent } = await import('../../core/events.ts');
    const at = () => new Date().toISOString();
    await appendEvent(store, paths, { at: at(), kind: 'fence.started', by: 'hv1', node: 'hv3', message: 'fencing hv3' });
    await appendEvent(store, paths, { at: at(), kind: 'cluster.maintenance', by: 'vk', message: 'maintenance on' });
    const all = await call('GET', '/events', undefined, reader.token);
    assert.equal(all.status, 200, JSON.stringify(all.json));
    const kinds = all.json.map((e: { kind: string }) => e.kind);
    assert.deepEqual(kinds.slice(-2), ['fence.started', 'cluster.maintenance']);
    const hv3 = await call('GET', '/events?node=hv3');
    assert.deepEqual(hv3.json.map((e: { kind: string }) => e.kind), ['fence.started']);
    await refused(400, () => call('GET', '/events?limit=0'));

    const abort = new AbortController();
    const res = await fetch(`${fx.base}/events?follow=true&node=hv3&limit=5`, { headers: { authorization: `Bearer ${reader.token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /ndjson/);
    const stream = streamReader(res);
    await stream.until(/fence\.started/);
    await appendEvent(store, paths, { at: at(), kind: 'vm.recovered', by: 'hv1', node: 'hv3', vm: 'web1', message: 'recovered to hv1' });
    await appendEvent(store, paths, { at: at(), kind: 'node.lost', by: 'hv1', node: 'hv2', message: 'not about hv3' });
    await stream.until(/vm\.recovered/);
    const lines = stream.text().trim().split('\n').map((l) => JSON.parse(l) as { kind: string; node?: string });
    assert.deepEqual(lines.map((l) => l.kind), ['fence.started', 'vm.recovered']);
    await stream.cancel();
    abort.abort();
  });
});

test('every verb is in the generated /openapi.json', async () => {
  const doc = (await call('GET', '/openapi.json')).json;
  for (const verb of ['migrate', 'unmigrate', 'move', 'restart', 'flush-locks']) {
    assert.ok(doc.paths[`/vm/{name}/${verb}`]?.post, `POST /vm/{name}/${verb} documented`);
  }
  assert.ok(doc.paths['/events']?.get, 'GET /events documented');
  for (const verb of ['flush', 'ready', 'primary']) assert.ok(doc.paths[`/node/{name}/${verb}`]?.post, `POST /node/{name}/${verb} documented`);
  assert.ok(doc.components.schemas.MigrateVm, 'the MigrateVm body schema');
});
