// A node's fence settings and fence status through `vk` (DESIGN §3 /nodes/<name>/fence, §4
// "Fencing and recovery"): `vk node fence set|show|rm`, validated before any write (exit 2 naming
// the field, nothing written), admin-only under --auth (another session without the credentials
// gets NoAuth), open with a warning without it; the FENCE column of `vk get nodes` and the Fence
// block of `vk describe node`, from a node status written here as a fencing coordinator would.
// The IPMI password and the command's env values must never appear in anything vk prints: every
// run's stdout and stderr is kept and checked at the end. Real vk, real ZooKeeper.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NoAuthError, ZkStore } from '../../drivers/zk/index.ts';
import { openAclSession, secretAcl } from '../../drivers/zk/acl.ts';
import {
  decodeNodeFence,
  decodeNodeStatus,
  encodeNodeStatus,
  formatNodeFence,
  redactNodeFence,
  ZkPaths,
  type NodeFenceStatusInput,
  type NodeStatusInput,
} from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { errorLines, snapshot, VK, vkFor, type Run, type Vk } from './helpers.ts';

const root = '/fence';
const paths = new ZkPaths(root);
const authRoot = '/fence-auth';
const authPaths = new ZkPaths(authRoot);
const ADMIN = { user: 'admin', password: 's3cret-admin' };
/** Distinctive secrets: neither may ever show in vk's output. */
const PW = 'Zq9-Unmistakable!';
const TOKEN = 'tok-Vanilla-Sky-7731';

let server: ZkServer;
let store: ZkStore;
let plainVk: Vk;
let plainAuthVk: Vk;
const tmp = mkdtempSync(join(tmpdir(), 'vk-fence-'));
/** Every stdout and stderr vk printed in this file. */
const printed: string[] = [];

function keep(run: Run): Run {
  printed.push(run.stdout, run.stderr);
  return run;
}
const vk = async (...args: string[]) => keep(await plainVk(...args));
/** vk on the --auth root, without credentials unless given. */
const vkA = async (...args: string[]) => keep(await plainAuthVk(...args));
const asAdmin = (...args: string[]) => vkA('--auth', `${ADMIN.user}:${ADMIN.password}`, ...args);

/** vk with `input` on its stdin. */
function vkWithInput(input: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VK, ...args], { env: plainVk.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve(keep({ code, stdout, stderr })));
    child.stdin.end(input);
  });
}

let fileCount = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(tmp, `f${++fileCount}.${ext}`);
  writeFileSync(path, text);
  return path;
}

const SETTINGS = `ipmi:
  host: 192.0.2.13
  user: admin
  password: "${PW}"
command:
  argv: [/usr/local/bin/pdu-off, hv1]
  env: {PDU_TOKEN: "${TOKEN}"}
storage:
  ttlS: 86400
`;
const SETTINGS_VALUE = {
  ipmi: { host: '192.0.2.13', user: 'admin', password: PW },
  command: { argv: ['/usr/local/bin/pdu-off', 'hv1'], env: { PDU_TOKEN: TOKEN } },
  storage: { ttlS: 86400 },
};

async function put(path: string, data: string): Promise<void> {
  const existing = await store.get(path);
  if (existing) await store.set(path, data, existing.version);
  else await store.create(path, data, { parents: true });
}

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  plainVk = vkFor(server.connectString, root);
  plainAuthVk = vkFor(server.connectString, authRoot);
  // Nodes as their daemons register them: /nodes/<name> with nothing else needed.
  for (const n of ['hv1', 'hv2', 'hv3', 'hv4', 'hv5']) await store.ensurePath(paths.node(n));
  for (const n of ['hv1', 'hv3']) await store.ensurePath(authPaths.node(n));
});

after(async () => {
  await store?.close();
  await server?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

describe('vk node fence set / show / rm (no --auth)', () => {
  test('set creates /nodes/NAME/fence from YAML, says which levels, and warns that it is open', async () => {
    const run = await vk('node', 'fence', 'set', 'hv1', '-f', file(SETTINGS));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'node/hv1 fence created (levels: ipmi, command, storage)\n');
    assert.deepEqual(errorLines(run), [
      `vk: warning: ${root}/nodes/hv1/fence has no ACL (no --auth): its secrets (the IPMI password, the command's env values) are readable by anyone who can reach ZooKeeper`,
    ]);
    const got = await store.get(paths.nodeFence('hv1'));
    assert.ok(got);
    assert.equal(got.version, 0);
    assert.deepEqual(decodeNodeFence(got.data), decodeNodeFence(SETTINGS_VALUE), 'stored with defaults filled, the secrets as given');
  });

  test('show prints the levels with the secrets redacted; -o json|yaml the redacted settings', async () => {
    const [text, json, yaml] = await Promise.all([vk('node', 'fence', 'show', 'hv1'), vk('node', 'fence', 'show', 'hv1', '-o', 'json'), vk('node', 'fence', 'show', 'hv1', '-o', 'yaml')]);
    for (const r of [text, json, yaml]) assert.equal(r.code, 0, r.stderr);
    assert.equal(text.stdout, `${formatNodeFence(decodeNodeFence(SETTINGS_VALUE))}\n`);
    assert.match(text.stdout, /^ipmi: admin@192\.0\.2\.13:623 cipher suite 3, password <redacted>, /m);
    assert.match(text.stdout, /^command: \["\/usr\/local\/bin\/pdu-off","hv1"\], timeout 30000 ms × 1, env PDU_TOKEN=<redacted>$/m);
    const shown = JSON.parse(json.stdout) as { ipmi: { password: string }; command: { env: Record<string, string> } };
    assert.deepEqual(shown, redactNodeFence(decodeNodeFence(SETTINGS_VALUE)));
    assert.equal(shown.ipmi.password, '<redacted>');
    assert.deepEqual(shown.command.env, { PDU_TOKEN: '<redacted>' });
    assert.match(yaml.stdout, /password: <redacted>/);
  });

  test('set again: the same settings write nothing; changed ones are one compare-and-set; JSON on stdin works', async () => {
    const same = await vk('node', 'fence', 'set', 'hv1', '-f', file(SETTINGS));
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.stdout, 'node/hv1 fence unchanged (levels: ipmi, command, storage)\n');
    assert.equal((await store.get(paths.nodeFence('hv1')))!.version, 0);
    const changed = await vk('node', 'fence', 'set', 'hv1', '-f', file(SETTINGS.replace('ttlS: 86400', 'ttlS: 3600')));
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(changed.stdout, 'node/hv1 fence configured (levels: ipmi, command, storage)\n');
    const got = await store.get(paths.nodeFence('hv1'));
    assert.equal(got!.version, 1);
    assert.equal(decodeNodeFence(got!.data).storage?.ttlS, 3600);

    const stdin = await vkWithInput(JSON.stringify({ ipmi: { host: 'bmc-hv2.example.net', user: 'root', password: PW, cipherSuite: 17 } }), 'node', 'fence', 'set', 'hv2', '-f', '-');
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(stdin.stdout, 'node/hv2 fence created (levels: ipmi)\n');
    assert.equal(decodeNodeFence((await store.get(paths.nodeFence('hv2')))!.data).ipmi?.cipherSuite, 17);
  });

  // [what, file content, what the one error line must match]
  const bad: Array<[string, string, RegExp]> = [
    ['a misspelt password field', `ipmi: {host: 192.0.2.1, user: admin, passwrod: "${PW}"}\n`, /^vk: f\d+\.yaml: fence\.ipmi\.passw(ord|rod): /],
    ['a password longer than IPMI allows', `ipmi: {host: 192.0.2.1, user: admin, password: "${PW}${PW}"}\n`, /^vk: f\d+\.yaml: fence\.ipmi\.password: must be at most 20 bytes \(it has 34\)$/],
    ['a password that is not a string', 'ipmi: {host: 192.0.2.1, user: admin, password: 12345678}\n', /^vk: f\d+\.yaml: fence\.ipmi\.password: /],
    ['a bad BMC host (not a secret: shown)', `ipmi: {host: "bad host", user: admin, password: "${PW}"}\n`, /^vk: f\d+\.yaml: fence\.ipmi\.host: invalid BMC host "bad host": /],
    ['an env name that is not a variable name', `command: {argv: [/bin/true], env: {"1BAD": "${TOKEN}"}}\n`, /^vk: f\d+\.yaml: fence\.command\.env/],
    ['an unknown level', `ipmi: {host: 192.0.2.1, user: admin, password: "${PW}"}\npdu: {outlet: 3}\n`, /^vk: f\d+\.yaml: fence\.pdu: /],
    ['a YAML error on the password line', `ipmi:\n  host: 192.0.2.1\n  password: "${PW}\n`, /^vk: f\d+\.yaml: not valid YAML or JSON \([A-Z_]+ at line \d+, column \d+\)$/],
    ['a compact mapping holding the password', `ipmi: password: ${PW}\n`, /^vk: f\d+\.yaml: not valid YAML or JSON \(BLOCK_AS_IMPLICIT_KEY at line 1, column \d+\)$/],
    ['a duplicate key', `ipmi: {host: a, user: b, password: "${PW}", password: "${PW}"}\n`, /^vk: f\d+\.yaml: not valid YAML or JSON \(DUPLICATE_KEY at line 1, column \d+\)$/],
    ['the password alone', `${PW}\n`, /^vk: f\d+\.yaml: must be a mapping of fence levels \(ipmi, command, storage\); it is a string$/],
    ['a list', `- ${PW}\n`, /must be a mapping of fence levels .*; it is a list$/],
    ['an empty file', '', /must be a mapping of fence levels .*; it is empty$/],
  ];
  for (const [what, text, message] of bad) {
    test(`set refuses ${what}: exit 2, one line naming it, nothing written`, async () => {
      const before = await snapshot(store, root);
      const run = await vk('node', 'fence', 'set', 'hv3', '-f', file(text));
      assert.equal(run.code, 2, `${run.stderr}`);
      assert.equal(run.stdout, '');
      const lines = errorLines(run);
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0]!.replace(tmp + '/', ''), message);
      assert.deepEqual(await snapshot(store, root), before);
    });
  }

  test('set refuses a node that does not exist, a bad name, a missing file, no -f: exit 2, nothing written', async () => {
    const before = await snapshot(store, root);
    const settings = file(SETTINGS);
    const [missingNode, badName, noFile, noFlag] = await Promise.all([
      vk('node', 'fence', 'set', 'hv9', '-f', settings),
      vk('node', 'fence', 'set', 'HV1', '-f', settings),
      vk('node', 'fence', 'set', 'hv3', '-f', join(tmp, 'nope.yaml')),
      vk('node', 'fence', 'set', 'hv3'),
    ]);
    for (const r of [missingNode, badName, noFile, noFlag]) assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(errorLines(missingNode), ['vk: node hv9 not found (nodes appear when their daemon first starts, or with vk apply); nothing was written']);
    assert.match(badName.stderr, /^vk: node: invalid name "HV1": /);
    assert.deepEqual(errorLines(noFile), [`vk: ${join(tmp, 'nope.yaml')}: cannot read it: no such file`]);
    assert.match(noFlag.stderr, /required option '-f, --file <file>' not specified/);
    assert.deepEqual(await snapshot(store, root), before);
    assert.equal(await store.exists(paths.nodeFence('hv3')), null);
  });

  test('rm removes them; show and rm then say there are none; a node that does not exist is not found', async () => {
    const rm = await vk('node', 'fence', 'rm', 'hv2');
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, 'node/hv2 fence removed\n');
    assert.equal(await store.exists(paths.nodeFence('hv2')), null);
    const [again, show, json, unknown] = await Promise.all([
      vk('node', 'fence', 'rm', 'hv2'),
      vk('node', 'fence', 'show', 'hv2'),
      vk('node', 'fence', 'show', 'hv2', '-o', 'json'),
      vk('node', 'fence', 'show', 'hv9'),
    ]);
    assert.equal(again.code, 1);
    assert.deepEqual(errorLines(again), ['vk: node hv2 has no fence settings']);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(show.stdout, 'node/hv2: no fence settings (vk node fence set hv2 -f FILE)\n');
    assert.equal(json.stdout, 'null\n');
    assert.equal(unknown.code, 1);
    assert.deepEqual(errorLines(unknown), ['vk: node hv9 not found']);
  });
});

describe('vk node fence under --auth: readable by the admin only', () => {
  test('set creates it with a digest ACL for the --auth user alone; no warning', async () => {
    const run = await asAdmin('node', 'fence', 'set', 'hv1', '-f', file(SETTINGS));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'node/hv1 fence created (levels: ipmi, command, storage)\n');
    assert.equal(run.stderr, '');
    const session = await openAclSession(server.connectString, ADMIN, 5000);
    try {
      assert.deepEqual((await session.get(authPaths.nodeFence('hv1')))!.acl, secretAcl(ADMIN));
    } finally {
      session.close();
    }
  });

  test('another session without the credentials gets NoAuth reading it; vk without --auth cannot show or change it', async () => {
    const anonymous = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 5000 });
    const other = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 5000, auth: { user: 'admin', password: 'wrong' } });
    try {
      await assert.rejects(anonymous.get(authPaths.nodeFence('hv1')), NoAuthError);
      await assert.rejects(other.get(authPaths.nodeFence('hv1')), NoAuthError);
    } finally {
      await anonymous.close();
      await other.close();
    }
    const version = (await store.exists(authPaths.nodeFence('hv1')))!.version;
    const [show, set, described, asAdminShow] = await Promise.all([
      vkA('node', 'fence', 'show', 'hv1'),
      vkA('node', 'fence', 'set', 'hv1', '-f', file(SETTINGS.replace('ttlS: 86400', 'ttlS: 60'))),
      vkA('describe', 'node', 'hv1'),
      asAdmin('node', 'fence', 'show', 'hv1'),
    ]);
    assert.equal(show.code, 1);
    assert.deepEqual(errorLines(show), [
      `vk: ${authRoot}/nodes/hv1/fence is not readable with these credentials (its ACL keeps it to the user who set it); give them with --auth user:password (or VK_AUTH)`,
    ]);
    assert.equal(set.code, 1);
    assert.match(set.stderr, /^vk: ZooKeeper refused access \(\/fence-auth\/nodes\/hv1\/fence\): not authorized; give the cluster credentials with --auth/m);
    assert.equal((await store.exists(authPaths.nodeFence('hv1')))!.version, version, 'nothing written');
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /^ {2}Settings: +not readable \(ACL\): give the credentials they were set with \(--auth\)$/m);
    assert.equal(asAdminShow.code, 0, asAdminShow.stderr);
    assert.equal(asAdminShow.stdout, `${formatNodeFence(decodeNodeFence(SETTINGS_VALUE))}\n`);
  });

  test('settings first set without --auth (open) are made admin-only before new ones go in', async () => {
    const open = await vkA('node', 'fence', 'set', 'hv3', '-f', file(SETTINGS));
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stderr, /warning: .* readable by anyone/);
    const run = await asAdmin('node', 'fence', 'set', 'hv3', '-f', file(SETTINGS.replace('ttlS: 86400', 'ttlS: 7200')));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'node/hv3 fence configured (levels: ipmi, command, storage)\n');
    const session = await openAclSession(server.connectString, ADMIN, 5000);
    try {
      assert.deepEqual((await session.get(authPaths.nodeFence('hv3')))!.acl, secretAcl(ADMIN));
    } finally {
      session.close();
    }
    await assert.rejects(store.get(authPaths.nodeFence('hv3')), NoAuthError, 'this test session has no credentials');
  });
});

// ------------------------------------------------------------------------------ fence status

const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

function nodeStatus(fence?: NodeFenceStatusInput): string {
  const status: NodeStatusInput = {
    daemonState: 'dead',
    domainState: 'ready',
    memory: { totalMiB: 4096, usedMiB: 0, freeMiB: 4096, allocatedMiB: 0, provisionedMiB: 0 },
    vcpus: { total: 4, allocated: 0 },
    load: 0,
    runningVms: [],
    keepaliveAt: T(0),
    version: 'test',
    conditions: [],
    ...(fence && { fence }),
  };
  return encodeNodeStatus(status);
}

const result = (s: number, level: 'ipmi' | 'command' | 'storage', ok: boolean, message: string, reason?: string) => ({ level, ok, message, ms: 100 + s, at: T(s), ...(reason && { reason }) });

const FENCED: NodeFenceStatusInput = {
  state: 'fenced',
  level: 'ipmi',
  by: 'hv2',
  lostAt: T(1),
  fencedAt: T(20),
  rounds: 2,
  results: [
    result(2, 'ipmi', false, 'no answer from 192.0.2.13', 'FenceUnreachable'),
    result(3, 'command', false, 'pdu-off exited 1', 'FenceCommandFailed'),
    result(4, 'storage', false, 'monitor did not answer', 'RbdUnreachable'),
    result(10, 'ipmi', false, 'no answer from 192.0.2.13', 'FenceUnreachable'),
    result(11, 'command', false, 'pdu-off exited 1', 'FenceCommandFailed'),
    result(19, 'storage', true, 'blocklisted 198.51.100.11:0/0'),
    result(20, 'ipmi', true, 'Chassis Power is off'),
  ],
  blocklist: { address: '198.51.100.11:0/0', ttlS: 2_592_000 },
  recovered: ['web1', 'web2'],
  notRecovered: [{ vm: 'db1', why: 'its disk is local: no fence level covers it' }],
  message: 'fenced by ipmi; 2 VMs recovered',
  updatedAt: T(21),
};
const FAILED: NodeFenceStatusInput = {
  state: 'failed',
  by: 'hv1',
  lostAt: T(1),
  rounds: 3,
  nextRetryAt: T(40),
  results: [result(30, 'ipmi', false, 'wrong password for admin@192.0.2.14', 'FenceAuthFailed')],
  message: 'every level failed; retrying',
  updatedAt: T(31),
};
const LOST: NodeFenceStatusInput = { state: 'lost', by: 'hv1', lostAt: T(1), rounds: 0, results: [], message: 'maintenance: not fenced', updatedAt: T(2) };

describe('vk get nodes / describe node: the fence status', () => {
  before(async () => {
    await put(paths.nodeStatus('hv1'), nodeStatus(FENCED));
    await put(paths.nodeStatus('hv2'), nodeStatus(FAILED));
    await put(paths.nodeStatus('hv3'), nodeStatus(LOST));
    await put(paths.nodeStatus('hv4'), nodeStatus());
    // hv5: no status at all.
  });

  function cells(out: string): Map<string, Record<string, string>> {
    const [head, ...rows] = out.trimEnd().split('\n');
    const headers = head!.split(/ {3,}/);
    return new Map(
      rows.map((row) => {
        const values = row.split(/ {3,}/);
        return [values[0]!, Object.fromEntries(headers.map((h, i) => [h, values[i]!]))] as const;
      }),
    );
  }

  test('FENCE, before FLUSH: fenced/LEVEL, failed×ROUNDS, lost, "-" without a record; -o json has status.fence', async () => {
    const [plain, wide, json] = await Promise.all([vk('get', 'nodes'), vk('get', 'nodes', '-o', 'wide'), vk('get', 'nodes', '-o', 'json')]);
    for (const r of [plain, wide, json]) assert.equal(r.code, 0, r.stderr);
    assert.match(plain.stdout, /^NAME +ALIVE +SPEC +DOMAIN +DAEMON +VMS +LOAD +FREE_MIB +PROV_MIB +TOTAL_MIB +ROLE +BGP +FENCE +FLUSH$/m);
    assert.match(wide.stdout, /^NAME +ALIVE .* +VERSION +ROLE +BGP +FRR +FENCE +FLUSH$/m);
    const nodes = ['hv1', 'hv2', 'hv3', 'hv4', 'hv5'];
    for (const out of [plain.stdout, wide.stdout]) {
      const table = cells(out);
      assert.deepEqual(nodes.map((n) => table.get(n)?.FENCE), ['fenced/ipmi', 'failed×3', 'lost', '-', '-']);
      assert.deepEqual(nodes.map((n) => table.get(n)?.FLUSH), ['-', '-', '-', '-', '-'], 'FLUSH stays last');
    }
    const list = JSON.parse(json.stdout) as Array<{ name: string; status: { fence?: unknown } | null }>;
    const byName = new Map(list.map((n) => [n.name, n]));
    assert.deepEqual(byName.get('hv1')!.status!.fence, decodeNodeStatus(nodeStatus(FENCED)).fence);
    assert.deepEqual(byName.get('hv2')!.status!.fence, decodeNodeStatus(nodeStatus(FAILED)).fence);
    assert.equal(byName.get('hv4')!.status!.fence, undefined);
    assert.equal(byName.get('hv5')!.status, null);
  });

  test('describe node: the Fence block (state, level, by, times, rounds, blocklist, VMs, the last 5 results) and the settings, redacted', async () => {
    const run = await vk('describe', 'node', 'hv1');
    assert.equal(run.code, 0, run.stderr);
    const block = run.stdout.slice(run.stdout.indexOf('\nFence:\n') + 1, run.stdout.indexOf('\nVMs assigned:'));
    assert.equal(
      block,
      [
        'Fence:',
        '  State:                fenced',
        '  Level:                ipmi',
        '  By:                   hv2',
        `  Lost at:              ${T(1)}`,
        `  Fenced at:            ${T(20)}`,
        '  Rounds:               2',
        '  Next retry:           -',
        '  Blocklist:            198.51.100.11:0/0 for 2592000 s (vk node ready lifts it)',
        '  Message:              fenced by ipmi; 2 VMs recovered',
        `  Updated at:           ${T(21)}`,
        '  Recovered VMs:        web1, web2',
        '  Not recovered VMs:',
        '    db1: its disk is local: no fence level covers it',
        '  Results (last 5 of 7):',
        `    ${T(4)}  storage  failed (RbdUnreachable)  104 ms  monitor did not answer`,
        `    ${T(10)}  ipmi     failed (FenceUnreachable)  110 ms  no answer from 192.0.2.13`,
        `    ${T(11)}  command  failed (FenceCommandFailed)  111 ms  pdu-off exited 1`,
        `    ${T(19)}  storage  ok  119 ms  blocklisted 198.51.100.11:0/0`,
        `    ${T(20)}  ipmi     ok  120 ms  Chassis Power is off`,
        '  Settings:',
        ...formatNodeFence(decodeNodeFence((await store.get(paths.nodeFence('hv1')))!.data))
          .split('\n')
          .map((l) => `    ${l}`),
      ].join('\n'),
    );
    assert.match(block, /password <redacted>/);
  });

  test('describe node: a failed fence, a lost node under maintenance, a node never lost', async () => {
    await put(paths.config, JSON.stringify({ maintenance: true }));
    const [hv2, hv3, hv4] = await Promise.all([vk('describe', 'node', 'hv2'), vk('describe', 'node', 'hv3'), vk('describe', 'node', 'hv4')]);
    for (const r of [hv2, hv3, hv4]) assert.equal(r.code, 0, r.stderr);
    assert.match(hv2.stdout, /^ {2}State: +failed$/m);
    assert.match(hv2.stdout, /^ {2}Level: +-$/m);
    assert.match(hv2.stdout, /^ {2}Rounds: +3$/m);
    assert.match(hv2.stdout, new RegExp(`^ {2}Next retry: +${T(40)}$`, 'm'));
    assert.match(hv2.stdout, /^ {2}Results:\n {4}\S+ {2}ipmi {5}failed \(FenceAuthFailed\) {2}130 ms {2}wrong password for admin@192\.0\.2\.14$/m);
    assert.match(hv2.stdout, /^ {2}Recovered VMs: +-$/m);
    assert.match(hv2.stdout, /^ {2}Not recovered VMs: +-$/m);
    assert.match(hv2.stdout, /^ {2}Settings: +none configured \(vk node fence set hv2 -f FILE\)$/m);
    assert.match(hv3.stdout, /^ {2}State: +lost$/m);
    assert.match(hv3.stdout, /^ {2}Results: +none yet$/m);
    assert.match(hv3.stdout, /^ {2}Cluster maintenance: +on: lost nodes are reported, not fenced$/m);
    assert.match(hv4.stdout, /^Fence:\n {2}State: +none \(the node has not been lost\)\n {2}Cluster maintenance: +on: .*\n {2}Settings: +none configured/m);
    const table = await vk('get', 'nodes');
    assert.match(table.stdout, /\n\nmaintenance on: lost nodes are reported, not fenced \(vk cluster maintenance off ends it\)\n$/);
  });
});

test('the password and the env values appeared in nothing vk printed', () => {
  assert.ok(printed.length > 60, `${printed.length} outputs checked`);
  for (const text of printed) {
    assert.ok(!text.includes(PW), `the password was printed: ${text}`);
    assert.ok(!text.includes(TOKEN), `an env value was printed: ${text}`);
  }
});
