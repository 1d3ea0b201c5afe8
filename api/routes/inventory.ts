// Read-only /node and /network routes: the objects `vk get nodes|networks -o json` prints.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { networkViews, nodeViews } from '../../cli/commands/get.ts';
import { NotFoundError } from '../../core/errors.ts';
import { errorResponses, NetworkView, NodeView, VmNameParams, VniParams } from '../schemas.ts';

const errors = errorResponses(400, 401, 404, 503);
const listErrors = errorResponses(401, 503);

export function inventoryRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { store, paths } = cluster;
  api.get('/node', { schema: { tags: ['node'], summary: 'list nodes (as vk get nodes -o json)', response: { 200: z.array(NodeView), ...listErrors } } }, () => nodeViews(store, paths));
  api.get('/node/:name', { schema: { tags: ['node'], summary: 'one node', params: VmNameParams, response: { 200: NodeView, ...errors } } }, async (req) => {
    const node = (await nodeViews(store, paths)).find((n) => n.name === req.params.name);
    if (!node) throw new NotFoundError(`node ${req.params.name} not found`);
    return node;
  });
  api.get('/network', { schema: { tags: ['network'], summary: 'list networks (as vk get networks -o json)', response: { 200: z.array(NetworkView), ...listErrors } } }, () =>
    networkViews(store, paths),
  );
  api.get('/network/:vni', { schema: { tags: ['network'], summary: 'one network', params: VniParams, response: { 200: NetworkView, ...errors } } }, async (req) => {
    const network = (await networkViews(store, paths)).find((n) => n.vni === req.params.vni);
    if (!network) throw new NotFoundError(`network ${req.params.vni} not found`);
    return network;
  });
}
