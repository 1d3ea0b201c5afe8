// Typed ZooKeeper errors. Every error carries the ZooKeeper code name (`code`), a CamelCase
// machine-readable `reason` (as in Kubernetes conditions) and the path it concerns.
import zookeeper from 'node-zookeeper-client';

const CODES = zookeeper.Exception as unknown as Record<string, number>;
const NAME_BY_NUMBER = new Map<number, string>();
for (const [name, value] of Object.entries(CODES)) {
  if (typeof value === 'number' && /^[A-Z_]+$/.test(name)) NAME_BY_NUMBER.set(value, name);
}

export const ZK_CODE = {
  CONNECTION_LOSS: -4,
  OPERATION_TIMEOUT: -7,
  NO_NODE: -101,
  NO_AUTH: -102,
  BAD_VERSION: -103,
  NO_CHILDREN_FOR_EPHEMERALS: -108,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
  INVALID_ACL: -114,
  AUTH_FAILED: -115,
} as const;

export class ZkError extends Error {
  /** ZooKeeper error name, e.g. 'BAD_VERSION'. */
  readonly code: string;
  /** ZooKeeper numeric error code (negative), 0 when not from the server. */
  readonly zkCode: number;
  readonly reason: string;
  readonly path: string | undefined;
  constructor(code: string, zkCode: number, reason: string, path: string | undefined, message?: string) {
    super(message ?? `${reason}${path ? ` at ${path}` : ''} (${code})`);
    this.name = new.target.name;
    this.code = code;
    this.zkCode = zkCode;
    this.reason = reason;
    this.path = path;
  }
}

/** set/delete/check with a version that is not the znode's current version (BAD_VERSION). */
export class VersionConflictError extends ZkError {
  constructor(path?: string) {
    super('BAD_VERSION', ZK_CODE.BAD_VERSION, 'VersionConflict', path);
  }
}
export class NodeExistsError extends ZkError {
  constructor(path?: string) {
    super('NODE_EXISTS', ZK_CODE.NODE_EXISTS, 'NodeExists', path);
  }
}
export class NoNodeError extends ZkError {
  constructor(path?: string) {
    super('NO_NODE', ZK_CODE.NO_NODE, 'NoNode', path);
  }
}
export class NotEmptyError extends ZkError {
  constructor(path?: string) {
    super('NOT_EMPTY', ZK_CODE.NOT_EMPTY, 'NotEmpty', path);
  }
}
export class NoAuthError extends ZkError {
  constructor(path?: string) {
    super('NO_AUTH', ZK_CODE.NO_AUTH, 'NoAuth', path);
  }
}
/**
 * The connection was lost before a reply arrived (and the store could not settle the outcome,
 * see recover.ts), or no connection came within the bound. For a write the outcome is unknown:
 * re-read and compare versions.
 */
export class ConnectionLossError extends ZkError {
  /** True: the request was handed to a connection that then dropped (outcome unknown).
   * False: no connection came within the bound, nothing was sent. */
  readonly inFlight: boolean;
  constructor(path?: string, message?: string, inFlight = true) {
    super('CONNECTION_LOSS', ZK_CODE.CONNECTION_LOSS, 'ConnectionLoss', path, message);
    this.inFlight = inFlight;
  }
}
export class SessionExpiredError extends ZkError {
  constructor(path?: string) {
    super('SESSION_EXPIRED', ZK_CODE.SESSION_EXPIRED, 'SessionExpired', path);
  }
}
/** A multi failed: nothing was written. `failedIndex` is the op that failed, `cause` its error. */
export class TransactionError extends ZkError {
  readonly failedIndex: number;
  override readonly cause: ZkError;
  constructor(failedIndex: number, cause: ZkError) {
    super(
      cause.code,
      cause.zkCode,
      'TransactionFailed',
      cause.path,
      `transaction failed at op ${failedIndex}${cause.path ? ` (${cause.path})` : ''}: ${cause.reason} (${cause.code})`,
    );
    this.failedIndex = failedIndex;
    this.cause = cause;
  }
}

function reasonOf(name: string): string {
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/** Map a numeric ZooKeeper error code to the typed error. */
export function fromCode(zkCode: number, path?: string): ZkError {
  switch (zkCode) {
    case ZK_CODE.BAD_VERSION:
      return new VersionConflictError(path);
    case ZK_CODE.NODE_EXISTS:
      return new NodeExistsError(path);
    case ZK_CODE.NO_NODE:
      return new NoNodeError(path);
    case ZK_CODE.NOT_EMPTY:
      return new NotEmptyError(path);
    case ZK_CODE.NO_AUTH:
      return new NoAuthError(path);
    case ZK_CODE.CONNECTION_LOSS:
    case ZK_CODE.OPERATION_TIMEOUT:
      return new ConnectionLossError(path);
    case ZK_CODE.SESSION_EXPIRED:
      return new SessionExpiredError(path);
    default: {
      const name = NAME_BY_NUMBER.get(zkCode) ?? `ZK_${zkCode}`;
      return new ZkError(name, zkCode, reasonOf(name), path);
    }
  }
}

/** Map whatever node-zookeeper-client handed to a callback to a typed error. */
export function toZkError(err: unknown, path?: string): ZkError {
  if (err instanceof ZkError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'number') return fromCode(code, path);
  const e = new ZkError('CLIENT_ERROR', 0, 'ClientError', path, `${err instanceof Error ? err.message : String(err)}${path ? ` at ${path}` : ''}`);
  return e;
}

/** Numeric code of a node-zookeeper-client error, or undefined. */
export function codeOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
