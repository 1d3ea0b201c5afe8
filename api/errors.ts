// Every failure of the API as one JSON shape, {error: {reason, message, field?, currentVersion?}},
// with its HTTP status. Invariant: a 400 (bad input) is only ever given before anything is written
// (the core validates first); ZooKeeper unreachable is a 503, never a 500.
import { ConnectionLossError, SessionExpiredError, TransactionError, ZkError } from '../drivers/zk/index.ts';
import { ValidationError } from '../schemas/index.ts';
import { CliError, EXIT_USAGE, ManifestErrors } from '../cli/errors.ts';
import { ConflictError, CoreError, InvalidInputError } from '../core/errors.ts';

export interface ErrorPayload {
  error: { reason: string; message: string; field?: string; currentVersion?: number };
}

/** An error the API raises itself (auth, a body it does not accept). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function toHttpError(error: unknown): { status: number; body: ErrorPayload } {
  const body = (reason: string, message: string, extra: Partial<ErrorPayload['error']> = {}): ErrorPayload => ({ error: { reason, message, ...extra } });
  if (error instanceof HttpError) return { status: error.status, body: body(error.reason, error.message, error.field === undefined ? {} : { field: error.field }) };
  if (error instanceof ValidationError) return { status: 400, body: body('InvalidInput', error.message, { field: error.field }) };
  if (error instanceof ManifestErrors) {
    const first = error.errors[0];
    return { status: 400, body: body('InvalidInput', error.message, first ? { field: first.field } : {}) };
  }
  if (error instanceof InvalidInputError) return { status: 400, body: body('InvalidInput', error.message, { field: error.field }) };
  if (error instanceof ConflictError) {
    return { status: 409, body: body('Conflict', error.message, error.currentVersion === undefined ? {} : { currentVersion: error.currentVersion }) };
  }
  if (error instanceof CoreError) {
    const status = error.reason === 'NotFound' ? 404 : error.reason === 'Contention' ? 503 : 409;
    return { status, body: body(status === 503 ? 'Unavailable' : error.reason, error.message) };
  }
  if (error instanceof ConnectionLossError || error instanceof SessionExpiredError) {
    return { status: 503, body: body('Unavailable', `ZooKeeper is not reachable: ${error.message}`) };
  }
  // A CliError that is not a CoreError: bad input (exit 2) or a refusal with its reason.
  if (error instanceof CliError) return error.exitCode === EXIT_USAGE ? { status: 400, body: body('InvalidInput', error.message) } : { status: 409, body: body('Refused', error.message) };
  // A write that kept losing its compare-and-set to other writers (after the core's retries): try again later.
  if (error instanceof TransactionError && ['BAD_VERSION', 'NODE_EXISTS', 'NO_NODE', 'NOT_EMPTY'].includes(error.cause.code)) {
    return { status: 503, body: body('Unavailable', `the cluster kept changing during the write (${error.cause.code} at ${error.cause.path ?? 'a znode'}); nothing of this request was written; try again`) };
  }
  if (error instanceof ZkError) return { status: 500, body: body('Internal', `ZooKeeper error: ${error.message}`) };
  const fastify = error as { statusCode?: number; code?: string; message?: string };
  if (typeof fastify.statusCode === 'number' && fastify.statusCode >= 400 && fastify.statusCode < 500) {
    // Fastify's own: a body that is not JSON, too large, an unsupported media type…
    return { status: fastify.statusCode, body: body(fastify.statusCode === 404 ? 'NotFound' : 'InvalidInput', fastify.message ?? 'bad request') };
  }
  return { status: 500, body: body('Internal', 'internal error (see the server log)') };
}
