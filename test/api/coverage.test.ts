// Every route × every status its OpenAPI entry documents, against the real server and a real
// ZooKeeper: the table below has one request per (route, status), the test fails when a documented
// status has no request (or a request answers another status), and every error answer is checked
// to have written nothing (every znode's version under the root). 401 (no token), 403 (a read
// token on a write), 429 (a server whose rate limit is spent) and 503 (a server whose ZooKeeper
// connection is cut) are asked of every route
// that documents them; the rest are written out per route.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../api/server.ts';
import { parseTokenFile } from '../../api/auth.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeClusterConfig, encodeNetworkSpec, encodePrimaryRecord, encodeVmSpec, type VmSpecInput } from '../../schemas/index.ts';
import { startTcpProxy, type TcpProxy } from '../rig/tcp-proxy.ts';
import { ApiFixture, type Reply } from './helpers.ts';

const fx = new ApiFixture('/apicov');
const { paths } = fx;
let closed: FastifyInstance;
let closedBase: string;
let limited: FastifyInstance;
let limitedBase: string;
let proxy: TcpProxy;
let cutStore: ZkStore;

const XML = (name: string, disk = '') => `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>${disk}</domain>`;
const RBD = `<devices><disk type='network' device='disk'><source protocol='rbd' name='pool/img1'/><target dev='vda'/></disk></devices>`;
const vmDoc = (name: string, spec: Record<string, unknown> = {}) => ({ apiVersion: 'virtkeeper/v1', kind: 'VM', metadata: { name }, spec: { node: 'hv1', state: 'stopped', xml: XML(name), ...spec } });

async function vm(name: string, spec: Partial<VmSpecInput>, xml = XML(name)): Promise<void> {
  await fx.store.create(paths.vmSpec(name), encodeVmSpec({ node: 'hv1', state: 'running', ...spec } as VmSpecInput), { parents: true });
  await fx.store.create(paths.vmXml(name), xml);
}

before(async () => {
  await fx.start();
  const { store } = fx;
  await vm('run1', {});
  await vm('stop1', { state: 'stopped' });
  await vm('mig1', {});
  await vm('mov1', {});
  await vm('rbd1', { state: 'stopped', rbd: ['pool/img1'] }, XML('rbd1', RBD));
  await vm('net1', { state: 'stopped' }, XML('net1', "<devices><interface type='bridge'><source bridge='vkbr101'/></interface></devices>"));
  // A VM whose spec cannot be read: the verbs refuse it (409), nothing written.
  await store.create(paths.vmSpec('bad1'), '{"node": 5}', { parents: true });
  await store.create(paths.nodeSpec('hv3'), '{"domainState":"ready"}', { parents: true });
  await store.create(paths.nodeAlive('hv3'), '', { mode: 'ephemeral' });
  await store.create(paths.vmConsole('run1'), 'line 1\nline 2');
  await store.create(paths.networkSpec('100'), encodeNetworkSpec({ type: 'bridged' }), { parents: true });
  await store.create(paths.networkSpec('101'), encodeNetworkSpec({ type: 'bridged' }), { parents: true });
  const config = await store.get(paths.config);
  if (config) await store.set(paths.config, encodeClusterConfig({ coordinators: ['hv1', 'hv2', 'hv3'] }), config.version);
  else await store.create(paths.config, encodeClusterConfig({ coordinators: ['hv1', 'hv2', 'hv3'] }));
  await store.create(paths.primary, encodePrimaryRecord({ node: 'hv1', phase: 'primary', since: new Date().toISOString(), term: 1 }));
  // The same routes over a ZooKeeper connection that is cut (a relay the test cuts): every route answers 503.
  const [host, port] = fx.server.connectString.split(',')[0]!.split(':');
  proxy = await startTcpProxy(host!, Number(port));
  cutStore = await ZkStore.connect({ connectString: proxy.address, sessionTimeoutMs: 10_000 });
  closed = await buildApi({ store: cutStore, paths, auth: parseTokenFile(fx.admin.line, 'tokens'), log: false });
  closedBase = await closed.listen({ host: '127.0.0.1', port: 0 });
  proxy.cut();
  const deadline = Date.now() + 10_000;
  while (cutStore.connectionState === 'connected' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.notEqual(cutStore.connectionState, 'connected', 'the cut store is suspended');
  // A server whose rate limit allows one request, then one every ~17 minutes: after the first, 429.
  limited = await buildApi({ store: fx.store, paths, auth: parseTokenFile(fx.admin.line, 'tokens'), rateLimit: { perSecond: 0.001, burst: 1 }, log: false });
  limitedBase = await limited.listen({ host: '127.0.0.1', port: 0 });
  assert.equal((await fetch(`${limitedBase}/node`, { headers: { authorization: `Bearer ${fx.admin.token}` } })).status, 200);
});

after(async () => {
  await limited?.close();
  await closed?.close();
  await cutStore?.close().catch(() => undefined);
  await proxy?.close();
  await fx.stop();
});

type Case = () => Promise<Reply>;
const call = (method: string, path: string, body?: unknown) => () => fx.call(method, path, body);

/** The specific requests, in the order they run (later ones see what earlier ones wrote). */
const CASES: Array<[string, Case]> = [
  ['GET /vm 200', call('GET', '/vm')],
  ['POST /vm 201', call('POST', '/vm', { xml: XML('new1'), node: 'hv1' })],
  ['POST /vm 400', call('POST', '/vm', { xml: '<domain>' })],
  ['POST /vm 409', call('POST', '/vm', { xml: XML('run1') })],
  ['GET /vm/{name} 200', call('GET', '/vm/run1')],
  ['GET /vm/{name} 400', call('GET', '/vm/run1?waitFor=-1')],
  ['GET /vm/{name} 404', call('GET', '/vm/nope')],
  ['POST /vm/{name} 200', call('POST', '/vm/run1', { meta: { maxDowntimeMs: 500 } })],
  ['POST /vm/{name} 400', call('POST', '/vm/run1', { meta: { maxDowntimeMs: 0 } })],
  ['POST /vm/{name} 404', call('POST', '/vm/nope', { meta: { autostart: true } })],
  ['POST /vm/{name} 409', call('POST', '/vm/run1', { meta: { autostart: true }, generation: 0 })],
  ['POST /vm/{name}/migrate 200', call('POST', '/vm/mig1/migrate', { node: 'hv2' })],
  ['POST /vm/{name}/migrate 400', call('POST', '/vm/mig1/migrate', { node: 'hv9' })],
  ['POST /vm/{name}/migrate 404', call('POST', '/vm/nope/migrate', { node: 'hv2' })],
  ['POST /vm/{name}/migrate 409', call('POST', '/vm/mig1/migrate', { node: 'hv1' })],
  ['POST /vm/{name}/unmigrate 200', call('POST', '/vm/mig1/unmigrate')],
  ['POST /vm/{name}/unmigrate 400', call('POST', '/vm/UPPER/unmigrate')],
  ['POST /vm/{name}/unmigrate 404', call('POST', '/vm/nope/unmigrate')],
  ['POST /vm/{name}/unmigrate 409', call('POST', '/vm/mig1/unmigrate')],
  ['POST /vm/{name}/move 200', call('POST', '/vm/mov1/move', { node: 'hv2' })],
  ['POST /vm/{name}/move 400', call('POST', '/vm/mov1/move', { node: 7 })],
  ['POST /vm/{name}/move 404', call('POST', '/vm/nope/move', {})],
  ['POST /vm/{name}/move 409', call('POST', '/vm/mov1/move', { node: 'hv2' })],
  ['POST /vm/{name}/restart 200', call('POST', '/vm/run1/restart')],
  ['POST /vm/{name}/restart 400', call('POST', '/vm/a_b/restart')],
  ['POST /vm/{name}/restart 404', call('POST', '/vm/nope/restart')],
  ['POST /vm/{name}/restart 409', call('POST', '/vm/stop1/restart')],
  ['POST /vm/{name}/flush-locks 202', call('POST', '/vm/rbd1/flush-locks')],
  ['POST /vm/{name}/flush-locks 400', call('POST', '/vm/UPPER/flush-locks')],
  ['POST /vm/{name}/flush-locks 404', call('POST', '/vm/nope/flush-locks')],
  ['POST /vm/{name}/flush-locks 409', call('POST', '/vm/run1/flush-locks')],
  ['GET /vm/{name}/log 200', call('GET', '/vm/run1/log?lines=1')],
  ['GET /vm/{name}/log 400', call('GET', '/vm/run1/log?lines=x')],
  ['GET /vm/{name}/log 404', call('GET', '/vm/nope/log')],
  ['GET /vm/{name}/log 409', call('GET', '/vm/bad1/log')],
  ['DELETE /vm/{name} 200', call('DELETE', '/vm/stop1')],
  ['DELETE /vm/{name} 400', call('DELETE', '/vm/run1?force=maybe')],
  ['DELETE /vm/{name} 404', call('DELETE', '/vm/stop1')],
  ['DELETE /vm/{name} 409', call('DELETE', '/vm/run1')],
  ['GET /node 200', call('GET', '/node')],
  ['GET /node/{name} 200', call('GET', '/node/hv1')],
  ['GET /node/{name} 400', call('GET', '/node/UPPER')],
  ['GET /node/{name} 404', call('GET', '/node/hv9')],
  ['POST /node/{name}/flush 200', call('POST', '/node/hv2/flush')],
  ['POST /node/{name}/flush 400', call('POST', '/node/UPPER/flush')],
  ['POST /node/{name}/flush 404', call('POST', '/node/hv9/flush')],
  ['POST /node/{name}/ready 200', call('POST', '/node/hv2/ready')],
  ['POST /node/{name}/ready 400', call('POST', '/node/UPPER/ready')],
  ['POST /node/{name}/ready 404', call('POST', '/node/hv9/ready')],
  ['POST /node/{name}/primary 200', call('POST', '/node/hv2/primary')],
  ['POST /node/{name}/primary 400', call('POST', '/node/hv9/primary')],
  ['POST /node/{name}/primary 409', call('POST', '/node/hv3/primary')],
  ['GET /network 200', call('GET', '/network')],
  ['GET /network/{vni} 200', call('GET', '/network/100')],
  ['GET /network/{vni} 400', call('GET', '/network/abc')],
  ['GET /network/{vni} 404', call('GET', '/network/999')],
  ['POST /network 201', call('POST', '/network', { vni: '102', spec: { type: 'managed' } })],
  ['POST /network 400', call('POST', '/network', { vni: '103', spec: { type: 'bridged', dhcp4: { start: '192.0.2.2', end: '192.0.2.3' } } })],
  ['POST /network 409', call('POST', '/network', { vni: '102', spec: { type: 'managed' } })],
  ['DELETE /network/{vni} 200', call('DELETE', '/network/100')],
  ['DELETE /network/{vni} 400', call('DELETE', '/network/0')],
  ['DELETE /network/{vni} 404', call('DELETE', '/network/100')],
  ['DELETE /network/{vni} 409', call('DELETE', '/network/101')],
  ['GET /events 200', call('GET', '/events?limit=5')],
  ['GET /events 400', call('GET', '/events?limit=0')],
  ['POST /apply 200', call('POST', '/apply', { manifests: [vmDoc('app1')] })],
  ['POST /apply 400', call('POST', '/apply', { manifests: [vmDoc('app2', { node: 'hv9' })] })],
  ['POST /diff 200', call('POST', '/diff', { manifests: [vmDoc('app1', { state: 'running' })] })],
  ['POST /diff 400', call('POST', '/diff', { yaml: '{' })],
  ['POST /plan 200', call('POST', '/plan', {})],
  ['POST /plan 400', call('POST', '/plan', { manifests: [{ kind: 'Nope' }] })],
];

interface Documented {
  method: string;
  path: string;
  statuses: string[];
}

async function documented(): Promise<Documented[]> {
  const doc = (await (await fetch(`${fx.base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, statuses: Object.keys(op.responses) })));
}

/** The route's path with a value for each parameter that passes validation. */
function concrete(path: string): string {
  return path.replace('{name}', 'run1').replace('{vni}', '101');
}

test('every documented status of every route is answered by a request, and an error writes nothing', async () => {
  const ops = await documented();
  const specific = new Map(CASES);
  const missing: string[] = [];
  for (const op of ops) {
    for (const status of op.statuses) {
      const key = `${op.method} ${op.path} ${status}`;
      if (!['401', '403', '429', '503'].includes(status) && !specific.has(key)) missing.push(key);
    }
  }
  assert.deepEqual(missing, [], 'a request for every documented status');
  const documentedKeys = new Set(ops.flatMap((op) => op.statuses.map((s) => `${op.method} ${op.path} ${s}`)));
  for (const [key] of CASES) assert.ok(documentedKeys.has(key), `${key} is documented`);

  for (const [key, run] of CASES) {
    const status = Number(key.split(' ').at(-1));
    const before = status >= 400 ? await fx.versions() : undefined;
    const res = await run();
    assert.equal(res.status, status, `${key}: ${JSON.stringify(res.json)}`);
    if (before) {
      assert.equal(typeof res.json.error.reason, 'string', key);
      assert.equal(typeof res.json.error.message, 'string', key);
      assert.deepEqual(await fx.versions(), before, `${key} wrote nothing`);
    }
  }

  for (const op of ops) {
    const path = concrete(op.path);
    const body = op.method === 'GET' || op.method === 'DELETE' ? undefined : {};
    for (const status of op.statuses.filter((s) => ['401', '403'].includes(s))) {
      const before = await fx.versions();
      const res = await fx.call(op.method, path, body, status === '401' ? null : fx.reader.token);
      assert.equal(res.status, Number(status), `${op.method} ${op.path} ${status}: ${JSON.stringify(res.json)}`);
      assert.deepEqual(await fx.versions(), before, `${op.method} ${op.path} ${status} wrote nothing`);
    }
    if (op.statuses.includes('429')) {
      const before = await fx.versions();
      const res = await fetch(`${limitedBase}${path}`, { method: op.method, headers: { authorization: `Bearer ${fx.admin.token}`, ...(body && { 'content-type': 'application/json' }) }, ...(body && { body: '{}' }) });
      const json = (await res.json()) as { error: { reason: string } };
      assert.equal(res.status, 429, `${op.method} ${op.path} 429: ${JSON.stringify(json)}`);
      assert.equal(json.error.reason, 'RateLimited');
      assert.ok(res.headers.get('retry-after'), 'Retry-After');
      assert.deepEqual(await fx.versions(), before, `${op.method} ${op.path} 429 wrote nothing`);
    }
    if (op.statuses.includes('503')) {
      const res = await fetch(`${closedBase}${path}`, { method: op.method, headers: { authorization: `Bearer ${fx.admin.token}`, ...(body && { 'content-type': 'application/json' }) }, ...(body && { body: '{}' }) });
      const json = (await res.json()) as { error: { reason: string } };
      assert.equal(res.status, 503, `${op.method} ${op.path} 503: ${JSON.stringify(json)}`);
      assert.equal(json.error.reason, 'Unavailable');
    }
  }
});
