// Everything that touches node-zookeeper-client 1.1.3 beyond its public API lives here, so an
// upgrade has one file to re-check. What we need and the library does not offer:
//  - a read timeout: the library never notices a server that keeps the TCP connection open but
//    stops answering (a partition, a frozen JVM); we watch socket activity and drop the socket.
//  - abandoning a client without talking to the server (after a client-side session expiry), with
//    every queued callback failed instead of left hanging.
//  - the zxid of the last reply (ZkStore.lastZxid) and seeding it into a new client, so a new
//    session never connects to a server that is behind what we already saw.
//  - a fix for Transaction's `version = version || -1`, which turns version 0 into a blind write.
//  - reconnecting with a known session id/password (to close an old session: see connection-state).
//  - no stack trace on the library's error replies (withoutStackTraces, below).
import zookeeper from 'node-zookeeper-client';
import type { Client, Transaction } from 'node-zookeeper-client';
import type { Socket } from 'node:net';
import { ZK_CODE } from './errors.ts';
import { longToBigInt } from './stat.ts';

export type RawClient = Client;

/** ConnectionManager.STATES of the library. */
const CM_STATE = { DISCONNECTED: 0, CONNECTING: 1, CONNECTED: 2, CLOSING: -1, CLOSED: -2, SESSION_EXPIRED: -3 } as const;

interface Packet {
  callback?: (err: unknown, response?: unknown) => void;
}
interface ConnectionManager {
  socket?: Socket;
  state: number;
  zxid: Buffer;
  connectTimeoutHandler: NodeJS.Timeout | null;
  pendingQueue: Packet[];
  packetQueue: { shift(): Packet | undefined };
  connect(): void;
  queue(request: unknown, callback?: (err: unknown) => void): void;
  setState(state: number): void;
  onSocketConnected(): void;
  onSocketData(buffer: Buffer): void;
  cleanupPendingQueue(code: number): void;
  on(event: 'state', listener: (state: number) => void): void;
  removeListener(event: 'state', listener: (state: number) => void): void;
}

function cm(client: RawClient): ConnectionManager {
  return (client as unknown as { connectionManager: ConnectionManager }).connectionManager;
}

export interface RawClientOptions {
  sessionTimeout: number;
  spinDelay: number;
  sessionId?: Buffer;
  sessionPassword?: Buffer;
}

/**
 * The library makes an Exception, with Error.captureStackTrace, for every reply that carries an
 * error code: each NO_NODE answer to exists() or getData() of an absent znode, which a daemon
 * following its VMs (their usually absent migration and RBD records, a new VM's status) gets
 * hundreds of times while a cluster converges. That stack only ever shows the library's socket
 * handler, and collecting it was about 2 % of a converging daemon's CPU (a profile of
 * bench/converge): its Exceptions are made without one. Every module of the library calls the one
 * `Exception.create` it exports.
 */
const patched = Symbol('virtkeeper: Exception.create without stack traces');
function withoutStackTraces(): void {
  const lib = zookeeper.Exception as unknown as { create(code: number): Error; [patched]?: true };
  if (lib[patched]) return;
  const create = lib.create;
  lib.create = function (this: unknown, code: number): Error {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return create.call(this, code);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
  lib[patched] = true;
}
withoutStackTraces();

export function createRawClient(connectString: string, opts: RawClientOptions): RawClient {
  // `sessionId`/`sessionPassword` are supported by the library but missing from its typings.
  return zookeeper.createClient(connectString, { retries: 0, ...opts } as Parameters<typeof zookeeper.createClient>[1]);
}

export interface SocketHooks {
  /** A TCP connection to a server is established (the connect request is then sent). */
  onSocketConnected(): void;
  /** Bytes arrived from the server. */
  onData(): void;
}

/**
 * Observe socket activity and fix two costs of the library's I/O; must be called before connect().
 *  - Reads: the library re-concatenates the unread rest of a chunk after every packet it decodes
 *    (`Buffer.concat([pending, empty])`), so a 64 KiB chunk holding hundreds of replies is copied
 *    hundreds of times. We split chunks into whole frames ourselves and hand it one frame at a
 *    time, so its own pending buffer stays empty; a frame is copied only when it spans chunks.
 *    This also drops a partial frame left by a dead socket, which the library would prepend to
 *    the next connection's bytes.
 *  - Writes: each request is its own socket write; requests queued in one tick now leave corked
 *    together in one write.
 */
export function instrument(client: RawClient, hooks: SocketHooks): void {
  const m = cm(client);
  const origConnected = m.onSocketConnected;
  const origData = m.onSocketData;
  const origQueue = m.queue;
  const frames = new FrameSplitter();
  let corked: Socket | undefined;
  // The library binds these per socket (`self.onSocketData.bind(self)`) when it creates the socket,
  // so instance properties take precedence over the prototype.
  m.onSocketConnected = function (this: ConnectionManager) {
    frames.reset();
    hooks.onSocketConnected();
    origConnected.call(this);
  };
  m.onSocketData = function (this: ConnectionManager, buffer: Buffer) {
    if (buffer.length === 0) return;
    hooks.onData();
    let whole: Buffer[];
    try {
      whole = frames.push(buffer);
    } catch {
      // A corrupt stream: drop the connection, as the library does on protocol errors.
      frames.reset();
      this.socket?.destroy();
      return;
    }
    for (const frame of whole) origData.call(this, frame);
  };
  m.queue = function (this: ConnectionManager, request: unknown, callback?: (err: unknown) => void) {
    const socket = this.socket;
    if (socket && !corked && !socket.destroyed) {
      corked = socket;
      socket.cork();
      process.nextTick(() => {
        corked = undefined;
        socket.uncork();
      });
    }
    origQueue.call(this, request, callback);
  };
}

/** Splits a byte stream into ZooKeeper frames (a 4-byte big-endian length, then that many bytes). */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private total = 0;

  reset(): void {
    this.chunks = [];
    this.total = 0;
  }

  /** The whole frames completed by `chunk`, in order, each with its length prefix. */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.total += chunk.length;
    const out: Buffer[] = [];
    while (this.total >= 4) {
      let head = this.chunks[0]!;
      if (head.length < 4) head = this.flatten();
      const length = head.readInt32BE(0);
      if (length < 0) throw new RangeError(`ZooKeeper frame with negative length ${length}`);
      const frameBytes = 4 + length;
      if (this.total < frameBytes) break;
      if (head.length < frameBytes) head = this.flatten();
      out.push(head.subarray(0, frameBytes));
      this.total -= frameBytes;
      if (head.length === frameBytes) this.chunks.shift();
      else this.chunks[0] = head.subarray(frameBytes);
    }
    return out;
  }

  private flatten(): Buffer {
    const whole = Buffer.concat(this.chunks, this.total);
    this.chunks = [whole];
    return whole;
  }
}

/** The socket of the current connection attempt, if it is connected at TCP level. */
export function connectedSocket(client: RawClient): Socket | null {
  const s = cm(client).socket;
  return s && !s.destroyed && !s.connecting ? s : null;
}

/** Drop the current connection (the library then reconnects, with the same session). */
export function dropConnection(client: RawClient): void {
  cm(client).socket?.destroy();
}

/** Last zxid the client saw in a reply header (0n before the first reply). */
export function replyZxid(client: RawClient): bigint {
  const z = longToBigInt(cm(client).zxid);
  return z > 0n ? z : 0n;
}

/** Make a new client announce `zxid` as last seen when it connects (servers behind it refuse). */
export function seedZxid(client: RawClient, zxid: bigint): void {
  if (zxid <= 0n) return;
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(zxid);
  cm(client).zxid = b;
}

function connectionLoss(): unknown {
  return (zookeeper.Exception as unknown as { create(code: number): unknown }).create(ZK_CODE.CONNECTION_LOSS);
}

/**
 * Stop a client for good without a word to the server: no more reconnects, the socket is
 * destroyed, every queued or in-flight callback fails with CONNECTION_LOSS, and any later request
 * fails at once. Its session (if any) stays on the server until it expires or is closed.
 */
export function abandon(client: RawClient): void {
  const m = cm(client);
  m.connect = () => {};
  // A reconnect already scheduled by the library may still open a socket: drop it at once.
  m.onSocketConnected = function (this: ConnectionManager) {
    this.socket?.destroy();
  };
  m.queue = (_request, callback) => callback?.(connectionLoss());
  if (m.connectTimeoutHandler) clearTimeout(m.connectTimeoutHandler);
  m.setState(CM_STATE.CLOSED);
  m.socket?.destroy();
  m.cleanupPendingQueue(ZK_CODE.CONNECTION_LOSS);
  for (let p = m.packetQueue.shift(); p !== undefined; p = m.packetQueue.shift()) p.callback?.(connectionLoss());
}

/** Resolves once the client's connection manager reaches CLOSED (after close()), false on timeout. */
export function waitClosed(client: RawClient, timeoutMs: number): Promise<boolean> {
  const m = cm(client);
  if (m.state === CM_STATE.CLOSED) return Promise.resolve(true);
  return new Promise((res) => {
    const listener = (s: number): void => {
      if (s !== CM_STATE.CLOSED) return;
      clearTimeout(timer);
      m.removeListener('state', listener);
      res(true);
    };
    const timer = setTimeout(() => {
      m.removeListener('state', listener);
      res(false);
    }, timeoutMs);
    m.on('state', listener);
  });
}

/** Transaction.check/setData/remove do `version = version || -1`: restore the real version. */
export function fixLastOpVersion(tx: Transaction, version: number): void {
  const ops = (tx as unknown as { ops: Array<{ version?: number }> }).ops;
  const last = ops[ops.length - 1];
  if (last) last.version = version;
}
