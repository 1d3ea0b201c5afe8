// End to end: vk apply / diff / plan against a real ZooKeeper, running the real vk binary.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeVmSpec, encodeVmStatus, xmlHash } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { copyFixture, errorLines, fixture, readJson, snapshot, vkFor, type Vk } from './helpers.ts';

let server: ZkServer;
let store: ZkStore;

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
});

after(async () => {
  await store?.close();
  await server?.cleanup();
});

const BASIC = fixture('basic');
const WEB1_XML = readFileSync(fixture('basic', 'web1.xml'), 'utf8');

describe('vk apply and vk diff', () => {
  const root = '/apply';
  let vk: Vk;
  before(() => {
    vk = vkFor(server.connectString, root);
  });

  test('apply --dry-run prints what it would do and writes nothing', async () => {
    const run = await vk('apply', '-f', BASIC, '--dry-run');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.trimEnd().split('\n'), [
      'clusterconfig/cluster created (dry run)',
      'network/100 created (dry run)',
      'node/hv1 created (dry run)',
      'node/hv3 created (dry run)',
      'node/hv2 created (dry run)',
      'vm/web1 created (dry run)',
      'vm/db1 created (dry run)',
    ]);
    assert.equal(await store.exists(root), null, 'not even the base layout is created');
  });

  test('apply creates the base layout and every object; diff then exits 0', async () => {
    const run = await vk('apply', '-f', BASIC);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^vm\/web1 created$/m);
    assert.match(run.stdout, /^vm\/db1 created$/m);
    assert.match(run.stdout, /^network\/100 created$/m);

    assert.deepEqual(await readJson(store, `${root}/schema`), { version: 2 });
    for (const p of ['vms', 'networks', 'nodes', 'locks']) assert.ok(await store.exists(`${root}/${p}`), p);
    const web1 = decodeVmSpec((await store.get(`${root}/vms/web1/spec`))!.data);
    assert.equal(web1.node, 'hv1');
    assert.deepEqual(web1.meta.nodeLimit, ['hv1', 'hv2', 'hv3']);
    assert.equal(web1.meta.nodeSelector, 'mem');
    assert.equal((await store.get(`${root}/vms/web1/xml`))!.data.toString('utf8'), WEB1_XML, 'xmlFile is read relative to the manifest');
    assert.equal(decodeVmSpec((await store.get(`${root}/vms/db1/spec`))!.data).state, 'stopped');
    assert.equal((await readJson(store, `${root}/networks/100/spec`))!.gateway4, '10.100.0.1/24');
    assert.equal((await readJson(store, `${root}/config`))!.defaultNodeSelector, 'vms');
    assert.deepEqual(await readJson(store, `${root}/nodes/hv2/spec`), { domainState: 'ready' });

    const diff = await vk('diff', '-f', BASIC);
    assert.equal(diff.code, 0, diff.stderr + diff.stdout);
    assert.equal(diff.stdout, '');
  });

  test('a second apply reports everything unchanged and writes nothing', async () => {
    const before = await snapshot(store, root);
    const run = await vk('apply', '-f', BASIC);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 7);
    for (const line of lines) assert.match(line, / unchanged$/);
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('an edited manifest: diff exits 1 showing the field, writes nothing; apply configures only what changed', async () => {
    const copy = copyFixture('basic');
    try {
      const file = join(copy.dir, 'vms.yaml');
      writeFileSync(file, readFileSync(file, 'utf8').replace('nodeSelector: mem', 'nodeSelector: vcpus').replace('node: hv1', 'node: hv2'));
      writeFileSync(join(copy.dir, 'web1.xml'), WEB1_XML.replace('<vcpu>1</vcpu>', '<vcpu>2</vcpu>'));
      const before = await snapshot(store, root);
      const diff = await vk('diff', '-f', copy.dir);
      assert.equal(diff.code, 1, diff.stderr);
      assert.match(diff.stdout, /^--- live\/vm\/web1\/spec$/m);
      assert.match(diff.stdout, /^\+\+\+ manifest\/vm\/web1\/spec$/m);
      assert.match(diff.stdout, /^-  nodeSelector: mem$/m);
      assert.match(diff.stdout, /^\+  nodeSelector: vcpus$/m);
      assert.match(diff.stdout, /^-node: hv1$/m);
      assert.match(diff.stdout, /^\+node: hv2$/m);
      assert.match(diff.stdout, /^-  <vcpu>1<\/vcpu>$/m);
      assert.match(diff.stdout, /^\+  <vcpu>2<\/vcpu>$/m);
      assert.doesNotMatch(diff.stdout, /db1|network\/100/, 'unchanged objects are not shown');
      assert.doesNotMatch(diff.stdout, /\u001b\[/, 'no colour when stdout is not a TTY');
      assert.deepEqual(await snapshot(store, root), before, 'diff writes nothing');

      // Operational state set by verbs survives an apply that does not mention it.
      const restart = await vk('vm', 'restart', 'web1');
      assert.equal(restart.code, 0, restart.stderr);
      const migrate = await vk('vm', 'migrate', 'web1', '--node', 'hv2');
      assert.equal(migrate.code, 0, migrate.stderr);
      const restartedAt = decodeVmSpec((await store.get(`${root}/vms/web1/spec`))!.data).restartedAt;
      assert.ok(restartedAt);
      const versionBefore = (await store.get(`${root}/vms/web1/spec`))!.version;

      const apply = await vk('apply', '-f', copy.dir);
      assert.equal(apply.code, 0, apply.stderr);
      assert.match(apply.stdout, /^vm\/web1 configured$/m);
      assert.match(apply.stdout, /^vm\/db1 unchanged$/m);
      const spec = await store.get(`${root}/vms/web1/spec`);
      assert.equal(spec!.version, versionBefore + 1, 'one write of the spec');
      assert.equal(decodeVmSpec(spec!.data).meta.nodeSelector, 'vcpus');
      assert.equal(decodeVmSpec(spec!.data).restartedAt, restartedAt, 'restartedAt kept');
      assert.equal(decodeVmSpec(spec!.data).previousNode, 'hv1', 'previousNode kept');
      assert.equal(decodeVmSpec(spec!.data).node, 'hv2');
      assert.match((await store.get(`${root}/vms/web1/xml`))!.data.toString('utf8'), /<vcpu>2<\/vcpu>/);
      const again = await vk('diff', '-f', copy.dir);
      assert.equal(again.code, 0, again.stdout);
    } finally {
      copy.cleanup();
    }
    // Back to the fixture for the tests below.
    assert.equal((await vk('apply', '-f', BASIC)).code, 0);
  });

  test('bad input: exit 2, one error line naming the document and field, nothing written', async () => {
    const cases: Array<[string, RegExp]> = [
      ['malformed-xml.yaml', /malformed-xml\.yaml#1: spec\.xmlFile: .*malformed XML at line 5/],
      ['name-mismatch.yaml', /name-mismatch\.yaml#1: spec\.xml\/domain\/name: .*"other".*must equal the VM name "bad2"/],
      ['unknown-kind.yaml', /unknown-kind\.yaml#1: kind: .*"Pod"/],
      ['unknown-field.yaml', /unknown-field\.yaml#1: spec\.colour: unknown field "colour"/],
      ['invalid-name.yaml', /invalid-name\.yaml#1: metadata\.name: invalid name "HV_1"/],
      ['node-outside-limit.yaml', /node-outside-limit\.yaml#1: spec\.node: invalid name "hv3": not in meta\.nodeLimit/],
      ['duplicate-name.yaml', /duplicate-name\.yaml#2: metadata\.name: .*"twin".*duplicate VM name: also defined in .*duplicate-name\.yaml#1/],
      ['duplicate-uuid.yaml', /duplicate-uuid\.yaml#2: spec\.xml\/domain\/uuid: .*duplicate UUID: VM "uno"/],
      // web1 (applied above) already holds this UUID.
      ['uuid-taken.yaml', /uuid-taken\.yaml#1: spec\.xml\/domain\/uuid: .*duplicate UUID: VM "web1" in the cluster already has it/],
    ];
    const before = await snapshot(store, root);
    const runs = await Promise.all(cases.map(([file]) => vk('apply', '-f', fixture('bad', file))));
    runs.forEach((run, i) => {
      const [file, pattern] = cases[i]!;
      assert.equal(run.code, 2, `${file}: ${run.stderr}`);
      assert.equal(run.stdout, '', file);
      const lines = errorLines(run);
      assert.equal(lines.length, 1, `${file}: ${run.stderr}`);
      assert.match(lines[0]!, /^vk: /, file);
      assert.match(lines[0]!, pattern, file);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    });
    // A directory with good documents and one bad one: nothing of it is written.
    const dir = await vk('apply', '-f', fixture('bad-dir'));
    assert.equal(dir.code, 2, dir.stderr);
    assert.deepEqual(errorLines(dir).length, 1, dir.stderr);
    assert.match(dir.stderr, /bad-dir\/sub\/b-bad\.yml#2: spec\.state: invalid value "sleeping"/);
    assert.equal(dir.stdout, '');
    // diff and plan refuse bad input the same way.
    const diff = await vk('diff', '-f', fixture('bad', 'unknown-field.yaml'));
    assert.equal(diff.code, 2);
    assert.deepEqual(await snapshot(store, root), before, 'nothing written by any of them');
    for (const p of ['networks/400', 'nodes/hv4', 'nodes/hv5', 'vms/good5', 'vms/bad4', 'vms/uno', 'vms/impostor']) {
      assert.equal(await store.exists(`${root}/${p}`), null, p);
    }
  });

  test('usage errors and runtime errors', async () => {
    const missing = await vk('apply', '-f', fixture('no-such-dir'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^vk: .*no-such-dir: no such file or directory\n$/);
    assert.equal((await vk('apply')).code, 2, 'apply needs -f or --plan');
    assert.equal((await vk('diff')).code, 2, 'diff needs -f');
    // ZooKeeper unreachable: exit 1 with a readable line (diff: > 1), no stack trace.
    const down = vkFor('127.0.0.1:1', root);
    const [get, diff] = await Promise.all([down('get', 'vms', '--connect-timeout', '1'), down('diff', '-f', BASIC, '--connect-timeout', '1')]);
    assert.equal(get.code, 1, get.stderr);
    assert.match(get.stderr, /^vk: cannot reach ZooKeeper at 127\.0\.0\.1:1/);
    assert.equal(errorLines(get).length, 1, get.stderr);
    assert.equal(diff.code, 3, diff.stderr);
  });
});

describe('vk plan', () => {
  const root = '/plan';
  let vk: Vk;
  const converged = async (vm: string, node: string, phase: 'Running' | 'Stopped') => {
    const spec = await store.get(`${root}/vms/${vm}/spec`);
    const xml = (await store.get(`${root}/vms/${vm}/xml`))!.data.toString('utf8');
    const now = new Date().toISOString();
    const running = phase === 'Running';
    const status = encodeVmStatus({
      phase,
      node,
      observedGeneration: spec!.version,
      domainState: running ? 'running' : 'shutoff',
      xmlHash: xmlHash(xml),
      conditions: [
        { type: 'Running', status: running ? 'True' : 'False', reason: running ? 'DomainRunning' : 'StoppedBySpec', message: 'test', lastTransitionTime: now },
      ],
      updatedAt: now,
    });
    const existing = await store.get(`${root}/vms/${vm}/status`);
    if (existing) await store.set(`${root}/vms/${vm}/status`, status, existing.version);
    else await store.create(`${root}/vms/${vm}/status`, status);
  };

  before(async () => {
    vk = vkFor(server.connectString, root);
    assert.equal((await vk('apply', '-f', BASIC)).code, 0);
  });

  test('exit 1 with actions per node; exit 0 once the statuses say the cluster is converged', async () => {
    const fresh = await vk('plan');
    assert.equal(fresh.code, 1, fresh.stderr);
    assert.match(fresh.stdout, /^hv1:\n {2}web1 define \(not defined here\)\n {2}web1 start$/m);
    assert.match(fresh.stdout, /^hv2:\n {2}db1 define/m);

    await converged('web1', 'hv1', 'Running');
    await converged('db1', 'hv2', 'Stopped');
    const idle = await vk('plan');
    assert.equal(idle.code, 0, idle.stdout + idle.stderr);
    assert.match(idle.stdout, /No changes/);
    const json = await vk('plan', '-o', 'json');
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout).actions, []);
  });

  test('a stop and a migration show as the nodes would do them; -f plans the manifests in memory', async () => {
    const before = await snapshot(store, root);
    const copy = copyFixture('basic');
    try {
      const file = join(copy.dir, 'vms.yaml');
      writeFileSync(file, readFileSync(file, 'utf8').replace('node: hv1', 'node: hv2').replace('state: stopped', 'state: running'));
      const run = await vk('plan', '-f', copy.dir, '-o', 'json');
      assert.equal(run.code, 1, run.stderr);
      const plan = JSON.parse(run.stdout) as { zxid: string; actions: Array<Record<string, unknown>> };
      assert.match(plan.zxid, /^[1-9][0-9]*$/);
      assert.deepEqual(
        plan.actions.map((a) => [a.node, a.vm, a.action, a.to]),
        [
          ['hv1', 'web1', 'migrate', 'hv2'],
          ['hv2', 'db1', 'start', undefined],
        ],
      );
      const text = await vk('plan', '-f', copy.dir);
      assert.match(text.stdout, /^hv1:\n {2}web1 migrate hv1 → hv2 \(method default\)$/m);
      assert.match(text.stdout, /^would apply: vm\/web1 configured$/m);
      assert.deepEqual(await snapshot(store, root), before, 'plan -f writes nothing');
    } finally {
      copy.cleanup();
    }
    const stop = await vk('vm', 'stop', 'web1');
    assert.equal(stop.code, 0, stop.stderr);
    const run = await vk('plan', '-o', 'json');
    assert.equal(run.code, 1);
    assert.deepEqual(
      (JSON.parse(run.stdout) as { actions: Array<Record<string, unknown>> }).actions.map((a) => [a.node, a.vm, a.action]),
      [['hv1', 'web1', 'destroy']],
      'stop is forced: destroy',
    );
    assert.equal((await vk('vm', 'start', 'web1')).code, 0);
  });

  test('apply --plan refuses a stale plan (exit 2, nothing written) and applies a fresh one', async () => {
    const copy = copyFixture('basic');
    try {
      const file = join(copy.dir, 'vms.yaml');
      writeFileSync(file, readFileSync(file, 'utf8').replace('nodeSelector: mem', 'nodeSelector: load'));
      const planFile = join(copy.dir, 'plan.out');
      const made = await vk('plan', '-f', copy.dir, '--out', planFile);
      assert.ok(made.code === 0 || made.code === 1, made.stderr);
      const saved = JSON.parse(readFileSync(planFile, 'utf8')) as { zxid: string; objects: unknown[] };
      assert.equal(saved.objects.length, 7, 'the plan carries the objects to write');

      // An unrelated spec change after the plan makes it stale.
      assert.equal((await vk('vm', 'meta', 'db1', '--autostart')).code, 0);
      const before = await snapshot(store, root);
      const stale = await vk('apply', '--plan', planFile);
      assert.equal(stale.code, 2, stale.stderr);
      assert.equal(errorLines(stale).length, 1, stale.stderr);
      assert.match(stale.stderr, /^vk: the plan is stale: .*after the plan was made \(zxid \d+\); run vk plan again$/m);
      assert.deepEqual(await snapshot(store, root), before, 'a stale plan writes nothing');

      const again = await vk('plan', '-f', copy.dir, '--out', planFile);
      assert.ok(again.code === 0 || again.code === 1, again.stderr);
      const applied = await vk('apply', '--plan', planFile);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /^vm\/web1 configured$/m);
      assert.match(applied.stdout, /^vm\/db1 configured$/m, 'db1 goes back to the manifest (autostart false)');
      assert.equal(decodeVmSpec((await store.get(`${root}/vms/web1/spec`))!.data).meta.nodeSelector, 'load');
      assert.equal(decodeVmSpec((await store.get(`${root}/vms/db1/spec`))!.data).meta.autostart, false);

      // Applying it twice: the plan's own writes made it stale.
      const twice = await vk('apply', '--plan', planFile);
      assert.equal(twice.code, 2, twice.stderr);
    } finally {
      copy.cleanup();
    }
  });
});
