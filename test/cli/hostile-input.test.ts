// Issue 12 (§2 CLI side, §5): what another ZooKeeper client or a hostile manifest can do to `vk`.
// One bad znode must not blind the CLI, and bad input is refused with exit 2 before anything is
// written. Real vk binary, one real ZooKeeper for the file; each test works under its own root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NoAuthError, ZkStore } from '../../drivers/zk/index.ts';
import { decodeNodeSpec, decodeVmSpec } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { errorLines, readJson, snapshot, VK, vkFor, type Vk } from './helpers.ts';

let server: ZkServer;
let store: ZkStore;
const tmp = mkdtempSync(join(tmpdir(), 'vk-hostile-'));

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
});

after(async () => {
  await store?.close();
  await server?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

function domainXml(name: string, extra = ''): string {
  return `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>${extra}</domain>`;
}

function vmDoc(name: string, node: string, more = ''): string {
  return `kind: VM
metadata: {name: ${name}}
spec:
  node: ${node}
${more}  xml: "${domainXml(name, "<devices><interface type='bridge'><source bridge='vkbr100'/></interface></devices>")}"
`;
}

const CLUSTER = `kind: Network
metadata: {name: 100}
spec: {type: bridged}
---
kind: Node
metadata: {name: hv1}
---
kind: Node
metadata: {name: hv2}
`;

/** A manifest directory of its own: files by name. */
function manifestDir(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

const BASE_FILES = { 'cluster.yaml': CLUSTER, 'vms.yaml': `${vmDoc('web1', 'hv1')}---\n${vmDoc('db1', 'hv2', '  state: stopped\n')}` };

async function putRaw(path: string, data: string): Promise<void> {
  const existing = await store.get(path);
  assert.ok(existing, `${path} exists`);
  await store.set(path, data, existing.version);
}

describe('§2: an unreadable VM spec does not blind the CLI', () => {
  const root = '/bad-vm-spec';
  let vk: Vk;
  let base: string;
  before(async () => {
    vk = vkFor(server.connectString, root);
    base = manifestDir('bad-vm-spec', BASE_FILES);
    const applied = await vk('apply', '-f', base);
    assert.equal(applied.code, 0, applied.stderr);
    await putRaw(`${root}/vms/db1/spec`, 'this is {not JSON');
  });

  test('get vms lists it with the reason in place of its fields; -o json carries the error', async () => {
    const run = await vk('get', 'vms');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^web1\s+hv1\s+running/m);
    assert.match(run.stdout, /^db1\s+.*invalid spec: .*cannot be parsed/m);
    const json = await vk('get', 'vms', '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    const db1 = (JSON.parse(json.stdout) as Array<{ name: string; spec: unknown; invalid?: { znode: string; error: string } }>).find((v) => v.name === 'db1');
    assert.ok(db1?.invalid, 'db1 is reported invalid');
    assert.equal(db1.spec, null);
    assert.equal(db1.invalid.znode, `${root}/vms/db1/spec`);
  });

  test('describe vm shows the raw value and the error', async () => {
    const run = await vk('describe', 'vm', 'db1');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /this is \{not JSON/);
    assert.match(run.stdout, /cannot be parsed/);
  });

  test('get networks, describe node, diff and plan still work', async () => {
    const networks = await vk('get', 'networks', '-o', 'wide');
    assert.equal(networks.code, 0, networks.stderr);
    assert.match(networks.stdout, /^100\s+bridged/m);
    const node = await vk('describe', 'node', 'hv1');
    assert.equal(node.code, 0, node.stderr);
    assert.match(node.stdout, /VMs assigned:\s+web1/);
    const diff = await vk('diff', '-f', base);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /live\/vm\/db1\/spec/);
    const plan = await vk('plan', '-f', base);
    assert.ok(plan.code === 0 || plan.code === 1, `plan exit ${plan.code}: ${plan.stderr}`);
  });

  test('vm define of another VM still works', async () => {
    const file = join(tmp, 'app9.xml');
    writeFileSync(file, domainXml('app9'));
    const run = await vk('vm', 'define', file, '--node', 'hv1', '--state', 'stopped');
    assert.equal(run.code, 0, run.stderr);
  });

  test('apply -f repairs it', async () => {
    const run = await vk('apply', '-f', base);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^vm\/db1 configured$/m);
    assert.equal(decodeVmSpec((await store.get(`${root}/vms/db1/spec`))!.data).node, 'hv2');
  });

  test('a wrong-typed field: listed as invalid; vm remove needs --force, then removes it', async () => {
    const good = JSON.parse((await store.get(`${root}/vms/db1/spec`))!.data.toString('utf8')) as Record<string, unknown>;
    await putRaw(`${root}/vms/db1/spec`, JSON.stringify({ ...good, shutdownTimeoutMs: 'soon' }));
    const list = await vk('get', 'vms');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^db1\s+.*invalid spec: spec\.shutdownTimeoutMs/m);
    const refused = await vk('vm', 'remove', 'db1');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--force/);
    assert.ok(await store.exists(`${root}/vms/db1/spec`), 'nothing removed without --force');
    const removed = await vk('vm', 'remove', 'db1', '--force');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await store.exists(`${root}/vms/db1`), null);
  });
});

describe('§2: an unreadable node spec does not blind the CLI', () => {
  const root = '/bad-node-spec';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const applied = await vk('apply', '-f', manifestDir('bad-node-spec', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
    await putRaw(`${root}/nodes/hv2/spec`, '\u0000garbage');
  });

  test('get nodes lists it with the reason; describe node shows the raw value', async () => {
    const run = await vk('get', 'nodes');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^hv1\s+no\s+ready/m);
    assert.match(run.stdout, /^hv2\s+.*invalid spec: .*cannot be parsed/m);
    const describe = await vk('describe', 'node', 'hv2');
    assert.equal(describe.code, 0, describe.stderr);
    assert.match(describe.stdout, /garbage/);
  });

  test('node flush and ready work on it (they rewrite the spec)', async () => {
    const flush = await vk('node', 'flush', 'hv2');
    assert.equal(flush.code, 0, flush.stderr);
    assert.equal(decodeNodeSpec((await store.get(`${root}/nodes/hv2/spec`))!.data).domainState, 'flushed');
    await putRaw(`${root}/nodes/hv2/spec`, '{"domainState":42}');
    const ready = await vk('node', 'ready', 'hv2');
    assert.equal(ready.code, 0, ready.stderr);
    assert.equal(decodeNodeSpec((await store.get(`${root}/nodes/hv2/spec`))!.data).domainState, 'ready');
  });
});

describe('§2: vm stop needs no XML', () => {
  const root = '/no-xml';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const applied = await vk('apply', '-f', manifestDir('no-xml', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
  });

  test('a VM whose xml znode is invalid, then missing, can be stopped', async () => {
    await putRaw(`${root}/vms/web1/xml`, '<domain><unclosed>');
    const invalid = await vk('vm', 'stop', 'web1');
    assert.equal(invalid.code, 0, invalid.stderr);
    assert.equal(decodeVmSpec((await store.get(`${root}/vms/web1/spec`))!.data).state, 'stopped');
    await store.set(`${root}/vms/web1/spec`, (await store.get(`${root}/vms/web1/spec`))!.data.toString('utf8').replace('"stopped"', '"running"'), (await store.get(`${root}/vms/web1/spec`))!.version);
    await store.delete(`${root}/vms/web1/xml`, (await store.exists(`${root}/vms/web1/xml`))!.version);
    const missing = await vk('vm', 'stop', 'web1');
    assert.equal(missing.code, 0, missing.stderr);
    assert.equal(decodeVmSpec((await store.get(`${root}/vms/web1/spec`))!.data).state, 'stopped');
    const list = await vk('get', 'vms', '-o', 'wide');
    assert.equal(list.code, 0, list.stderr);
  });
});

describe('§2 and §5: apply refuses nodes that do not exist, and is all-or-nothing', () => {
  const root = '/unknown-nodes';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const applied = await vk('apply', '-f', manifestDir('unknown-nodes-base', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
  });

  const cases: Array<[string, string, RegExp]> = [
    ['spec.node', vmDoc('new1', 'hv9'), /new1\.yaml#2: spec\.node: invalid name "hv9": no such node in the cluster/],
    ['meta.nodeLimit', vmDoc('new1', 'hv1', '  meta: {nodeLimit: [hv1, hv7]}\n'), /new1\.yaml#2: spec\.meta\.nodeLimit\[1\]: invalid name "hv7": no such node in the cluster/],
  ];
  for (const [what, doc, message] of cases) {
    test(`an unknown node in ${what}: exit 2, the field and value named, nothing written (not even the document before it)`, async () => {
      const dir = manifestDir(`unknown-${what}`, { 'new1.yaml': `${vmDoc('ok1', 'hv1')}---\n${doc}` });
      const before = await snapshot(store, root);
      for (const verb of ['apply', 'diff', 'plan']) {
        const run = await vk(verb, '-f', dir);
        assert.equal(run.code, 2, `${verb}: ${run.stderr}`);
        assert.match(run.stderr, message);
      }
      assert.deepEqual(await snapshot(store, root), before);
    });
  }

  test('a node defined by a Node document of the same apply is known', async () => {
    const dir = manifestDir('unknown-defined', { 'a.yaml': `kind: Node\nmetadata: {name: hv3}\n---\n${vmDoc('new3', 'hv3')}` });
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 0, run.stderr);
  });

  test('apply writes every object in one transaction when it fits', async () => {
    const dir = manifestDir('one-multi', { 'a.yaml': `${vmDoc('m1', 'hv1')}---\n${vmDoc('m2', 'hv2')}` });
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 0, run.stderr);
    const [m1, m2] = await Promise.all([store.exists(`${root}/vms/m1/spec`), store.exists(`${root}/vms/m2/spec`)]);
    assert.equal(m1!.czxid, m2!.czxid, 'same zxid: one multi');
  });
});

describe('apply refuses coordinators that are nodes nowhere (FRR: a coordinator is a route reflector)', () => {
  const root = '/unknown-coordinators';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    // hv1 and hv2 are registered (Node documents here; a daemon's first start does the same).
    const applied = await vk('apply', '-f', manifestDir('coordinators-base', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
  });

  const config = (spec: string) => `kind: ClusterConfig\nmetadata: {name: cluster}\nspec:\n${spec}`;
  const configIn = async () => readJson(store, `${root}/config`);

  const refused: Array<[string, string, RegExp[]]> = [
    [
      'an unknown coordinator without bgp',
      config('  coordinators: [hv1, hv9]\n'),
      [/^.*c\.yaml#1: spec\.coordinators\[1\]: invalid name "hv9": no such node: not in spec\.nodes, and not in the cluster/],
    ],
    [
      'two unknown coordinators, one line each',
      config('  coordinators: [hv8, hv1, hv9]\n  nodes: {hv7: {clusterAddress: 192.0.2.7}}\n'),
      [/c\.yaml#1: spec\.coordinators\[0\]: invalid name "hv8": no such node/, /c\.yaml#1: spec\.coordinators\[2\]: invalid name "hv9": no such node/],
    ],
    [
      // The schema's own rule: with bgp a coordinator needs its clusterAddress in nodes, registered or not.
      'a registered coordinator missing from nodes when bgp is set',
      config('  coordinators: [hv1]\n  bgp: {asn: 65500}\n  nodes: {hv2: {clusterAddress: 192.0.2.2}}\n'),
      [/c\.yaml#1: spec\.coordinators\[0\]: invalid value "hv1": is not a node of nodes/],
    ],
  ];
  for (const [what, text, messages] of refused) {
    test(`${what}: apply, apply --dry-run, diff and plan exit 2 naming the field and value, nothing written`, async () => {
      const dir = manifestDir(`coordinators-${what.replace(/\W+/g, '-')}`, { 'c.yaml': text });
      const before = await snapshot(store, root);
      const runs = await Promise.all([vk('apply', '-f', dir), vk('apply', '--dry-run', '-f', dir), vk('diff', '-f', dir), vk('plan', '-f', dir)]);
      for (const [i, run] of runs.entries()) {
        const verb = ['apply', 'apply --dry-run', 'diff', 'plan'][i];
        assert.equal(run.code, 2, `${verb}: ${run.stdout}${run.stderr}`);
        const lines = errorLines(run);
        assert.equal(lines.length, messages.length, `${verb}: one line per bad coordinator: ${run.stderr}`);
        messages.forEach((message, j) => assert.match(lines[j]!, message, `${verb}`));
      }
      assert.deepEqual(await snapshot(store, root), before);
    });
  }

  test('a plan file with an unknown coordinator is refused by apply --plan too', async () => {
    const dir = manifestDir('coordinators-plan', { 'c.yaml': config('  coordinators: [hv1]\n') });
    const planFile = join(tmp, 'coordinators.plan.json');
    const planned = await vk('plan', '-f', dir, '--out', planFile);
    assert.ok(planned.code === 0 || planned.code === 1, planned.stderr);
    // The plan file is edited by hand to name a coordinator that exists nowhere.
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as { objects: Array<{ spec: { coordinators: string[] } }> };
    plan.objects[0]!.spec.coordinators = ['hv1', 'hv9'];
    writeFileSync(planFile, JSON.stringify(plan));
    const before = await snapshot(store, root);
    const run = await vk('apply', '--plan', planFile);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /spec\.coordinators\[1\]: invalid name "hv9": no such node/);
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('coordinators registered in ZooKeeper, listed in nodes, or defined by a Node document of the same apply are known', async () => {
    // Registered: hv1, hv2.
    let run = await vk('apply', '-f', manifestDir('coordinators-registered', { 'c.yaml': config('  coordinators: [hv1, hv2]\n') }));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((await configIn())!.coordinators, ['hv1', 'hv2']);
    // Listed in nodes only (its daemon has not started yet): hv3 is not registered, and need not be.
    run = await vk(
      'apply',
      '-f',
      manifestDir('coordinators-listed', {
        'c.yaml': config('  coordinators: [hv1, hv3]\n  bgp: {asn: 65500}\n  nodes: {hv1: {clusterAddress: 192.0.2.1}, hv3: {clusterAddress: 192.0.2.3}, hv5: {clusterAddress: 192.0.2.5}}\n'),
      }),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await store.exists(`${root}/nodes/hv3`), null, 'listing a node in the config does not register it');
    const written = await configIn();
    assert.deepEqual(written!.coordinators, ['hv1', 'hv3']);
    assert.deepEqual(written!.bgp, { asn: 65500, keepaliveS: 3, holdS: 9, connectRetryS: 5 });
    assert.deepEqual(written!.nodes, { hv1: { clusterAddress: '192.0.2.1' }, hv3: { clusterAddress: '192.0.2.3' }, hv5: { clusterAddress: '192.0.2.5' } });
    // Defined by a Node document of the same apply.
    run = await vk('apply', '-f', manifestDir('coordinators-defined', { 'c.yaml': `${config('  coordinators: [hv4]\n')}---\nkind: Node\nmetadata: {name: hv4}\n` }));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((await configIn())!.coordinators, ['hv4']);
    assert.ok(await store.exists(`${root}/nodes/hv4/spec`));
  });
});

describe('§5: domain XML size, nesting, YAML alias bombs', () => {
  const root = '/sizes';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const applied = await vk('apply', '-f', manifestDir('sizes-base', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
  });

  test('a 6 MB domain XML after a good document: exit 2 naming the limit, nothing written', async () => {
    const big = domainXml('huge1', `<description>${'x'.repeat(6 * 1024 * 1024)}</description>`);
    const dir = manifestDir('huge', { 'a.yaml': `${vmDoc('fine1', 'hv1')}---\nkind: VM\nmetadata: {name: huge1}\nspec:\n  node: hv1\n  xmlFile: huge1.xml\n`, 'huge1.xml': big });
    const before = await snapshot(store, root);
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /a\.yaml#2: spec\.xmlFile: .*larger than .*512 KiB/);
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('an inline XML over the limit, and vm define of one: exit 2', async () => {
    const big = domainXml('huge2', `<description>${'y'.repeat(600 * 1024)}</description>`);
    const dir = manifestDir('huge-inline', { 'a.yaml': `kind: VM\nmetadata: {name: huge2}\nspec:\n  node: hv1\n  xml: "${big}"\n` });
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /spec\.xml: .*larger than .*512 KiB/);
    const file = join(dir, 'huge2.xml');
    writeFileSync(file, big);
    const define = await vk('vm', 'define', file, '--node', 'hv1');
    assert.equal(define.code, 2, define.stderr);
    assert.equal(await store.exists(`${root}/vms/huge2`), null);
  });

  test('deeply nested XML: exit 2', async () => {
    const deep = domainXml('deep1', `<metadata>${'<a>'.repeat(1000)}${'</a>'.repeat(1000)}</metadata>`);
    const dir = manifestDir('deep', { 'a.yaml': `kind: VM\nmetadata: {name: deep1}\nspec:\n  node: hv1\n  xmlFile: deep1.xml\n`, 'deep1.xml': deep });
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /spec\.xmlFile: .*nested/);
  });

  test('a YAML alias bomb: exit 2', async () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const dir = manifestDir('bomb', { 'bomb.yaml': `kind: VM\nmetadata: {name: bomb}\nspec:\n  node: hv1\n  xml: x\n${lines.join('\n')}\n` });
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /bomb\.yaml#1: .*alias/i);
  });
});

describe('§5: xmlFile reads only regular files under the manifest directory, and never echoes them', () => {
  const root = '/xmlfile';
  let vk: Vk;
  const secret = 'root:$6$SECRET-HASH-LINE:19000:0:99999:7:::';
  before(async () => {
    vk = vkFor(server.connectString, root);
    const applied = await vk('apply', '-f', manifestDir('xmlfile-base', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
    writeFileSync(join(tmp, 'outside-secret'), `${secret}\n`);
  });

  const vmWithFile = (path: string) => `kind: VM\nmetadata: {name: peek}\nspec:\n  node: hv1\n  xmlFile: ${JSON.stringify(path)}\n`;

  for (const [what, path] of [
    ['an absolute path outside', join(tmp, 'outside-secret')],
    ['a relative path climbing out', '../outside-secret'],
    ['/etc/passwd', '/etc/passwd'],
  ] as const) {
    test(`${what}: exit 2, the content not echoed`, async () => {
      const dir = manifestDir(`xf-${what.replace(/\W+/g, '-')}`, { 'a.yaml': vmWithFile(path) });
      const run = await vk('apply', '-f', dir);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /spec\.xmlFile: .*outside the manifest's directory/);
      assert.doesNotMatch(run.stderr, /SECRET|root:/);
    });
  }

  test('a symlink inside the directory pointing outside: refused', async () => {
    const dir = manifestDir('xf-symlink', { 'a.yaml': vmWithFile('peek.xml') });
    symlinkSync(join(tmp, 'outside-secret'), join(dir, 'peek.xml'));
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.doesNotMatch(run.stderr, /SECRET|root:/);
  });

  test('a file inside that is not XML: exit 2, its content not echoed', async () => {
    const dir = manifestDir('xf-notxml', { 'a.yaml': vmWithFile('peek.xml'), 'peek.xml': `${secret}\n` });
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /spec\.xmlFile/);
    assert.doesNotMatch(run.stderr, /SECRET|root:/);
  });

  test('vk vm define of a file that is not XML: exit 2, its content not echoed', async () => {
    const run = await vk('vm', 'define', join(tmp, 'outside-secret'), '--node', 'hv1');
    assert.equal(run.code, 2, run.stderr);
    assert.doesNotMatch(run.stderr, /SECRET|root:/);
  });

  test('a device (a symlink to /dev/zero): refused at once, not read', async () => {
    const dir = manifestDir('xf-zero', { 'a.yaml': vmWithFile('zero.xml') });
    symlinkSync('/dev/zero', join(dir, 'zero.xml'));
    const run = await vk('apply', '-f', dir);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /spec\.xmlFile: /);
  });
});

describe('§5: exit codes', () => {
  const root = '/exit-codes';
  let vk: Vk;
  before(async () => {
    vk = vkFor(server.connectString, root);
    const applied = await vk('apply', '-f', manifestDir('exit-base', BASE_FILES));
    assert.equal(applied.code, 0, applied.stderr);
  });

  test('vk diff | head -1 still exits 1 on differences', () => {
    // Enough differing lines that diff's output overflows the pipe and meets the closed end.
    const many = Array.from({ length: 4000 }, (_, i) => `<!-- line ${i} of a long comment to make the diff big -->`).join('\n');
    const xml = `<domain type='test'><name>web1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>\n${many}\n</domain>`;
    const dir = manifestDir('exit-diff', { 'a.yaml': 'kind: VM\nmetadata: {name: web1}\nspec:\n  node: hv1\n  xmlFile: web1.xml\n', 'web1.xml': xml, 'c.yaml': CLUSTER });
    const env = { ...vk.env };
    const result = spawnSync('bash', ['-c', `"${process.execPath}" "${VK}" diff -f "${dir}" | head -1 >/dev/null; echo "exit=\${PIPESTATUS[0]}"`], { env, encoding: 'utf8' });
    assert.match(result.stdout, /exit=1/, result.stderr);
  });

  test("--zk '' is bad input, not localhost", async () => {
    const run = await vk('--zk', '', 'get', 'vms');
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--zk/);
  });
});

describe('§5: --auth secures znodes that someone created without ACLs', () => {
  const root = '/open-root';
  const files = () => manifestDir('auth-base', BASE_FILES);

  test('apply --auth on an open layout leaves nothing world-writable', async () => {
    // Another client made the layout and a VM's znodes, world-writable.
    for (const p of ['', '/vms', '/networks', '/nodes', '/locks', '/vms/web1']) await store.create(`${root}${p}`);
    await store.create(`${root}/schema`, '{"version":1}');
    const vk = vkFor(server.connectString, root);
    const run = await vk('--auth', 'admin:s3cret', 'apply', '-f', files());
    assert.equal(run.code, 0, run.stderr);
    for (const p of ['/vms', '/nodes', '/networks', '/vms/web1']) {
      await assert.rejects(store.create(`${root}${p}/intruder`), NoAuthError, `${root}${p} is no longer world-writable`);
    }
    await assert.rejects(store.set(`${root}/schema`, '{"version":1}', 0), NoAuthError, 'schema is no longer world-writable');
    const again = await vk('--auth', 'admin:s3cret', 'get', 'vms');
    assert.equal(again.code, 0, again.stderr);
  });

  test('apply --auth on a layout it cannot secure: refused with a clear message, nothing written', async () => {
    const other = await ZkStore.connect({ connectString: server.connectString, auth: { user: 'other', password: 'pw' }, acl: 'digest-world-read' });
    try {
      await other.create('/foreign-root');
      await other.create('/foreign-root/vms');
    } finally {
      await other.close();
    }
    const vk = vkFor(server.connectString, '/foreign-root');
    const before = await snapshot(store, '/foreign-root');
    const run = await vk('--auth', 'admin:s3cret', 'apply', '-f', files());
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /\/foreign-root.*ACL/);
    assert.doesNotMatch(run.stderr, /s3cret/);
    assert.deepEqual(await snapshot(store, '/foreign-root'), before);
  });
});
