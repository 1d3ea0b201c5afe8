// Helpers for test/zk: waiting on streams with a timeout (only to avoid hangs, never to assert timing).
import { createConnection } from 'node:net';
import { firstValueFrom, filter, timeout, type Observable } from 'rxjs';

/** First value of `obs` matching `pred`; rejects after `ms` (a hang guard, not a timing assertion). */
export function next<T>(obs: Observable<T>, pred: (v: T) => boolean = () => true, ms = 15000, what = 'value'): Promise<T> {
  return firstValueFrom(
    obs.pipe(
      filter(pred),
      timeout({ first: ms, with: () => { throw new Error(`timed out after ${ms} ms waiting for ${what}`); } }),
    ),
  );
}

/** Records every value of `obs` until `stop()`. */
export function record<T>(obs: Observable<T>): { values: T[]; stop(): void; errors: unknown[] } {
  const values: T[] = [];
  const errors: unknown[] = [];
  const sub = obs.subscribe({ next: (v) => values.push(v), error: (e) => errors.push(e) });
  return { values, errors, stop: () => sub.unsubscribe() };
}

/** Index of `seq` as a subsequence of `values` (in order, gaps allowed), or -1. */
export function containsInOrder<T>(values: T[], seq: T[]): boolean {
  let i = 0;
  for (const v of values) if (i < seq.length && v === seq[i]) i++;
  return i === seq.length;
}

/**
 * Close a ZooKeeper session from outside, as the server does when a session expires: one TCP write
 * carrying a connect request for the session and a closeSession request, so the session's own
 * client cannot win it back in between. Resolves when the server has closed the connection.
 */
export function closeSessionFromOutside(port: number, sessionId: Buffer, password: Buffer, ms = 5000): Promise<void> {
  const connect = Buffer.alloc(4 + 4 + 8 + 4 + 8 + 4 + password.length);
  let o = 0;
  connect.writeInt32BE(connect.length - 4, o); o += 4;
  connect.writeInt32BE(0, o); o += 4; // protocolVersion
  connect.writeBigInt64BE(0n, o); o += 8; // lastZxidSeen
  connect.writeInt32BE(4000, o); o += 4; // timeOut
  sessionId.copy(connect, o); o += 8;
  connect.writeInt32BE(password.length, o); o += 4;
  password.copy(connect, o);
  const close = Buffer.alloc(12);
  close.writeInt32BE(8, 0);
  close.writeInt32BE(1, 4); // xid
  close.writeInt32BE(-11, 8); // OpCode.closeSession
  return new Promise((res, rej) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      rej(new Error('closeSessionFromOutside: timeout'));
    }, ms);
    sock.on('connect', () => sock.write(Buffer.concat([connect, close])));
    sock.on('data', () => {});
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      res();
    });
  });
}
