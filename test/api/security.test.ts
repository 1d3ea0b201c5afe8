// The REST API's transport and credentials (issue 19), against the real server and a real
// ZooKeeper: HTTPS with a certificate made here by openssl, client certificates signed by a CA
// (refused without one in the TLS handshake; the certificate's name and scope when it is the
// credential), bearer tokens stored in ZooKeeper (vk api token --store / revoke, followed by the
// server without a restart; a znode that does not parse keeps the last good set), the per-client
// rate limit (429, Retry-After, the JSON error shape), and no token in any log line.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../api/server.ts';
import { hashToken, newToken, parseTokenFile } from '../../api/auth.ts';
import { ZkTokens } from '../../api/tokens.ts';
import { storeApiToken } from '../../core/api-tokens.ts';
import { waitFor } from '../rig/wait.ts';
import { vkFor, type Vk } from '../cli/helpers.ts';
import { ApiFixture } from './helpers.ts';

const fx = new ApiFixture('/apisec');
const dir = mkdtempSync(join(tmpdir(), 'vk-apisec-'));
const pem = (name: string) => join(dir, name);
let vk: Vk;
const apps: FastifyInstance[] = [];
const logLines: string[] = [];
const logStream = new Writable({
  write(chunk, _enc, done) {
    logLines.push(...String(chunk).split('\n').filter((l) => l !== ''));
    done();
  },
});

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA. */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=vk test CA', '-keyout', pem('ca.key'), '-out', pem('ca.crt'));
  for (const [name, subject, ext] of [
    ['server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1'],
    ['client', '/CN=dashboard', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', pem(`${name}.key`), '-out', pem(`${name}.csr`));
    writeFileSync(pem(`${name}.ext`), `${ext}\n`);
    openssl('x509', '-req', '-in', pem(`${name}.csr`), '-CA', pem('ca.crt'), '-CAkey', pem('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', pem(`${name}.ext`), '-out', pem(`${name}.crt`));
  }
}

interface HttpsReply {
  status: number;
  json: any;
}

/** One HTTPS request trusting the test CA, with the client certificate when asked. */
function httpsCall(base: string, method: string, path: string, opts: { clientCert?: boolean; token?: string; body?: unknown } = {}): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      {
        method,
        ca: readFileSync(pem('ca.crt')),
        ...(opts.clientCert && { cert: readFileSync(pem('client.crt')), key: readFileSync(pem('client.key')) }),
        headers: { ...(opts.token && { authorization: `Bearer ${opts.token}` }), ...(opts.body !== undefined && { 'content-type': 'application/json' }) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text === '' ? null : JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(JSON.stringify(opts.body));
    req.end();
  });
}

async function serve(options: Partial<Parameters<typeof buildApi>[0]>): Promise<string> {
  const app = await buildApi({ store: fx.store, paths: fx.paths, auth: null, log: { stream: logStream }, ...options });
  apps.push(app);
  return app.listen({ host: '127.0.0.1', port: 0 });
}

before(async () => {
  makeCertificates();
  await fx.start({ log: { stream: logStream } });
  vk = vkFor(fx.server.connectString, fx.root);
});

after(async () => {
  for (const app of apps) await app.close();
  await fx.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  test('HTTPS with a certificate and key; a plain HTTP request to it gets no answer', async () => {
    const base = await serve({ auth: parseTokenFile(fx.admin.line, 'tokens'), https: { cert: readFileSync(pem('server.crt')), key: readFileSync(pem('server.key')) } });
    assert.match(base, /^https:\/\/127\.0\.0\.1:/);
    const res = await httpsCall(base, 'GET', '/node', { token: fx.admin.token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.map((n: { name: string }) => n.name).sort(), ['hv1', 'hv2']);
    await assert.rejects(fetch(base.replace('https:', 'http:') + '/node'), 'plain HTTP is not served');
  });

  test('client certificates: none is refused in the handshake; one the CA signed is the credential (its CN, the scope given)', async () => {
    const tls = { cert: readFileSync(pem('server.crt')), key: readFileSync(pem('server.key')), ca: readFileSync(pem('ca.crt')) };
    const admin = await serve({ https: tls });
    await assert.rejects(httpsCall(admin, 'GET', '/node'), 'no client certificate: the TLS handshake fails');
    const ok = await httpsCall(admin, 'GET', '/node', { clientCert: true });
    assert.equal(ok.status, 200);
    assert.ok(logLines.some((l) => l.includes('"tokenName":"cert:dashboard"') && l.includes('"scope":"admin"')), 'the certificate\'s name is the identity in the log');
    const readOnly = await serve({ https: tls, clientCertScope: 'read' });
    const before = await fx.versions();
    const refused = await httpsCall(readOnly, 'POST', '/node/hv1/flush', { clientCert: true, body: {} });
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error.reason, 'Forbidden');
    assert.match(refused.json.error.message, /client certificate cert:dashboard has scope read/);
    assert.deepEqual(await fx.versions(), before, 'nothing written');
  });
});

describe('tokens stored in ZooKeeper', () => {
  test('a stored token works at once, a revoked one is refused at once, a bad znode keeps the last good set', async () => {
    const zkTokens = new ZkTokens(fx.store, fx.paths, { info: () => undefined, error: (o, m) => logLines.push(JSON.stringify({ ...o, msg: m })) });
    try {
      const base = await serve({ auth: zkTokens });
      const ops = newToken('admin', 'zk-ops');
      assert.equal((await fetch(`${base}/vm`, { headers: { authorization: `Bearer ${ops.token}` } })).status, 401, 'not stored yet');
      assert.equal((await vk('api', 'token', '--scope', 'read', '--name', 'grafana', '--store')).code, 0);
      await storeApiToken({ store: fx.store, paths: fx.paths, connectString: fx.server.connectString, connectTimeoutMs: 10_000 }, ops.line);
      await waitFor('the stored token works', async () => (await fetch(`${base}/vm`, { headers: { authorization: `Bearer ${ops.token}` } })).status === 200, 5_000);
      const listed = await vk('api', 'tokens');
      assert.match(listed.stdout, /grafana\s+read/);
      assert.match(listed.stdout, /zk-ops\s+admin/);
      assert.ok(!listed.stdout.includes(hashToken(ops.token)), 'no hash listed');
      const again = await vk('api', 'token', '--scope', 'admin', '--name', 'zk-ops', '--store');
      assert.equal(again.code, 1, 'a name stored already is refused');
      assert.match(again.stderr, /revoke it first/);

      // A znode that does not parse: the server keeps the tokens it had.
      const got = (await fx.store.get(fx.paths.apiTokens))!;
      await fx.store.set(fx.paths.apiTokens, `${got.data.toString()}not a token line\n`, got.version);
      await waitFor('the bad znode is reported', () => logLines.some((l) => l.includes('does not parse')), 5_000);
      assert.equal((await fetch(`${base}/vm`, { headers: { authorization: `Bearer ${ops.token}` } })).status, 200, 'the last good set is kept');
      const broken = await vk('api', 'revoke', 'zk-ops');
      assert.notEqual(broken.code, 0, 'vk refuses to edit a znode that does not parse');
      const fixed = (await fx.store.get(fx.paths.apiTokens))!;
      await fx.store.set(fx.paths.apiTokens, fixed.data.toString().replace('not a token line\n', ''), fixed.version);

      const revoked = await vk('api', 'revoke', 'zk-ops');
      assert.equal(revoked.code, 0, revoked.stderr);
      await waitFor('the revoked token is refused', async () => (await fetch(`${base}/vm`, { headers: { authorization: `Bearer ${ops.token}` } })).status === 401, 5_000);
      assert.equal((await vk('api', 'revoke', 'zk-ops')).code, 1, 'revoking a name not stored: exit 1');
      assert.ok(!logLines.some((l) => l.includes(ops.token)), 'the token is in no log line');
    } finally {
      zkTokens.stop();
    }
  });
});

describe('rate limit', () => {
  test('over the limit: 429 with Retry-After and the error shape, per token, nothing written', async () => {
    const base = await serve({ auth: parseTokenFile(`${fx.admin.line}\n${fx.reader.line}\n`, 'tokens'), rateLimit: { perSecond: 1, burst: 3 } });
    const get = (token: string) => fetch(`${base}/node`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 3; i++) assert.equal((await get(fx.admin.token)).status, 200, `request ${i + 1} of the burst`);
    const before = await fx.versions();
    const over = await fetch(`${base}/node/hv1/flush`, { method: 'POST', headers: { authorization: `Bearer ${fx.admin.token}` } });
    assert.equal(over.status, 429);
    assert.ok(Number(over.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
    const body = (await over.json()) as { error: { reason: string; message: string } };
    assert.equal(body.error.reason, 'RateLimited');
    assert.match(body.error.message, /more than 1 requests per second/);
    assert.deepEqual(await fx.versions(), before, 'nothing written');
    assert.equal((await get(fx.reader.token)).status, 200, 'another token has its own bucket');
  });

  test('every route documents 429', async () => {
    const doc = (await (await fetch(`${fx.base}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) assert.ok(op.responses['429'], `${method} ${path} documents 429`);
  });
});

describe('vk api flags', () => {
  test('TLS and rate-limit flags are checked before listening: exit 2 naming the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--tls-cert', pem('server.crt')], /--tls-cert and --tls-key go together/],
      [['--client-ca', pem('ca.crt')], /--client-ca needs --tls-cert/],
      [['--tls-cert', pem('nope.crt'), '--tls-key', pem('server.key')], /--tls-cert: cannot read/],
      [['--tls-cert', pem('server.key'), '--tls-key', pem('server.key')], /not a usable certificate and key/],
      [['--rate-limit', 'fast'], /--rate-limit: invalid value "fast"/],
      [['--listen', '0.0.0.0:0'], /no credential is required/],
    ];
    for (const [args, message] of cases) {
      const res = await vk('api', ...args);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message);
    }
  });
});
