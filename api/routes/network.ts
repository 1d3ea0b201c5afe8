// Network writes: POST /network (as `vk network add`) and DELETE /network/{vni} (as `vk network
// remove`), over core/network.ts. Changing a network is POST /apply with its manifest.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { createNetwork, removeNetwork } from '../../core/network.ts';
import { NetworkSpecSchema, VniSchema } from '../../schemas/index.ts';
import { errorResponses, VniParams } from '../schemas.ts';

const CreateNetworkBody = z
  .strictObject({
    vni: VniSchema.describe('network identifier (decimal string, 1-16777215); its bridge is vkbr<VNI>'),
    spec: NetworkSpecSchema.describe("as a Network manifest's spec"),
  })
  .meta({ id: 'CreateNetwork' });

const CreatedNetwork = z.object({ vni: z.string(), bridge: z.string(), generation: z.number().int() }).meta({ id: 'CreatedNetwork' });
const RemovedNetwork = z.object({ vni: z.string(), removed: z.literal(true) }).meta({ id: 'RemovedNetwork' });

const errors = errorResponses(400, 401, 403, 404, 409, 503);

export function networkRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    '/network',
    {
      schema: {
        tags: ['network'],
        summary: 'create a network, as vk network add (409 if it exists)',
        body: CreateNetworkBody,
        response: { 201: CreatedNetwork, ...errorResponses(400, 401, 403, 409, 503) },
      },
    },
    async (req, reply) => {
      const created = await createNetwork(cluster, req.body.vni, req.body.spec);
      return reply.code(201).send(created);
    },
  );
  api.delete(
    '/network/:vni',
    {
      schema: {
        tags: ['network'],
        summary: 'remove a network and everything under it, as vk network remove (409 while a VM attaches to it)',
        params: VniParams,
        response: { 200: RemovedNetwork, ...errors },
      },
    },
    async (req) => {
      await removeNetwork(cluster, req.params.vni);
      return { vni: req.params.vni, removed: true as const };
    },
  );
}
