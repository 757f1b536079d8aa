/**
 * The lane's byte formats (docs/PROTOCOL.md "Direct data lane"): sealed frames on the socket (./aead.ts) and, in
 * each frame's plaintext, one or more sub-frames:
 *
 *   sub-frame = type (u8) · stream (u32 BE) · n (u32 BE) · payload (n bytes)
 *   type      = 0 OPEN      payload: the protocol id (UTF-8, ≤ MAX_PROTOCOL_BYTES); opens `stream`
 *             | 1 OPEN_OK   the opener may use the stream (no payload)
 *             | 2 OPEN_FAIL the stream was refused: payload a reason (≤ MAX_REASON_BYTES)
 *             | 3 DATA      bytes of the stream (never more than the window the reader granted)
 *             | 4 CLOSE     the sender will send no more on the stream (half-close)
 *             | 5 RESET     both directions of the stream are dead: payload a reason (≤ MAX_REASON_BYTES)
 *             | 6 WINDOW    payload: u32 more bytes the sender of WINDOW will accept on the stream
 *             | 7 HELLO     stream 0, the first sub-frame each way: payload HELLO_MAGIC
 *
 * Stream ids: odd for streams the dialling end opens, even (≥ 2) for the listener's, so both may open at once.
 */
import { LENGTH_BYTES, TAG_BYTES } from './aead.js';
import { LaneError } from './errors.js';

export const SUB_OPEN = 0;
export const SUB_OPEN_OK = 1;
export const SUB_OPEN_FAIL = 2;
export const SUB_DATA = 3;
export const SUB_CLOSE = 4;
export const SUB_RESET = 5;
export const SUB_WINDOW = 6;
export const SUB_HELLO = 7;
const SUB_LAST = SUB_HELLO;
export const SUB_HEADER_BYTES = 9;
export const MAX_PROTOCOL_BYTES = 256;
export const MAX_REASON_BYTES = 256;
export const HELLO_MAGIC = Buffer.from('neuroshard-lane-1');

/** One sub-frame's header. */
export function subHeader(type: number, stream: number, n: number): Buffer {
  const h = Buffer.allocUnsafe(SUB_HEADER_BYTES);
  h[0] = type;
  h.writeUInt32BE(stream, 1);
  h.writeUInt32BE(n, 5);
  return h;
}

/** One whole sub-frame (small payloads). */
export function subFrame(type: number, stream: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(SUB_HEADER_BYTES + payload.byteLength);
  b[0] = type;
  b.writeUInt32BE(stream, 1);
  b.writeUInt32BE(payload.byteLength, 5);
  b.set(payload, SUB_HEADER_BYTES);
  return b;
}

/**
 * Calls `visit` for each sub-frame of an authenticated plaintext, in order. Throws LANE_MALFORMED on a truncated
 * sub-frame or an unknown type. Payloads are views into `plain`.
 */
export function forEachSubFrame(plain: Buffer, visit: (type: number, stream: number, payload: Buffer) => void): void {
  let o = 0;
  while (o < plain.length) {
    if (plain.length - o < SUB_HEADER_BYTES) throw new LaneError('LANE_MALFORMED', `sub-frame header cut at ${plain.length - o} bytes`);
    const type = plain[o]!;
    const stream = plain.readUInt32BE(o + 1);
    const n = plain.readUInt32BE(o + 5);
    if (type > SUB_LAST) throw new LaneError('LANE_MALFORMED', `unknown sub-frame type ${type}`);
    if (n > plain.length - o - SUB_HEADER_BYTES) throw new LaneError('LANE_MALFORMED', `sub-frame of ${n} bytes overruns its frame`);
    const payload = plain.subarray(o + SUB_HEADER_BYTES, o + SUB_HEADER_BYTES + n);
    o += SUB_HEADER_BYTES + n;
    visit(type, stream, payload);
  }
}

export interface SealedFrame {
  /** The ciphertext, as the socket delivered it (views, in order). */
  pieces: Buffer[];
  tag: Buffer;
}

/**
 * Cuts sealed frames out of the socket's chunks. The length is checked against `maxFrameBytes` as soon as its 4
 * bytes are in, before any of the body is kept: at most one frame (plus what one socket read brought of the next)
 * is ever buffered.
 */
export class FrameAccumulator {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  /** Body bytes (ciphertext + tag) of the frame being read; -1 while reading its length. */
  private need = -1;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes buffered and not yet handed out. */
  get buffered(): number {
    return this.bytes;
  }

  /** True while a frame has begun (its length or part of its body is in) and is not complete. */
  get midFrame(): boolean {
    return this.need >= 0 || this.bytes > 0;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** The next complete frame, or undefined until more bytes arrive. Throws LANE_OVERSIZED / LANE_MALFORMED. */
  next(): SealedFrame | undefined {
    if (this.need < 0) {
      if (this.bytes < LENGTH_BYTES) return undefined;
      const len = Buffer.concat(this.take(LENGTH_BYTES), LENGTH_BYTES);
      const n = len.readUInt32BE(0);
      if (n > this.maxFrameBytes) throw new LaneError('LANE_OVERSIZED', `frame of ${n} bytes exceeds the cap of ${this.maxFrameBytes}`, { bytes: n, limit: this.maxFrameBytes });
      if (n < TAG_BYTES) throw new LaneError('LANE_MALFORMED', `frame of ${n} bytes cannot hold a tag`);
      this.need = n;
    }
    if (this.bytes < this.need) return undefined;
    const pieces = this.take(this.need - TAG_BYTES);
    const tagParts = this.take(TAG_BYTES);
    this.need = -1;
    return { pieces, tag: tagParts.length === 1 ? tagParts[0]! : Buffer.concat(tagParts, TAG_BYTES) };
  }

  /** Removes `k` bytes from the front (k ≤ buffered), as views of the chunks. */
  private take(k: number): Buffer[] {
    const out: Buffer[] = [];
    this.bytes -= k;
    while (k > 0) {
      const c = this.chunks[0]!;
      if (c.length <= k) {
        out.push(c);
        this.chunks.shift();
        k -= c.length;
      } else {
        out.push(c.subarray(0, k));
        this.chunks[0] = c.subarray(k);
        k = 0;
      }
    }
    return out;
  }
}
