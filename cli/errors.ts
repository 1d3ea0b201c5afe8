// How `vk` fails: one line on stderr, and an exit code that tells scripts what kind of failure it was.
//
//   0  success (diff/plan: nothing differs / nothing would happen)
//   1  diff/plan: differences / actions; any runtime failure (ZooKeeper, a --wait that failed or timed out)
//   2  bad input: usage, manifests, flags, a stale plan; nothing was written
import { ValidationError } from '../schemas/index.ts';
import {
  ConnectionLossError,
  NoAuthError,
  NoNodeError,
  NodeExistsError,
  SessionExpiredError,
  TransactionError,
  VersionConflictError,
  ZkError,
} from '../drivers/zk/index.ts';

export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

let runtimeExitCode = EXIT_RUNTIME;

/**
 * diff and plan use 1 for "there are differences" (kubectl's convention), so their runtime
 * failures must exit with something else: they call this with 3.
 */
export function setRuntimeExitCode(code: number): void {
  runtimeExitCode = code;
}

/** A failure with a message meant for people and a chosen exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_RUNTIME) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Bad input (exit 2). */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT_USAGE);
}

/** Runs `fn`; a ValidationError it throws comes out prefixed with `source` (e.g. `vm web1: spec.node: …`). */
export function withSource<T>(source: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValidationError) throw error.withSource(source);
    throw error;
  }
}

/** Several bad documents: one line each, exit 2. */
export class ManifestErrors extends Error {
  readonly errors: readonly ValidationError[];
  constructor(errors: readonly ValidationError[]) {
    super(errors.map((e) => e.message).join('\n'));
    this.name = 'ManifestErrors';
    this.errors = errors;
  }
}

function describeZkError(error: ZkError, connectString: string | undefined): string {
  const at = error.path ? ` (${error.path})` : '';
  if (error instanceof TransactionError) {
    const cause = error.cause;
    if (cause instanceof VersionConflictError || cause instanceof NodeExistsError || cause instanceof NoNodeError) {
      return `the cluster changed while writing${cause.path ? ` ${cause.path}` : ''} (${cause.reason}); nothing was written, run the command again`;
    }
    return describeZkError(cause, connectString);
  }
  if (error instanceof ConnectionLossError) {
    return `cannot reach ZooKeeper${connectString ? ` at ${connectString}` : ''}: ${error.message}`;
  }
  if (error instanceof SessionExpiredError) return `the ZooKeeper session expired${at}; run the command again`;
  if (error instanceof NoAuthError) {
    return `ZooKeeper refused access${at}: not authorized; give the cluster credentials with --auth user:password (or VK_AUTH)`;
  }
  if (error instanceof VersionConflictError) {
    return `the cluster changed concurrently${at}; run the command again`;
  }
  return `ZooKeeper error${at}: ${error.message}`;
}

/** Prints `error` as one line per problem on stderr and returns the exit code to use. */
export function reportError(error: unknown, connectString?: string): number {
  const code = exitCodeFor(error, connectString);
  return code === EXIT_RUNTIME ? runtimeExitCode : code;
}

function exitCodeFor(error: unknown, connectString: string | undefined): number {
  const write = (line: string) => process.stderr.write(`vk: ${line}\n`);
  if (error instanceof ManifestErrors) {
    for (const e of error.errors) write(e.message);
    return EXIT_USAGE;
  }
  if (error instanceof ValidationError) {
    write(error.message);
    return EXIT_USAGE;
  }
  if (error instanceof CliError) {
    write(error.message);
    return error.exitCode;
  }
  if (error instanceof ZkError) {
    write(describeZkError(error, connectString));
    return EXIT_RUNTIME;
  }
  const message = error instanceof Error ? error.message : String(error);
  write(message);
  if (process.env.VK_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return EXIT_RUNTIME;
}
