// A configured fence command (DESIGN §4 "Fencing and recovery"): argv (no shell) or one string for
// `sh -c`, run by ../exec/run.ts with the node's name in VK_FENCE_NODE and a small environment
// (PATH, HOME, LANG of this process plus what the config adds; nothing else leaks in, such as a
// BMC password of another fencer). Exit 0 = fenced; any other exit FenceCommandFailed; still running
// after timeoutMs: its process group is killed, FenceTimeout. Retried `retries` times.
import { howItEnded, run, shown } from '../exec/run.ts';
import { stderrExcerpt } from './parse.ts';
import { FenceError, type CommandFenceOptions, type CommandFencer } from './types.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function commandArgv(command: CommandFenceOptions['command']): string[] {
  if (typeof command === 'string') {
    if (command.trim() === '') throw new TypeError('CommandFenceOptions.command must not be empty');
    return ['/bin/sh', '-c', command];
  }
  if (command.length === 0 || command[0] === '') throw new TypeError('CommandFenceOptions.command must name a program');
  return [...command];
}

/** `text` with every occurrence of each secret replaced by <redacted> (longest first, so a secret inside another goes too). */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join('<redacted>');
  return out;
}

export function createCommandFencer(o: CommandFenceOptions): CommandFencer {
  const argv = commandArgv(o.command);
  const timeoutMs = o.timeoutMs ?? 30_000;
  const retries = o.retries ?? 0;
  if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new TypeError(`CommandFenceOptions.timeoutMs must be a positive integer (got ${timeoutMs})`);
  if (!(Number.isInteger(retries) && retries >= 0)) throw new TypeError(`CommandFenceOptions.retries must be a non-negative integer (got ${retries})`);
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG'] as const) if (process.env[k] !== undefined) env[k] = process.env[k];
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (!ENV_NAME.test(k)) throw new TypeError(`CommandFenceOptions.env: invalid variable name ${JSON.stringify(k)}`);
    env[k] = v;
  }
  env.VK_FENCE_NODE = o.node;
  // The config's env values are secrets (tokens): a command that echoes one does not get it into a message.
  const secrets = Object.values(o.env ?? {}).filter((v) => v.length >= 3);
  return {
    async fence() {
      const t0 = Date.now();
      let last: FenceError | undefined;
      for (let attempt = 1; attempt <= retries + 1; attempt++) {
        const r = await run(argv, timeoutMs, { env });
        if (r.code === 0 && !r.timedOut && r.failure === undefined) return { ms: Date.now() - t0, attempts: attempt };
        const excerpt = redactSecrets(stderrExcerpt(r.stderr), secrets);
        const reason = r.timedOut ? 'FenceTimeout' : 'FenceCommandFailed';
        last = new FenceError(reason, `fence command for ${o.node}: ${shown(argv)}: ${howItEnded(r, timeoutMs)}${excerpt ? `: ${excerpt}` : ''} (attempt ${attempt} of ${retries + 1})`, argv, attempt);
      }
      throw last!;
    },
  };
}
