// Property: requests generated (fast-check) from the served OpenAPI document, valid and not, each
// get one of the responses the document lists for the operation, with a body that matches that
// response's schema (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses), never a 5xx, and the server
// keeps serving. Real server on 127.0.0.1, real ZooKeeper.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dereference } from '@readme/openapi-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../api/server.ts';
import { newToken, parseTokenFile } from '../../api/auth.ts';
import { ensureLayout } from '../../cli/connect.ts';
import { ZkStore } from '../../drivers/zk/index.ts';
import { encodeNetworkSpec, encodeNodeStatus, VM_MIGRATION_METHODS, VM_NODE_SELECTORS, VM_STATES, ZkPaths } from '../../schemas/index.ts';
import { startZooKeeper, type ZkServer } from '../rig/zookeeper.ts';

const paths = new ZkPaths('/prop');
let server: ZkServer;
let store: ZkStore;
let app: FastifyInstance;
let base: string;
const admin = newToken('admin', 'prop');

interface Operation {
  method: string;
  path: string;
  responses: Record<string, { content?: { 'application/json'?: { schema?: object } } }>;
  hasBody: boolean;
  query: string[];
}

before(async () => {
  server = await startZooKeeper();
  store = await ZkStore.connect({ connectString: server.connectString, sessionTimeoutMs: 10_000 });
  await ensureLayout({ store, paths, connectString: server.connectString, connectTimeoutMs: 10_000 });
  for (const node of ['hv1', 'hv2']) {
    await store.create(
      paths.nodeStatus(node),
      encodeNodeStatus({
        daemonState: 'run',
        domainState: 'ready',
        memory: { totalMiB: 8000, usedMiB: 1000, freeMiB: 7000, allocatedMiB: 0, provisionedMiB: 0 },
        vcpus: { total: 4, allocated: 0 },
        load: 0,
        runningVms: [],
        keepaliveAt: new Date().toISOString(),
        version: 'test',
        conditions: [],
      }),
      { parents: true },
    );
    await store.create(paths.nodeAlive(node), '', { mode: 'ephemeral' });
  }
  await store.create(paths.networkSpec('100'), encodeNetworkSpec({ type: 'bridged' }), { parents: true });
  app = await buildApi({ store, paths, auth: parseTokenFile(admin.line, 'tokens'), log: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app?.close();
  await store?.close();
  await server?.cleanup();
});

const names = fc.oneof(
  { arbitrary: fc.constantFrom('vm1', 'vm2', 'vm3', 'vm4', 'hv1', 'hv2', '100', 'nosuch'), weight: 5 },
  { arbitrary: fc.oneof(fc.constantFrom('UPPER', 'a_b', ''), fc.string({ maxLength: 20 })), weight: 1 },
);
const xmlFor = (name: string) => `<domain type='test'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;
/** Mostly valid values (so writes get through), sometimes anything. */
const mostly = <T,>(valid: fc.Arbitrary<T>, other: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: valid, weight: 5 }, { arbitrary: other, weight: 1 });
const meta = fc.record(
  {
    nodeLimit: mostly(fc.subarray(['hv1', 'hv2']), fc.oneof(fc.array(fc.string({ maxLength: 8 })), fc.jsonValue())),
    nodeSelector: mostly(fc.constantFrom(...VM_NODE_SELECTORS), fc.jsonValue()),
    autostart: mostly(fc.boolean(), fc.jsonValue()),
    migrationMethod: mostly(fc.constantFrom(...VM_MIGRATION_METHODS), fc.string()),
    maxDowntimeMs: mostly(fc.integer({ min: 1, max: 100_000 }), fc.oneof(fc.integer({ min: -5, max: 0 }), fc.double(), fc.string())),
  },
  { requiredKeys: [] },
);
const state = mostly(fc.constantFrom(...VM_STATES), fc.jsonValue());
const node = mostly(fc.constantFrom('hv1', 'hv2'), fc.oneof(fc.constant('hv9'), fc.jsonValue()));
const body = fc.oneof(
  fc.record({ xml: fc.oneof(fc.constantFrom('vm1', 'vm2', 'vm3').map(xmlFor), fc.string()), meta, node, state }, { requiredKeys: ['xml'] }),
  fc.record({ meta, state, node, generation: fc.oneof(fc.nat(5), fc.jsonValue()) }, { requiredKeys: [] }),
  fc.record({ kind: fc.constant('VM'), metadata: fc.record({ name: fc.constantFrom('vm4', 'vm5') }), spec: fc.record({ node, state, xml: fc.constantFrom('vm4', 'vm5').map(xmlFor) }, { requiredKeys: [] }) }),
  // POST /apply|/diff|/plan: manifests (mostly VM and Network documents) or YAML text.
  fc.record(
    {
      manifests: mostly(
        fc.array(
          fc.oneof(
            fc.record({ apiVersion: fc.constant('virtkeeper/v1'), kind: fc.constant('VM'), metadata: fc.record({ name: fc.constantFrom('vm6', 'vm7') }), spec: fc.record({ node, state, xml: fc.constantFrom('vm6', 'vm7').map(xmlFor) }, { requiredKeys: [] }) }),
            fc.record({ apiVersion: fc.constant('virtkeeper/v1'), kind: fc.constant('Network'), metadata: fc.record({ name: fc.constantFrom('300', '301', '0') }), spec: fc.record({ type: mostly(fc.constantFrom('managed', 'bridged'), fc.string()) }) }),
            fc.jsonValue(),
          ),
          { maxLength: 3 },
        ),
        fc.jsonValue(),
      ),
      yaml: fc.oneof(fc.constant('kind: Network\napiVersion: virtkeeper/v1\nmetadata: {name: "302"}\nspec: {type: managed}\n'), fc.string({ maxLength: 40 })),
      dryRun: mostly(fc.boolean(), fc.jsonValue()),
    },
    { requiredKeys: [] },
  ),
  // POST /network.
  fc.record({ vni: mostly(fc.constantFrom('100', '200', '201'), fc.jsonValue()), spec: fc.record({ type: mostly(fc.constantFrom('managed', 'bridged'), fc.string()), mtu: mostly(fc.integer({ min: 576, max: 1450 }), fc.jsonValue()) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
  fc.jsonValue(),
);
/** Query values; a timeout is always tiny or not a number, so a waitFor never waits long. */
const queryValue = (key: string) =>
  // follow=true is a stream that never ends (test/api/verbs.test.ts covers it): only its refusals here.
  key === 'follow'
    ? fc.constantFrom('false', 'yes', '')
    : key === 'timeout'
    ? fc.constantFrom('0.01', '0.05', '0', '-1', 'x', '1e9')
    : key === 'force'
      ? mostly(fc.constantFrom('true', 'false'), fc.string({ maxLength: 6 }))
      : mostly(fc.constantFrom('0', '1', '99'), fc.oneof(fc.constantFrom('-1', 'x'), fc.string({ maxLength: 6 })));

test('generated requests get documented responses whose bodies match their schemas', async () => {
  const raw = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, any>> };
  const doc = (await dereference(structuredClone(raw) as never)) as unknown as typeof raw;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const query = ((op.parameters ?? []) as Array<{ in: string; name: string }>).filter((p) => p.in === 'query').map((p) => p.name);
      operations.push({ method: method.toUpperCase(), path, responses: op.responses, hasBody: op.requestBody !== undefined, query });
    }
  }
  assert.ok(operations.length >= 9, `${operations.length} operations`);
  const validators = new Map<object, ReturnType<typeof ajv.compile>>();
  const validatorFor = (schema: object) => {
    let v = validators.get(schema);
    if (!v) {
      v = ajv.compile(schema);
      validators.set(schema, v);
    }
    return v;
  };
  const request = fc.constantFrom(...operations).chain((op) =>
    fc.record({
      op: fc.constant(op),
      params: fc.array(names, { minLength: 2, maxLength: 2 }),
      query: fc.record(Object.fromEntries(op.query.map((k) => [k, queryValue(k)])), { requiredKeys: [] }),
      body: op.hasBody ? fc.option(body, { nil: undefined, freq: 8 }) : fc.constant(undefined),
      rawBody: fc.oneof({ arbitrary: fc.constant(undefined), weight: 9 }, { arbitrary: fc.string({ maxLength: 30 }), weight: 1 }),
    }),
  );
  let count = 0;
  const seen = new Set<string>();
  await fc.assert(
    fc.asyncProperty(request, async ({ op, params, query, body, rawBody }) => {
      count++;
      let i = 0;
      const path = op.path.replace(/\{[^}]+\}/g, () => encodeURIComponent(params[i++] ?? ''));
      // A wait with no timeout lasts the default 120 s for a generation no daemon here acts on.
      const q = { ...(query as Record<string, string>) };
      if ('waitFor' in q && !('timeout' in q)) q.timeout = '0.05';
      const qs = new URLSearchParams(q).toString();
      const headers: Record<string, string> = { authorization: `Bearer ${admin.token}` };
      let payload: string | undefined;
      if (op.hasBody && (body !== undefined || rawBody !== undefined)) {
        headers['content-type'] = 'application/json';
        payload = rawBody ?? JSON.stringify(body);
      }
      const res = await fetch(`${base}${path}${qs ? `?${qs}` : ''}`, { method: op.method, headers, ...(payload !== undefined && { body: payload }) });
      const text = await res.text();
      const what = `${op.method} ${path}?${qs} ${payload ?? ''} → ${res.status} ${text.slice(0, 300)}`;
      seen.add(`${op.method} ${op.path} ${res.status}`);
      // Keep the one network the reads find (GET /network/{vni} 200 must stay reachable).
      if (op.method === 'DELETE' && op.path === '/network/{vni}' && res.status === 200 && !(await store.exists(paths.networkSpec('100')))) {
        await store.create(paths.networkSpec('100'), encodeNetworkSpec({ type: 'bridged' }), { parents: true });
      }
      assert.ok(res.status < 500, what);
      const documented = op.responses[String(res.status)];
      assert.ok(documented, `undocumented status: ${what}`);
      const schema = documented.content?.['application/json']?.schema;
      if (schema) {
        const validate = validatorFor(schema);
        assert.ok(validate(JSON.parse(text)), `${what}\n${ajv.errorsText(validate.errors)}`);
      }
    }),
    // Enough runs that each operation is drawn about 60 times: the not-vacuous checks below need hits that
    // one draw in ten makes (GET /network/{vni} 200 needs the one existing VNI), so each misses with p < 0.2 %.
    { numRuns: Math.max(300, operations.length * 60), seed: Number(process.env.VK_PROPERTY_SEED ?? Date.now() % 2 ** 31), verbose: true },
  );
  assert.equal(count >= 300, true);
  // Not vacuous: writes succeeded and failed, reads found and missed.
  for (const expected of ['POST /apply 400', 'POST /network 400', 'POST /vm 201', 'POST /vm 400', 'GET /vm/{name} 404', 'GET /vm 200', 'POST /vm/{name} 400', 'GET /node/{name} 200', 'GET /network/{vni} 200']) {
    assert.ok(seen.has(expected), `saw ${expected} (seen: ${[...seen].sort().join(', ')})`);
  }
  assert.equal((await fetch(`${base}/openapi.json`)).status, 200, 'still serving');
});
