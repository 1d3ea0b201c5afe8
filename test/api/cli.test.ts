// `vk api` and `vk api token` as a user runs them (the real vk binary), and vk and the API agree:
// what one writes the other reads the same, and `vk get vms -o json` equals GET /vm.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseTokenFile } from '../../api/auth.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeNodeStatus, ZkPaths } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { VK, vkFor, type Vk } from '../cli/helpers.ts';

const root = '/apicli';
const paths = new ZkPaths(root);
let server: ZkServer;
let store: ZkStore;
let vk: Vk;
let dir: string;

const XML = (name: string) => `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  vk = vkFor(server.connectString, root);
  dir = mkdtempSync(join(tmpdir(), 'vk-api-'));
  for (const node of ['hv1', 'hv2']) {
    await store.create(paths.nodeStatus(node), encodeNodeStatus({
      daemonState: 'run', domainState: 'ready',
      memory: { totalMiB: 8000, usedMiB: 1000, freeMiB: 7000, allocatedMiB: 0, provisionedMiB: 0 },
      vcpus: { total: 4, allocated: 0 }, load: 0, runningVms: [], keepaliveAt: new Date().toISOString(), version: 'test', conditions: [],
    }), { parents: true });
    await store.create(paths.nodeAlive(node), '', { mode: 'ephemeral' });
  }
});

after(async () => {
  await store?.close();
  await server?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function token(scope: string, name: string): Promise<{ token: string; line: string }> {
  const made = await vk('api', 'token', '--scope', scope, '--name', name);
  assert.equal(made.code, 0, made.stderr);
  const [tokenLine, lineLine] = made.stdout.trimEnd().split('\n');
  return { token: tokenLine!.replace(/^token: /, ''), line: lineLine!.replace(/^line: +/, '') };
}

/** Starts `vk api` and resolves with its URL once it listens. */
function startApi(...args: string[]): Promise<{ url: string; stop(): Promise<number | null>; stderr(): string; stdout(): string }> {
  const child = spawn(process.execPath, [VK, 'api', ...args], { env: vk.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vk api did not start: ${stderr}`)), 30_000);
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      const m = /listening on (http:\/\/[^\s]+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1]!,
          stderr: () => stderr,
          stdout: () => stdout,
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`vk api exited ${code}: ${stderr} ${stdout}`)));
  });
}

describe('vk api token', () => {
  test('prints a token and its hashed line; the line is a valid token file line and holds no token', async () => {
    const made = await token('admin', 'ops');
    assert.match(made.token, /^vk_[A-Za-z0-9_-]{43}$/);
    const set = parseTokenFile(`${made.line}\n`, 'f');
    assert.deepEqual([...set.values()], [{ scope: 'admin', name: 'ops' }]);
    assert.ok(!made.line.includes(made.token));
    const other = await token('admin', 'ops');
    assert.notEqual(other.token, made.token, 'random');
  });
});

describe('vk api', () => {
  test('refuses a non-loopback address without tokens (exit 2), and a bad --listen', async () => {
    const open = await vk('api', '--listen', '0.0.0.0:0');
    assert.equal(open.code, 2);
    assert.match(open.stderr, /^vk: --listen: 0\.0\.0\.0 is not a loopback address and no credential is required/);
    const bad = await vk('api', '--listen', 'localhost');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--listen: invalid value "localhost"/);
    const missing = await vk('api', '--token-file', join(dir, 'nope'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--token-file: cannot read/);
  });

  test('serves with tokens; vk and the API write and read the same VM; SIGTERM stops it', async () => {
    const admin = await token('admin', 'ops');
    const reader = await token('read', 'dash');
    const file = join(dir, 'tokens');
    writeFileSync(file, `# tokens\n${admin.line}\n${reader.line}\n`);
    const api = await startApi('--listen', '127.0.0.1:0', '--token-file', file);
    try {
      const auth = (t: string) => ({ authorization: `Bearer ${t}`, 'content-type': 'application/json' });
      assert.equal((await fetch(`${api.url}/vm`)).status, 401);
      const defined = await fetch(`${api.url}/vm`, { method: 'POST', headers: auth(admin.token), body: JSON.stringify({ xml: XML('pvc1'), meta: { nodeLimit: ['hv1', 'hv2'] }, node: 'hv1' }) });
      assert.equal(defined.status, 201, await defined.clone().text());
      // vk sees what the API wrote, as the API returns it.
      const listed = await vk('get', 'vms', '-o', 'json');
      assert.equal(listed.code, 0, listed.stderr);
      const viaApi = (await (await fetch(`${api.url}/vm`, { headers: auth(reader.token) })).json()) as unknown[];
      assert.deepEqual(viaApi, JSON.parse(listed.stdout));
      // The API sees what vk writes.
      const meta = await vk('vm', 'meta', 'pvc1', '--selector', 'load');
      assert.equal(meta.code, 0, meta.stderr);
      assert.equal(meta.stdout, 'vm/pvc1 configured\n');
      const one = (await (await fetch(`${api.url}/vm/pvc1`, { headers: auth(reader.token) })).json()) as { spec: { meta: { nodeSelector: string } }; generation: number; xml: string };
      assert.equal(one.spec.meta.nodeSelector, 'load');
      const { xml, ...rest } = one as unknown as Record<string, unknown>;
      assert.equal(xml, XML('pvc1'));
      assert.deepEqual(rest, JSON.parse((await vk('get', 'vms', 'pvc1', '-o', 'json')).stdout)[0]);
      // PVC's second call, then vk reads it.
      const changed = await fetch(`${api.url}/vm/pvc1`, { method: 'POST', headers: auth(admin.token), body: JSON.stringify({ meta: { autostart: true } }) });
      assert.equal(changed.status, 200);
      assert.equal(((await changed.json()) as { generation: number }).generation, one.generation + 1);
      const wide = await vk('get', 'vms', 'pvc1', '-o', 'wide');
      assert.match(wide.stdout, /pvc1\s+hv1\s+running\s+-\s+-\s+hv1,hv2\s+load\s+yes/);
    } finally {
      assert.equal(await api.stop(), 0, api.stderr());
    }
    const log = api.stdout() + api.stderr();
    assert.match(api.stdout(), /"reqId":"[0-9a-f-]{36}"/, 'request logs (pino JSON on stdout) carry a request id');
    assert.ok(!log.includes(admin.token) && !log.includes(reader.token), 'no token in the log');
  });
});
