// The CLI side of the primary coordinator (DESIGN §4): `vk node primary NAME` asks for a planned
// hand-over with one compare-and-set of /config/primary, refuses what cannot become primary (exit
// 2, nothing written), and with --wait follows the record through its phases; `vk get nodes` marks
// the roles; `vk describe network` shows the gateway and the DHCP leases; `vk network remove`
// removes the leases with the network. The test writes /config/primary and the leases itself, as
// the coordinators' daemons would. Real vk, real ZooKeeper.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ZkStore } from '../../drivers/zk/index.ts';
import {
  decodePrimaryRecord,
  encodeDhcpLease,
  encodePrimaryRecord,
  gatewayMac,
  ZkPaths,
  type DhcpLease,
  type PrimaryRecord,
  type PrimaryRecordInput,
} from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { errorLines, snapshot, vkFor, type Run, type Vk } from './helpers.ts';
import { handoverRequest } from '../../cli/commands/primary.ts';
import type { Cluster } from '../../cli/connect.ts';
import { CliError } from '../../cli/errors.ts';
import { updatePrimaryRecord } from '../../cli/update.ts';

const root = '/primary';
const paths = new ZkPaths(root);
let server: ZkServer;
let store: ZkStore;
let vk: Vk;
const tmp = mkdtempSync(join(tmpdir(), 'vk-primary-'));

let fileCount = 0;
function manifest(text: string): string {
  const file = join(tmp, `m${++fileCount}.yaml`);
  writeFileSync(file, text);
  return file;
}

async function put(path: string, data: string): Promise<void> {
  const existing = await store.get(path);
  if (existing) await store.set(path, data, existing.version);
  else await store.create(path, data, { parents: true });
}

const T0 = '2026-01-01T00:00:00.000Z';

/** hv1 primary, term 1: what the elected daemon wrote. */
function primaryOn(node: string, over: Partial<PrimaryRecordInput> = {}): PrimaryRecordInput {
  return { node, phase: 'primary', since: T0, term: 1, ...over };
}

async function writeRecord(record: PrimaryRecordInput): Promise<void> {
  await put(paths.primary, encodePrimaryRecord(record));
}

async function readRecord(): Promise<PrimaryRecord & { version: number }> {
  const got = await store.get(paths.primary);
  assert.ok(got, '/config/primary exists');
  return { ...decodePrimaryRecord(got.data), version: got.version };
}

/** Until the record carries a request to `to` (the CLI's write), then that record. */
async function requested(to: string): Promise<PrimaryRecord> {
  for (let i = 0; i < 400; i++) {
    const r = await readRecord();
    if (r.request?.to === to) return r;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no request to ${to} within 10 s`);
}

/** Exit 2, one line on stderr naming `field` and showing `value`. */
function assertRefused(run: Run, field: string, value: string, what: string): void {
  assert.equal(run.code, 2, `${what}: exit ${run.code}; stderr=${run.stderr} stdout=${run.stdout}`);
  const lines = errorLines(run);
  assert.equal(lines.length, 1, `${what}: one line: ${run.stderr}`);
  assert.ok(lines[0]!.startsWith(`vk: ${field}: `), `${what}: names ${field}: ${lines[0]}`);
  assert.ok(lines[0]!.includes(value), `${what}: shows ${value}: ${lines[0]}`);
  assert.equal(run.stdout, '', `${what}: prints nothing on stdout`);
}

/** The steps a daemon records, each phase with the node that began it. */
const step = (phase: PrimaryRecord['phase'], node: string, at = T0) => ({ phase, node, at });

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  vk = vkFor(server.connectString, root);
  // hv6 registered by its daemon only (no spec znode): "no spec" counts as ready.
  await store.create(paths.node('hv6'), '', { parents: true });
  const nodes = ['hv1', 'hv2', 'hv3', 'hv4'].map((n) => `kind: Node\nmetadata: {name: ${n}}\n`);
  nodes.push('kind: Node\nmetadata: {name: hv5}\nspec: {domainState: flushed}\n');
  const config = 'kind: ClusterConfig\nmetadata: {name: cluster}\nspec: {coordinators: [hv1, hv2, hv3, hv5, hv6]}\n';
  const networks = [
    'kind: Network\nmetadata: {name: 100}\nspec: {type: bridged}\n',
    'kind: Network\nmetadata: {name: 200}\nspec: {type: managed, gateway4: 192.0.2.1/24, dhcp4: {start: 192.0.2.100, end: 192.0.2.200}, domain: tenant.example}\n',
    'kind: Network\nmetadata: {name: 300}\nspec: {type: managed, gateway4: 198.51.100.1/24}\n',
  ];
  const run = await vk('apply', '-f', manifest([config, ...nodes, ...networks].join('---\n')));
  assert.equal(run.code, 0, run.stderr);
  // Daemons alive on hv1, hv2, hv4, hv5, hv6 (ephemerals of this test's session); hv3's is down.
  for (const n of ['hv1', 'hv2', 'hv4', 'hv5', 'hv6']) await store.create(paths.nodeAlive(n), '', { mode: 'ephemeral' });
});

after(async () => {
  await store?.close();
  await server?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

describe('vk node primary: refusals and the request', () => {
  test('before any daemon took the role: exit 1, nothing written', async () => {
    const before = await snapshot(store, root);
    const run = await vk('node', 'primary', 'hv2');
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(errorLines(run), ['vk: no primary coordinator yet: no coordinator daemon has taken the role']);
    assert.deepEqual(await snapshot(store, root), before);
  });

  // [what, NAME, value shown]
  const refusals: Array<[string, string, string]> = [
    ['a malformed name', 'HV2', 'invalid name "HV2"'],
    ['a node that is not a coordinator', 'hv4', '"hv4": is not a coordinator (the cluster config\'s coordinators: hv1, hv2, hv3, hv5, hv6)'],
    ['a node that does not exist', 'hv9', '"hv9": is not a coordinator'],
    ['a coordinator whose daemon is not alive', 'hv3', `"hv3": its daemon is not alive (${root}/nodes/hv3/alive does not exist)`],
    ['a coordinator that is flushed', 'hv5', '"hv5": is not ready (its spec\'s domainState is flushed); vk node ready hv5 first'],
  ];
  for (const [what, name, value] of refusals) {
    test(`${what}: exit 2 naming it, nothing written (with or without a record)`, async () => {
      if (await store.exists(paths.primary)) await store.delete(paths.primary, (await store.exists(paths.primary))!.version);
      let before = await snapshot(store, root);
      assertRefused(await vk('node', 'primary', name), 'node', value, `${what} (no record)`);
      assert.deepEqual(await snapshot(store, root), before);
      await writeRecord(primaryOn('hv1'));
      before = await snapshot(store, root);
      assertRefused(await vk('node', 'primary', name, '--wait'), 'node', value, `${what} (record)`);
      assert.deepEqual(await snapshot(store, root), before, 'the record keeps its version');
    });
  }

  test('NAME already primary: says so, exit 0, nothing written', async () => {
    await writeRecord(primaryOn('hv1', { term: 3 }));
    const before = await snapshot(store, root);
    const run = await vk('node', 'primary', 'hv1', '--wait');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hv1 is already the primary coordinator (term 3)\n');
    assert.deepEqual(await snapshot(store, root), before);
  });

  test('the request: one compare-and-set adding request {to, at}; the rest of the record as it was', async () => {
    const last = { result: 'refused' as const, from: 'hv1', to: 'hv6', message: 'an older refusal', at: T0, steps: [] };
    await writeRecord(primaryOn('hv1', { term: 3, last }));
    const before = await readRecord();
    const t = Date.now();
    const run = await vk('node', 'primary', 'hv2', '-o', 'json');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, 'hand-over to hv2 requested (primary now: hv1)\n', 'with -o the sentence goes to stderr');
    const after = await readRecord();
    assert.equal(after.version, before.version + 1, 'one write');
    assert.equal(after.request?.to, 'hv2');
    assert.ok(Date.parse(after.request!.at) >= t - 1000 && Date.parse(after.request!.at) <= Date.now() + 1000, after.request!.at);
    const { version: _v1, request: _r, ...rest } = after;
    const { version: _v0, ...was } = before;
    assert.deepEqual(rest, was, 'only request changed');
    assert.deepEqual(JSON.parse(run.stdout), { ...was, request: after.request }, '-o json prints the record written');

    // The same request again: nothing written.
    const snap = await snapshot(store, root);
    const again = await vk('node', 'primary', 'hv2');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, `hand-over to hv2 already requested at ${after.request!.at} (primary now: hv1)\n`);
    // Another node while it is pending: exit 1 naming it, nothing written.
    const other = await vk('node', 'primary', 'hv6');
    assert.equal(other.code, 1, other.stderr);
    assert.deepEqual(errorLines(other), [`vk: a hand-over to hv2 is already requested (at ${after.request!.at}, primary now: hv1); wait for it to end`]);
    assert.deepEqual(await snapshot(store, root), snap);
  });

  /** A cluster whose first read of /config/primary is overtaken by `daemon`'s write before the CLI writes. */
  function racedCluster(daemon: () => Promise<void>): Cluster {
    let raced = false;
    const racing = new Proxy(store, {
      get(target, prop) {
        if (prop === 'get') {
          return async (path: string) => {
            const got = await target.get(path);
            if (!raced && path === paths.primary) {
              raced = true;
              await daemon();
            }
            return got;
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    return { store: racing, paths, connectString: server.connectString, connectTimeoutMs: 10_000 };
  }

  test('the request is a compare-and-set: a daemon write in between is read again and checked again', async () => {
    const at = new Date().toISOString();
    // The daemon begins another hand-over between the CLI's read and its write: refused, nothing written.
    await writeRecord(primaryOn('hv1'));
    const v0 = (await readRecord()).version;
    const begun = racedCluster(() => writeRecord(primaryOn('hv1', { phase: 'gateways', to: 'hv6', steps: [step('gateways', 'hv1')] })));
    await assert.rejects(
      updatePrimaryRecord(begun, (r) => handoverRequest(r, 'hv2', at).record),
      (e: unknown) => e instanceof CliError && /^a hand-over is already in progress: hv1 → hv6/.test(e.message),
    );
    const after = await readRecord();
    assert.equal(after.version, v0 + 1, "only the daemon's write");
    assert.equal(after.request, undefined);

    // A write that changes something else: the request goes on top of it.
    await writeRecord(primaryOn('hv1'));
    const v1 = (await readRecord()).version;
    const bumped = racedCluster(() => writeRecord(primaryOn('hv1', { since: '2026-01-02T00:00:00.000Z' })));
    const updated = await updatePrimaryRecord(bumped, (r) => handoverRequest(r, 'hv2', at).record);
    assert.equal(updated?.changed, true);
    const written = await readRecord();
    assert.equal(written.version, v1 + 2, "the daemon's write, then the CLI's");
    assert.equal(updated?.version, written.version);
    assert.equal(written.since, '2026-01-02T00:00:00.000Z', "the daemon's change is kept");
    assert.deepEqual(written.request, { to: 'hv2', at });
  });

  test('a hand-over in progress: exit 1 naming it, for any NAME, nothing written', async () => {
    await writeRecord(primaryOn('hv1', { phase: 'release', to: 'hv2', since: T0, steps: [step('gateways', 'hv1'), step('release', 'hv1')] }));
    const before = await snapshot(store, root);
    for (const name of ['hv6', 'hv2']) {
      const run = await vk('node', 'primary', name);
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(errorLines(run), [
        `vk: a hand-over is already in progress: hv1 → hv2: hv1 removes its gateways, stops DHCP and hands the lock over (phase release since ${T0}); wait for it to end`,
      ]);
    }
    assert.deepEqual(await snapshot(store, root), before);
    // Also in the dhcp phase, where record.node is the node taking over.
    await writeRecord(primaryOn('hv2', { phase: 'dhcp', from: 'hv1', term: 2 }));
    const inDhcp = await snapshot(store, root);
    const dhcp = await vk('node', 'primary', 'hv6');
    assert.equal(dhcp.code, 1);
    assert.match(dhcp.stderr, /^vk: a hand-over is already in progress: hv1 → hv2: hv2 holds the gateways, takes the lock and starts DHCP \(phase dhcp/);
    assert.deepEqual(await snapshot(store, root), inDhcp);
  });
});

describe('vk node primary --wait', () => {
  /** Writes what a daemon writes next, from the record as it is now (a CAS, as the daemon would). */
  async function advance(edit: (r: PrimaryRecord) => PrimaryRecordInput): Promise<void> {
    const got = await store.get(paths.primary);
    const { request: _r, ...current } = decodePrimaryRecord(got!.data);
    await store.set(paths.primary, encodePrimaryRecord(edit(current as PrimaryRecord)), got!.version);
  }

  const at = () => new Date().toISOString();
  const gateways = (r: PrimaryRecord): PrimaryRecordInput => ({ ...r, phase: 'gateways', to: 'hv2', since: at(), steps: [step('gateways', 'hv1', at())] });
  const release = (r: PrimaryRecord): PrimaryRecordInput => ({ ...r, phase: 'release', since: at(), steps: [...r.steps, step('release', 'hv1', at())] });
  const dhcp = (r: PrimaryRecord): PrimaryRecordInput => {
    const { to: _to, ...rest } = r;
    return { ...rest, node: 'hv2', from: 'hv1', phase: 'dhcp', term: r.term + 1, since: at(), steps: [...r.steps, step('dhcp', 'hv2', at())] };
  };
  const done = (r: PrimaryRecord): PrimaryRecordInput => {
    const { from: _from, ...rest } = r;
    const steps = [...r.steps, step('primary', 'hv2', at())];
    return { ...rest, phase: 'primary', since: at(), steps: [], last: { result: 'completed', from: 'hv1', to: 'hv2', message: 'hv2 is primary', at: at(), steps } };
  };

  const LINE = (phase: string, text: string) => new RegExp(`^ +\\+\\d+ ms  ${phase} +${text.replace(/[()]/g, '\\$&')}$`, 'm');

  test('prints each phase as the daemons write it, until NAME is primary (exit 0, the total)', async () => {
    // An older refusal of hv2 is still in `last`: it is not this request's outcome.
    await writeRecord(primaryOn('hv1', { last: { result: 'refused', from: 'hv1', to: 'hv2', message: 'an older refusal', at: T0, steps: [] } }));
    const waiting = vk.start('node', 'primary', 'hv2', '--wait', '--timeout', '30');
    await waiting.until(/^hand-over to hv2 requested \(primary now: hv1\)$/m);
    await requested('hv2');
    await advance(gateways);
    await waiting.until(/gateways/);
    await advance(release);
    await waiting.until(/release/);
    await advance(dhcp);
    await waiting.until(/dhcp/);
    await advance(done);
    const run = await waiting.done;
    assert.equal(run.code, 0, `stderr=${run.stderr} stdout=${run.stdout}`);
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 6, run.stdout);
    assert.match(lines[1]!, LINE('gateways', 'hv1 → hv2: hv2 adds the gateways and announces them'));
    assert.match(lines[2]!, LINE('release', 'hv1 → hv2: hv1 removes its gateways, stops DHCP and hands the lock over'));
    assert.match(lines[3]!, LINE('dhcp', 'hv1 → hv2: hv2 holds the gateways, takes the lock and starts DHCP'));
    assert.match(lines[4]!, LINE('primary', 'hv2 is primary (term 2): it holds the gateways and runs DHCP'));
    assert.match(lines[5]!, /^hand-over from hv1 to hv2 completed in \d+ ms: hv2 is primary \(term 2\)$/);
    const ms = lines.slice(1, 5).map((l) => Number(/\+(\d+) ms/.exec(l)![1]));
    assert.deepEqual([...ms].sort((a, b) => a - b), ms, 'elapsed times grow');
  });

  test('phases written faster than a read are still printed, from the steps; -o json prints the final record', async () => {
    await writeRecord(primaryOn('hv1'));
    const waiting = vk.start('node', 'primary', 'hv2', '--wait', '--timeout', '30', '-o', 'json');
    await requested('hv2');
    // The whole hand-over in four writes back to back: the watch may see any subset of them.
    for (const edit of [gateways, release, dhcp, done]) await advance(edit);
    const run = await waiting.done;
    assert.equal(run.code, 0, run.stderr);
    const phases = run.stderr
      .split('\n')
      .map((l) => /^ +\+\d+ ms  (\w+)/.exec(l)?.[1])
      .filter((p) => p !== undefined);
    assert.deepEqual(phases, ['gateways', 'release', 'dhcp', 'primary'], run.stderr);
    const final = JSON.parse(run.stdout) as PrimaryRecord;
    assert.equal(final.node, 'hv2');
    assert.equal(final.phase, 'primary');
    assert.equal(final.last?.result, 'completed');
  });

  test('refused: exit 1 with the daemon\'s message', async () => {
    await writeRecord(primaryOn('hv1'));
    const waiting = vk.start('node', 'primary', 'hv6', '--wait', '--timeout', '30');
    await requested('hv6');
    await advance((r) => ({ ...r, last: { result: 'refused', from: 'hv1', to: 'hv6', message: 'hv6 is not ready', at: at(), steps: [] } }));
    const run = await waiting.done;
    assert.equal(run.code, 1, run.stdout);
    assert.deepEqual(errorLines(run), ['vk: hand-over to hv6 refused: hv6 is not ready (hv1 is primary)']);
    assert.equal(run.stdout, 'hand-over to hv6 requested (primary now: hv1)\n', 'no phase began');
  });

  test('superseded by another change of primary (an election): exit 1 saying so', async () => {
    await writeRecord(primaryOn('hv1'));
    const waiting = vk.start('node', 'primary', 'hv2', '--wait', '--timeout', '30');
    await requested('hv2');
    await advance((r) => ({ ...r, node: 'hv6', term: 2, since: at(), last: { result: 'elected', from: 'hv1', to: 'hv6', message: 'hv1 lost its session', at: at(), steps: [] } }));
    const run = await waiting.done;
    assert.equal(run.code, 1, run.stdout);
    assert.deepEqual(errorLines(run), ['vk: hand-over to hv2 did not happen: the last change of primary was elected hv1 → hv6: hv1 lost its session (hv6 is primary)']);
  });

  test('rolled back: the phases seen, then exit 1 with the message', async () => {
    await writeRecord(primaryOn('hv1'));
    const waiting = vk.start('node', 'primary', 'hv2', '--wait', '--timeout', '30');
    await requested('hv2');
    await advance(gateways);
    await waiting.until(/gateways/);
    await advance((r) => {
      const { to: _to, ...rest } = r;
      const message = 'hv2 could not add 192.0.2.1/24: RTNETLINK answers: File exists';
      return { ...rest, phase: 'primary', since: at(), steps: [], last: { result: 'rolledBack', from: 'hv1', to: 'hv2', message, at: at(), steps: r.steps } };
    });
    const run = await waiting.done;
    assert.equal(run.code, 1, run.stdout);
    assert.deepEqual(errorLines(run), ['vk: hand-over to hv2 rolled back: hv2 could not add 192.0.2.1/24: RTNETLINK answers: File exists (hv1 is primary)']);
    assert.match(run.stdout, LINE('gateways', 'hv1 → hv2: hv2 adds the gateways and announces them'));
    assert.match(run.stdout, LINE('primary', 'hv1 is primary (term 1): it holds the gateways and runs DHCP (rolled back)'));
  });

  test('timeout: exit 1 saying where it was stuck (pending, in a phase, or the request gone without an outcome)', async () => {
    await writeRecord(primaryOn('hv1'));
    const pending = await vk('node', 'primary', 'hv2', '--wait', '--timeout', '0.5');
    assert.equal(pending.code, 1, pending.stdout);
    assert.deepEqual(errorLines(pending), [
      'vk: timed out after 0.5s waiting for hv2 to become primary: the request is still pending: hv1 (primary, term 1) has not begun the hand-over (is its daemon running?)',
    ]);

    // Requested, then the daemon moves to gateways and stalls there.
    await writeRecord(primaryOn('hv1'));
    const stalling = vk.start('node', 'primary', 'hv2', '--wait', '--timeout', '1.5');
    await requested('hv2');
    await advance(gateways);
    const stalled = await stalling.done;
    assert.equal(stalled.code, 1, stalled.stdout);
    const stuckSince = (await readRecord()).since;
    assert.deepEqual(errorLines(stalled), [
      `vk: timed out after 1.5s waiting for hv2 to become primary: stuck in phase gateways since ${stuckSince} (hv1 → hv2: hv2 adds the gateways and announces them)`,
    ]);

    // The request dropped with no new outcome (an older refusal of hv2 is in last): not a refusal.
    const older = { result: 'refused' as const, from: 'hv1', to: 'hv2', message: 'an older refusal', at: T0, steps: [] };
    await writeRecord(primaryOn('hv1', { last: older }));
    const dropping = vk.start('node', 'primary', 'hv2', '--wait', '--timeout', '1.5');
    await requested('hv2');
    await advance((r) => r);
    const dropped = await dropping.done;
    assert.equal(dropped.code, 1, dropped.stdout);
    assert.deepEqual(errorLines(dropped), ['vk: timed out after 1.5s waiting for hv2 to become primary: hv1 is primary and the request is gone without an outcome']);
  });
});

describe('roles in vk get nodes and describe node', () => {
  function rows(out: string): Map<string, Record<string, string>> {
    const [head, ...lines] = out.trimEnd().split('\n');
    const headers = head!.split(/ {3,}/);
    return new Map(
      lines.map((row) => {
        const values = row.split(/ {3,}/);
        return [values[0]!, Object.fromEntries(headers.map((h, i) => [h, values[i]!]))] as const;
      }),
    );
  }
  const NODES = ['hv1', 'hv2', 'hv3', 'hv4', 'hv5', 'hv6'];

  test('ROLE: primary, the two ends of a hand-over, coordinators, "-" for the others; json role', async () => {
    await writeRecord(primaryOn('hv1', { term: 4 }));
    let [plain, wide, json] = await Promise.all([vk('get', 'nodes'), vk('get', 'nodes', '-o', 'wide'), vk('get', 'nodes', '-o', 'json')]);
    for (const r of [plain, wide, json]) assert.equal(r.code, 0, r.stderr);
    assert.match(plain.stdout, /^NAME +ALIVE +SPEC +DOMAIN +DAEMON +VMS +LOAD +FREE_MIB +PROV_MIB +TOTAL_MIB +ROLE +BGP +FENCE +FLUSH$/m);
    assert.match(wide.stdout, /^NAME +ALIVE .* +VERSION +ROLE +BGP +FRR +FENCE +FLUSH$/m);
    const roles = (out: string) => NODES.map((n) => rows(out).get(n)?.ROLE);
    assert.deepEqual(roles(plain.stdout), ['primary', 'coordinator', 'coordinator', '-', 'coordinator', 'coordinator']);
    const list = JSON.parse(json.stdout) as Array<{ name: string; role: string | null }>;
    assert.deepEqual(list.map((n) => [n.name, n.role]), [
      ['hv1', 'primary'],
      ['hv2', 'coordinator'],
      ['hv3', 'coordinator'],
      ['hv4', null],
      ['hv5', 'coordinator'],
      ['hv6', 'coordinator'],
    ]);

    await writeRecord(primaryOn('hv1', { phase: 'release', to: 'hv2', term: 4 }));
    [plain, wide] = await Promise.all([vk('get', 'nodes'), vk('get', 'nodes', '-o', 'wide')]);
    assert.deepEqual(roles(plain.stdout), ['primary→hv2', 'primary←hv1', 'coordinator', '-', 'coordinator', 'coordinator']);
    assert.deepEqual(roles(wide.stdout).slice(0, 2), ['primary→hv2 (release)', 'primary←hv1 (release)']);
    assert.deepEqual(rows(plain.stdout).get('hv1')?.FLUSH, '-', 'FLUSH stays last');

    await writeRecord(primaryOn('hv2', { phase: 'dhcp', from: 'hv1', term: 5 }));
    plain = await vk('get', 'nodes');
    assert.deepEqual(roles(plain.stdout).slice(0, 2), ['primary→hv2', 'primary←hv1']);
    const described = await vk('describe', 'node', 'hv2');
    assert.match(described.stdout, /^Role: +primary←hv1 \(hand-over in phase dhcp since 2026-01-01T00:00:00.000Z: hv1 → hv2: hv2 holds the gateways, takes the lock and starts DHCP\)$/m);

    await writeRecord(primaryOn('hv2', { term: 5, request: { to: 'hv6', at: T0 } }));
    const [hv2, hv4, hv6] = await Promise.all([vk('describe', 'node', 'hv2'), vk('describe', 'node', 'hv4'), vk('describe', 'node', 'hv6')]);
    assert.match(hv2.stdout, /^Role: +primary \(term 5, since 2026-01-01T00:00:00.000Z; hand-over to hv6 requested at 2026-01-01T00:00:00.000Z\)$/m);
    assert.match(hv4.stdout, /^Role: +-$/m);
    assert.match(hv6.stdout, /^Role: +coordinator \(hand-over to hv6 requested at 2026-01-01T00:00:00.000Z\)$/m);
  });

  test('an unreadable record: the views still work, coordinators still shown', async () => {
    await put(paths.primary, '{"node": 7');
    const [plain, described] = await Promise.all([vk('get', 'nodes'), vk('describe', 'network', '200')]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(NODES.map((n) => rows(plain.stdout).get(n)?.ROLE), ['coordinator', 'coordinator', 'coordinator', '-', 'coordinator', 'coordinator']);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /^ {2}Held by: +unknown: \/config\/primary cannot be read \(/m);
    const refused = await vk('node', 'primary', 'hv2');
    assert.equal(refused.code, 1);
    assert.equal(errorLines(refused).length, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`^vk: ${root}/config/primary cannot be read \\(primary: invalid JSON .*\\); nothing was written\n$`));
  });
});

describe('the gateway and DHCP leases of managed networks', () => {
  const now = () => Math.floor(Date.now() / 1000);
  function lease(i: number, over: Partial<DhcpLease> = {}): DhcpLease {
    const mac = `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`;
    return { mac, ip: `192.0.2.${100 + i}`, hostname: `vm${i}`, expires: now() + 3600, node: 'hv1', updatedAt: new Date().toISOString(), ...over };
  }
  async function putLease(vni: number, l: DhcpLease): Promise<void> {
    await put(paths.networkLease(vni, l.mac), encodeDhcpLease(l));
  }

  test('describe network: gateway address, virtual MAC, holder, DNS domain and up to 20 leases by address', async () => {
    await writeRecord(primaryOn('hv1', { term: 7 }));
    // 25 leases written in a shuffled order; lease 3 never expires, lease 4 has expired.
    const order = Array.from({ length: 25 }, (_, i) => (i * 7) % 25);
    for (const i of order) await putLease(200, lease(i, i === 3 ? { expires: 0 } : i === 4 ? { expires: now() - 120, hostname: undefined } : {}));
    const run = await vk('describe', 'network', '200');
    assert.equal(run.code, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /^Gateway:$/m);
    assert.match(out, /^ {2}Address: +192\.0\.2\.1\/24$/m);
    assert.equal(gatewayMac(200), '02:76:6b:00:00:c8');
    assert.match(out, /^ {2}Virtual MAC: +02:76:6b:00:00:c8$/m);
    assert.match(out, /^ {2}Held by: +hv1 \(primary, term 7\)$/m);
    assert.match(out, /^ {2}DNS domain: +tenant\.example$/m);
    assert.match(out, /^DHCP leases: +25 \(range 192\.0\.2\.100-192\.0\.2\.200\)$/m);
    assert.match(out, /^ {2}MAC +IP +HOSTNAME +EXPIRES +BY$/m);
    const leaseRows = out.split('\n').filter((l) => /^ {2}52:54:00/.test(l));
    assert.equal(leaseRows.length, 20, out);
    assert.deepEqual(leaseRows.map((l) => l.split(/ +/)[2]), Array.from({ length: 20 }, (_, i) => `192.0.2.${100 + i}`), 'by address');
    assert.match(leaseRows[0]!, /^ {2}52:54:00:00:01:00 +192\.0\.2\.100 +vm0 +in (59m\d\ds|1h00m) +hv1$/);
    assert.match(leaseRows[3]!, / +vm3 +never +hv1$/);
    assert.match(leaseRows[4]!, /192\.0\.2\.104 +- +expired 2m0\ds ago +hv1$/);
    assert.match(out, /^ {2}… and 5 more$/m);

    // During a hand-over both nodes hold it (make-before-break), with the phase.
    await writeRecord(primaryOn('hv1', { phase: 'gateways', to: 'hv2', term: 7 }));
    const during = await vk('describe', 'network', '200');
    assert.match(during.stdout, /^ {2}Held by: +hv1 and hv2: hand-over in phase gateways since 2026-01-01T00:00:00\.000Z \(hv1 → hv2: hv2 adds the gateways and announces them\)$/m);

    // A managed network with a gateway and no DHCP; a bridged one has no gateway block.
    const [n300, n100] = await Promise.all([vk('describe', 'network', '300'), vk('describe', 'network', '100')]);
    assert.match(n300.stdout, /^ {2}Virtual MAC: +02:76:6b:00:01:2c$/m);
    assert.match(n300.stdout, /^DHCP leases: +0 \(no dhcp4 range\)$/m);
    assert.doesNotMatch(n100.stdout, /Gateway|DHCP leases/);

    // No record: nobody holds it.
    await store.delete(paths.primary, (await store.exists(paths.primary))!.version);
    const none = await vk('describe', 'network', '200');
    assert.match(none.stdout, /^ {2}Held by: +nobody: no primary coordinator yet \(no \/config\/primary\)$/m);
  });

  test('get networks: LEASES counts the leases of managed networks with dhcp4', async () => {
    const [plain, json] = await Promise.all([vk('get', 'networks'), vk('get', 'networks', '-o', 'json')]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^VNI +TYPE +MTU +BRIDGE +READY +LEASES +DESCRIPTION$/m);
    assert.match(plain.stdout, /^100 +bridged +1500 +vkbr100 +0\/6 +- +-$/m);
    assert.match(plain.stdout, /^200 +managed +1450 +vkbr200 +0\/6 +25 +-$/m);
    assert.match(plain.stdout, /^300 +managed +1450 +vkbr300 +0\/6 +- +-$/m);
    const list = JSON.parse(json.stdout) as Array<{ vni: string; leases: number | null }>;
    assert.deepEqual(list.map((n) => [n.vni, n.leases]), [['100', 0], ['200', 25], ['300', 0]]);
  });

  test('apply, diff and plan do not see leases as drift; a plan stays fresh when leases change', async () => {
    const file = manifest(
      'kind: Network\nmetadata: {name: 200}\nspec: {type: managed, gateway4: 192.0.2.1/24, dhcp4: {start: 192.0.2.100, end: 192.0.2.200}, domain: tenant.example}\n',
    );
    const diff = await vk('diff', '-f', file);
    assert.equal(diff.code, 0, diff.stdout);
    assert.equal(diff.stdout, '');
    const planFile = join(tmp, 'plan.json');
    const plan = await vk('plan', '-f', file, '--out', planFile);
    assert.equal(plan.code, 0, plan.stderr);
    await putLease(200, lease(30));
    const applied = await vk('apply', '--plan', planFile);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, 'network/200 unchanged\n');
    assert.ok(await store.exists(paths.networkLease(200, lease(30).mac)), 'the leases stay');
  });

  test('vk network remove deletes the leases with the network', async () => {
    const run = await vk('network', 'remove', '200');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await store.exists(paths.network(200)), null, 'spec and leases are gone');
  });

  test('vk network remove: leases too many for one transaction are deleted first, in chunks', async () => {
    const add = await vk('network', 'add', '400', '--type', 'managed');
    assert.equal(add.code, 0, add.stderr);
    await store.create(paths.networkLeases(400), '');
    // About 110 bytes of delete op each: 10000 leases are over the 960 KiB vk puts in one request.
    const count = 10_000;
    for (let start = 0; start < count; start += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, count - start) }, (_, k) => {
          const i = start + k;
          const mac = `52:54:00:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
          return store.create(`${paths.networkLeases(400)}/${mac}`, '{}');
        }),
      );
    }
    assert.equal((await store.exists(paths.networkLeases(400)))?.numChildren, count);
    const run = await vk('network', 'remove', '400');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'network/400 removed\n');
    assert.equal(await store.exists(paths.network(400)), null);
  });
});
