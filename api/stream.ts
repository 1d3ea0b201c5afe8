// Long-lived streaming replies (GET /events?follow=true, GET /vm/{name}/log?follow=true): the reply
// is taken from Fastify (hijacked) and each emission of an Observable is written as it comes.
//
// Invariants: a stream ends when the client goes away, when its source errors or completes, or when
// the server closes (every open stream is ended in preClose, so app.close() never waits on one);
// the socket goes with it (connection: close), so no hijacked socket sits in keep-alive.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';

export type StreamRegistry = (req: FastifyRequest, reply: FastifyReply, contentType: string, source: Observable<string>) => FastifyReply;

/** A function that streams `source` (each value written as is) as the reply; one registry per app. */
export function streamRegistry(app: FastifyInstance): StreamRegistry {
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });
  return (req, reply, contentType, source) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', connection: 'close', 'x-request-id': String(req.id) });
    const end = () => {
      open.delete(end);
      sub.unsubscribe();
      if (!res.writableEnded) res.end();
    };
    open.add(end);
    const sub = source.subscribe({
      next: (chunk) => {
        if (chunk !== '') res.write(chunk);
      },
      error: (error: unknown) => {
        req.log.warn({ err: error }, 'stream ended');
        end();
      },
      complete: end,
    });
    req.raw.on('close', end);
    res.on('close', end);
    return reply;
  };
}
