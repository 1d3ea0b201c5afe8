// A scripted libvirtd stand-in on a temp unix socket, for transport tests that need the server to
// misbehave on purpose (reorder replies, send garbage, stay silent, hang up).

import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageStatus, MessageType } from '../../drivers/libvirt/constants.ts';
import { decodeMessage, encodeMessage, FrameDecoder, type Message, type MessageHeader } from '../../drivers/libvirt/framing.ts';

class Queue<T> {
  private items: T[] = [];
  private waiters: ((v: T) => void)[] = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(timeoutMs = 10_000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`fake server: nothing arrived within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (x: T): void => {
        clearTimeout(timer);
        resolve(x);
      };
      this.waiters.push(waiter);
    });
  }
}

export class FakeConn {
  readonly frames = new Queue<Message>();
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket) {
    const dec = new FrameDecoder();
    this.closed = new Promise((r) => socket.once('close', () => r()));
    socket.on('data', (chunk: Buffer) => {
      for (const f of dec.push(chunk)) this.frames.push(decodeMessage(f));
    });
    socket.on('error', () => undefined);
  }

  send(h: MessageHeader, body?: Uint8Array): void {
    this.socket.write(encodeMessage(h, body));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  reply(call: Message, body?: Uint8Array, status: number = MessageStatus.OK): void {
    this.send({ ...call.header, type: MessageType.REPLY, status }, body);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface FakeServer {
  path: string;
  connections: Queue<FakeConn>;
  close(): Promise<void>;
}

export async function startFakeServer(): Promise<FakeServer> {
  const dir = mkdtempSync(join(tmpdir(), 'vk-fake-libvirtd-'));
  const path = join(dir, 'sock');
  const connections = new Queue<FakeConn>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    connections.push(new FakeConn(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    path,
    connections,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
