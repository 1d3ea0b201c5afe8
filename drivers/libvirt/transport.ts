// One connection to libvirtd (unix socket or TCP): frames calls, matches replies by serial, lets
// many calls be in flight at once, answers keepalive PINGs and hands event messages out as an
// Observable. When the connection ends every pending call is rejected with LibvirtConnectionError.

import net from 'node:net';
import { Subject, type Observable } from 'rxjs';
import {
  DEFAULT_MAX_FRAME_BYTES,
  HEADER_BYTES,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  KeepaliveProc,
  LEN_BYTES,
  MessageStatus,
  MessageType,
  procName,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
} from './constants.ts';
import {
  LibvirtAbortedError,
  LibvirtConnectionError,
  LibvirtError,
  LibvirtProtocolError,
  LibvirtTimeoutError,
} from './errors.ts';
import { decodeMessage, encodeMessage, FrameDecoder, type MessageHeader } from './framing.ts';
import { readRemoteError } from './types.ts';
import { XdrReader } from './xdr.ts';

export type SocketTarget = { path: string } | { host: string; port?: number };

export const describeTarget = (t: SocketTarget): string => ('path' in t ? t.path : `${t.host}:${t.port ?? 16509}`);

export interface TransportOptions {
  /** Largest frame accepted from the peer, length word included (default 32 MiB + 4). */
  maxFrameBytes?: number;
  /** Give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
}

export interface CallOptions {
  /** Reject with LibvirtTimeoutError when no reply came within this many ms (the call is not cancelled in libvirtd). */
  timeoutMs?: number;
  /** Reject with LibvirtAbortedError when this fires (the call is not cancelled in libvirtd). */
  signal?: AbortSignal;
}

export interface KeepaliveOptions {
  /** Send a PING after this much silence from the server. */
  intervalMs: number;
  /** Drop the connection after `count` intervals of silence. */
  count: number;
}

/** A MESSAGE (event) of the remote program. */
export interface RemoteEvent {
  proc: number;
  body: Buffer;
}

/** What typed procedures need from a connection; implemented by Transport and LibvirtConnection. */
export interface RpcChannel {
  call(proc: number, args?: Uint8Array, opts?: CallOptions): Promise<Buffer>;
  readonly events$: Observable<RemoteEvent>;
}

export interface KeepaliveStats {
  /** PINGs we sent because the server was silent. */
  pingsSent: number;
  /** PONGs the server sent back. */
  pongsReceived: number;
  /** PINGs from the server that we answered. */
  pingsAnswered: number;
}

interface Pending {
  proc: number;
  resolve(body: Buffer): void;
  reject(err: Error): void;
}

export class Transport implements RpcChannel {
  private readonly pending = new Map<number, Pending>();
  private readonly decoder: FrameDecoder;
  private readonly eventsSubject = new Subject<RemoteEvent>();
  private serial = 0;
  private closeError: LibvirtConnectionError | undefined;
  private lastError: Error | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastReceived = Date.now();
  private resolveClosed!: (err: LibvirtConnectionError) => void;
  private peak = 0;
  private readonly maxFrameBytes: number;
  private readonly ka: KeepaliveStats = { pingsSent: 0, pongsReceived: 0, pingsAnswered: 0 };

  readonly events$: Observable<RemoteEvent> = this.eventsSubject.asObservable();
  /** Settles (never rejects) once the connection is gone, with the error pending calls got. */
  readonly closed: Promise<LibvirtConnectionError>;
  readonly label: string;

  static connect(target: SocketTarget, opts: TransportOptions = {}): Promise<Transport> {
    const label = describeTarget(target);
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    return new Promise<Transport>((resolve, reject) => {
      const socket =
        'path' in target ? net.createConnection({ path: target.path }) : net.createConnection({ host: target.host, port: target.port ?? 16509 });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new LibvirtConnectionError(`connecting to ${label} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(new LibvirtConnectionError(`cannot connect to ${label}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        if (!('path' in target)) {
          socket.setNoDelay(true);
          socket.setKeepAlive(true, 10_000);
        }
        resolve(new Transport(socket, label, opts));
      });
    });
  }

  private constructor(
    private readonly socket: net.Socket,
    label: string,
    opts: TransportOptions,
  ) {
    this.label = label;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.decoder = new FrameDecoder(this.maxFrameBytes);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.lastError ??= err;
    });
    socket.on('close', () => this.onClose());
  }

  get isOpen(): boolean {
    return this.closeError === undefined;
  }

  /** Calls sent and not yet answered. */
  get pendingCalls(): number {
    return this.pending.size;
  }

  /** Most calls that were in flight at the same time on this connection. */
  get peakPendingCalls(): number {
    return this.peak;
  }

  get keepaliveStats(): KeepaliveStats {
    return { ...this.ka };
  }

  call(proc: number, args?: Uint8Array, opts: CallOptions = {}): Promise<Buffer> {
    return this.callProgram(REMOTE_PROGRAM, REMOTE_PROTOCOL_VERSION, proc, args, opts);
  }

  callProgram(prog: number, vers: number, proc: number, args: Uint8Array | undefined, opts: CallOptions = {}): Promise<Buffer> {
    const name = prog === REMOTE_PROGRAM ? procName(proc) : `${prog.toString(16)}/${proc}`;
    if (this.closeError) {
      return Promise.reject(new LibvirtConnectionError(`${name}: not connected (${this.closeError.message})`, { cause: this.closeError }));
    }
    if (opts.signal?.aborted) return Promise.reject(new LibvirtAbortedError(name, { cause: opts.signal.reason }));
    const size = LEN_BYTES + HEADER_BYTES + (args?.length ?? 0);
    if (size > this.maxFrameBytes) {
      return Promise.reject(new LibvirtProtocolError(`${name}: a ${size}-byte message exceeds the ${this.maxFrameBytes}-byte frame limit`));
    }
    const serial = this.nextSerial();
    return new Promise<Buffer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const signal = opts.signal;
      const onAbort = (): void => {
        if (this.pending.delete(serial)) settle(() => reject(new LibvirtAbortedError(name, { cause: signal?.reason })));
      };
      const settle = (fn: () => void): void => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      this.pending.set(serial, {
        proc,
        resolve: (body) => settle(() => resolve(body)),
        reject: (err) => settle(() => reject(err)),
      });
      if (this.pending.size > this.peak) this.peak = this.pending.size;
      if (opts.timeoutMs !== undefined) {
        const ms = opts.timeoutMs;
        timer = setTimeout(() => {
          if (this.pending.delete(serial)) settle(() => reject(new LibvirtTimeoutError(name, ms)));
        }, ms);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.write({ prog, vers, proc, type: MessageType.CALL, serial, status: MessageStatus.OK }, args);
    });
  }

  /**
   * Sends our own keepalive PINGs after `intervalMs` of silence and drops the connection after
   * `count` silent intervals. Only enable once libvirtd runs keepalive for this client
   * (CONNECT_SUPPORTS_FEATURE with PROGRAM_KEEPALIVE), or it will not answer.
   */
  startKeepalive(opts: KeepaliveOptions): void {
    this.stopKeepalive();
    if (!this.isOpen) return;
    const tick = Math.max(10, Math.floor(opts.intervalMs / 2));
    this.lastReceived = Date.now();
    // One timer, due when the silence would reach an interval (not a fixed tick: a connection
    // with traffic wakes nobody); while silent, every half interval, as a ping goes unanswered.
    const check = (): void => {
      this.keepaliveTimer = undefined;
      if (!this.isOpen) return;
      const silent = Date.now() - this.lastReceived;
      if (silent >= opts.intervalMs * opts.count) {
        this.destroy(new LibvirtConnectionError(`no keepalive answer from ${this.label} for ${silent} ms`));
        return;
      }
      if (silent >= opts.intervalMs) {
        this.ka.pingsSent++;
        this.sendKeepalive(KeepaliveProc.PING);
      }
      this.keepaliveTimer = setTimeout(check, silent >= opts.intervalMs ? tick : Math.max(10, opts.intervalMs - silent));
      this.keepaliveTimer.unref();
    };
    this.keepaliveTimer = setTimeout(check, opts.intervalMs);
    this.keepaliveTimer.unref();
  }

  stopKeepalive(): void {
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
  }

  /** Ends the connection; pending calls are rejected with LibvirtConnectionError. */
  async close(): Promise<void> {
    if (this.isOpen) {
      this.lastError ??= new Error('closed by client');
      this.socket.end();
      const t = setTimeout(() => this.socket.destroy(), 1000);
      t.unref();
    }
    await this.closed;
  }

  /** Drops the connection at once. */
  destroy(err?: Error): void {
    if (err) this.lastError ??= err;
    this.socket.destroy();
  }

  private corked = false;

  private nextSerial(): number {
    do {
      this.serial = (this.serial + 1) >>> 0;
    } while (this.serial === 0 || this.pending.has(this.serial));
    return this.serial;
  }

  /**
   * Calls issued in one tick leave in one write: the socket is corked at the first and uncorked
   * on the next tick, so Promise.all([...calls]) costs one syscall and one wake-up of libvirtd.
   */
  private write(h: MessageHeader, body?: Uint8Array): void {
    if (!this.socket.writable) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(encodeMessage(h, body));
  }

  private sendKeepalive(proc: number): void {
    this.write({
      prog: KEEPALIVE_PROGRAM,
      vers: KEEPALIVE_PROTOCOL_VERSION,
      proc,
      type: MessageType.MESSAGE,
      serial: 0,
      status: MessageStatus.OK,
    });
  }

  private onData(chunk: Buffer): void {
    this.lastReceived = Date.now();
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    for (const frame of frames) {
      if (!this.isOpen) return;
      try {
        this.onFrame(frame);
      } catch (err) {
        this.destroy(err instanceof LibvirtProtocolError ? err : new LibvirtProtocolError(String(err), { cause: err }));
        return;
      }
    }
  }

  private onFrame(frame: Buffer): void {
    const { header, body } = decodeMessage(frame);
    if (header.prog === KEEPALIVE_PROGRAM) {
      if (header.type !== MessageType.MESSAGE) return;
      if (header.proc === KeepaliveProc.PING) {
        this.ka.pingsAnswered++;
        this.sendKeepalive(KeepaliveProc.PONG);
      } else if (header.proc === KeepaliveProc.PONG) {
        this.ka.pongsReceived++;
      }
      return;
    }
    if (header.prog !== REMOTE_PROGRAM) return;
    switch (header.type) {
      case MessageType.REPLY:
      case MessageType.REPLY_WITH_FDS:
        this.onReply(header, body);
        return;
      case MessageType.MESSAGE:
        this.eventsSubject.next({ proc: header.proc, body });
        return;
      default:
        return; // streams are not used by this client
    }
  }

  private onReply(header: MessageHeader, body: Buffer): void {
    const p = this.pending.get(header.serial);
    if (!p) return; // the call timed out or was aborted; drop the late reply
    this.pending.delete(header.serial);
    const name = procName(p.proc);
    if (header.type === MessageType.REPLY_WITH_FDS) {
      p.reject(new LibvirtProtocolError(`${name}: reply carries file descriptors, which this client does not accept`));
    } else if (header.status === MessageStatus.OK) {
      p.resolve(body);
    } else if (header.status === MessageStatus.ERROR) {
      let fields;
      try {
        fields = readRemoteError(new XdrReader(body));
      } catch (err) {
        p.reject(new LibvirtProtocolError(`${name}: undecodable error reply`, { cause: err }));
        return;
      }
      p.reject(new LibvirtError(fields, name));
    } else {
      p.reject(new LibvirtProtocolError(`${name}: unexpected reply status ${header.status}`));
    }
  }

  private onClose(): void {
    if (this.closeError) return;
    this.stopKeepalive();
    const cause = this.lastError;
    const err = new LibvirtConnectionError(`connection to ${this.label} closed${cause ? `: ${cause.message}` : ''}`, { cause });
    this.closeError = err;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(new LibvirtConnectionError(`${procName(p.proc)}: ${err.message}`, { cause }));
    this.eventsSubject.complete();
    this.resolveClosed(err);
  }
}
