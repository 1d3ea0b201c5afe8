// Follows a domain's serial log file (what libvirt writes for <serial><log file=… append='off'/>)
// by polling, as PVC does: fs.stat every pollMs, then a read of the bytes added since the last poll.
//
// - absent file: nothing yet (no error); it is picked up once it appears.
// - truncation (the size shrank, the file was replaced, or the bytes just before our offset are not
//   the ones we read there — a restart that rewrote more than we had read): start again from 0 and
//   say so with `reset`. libvirt truncates the file at each domain start (append='off').
// - a partial last line is held until its newline comes (or it grows past maxLineLength).
// - a first read (or a catch-up) of more than maxCatchUpBytes reads only the last maxCatchUpBytes,
//   from the first line boundary in them, and reports `reset`.
//
// The per-poll check is a synchronous stat of a local file (a few µs): measured with 334 idle
// files polled every 500 ms, fs.promises.stat cost 1.1–2.5 % of a core (thread-pool hops) against
// 0.3 % for statSync driven from one timer. Reads, which happen only when the size changed, are
// asynchronous.
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

export interface TailChunk {
  /** Complete lines, each ending with '\n'; '' when only `reset` is news. */
  text: string;
  /** The lines seen before are gone (truncation, replacement, catch-up skip): start over with `text`. */
  reset: boolean;
}

export interface TailerOptions {
  /** Default 500 (PVC's console watcher interval). */
  pollMs?: number;
  /** A line without newline longer than this is passed on as a line of its own. Default 4096. */
  maxLineLength?: number;
  /** Largest read per poll; older bytes are skipped. Default 1 MiB. */
  maxCatchUpBytes?: number;
  /** Errors of timer-driven polls other than an absent file (default: ignored). */
  onError?(error: unknown): void;
}

/** Bytes before the offset compared at each read to notice a rewritten file. */
const FINGERPRINT_BYTES = 64;

export class FileTailer {
  readonly path: string;
  private readonly onChunk: (chunk: TailChunk) => void;
  private readonly pollMs: number;
  private readonly maxLineLength: number;
  private readonly maxCatchUpBytes: number;
  private readonly onError: (error: unknown) => void;

  private offset = 0;
  private fileId: string | undefined;
  /** The last bytes before `offset`, as read. */
  private fingerprint: Buffer = Buffer.alloc(0);
  private decoder = new StringDecoder('utf8');
  private partial = '';
  /** Dropping text up to the next newline (after a catch-up skip landed mid-line). */
  private skipping = false;
  /** The file vanished since the last read: what appears next starts over. */
  private resetPending = false;

  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  private started = false;
  private stopped = false;
  private pollCount = 0;
  private pending = 0;

  constructor(path: string, onChunk: (chunk: TailChunk) => void, opts: TailerOptions = {}) {
    this.path = path;
    this.onChunk = onChunk;
    this.pollMs = opts.pollMs ?? 500;
    this.maxLineLength = opts.maxLineLength ?? 4096;
    this.maxCatchUpBytes = opts.maxCatchUpBytes ?? 1024 * 1024;
    this.onError = opts.onError ?? (() => {});
  }

  /** Polls completed so far. */
  get polls(): number {
    return this.pollCount;
  }

  /** Starts polling: one poll at once, then every pollMs after the previous one ended. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  /** One poll now (serialized with the timer's); resolves to what it passed on, or null. Throws read errors. */
  pollNow(): Promise<TailChunk | null> {
    this.pending++;
    const run = this.busy
      .then(() => (this.stopped ? null : this.pollOnce()))
      .finally(() => {
        this.pending--;
      });
    this.busy = run.catch(() => undefined);
    return run;
  }

  /**
   * A poll for callers that poll many files: null at once (no promise) when a synchronous stat
   * shows nothing new, else the poll's promise as pollNow() gives it.
   */
  check(): Promise<TailChunk | null> | null {
    if (this.stopped) return null;
    if (this.pending > 0) return this.pollNow();
    const info = statSync(this.path, { throwIfNoEntry: false });
    const unchanged =
      !this.resetPending &&
      (info === undefined
        ? this.fileId === undefined
        : info.isFile() && this.fileId === `${info.dev}:${info.ino}` && info.size === this.offset);
    if (!unchanged) return this.pollNow();
    this.pollCount++;
    return null;
  }

  /** Stops polling; resolves once no poll runs and no timer is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.busy;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pollNow()
        .catch((error: unknown) => this.onError(error))
        .finally(() => this.schedule(this.pollMs));
    }, ms);
  }

  private async pollOnce(): Promise<TailChunk | null> {
    this.pollCount++;
    const info = statSync(this.path, { throwIfNoEntry: false });
    if (info === undefined) {
      // Gone (or not there yet): whatever comes next under this path is a new file.
      if (this.fileId !== undefined) {
        this.restart();
        this.resetPending = true;
      }
      this.fileId = undefined;
      return null;
    }
    if (!info.isFile()) throw new Error(`${this.path} is not a regular file`);

    let reset = this.resetPending;
    this.resetPending = false;
    const fileId = `${info.dev}:${info.ino}`;
    if ((this.fileId !== undefined && fileId !== this.fileId) || info.size < this.offset) {
      this.restart();
      reset = true;
    }
    this.fileId = fileId;
    if (info.size === this.offset) return this.emit('', reset);

    const fh = await open(this.path, 'r');
    try {
      if (this.offset > 0 && !(await this.fingerprintMatches(fh))) {
        this.restart();
        reset = true;
      }
      let from = this.offset;
      if (info.size - from > this.maxCatchUpBytes) {
        from = info.size - this.maxCatchUpBytes;
        this.decoder = new StringDecoder('utf8');
        this.partial = '';
        this.skipping = true;
        reset = true;
      }
      const contiguous = from === this.offset;
      const bytes = await readRange(fh, from, info.size - from);
      this.fingerprint = (contiguous ? Buffer.concat([this.fingerprint, bytes]) : bytes).subarray(-FINGERPRINT_BYTES);
      this.offset = from + bytes.length;
      return this.emit(this.decoder.write(bytes), reset);
    } finally {
      await fh.close();
    }
  }

  private async fingerprintMatches(fh: FileHandle): Promise<boolean> {
    const length = this.fingerprint.length;
    if (length === 0) return true;
    const now = await readRange(fh, this.offset - length, length);
    return now.equals(this.fingerprint);
  }

  private restart(): void {
    this.offset = 0;
    this.fingerprint = Buffer.alloc(0);
    this.decoder = new StringDecoder('utf8');
    this.partial = '';
    this.skipping = false;
  }

  private emit(decoded: string, reset: boolean): TailChunk | null {
    let text = decoded;
    if (this.skipping) {
      const nl = text.indexOf('\n');
      if (nl < 0) text = '';
      else {
        text = text.slice(nl + 1);
        this.skipping = false;
      }
    }
    const all = this.partial + text;
    const cut = all.lastIndexOf('\n') + 1;
    let complete = all.slice(0, cut);
    this.partial = all.slice(cut);
    while (this.partial.length > this.maxLineLength) {
      complete += `${this.partial.slice(0, this.maxLineLength)}\n`;
      this.partial = this.partial.slice(this.maxLineLength);
    }
    if (complete === '' && !reset) return null;
    const chunk = { text: complete, reset };
    this.onChunk(chunk);
    return chunk;
  }
}

/** Reads exactly `length` bytes at `position` (fewer only if the file ends first). */
async function readRange(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buffer.subarray(0, got);
}

/** Starts a tailer on `path`. */
export function tailFile(path: string, onChunk: (chunk: TailChunk) => void, opts: TailerOptions = {}): FileTailer {
  const tailer = new FileTailer(path, onChunk, opts);
  tailer.start();
  return tailer;
}
