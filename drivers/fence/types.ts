// The fence driver's interface (DESIGN §4 "Fencing and recovery"): power a lost node off through
// its BMC and prove it is off, or run a configured fence command. Nothing above drivers/ runs
// `ipmitool` or a fence command itself.
//
// Invariants:
//  - A secret (the BMC password) is never on a command line (`ps` shows argv to every user), in an
//    error message, in `FenceError.command`, or in a log line: it reaches ipmitool through the
//    environment variable IPMI_PASSWORD with -E (only root and the same user read /proc/PID/environ).
//  - powerOff() resolves only once a status read said "off" after the off command; any doubt is a
//    FenceError, never a resolve: a fence that cannot be proved is a failed fence.

/** What `chassis power status` said. */
export type PowerState = 'on' | 'off';

/**
 * Why a fence operation failed:
 *  FenceUnreachable    the BMC did not answer (no session could be opened within the timeout,
 *                      on every attempt)
 *  FenceAuthFailed     the BMC answered and refused the user or password (not retried: a BMC may
 *                      lock the account out)
 *  FenceNotVerified    the off command was accepted but no status read said "off" within the
 *                      verify timeout
 *  FenceCommandFailed  anything else: ipmitool exited non-zero for another reason (e.g. a cipher
 *                      suite the BMC does not offer), output that cannot be read, a fence command
 *                      that exited non-zero or could not be started
 *  FenceTimeout        a fence command did not finish within its timeout (killed with its group)
 */
export type FenceErrorReason = 'FenceUnreachable' | 'FenceAuthFailed' | 'FenceNotVerified' | 'FenceCommandFailed' | 'FenceTimeout';

export class FenceError extends Error {
  override name = 'FenceError';
  constructor(
    readonly reason: FenceErrorReason,
    message: string,
    /** The argv that failed, as run (never holds a secret). */
    readonly command?: readonly string[],
    /** How many attempts were made. */
    readonly attempts?: number,
  ) {
    super(message);
  }
}

export interface IpmiFenceOptions {
  /** The BMC's address (IPv4/IPv6 literal or host name). */
  host: string;
  /** The BMC's RMCP+ UDP port (default 623). */
  port?: number;
  user: string;
  /** Given to ipmitool through IPMI_PASSWORD (-E), never on argv. */
  password: string;
  /** -C: the RMCP+ cipher suite (default 3: HMAC-SHA1, AES-CBC-128; ipmi_sim offers no 17). */
  cipherSuite?: number;
  /** Each ipmitool run is killed after this long (default 5000 ms). */
  timeoutMs?: number;
  /** Attempts after the first when the BMC did not answer or ipmitool failed otherwise (default 2); never after FenceAuthFailed. */
  retries?: number;
  /** How long powerOff() polls the status for "off" after the off command (default 10 000 ms). */
  verifyTimeoutMs?: number;
  /** Between status reads while verifying (default 200 ms). */
  verifyIntervalMs?: number;
  /** Where ipmitool is (default /usr/bin/ipmitool). */
  ipmitool?: string;
}

export interface IpmiFencer {
  /** `chassis power status`. */
  status(): Promise<PowerState>;
  /** `chassis power off`, then status reads until one says "off" (FenceNotVerified otherwise). Resolves to how long it took. */
  powerOff(): Promise<{ ms: number; attempts: number; statusReads: number }>;
  /** `chassis power on` (not verified: a host that powers on slowly is not a fence failure). */
  powerOn(): Promise<void>;
}

export interface CommandFenceOptions {
  /** argv (no shell) or one string run with `sh -c`. */
  command: readonly string[] | string;
  /** The node being fenced: the command gets it as VK_FENCE_NODE. */
  node: string;
  /** Killed with its process group after this long (default 30 000 ms): FenceTimeout. */
  timeoutMs?: number;
  /** Attempts after the first on a non-zero exit or a timeout (default 0). */
  retries?: number;
  /** Extra environment (on top of PATH, HOME, LANG of this process; nothing else is inherited). */
  env?: Readonly<Record<string, string>>;
}

export interface CommandFencer {
  /** Runs the command; resolves when it exited 0 (fenced). */
  fence(): Promise<{ ms: number; attempts: number }>;
}
