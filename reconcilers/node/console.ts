// Console log (seed 003): the serial log file of each local VM is tailed into
// /vms/<name>/console as its last N lines.
//
// The znode holds the tail of the current log file: libvirt truncates the file at each domain
// start (append='off'), and the buffer starts over with it. A write happens only when the text
// differs from what the znode holds, so an idle console (or a daemon restart over an unchanged
// file) costs no write.
import type { Logger } from 'pino';
import { FileTailer, type TailChunk } from '../../drivers/console-log.ts';

export const DEFAULT_CONSOLE_LINES = 1000;
/** Bound on the znode text (ZooKeeper refuses values above jute.maxbuffer, 1 MiB by default). */
export const DEFAULT_CONSOLE_BYTES = 512 * 1024;

/**
 * The buffer with the lines of `chunk` appended, keeping the last `maxLines`. `chunk` is split on
 * '\n'; a trailing '\r' of each line is dropped; a chunk ending with '\n' adds no empty last line,
 * while text after the last '\n' counts as a line. Does not modify `buffer`.
 */
export function appendLines(buffer: readonly string[], chunk: string, maxLines: number = DEFAULT_CONSOLE_LINES): string[] {
  const limit = Math.max(0, Math.floor(maxLines));
  if (limit === 0) return [];
  if (chunk === '') return buffer.length > limit ? buffer.slice(-limit) : [...buffer];
  const body = chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk;
  const lines = body.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  if (lines.length >= limit) return lines.slice(-limit);
  const keep = limit - lines.length;
  return [...(buffer.length > keep ? buffer.slice(-keep) : buffer), ...lines];
}

/** The last lines of `lines` whose joined text fits in `maxBytes` (UTF-8). */
export function trimToBytes(lines: readonly string[], maxBytes: number = DEFAULT_CONSOLE_BYTES): string[] {
  let bytes = 0;
  let start = lines.length;
  while (start > 0) {
    const cost = Buffer.byteLength(lines[start - 1]!, 'utf8') + (start === lines.length ? 0 : 1);
    if (bytes + cost > maxBytes) break;
    bytes += cost;
    start--;
  }
  return start === 0 ? [...lines] : lines.slice(start);
}

/** The znode text of a buffer. */
export function consoleText(lines: readonly string[]): string {
  return lines.join('\n');
}

// ------------------------------------------------------------------------------------ executor

export interface ConsoleEffects {
  /** The console znode's text and version; null when it does not exist. */
  readConsole(vm: string): Promise<{ text: string; version: number } | null>;
  /** Compare-and-set on `version` (null: create); resolves to the znode's new version. */
  writeConsole(vm: string, text: string, version: number | null): Promise<number>;
  log: Logger;
  /** Default 1000; the daemon passes ClusterConfig.consoleLogLines or its own consoleLines (setMaxLines changes it). */
  maxLines?: number;
  /** Default 512 KiB. */
  maxBytes?: number;
  /** Default 500. */
  pollMs?: number;
  /** Whether a write failed on the version check (default: reason VersionConflict or NodeExists, as ZkError has). */
  isConflict?(error: unknown): boolean;
}

export interface ConsoleFollowState {
  path: string;
  polls: number;
  lines: number;
  writes: number;
}

export interface ConsoleFollower {
  /** Follows `path` into the console of `vm`; a new path replaces the old one (same path: no-op). */
  follow(vm: string, path: string): void;
  /** Stops following `vm`; resolves once its polls and writes have settled. */
  unfollow(vm: string): Promise<void>;
  following(): string[];
  state(vm: string): ConsoleFollowState | undefined;
  /**
   * Changes how many lines are kept per VM (ClusterConfig.consoleLogLines): buffers longer than that
   * are cut at once and their znodes rewritten; a raised limit fills up with the output that follows.
   */
  setMaxLines(maxLines: number): void;
  /** Polls the file of `vm` (or of every VM) now and waits for the resulting writes. */
  syncNow(vm?: string): Promise<void>;
  /** Stops everything; resolves once no timer, poll or write is left. */
  stop(): Promise<void>;
}

function defaultIsConflict(error: unknown): boolean {
  const reason = (error as { reason?: unknown } | null)?.reason;
  return reason === 'VersionConflict' || reason === 'NodeExists';
}

interface Followed {
  vm: string;
  path: string;
  tailer: FileTailer;
  lines: string[];
  text: string;
  /** The znode text as last read or written; undefined: unknown (read before writing). */
  written: string | undefined;
  version: number | null | undefined;
  writing: Promise<void> | null;
  again: boolean;
  stopped: boolean;
  writes: number;
  lastError: string;
}

export function createConsoleFollower(fx: ConsoleEffects): ConsoleFollower {
  let maxLines = fx.maxLines ?? DEFAULT_CONSOLE_LINES;
  const maxBytes = fx.maxBytes ?? DEFAULT_CONSOLE_BYTES;
  const isConflict = fx.isConflict ?? defaultIsConflict;
  const log = fx.log.child({ component: 'console' });
  const vms = new Map<string, Followed>();
  const pollMs = fx.pollMs ?? 500;
  const settling = new Set<Promise<void>>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> | null = null;

  // One timer polls every followed file in turn (cheaper than a timer per file, see console-log.ts).
  function ensureTimer(): void {
    if (stopped || timer || round) return;
    timer = setTimeout(() => {
      timer = undefined;
      const busy: Promise<void>[] = [];
      for (const f of vms.values()) {
        const p = check(f);
        if (p) busy.push(p);
      }
      round = Promise.all(busy).then(() => {
        round = null;
        if (vms.size > 0) ensureTimer();
      });
    }, pollMs);
  }

  /** Polls f's file; null when a synchronous check found nothing new (the idle case: no promise). */
  function check(f: Followed): Promise<void> | null {
    let p: Promise<unknown> | null;
    try {
      p = f.tailer.check();
    } catch (error) {
      report(f, error);
      return null;
    }
    return p && p.then(() => recovered(f), (error: unknown) => report(f, error));
  }

  function poll(f: Followed): Promise<void> {
    return f.tailer.pollNow().then(() => recovered(f), (error: unknown) => report(f, error));
  }

  function recovered(f: Followed): void {
    f.lastError = '';
  }

  /** Logs a read error once per distinct message in a row. */
  function report(f: Followed, error: unknown): void {
    const message = (error as Error)?.message ?? String(error);
    if (message === f.lastError) return;
    f.lastError = message;
    log.warn({ vm: f.vm, path: f.path, err: error }, 'cannot read the serial log');
  }

  function onChunk(f: Followed, chunk: TailChunk): void {
    if (f.stopped) return;
    if (chunk.reset) f.lines = [];
    f.lines = trimToBytes(appendLines(f.lines, chunk.text, maxLines), maxBytes);
    f.text = consoleText(f.lines);
    // A reset alone (truncated file, nothing new yet) keeps the znode until the new lines come.
    if (chunk.text !== '') sync(f);
  }

  function sync(f: Followed): Promise<void> {
    if (f.writing) {
      f.again = true;
      return f.writing;
    }
    const run = (async () => {
      do {
        f.again = false;
        await writeIfChanged(f);
      } while (f.again && !f.stopped);
    })().finally(() => {
      f.writing = null;
    });
    f.writing = run;
    return run;
  }

  async function refresh(f: Followed): Promise<void> {
    const current = await fx.readConsole(f.vm);
    f.version = current?.version ?? null;
    f.written = current?.text;
  }

  async function writeIfChanged(f: Followed): Promise<void> {
    try {
      if (f.stopped || f.text === f.written) return;
      if (f.version === undefined) {
        await refresh(f);
        if (f.stopped || f.text === f.written) return;
      }
      const text = f.text;
      try {
        f.version = await fx.writeConsole(f.vm, text, f.version ?? null);
      } catch (error) {
        if (!isConflict(error)) throw error;
        log.debug({ vm: f.vm, err: error }, 'console znode changed under us; re-reading it');
        await refresh(f);
        if (f.stopped || text === f.written) return;
        f.version = await fx.writeConsole(f.vm, text, f.version ?? null);
      }
      f.written = text;
      f.writes++;
    } catch (error) {
      // Unknown state of the znode: read it again before the next write (on the next new output).
      f.version = undefined;
      f.written = undefined;
      log.warn({ vm: f.vm, err: error }, 'could not write the console log');
    }
  }

  async function halt(f: Followed): Promise<void> {
    f.stopped = true;
    await f.tailer.stop();
    await f.writing;
  }

  function track(p: Promise<void>): Promise<void> {
    settling.add(p);
    return p.finally(() => settling.delete(p));
  }

  return {
    follow(vm, path) {
      if (stopped) throw new Error('console follower is stopped');
      const existing = vms.get(vm);
      if (existing?.path === path) return;
      if (existing) void track(halt(existing));
      // Polled by the follower's single timer (never started on its own).
      const tailer = new FileTailer(path, (chunk) => onChunk(f, chunk));
      const f: Followed = {
        vm,
        path,
        tailer,
        lines: [],
        text: '',
        written: undefined,
        version: undefined,
        writing: null,
        again: false,
        stopped: false,
        writes: 0,
        lastError: '',
      };
      vms.set(vm, f);
      void poll(f);
      ensureTimer();
    },

    async unfollow(vm) {
      const f = vms.get(vm);
      if (!f) return;
      vms.delete(vm);
      await track(halt(f));
    },

    following() {
      return [...vms.keys()].sort();
    },

    state(vm) {
      const f = vms.get(vm);
      return f && { path: f.path, polls: f.tailer.polls, lines: f.lines.length, writes: f.writes };
    },

    setMaxLines(n) {
      if (n === maxLines) return;
      maxLines = n;
      for (const f of vms.values()) {
        if (f.lines.length <= maxLines) continue;
        f.lines = appendLines(f.lines, '', maxLines);
        f.text = consoleText(f.lines);
        void sync(f);
      }
    },

    async syncNow(vm) {
      const targets = vm === undefined ? [...vms.values()] : [vms.get(vm)].filter((f): f is Followed => f !== undefined);
      await Promise.all(
        targets.map(async (f) => {
          await f.tailer.pollNow();
          await f.writing;
        }),
      );
    },

    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      const all = [...vms.values()];
      vms.clear();
      await Promise.all([round, ...all.map((f) => halt(f)), ...settling]);
    },
  };
}
