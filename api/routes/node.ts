// /node verbs: flush, ready and primary (`vk node flush|ready|primary`), core/node.ts's writes,
// answered at once; GET /node/{name} shows how they went (its status, the flush progress and, for
// primary, GET /node lists the role).
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { requestPrimary, setNodeDomainState } from '../../core/node.ts';
import { errorResponses, NodeNameParams } from '../schemas.ts';


const NodeWriteResult = z
  .object({
    name: z.string(),
    generation: z.number().int().describe("the node spec's version: the node status's observedGeneration reaches it once acted on"),
    changed: z.boolean(),
    domainState: z.enum(['ready', 'flushed']),
    flushLockHolder: z.string().optional().describe('another node holding the flush lock: this flush waits for it'),
  })
  .meta({ id: 'NodeWriteResult' });

const PrimaryResult = z
  .object({
    name: z.string(),
    asked: z.enum(['already', 'pending', 'requested']).describe('already primary, a request for it already pending, or requested now'),
    primary: z.string().describe('the primary coordinator now'),
    phase: z.string(),
    term: z.number().int(),
  })
  .meta({ id: 'PrimaryResult' });

export function nodeRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  for (const [verb, domainState, summary] of [
    ['flush', 'flushed', 'move every VM off the node (as vk node flush)'],
    ['ready', 'ready', 'make the node take VMs again (as vk node ready): after a fence, the blocklist is lifted first'],
  ] as const) {
    api.post(
      `/node/:name/${verb}`,
      { schema: { tags: ['node'], summary, params: NodeNameParams, response: { 200: NodeWriteResult, ...errorResponses(400, 401, 403, 404, 503) } } },
      async (req) => {
        const u = await setNodeDomainState(cluster, req.params.name, domainState);
        return { name: req.params.name, generation: u.version, changed: u.changed, domainState, ...(u.flushLockHolder ? { flushLockHolder: u.flushLockHolder } : {}) };
      },
    );
  }
  api.post(
    '/node/:name/primary',
    {
      schema: {
        tags: ['node'],
        summary: 'make a coordinator the primary (a planned hand-over, as vk node primary); 400 when it cannot be (not a live, ready coordinator), 409 while another hand-over runs',
        params: NodeNameParams,
        response: { 200: PrimaryResult, ...errorResponses(400, 401, 403, 409, 503) },
      },
    },
    async (req) => {
      const { asked, record } = await requestPrimary(cluster, req.params.name);
      return { name: req.params.name, asked, primary: record.node, phase: record.phase, term: record.term };
    },
  );
}
