// `--wait`: follow a status in ZooKeeper until it says done or failed, showing progress (one live
// line on a TTY, a plain line per change otherwise). Failure and timeout are CliErrors (exit 1).
import { Option, type Command } from 'commander';
import { combineLatest, type Observable } from 'rxjs';
import type { DataState, ZkStore } from '../drivers/zk/index.ts';
import { parseSeconds } from './connect.ts';
import { CliError } from './errors.ts';
import { stdoutIsTty } from './output.ts';

export const DEFAULT_WAIT_SECONDS = 120;

export type WaitVerdict = { done: string } | { failed: string } | { pending: string };

/** The flags addWaitOptions adds. */
export interface WaitFlags {
  wait?: boolean;
  timeout?: number;
}

/** Adds --wait and --timeout to a command that can follow what it asked for. */
export function addWaitOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--wait', 'follow the status until the change is done (exits non-zero if it fails)'))
    .addOption(new Option('--timeout <seconds>', `with --wait: give up after this long (default ${DEFAULT_WAIT_SECONDS})`).argParser(parseSeconds));
}

/** The data of a znode state decoded with `decode`, or null when absent or undecodable. */
export function dataOf<T>(state: DataState | undefined, decode: (raw: Buffer) => T): T | null {
  if (!state || state.kind !== 'data') return null;
  try {
    return decode(state.data);
  } catch {
    return null;
  }
}

/** Watches the data of `paths` together. */
export function watchAll(store: ZkStore, paths: readonly string[]): Observable<DataState[]> {
  return combineLatest(paths.map((p) => store.watchData(p)));
}

export async function waitFor<T>(source: Observable<T>, evaluate: (value: T) => WaitVerdict, opts: { what: string; timeoutSeconds?: number }): Promise<string> {
  const timeoutMs = Math.round((opts.timeoutSeconds ?? DEFAULT_WAIT_SECONDS) * 1000);
  const tty = stdoutIsTty();
  let lastLine = '';
  const show = (line: string) => {
    if (line === lastLine) return;
    lastLine = line;
    if (tty) process.stdout.write(`\r\u001b[K${line}`);
    else process.stdout.write(`${line}\n`);
  };
  const clear = () => {
    if (tty && lastLine !== '') process.stdout.write('\r\u001b[K');
  };
  return followUntil(source, {
    timeoutMs,
    closed: `stopped following ${opts.what}: the connection to ZooKeeper closed`,
    onFinish: clear,
    onValue: (value) => {
      const verdict = evaluate(value);
      if ('done' in verdict) return verdict.done;
      if ('failed' in verdict) throw new CliError(verdict.failed);
      show(`${opts.what}: ${verdict.pending}`);
      return undefined;
    },
    onTimeout: () => {
      throw new CliError(`timed out after ${timeoutMs / 1000}s waiting for ${opts.what}${lastLine ? ` (last: ${lastLine.replace(/^[^:]*: /, '')})` : ''}`);
    },
  });
}

export interface FollowOptions<T, R> {
  timeoutMs: number;
  /** An ending (resolves), undefined (keep following), or a throw (rejects). Never called after the end. */
  onValue(value: T): R | undefined;
  /** What the timeout ends with: a value, or a throw (rejects). */
  onTimeout(): R;
  /** The CliError message when the stream completes first (the store was closed). */
  closed: string;
  /** Called once, at the end, before the promise settles. */
  onFinish?(): void;
}

/** Follows `source` until onValue ends it, the timeout, an error or the stream's end; unsubscribes once. */
export function followUntil<T, R>(source: Observable<T>, o: FollowOptions<T, R>): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    let finished = false;
    const finish = (end: () => R) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      queueMicrotask(() => subscription.unsubscribe());
      o.onFinish?.();
      try {
        resolve(end());
      } catch (error) {
        reject(error);
      }
    };
    const timer = setTimeout(() => finish(o.onTimeout), o.timeoutMs);
    const subscription = source.subscribe({
      next: (value) => {
        if (finished) return;
        let ending: R | undefined;
        try {
          ending = o.onValue(value);
        } catch (error) {
          finish(() => {
            throw error;
          });
          return;
        }
        if (ending !== undefined) finish(() => ending);
      },
      error: (error: unknown) =>
        finish(() => {
          throw error;
        }),
      complete: () =>
        finish(() => {
          throw new CliError(o.closed);
        }),
    });
  });
}
