// The REST API's network writes, console log and declarative routes (issue 19), against the real
// server and a real ZooKeeper: POST /network, DELETE /network/{vni}, GET /vm/{name}/log (and its
// follow stream), POST /apply, /diff, /plan. `vk diff -o json` / `vk plan -o json` / `vk apply -o
// json` and the routes are compared object for object on the same manifests; every refusal is
// checked to write nothing (every znode's version under the root).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { encodeNetworkSpec, encodeVmSpec } from '../../schemas/index.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { ApiFixture, streamReader } from './helpers.ts';

const fx = new ApiFixture('/apidecl');
const { root, paths, reader } = fx;
const call = fx.call.bind(fx);
const refused = fx.refused.bind(fx);
let vk: Vk;
const dir = mkdtempSync(join(tmpdir(), 'vk-apidecl-'));

const XML = (name: string, bridge = '') =>
  `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>${bridge ? `<devices><interface type='bridge'><source bridge='${bridge}'/></interface></devices>` : ''}</domain>`;
const vmDoc = (name: string, spec: Record<string, unknown> = {}) => ({ apiVersion: 'virtkeeper/v1', kind: 'VM', metadata: { name }, spec: { node: 'hv1', state: 'stopped', xml: XML(name), ...spec } });
const netDoc = (vni: string, spec: Record<string, unknown>) => ({ apiVersion: 'virtkeeper/v1', kind: 'Network', metadata: { name: vni }, spec });

/** The documents as one YAML file for vk. */
function manifestFile(name: string, docs: readonly unknown[]): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, docs.map((d) => stringify(d)).join('---\n'));
  return file;
}

before(async () => {
  await fx.start();
  vk = vkFor(fx.server.connectString, root);
});

after(async () => {
  await fx.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('POST /network, DELETE /network/{vni}', () => {
  test('create: 201, the spec vk network add writes; GET /network/{vni} shows it', async () => {
    const res = await call('POST', '/network', { vni: '200', spec: { type: 'managed', gateway4: '192.0.2.1/24', dhcp4: { start: '192.0.2.10', end: '192.0.2.20' } } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json, { vni: '200', bridge: 'vkbr200', generation: 0 });
    assert.equal((await vk('network', 'add', '201', '--type', 'managed', '--gateway4', '192.0.2.1/24', '--dhcp4-start', '192.0.2.10', '--dhcp4-end', '192.0.2.20')).code, 0);
    const [a, c] = await Promise.all([fx.store.get(paths.networkSpec('200')), fx.store.get(paths.networkSpec('201'))]);
    assert.equal(a!.data.toString(), c!.data.toString(), 'the same bytes as vk network add');
    const got = await call('GET', '/network/200');
    assert.equal(got.status, 200);
    assert.equal(got.json.spec.mtu, 1450);
  });

  test('bad input: 400 naming the field, nothing written; an existing one 409; a read token 403', async () => {
    await refused(400, () => call('POST', '/network', { vni: '0', spec: { type: 'managed' } }), { reason: 'InvalidInput', field: 'vni' });
    await refused(400, () => call('POST', '/network', { vni: '202', spec: { type: 'bridged', gateway4: '192.0.2.1/24' } }), { field: 'spec.gateway4' });
    await refused(400, () => call('POST', '/network', { vni: '202', spec: { type: 'managed', gateway4: '192.0.2.1/24', dhcp4: { start: '192.0.2.30', end: '192.0.2.20' } } }), { field: 'spec.dhcp4.end' });
    await refused(400, () => call('POST', '/network', { vni: '202', spec: { type: 'managed' }, extra: 1 }), { reason: 'InvalidInput' });
    await refused(400, () => call('POST', '/network', '{"vni": "202", '), { reason: 'InvalidInput' });
    await refused(409, () => call('POST', '/network', { vni: '200', spec: { type: 'managed' } }), { reason: 'Refused', message: /already exists/ });
    await refused(403, () => call('POST', '/network', { vni: '203', spec: { type: 'managed' } }, reader.token), { reason: 'Forbidden' });
    await refused(403, () => call('DELETE', '/network/200', undefined, reader.token), { reason: 'Forbidden' });
  });

  test('remove: 409 while a VM attaches (naming it), 404 for none, 400 for a bad VNI; then removed whole', async () => {
    await fx.store.create(paths.vmSpec('user1'), encodeVmSpec({ node: 'hv1', state: 'stopped' }), { parents: true });
    await fx.store.create(paths.vmXml('user1'), XML('user1', 'vkbr200'));
    await fx.store.create(`${paths.network('200')}/status`, '{}');
    await refused(409, () => call('DELETE', '/network/200'), { reason: 'Refused', message: /vm user1/ });
    await refused(404, () => call('DELETE', '/network/999'), { reason: 'NotFound' });
    await refused(400, () => call('DELETE', '/network/abc'), { field: 'vni' });
    await fx.store.deleteRecursive(paths.vm('user1'));
    const res = await call('DELETE', '/network/200');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json, { vni: '200', removed: true });
    assert.equal(await fx.store.exists(paths.network('200')), null, 'the whole subtree is gone');
    assert.equal((await call('GET', '/network/200')).status, 404);
  });
});

describe('GET /vm/{name}/log', () => {
  test('the last lines (as vk vm log), none yet, 404, 400', async () => {
    await fx.store.create(paths.vmSpec('con1'), encodeVmSpec({ node: 'hv1', state: 'running' }), { parents: true });
    await fx.store.create(paths.vmXml('con1'), XML('con1'));
    const none = await call('GET', '/vm/con1/log');
    assert.equal(none.status, 200);
    assert.deepEqual(none.json, { name: 'con1', present: false, lines: [] });
    await fx.store.create(paths.vmConsole('con1'), 'boot 1\nboot 2\nlogin:');
    const all = await call('GET', '/vm/con1/log');
    assert.deepEqual(all.json, { name: 'con1', present: true, lines: ['boot 1', 'boot 2', 'login:'] });
    const last = await call('GET', '/vm/con1/log?lines=2');
    assert.deepEqual(last.json.lines, ['boot 2', 'login:']);
    const cli = await vk('vm', 'log', 'con1', '-n', '2');
    assert.equal(cli.stdout, 'boot 2\nlogin:\n', 'the same lines as vk vm log');
    await refused(404, () => call('GET', '/vm/nope/log'), { reason: 'NotFound' });
    await refused(400, () => call('GET', '/vm/con1/log?lines=0'), { field: 'lines' });
    await refused(400, () => call('GET', '/vm/con1/log?follow=yes'), { field: 'follow' });
  });

  test('follow=true: the last lines, then each new line once, as text/plain', async () => {
    const abort = new AbortController();
    const res = await fetch(`${fx.base}/vm/con1/log?follow=true&lines=1`, { headers: { authorization: `Bearer ${reader.token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const stream = streamReader(res);
    await stream.until(/login:\n/);
    const got = await fx.store.get(paths.vmConsole('con1'));
    // The node's window slides: the first line drops out as two arrive.
    await fx.store.set(paths.vmConsole('con1'), 'boot 2\nlogin:\nroot\n# uptime', got!.version);
    await stream.until(/# uptime\n/);
    assert.equal(stream.text(), 'login:\nroot\n# uptime\n', 'each line once');
    abort.abort();
    const refusedFollow = await call('GET', '/vm/nope/log?follow=true');
    assert.equal(refusedFollow.status, 404, 'an unknown VM is a 404 before any stream');
  });
});

describe('POST /apply, /diff, /plan', () => {
  const docs = [
    netDoc('300', { type: 'managed', gateway4: '198.51.100.1/24' }),
    vmDoc('d1'),
    vmDoc('d2', { state: 'running', meta: { autostart: true } }),
  ];

  test('vk diff -o json and POST /diff return the same objects: all new, then some changed, then none', async () => {
    const compare = async (set: readonly unknown[], label: string) => {
      const api = await call('POST', '/diff', { manifests: set });
      assert.equal(api.status, 200, JSON.stringify(api.json));
      const cli = await vk('diff', '-f', manifestFile(label, set), '-o', 'json');
      assert.equal(cli.code, api.json.differs ? 1 : 0, cli.stderr);
      assert.deepEqual(JSON.parse(cli.stdout), api.json, `${label}: vk diff -o json = POST /diff`);
      return api.json;
    };
    const fresh = await compare(docs, 'fresh');
    assert.equal(fresh.differs, true);
    assert.deepEqual(fresh.objects.map((o: any) => `${o.id} ${o.result}`), ['network/300 created', 'vm/d1 created', 'vm/d2 created']);
    assert.match(fresh.objects[1].patches[0].patch, /\+\+\+ manifest\/vm\/d1\/spec/);

    const applied = await call('POST', '/apply', { manifests: docs });
    assert.equal(applied.status, 200, JSON.stringify(applied.json));
    assert.deepEqual(applied.json, {
      dryRun: false,
      objects: [
        { id: 'network/300', kind: 'Network', name: '300', result: 'created' },
        { id: 'vm/d1', kind: 'VM', name: 'd1', result: 'created' },
        { id: 'vm/d2', kind: 'VM', name: 'd2', result: 'created' },
      ],
    });
    const same = await compare(docs, 'same');
    assert.equal(same.differs, false);
    assert.ok(same.objects.every((o: any) => o.result === 'unchanged' && o.patches.length === 0));

    const changed = [docs[0], vmDoc('d1', { meta: { maxDowntimeMs: 900 } }), docs[2], vmDoc('d3')];
    const diff = await compare(changed, 'changed');
    assert.deepEqual(diff.objects.map((o: any) => `${o.id} ${o.result}`), ['network/300 unchanged', 'vm/d1 configured', 'vm/d2 unchanged', 'vm/d3 created']);
    assert.match(diff.objects[1].patches[0].patch, /\n\+ +maxDowntimeMs: 900\n/);
  });

  test('POST /apply as vk apply -o json: dry run writes nothing; YAML text works; the second apply is unchanged', async () => {
    const set = [vmDoc('y1'), vmDoc('y2')];
    const yaml = set.map((d) => stringify(d)).join('---\n');
    const before = await fx.versions();
    const dry = await call('POST', '/apply', { yaml, dryRun: true });
    assert.equal(dry.status, 200, JSON.stringify(dry.json));
    assert.deepEqual(dry.json.objects.map((o: any) => o.result), ['created', 'created']);
    assert.equal(dry.json.dryRun, true);
    assert.deepEqual(await fx.versions(), before, 'a dry run writes nothing');
    const cliDry = await vk('apply', '-f', manifestFile('y', set), '--dry-run', '-o', 'json');
    assert.deepEqual(JSON.parse(cliDry.stdout), dry.json, 'vk apply --dry-run -o json = POST /apply dryRun');
    assert.equal((await call('POST', '/apply', { yaml })).status, 200);
    const cli = await vk('apply', '-f', manifestFile('y', set), '-o', 'json');
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(JSON.parse(cli.stdout).objects.map((o: any) => o.result), ['unchanged', 'unchanged']);
  });

  test('bad input to /apply, /diff, /plan: 400 naming the document and field, nothing written', async () => {
    for (const route of ['/apply', '/diff', '/plan']) {
      const err = await refused(400, () => call('POST', route, { manifests: [vmDoc('ok1'), vmDoc('bad1', { state: 'sideways' })] }), { reason: 'InvalidInput', field: 'spec.state' });
      assert.match(err.message, /manifests\[1\]/);
      await refused(400, () => call('POST', route, { manifests: [vmDoc('bad2', { node: 'hv9' })] }), { field: 'spec.node', message: /no such node/ });
      await refused(400, () => call('POST', route, { yaml: 'kind: VM\nmetadata: {name: x\n' }), { message: /YAML syntax error/ });
      // The server never reads a file a request names.
      await refused(400, () => call('POST', route, { manifests: [{ apiVersion: 'virtkeeper/v1', kind: 'VM', metadata: { name: 'f1' }, spec: { node: 'hv1', xmlFile: '/etc/passwd' } }] }), { field: 'spec.xmlFile' });
      await refused(400, () => call('POST', route, { manifests: 'nope' }), { field: 'manifests' });
    }
    await refused(400, () => call('POST', '/apply', {}), { field: 'manifests' });
    await refused(403, () => call('POST', '/apply', { manifests: [vmDoc('r1')] }, reader.token), { reason: 'Forbidden' });
  });

  test('diff and plan write nothing and a read token may ask for them', async () => {
    const before = await fx.versions();
    assert.equal((await call('POST', '/diff', { manifests: [vmDoc('r2')] }, reader.token)).status, 200);
    assert.equal((await call('POST', '/plan', { manifests: [vmDoc('r2', { state: 'running' })] }, reader.token)).status, 200);
    assert.deepEqual(await fx.versions(), before);
  });

  test('vk plan -o json and POST /plan give the same actions, with and without manifests', async () => {
    await fx.store.create(paths.networkSpec('400'), encodeNetworkSpec({ type: 'bridged' }), { parents: true });
    const set = [vmDoc('p1', { state: 'running' }), vmDoc('d1', { node: 'hv2', state: 'stopped' })];
    const api = await call('POST', '/plan', { manifests: set });
    assert.equal(api.status, 200, JSON.stringify(api.json));
    const cli = await vk('plan', '-f', manifestFile('plan', set), '-o', 'json');
    assert.equal(cli.code, 1, cli.stderr);
    const strip = (actions: any[]) => actions.map(({ at: _at, ...rest }) => rest);
    assert.deepEqual(strip(JSON.parse(cli.stdout).actions), strip(api.json.actions));
    assert.ok(api.json.actions.some((a: any) => a.vm === 'p1' && a.node === 'hv1'), JSON.stringify(api.json.actions));
    assert.match(api.json.zxid, /^[0-9]+$/);
    const now = await call('POST', '/plan', {});
    const cliNow = await vk('plan', '-o', 'json');
    assert.deepEqual(strip(JSON.parse(cliNow.stdout).actions), strip(now.json.actions));
  });
});
