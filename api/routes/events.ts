// GET /events: the events log (core/events.ts, as `vk events`), oldest first; with follow=true a
// stream of newline-delimited JSON (one event per line, the backlog first) that lasts until the
// client goes away.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { followEvents, listEvents } from '../../core/events.ts';
import { NameSchema } from '../../schemas/index.ts';
import { errorResponses } from '../schemas.ts';
import type { StreamRegistry } from '../stream.ts';
import { map } from 'rxjs';

const EventsQuery = z.strictObject({
  node: NameSchema.optional().describe('only events about this node'),
  vm: NameSchema.optional().describe('only events about this VM'),
  limit: z.coerce.number().int().min(1).max(1000).optional().describe('the last N (default 100)'),
  follow: z.enum(['true', 'false']).optional().describe('true: the backlog, then every new event as it comes, as newline-delimited JSON'),
});

const EventEntryView = z
  .object({
    seq: z.number().int(),
    at: z.string(),
    kind: z.string(),
    by: z.string(),
    node: z.string().optional(),
    vm: z.string().optional(),
    level: z.string().optional(),
    message: z.string(),
  })
  .meta({ id: 'Event' });

export function eventRoutes(app: FastifyInstance, cluster: Cluster, stream: StreamRegistry): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/events',
    {
      schema: {
        tags: ['events'],
        summary: 'the events log (fence, recovery, hand-over, maintenance…), oldest first; follow=true streams it (application/x-ndjson)',
        querystring: EventsQuery,
        response: { 200: z.array(EventEntryView), ...errorResponses(400, 401, 503) },
      },
    },
    async (req, reply) => {
      const { node, vm, limit = 100, follow } = req.query;
      const filter = { ...(node && { node }), ...(vm && { vm }) };
      if (follow !== 'true') {
        const entries = await listEvents(cluster.store, cluster.paths, { ...filter, limit });
        return entries.map((e) => ({ seq: e.seq, ...e.event }));
      }
      return stream(req, reply, 'application/x-ndjson', followEvents(cluster.store, cluster.paths, { ...filter, backlog: limit }).pipe(map((e) => `${JSON.stringify({ seq: e.seq, ...e.event })}\n`)));
    },
  );
}
