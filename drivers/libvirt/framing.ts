// Message framing of libvirt's RPC: a 4-byte big-endian length (counting itself), a 24-byte header
// (prog vers proc type serial status), then the XDR payload.

import { DEFAULT_MAX_FRAME_BYTES, HEADER_BYTES, LEN_BYTES } from './constants.ts';
import { LibvirtProtocolError } from './errors.ts';

export interface MessageHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

export interface Message {
  header: MessageHeader;
  /** The XDR payload after the header (a view into the received frame). */
  body: Buffer;
}

const MIN_FRAME = LEN_BYTES + HEADER_BYTES;

export function encodeMessage(h: MessageHeader, body?: Uint8Array): Buffer {
  const len = MIN_FRAME + (body?.length ?? 0);
  const out = Buffer.allocUnsafe(len);
  out.writeUInt32BE(len, 0);
  out.writeUInt32BE(h.prog >>> 0, 4);
  out.writeUInt32BE(h.vers >>> 0, 8);
  out.writeInt32BE(h.proc | 0, 12);
  out.writeInt32BE(h.type | 0, 16);
  out.writeUInt32BE(h.serial >>> 0, 20);
  out.writeInt32BE(h.status | 0, 24);
  if (body && body.length > 0) out.set(body, MIN_FRAME);
  return out;
}

/** Decodes one complete frame (length word included). */
export function decodeMessage(frame: Buffer): Message {
  if (frame.length < MIN_FRAME) throw new LibvirtProtocolError(`frame of ${frame.length} bytes is shorter than a header`);
  const len = frame.readUInt32BE(0);
  if (len !== frame.length) throw new LibvirtProtocolError(`frame length word ${len} does not match ${frame.length} bytes`);
  return {
    header: {
      prog: frame.readUInt32BE(4),
      vers: frame.readUInt32BE(8),
      proc: frame.readInt32BE(12),
      type: frame.readInt32BE(16),
      serial: frame.readUInt32BE(20),
      status: frame.readInt32BE(24),
    },
    body: frame.subarray(MIN_FRAME),
  };
}

/**
 * Splits a byte stream into frames. A length word below the header size or above `maxFrameBytes`
 * throws LibvirtProtocolError at once (before buffering the announced bytes); after that the
 * decoder is poisoned and the connection must be dropped.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: LibvirtProtocolError | undefined;

  constructor(readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    if (maxFrameBytes < MIN_FRAME) throw new RangeError(`maxFrameBytes must be at least ${MIN_FRAME}`);
  }

  /** Bytes held while waiting for the rest of a frame (never more than maxFrameBytes). */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Buffer[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buffered < LEN_BYTES) break;
      const len = this.peekLength();
      if (len < MIN_FRAME || len > this.maxFrameBytes) {
        this.failed = new LibvirtProtocolError(
          len < MIN_FRAME
            ? `frame length ${len} is shorter than a header (${MIN_FRAME})`
            : `frame length ${len} exceeds the maximum of ${this.maxFrameBytes} bytes`,
        );
        this.chunks = [];
        this.buffered = 0;
        throw this.failed;
      }
      if (this.buffered < len) break;
      frames.push(this.take(len));
    }
    return frames;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= LEN_BYTES) return first.readUInt32BE(0);
    const head = Buffer.concat(this.chunks, LEN_BYTES);
    return head.readUInt32BE(0);
  }

  private take(len: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= len) {
      const frame = first.subarray(0, len);
      if (first.length === len) this.chunks.shift();
      else this.chunks[0] = first.subarray(len);
      this.buffered -= len;
      return frame;
    }
    const frame = Buffer.allocUnsafe(len);
    let filled = 0;
    while (filled < len) {
      const c = this.chunks[0]!;
      const n = Math.min(c.length, len - filled);
      c.copy(frame, filled, 0, n);
      filled += n;
      if (n === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(n);
    }
    this.buffered -= len;
    return frame;
  }
}
