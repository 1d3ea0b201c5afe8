// The REST API end to end: Node's fetch against the real server (buildApi, listening on 127.0.0.1
// port 0) over a real ZooKeeper. Every write route given bad input is checked to write nothing by
// comparing every znode's version under the root before and after, not only the status code.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { validate, compileErrors } from '@readme/openapi-parser';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeNetworkSpec, encodeVmStatus } from '../../schemas/index.ts';
import { buildApi } from '../../api/server.ts';
import { parseTokenFile } from '../../api/auth.ts';
import type { ZkServer } from '../rig/zookeeper.ts';
import { ApiFixture } from './helpers.ts';

const fx = new ApiFixture('/api');
const { paths, admin, reader } = fx;
let server: ZkServer;
let store: ZkStore;
const logLines: string[] = [];
const call = fx.call.bind(fx);
const refused = fx.refused.bind(fx);
const spec = fx.spec.bind(fx);

const XML = (name: string, uuid?: string) => `<domain type='test'>
  <name>${name}</name>${uuid ? `\n  <uuid>${uuid}</uuid>` : ''}
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <devices><interface type='bridge'><source bridge='vkbr100'/></interface></devices>
</domain>`;

before(async () => {
  const stream = new Writable({
    write(chunk, _enc, done) {
      logLines.push(...String(chunk).split('\n').filter((l) => l !== ''));
      done();
    },
  });
  await fx.start({ log: { stream } });
  ({ server, store } = fx);
  await store.create(paths.networkSpec('100'), encodeNetworkSpec({ type: 'bridged' }), { parents: true });
});

after(() => fx.stop());

describe('auth', () => {
  test('no token and a bad token: 401 JSON; a read token reads; a read token on a write: 403, nothing written', async () => {
    await refused(401, () => call('GET', '/vm', undefined, null), { reason: 'Unauthorized', message: /bearer token is required/ });
    await refused(401, () => call('GET', '/vm', undefined, 'vk_not-a-token'), { reason: 'Unauthorized', message: /not valid/ });
    await refused(401, () => call('POST', '/vm', { xml: XML('authvm') }, null), { reason: 'Unauthorized' });
    const read = await call('GET', '/vm', undefined, reader.token);
    assert.equal(read.status, 200);
    await refused(403, () => call('POST', '/vm', { xml: XML('authvm') }, reader.token), { reason: 'Forbidden', message: /scope read; POST needs scope admin/ });
    await refused(403, () => call('DELETE', '/vm/authvm', undefined, reader.token), { reason: 'Forbidden' });
  });

  test('a token file line that is not `sha256hex scope name` is refused, naming the line', () => {
    assert.throws(() => parseTokenFile('abc admin x\n', 'f'), /f:1/);
    assert.throws(() => parseTokenFile(`${'a'.repeat(64)} root x\n`, 'f'), /f:1: invalid scope "root"/);
  });
});

describe('POST /vm (define)', () => {
  test("PVC's call: XML + meta defines the VM; GET /vm/{name} shows it", async () => {
    const res = await call('POST', '/vm', { xml: XML('web1', '0b6a3c4e-1f2a-4b3c-8d4e-5f6a7b8c9d01'), meta: { nodeLimit: ['hv1', 'hv2'], autostart: true }, node: 'hv1' });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json, { name: 'web1', generation: 0, changed: true, node: 'hv1' });
    const s = await spec('web1');
    assert.equal(s.node, 'hv1');
    assert.equal(s.state, 'running');
    assert.deepEqual(s.meta.nodeLimit, ['hv1', 'hv2']);
    assert.equal(s.meta.autostart, true);
    const got = await call('GET', '/vm/web1');
    assert.equal(got.status, 200);
    assert.equal(got.json.name, 'web1');
    assert.equal(got.json.generation, 0);
    assert.deepEqual(got.json.spec.meta.nodeLimit, ['hv1', 'hv2']);
    assert.equal(got.json.uuid, '0b6a3c4e-1f2a-4b3c-8d4e-5f6a7b8c9d01');
    assert.match(got.json.xml, /<name>web1<\/name>/);
    assert.equal(got.json.status, null);
  });

  test('without a node the selector chooses one; a VM manifest defines too', async () => {
    const auto = await call('POST', '/vm', { xml: XML('auto1'), state: 'stopped' });
    assert.equal(auto.status, 201, JSON.stringify(auto.json));
    assert.ok(['hv1', 'hv2'].includes(auto.json.node));
    assert.equal((await spec('auto1')).state, 'stopped');
    const manifest = await call('POST', '/vm', { apiVersion: 'virtkeeper/v1', kind: 'VM', metadata: { name: 'man1' }, spec: { node: 'hv2', state: 'stopped', xml: XML('man1') } });
    assert.equal(manifest.status, 201, JSON.stringify(manifest.json));
    assert.equal((await spec('man1')).node, 'hv2');
  });

  test('bad input: 400 naming the field (and value), nothing written', async () => {
    await refused(400, () => call('POST', '/vm', { xml: '<domain><name>x' }), { reason: 'InvalidInput', field: 'xml' });
    await refused(400, () => call('POST', '/vm', { xml: XML('bad1'), meta: { nodeLimit: ['hv/1'] } }), { field: 'meta.nodeLimit[0]', message: /"hv\/1"/ });
    await refused(400, () => call('POST', '/vm', { xml: XML('bad1'), meta: { maxDowntimeMs: 0 } }), { field: 'meta.maxDowntimeMs' });
    await refused(400, () => call('POST', '/vm', { xml: XML('bad1'), state: 'paused' }), { field: 'state', message: /"paused"/ });
    await refused(400, () => call('POST', '/vm', { xml: XML('bad1'), colour: 'red' }), { field: 'colour' });
    await refused(400, () => call('POST', '/vm', { xml: XML('bad1'), node: 'hv9' }), { field: 'node', message: /no node "hv9"/ });
    await refused(400, () => call('POST', '/vm', { xml: XML('bad1'), node: 'hv2', meta: { nodeLimit: ['hv1'] } }), { field: 'node', message: /^vm bad1: node: invalid name "hv2": not in meta\.nodeLimit/ });
    await refused(400, () => call('POST', '/vm', { xml: XML('Bad_Name') }), { reason: 'InvalidInput' });
    await refused(400, () => call('POST', '/vm', { xml: XML('dup1', '0b6a3c4e-1f2a-4b3c-8d4e-5f6a7b8c9d01') }), { field: 'xml/domain/uuid', message: /duplicate UUID/ });
    await refused(400, () => call('POST', '/vm', 'not json'), { reason: 'InvalidInput' });
    await refused(400, () => call('POST', '/vm', { kind: 'VM', metadata: { name: 'man2' }, spec: { node: 'hv1', xmlFile: '/etc/passwd' } }), { field: 'spec.xmlFile' });
    await refused(400, () => call('POST', '/vm', { kind: 'VM', metadata: { name: 'man2' }, spec: { node: 'hv1', xml: XML('other') } }), { reason: 'InvalidInput' });
  });

  test('a VM that exists: 409, nothing written', async () => {
    await refused(409, () => call('POST', '/vm', { xml: XML('web1'), node: 'hv2' }), { reason: 'Refused', message: /already exists/ });
  });
});

describe('POST /vm/{name} (meta, state, node)', () => {
  test('a meta change writes one new generation; the same change again is unchanged', async () => {
    const before = await spec('web1');
    const res = await call('POST', '/vm/web1', { meta: { nodeSelector: 'load', maxDowntimeMs: 500 } });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.generation, before.version + 1);
    assert.equal(res.json.changed, true);
    const after = await spec('web1');
    assert.equal(after.meta.nodeSelector, 'load');
    assert.equal(after.meta.maxDowntimeMs, 500);
    assert.deepEqual(after.meta.nodeLimit, ['hv1', 'hv2'], 'fields left out keep their value');
    const again = await call('POST', '/vm/web1', { meta: { nodeSelector: 'load' } });
    assert.equal(again.json.changed, false);
    assert.equal((await spec('web1')).version, after.version);
  });

  test('state and node together are one generation; node moves it permanently', async () => {
    const before = await spec('web1');
    const res = await call('POST', '/vm/web1', { state: 'stopped', node: 'hv2' });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const after = await spec('web1');
    assert.equal(after.version, before.version + 1);
    assert.equal(after.state, 'stopped');
    assert.equal(after.node, 'hv2');
    assert.equal(after.forceStopAt, before.forceStopAt, 'a stop here is a shutdown, not a forced stop');
  });

  test('bad input: 400 naming the field, nothing written; unknown VM 404; a stale generation 409 with the current one', async () => {
    await refused(400, () => call('POST', '/vm/web1', { meta: { nodeSelector: 'fastest' } }), { field: 'meta.nodeSelector', message: /"fastest"/ });
    await refused(400, () => call('POST', '/vm/web1', { meta: { nodeLimit: ['hv1', 'hv1'] } }), { reason: 'InvalidInput' });
    await refused(400, () => call('POST', '/vm/web1', { state: 'on' }), { field: 'state' });
    await refused(400, () => call('POST', '/vm/web1', { node: 'hv9' }), { field: 'node', message: /no node "hv9"/ });
    await refused(400, () => call('POST', '/vm/web1', { meta: { nodeLimit: ['hv1'] } }), { field: 'node', message: /^vm web1: node: invalid name "hv2": not in meta\.nodeLimit \["hv1"\]/ });
    await refused(400, () => call('POST', '/vm/web1', { memory: 5 }), { field: 'memory' });
    await refused(400, () => call('POST', '/vm/Web_1', { state: 'running' }), { field: 'name' });
    await refused(404, () => call('POST', '/vm/nosuch', { state: 'running' }), { reason: 'NotFound' });
    const current = (await spec('web1')).version;
    const error = await refused(409, () => call('POST', '/vm/web1', { state: 'running', generation: current - 1 }), { reason: 'Conflict' });
    assert.equal(error.currentVersion, current);
    const ok = await call('POST', '/vm/web1', { state: 'running', generation: current });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.generation, current + 1);
  });
});

describe('GET /vm/{name}?waitFor', () => {
  test('answers once the status has seen the generation, or says it timed out', async () => {
    const s = await spec('web1');
    const slow = await call('GET', `/vm/web1?waitFor=${s.version}&timeout=0.3`);
    assert.equal(slow.status, 200);
    assert.equal(slow.json.wait.result, 'timeout');
    const waiting = call('GET', `/vm/web1?waitFor=${s.version}&timeout=20`);
    await new Promise((r) => setTimeout(r, 200));
    const now = new Date().toISOString();
    await store.create(paths.vmStatus('web1'), encodeVmStatus({ phase: 'Running', node: s.node, observedGeneration: s.version, conditions: [], updatedAt: now }));
    const done = await waiting;
    assert.equal(done.json.wait.result, 'done', JSON.stringify(done.json.wait));
    assert.equal(done.json.status.phase, 'Running');
    await refused(400, () => call('GET', '/vm/web1?waitFor=abc'), { field: 'waitFor' });
    await refused(404, () => call('GET', '/vm/nosuch'), { reason: 'NotFound' });
  });
});

describe('GET /vm, /node, /network', () => {
  test('lists and single objects, 404 and 400', async () => {
    const vms = await call('GET', '/vm');
    assert.equal(vms.status, 200);
    assert.deepEqual(vms.json.map((v: { name: string }) => v.name).sort(), ['auto1', 'man1', 'web1']);
    const nodes = await call('GET', '/node');
    assert.deepEqual(nodes.json.map((n: { name: string }) => n.name), ['hv1', 'hv2']);
    const hv1 = await call('GET', '/node/hv1');
    assert.equal(hv1.status, 200);
    assert.equal(hv1.json.alive, true);
    assert.equal(hv1.json.status.daemonState, 'run');
    await refused(404, () => call('GET', '/node/hv9'), { reason: 'NotFound' });
    await refused(400, () => call('GET', '/node/HV_1'), { field: 'name' });
    const networks = await call('GET', '/network');
    assert.deepEqual(networks.json.map((n: { vni: string }) => n.vni), ['100']);
    const n100 = await call('GET', '/network/100');
    assert.equal(n100.json.bridge, 'vkbr100');
    assert.deepEqual(n100.json.vms.sort(), ['auto1', 'man1', 'web1']);
    await refused(404, () => call('GET', '/network/200'), { reason: 'NotFound' });
    await refused(400, () => call('GET', '/network/abc'), { field: 'vni' });
    await refused(404, () => call('GET', '/nothing'), { reason: 'NotFound' });
  });
});

describe('DELETE /vm/{name}', () => {
  test('refused while running (409), bad force 400, removed with force, then 404', async () => {
    await refused(409, () => call('DELETE', '/vm/web1'), { reason: 'Refused', message: /is running/ });
    await refused(400, () => call('DELETE', '/vm/web1?force=yes'), { field: 'force' });
    const res = await call('DELETE', '/vm/web1?force=true');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(await store.exists(paths.vm('web1')), null);
    await refused(404, () => call('DELETE', '/vm/web1?force=true'), { reason: 'NotFound' });
    const stopped = await call('DELETE', '/vm/auto1');
    assert.equal(stopped.status, 200, 'a stopped VM needs no force');
  });
});

describe('the OpenAPI document', () => {
  test('is served without a token and validates as OpenAPI 3.1', async () => {
    const res = await call('GET', '/openapi.json', undefined, null);
    assert.equal(res.status, 200);
    assert.equal(res.json.openapi, '3.1.0');
    for (const p of ['/vm', '/vm/{name}', '/node', '/node/{name}', '/network', '/network/{vni}']) assert.ok(res.json.paths[p], `documents ${p}`);
    const result = await validate(structuredClone(res.json));
    assert.ok(result.valid, result.valid ? '' : compileErrors(result));
  });
});

describe('logs', () => {
  test('every request is logged with a request id; no token ever appears', () => {
    const all = logLines.join('\n');
    assert.ok(logLines.length > 20);
    const completed = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed');
    assert.ok(completed.length > 10);
    for (const line of completed) assert.match(line.reqId, /^[0-9a-f-]{36}$/);
    assert.ok(!all.includes(admin.token), 'the admin token is not logged');
    assert.ok(!all.includes(reader.token), 'the read token is not logged');
    assert.ok(!all.includes('vk_not-a-token'), 'a bad token is not logged');
    assert.ok(!all.toLowerCase().includes('bearer'), 'no Authorization header is logged');
  });
});

describe('ZooKeeper unreachable', () => {
  test('503 while the store is not connected', async () => {
    const other = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
    const down = await buildApi({ store: other, paths, auth: null, log: false });
    const url = await down.listen({ host: '127.0.0.1', port: 0 });
    try {
      await server.stop();
      const deadline = Date.now() + 10_000;
      while (other.connectionState === 'connected' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const res = await fetch(`${url}/vm`);
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: { reason: string } }).error.reason, 'Unavailable');
    } finally {
      await down.close();
      await other.close().catch(() => undefined);
    }
  });
});

