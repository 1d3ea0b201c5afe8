// What ipmitool 1.8.19 prints, read (pure functions, tested on captured output):
//
//   chassis power status   stdout "Chassis Power is on" / "Chassis Power is off", exit 0
//   chassis power off      stdout "Chassis Power Control: Down/Off", exit 0 (also when already off)
//   chassis power on       stdout "Chassis Power Control: Up/On", exit 0
//   any failure to open the RMCP+ session: exit 1, stderr "Error: Unable to establish IPMI v2 / RMCP+
//   session", and only with -v the cause:
//     wrong password        "> RAKP 2 HMAC is invalid"                         (~60 ms)
//     unknown user          "RAKP 2 message indicates an error : unauthorized name"
//     nothing answers       "Get Auth Capabilities error", "Error issuing Get Channel
//                           Authentication Capabilities request"               (after 2 × -N s with -R 1)
//   an unsupported cipher suite, with or without -v: "Error in open session response message :
//   invalid authentication algorithm" (ipmi_sim and -C 17, at once)
//
// The status is read case-insensitively: PVC compared against "Chassis power is off" while
// ipmitool prints "Chassis Power is off", so its good fences counted as failed.
import type { FenceErrorReason, PowerState } from './types.ts';

const STATUS = /\bpower\s+is\s+(on|off)\b/gi;

/** "on" / "off" from `chassis power status` output; undefined when it says neither, or both. */
export function parsePowerStatus(stdout: string): PowerState | undefined {
  const seen = new Set<PowerState>();
  for (const m of stdout.matchAll(STATUS)) seen.add(m[1]!.toLowerCase() as PowerState);
  return seen.size === 1 ? [...seen][0] : undefined;
}

export const NO_SESSION = /Unable to establish IPMI v2 \/ RMCP\+ session|Unable to establish LAN session/i;
const CIPHER = /invalid (authentication|integrity|confidentiality) algorithm|no matching cipher suite|invalid cipher suite/i;
const AUTH = /RAKP \d HMAC is invalid|unauthorized name|RAKP \d message indicates an error|invalid (user )?name|insufficient privilege|requested privilege level exceeds|password is too long/i;
const NO_ANSWER = /Get Auth Capabilities error|Error issuing Get Channel Authentication Capabilities|no response from remote controller|Unable to get Channel Authentication Capabilities/i;

/** The cipher suite was refused (a setting to change; retrying cannot help). */
export const cipherRefused = (stderr: string): boolean => CIPHER.test(stderr);

/**
 * The reason of a session failure from ipmitool's stderr (with -v for the RAKP details); undefined
 * when the text names no cause.
 */
export function sessionFailureReason(stderr: string): FenceErrorReason | undefined {
  if (CIPHER.test(stderr)) return 'FenceCommandFailed';
  if (AUTH.test(stderr)) return 'FenceAuthFailed';
  if (NO_ANSWER.test(stderr)) return 'FenceUnreachable';
  return undefined;
}

const MAX_EXCERPT = 400;

/** stderr for a message: blank and repeated lines and -v's "Loading IANA PEN Registry..." dropped, the last MAX_EXCERPT characters. */
export function stderrExcerpt(stderr: string): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.replace(/^>\s*/, '').trim();
    if (line === '' || seen.has(line) || /^Loading IANA PEN Registry/.test(line)) continue;
    seen.add(line);
    lines.push(line);
  }
  const text = lines.join('; ');
  return text.length > MAX_EXCERPT ? `…${text.slice(-MAX_EXCERPT)}` : text;
}

/** `text` with every occurrence of `secret` replaced (belt and braces: nothing we print should hold it anyway). */
export function scrub(text: string, secret: string): string {
  return secret === '' ? text : text.split(secret).join('***');
}
