// Property tests: hostile bytes fed to the XDR decoder, the reply decoders, the framer and a live
// transport always end in a value or a typed error — never a hang, a crash or an allocation larger
// than the input.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { EMPTY } from 'rxjs';
import { LibvirtClient } from '../../drivers/libvirt/client.ts';
import { MessageType, Proc, REMOTE_PROGRAM } from '../../drivers/libvirt/constants.ts';
import { LibvirtConnectionError, LibvirtError, LibvirtProtocolError, LibvirtTimeoutError } from '../../drivers/libvirt/errors.ts';
import { decodeLifecycle } from '../../drivers/libvirt/events.ts';
import { encodeMessage, FrameDecoder } from '../../drivers/libvirt/framing.ts';
import { Transport, type RpcChannel } from '../../drivers/libvirt/transport.ts';
import { readRemoteError } from '../../drivers/libvirt/types.ts';
import { readTypedParams, XdrError, XdrReader } from '../../drivers/libvirt/xdr.ts';
import { startFakeServer, type FakeServer } from './fake-server.ts';

const RUNS = 300;
const dom = { name: 'vm', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', id: 1 };

/** Hostile payloads: random bytes, and random bytes behind a huge count/length word. */
const hostileBytes = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc
    .tuple(fc.integer({ min: 0x10000, max: 0xffffffff }), fc.uint8Array({ maxLength: 64 }))
    .map(([n, rest]) => {
      const b = Buffer.alloc(4 + rest.length);
      b.writeUInt32BE(n, 0);
      b.set(rest, 4);
      return new Uint8Array(b);
    }),
  fc
    .tuple(fc.uint8Array({ maxLength: 32 }), fc.integer({ min: 0x10000, max: 0xffffffff }), fc.uint8Array({ maxLength: 64 }))
    .map(([head, n, rest]) => {
      const aligned = head.subarray(0, head.length & ~3);
      const b = Buffer.alloc(aligned.length + 4 + rest.length);
      b.set(aligned, 0);
      b.writeUInt32BE(n, aligned.length);
      b.set(rest, aligned.length + 4);
      return new Uint8Array(b);
    }),
);

/** A channel whose every reply body is `body`. */
const channelReplying = (body: Uint8Array): RpcChannel => ({
  call: async () => Buffer.from(body),
  events$: EMPTY,
});

/** Every typed reply decoder of the client, run against one hostile body. */
function decodeAll(c: LibvirtClient): Promise<unknown>[] {
  return [
    c.connectGetHostname(),
    c.connectGetLibVersion(),
    c.connectSupportsFeature(10),
    c.nodeGetInfo(),
    c.connectListAllDomains(),
    c.domainLookupByName('vm'),
    c.domainDefineXmlFlags('<domain/>'),
    c.domainCreateWithFlags(dom),
    c.domainGetState(dom),
    c.domainGetInfo(dom),
    c.domainIsActive(dom),
    c.domainIsPersistent(dom),
    c.domainGetXmlDesc(dom),
    c.domainMemoryStats(dom),
    c.domainGetJobStats(dom),
    c.domainMigrateGetMaxSpeed(dom),
    c.domainMigratePerform3Params(dom, 'qemu+tcp://198.51.100.2/system', [], 3),
    c.connectDomainEventCallbackRegisterAny(0),
    c.domainCreate(dom),
  ];
}

describe('decoder fuzzing', { timeout: 120_000 }, () => {
  it('every reply decoder returns a value or throws XdrError', async () => {
    await fc.assert(
      fc.asyncProperty(hostileBytes, async (body) => {
        const results = await Promise.allSettled(decodeAll(new LibvirtClient(channelReplying(body))));
        for (const r of results) {
          if (r.status === 'rejected') assert.ok(r.reason instanceof XdrError, `unexpected ${String(r.reason)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('event, error and typed-parameter decoders return a value or throw XdrError', () => {
    fc.assert(
      fc.property(hostileBytes, (body) => {
        for (const decode of [
          () => decodeLifecycle(body),
          () => readRemoteError(new XdrReader(body)),
          () => readTypedParams(new XdrReader(body), 64, 4194304),
        ]) {
          try {
            decode();
          } catch (e) {
            assert.ok(e instanceof XdrError, `unexpected ${String(e)}`);
          }
        }
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('never returns more elements or bytes than the input holds', () => {
    fc.assert(
      fc.property(hostileBytes, (body) => {
        const tryRead = <T>(fn: (r: XdrReader) => T): T | undefined => {
          try {
            return fn(new XdrReader(body));
          } catch (e) {
            assert.ok(e instanceof XdrError);
            return undefined;
          }
        };
        const arr = tryRead((r) => r.array(0xffffffff, (rr) => rr.int()));
        if (arr) assert.ok(arr.length * 4 <= body.length);
        const op = tryRead((r) => r.opaque(0xffffffff));
        if (op) assert.ok(op.length <= body.length);
        const s = tryRead((r) => r.string(0xffffffff));
        if (s !== undefined) assert.ok(s.length <= body.length);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('a huge array count fails before any element is read', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0xffffffff }), fc.uint8Array({ maxLength: 256 }), (count, rest) => {
        const b = Buffer.alloc(4 + rest.length);
        b.writeUInt32BE(count, 0);
        b.set(rest, 4);
        let reads = 0;
        try {
          new XdrReader(b).array(0xffffffff, (r) => {
            reads++;
            return r.int();
          });
        } catch (e) {
          assert.ok(e instanceof XdrError);
        }
        if (count * 4 > rest.length) assert.equal(reads, 0);
      }),
      { numRuns: RUNS * 3 },
    );
  });
});

describe('framer fuzzing', { timeout: 120_000 }, () => {
  const MAX = 64 * 1024;
  const header = fc.record({
    prog: fc.constantFrom(REMOTE_PROGRAM, 0x6b656570, 0),
    vers: fc.nat({ max: 3 }),
    proc: fc.integer({ min: -5, max: 500 }),
    type: fc.integer({ min: -1, max: 6 }),
    serial: fc.nat(),
    status: fc.integer({ min: -1, max: 3 }),
  });
  const frame = fc.tuple(header, fc.uint8Array({ maxLength: 300 })).map(([h, body]) => encodeMessage(h, body));

  it('random chunks give frames or LibvirtProtocolError, and never buffer more than the maximum', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 4096 }), { maxLength: 20 }), (chunks) => {
        const dec = new FrameDecoder(MAX);
        let failed = false;
        for (const c of chunks) {
          try {
            for (const f of dec.push(Buffer.from(c))) assert.ok(f.length >= 28 && f.length <= MAX);
          } catch (e) {
            assert.ok(e instanceof LibvirtProtocolError);
            failed = true;
            break;
          }
          assert.ok(dec.pendingBytes <= MAX);
        }
        if (failed) assert.throws(() => dec.push(Buffer.alloc(0)), LibvirtProtocolError);
      }),
      { numRuns: RUNS },
    );
  });

  it('valid frames come out unchanged however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, cutsRaw) => {
        const stream = Buffer.concat(frames);
        const cuts = [...new Set(cutsRaw.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const dec = new FrameDecoder(MAX);
        const out: Buffer[] = [];
        let prev = 0;
        for (const c of [...cuts, stream.length]) {
          out.push(...dec.push(stream.subarray(prev, c)));
          prev = c;
        }
        assert.deepEqual(out.map((b) => b.toString('hex')), frames.map((b) => b.toString('hex')));
        assert.equal(dec.pendingBytes, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('a truncated valid frame is held back, not decoded and not an error', () => {
    fc.assert(
      fc.property(frame, fc.nat(), (f, n) => {
        const cut = n % f.length; // strictly shorter than the frame
        const dec = new FrameDecoder(MAX);
        assert.deepEqual(dec.push(f.subarray(0, cut)), []);
        assert.equal(dec.pendingBytes, cut);
        assert.equal(dec.push(f.subarray(cut)).length, 1);
      }),
      { numRuns: RUNS },
    );
  });

  it('an oversized or undersized length prefix fails at once without buffering', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: MAX + 1, max: 0xffffffff }), fc.integer({ min: 0, max: 27 })),
        fc.uint8Array({ maxLength: 64 }),
        (len, rest) => {
          const b = Buffer.alloc(4 + rest.length);
          b.writeUInt32BE(len, 0);
          b.set(rest, 4);
          const dec = new FrameDecoder(MAX);
          assert.throws(() => dec.push(b), LibvirtProtocolError);
          assert.equal(dec.pendingBytes, 0);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('transport fuzzing (scripted server sends hostile bytes)', { timeout: 120_000 }, () => {
  let server: FakeServer;
  before(async () => {
    server = await startFakeServer();
  });
  after(async () => {
    await server.close();
  });

  // What the server writes after receiving a call: garbage, a reply with a garbage body, or a frame
  // claiming to be huge. It then hangs up, so a call that got no usable answer must still settle.
  const hostileAnswer = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => ({ kind: 'raw' as const, b })),
    fc.tuple(hostileBytes, fc.constantFrom(0, 1, 2)).map(([b, status]) => ({ kind: 'reply' as const, b, status })),
    fc.integer({ min: 0x2000001, max: 0xffffffff }).map((len) => ({ kind: 'huge' as const, len })),
  );

  it('every pending call settles with a value or a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(hostileAnswer, async (answer) => {
        const t = await Transport.connect({ path: server.path });
        const conn = await server.connections.next();
        const client = new LibvirtClient(t, { defaultTimeoutMs: 10_000 });
        const call = client.domainGetJobStats(dom);
        const m = await conn.frames.next();
        if (answer.kind === 'raw') conn.sendRaw(answer.b);
        else if (answer.kind === 'reply') {
          conn.send({ ...m.header, type: MessageType.REPLY, status: answer.status }, answer.b);
        } else {
          const b = Buffer.alloc(8);
          b.writeUInt32BE(answer.len, 0);
          conn.sendRaw(b);
        }
        conn.end();
        const r = await Promise.allSettled([call]);
        const outcome = r[0]!;
        if (outcome.status === 'rejected') {
          const e = outcome.reason;
          assert.ok(
            e instanceof XdrError || e instanceof LibvirtError || e instanceof LibvirtProtocolError || e instanceof LibvirtConnectionError,
            `untyped failure: ${String(e)}`,
          );
          assert.ok(!(e instanceof LibvirtTimeoutError), 'the call hung until its timeout');
        }
        await t.close();
      }),
      { numRuns: 60 },
    );
  });

  it('a reply carrying the procedure proc number of an event does not confuse serial matching', async () => {
    const t = await Transport.connect({ path: server.path });
    const conn = await server.connections.next();
    const call = t.call(Proc.CONNECT_GET_HOSTNAME);
    const m = await conn.frames.next();
    conn.send({ ...m.header, serial: m.header.serial + 1, type: MessageType.REPLY, status: 0 }, Buffer.alloc(4)); // unknown serial
    conn.send({ ...m.header, type: MessageType.MESSAGE, proc: Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE, status: 0 }, Buffer.alloc(3)); // garbage event
    conn.reply(m, Buffer.from([0, 0, 0, 2, 104, 118, 0, 0]));
    assert.deepEqual([...(await call)], [0, 0, 0, 2, 104, 118, 0, 0]);
    await t.close();
  });
});
