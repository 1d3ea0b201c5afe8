// /vm routes: list, read (with ?waitFor=), define (PVC's POST /vm), change (PVC's POST /vm/{vm}),
// remove. Every write is core/vm.ts's, the CLI's own; a write answers at once with the generation
// to wait for.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { readAllVms, readVmOrFail } from '../../cli/cluster.ts';
import type { Cluster } from '../../cli/connect.ts';
import { vmJson } from '../../cli/commands/get.ts';
import { ValidationError } from '../../schemas/index.ts';
import { changeVm, defineVm, migrateVm, moveVm, prepareDefine, prepareDefineManifest, removeVm, requestFlushLocks, restartVm, unmigrateVm } from '../../core/vm.ts';
import { ChangeBody, DefineBody, errorResponses, FlushLocksResult, MigrateBody, MoveBody, RemoveQuery, VmDetail, VmNameParams, VmQuery, VmView, WriteResult } from '../schemas.ts';
import { waitForGeneration } from '../wait.ts';

/**
 * The core validates a VM's spec, so its errors name spec fields (`spec.node`); the XML form of
 * POST /vm and POST /vm/{name} take those fields at the top of the body (`node`, `meta.…`), and
 * their errors name them so.
 */
async function withBodyFields<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!(error instanceof ValidationError) || !error.issues.some((i) => i.field.startsWith('spec.'))) throw error;
    throw ValidationError.fromIssues(
      error.issues.map((i) => ({ ...i, field: i.field.replace(/^spec\./, '') })),
      error.source,
    );
  }
}

const errors = errorResponses(400, 401, 403, 404, 409, 503);

export function vmRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { store, paths } = cluster;

  api.get('/vm', { schema: { tags: ['vm'], summary: 'list VMs with their status (as vk get vms -o json)', response: { 200: z.array(VmView), ...errorResponses(401, 503) } } }, async () => {
    const vms = await readAllVms(store, paths, { status: true, migration: true });
    return vms.map(vmJson);
  });

  api.get(
    '/vm/:name',
    {
      schema: {
        tags: ['vm'],
        summary: "a VM's spec, status, migration and XML; with waitFor, once it has acted on that generation",
        params: VmNameParams,
        querystring: VmQuery,
        response: { 200: VmDetail, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (req) => {
      const { name } = req.params;
      let wait: Awaited<ReturnType<typeof waitForGeneration>> | undefined;
      if (req.query.waitFor !== undefined) {
        await readVmOrFail(store, paths, name); // 404 at once, not after the timeout
        wait = await waitForGeneration(cluster, name, req.query.waitFor, req.query.timeout);
      }
      const vm = await readVmOrFail(store, paths, name, { status: true, migration: true });
      return { ...vmJson(vm), xml: vm.xml?.text ?? null, ...(wait && { wait }) };
    },
  );

  api.post(
    '/vm',
    {
      schema: {
        tags: ['vm'],
        summary: 'define a VM: {xml, meta?, node?, state?} (PVC) or a VM manifest; 409 when it exists',
        body: DefineBody,
        response: { 201: WriteResult, ...errorResponses(400, 401, 403, 409, 503) },
      },
    },
    async (req, reply) => {
      const body = req.body;
      const define = async () => {
        const prepared = 'kind' in body ? prepareDefineManifest(body, 'body') : prepareDefine({ xml: body.xml, xmlSource: 'xml', ...(body.state && { state: body.state }), ...(body.node && { node: body.node }), ...(body.meta && { meta: body.meta }) });
        return defineVm(cluster, prepared, { nodeField: 'kind' in body ? 'spec.node' : 'node', uuidField: `${prepared.xmlSource}/domain/uuid`, chooseHint: 'give node' });
      };
      const defined = 'kind' in body ? await define() : await withBodyFields(define);
      reply.code(201);
      return { name: defined.name, generation: defined.generation, changed: true, node: defined.node };
    },
  );

  api.post(
    '/vm/:name',
    { schema: { tags: ['vm'], summary: "change a VM's meta, state and node together (one generation)", params: VmNameParams, body: ChangeBody, response: { 200: WriteResult, ...errors } } },
    async (req) => {
      const { meta, state, node, generation } = req.body;
      const updated = await withBodyFields(() =>
        changeVm(cluster, req.params.name, { ...(meta && { meta }), ...(state && { state }), ...(node && { node }), ...(generation !== undefined && { generation }) }),
      );
      return { name: req.params.name, generation: updated.version, changed: updated.changed, node: updated.after.node };
    },
  );

  // The verbs (`vk vm migrate|unmigrate|move|restart|flush-locks`): core/vm.ts's writes, answered at once.
  const verb = { tags: ['vm'], params: VmNameParams };
  api.post(
    '/vm/:name/migrate',
    { schema: { ...verb, summary: 'migrate the VM (previousNode kept for unmigrate); 409 when it is already migrated (unless force) or already there', body: MigrateBody, response: { 200: WriteResult, ...errors } } },
    async (req) => {
      const { node, force, live } = req.body;
      const u = await migrateVm(cluster, req.params.name, { ...(node && { node }), ...(force && { force }), ...(live && { forceLive: live }), nodeField: 'node' });
      return { name: req.params.name, generation: u.version, changed: u.changed, node: u.target };
    },
  );
  api.post(
    '/vm/:name/unmigrate',
    { schema: { ...verb, summary: 'move a migrated VM back to its previous node; 409 when it has none', response: { 200: WriteResult, ...errors } } },
    async (req) => {
      const u = await unmigrateVm(cluster, req.params.name);
      return { name: req.params.name, generation: u.version, changed: u.changed, node: u.after.node };
    },
  );
  api.post(
    '/vm/:name/move',
    { schema: { ...verb, summary: 'move the VM permanently (no previous node kept)', body: MoveBody, response: { 200: WriteResult, ...errors } } },
    async (req) => {
      const u = await moveVm(cluster, req.params.name, { ...(req.body.node && { node: req.body.node }), nodeField: 'node' });
      return { name: req.params.name, generation: u.version, changed: u.changed, node: u.target };
    },
  );
  api.post(
    '/vm/:name/restart',
    { schema: { ...verb, summary: 'restart a running VM once (a new restartedAt)', response: { 200: WriteResult.extend({ restartedAt: z.string() }), ...errors } } },
    async (req) => {
      const u = await restartVm(cluster, req.params.name);
      return { name: req.params.name, generation: u.version, changed: u.changed, node: u.after.node, restartedAt: u.restartedAt };
    },
  );
  api.post(
    '/vm/:name/flush-locks',
    { schema: { ...verb, summary: "ask the VM's node to clear its RBD locks (a VM that runs nowhere); 409 otherwise, nothing written", response: { 202: FlushLocksResult, ...errors } } },
    async (req, reply) => {
      const r = await requestFlushLocks(cluster, req.params.name);
      reply.code(202);
      return { name: req.params.name, generation: r.version, node: r.node, at: r.at, images: r.images };
    },
  );

  api.delete(
    '/vm/:name',
    {
      schema: {
        tags: ['vm'],
        summary: 'remove a VM (its node destroys and undefines the domain); refused while its desired state is running unless force=true',
        params: VmNameParams,
        querystring: RemoveQuery,
        response: { 200: z.object({ name: z.string(), removed: z.literal(true) }), ...errors },
      },
    },
    async (req) => {
      await removeVm(cluster, req.params.name, req.query.force === 'true');
      return { name: req.params.name, removed: true as const };
    },
  );
}
