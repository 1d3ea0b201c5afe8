// GET /events: the events log (core/events.ts, as `vk events`), oldest first; with follow=true a
// stream of newline-delimited JSON (one event per line, the backlog first) that lasts until the
// client goes away.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Cluster } from '../../cli/connect.ts';
import { followEvents, listEvents } from '../../core/events.ts';
import { NameSchema } from '../../schemas/index.ts';
import { ErrorBody } from '../schemas.ts';

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

export function eventRoutes(app: FastifyInstance, cluster: Cluster): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  // Open follow streams, ended when the server closes (a hijacked reply is not Fastify's to end).
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  api.get(
    '/events',
    {
      schema: {
        tags: ['events'],
        summary: 'the events log (fence, recovery, hand-over, maintenance…), oldest first; follow=true streams it (application/x-ndjson)',
        querystring: EventsQuery,
        response: { 200: z.array(EventEntryView), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const { node, vm, limit = 100, follow } = req.query;
      const filter = { ...(node && { node }), ...(vm && { vm }) };
      if (follow !== 'true') {
        const entries = await listEvents(cluster.store, cluster.paths, { ...filter, limit });
        return entries.map((e) => ({ seq: e.seq, ...e.event }));
      }
      reply.hijack();
      const res = reply.raw;
      // connection: close — the socket goes with the stream (a hijacked reply would otherwise sit in keep-alive and hold up the server's close).
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', connection: 'close' });
      const sub = followEvents(cluster.store, cluster.paths, { ...filter, backlog: limit }).subscribe({
        next: (e) => res.write(`${JSON.stringify({ seq: e.seq, ...e.event })}\n`),
        error: (error: unknown) => {
          req.log.warn({ err: error }, 'events stream ended');
          res.end();
        },
      });
      const end = () => {
        streams.delete(end);
        sub.unsubscribe();
        if (!res.writableEnded) res.end();
      };
      streams.add(end);
      req.raw.on('close', end);
      res.on('close', end);
      return reply;
    },
  );
}
