/**
 * The canonical binary codec of ledger events: big-endian fixed-width integers, length-prefixed strings and byte
 * strings. There is exactly one encoding of each value (no varints, no optional padding), so equal events have
 * equal bytes and an event's id is well defined. The reader is strict: it checks every bound and refuses trailing
 * bytes.
 */
import { MAX_AMOUNT } from './amount.js';

/** Thrown by the reader on any malformed input; the ledger turns it into reason code MALFORMED. */
export class DecodeError extends Error {}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private n = 0;

  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`u8 out of range: ${v}`);
    this.room(1);
    this.buf[this.n++] = v;
    return this;
  }

  u16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`u16 out of range: ${v}`);
    this.room(2);
    this.view.setUint16(this.n, v);
    this.n += 2;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
    this.room(4);
    this.view.setUint32(this.n, v);
    this.n += 4;
    return this;
  }

  /** A u64 given as a safe integer (timestamps, counters). */
  u64(v: number | bigint): this {
    const b = BigInt(v);
    if (b < 0n || b > 0xffffffffffffffffn) throw new RangeError(`u64 out of range: ${b}`);
    this.room(8);
    this.view.setBigUint64(this.n, b);
    this.n += 8;
    return this;
  }

  /** An amount: 16 bytes big-endian, at most MAX_AMOUNT. */
  amount(v: bigint): this {
    if (v < 0n || v > MAX_AMOUNT) throw new RangeError(`amount out of range: ${v}`);
    this.room(16);
    this.view.setBigUint64(this.n, v >> 64n);
    this.view.setBigUint64(this.n + 8, v & 0xffffffffffffffffn);
    this.n += 16;
    return this;
  }

  /** Fixed-length bytes (the length is implied by the field). */
  fixed(b: Uint8Array, len: number): this {
    if (b.byteLength !== len) throw new RangeError(`expected ${len} bytes, got ${b.byteLength}`);
    this.room(len);
    this.buf.set(b, this.n);
    this.n += len;
    return this;
  }

  /** u16 length ‖ UTF-8. */
  str(s: string, max: number): this {
    const b = encoder.encode(s);
    if (b.byteLength > max) throw new RangeError(`string longer than ${max} bytes`);
    this.u16(b.byteLength);
    return this.fixed(b, b.byteLength);
  }

  /** u32 length ‖ bytes. */
  bytes(b: Uint8Array, max: number): this {
    if (b.byteLength > max) throw new RangeError(`byte string longer than ${max} bytes`);
    this.u32(b.byteLength);
    return this.fixed(b, b.byteLength);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.n);
  }
}

export class Reader {
  private view: DataView;
  private n = 0;

  /**
   * `owned`: the buffer is the decoder's private copy, which nothing writes into (events.ts decodeEvent's): then
   * fixed(), bytes() and copy() return views of it instead of copies (issue 11 §4: a proof's decode made a dozen
   * small copies). A value read so is valid as long as the buffer is, and shares it: who keeps one past the
   * decoded object's life keeps the whole buffer alive (copy it: slice()). Otherwise (network buffers, which a
   * caller may reuse) every byte string read is a copy.
   */
  constructor(
    private readonly buf: Uint8Array,
    private readonly owned = false,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.n;
  }

  get remaining(): number {
    return this.buf.byteLength - this.n;
  }

  private need(k: number): void {
    if (this.n + k > this.buf.byteLength) throw new DecodeError(`truncated: need ${k} bytes at offset ${this.n}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.n++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.n);
    this.n += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.n);
    this.n += 4;
    return v;
  }

  /** A u64 that must fit a safe integer (timestamps, counts). */
  u64n(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError('integer larger than 2^53 - 1');
    return Number(v);
  }

  u64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.n);
    this.n += 8;
    return v;
  }

  amount(): bigint {
    this.need(16);
    const v = (this.view.getBigUint64(this.n) << 64n) | this.view.getBigUint64(this.n + 8);
    this.n += 16;
    if (v > MAX_AMOUNT) throw new DecodeError('amount larger than the maximum');
    return v;
  }

  fixed(len: number): Uint8Array {
    this.need(len);
    const b = this.owned ? this.buf.subarray(this.n, this.n + len) : this.buf.slice(this.n, this.n + len);
    this.n += len;
    return b;
  }

  /** The bytes at [from, to) of what was read so far (to ≤ offset): a copy, or a view of an owned buffer. */
  copy(from: number, to: number): Uint8Array {
    if (from < 0 || from > to || to > this.n) throw new RangeError('copy outside what was read');
    return this.owned ? this.buf.subarray(from, to) : this.buf.slice(from, to);
  }

  str(max: number): string {
    const len = this.u16();
    if (len > max) throw new DecodeError(`string longer than ${max} bytes`);
    this.need(len);
    let s: string;
    try {
      // decoded from a view: the string is the copy
      s = decoder.decode(this.buf.subarray(this.n, this.n + len));
    } catch {
      throw new DecodeError('string is not valid UTF-8');
    }
    this.n += len;
    // Canonical form: re-encoding must give the same bytes (rejects a leading BOM being dropped, etc.). The fatal
    // decoder only returns well-formed strings, whose UTF-8 is unique, so the length says it without encoding again.
    if (Buffer.byteLength(s, 'utf8') !== len) throw new DecodeError('string is not in canonical UTF-8');
    return s;
  }

  bytes(max: number): Uint8Array {
    const len = this.u32();
    if (len > max) throw new DecodeError(`byte string longer than ${max} bytes`);
    return this.fixed(len);
  }

  end(): void {
    if (this.n !== this.buf.byteLength) throw new DecodeError(`${this.buf.byteLength - this.n} trailing bytes`);
  }
}
