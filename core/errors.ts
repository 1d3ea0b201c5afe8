// The typed errors of the shared core (core/*.ts): what the CLI and the API both get when a write is
// refused. Each is a CliError (same message, same exit code as the CLI always had) that also carries
// a `reason` the API maps to an HTTP status:
//
//   ValidationError (schemas/), InvalidInputError  → 400 (nothing was written)
//   NotFoundError                                  → 404
//   ConflictError                                  → 409, with the current version when known
//   RefusedError                                   → 409: the cluster's state forbids it (a reason is given)
//   ContentionError                                → 503: other writers kept winning the compare-and-set; try again
import { CliError, EXIT_RUNTIME, EXIT_USAGE } from '../cli/errors.ts';

export type CoreReason = 'InvalidInput' | 'NotFound' | 'Conflict' | 'Refused' | 'Contention';

export class CoreError extends CliError {
  readonly reason: CoreReason;
  constructor(reason: CoreReason, message: string, exitCode: number) {
    super(message, exitCode);
    this.name = reason;
    this.reason = reason;
  }
}

/** Bad input found only against the cluster (a node that does not exist…); `field` names the input. */
export class InvalidInputError extends CoreError {
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown, message: string) {
    super('InvalidInput', message, EXIT_USAGE);
    this.field = field;
    this.value = value;
  }
}

export class NotFoundError extends CoreError {
  constructor(message: string) {
    super('NotFound', message, EXIT_RUNTIME);
  }
}

/** A compare-and-set that lost (or an expected generation that is not the current one). */
export class ConflictError extends CoreError {
  /** The version (generation) the object has now, when known. */
  readonly currentVersion: number | undefined;
  constructor(message: string, currentVersion?: number) {
    super('Conflict', message, EXIT_RUNTIME);
    this.currentVersion = currentVersion;
  }
}

export class RefusedError extends CoreError {
  constructor(message: string, exitCode: number = EXIT_RUNTIME) {
    super('Refused', message, exitCode);
  }
}

/** A write that lost its compare-and-set to other writers every time it tried: nothing was written; try again. */
export class ContentionError extends CoreError {
  constructor(message: string) {
    super('Contention', message, EXIT_RUNTIME);
  }
}
