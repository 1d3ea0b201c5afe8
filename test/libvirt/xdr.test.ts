import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMessage, encodeMessage, FrameDecoder } from '../../drivers/libvirt/framing.ts';
import { LibvirtProtocolError } from '../../drivers/libvirt/errors.ts';
import { readDomain, readRemoteError, uuidToBytes, writeDomain } from '../../drivers/libvirt/types.ts';
import { readTypedParams, writeTypedParams, XdrError, XdrReader, XdrWriter, type TypedParam } from '../../drivers/libvirt/xdr.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('XDR encoding', () => {
  it('encodes primitives big-endian with 4-byte alignment', () => {
    const w = new XdrWriter(4);
    w.int(-2).uint(0xfffffffe).hyper(-3n).uhyper(2n ** 64n - 1n).bool(true).string('abcde').opaque(Uint8Array.of(9)).double(1.5);
    assert.equal(
      hex(w.finish()),
      'fffffffe' + 'fffffffe' + 'fffffffffffffffd' + 'ffffffffffffffff' + '00000001' + '00000005' + '6162636465000000' + '00000001' + '09000000' + '3ff8000000000000',
    );
  });

  it('round-trips primitives, optionals and arrays', () => {
    const w = new XdrWriter();
    w.int(-7).uint(7).hyper(-(2n ** 63n)).uhyper(5).bool(false).double(-0.25).string('héllo', 16).fixedOpaque(Uint8Array.of(1, 2, 3), 3);
    w.optional(null, (ww, v: string) => ww.string(v)).optional('x', (ww, v) => ww.string(v));
    w.array([1, 2, 3], 3, (ww, v) => ww.int(v));
    const r = new XdrReader(w.finish());
    assert.equal(r.int(), -7);
    assert.equal(r.uint(), 7);
    assert.equal(r.hyper(), -(2n ** 63n));
    assert.equal(r.uhyper(), 5n);
    assert.equal(r.bool(), false);
    assert.equal(r.double(), -0.25);
    assert.equal(r.string(16), 'héllo');
    assert.deepEqual([...r.fixedOpaque(3)], [1, 2, 3]);
    assert.equal(r.optional((rr) => rr.string(10)), null);
    assert.equal(r.optional((rr) => rr.string(10)), 'x');
    assert.deepEqual(r.array(3, (rr) => rr.int()), [1, 2, 3]);
    r.done();
  });

  it('refuses values out of range when encoding', () => {
    assert.throws(() => new XdrWriter().int(2 ** 31), XdrError);
    assert.throws(() => new XdrWriter().uint(-1), XdrError);
    assert.throws(() => new XdrWriter().uhyper(-1n), XdrError);
    assert.throws(() => new XdrWriter().string('toolong', 3), XdrError);
    assert.throws(() => new XdrWriter().array([1, 2], 1, (w, v) => w.int(v)), XdrError);
  });

  it('round-trips every typed parameter type', () => {
    const params: TypedParam[] = [
      { field: 'i', type: 'int', value: -5 },
      { field: 'u', type: 'uint', value: 4000000000 },
      { field: 'l', type: 'llong', value: -(2n ** 40n) },
      { field: 'ul', type: 'ullong', value: 2n ** 63n },
      { field: 'd', type: 'double', value: 3.25 },
      { field: 'b', type: 'boolean', value: true },
      { field: 's', type: 'string', value: 'tcp://198.51.100.2' },
    ];
    const w = new XdrWriter();
    writeTypedParams(w, params, 64, 1024);
    const r = new XdrReader(w.finish());
    assert.deepEqual(readTypedParams(r, 64, 1024), params);
    r.done();
  });

  it('rejects an unknown typed parameter type', () => {
    const w = new XdrWriter().uint(1).string('f').int(99).int(0);
    assert.throws(() => readTypedParams(new XdrReader(w.finish()), 64, 1024), (e) => e instanceof XdrError && e.code === 'invalid');
  });

  it('round-trips remote_nonnull_domain with its UUID', () => {
    const uuid = '6695eb01-f6a4-8304-79aa-97f2502e193f';
    assert.equal(Buffer.from(uuidToBytes(uuid)).toString('hex'), uuid.replace(/-/g, ''));
    const w = new XdrWriter();
    writeDomain(w, { name: 'vm1', uuid, id: 3 });
    const r = new XdrReader(w.finish());
    assert.deepEqual(readDomain(r), { name: 'vm1', uuid, id: 3 });
    r.done();
    assert.throws(() => uuidToBytes('not-a-uuid'), XdrError);
  });

  it('reads strings and UUIDs from a view that starts inside a larger buffer, at a reader offset', () => {
    const uuid = '00112233-4455-6677-8899-aabbccddeeff';
    const w = new XdrWriter();
    w.uint(7);
    writeDomain(w, { name: 'vm-é', uuid, id: 5 });
    w.string('tail');
    const body = w.finish();
    const big = new Uint8Array(body.length + 12);
    big.fill(0xee);
    big.set(body, 8);
    const view = big.subarray(8, 8 + body.length);
    const r = new XdrReader(view, 4);
    assert.deepEqual(readDomain(r), { name: 'vm-é', uuid, id: 5 });
    assert.equal(r.string(16), 'tail');
    r.done();
    // A UUID cut short is an error, not a read past the end.
    assert.throws(() => new XdrReader(view, 4, 4 + 4 + 8).fixedOpaqueHex(16), XdrError);
  });

  it('decodes remote_error with its optional members', () => {
    const w = new XdrWriter();
    w.int(42).int(10);
    w.optional('Domain not found', (ww, s) => ww.string(s));
    w.int(2);
    w.optional({ name: 'x', uuid: '00000000-0000-0000-0000-000000000001', id: -1 }, (ww, d) => writeDomain(ww, d));
    w.optional('s1', (ww, s) => ww.string(s)).optional(null, (ww, s: string) => ww.string(s)).optional('s3', (ww, s) => ww.string(s));
    w.int(7).int(8);
    w.optional(null, (ww, s: string) => ww.string(s));
    const r = new XdrReader(w.finish());
    assert.deepEqual(readRemoteError(r), {
      code: 42,
      domain: 10,
      message: 'Domain not found',
      level: 2,
      str1: 's1',
      str2: null,
      str3: 's3',
      int1: 7,
      int2: 8,
    });
    r.done();
  });

  it('throws typed errors on truncated, oversized and invalid input', () => {
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof XdrError, `expected XdrError, got ${String(e)}`);
        return e.code;
      }
      assert.fail('no error');
    };
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 0, 1)).int()), 'truncated');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 0, 0, 9, 1, 2)).string(100)), 'truncated');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 0, 0, 9)).string(8)), 'too-long');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff)).array(2 ** 32, (r) => r.int())), 'truncated');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 1, 0, 0)).array(100, (r) => r.int())), 'too-long');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 0, 0, 2)).bool()), 'invalid');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 0, 0, 2)).optional((r) => r.int())), 'invalid');
    assert.equal(code(() => new XdrReader(Uint8Array.of(0, 0, 0, 0, 1)).done()), 'invalid');
  });
});

describe('framing', () => {
  const header = { prog: 0x20008086, vers: 1, proc: 212, type: 1, serial: 77, status: 0 };

  it('encodes the length word (counting itself) and the header', () => {
    const m = encodeMessage(header, Uint8Array.of(1, 2, 3, 4));
    assert.equal(hex(m), '00000020' + '20008086' + '00000001' + '000000d4' + '00000001' + '0000004d' + '00000000' + '01020304');
    const d = decodeMessage(m);
    assert.deepEqual(d.header, header);
    assert.deepEqual([...d.body], [1, 2, 3, 4]);
  });

  it('reassembles frames split at every byte boundary and packed together', () => {
    const a = encodeMessage(header, Buffer.from('abcd'));
    const b = encodeMessage({ ...header, serial: 78 }, undefined);
    const stream = Buffer.concat([a, b]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const dec = new FrameDecoder(1024);
      const frames = [...dec.push(stream.subarray(0, cut)), ...dec.push(stream.subarray(cut))];
      assert.deepEqual(frames.map(hex), [hex(a), hex(b)], `cut at ${cut}`);
      assert.equal(dec.pendingBytes, 0);
    }
  });

  it('rejects a length word above the maximum before buffering it, and stays failed', () => {
    const dec = new FrameDecoder(1024);
    assert.throws(() => dec.push(Buffer.from([0x7f, 0xff, 0xff, 0xff])), LibvirtProtocolError);
    assert.equal(dec.pendingBytes, 0);
    assert.throws(() => dec.push(encodeMessage(header)), LibvirtProtocolError);
  });

  it('rejects a length word shorter than a header', () => {
    assert.throws(() => new FrameDecoder(1024).push(Buffer.from([0, 0, 0, 27])), LibvirtProtocolError);
  });
});
