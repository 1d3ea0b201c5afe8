// PVC's two calls end to end with a real daemon (libvirt's test driver): POST /vm with XML + meta
// defines a VM that the daemon then starts; POST /vm/{vm} with new meta changes it, and a state
// change through the API reaches the domain; `vk describe vm` shows what GET /vm/{vm} returns.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../api/server.ts';
import { newToken, parseTokenFile } from '../../api/auth.ts';
import type { RunningDaemon } from '../../daemon/daemon.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';
import { daemonConfig, domainState, paths, runDaemon, startHv, stopHv, testXml, type HvRig } from '../rig/testdriver.ts';
import { waitFor } from '../rig/wait.ts';
import { vkFor } from '../cli/helpers.ts';

let zk: ZkServer;
let store: ZkStore;
let hv1: HvRig;
let daemon: RunningDaemon | undefined;
let app: FastifyInstance;
let base: string;
const admin = newToken('admin', 'pvc');

before(async () => {
  zk = await startZooKeeper();
  store = await ZkStore.connect({ connectString: zk.connectString });
  hv1 = await startHv('hv1');
  daemon = await runDaemon(daemonConfig('hv1', zk.connectString, hv1.libvirtd.socketPath, { keepaliveMs: 500 }));
  await waitFor('hv1 registered', async () => (await store.exists(paths.nodeAlive('hv1'))) !== null);
  app = await buildApi({ store, paths, auth: parseTokenFile(admin.line, 'tokens'), connectString: zk.connectString, log: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app?.close();
  await daemon?.stop().catch(() => undefined);
  await store?.close().catch(() => undefined);
  if (hv1) await stopHv(hv1);
  await zk?.cleanup();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

test("PVC's POST /vm and POST /vm/{vm} against a running daemon", async () => {
  const defined = await call('POST', '/vm', { xml: testXml('pvc1', 64, 1), meta: { nodeLimit: ['hv1'], migrationMethod: 'live' } });
  assert.equal(defined.status, 201, JSON.stringify(defined.json));
  assert.equal(defined.json.node, 'hv1', 'chosen by the selector: the only node');
  const running = await call('GET', `/vm/pvc1?waitFor=${defined.json.generation}&timeout=30`);
  assert.equal(running.json.wait.result, 'done', JSON.stringify(running.json.wait));
  assert.equal(running.json.status.phase, 'Running');
  assert.equal(await domainState(hv1, 'pvc1'), 'running');

  const changed = await call('POST', '/vm/pvc1', { meta: { autostart: true, maxDowntimeMs: 800 } });
  assert.equal(changed.status, 200, JSON.stringify(changed.json));
  assert.equal(changed.json.generation, defined.json.generation + 1);
  const seen = await call('GET', `/vm/pvc1?waitFor=${changed.json.generation}&timeout=30`);
  assert.equal(seen.json.wait.result, 'done', JSON.stringify(seen.json.wait));
  assert.equal(seen.json.status.observedGeneration, changed.json.generation);
  assert.equal(seen.json.spec.meta.autostart, true);
  assert.equal(seen.json.spec.meta.maxDowntimeMs, 800);

  // vk describe shows what the API returns.
  const vk = vkFor(zk.connectString, paths.root);
  const described = await vk('describe', 'vm', 'pvc1');
  assert.equal(described.code, 0, described.stderr);
  assert.match(described.stdout, new RegExp(`Generation:\\s+${changed.json.generation}\\n`));
  assert.match(described.stdout, /Phase:\s+Running/);
  assert.match(described.stdout, /autostart: true/);
  assert.match(described.stdout, /maxDowntimeMs: 800/);
  const listed = JSON.parse((await vk('get', 'vms', 'pvc1', '-o', 'json')).stdout)[0];
  const now = (await call('GET', '/vm/pvc1')).json;
  assert.deepEqual({ spec: listed.spec, generation: listed.generation, phase: listed.status.phase }, { spec: now.spec, generation: now.generation, phase: now.status.phase });

  // A state change through the API reaches the domain.
  const stopped = await call('POST', '/vm/pvc1', { state: 'stopped' });
  assert.equal(stopped.status, 200);
  const off = await call('GET', `/vm/pvc1?waitFor=${stopped.json.generation}&timeout=60`);
  assert.equal(off.json.wait.result, 'done', JSON.stringify(off.json.wait));
  assert.equal(off.json.status.phase, 'Stopped');
  assert.notEqual(await domainState(hv1, 'pvc1'), 'running');

  const removed = await call('DELETE', '/vm/pvc1');
  assert.equal(removed.status, 200);
  await waitFor('domain undefined', async () => (await domainState(hv1, 'pvc1')) === null, 30_000);
});
