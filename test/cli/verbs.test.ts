// End to end: the imperative verbs (vk vm …, vk node …, vk network …), --wait against statuses a
// stand-in daemon writes, get/describe, console logs. Real vk binary, real ZooKeeper.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import {
  decodeNodeSpec,
  decodeNodeStatus,
  decodeVmSpec,
  encodeMigrationRecord,
  encodeNodeStatus,
  encodeVmStatus,
  type NodeStatusInput,
  type VmSpec,
  type VmStatusInput,
} from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { errorLines, fixture, snapshot, vkFor, type Vk } from './helpers.ts';

const root = '/verbs';
let server: ZkServer;
let store: ZkStore;
let vk: Vk;

async function put(path: string, data: string): Promise<void> {
  const existing = await store.get(path);
  if (existing) await store.set(path, data, existing.version);
  else await store.create(path, data, { parents: true });
}

async function spec(vm: string): Promise<VmSpec & { version: number }> {
  const node = await store.get(`${root}/vms/${vm}/spec`);
  assert.ok(node, `vm ${vm} has a spec`);
  return { ...decodeVmSpec(node.data), version: node.version };
}

function nodeStatus(over: Partial<NodeStatusInput> & { freeMiB?: number; provisionedMiB?: number } = {}): string {
  const { freeMiB = 4000, provisionedMiB = 1000, ...rest } = over;
  return encodeNodeStatus({
    daemonState: 'run',
    domainState: 'ready',
    memory: { totalMiB: 8000, usedMiB: 8000 - freeMiB, freeMiB, allocatedMiB: provisionedMiB, provisionedMiB },
    vcpus: { total: 16, allocated: 2 },
    load: 0.5,
    runningVms: [],
    keepaliveAt: new Date().toISOString(),
    version: 'test',
    conditions: [],
    ...rest,
  });
}

function vmStatus(over: Partial<VmStatusInput> & { node: string; observedGeneration: number }): string {
  const now = new Date().toISOString();
  return encodeVmStatus({ phase: 'Running', conditions: [], updatedAt: now, ...over });
}

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  vk = vkFor(server.connectString, root);
  const applied = await vk('apply', '-f', fixture('basic'));
  assert.equal(applied.code, 0, applied.stderr);
  // Four nodes with daemons "alive" (ephemerals of this test's session). web1 (selector mem,
  // limit hv1-hv3) is on hv1; by free memory counting provisioned memory hv3 beats hv2, and
  // hv4 beats both but is outside the limit.
  const nodes: Array<[string, Partial<NodeStatusInput> & { provisionedMiB?: number }]> = [
    ['hv1', { provisionedMiB: 500, runningVms: ['web1'] }],
    ['hv2', { provisionedMiB: 6000, runningVms: ['x'], load: 0.1 }],
    ['hv3', { provisionedMiB: 1000, runningVms: ['x', 'y', 'z'], load: 3 }],
    ['hv4', { provisionedMiB: 0 }],
  ];
  for (const [name, status] of nodes) {
    await put(`${root}/nodes/${name}/status`, nodeStatus(status));
    await store.create(`${root}/nodes/${name}/alive`, '', { mode: 'ephemeral' });
  }
});

after(async () => {
  await store?.close();
  await server?.cleanup();
});

describe('vk vm migrate / move / unmigrate', () => {
  test('migrate sets node and previousNode; a second migrate needs --force, which keeps the original previousNode', async () => {
    const first = await vk('vm', 'migrate', 'web1', '--node', 'hv2');
    assert.equal(first.code, 0, first.stderr);
    let s = await spec('web1');
    assert.equal(s.node, 'hv2');
    assert.equal(s.previousNode, 'hv1');

    const refused = await vk('vm', 'migrate', 'web1', '--node', 'hv3');
    assert.equal(refused.code, 1);
    assert.equal(errorLines(refused).length, 1, refused.stderr);
    assert.match(refused.stderr, /vm web1 is already migrated \(from hv1\); use --force/);
    assert.equal((await spec('web1')).version, s.version, 'nothing written');

    const forced = await vk('vm', 'migrate', 'web1', '--node', 'hv3', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    s = await spec('web1');
    assert.equal(s.node, 'hv3');
    assert.equal(s.previousNode, 'hv1', 'the original previous node is kept');

    const back = await vk('vm', 'unmigrate', 'web1');
    assert.equal(back.code, 0, back.stderr);
    s = await spec('web1');
    assert.equal(s.node, 'hv1');
    assert.equal(s.previousNode, undefined);

    const notMigrated = await vk('vm', 'unmigrate', 'web1');
    assert.equal(notMigrated.code, 1);
    assert.match(notMigrated.stderr, /^vk: vm web1 is not migrated/);
  });

  test('without --node the selector chooses within the node limit; move is permanent', async () => {
    const auto = await vk('vm', 'migrate', 'web1');
    assert.equal(auto.code, 0, auto.stderr);
    let s = await spec('web1');
    assert.equal(s.node, 'hv3', 'mem: most free memory counting provisioned; hv4 is outside the limit');
    assert.equal(s.previousNode, 'hv1');

    const move = await vk('vm', 'move', 'web1', '--node', 'hv2');
    assert.equal(move.code, 0, move.stderr);
    s = await spec('web1');
    assert.equal(s.node, 'hv2');
    assert.equal(s.previousNode, undefined, 'move clears the previous node');

    const outside = await vk('vm', 'migrate', 'web1', '--node', 'hv4');
    assert.equal(outside.code, 2, outside.stderr);
    assert.equal(errorLines(outside).length, 1, outside.stderr);
    assert.match(outside.stderr, /^vk: vm web1: spec\.node: invalid name "hv4": not in meta\.nodeLimit \["hv1","hv2","hv3"\]$/m);
    const unknown = await vk('vm', 'migrate', 'web1', '--node', 'hv9');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--node: no node "hv9"/);
    assert.equal((await spec('web1')).version, s.version, 'refusals write nothing');

    assert.equal((await vk('vm', 'move', 'web1', '--node', 'hv1')).code, 0);
  });

  test('--force-live records migrationMethod live', async () => {
    const run = await vk('vm', 'migrate', 'db1', '--node', 'hv1', '--force-live');
    assert.equal(run.code, 0, run.stderr);
    const s = await spec('db1');
    assert.equal(s.node, 'hv1');
    assert.equal(s.previousNode, 'hv2');
    assert.equal(s.meta.migrationMethod, 'live');
    assert.match(run.stdout, /migrationMethod is now live/);
    assert.equal((await vk('vm', 'unmigrate', 'db1')).code, 0);
    assert.equal((await vk('vm', 'meta', 'db1', '--method', 'default')).code, 0);
  });
});

describe('vk vm define and meta', () => {
  test('--node outside --limit and a UUID already in the cluster: exit 2, one line, nothing written', async () => {
    const before = await snapshot(store, root);
    const [outside, clone] = await Promise.all([
      vk('vm', 'define', fixture('define', 'app1.xml'), '--node', 'hv4', '--limit', 'hv2,hv3'),
      vk('vm', 'define', fixture('define', 'clone-of-web1.xml'), '--node', 'hv1'),
    ]);
    assert.equal(outside.code, 2, outside.stderr);
    assert.equal(errorLines(outside).length, 1, outside.stderr);
    assert.match(outside.stderr, /^vk: vm app1: spec\.node: invalid name "hv4": not in meta\.nodeLimit \["hv2","hv3"\]\n$/);
    assert.equal(clone.code, 2, clone.stderr);
    assert.equal(errorLines(clone).length, 1, clone.stderr);
    assert.match(clone.stderr, /clone-of-web1\.xml\/domain\/uuid: duplicate UUID .*"web1"/);
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('define takes the name from the XML and picks the node with the selector; meta edits the metadata', async () => {
    const run = await vk('vm', 'define', fixture('define', 'app1.xml'), '--limit', 'hv2,hv3', '--selector', 'vms', '--no-autostart', '--max-downtime', '500');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^vm\/app1 defined on hv2$/m, 'vms: hv2 runs fewer VMs than hv3');
    let s = await spec('app1');
    assert.deepEqual([s.node, s.state, s.meta.nodeLimit, s.meta.nodeSelector, s.meta.maxDowntimeMs], ['hv2', 'running', ['hv2', 'hv3'], 'vms', 500]);
    assert.match((await store.get(`${root}/vms/app1/xml`))!.data.toString('utf8'), /<name>app1<\/name>/);

    const again = await vk('vm', 'define', fixture('define', 'app1.xml'), '--node', 'hv2');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /vm app1 already exists/);

    const meta = await vk('vm', 'meta', 'app1', '--autostart', '--method', 'shutdown', '--limit', 'hv1,hv2');
    assert.equal(meta.code, 0, meta.stderr);
    assert.match(meta.stdout, /^vm\/app1 configured$/m);
    s = await spec('app1');
    assert.deepEqual([s.meta.autostart, s.meta.migrationMethod, s.meta.nodeLimit], [true, 'shutdown', ['hv1', 'hv2']]);
    const same = await vk('vm', 'meta', 'app1', '--autostart');
    assert.match(same.stdout, /^vm\/app1 unchanged$/m);
    assert.equal((await spec('app1')).version, s.version);
    const bad = await vk('vm', 'meta', 'app1', '--limit', 'hv3');
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /spec\.node: invalid name "hv2": not in meta\.nodeLimit \["hv3"\]/);
    const badFlag = await vk('vm', 'meta', 'app1', '--selector', 'fastest');
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /--selector.*fastest/);
  });
});

describe('--wait follows the status', () => {
  test('start --wait finishes when the node reports Running at the new generation', async () => {
    assert.equal((await vk('vm', 'stop', 'db1')).code, 0);
    const s0 = await spec('db1');
    // A forced stop is a property of this stop (forceStopAt), never of the VM (stopMode stays).
    assert.deepEqual([s0.state, s0.stopMode], ['stopped', 'graceful']);
    assert.ok(s0.forceStopAt && Date.now() - Date.parse(s0.forceStopAt) < 60_000, `forceStopAt ${s0.forceStopAt}`);
    await put(`${root}/vms/db1/status`, vmStatus({ node: 'hv2', phase: 'Stopped', observedGeneration: s0.version }));

    const waiting = vk.start('vm', 'start', 'db1', '--wait', '--timeout', '30');
    await waiting.until(/vm\/db1 started/);
    await waiting.until(/waiting for generation/);
    const s1 = await spec('db1');
    assert.equal(s1.state, 'running');
    assert.equal(s1.stopMode, 'graceful', 'vk vm start leaves the standing stop mode as it was');
    await put(`${root}/vms/db1/status`, vmStatus({ node: 'hv2', phase: 'Running', observedGeneration: s1.version }));
    const run = await waiting.done;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /vm\/db1 started: Running on hv2\n$/);
  });

  test('a Failed status ends the wait with its condition message; a timeout ends it too', async () => {
    const waiting = vk.start('vm', 'restart', 'db1', '--wait', '--timeout', '30');
    await waiting.until(/restart requested/);
    const s = await spec('db1');
    assert.ok(s.restartedAt);
    const now = new Date().toISOString();
    await put(
      `${root}/vms/db1/status`,
      vmStatus({
        node: 'hv2',
        phase: 'Failed',
        observedGeneration: s.version,
        conditions: [
          { type: 'Running', status: 'False', reason: 'StartFailed', message: 'boom: disk missing', lastTransitionTime: now },
          { type: 'StartFailed', status: 'True', reason: 'StartFailed', message: 'boom: disk missing', lastTransitionTime: now },
        ],
      }),
    );
    const failed = await waiting.done;
    assert.equal(failed.code, 1, failed.stdout);
    assert.equal(errorLines(failed).length, 1, failed.stderr);
    assert.match(failed.stderr, /^vk: vm db1 failed on hv2: StartFailed: boom: disk missing$/m);

    const before = await spec('db1');
    const timeout = await vk('vm', 'shutdown', 'db1', '--wait', '--timeout', '1');
    assert.equal(timeout.code, 1);
    assert.match(timeout.stderr, /^vk: timed out after 1s waiting for vm\/db1/);
    const shut = await spec('db1');
    assert.equal(shut.stopMode, 'graceful', 'shutdown is graceful');
    assert.equal(shut.forceStopAt, before.forceStopAt, 'shutdown asks for no forced stop');
  });

  test('node flush --wait finishes when the node reports flushed; ready sets the spec back', async () => {
    const waiting = vk.start('node', 'flush', 'hv3', '--wait', '--timeout', '30');
    await waiting.until(/node\/hv3 flush requested/);
    assert.equal(decodeNodeSpec((await store.get(`${root}/nodes/hv3/spec`))!.data).domainState, 'flushed');
    await waiting.until(/node\/hv3: ready, 3 VMs running there/);
    await put(`${root}/nodes/hv3/status`, nodeStatus({ domainState: 'flushed', runningVms: [] }));
    const run = await waiting.done;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /node\/hv3 flushed\n$/);

    const ready = await vk('node', 'ready', 'hv3');
    assert.equal(ready.code, 0, ready.stderr);
    assert.equal(decodeNodeSpec((await store.get(`${root}/nodes/hv3/spec`))!.data).domainState, 'ready');
    const missing = await vk('node', 'flush', 'hv9');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /node hv9 not found/);
  });
});

describe('vk get, describe, log', () => {
  test('get vms / nodes / networks in table, wide and json', async () => {
    // hv3's simulated daemon keeps its keepalive fresh (older than keepaliveDeadAfterMs, ALIVE reads "stale").
    await put(`${root}/nodes/hv3/status`, nodeStatus({ domainState: 'flushed', runningVms: [] }));
    const [vms, wide, json, nodes, networks] = await Promise.all([
      vk('get', 'vms'),
      vk('get', 'vms', '-o', 'wide'),
      vk('get', 'vms', '-o', 'json'),
      vk('get', 'nodes'),
      vk('get', 'networks', '-o', 'wide'),
    ]);
    for (const r of [vms, wide, json, nodes, networks]) assert.equal(r.code, 0, r.stderr);
    assert.match(vms.stdout, /^NAME +NODE +STATE +PHASE +PREVIOUS$/m);
    assert.match(vms.stdout, /^web1 +hv1 +running +- +-$/m);
    assert.match(vms.stdout, /^db1 +hv2 +stopped +Failed +-$/m);
    assert.match(wide.stdout, /^NAME +NODE +STATE +PHASE +PREVIOUS +LIMIT +SELECTOR +AUTOSTART +METHOD +NETWORKS$/m);
    assert.match(wide.stdout, /^web1 +hv1 +running +- +- +hv1,hv2,hv3 +mem +no +default +100$/m);
    assert.match(wide.stdout, /^db1 .* 100,vkbr999\(invalid\)$/m, 'a bridge with no network is flagged');
    const list = JSON.parse(json.stdout) as Array<{ name: string; spec: VmSpec; status: { phase: string } | null }>;
    assert.deepEqual(list.map((v) => v.name), ['app1', 'db1', 'web1']);
    assert.equal(list[1]!.status!.phase, 'Failed');
    assert.match(nodes.stdout, /^hv3 +yes +ready +flushed +run +0 /m);
    assert.match(networks.stdout, /^100 +managed +1450 +vkbr100 +0\/4 +- +frontend +10\.100\.0\.1\/24 +- +- +app1,db1,web1$/m);
  });

  test('describe vm shows spec, status, conditions, migration and the last 10 console lines', async () => {
    const s = await spec('app1');
    const now = new Date().toISOString();
    await put(
      `${root}/vms/app1/status`,
      vmStatus({
        node: 'hv2',
        phase: 'Migrating',
        observedGeneration: s.version,
        domainState: 'running',
        conditions: [{ type: 'Running', status: 'True', reason: 'DomainRunning', message: 'running on hv2', lastTransitionTime: now }],
      }),
    );
    await put(
      `${root}/vms/app1/migration`,
      encodeMigrationRecord({ id: 'mig-1', source: 'hv2', target: 'hv1', method: 'live', phase: 'copying', startedAt: now }),
    );
    await put(`${root}/vms/app1/console`, Array.from({ length: 15 }, (_, i) => `line ${i + 1}`).join('\n'));
    const run = await vk('describe', 'vm', 'app1');
    assert.equal(run.code, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /^UUID: +6f1d2c3a-0b1e-4c55-9a51-1d2e3f4a5b71$/m);
    assert.match(out, /^Networks: +100 \(vkbr100\)$/m);
    assert.match(out, /^ {4}nodeSelector: vms$/m);
    assert.match(out, /^ {2}Phase: +Migrating$/m);
    assert.match(out, /Running +True +DomainRunning +\S+ +running on hv2/);
    assert.match(out, /^ {2}Route: +hv2 → hv1$/m);
    assert.match(out, /^ {2}Phase: +copying$/m);
    assert.match(out, /^Console \(last 10 lines\):\n {2}line 6\n[\s\S]* {2}line 15$/m);
    assert.doesNotMatch(out, /^ {2}line 5$/m);

    // hv1's simulated daemon keeps its keepalive fresh (older than keepaliveDeadAfterMs, it reads "stale").
    await put(`${root}/nodes/hv1/status`, nodeStatus({ provisionedMiB: 500, runningVms: ['web1'] }));
    const [node, network, missing] = await Promise.all([vk('describe', 'node', 'hv1'), vk('describe', 'network', '100'), vk('describe', 'vm', 'nope')]);
    assert.equal(node.code, 0, node.stderr);
    assert.match(node.stdout, /^Alive: +yes/m);
    assert.match(node.stdout, /^VMs assigned: +web1$/m);
    assert.match(network.stdout, /^VMs: +app1, db1, web1$/m);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'vk: vm nope not found\n');
  });

  test('get nodes shows BGP sessions up (FRR state in wide); describe node has an FRR section; json carries status.frr', async () => {
    const now = new Date().toISOString();
    const frr: Record<string, NonNullable<NodeStatusInput['frr']> | undefined> = {
      hv1: undefined,
      hv2: {
        state: 'InSync',
        asn: 65500,
        routerId: '192.0.2.2',
        reloads: 3,
        lastReloadAt: '2026-01-02T03:04:05.000Z',
        lastDrift: { at: '2026-01-02T03:00:00.000Z', lines: ['-router bgp 65500', '+ neighbor fabric peer-group'] },
        peers: [
          { address: '192.0.2.1', node: 'hv1', state: 'Established', prefixesReceived: 4 },
          { address: '192.0.2.3', node: 'hv3', state: 'Established', prefixesReceived: 0 },
        ],
        vnis: [
          { vni: 100, remoteVteps: ['192.0.2.1', '192.0.2.3'] },
          { vni: 200, remoteVteps: [] },
        ],
        updatedAt: now,
      },
      hv3: {
        state: 'ReloadFailed',
        message: 'frr-reload.py --reload exited 1: line 7: % Unknown command',
        asn: 65500,
        routerId: '192.0.2.3',
        reloads: 1,
        peers: [
          { address: '192.0.2.2', node: 'hv2', state: 'Established', prefixesReceived: 2 },
          { address: '192.0.2.99', state: 'Active', prefixesReceived: 0 },
        ],
        vnis: [],
        updatedAt: now,
      },
      hv4: { state: 'NotConfigured', message: 'no bgp in the cluster config', reloads: 0, peers: [], vnis: [], updatedAt: now },
    };
    // Only frr changes: the rest of each node's status stays as the other tests left it.
    for (const [name, value] of Object.entries(frr)) {
      const current = await store.get(`${root}/nodes/${name}/status`);
      assert.ok(current, `${name} has a status`);
      const { frr: _old, ...rest } = decodeNodeStatus(current.data);
      await put(`${root}/nodes/${name}/status`, encodeNodeStatus(value ? { ...rest, frr: value } : rest));
    }
    const [plain, wide, json] = await Promise.all([vk('get', 'nodes'), vk('get', 'nodes', '-o', 'wide'), vk('get', 'nodes', '-o', 'json')]);
    for (const r of [plain, wide, json]) assert.equal(r.code, 0, r.stderr);
    assert.match(plain.stdout, /^NAME +ALIVE +SPEC +DOMAIN +DAEMON +VMS +LOAD +FREE_MIB +PROV_MIB +TOTAL_MIB +ROLE +BGP +FENCE +FLUSH$/m);
    assert.match(wide.stdout, /^NAME +ALIVE .* +TOTAL_MIB +VCPUS +KEEPALIVE +VERSION +ROLE +BGP +FRR +FENCE +FLUSH$/m);
    const cells = (out: string) => {
      const [head, ...rows] = out.trimEnd().split('\n');
      const headers = head!.split(/ {3,}/);
      return new Map(rows.map((row) => {
        const values = row.split(/ {3,}/);
        return [values[0]!, Object.fromEntries(headers.map((h, i) => [h, values[i]]))] as const;
      }));
    };
    const table = cells(plain.stdout);
    assert.deepEqual(['hv1', 'hv2', 'hv3', 'hv4'].map((n) => table.get(n)?.BGP), ['-', '2/2', '1/2', '-']);
    assert.deepEqual(['hv1', 'hv2', 'hv3', 'hv4'].map((n) => table.get(n)?.FLUSH), ['-', '-', '-', '-'], 'FLUSH stays last');
    const wideTable = cells(wide.stdout);
    assert.deepEqual(['hv1', 'hv2', 'hv3', 'hv4'].map((n) => [wideTable.get(n)?.BGP, wideTable.get(n)?.FRR]), [
      ['-', '-'],
      ['2/2', 'InSync'],
      ['1/2', 'ReloadFailed'],
      ['-', 'NotConfigured'],
    ]);
    const list = JSON.parse(json.stdout) as Array<{ name: string; status: { frr?: unknown } | null }>;
    for (const [name, value] of Object.entries(frr)) assert.deepEqual(list.find((n) => n.name === name)?.status?.frr, value, `${name}: status.frr in -o json`);

    const [hv1, hv2, hv3, hv4] = await Promise.all([vk('describe', 'node', 'hv1'), vk('describe', 'node', 'hv2'), vk('describe', 'node', 'hv3'), vk('describe', 'node', 'hv4')]);
    for (const r of [hv1, hv2, hv3, hv4]) assert.equal(r.code, 0, r.stderr);
    assert.match(hv1.stdout, /^FRR: +not reported/m);
    const hv2Lines = hv2.stdout.split('\n');
    const at = hv2Lines.indexOf('FRR:');
    assert.ok(at > 0, hv2.stdout);
    // Padding collapsed to two spaces: the fields and the tables' columns, in order.
    assert.deepEqual(hv2Lines.slice(at, at + 18).map((l) => l.replace(/(\S) {2,}/g, '$1  ')), [
      'FRR:',
      '  State:  InSync',
      '  Message:  -',
      '  ASN:  65500',
      '  Router ID:  192.0.2.2',
      '  Reloads:  3',
      '  Last reload at:  2026-01-02T03:04:05.000Z',
      '  Last drift:  2026-01-02T03:00:00.000Z (2 lines)',
      '    -router bgp 65500',
      '    + neighbor fabric peer-group',
      `  Updated at:  ${now}`,
      '  Peers (2/2 established):',
      '    PEER  NODE  STATE  PREFIXES',
      '    192.0.2.1  hv1  Established  4',
      '    192.0.2.3  hv3  Established  0',
      '  VNIs:',
      '    VNI  REMOTE VTEPS',
      '    100  192.0.2.1,192.0.2.3',
    ]);
    assert.match(hv2.stdout, /^ {4}200 +-$/m);
    assert.match(hv2.stdout, /^VMs assigned:/m, 'the sections after FRR are still there');
    assert.match(hv3.stdout, /^ {2}State: +ReloadFailed$/m);
    assert.match(hv3.stdout, /^ {2}Message: +frr-reload\.py --reload exited 1: line 7: % Unknown command$/m);
    assert.match(hv3.stdout, /^ {2}Last reload at: +-$/m);
    assert.match(hv3.stdout, /^ {2}Last drift: +none seen$/m);
    assert.match(hv3.stdout, /^ {2}Peers \(1\/2 established\):$/m);
    assert.match(hv3.stdout, /^ {4}192\.0\.2\.99 +- +Active +0$/m);
    assert.match(hv3.stdout, /^ {2}VNIs: +none$/m);
    assert.match(hv4.stdout, /^ {2}State: +NotConfigured$/m);
    assert.match(hv4.stdout, /^ {2}Message: +no bgp in the cluster config$/m);
    assert.match(hv4.stdout, /^ {2}ASN: +-$/m);
    assert.match(hv4.stdout, /^ {2}Peers: +none$/m);
    assert.match(hv2.stdout, /^Coordinator: +no$/m);
    assert.match(hv2.stdout, /^Cluster address: +-$/m);

    // What the cluster config says of a node: coordinator or not, its cluster address.
    const dir = mkdtempSync(join(tmpdir(), 'vk-verbs-'));
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      'kind: ClusterConfig\nmetadata: {name: cluster}\nspec:\n  defaultNodeSelector: vms\n  coordinators: [hv2]\n  bgp: {asn: 65500}\n  nodes: {hv2: {clusterAddress: 192.0.2.2}, hv3: {clusterAddress: 192.0.2.3}}\n',
    );
    const applied = await vk('apply', '-f', config);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(applied.code, 0, applied.stderr);
    const [c1, c2, c3] = await Promise.all([vk('describe', 'node', 'hv1'), vk('describe', 'node', 'hv2'), vk('describe', 'node', 'hv3')]);
    assert.match(c2.stdout, /^Coordinator: +yes \(a BGP route reflector\)$/m);
    assert.match(c2.stdout, /^Cluster address: +192\.0\.2\.2$/m);
    assert.match(c3.stdout, /^Coordinator: +no$/m);
    assert.match(c3.stdout, /^Cluster address: +192\.0\.2\.3$/m);
    assert.match(c1.stdout, /^Cluster address: +none: not in the cluster config's nodes/m);
  });

  test('vm log shows the last lines; log -f prints only new lines as the buffer slides', async () => {
    const tail = await vk('vm', 'log', 'app1', '-n', '3');
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout, 'line 13\nline 14\nline 15\n');

    const follow = vk.start('vm', 'log', 'app1', '-f', '-n', '2');
    await follow.until(/line 15\n/);
    // The node keeps the last 15 lines: two more arrive, two old ones drop out.
    await put(`${root}/vms/app1/console`, Array.from({ length: 15 }, (_, i) => `line ${i + 3}`).join('\n'));
    await follow.until(/line 17\n/);
    follow.child.kill('SIGINT');
    const run = await follow.done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'line 14\nline 15\nline 16\nline 17\n');
  });
});

describe('vk network, vk vm remove', () => {
  test('network add / list / remove', async () => {
    const added = await vk('network', 'add', '200', '--type', 'bridged', '--description', 'backend', '--mtu', '1400');
    assert.equal(added.code, 0, added.stderr);
    const specNode = await store.get(`${root}/networks/200/spec`);
    assert.deepEqual(JSON.parse(specNode!.data.toString('utf8')), { type: 'bridged', description: 'backend', mtu: 1400 });

    const before = await snapshot(store, root);
    const [dup, gateway, vni, noType] = await Promise.all([
      vk('network', 'add', '200', '--type', 'bridged'),
      vk('network', 'add', '201', '--type', 'bridged', '--gateway4', '10.0.0.1/24'),
      vk('network', 'add', '0', '--type', 'managed'),
      vk('network', 'add', '202'),
    ]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /network 200 already exists/);
    assert.equal(gateway.code, 2);
    assert.equal(errorLines(gateway).length, 1, gateway.stderr);
    assert.match(gateway.stderr, /^vk: network 201: spec\.gateway4: .*only allowed on networks of type 'managed'$/m);
    assert.equal(vni.code, 2);
    assert.match(vni.stderr, /VNI/);
    assert.equal(noType.code, 2, 'the type is required');
    assert.deepEqual(await snapshot(store, root), before);

    const list = await vk('network', 'list');
    assert.match(list.stdout, /^100 +managed +1450 +vkbr100 +0\/4 +- +frontend$/m);
    assert.match(list.stdout, /^200 +bridged +1400 +vkbr200 +0\/4 +- +backend$/m);

    const inUse = await vk('network', 'remove', '100');
    assert.equal(inUse.code, 2);
    assert.match(inUse.stderr, /network 100 is in use: vm app1, db1, web1 attach to its bridge vkbr100/);
    const removed = await vk('network', 'remove', '200');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await store.exists(`${root}/networks/200`), null);
  });

  test('remove refuses a running VM without --force; --wait follows the node until the domain is gone', async () => {
    const refused = await vk('vm', 'remove', 'app1');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /vm app1 is running .*--force/);
    assert.ok(await store.exists(`${root}/vms/app1/spec`));

    await put(`${root}/nodes/hv2/status`, nodeStatus({ runningVms: ['app1'] }));
    const waiting = vk.start('vm', 'remove', 'app1', '--force', '--wait', '--timeout', '30');
    await waiting.until(/vm\/app1 removed/);
    assert.equal(await store.exists(`${root}/vms/app1`), null, 'every znode of the VM is gone');
    await waiting.until(/still running on hv2/);
    await put(`${root}/nodes/hv2/status`, nodeStatus({ runningVms: [] }));
    const run = await waiting.done;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /vm\/app1 no longer runs on hv2\n$/);
  });
});
