// What the REST API tests share: a real ZooKeeper with two live nodes, the API server on
// 127.0.0.1 (port 0) with an admin and a read token, an HTTP client, and the "nothing written"
// check (every znode's data and child version under the root, compared before and after).
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { ZkStore } from '../../drivers/zk/index.ts';
import { decodeVmSpec, encodeNodeStatus, ZkPaths, type VmSpec } from '../../schemas/index.ts';
import { buildApi, type ApiOptions } from '../../api/server.ts';
import { newToken, parseTokenFile } from '../../api/auth.ts';
import { ensureLayout } from '../../cli/connect.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

export interface Reply {
  status: number;
  json: any;
}

export function nodeStatus(runningVms: string[] = []): string {
  return encodeNodeStatus({
    daemonState: 'run',
    domainState: 'ready',
    memory: { totalMiB: 8000, usedMiB: 1000, freeMiB: 7000, allocatedMiB: 100, provisionedMiB: 100 },
    vcpus: { total: 16, allocated: 2 },
    load: 0.5,
    runningVms,
    keepaliveAt: new Date().toISOString(),
    version: 'test',
    conditions: [],
  });
}

export class ApiFixture {
  readonly paths: ZkPaths;
  readonly admin = newToken('admin', 'ops');
  readonly reader = newToken('read', 'dashboard');
  server!: ZkServer;
  store!: ZkStore;
  app!: FastifyInstance;
  base!: string;

  constructor(readonly root: string) {
    this.paths = new ZkPaths(root);
  }

  /** ZooKeeper, the layout, live nodes hv1 and hv2, and the server. */
  async start(options: { log?: ApiOptions['log'] } = {}): Promise<this> {
    this.server = await startZooKeeper();
    this.store = await ZkStore.connect({ connectString: this.server.connectString, sessionTimeoutMs: 10_000 });
    await ensureLayout({ store: this.store, paths: this.paths, connectString: this.server.connectString, connectTimeoutMs: 10_000 });
    for (const node of ['hv1', 'hv2']) {
      await this.store.create(this.paths.nodeStatus(node), nodeStatus(), { parents: true });
      await this.store.create(this.paths.nodeAlive(node), '', { mode: 'ephemeral' });
    }
    const tokens = parseTokenFile(`# test tokens\n${this.admin.line}\n\n${this.reader.line}\n`, 'tokens');
    this.app = await buildApi({ store: this.store, paths: this.paths, auth: tokens, connectString: this.server.connectString, log: options.log ?? false });
    this.base = await this.app.listen({ host: '127.0.0.1', port: 0 });
    return this;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    await this.store?.close();
    await this.server?.cleanup();
  }

  /** One request; a string body is sent as is, anything else as JSON. */
  async call(method: string, path: string, body?: unknown, token: string | null = this.admin.token): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, { method, headers, ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, json: text === '' ? null : JSON.parse(text) };
  }

  /** Every znode under the root with its data version and child version: any write changes it. */
  async versions(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const walk = async (path: string) => {
      const stat = await this.store.exists(path);
      if (!stat) return;
      out[path] = `${stat.version}/${stat.cversion}`;
      for (const child of (await this.store.children(path)) ?? []) await walk(`${path}/${child}`);
    };
    await walk(this.root);
    return out;
  }

  /** Asserts that `fn` answers `status` with the JSON error shape and writes nothing; returns the error. */
  async refused(status: number, fn: () => Promise<Reply>, expect: { reason?: string; field?: string; message?: RegExp } = {}): Promise<{ reason: string; message: string; field?: string; currentVersion?: number }> {
    const before = await this.versions();
    const res = await fn();
    assert.equal(res.status, status, JSON.stringify(res.json));
    assert.equal(typeof res.json.error.message, 'string');
    assert.equal(typeof res.json.error.reason, 'string');
    if (expect.reason) assert.equal(res.json.error.reason, expect.reason);
    if (expect.field) assert.equal(res.json.error.field, expect.field, res.json.error.message);
    if (expect.message) assert.match(res.json.error.message, expect.message);
    assert.deepEqual(await this.versions(), before, 'nothing written');
    return res.json.error;
  }

  async spec(vm: string): Promise<VmSpec & { version: number }> {
    const node = await this.store.get(this.paths.vmSpec(vm));
    assert.ok(node, `vm ${vm} has a spec`);
    return { ...decodeVmSpec(node.data), version: node.version };
  }
}

/** Reads a streamed reply: `until(pattern)` reads on until the text so far matches; `text()` is all read. */
export function streamReader(res: Response): { until(pattern: RegExp): Promise<void>; text(): string; cancel(): Promise<void> } {
  const body = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    async until(pattern) {
      while (!pattern.test(text)) {
        const { value, done } = await body.read();
        if (done) throw new Error(`stream ended before ${pattern}: ${text}`);
        text += decoder.decode(value, { stream: true });
      }
    },
    text: () => text,
    cancel: () => body.cancel(),
  };
}
