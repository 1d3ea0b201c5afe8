// The errors of the `ip` driver (drivers/net/ip.ts). Every one carries the command it ran (argv, as
// spawned) and what that process wrote to stderr, so a condition or a log line can say exactly
// what failed.

export class IpError extends Error {
  constructor(
    message: string,
    /** argv as spawned, e.g. ['ip', '-n', 'ns1', '-force', '-batch', '-']. */
    readonly command: readonly string[],
    readonly stderr: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The process could not be started, or exited in a way its caller cannot read (status, signal). */
export class IpCommandError extends IpError {
  constructor(
    command: readonly string[],
    stderr: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    detail?: string,
  ) {
    const how = detail ?? (signal ? `killed by ${signal}` : `exit status ${exitCode}`);
    const err = stderr.trim();
    super(`${command.join(' ')}: ${how}${err ? `: ${err}` : ''}`, command, stderr);
  }
}

/** The process ran longer than its bound and was killed (by its PID). */
export class IpTimeoutError extends IpError {
  constructor(
    command: readonly string[],
    stderr: string,
    readonly timeoutMs: number,
  ) {
    super(`${command.join(' ')}: no answer within ${timeoutMs} ms (killed)`, command, stderr);
  }
}

/** The process succeeded but printed something the driver cannot parse. */
export class IpParseError extends IpError {
  constructor(command: readonly string[], stderr: string, detail: string) {
    super(`${command.join(' ')}: cannot parse the output: ${detail}`, command, stderr);
  }
}

/** The command was not run: its deadline (RunOptions.notAfterMs) had passed when the child was to start it. */
export class IpDeadlineError extends IpError {
  constructor(
    command: readonly string[],
    readonly notAfterMs: number,
  ) {
    super(`${command.join(' ')}: not run: its deadline ${new Date(notAfterMs).toISOString()} had passed when it was to start`, command, '');
  }
}
