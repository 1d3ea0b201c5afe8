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
import { changeVm, defineVm, prepareDefine, prepareDefineManifest, removeVm } from '../../core/vm.ts';
import { ChangeBody, DefineBody, ErrorBody, RemoveQuery, VmDetail, VmNameParams, VmQuery, VmView, WriteResult } from '../schemas.ts';
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

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody };

export function vmRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { store, paths } = cluster;

  api.get('/vm', { schema: { tags: ['vm'], summary: 'list VMs with their status (as vk get vms -o json)', response: { 200: z.array(VmView), ...errors } } }, async () => {
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
        response: { 200: VmDetail, ...errors },
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
        response: { 201: WriteResult, ...errors },
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
