// buildApi: the REST API as a Fastify instance over one ZooKeeper store. It keeps no state of its
// own (several may run against one cluster). Requests are validated with the project's zod
// schemas (schemas/, api/schemas.ts) through parseWith, so a 400 names the field and the value as
// the CLI does; /openapi.json is generated from the same schemas by @fastify/swagger.
//
// Invariants: with tokens, every route but /openapi.json needs one (auth.ts); with a client CA and
// no tokens, the verified client certificate is the credential; while the store is not connected
// every route but /openapi.json answers 503 at once; over the rate limit a client gets 429 before
// anything is read or written; request logs (pino, one request id each) carry method, URL and
// status, never a header (so never a token).
import { randomUUID } from 'node:crypto';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { DestinationStream } from 'pino';
import type { z } from 'zod';
import type { ZkStore } from '../drivers/zk/index.ts';
import { parseWith, type ZkPaths } from '../schemas/index.ts';
import type { Cluster } from '../cli/connect.ts';
import { bearerOf, hashToken, type Scope, type TokenEntry } from './auth.ts';
import { RateLimiter, type RateLimit } from './rate-limit.ts';
import type { TokenLookup } from './tokens.ts';
import type { TLSSocket } from 'node:tls';
import { HttpError, toHttpError } from './errors.ts';
import { ErrorBody, unionBranches } from './schemas.ts';
import { inventoryRoutes } from './routes/inventory.ts';
import { vmRoutes } from './routes/vm.ts';
import { nodeRoutes } from './routes/node.ts';
import { eventRoutes } from './routes/events.ts';
import { consoleRoutes } from './routes/console.ts';
import { networkRoutes } from './routes/network.ts';
import { declarativeRoutes } from './routes/declarative.ts';
import { streamRegistry } from './stream.ts';

export interface ApiOptions {
  store: ZkStore;
  paths: ZkPaths;
  /** Bearer tokens (a token file's, ZooKeeper's: api/tokens.ts); null: none (see clientCertScope). */
  auth: TokenLookup | null;
  /** TLS; with `ca`, a client must present a certificate it signed. */
  https?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer };
  /** With https.ca and no tokens: the scope a verified client certificate gets (default admin). */
  clientCertScope?: Scope;
  /** Requests per second per client (token, certificate or address); absent: no limit. */
  rateLimit?: RateLimit;
  /** ZooKeeper digest credentials the writes are made private to (vk --auth). */
  zkAuth?: { user: string; password: string };
  connectString?: string;
  /** Where request logs go (default stdout), and their level (default info; false: none). */
  log?: { stream?: DestinationStream; level?: string } | false;
  /** Largest request body, in bytes (default 4 MiB: a domain XML is at most 1 MiB). */
  bodyLimit?: number;
}

const UNAUTHENTICATED = new Set(['/openapi.json']);
/** POST routes that write nothing (they take manifests in a body): a read token may call them. */
const READ_ONLY_POSTS = new Set(['/diff', '/plan']);

/** Validates a request part with the project's schemas: a ValidationError names field and value. */
function validatorCompiler({ schema }: { schema: unknown }) {
  const branch = unionBranches.get(schema as z.ZodType);
  return (data: unknown) => {
    try {
      return { value: parseWith(branch ? branch(data) : (schema as z.ZodType), data) };
    } catch (error) {
      return { error: error as Error };
    }
  };
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const cluster: Cluster = {
    store: options.store,
    paths: options.paths,
    connectString: options.connectString ?? '',
    connectTimeoutMs: 10_000,
    ...(options.zkAuth && { auth: options.zkAuth }),
  };
  const logger: FastifyServerOptions['logger'] =
    options.log === false
      ? false
      : {
          level: options.log?.level ?? 'info',
          ...(options.log?.stream && { stream: options.log.stream }),
          redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
        };
  const app = Fastify({
    logger,
    ...(options.https && { https: { key: options.https.key, cert: options.https.cert, ...(options.https.ca && { ca: options.https.ca, requestCert: true, rejectUnauthorized: true }) } }),
    bodyLimit: options.bodyLimit ?? 4 * 1024 * 1024,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Closing ends every connection, the event streams and waitFor long polls too (clients retry).
    forceCloseConnections: true,
    // Query strings are parsed with node:querystring's rules; repeated keys give arrays, which the schemas refuse.
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler((error, req, reply) => {
    const { status, body } = toHttpError(error);
    if (status >= 500) req.log.error({ err: error }, 'request failed');
    void reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { reason: 'NotFound', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  const limiter = options.rateLimit ? new RateLimiter(options.rateLimit) : undefined;
  const certScope = options.https?.ca && !options.auth ? (options.clientCertScope ?? 'admin') : undefined;
  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.url ?? '';
    if (UNAUTHENTICATED.has(route)) return;
    let who: TokenEntry | undefined;
    if (options.auth) {
      const token = bearerOf(req.headers.authorization);
      who = token === undefined ? undefined : options.auth.get(hashToken(token));
      if (!who) throw new HttpError(401, 'Unauthorized', token === undefined ? 'a bearer token is required (Authorization: Bearer …)' : 'the bearer token is not valid');
    } else if (certScope) {
      // The TLS handshake already refused a client without a certificate the CA signed.
      const socket = req.raw.socket as TLSSocket;
      const cn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
      if (typeof cn !== 'string' || cn === '') throw new HttpError(401, 'Unauthorized', 'a client certificate signed by the server\'s CA is required');
      who = { name: `cert:${cn}`, scope: certScope };
    }
    if (who) {
      req.log.info({ tokenName: who.name, scope: who.scope }, 'authenticated');
      if (who.scope !== 'admin' && req.method !== 'GET' && req.method !== 'HEAD' && !(req.method === 'POST' && READ_ONLY_POSTS.has(route))) {
        throw new HttpError(403, 'Forbidden', `${who.name.startsWith('cert:') ? 'client certificate' : 'token'} ${who.name} has scope ${who.scope}; ${req.method} needs scope admin`);
      }
    }
    if (limiter) {
      const wait = limiter.take(who ? `id:${who.name}` : `ip:${req.ip}`);
      if (wait > 0) {
        void reply.header('retry-after', String(wait));
        throw new HttpError(429, 'RateLimited', `more than ${options.rateLimit!.perSecond} requests per second (burst ${options.rateLimit!.burst}) from ${who ? who.name : req.ip}; retry after ${wait} s`);
      }
    }
    if (options.store.connectionState !== 'connected') throw new HttpError(503, 'Unavailable', `ZooKeeper is ${options.store.connectionState}; try again`);
  });
  // Every route may answer 429 (the rate limit comes before the route): documented on each.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { response?: Record<number, unknown>; hide?: boolean } | undefined;
    if (schema?.response && !schema.hide) schema.response[429] = ErrorBody;
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'virtkeeper', description: 'The virtkeeper REST API (vk api): the same schemas and writes as the vk CLI.', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: createJsonSchemaTransform({}),
    transformObject: createJsonSchemaTransformObject({}),
  });

  vmRoutes(app, cluster);
  inventoryRoutes(app, cluster);
  nodeRoutes(app, cluster);
  const stream = streamRegistry(app);
  eventRoutes(app, cluster, stream);
  consoleRoutes(app, cluster, stream);
  networkRoutes(app, cluster);
  declarativeRoutes(app, cluster);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
