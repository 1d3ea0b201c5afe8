// buildApi: the REST API as a Fastify instance over one ZooKeeper store. It keeps no state of its
// own (several may run against one cluster). Requests are validated with the project's zod
// schemas (schemas/, api/schemas.ts) through parseWith, so a 400 names the field and the value as
// the CLI does; /openapi.json is generated from the same schemas by @fastify/swagger.
//
// Invariants: with tokens, every route but /openapi.json needs one (auth.ts); while the store is
// not connected every route but /openapi.json answers 503 at once; request logs (pino, one request
// id each) carry method, URL and status, never a header (so never a token).
import { randomUUID } from 'node:crypto';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { DestinationStream } from 'pino';
import type { z } from 'zod';
import type { ZkStore } from '../drivers/zk/index.ts';
import { parseWith, type ZkPaths } from '../schemas/index.ts';
import type { Cluster } from '../cli/connect.ts';
import { bearerOf, hashToken, type TokenSet } from './auth.ts';
import { HttpError, toHttpError } from './errors.ts';
import { unionBranches } from './schemas.ts';
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
  /** Bearer tokens; null: no auth (vk api allows that on loopback only, or with --insecure). */
  auth: TokenSet | null;
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

  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions.url ?? '';
    if (UNAUTHENTICATED.has(route)) return;
    if (options.auth) {
      const token = bearerOf(req.headers.authorization);
      const entry = token === undefined ? undefined : options.auth.get(hashToken(token));
      if (!entry) throw new HttpError(401, 'Unauthorized', token === undefined ? 'a bearer token is required (Authorization: Bearer …)' : 'the bearer token is not valid');
      req.log.info({ tokenName: entry.name, scope: entry.scope }, 'authenticated');
      if (entry.scope !== 'admin' && req.method !== 'GET' && req.method !== 'HEAD' && !(req.method === 'POST' && READ_ONLY_POSTS.has(route))) {
        throw new HttpError(403, 'Forbidden', `token ${entry.name} has scope ${entry.scope}; ${req.method} needs scope admin`);
      }
    }
    if (options.store.connectionState !== 'connected') throw new HttpError(503, 'Unavailable', `ZooKeeper is ${options.store.connectionState}; try again`);
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
