// Power fencing through a BMC with ipmitool (DESIGN §4 "Fencing and recovery", §5 "BMC simulator"):
//
//   ipmitool -I lanplus -C SUITE -H HOST -p PORT -U USER -E -N S -R 1 chassis power status|off|on
//
// with the password in IPMI_PASSWORD (-E), never on argv. Each run is bounded: ipmitool's own
// retransmission timeout -N is sized so that it gives up on a silent BMC before timeoutMs (with
// -R 1 it waits about 2 × N s), and ../exec/run.ts kills it at timeoutMs regardless.
//
// How a failure gets its reason (./parse.ts has the texts): exit 1 with "Unable to establish … RMCP+
// session" is every session failure. When ipmitool waited its timeout first, nothing answered:
// FenceUnreachable. When it failed sooner, the BMC answered and refused: one diagnostic rerun with
// -v (which costs ~190 ms more, for the IANA registry, so it is not used on the good path) tells a
// refused password or user (FenceAuthFailed, never retried: real BMCs lock accounts) from anything
// else. A refused cipher suite is FenceCommandFailed, not retried. Unreachable and other failures
// are retried `retries` times.
import { howItEnded, remaining, run, shown, type RunOutcome } from '../exec/run.ts';
import { cipherRefused, NO_SESSION, parsePowerStatus, scrub, sessionFailureReason, stderrExcerpt } from './parse.ts';
import { FenceError, type FenceErrorReason, type IpmiFenceOptions, type IpmiFencer, type PowerState } from './types.ts';

interface Settings {
  host: string;
  port: number;
  user: string;
  password: string;
  cipherSuite: number;
  timeoutMs: number;
  retries: number;
  verifyTimeoutMs: number;
  verifyIntervalMs: number;
  ipmitool: string;
}

const HOST = /^[A-Za-z0-9:.\-[\]%]{1,253}$/;
const USER = /^[^\0\n\r]{1,16}$/;

function positive(what: string, v: number, min = 1): number {
  if (!(Number.isInteger(v) && v >= min)) throw new TypeError(`IpmiFenceOptions.${what} must be an integer >= ${min} (got ${v})`);
  return v;
}

/** The options checked and defaulted (TypeError naming the option, never showing the password). */
export function ipmiSettings(o: IpmiFenceOptions): Settings {
  if (!HOST.test(o.host) || o.host.startsWith('-')) throw new TypeError(`IpmiFenceOptions.host must be an address or host name (got ${JSON.stringify(o.host)})`);
  if (!USER.test(o.user) || o.user.startsWith('-')) throw new TypeError(`IpmiFenceOptions.user must be 1–16 characters, no newline, not starting with "-" (got ${JSON.stringify(o.user)})`);
  if (typeof o.password !== 'string' || o.password.length > 20 || /[\0\n\r]/.test(o.password)) throw new TypeError('IpmiFenceOptions.password must be a string of at most 20 characters without NUL or newlines (value not shown)');
  const port = positive('port', o.port ?? 623);
  if (port > 65535) throw new TypeError(`IpmiFenceOptions.port must be at most 65535 (got ${port})`);
  const cipherSuite = positive('cipherSuite', o.cipherSuite ?? 3, 0);
  if (cipherSuite > 17) throw new TypeError(`IpmiFenceOptions.cipherSuite must be 0–17 (got ${cipherSuite})`);
  const ipmitool = o.ipmitool ?? '/usr/bin/ipmitool';
  if (!ipmitool.startsWith('/')) throw new TypeError(`IpmiFenceOptions.ipmitool must be an absolute path (got ${JSON.stringify(ipmitool)})`);
  return {
    host: o.host,
    port,
    user: o.user,
    password: o.password,
    cipherSuite,
    timeoutMs: positive('timeoutMs', o.timeoutMs ?? 5000, 100),
    retries: positive('retries', o.retries ?? 2, 0),
    verifyTimeoutMs: positive('verifyTimeoutMs', o.verifyTimeoutMs ?? 10_000, 0),
    verifyIntervalMs: positive('verifyIntervalMs', o.verifyIntervalMs ?? 200, 1),
    ipmitool,
  };
}

/** ipmitool's -N (seconds between retransmissions) so that -R 1 (about 2 × N s) ends before timeoutMs. */
export const retransmitSeconds = (timeoutMs: number): number => Math.max(1, Math.floor((timeoutMs - 500) / 2000));

/** The argv of one run: no secret in it (the password goes through IPMI_PASSWORD). */
export function ipmitoolArgv(s: Settings, words: readonly string[], opts: { verbose?: boolean; timeoutMs?: number } = {}): string[] {
  return [
    s.ipmitool,
    ...(opts.verbose ? ['-v'] : []),
    '-I', 'lanplus',
    '-C', String(s.cipherSuite),
    '-H', s.host,
    '-p', String(s.port),
    '-U', s.user,
    '-E',
    '-N', String(retransmitSeconds(opts.timeoutMs ?? s.timeoutMs)),
    '-R', '1',
    ...words,
  ];
}

/** This process's environment with the password as IPMI_PASSWORD (and no IPMITOOL_PASSWORD, which newer ipmitools read first). */
function envWith(password: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, IPMI_PASSWORD: password };
  delete env.IPMITOOL_PASSWORD;
  return env;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One ipmitool run; its stdout, or a FenceError with a reason. */
async function once(s: Settings, words: readonly string[], timeoutMs: number): Promise<string> {
  const argv = ipmitoolArgv(s, words, { timeoutMs });
  const t0 = Date.now();
  const o = await run(argv, timeoutMs, { env: envWith(s.password) });
  const took = Date.now() - t0;
  if (o.code === 0 && !o.timedOut && o.failure === undefined) return o.stdout;
  const fail = (reason: FenceErrorReason, why: string, detail: RunOutcome = o): FenceError => {
    const excerpt = stderrExcerpt(detail.stderr);
    return new FenceError(reason, scrub(`${shown(argv)}: ${why}${excerpt ? `: ${excerpt}` : ''}`, s.password), argv);
  };
  if (o.timedOut) return Promise.reject(fail('FenceUnreachable', `the BMC did not answer: ${howItEnded(o, timeoutMs)}`));
  if (o.failure !== undefined) return Promise.reject(fail('FenceCommandFailed', o.failure));
  if (!NO_SESSION.test(o.stderr)) return Promise.reject(fail('FenceCommandFailed', howItEnded(o, timeoutMs)));
  if (cipherRefused(o.stderr)) return Promise.reject(fail('FenceCommandFailed', `cipher suite ${s.cipherSuite} refused by the BMC (set cipherSuite)`));
  if (took >= retransmitSeconds(timeoutMs) * 1000) return Promise.reject(fail('FenceUnreachable', `the BMC did not answer (${took} ms, ${howItEnded(o, timeoutMs)})`));
  // Refused at once: the BMC answered. Ask ipmitool why (-v prints the RAKP error).
  const diag = await run(ipmitoolArgv(s, words, { verbose: true, timeoutMs }), timeoutMs, { env: envWith(s.password) });
  if (diag.code === 0 && !diag.timedOut) return diag.stdout; // it worked this time
  const reason = sessionFailureReason(diag.stderr) ?? 'FenceCommandFailed';
  const why = reason === 'FenceAuthFailed' ? 'the BMC refused the user or password' : reason === 'FenceUnreachable' ? 'the BMC did not answer' : 'no session';
  return Promise.reject(fail(reason, `${why} (${howItEnded(o, timeoutMs)})`, diag));
}

/** `once`, again up to `retries` times unless the reason says retrying is useless. */
async function retried(s: Settings, words: readonly string[]): Promise<{ stdout: string; attempts: number }> {
  let last: FenceError | undefined;
  for (let attempt = 1; attempt <= s.retries + 1; attempt++) {
    try {
      return { stdout: await once(s, words, s.timeoutMs), attempts: attempt };
    } catch (err) {
      if (!(err instanceof FenceError)) throw err;
      last = new FenceError(err.reason, `${err.message} (attempt ${attempt} of ${s.retries + 1})`, err.command, attempt);
      if (err.reason === 'FenceAuthFailed' || /cipher suite \d+ refused/.test(err.message)) break;
    }
  }
  throw last!;
}

function readStatus(s: Settings, stdout: string): PowerState {
  const state = parsePowerStatus(stdout);
  if (state === undefined) {
    const argv = ipmitoolArgv(s, ['chassis', 'power', 'status']);
    throw new FenceError('FenceCommandFailed', scrub(`${shown(argv)}: cannot read the power state from ${JSON.stringify(stdout.trim().slice(0, 200))}`, s.password), argv);
  }
  return state;
}

export function createIpmiFencer(o: IpmiFenceOptions): IpmiFencer {
  const s = ipmiSettings(o);
  const STATUS = ['chassis', 'power', 'status'];
  return {
    async status() {
      return readStatus(s, (await retried(s, STATUS)).stdout);
    },
    async powerOn() {
      await retried(s, ['chassis', 'power', 'on']);
    },
    async powerOff() {
      const t0 = Date.now();
      const { attempts } = await retried(s, ['chassis', 'power', 'off']);
      // Reads start until the deadline; each is bounded by timeoutMs (so the verify phase may end up
      // to one timeoutMs past verifyTimeoutMs: a read cut short would hide what the BMC said).
      const deadline = Date.now() + s.verifyTimeoutMs;
      let statusReads = 0;
      let answer: PowerState | undefined;
      let lastError: string | undefined;
      for (;;) {
        statusReads++;
        try {
          answer = readStatus(s, await once(s, STATUS, s.timeoutMs));
          lastError = undefined;
          if (answer === 'off') return { ms: Date.now() - t0, attempts, statusReads };
        } catch (err) {
          if (!(err instanceof FenceError)) throw err;
          lastError = err.message;
        }
        if (Date.now() + s.verifyIntervalMs >= deadline) break;
        await sleep(Math.min(s.verifyIntervalMs, remaining(deadline)));
      }
      const argv = ipmitoolArgv(s, STATUS);
      const last = [answer === undefined ? 'no status answer' : `the BMC still says "${answer}"`, ...(lastError !== undefined ? [`then: ${lastError}`] : [])].join('; ');
      throw new FenceError('FenceNotVerified', scrub(`power off of ${s.host}:${s.port} accepted, but no status read said "off" within ${s.verifyTimeoutMs} ms (${statusReads} reads; ${last})`, s.password), argv, attempts);
    },
  };
}
