// XDR (RFC 4506) encoding and a defensive decoder, as spoken by libvirt's RPC protocol.
//
// The decoder never trusts a length or count: each one is checked against a caller-given maximum
// and against the bytes that remain *before* anything is allocated, so truncated, oversized or
// garbage input always ends in a typed XdrError.

export type XdrErrorCode = 'truncated' | 'too-long' | 'invalid' | 'range';

export class XdrError extends Error {
  override readonly name = 'XdrError';
  readonly reason = 'XdrDecodeFailed';
  constructor(
    readonly code: XdrErrorCode,
    message: string,
    readonly offset?: number,
  ) {
    super(message);
  }
}

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

const pad4 = (n: number): number => (4 - (n & 3)) & 3;

/** Grows as it is written; `finish()` returns exactly the bytes written. */
export class XdrWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialSize));
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) throw new XdrError('range', `int out of range: ${v}`);
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) throw new XdrError('range', `unsigned int out of range: ${v}`);
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  hyper(v: bigint | number): this {
    const b = toBigInt(v);
    if (b < INT64_MIN || b > INT64_MAX) throw new XdrError('range', `hyper out of range: ${b}`);
    this.ensure(8);
    this.buf.writeBigInt64BE(b, this.pos);
    this.pos += 8;
    return this;
  }

  uhyper(v: bigint | number): this {
    const b = toBigInt(v);
    if (b < 0n || b > UINT64_MAX) throw new XdrError('range', `unsigned hyper out of range: ${b}`);
    this.ensure(8);
    this.buf.writeBigUInt64BE(b, this.pos);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  double(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** Fixed-length opaque: exactly `len` bytes, then padding. */
  fixedOpaque(bytes: Uint8Array, len: number): this {
    if (bytes.length !== len) throw new XdrError('range', `fixed opaque needs ${len} bytes, got ${bytes.length}`);
    this.raw(bytes);
    return this;
  }

  /** Variable-length opaque<max>. */
  opaque(bytes: Uint8Array, max = UINT32_MAX): this {
    if (bytes.length > max) throw new XdrError('too-long', `opaque of ${bytes.length} bytes exceeds max ${max}`);
    this.uint(bytes.length);
    this.raw(bytes);
    return this;
  }

  string(s: string, max = UINT32_MAX): this {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > max) throw new XdrError('too-long', `string of ${bytes.length} bytes exceeds max ${max}`);
    this.uint(bytes.length);
    this.raw(bytes);
    return this;
  }

  /** Optional pointer (`T *x`): a bool discriminant, then the value when present. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  /** Variable-length array `T x<max>`. */
  array<T>(items: readonly T[], max: number, write: (w: this, v: T) => void): this {
    if (items.length > max) throw new XdrError('too-long', `array of ${items.length} items exceeds max ${max}`);
    this.uint(items.length);
    for (const it of items) write(this, it);
    return this;
  }

  private raw(bytes: Uint8Array): void {
    const p = pad4(bytes.length);
    this.ensure(bytes.length + p);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    for (let i = 0; i < p; i++) this.buf[this.pos++] = 0;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function toBigInt(v: bigint | number): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new XdrError('range', `not a safe integer: ${v}`);
  return BigInt(v);
}

/** Reads from a byte range; every read is bounds-checked. */
export class XdrReader {
  private pos: number;
  private readonly end: number;
  private readonly dv: DataView;
  /** One Buffer view of buf: strings decode from it without a view (an allocation) each. */
  private readonly bytes: Buffer;

  constructor(
    private readonly buf: Uint8Array,
    offset = 0,
    end = buf.length,
  ) {
    if (offset < 0 || end > buf.length || offset > end) throw new XdrError('range', 'bad reader bounds');
    this.pos = offset;
    this.end = end;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new XdrError('truncated', `truncated ${what}: need ${n} bytes, ${this.end - this.pos} left`, this.pos);
    }
  }

  int(): number {
    this.need(4, 'int');
    const v = this.dv.getInt32(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4, 'unsigned int');
    const v = this.dv.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8, 'hyper');
    const v = this.dv.getBigInt64(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8, 'unsigned hyper');
    const v = this.dv.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    const at = this.pos;
    const v = this.int();
    if (v !== 0 && v !== 1) throw new XdrError('invalid', `bool must be 0 or 1, got ${v}`, at);
    return v === 1;
  }

  double(): number {
    this.need(8, 'double');
    const v = this.dv.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }

  fixedOpaque(len: number): Uint8Array {
    const total = len + pad4(len);
    this.need(total, 'fixed opaque');
    const out = new Uint8Array(len);
    out.set(this.buf.subarray(this.pos, this.pos + len));
    this.pos += total;
    return out;
  }

  /** A fixed opaque of `len` bytes as lower-case hex, without copying it first (UUIDs). */
  fixedOpaqueHex(len: number): string {
    const total = len + pad4(len);
    this.need(total, 'fixed opaque');
    const hex = this.bytes.toString('hex', this.pos, this.pos + len);
    this.pos += total;
    return hex;
  }

  opaque(max: number): Uint8Array {
    const at = this.pos;
    const len = this.uint();
    if (len > max) throw new XdrError('too-long', `opaque length ${len} exceeds max ${max}`, at);
    return this.fixedOpaque(len);
  }

  string(max: number): string {
    const at = this.pos;
    const len = this.uint();
    if (len > max) throw new XdrError('too-long', `string length ${len} exceeds max ${max}`, at);
    const total = len + pad4(len);
    this.need(total, 'string');
    const s = this.bytes.toString('utf8', this.pos, this.pos + len);
    this.pos += total;
    return s;
  }

  optional<T>(read: (r: this) => T): T | null {
    const at = this.pos;
    const present = this.uint();
    if (present === 0) return null;
    if (present !== 1) throw new XdrError('invalid', `optional discriminant must be 0 or 1, got ${present}`, at);
    return read(this);
  }

  /**
   * Variable-length array `T x<max>`. `minItemBytes` is the smallest encoding of one item; a count
   * that could not fit in the remaining bytes is rejected before any item is read.
   */
  array<T>(max: number, read: (r: this) => T, minItemBytes = 4): T[] {
    const at = this.pos;
    const count = this.uint();
    if (count > max) throw new XdrError('too-long', `array count ${count} exceeds max ${max}`, at);
    if (count * Math.max(1, minItemBytes) > this.remaining) {
      throw new XdrError('truncated', `array count ${count} cannot fit in ${this.remaining} bytes`, at);
    }
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(read(this));
    return out;
  }

  /** Throws unless every byte was consumed. */
  done(): void {
    if (this.pos !== this.end) throw new XdrError('invalid', `${this.end - this.pos} trailing bytes`, this.pos);
  }
}

// ---- libvirt typed parameters (remote_typed_param) ----

export const TypedParamType = {
  INT: 1,
  UINT: 2,
  LLONG: 3,
  ULLONG: 4,
  DOUBLE: 5,
  BOOLEAN: 6,
  STRING: 7,
} as const;

export type TypedParam =
  | { field: string; type: 'int'; value: number }
  | { field: string; type: 'uint'; value: number }
  | { field: string; type: 'llong'; value: bigint }
  | { field: string; type: 'ullong'; value: bigint }
  | { field: string; type: 'double'; value: number }
  | { field: string; type: 'boolean'; value: boolean }
  | { field: string; type: 'string'; value: string };

export type TypedParamValue = TypedParam['value'];

/** VIR_TYPED_PARAM_FIELD_LENGTH is 80 bytes including the NUL; remote strings are bounded separately. */
export const TYPED_PARAM_FIELD_MAX = 80;

export function writeTypedParam(w: XdrWriter, p: TypedParam, stringMax: number): void {
  w.string(p.field, stringMax);
  switch (p.type) {
    case 'int':
      w.int(TypedParamType.INT).int(p.value);
      break;
    case 'uint':
      w.int(TypedParamType.UINT).uint(p.value);
      break;
    case 'llong':
      w.int(TypedParamType.LLONG).hyper(p.value);
      break;
    case 'ullong':
      w.int(TypedParamType.ULLONG).uhyper(p.value);
      break;
    case 'double':
      w.int(TypedParamType.DOUBLE).double(p.value);
      break;
    case 'boolean':
      w.int(TypedParamType.BOOLEAN).int(p.value ? 1 : 0);
      break;
    case 'string':
      w.int(TypedParamType.STRING).string(p.value, stringMax);
      break;
  }
}

export function readTypedParam(r: XdrReader, stringMax: number): TypedParam {
  const field = r.string(stringMax);
  const at = r.offset;
  const type = r.int();
  switch (type) {
    case TypedParamType.INT:
      return { field, type: 'int', value: r.int() };
    case TypedParamType.UINT:
      return { field, type: 'uint', value: r.uint() };
    case TypedParamType.LLONG:
      return { field, type: 'llong', value: r.hyper() };
    case TypedParamType.ULLONG:
      return { field, type: 'ullong', value: r.uhyper() };
    case TypedParamType.DOUBLE:
      return { field, type: 'double', value: r.double() };
    case TypedParamType.BOOLEAN:
      // libvirt encodes the boolean arm as a plain int; any non-zero is true.
      return { field, type: 'boolean', value: r.int() !== 0 };
    case TypedParamType.STRING:
      return { field, type: 'string', value: r.string(stringMax) };
    default:
      throw new XdrError('invalid', `unknown typed parameter type ${type} for field ${JSON.stringify(field)}`, at);
  }
}

/** Smallest encoding of a typed param: empty field (4) + discriminant (4) + 4-byte value. */
export const TYPED_PARAM_MIN_BYTES = 12;

export function writeTypedParams(w: XdrWriter, params: readonly TypedParam[], max: number, stringMax: number): void {
  w.array(params, max, (ww, p) => writeTypedParam(ww, p, stringMax));
}

export function readTypedParams(r: XdrReader, max: number, stringMax: number): TypedParam[] {
  return r.array(max, (rr) => readTypedParam(rr, stringMax), TYPED_PARAM_MIN_BYTES);
}

/** Last value wins for repeated fields (libvirt never repeats them in replies). */
export function typedParamsToRecord(params: readonly TypedParam[]): Record<string, TypedParamValue> {
  const out: Record<string, TypedParamValue> = {};
  for (const p of params) out[p.field] = p.value;
  return out;
}
