// FrameSplitter: the ZooKeeper byte stream split into whole frames however the chunks fall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameSplitter } from '../../drivers/zk/client-internals.ts';

function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeInt32BE(payload.length);
  return Buffer.concat([head, payload]);
}

test('frames come out whole and in order for any chunking of the stream', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 40 }),
      (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => frame(Buffer.from(p))));
        const splitter = new FrameSplitter();
        const out: Buffer[] = [];
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const n = cuts[i % cuts.length]!;
          out.push(...splitter.push(stream.subarray(at, at + n)));
          at += n;
        }
        assert.deepEqual(
          out.map((b) => b.subarray(4)),
          payloads.map((p) => Buffer.from(p)),
        );
      },
    ),
  );
});

test('a partial frame waits for its rest; reset drops it', () => {
  const splitter = new FrameSplitter();
  const whole = frame(Buffer.from('hello'));
  assert.deepEqual(splitter.push(whole.subarray(0, 6)), []);
  splitter.reset();
  const next = frame(Buffer.from('x'));
  assert.deepEqual(splitter.push(next), [next]);
});

test('many frames in one chunk are sliced, not copied', () => {
  const frames = Array.from({ length: 500 }, (_, i) => frame(Buffer.from(`reply ${i}`)));
  const chunk = Buffer.concat(frames);
  const out = new FrameSplitter().push(chunk);
  assert.equal(out.length, 500);
  assert.ok(out.every((b) => b.buffer === chunk.buffer), 'every frame is a view of the chunk');
});

test('a negative length is refused', () => {
  const bad = Buffer.alloc(8);
  bad.writeInt32BE(-5);
  assert.throws(() => new FrameSplitter().push(bad), /negative length -5/);
});
