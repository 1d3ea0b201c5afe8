// Typed errors of the libvirt driver. Every error carries a machine-readable CamelCase `reason`.

/** virErrorNumber values the rest of virtkeeper cares about (libvirt's include/libvirt/virterror.h). */
export const ErrorCode = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_DOMAIN: 7,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  OPEN_FAILED: 30,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  AUTH_FAILED: 45,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  MIGRATE_PERSIST_FAILED: 69,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_ABORTED: 78,
  MIGRATE_UNSAFE: 81,
  OPERATION_UNSUPPORTED: 84,
  AGENT_UNRESPONSIVE: 86,
  RESOURCE_BUSY: 87,
  ACCESS_DENIED: 88,
  CPU_INCOMPATIBLE: 91,
  XML_INVALID_SCHEMA: 92,
} as const;

const reasonByCode = new Map<number, string>(
  Object.entries(ErrorCode).map(([k, v]) => [
    v,
    k
      .toLowerCase()
      .split('_')
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join(''),
  ]),
);

/** virErrorLevel */
export const ErrorLevel = { NONE: 0, WARNING: 1, ERROR: 2 } as const;

export interface RemoteErrorFields {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

/** An error reported by libvirtd (a reply with status ERROR, payload remote_error). */
export class LibvirtError extends Error implements RemoteErrorFields {
  override readonly name = 'LibvirtError';
  readonly code: number;
  /** virErrorDomain: which libvirt subsystem raised it (not a VM). */
  readonly domain: number;
  readonly level: number;
  readonly str1: string | null;
  readonly str2: string | null;
  readonly str3: string | null;
  readonly int1: number;
  readonly int2: number;
  /** CamelCase name of `code`, e.g. `NoDomain`, `OperationAborted`; `LibvirtError<code>` if unnamed. */
  readonly reason: string;
  /** The procedure that failed, e.g. `DOMAIN_LOOKUP_BY_NAME`. */
  readonly procedure: string;

  constructor(fields: RemoteErrorFields, procedure: string) {
    super(fields.message ?? `libvirt error ${fields.code}`);
    this.code = fields.code;
    this.domain = fields.domain;
    this.level = fields.level;
    this.str1 = fields.str1;
    this.str2 = fields.str2;
    this.str3 = fields.str3;
    this.int1 = fields.int1;
    this.int2 = fields.int2;
    this.procedure = procedure;
    this.reason = reasonByCode.get(fields.code) ?? `LibvirtError${fields.code}`;
  }
}

/** True for a LibvirtError, and when `code` is given (e.g. ErrorCode.NO_DOMAIN) for that code only. */
export function isLibvirtError(err: unknown, code?: number): err is LibvirtError {
  return err instanceof LibvirtError && (code === undefined || err.code === code);
}

/** The connection to libvirtd is gone (closed, reset, never opened, or dropped after a protocol error). */
export class LibvirtConnectionError extends Error {
  override readonly name = 'LibvirtConnectionError';
  readonly reason = 'LibvirtDisconnected';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A call got no reply within its timeout. The connection stays up; a late reply is discarded. */
export class LibvirtTimeoutError extends Error {
  override readonly name = 'LibvirtTimeoutError';
  readonly reason = 'LibvirtTimeout';
  constructor(
    readonly procedure: string,
    readonly timeoutMs: number,
  ) {
    super(`libvirt call ${procedure} timed out after ${timeoutMs} ms`);
  }
}

/** The caller's AbortSignal fired before the reply came. libvirtd may still carry the operation out. */
export class LibvirtAbortedError extends Error {
  override readonly name = 'LibvirtAbortedError';
  readonly reason = 'LibvirtCallAborted';
  constructor(
    readonly procedure: string,
    options?: { cause?: unknown },
  ) {
    super(`libvirt call ${procedure} aborted by caller`, options);
  }
}

/** The peer broke the wire protocol (bad frame length, malformed header). The connection is dropped. */
export class LibvirtProtocolError extends Error {
  override readonly name = 'LibvirtProtocolError';
  readonly reason = 'LibvirtProtocolViolation';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
