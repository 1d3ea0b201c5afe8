// Transport behaviour against a scripted server: serial matching, errors, keepalive, timeouts,
// connection loss and events.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { firstValueFrom } from 'rxjs';
import { LibvirtClient } from '../../drivers/libvirt/client.ts';
import { KEEPALIVE_PROGRAM, KeepaliveProc, MessageStatus, MessageType, Proc, REMOTE_PROGRAM } from '../../drivers/libvirt/constants.ts';
import {
  LibvirtAbortedError,
  LibvirtConnectionError,
  LibvirtError,
  LibvirtProtocolError,
  LibvirtTimeoutError,
} from '../../drivers/libvirt/errors.ts';
import { Transport } from '../../drivers/libvirt/transport.ts';
import { writeDomain } from '../../drivers/libvirt/types.ts';
import { XdrWriter } from '../../drivers/libvirt/xdr.ts';
import { startFakeServer, type FakeServer } from './fake-server.ts';

const int = (v: number): Buffer => new XdrWriter().int(v).finish();

describe('transport (scripted server)', { timeout: 30_000 }, () => {
  let server: FakeServer;
  before(async () => {
    server = await startFakeServer();
  });
  after(async () => {
    await server.close();
  });

  async function connect(): Promise<{ t: Transport; conn: Awaited<ReturnType<FakeServer['connections']['next']>> }> {
    const t = await Transport.connect({ path: server.path });
    const conn = await server.connections.next();
    return { t, conn };
  }

  it('matches replies to calls by serial when they come back out of order', async () => {
    const { t, conn } = await connect();
    const calls = [1, 2, 3, 4, 5].map((n) => t.call(Proc.DOMAIN_GET_STATE, int(n)));
    const received = [];
    for (let i = 0; i < 5; i++) received.push(await conn.frames.next());
    assert.equal(new Set(received.map((m) => m.header.serial)).size, 5, 'every call has its own serial');
    for (const m of received.reverse()) conn.reply(m, int(m.body.readInt32BE(0) * 100)); // answer = 100 × argument
    const answers = await Promise.all(calls);
    assert.deepEqual(answers.map((b) => b.readInt32BE(0)), [100, 200, 300, 400, 500]);
    assert.equal(t.peakPendingCalls, 5);
    await t.close();
  });

  it('turns an error reply into LibvirtError and keeps the connection', async () => {
    const { t, conn } = await connect();
    const call = t.call(Proc.DOMAIN_LOOKUP_BY_NAME);
    const m = await conn.frames.next();
    const err = new XdrWriter().int(42).int(12).optional('Domain not found', (w, s) => w.string(s)).int(2);
    err.optional(null, (w, d: { name: string; uuid: string }) => writeDomain(w, d));
    err.optional('vm9', (w, s) => w.string(s)).optional(null, (w, s: string) => w.string(s)).optional(null, (w, s: string) => w.string(s));
    err.int(0).int(0).optional(null, (w, s: string) => w.string(s));
    conn.reply(m, err.finish(), MessageStatus.ERROR);
    await assert.rejects(call, (e) => {
      assert.ok(e instanceof LibvirtError);
      assert.equal(e.code, 42);
      assert.equal(e.domain, 12);
      assert.equal(e.level, 2);
      assert.equal(e.message, 'Domain not found');
      assert.equal(e.str1, 'vm9');
      assert.equal(e.reason, 'NoDomain');
      assert.equal(e.procedure, 'DOMAIN_LOOKUP_BY_NAME');
      return true;
    });
    const again = t.call(Proc.CONNECT_GET_HOSTNAME);
    conn.reply(await conn.frames.next(), new XdrWriter().string('hv1').finish());
    assert.equal((await again).length, 8);
    await t.close();
  });

  it('answers a server PING with a PONG', async () => {
    const { t, conn } = await connect();
    conn.send({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: KeepaliveProc.PING, type: MessageType.MESSAGE, serial: 0, status: 0 });
    const pong = await conn.frames.next();
    assert.deepEqual(pong.header, { prog: KEEPALIVE_PROGRAM, vers: 1, proc: KeepaliveProc.PONG, type: MessageType.MESSAGE, serial: 0, status: 0 });
    await t.close();
  });

  it('sends PINGs when the server is silent and drops the connection when nothing answers', async () => {
    const { t, conn } = await connect();
    const pending = t.call(Proc.CONNECT_GET_HOSTNAME);
    await conn.frames.next(); // the call, never answered
    t.startKeepalive({ intervalMs: 40, count: 3 });
    const ping = await conn.frames.next();
    assert.equal(ping.header.prog, KEEPALIVE_PROGRAM);
    assert.equal(ping.header.proc, KeepaliveProc.PING);
    await assert.rejects(pending, (e) => e instanceof LibvirtConnectionError && /keepalive/.test(e.message));
    assert.equal(t.isOpen, false);
  });

  it('drops the connection on an oversized frame and rejects pending calls', async () => {
    const t = await Transport.connect({ path: server.path }, { maxFrameBytes: 4096 });
    const conn = await server.connections.next();
    const pending = t.call(Proc.CONNECT_GET_HOSTNAME);
    await conn.frames.next();
    conn.sendRaw(Buffer.from([0x00, 0x10, 0x00, 0x00])); // announces 1 MiB
    await assert.rejects(pending, (e) => e instanceof LibvirtConnectionError && e.cause instanceof LibvirtProtocolError);
    await assert.rejects(t.call(Proc.CONNECT_GET_HOSTNAME), LibvirtConnectionError);
    await conn.closed;
  });

  it('rejects every pending call when the server hangs up, and later calls at once', async () => {
    const { t, conn } = await connect();
    const calls = [1, 2, 3].map(() => t.call(Proc.CONNECT_GET_HOSTNAME));
    for (let i = 0; i < 3; i++) await conn.frames.next();
    conn.destroy();
    const results = await Promise.allSettled(calls);
    for (const r of results) assert.ok(r.status === 'rejected' && r.reason instanceof LibvirtConnectionError);
    await assert.rejects(t.call(Proc.CONNECT_GET_HOSTNAME), LibvirtConnectionError);
    assert.ok((await t.closed) instanceof LibvirtConnectionError);
  });

  it('times a call out without dropping the connection, and ignores its late reply', async () => {
    const { t, conn } = await connect();
    const slow = t.call(Proc.CONNECT_GET_HOSTNAME, undefined, { timeoutMs: 30 });
    const slowMsg = await conn.frames.next();
    await assert.rejects(slow, (e) => e instanceof LibvirtTimeoutError && e.procedure === 'CONNECT_GET_HOSTNAME');
    conn.reply(slowMsg, new XdrWriter().string('late').finish());
    const next = t.call(Proc.CONNECT_GET_HOSTNAME);
    conn.reply(await conn.frames.next(), new XdrWriter().string('on-time').finish());
    assert.equal((await next).subarray(4, 11).toString(), 'on-time');
    assert.equal(t.pendingCalls, 0);
    await t.close();
  });

  it('rejects a call whose AbortSignal fires', async () => {
    const { t, conn } = await connect();
    const ac = new AbortController();
    const call = t.call(Proc.DOMAIN_GET_JOB_STATS, undefined, { signal: ac.signal });
    await conn.frames.next();
    ac.abort();
    await assert.rejects(call, LibvirtAbortedError);
    await assert.rejects(t.call(Proc.DOMAIN_GET_JOB_STATS, undefined, { signal: ac.signal }), LibvirtAbortedError);
    await t.close();
  });

  it('hands lifecycle event messages to lifecycle$', async () => {
    const { t, conn } = await connect();
    const client = new LibvirtClient(t);
    const got = firstValueFrom(client.lifecycle$);
    const w = new XdrWriter().int(3);
    writeDomain(w, { name: 'vm1', uuid: '11111111-2222-3333-4444-555555555555', id: 4 });
    w.int(5).int(3);
    conn.send({ prog: REMOTE_PROGRAM, vers: 1, proc: Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.MESSAGE, serial: 0, status: 0 }, w.finish());
    assert.deepEqual(await got, {
      callbackId: 3,
      domain: { name: 'vm1', uuid: '11111111-2222-3333-4444-555555555555', id: 4 },
      event: 5,
      detail: 3,
      eventName: 'stopped',
      detailName: 'migrated',
    });
    await t.close();
  });

  it('fails to connect with LibvirtConnectionError when nothing listens', async () => {
    await assert.rejects(Transport.connect({ path: `${server.path}.missing` }), LibvirtConnectionError);
  });
});
