/**
 * The lane's reading side of sealed frames (docs/PROTOCOL.md "Direct data lane"): cuts the socket's chunks into
 * frames and opens them as they arrive.
 *
 * A frame that lies whole in one socket chunk (every small frame: a decode step's activations, WINDOW, OPEN) is
 * decrypted in place in that chunk when the chunk is the reader's own (`owned`), else (a chunk borrowed from the
 * shared read buffer, ./reads.ts: valid only during `push`) into a new buffer of its plaintext's size. A frame spread over several chunks (bulk data: a 1 MiB request arrives in ~16
 * reads of 64 KiB) gets one plaintext buffer of its size once its 4 length bytes are in (checked against the cap
 * first: LANE_OVERSIZED); each chunk's ciphertext is decrypted into it as the chunk arrives (while it is still in
 * the cache) and the chunk is then let go, so a lane holds at most one frame's plaintext, never its ciphertext too.
 * Nothing of a plaintext is handed on before its tag verified (`Opener.finish`; a forged frame's plaintext is zeroed
 * and LANE_AUTH thrown). A DATA payload is a view into its frame's plaintext: a message sent in one frame reaches
 * its reader as one contiguous view (no join).
 */
import { LENGTH_BYTES, TAG_BYTES, type Opener } from './aead.js';
import { LaneError } from './errors.js';

export class SealedFrameReader {
  /** The length bytes read so far (they may arrive split over chunks). */
  private readonly len = Buffer.alloc(LENGTH_BYTES);
  private lenHave = 0;
  /** n (ciphertext + tag bytes) of the frame being read; -1 while reading its length. */
  private need = -1;
  /** Body bytes of that frame received so far. */
  private got = 0;
  private readonly tag = Buffer.alloc(TAG_BYTES);
  /** When the frame being read began (Date.now()), for the lane's frame deadline. */
  private begunAt = 0;

  constructor(
    private readonly opener: Opener,
    private readonly maxFrameBytes: number,
  ) {}

  /** True while a frame has begun (some of its length or body is in) and is not complete. */
  get midFrame(): boolean {
    return this.need >= 0 || this.lenHave > 0;
  }

  /**
   * The frame whose body is being read (its length known, its plaintext allocated): when it began and its size; undefined
   * between frames. The lane closes a frame that takes too long (lane.ts frameOverdue): its plaintext is held until
   * the frame completes.
   */
  get inProgress(): { since: number; bytes: number } | undefined {
    return this.need >= 0 ? { since: this.begunAt, bytes: this.need } : undefined;
  }

  /**
   * Takes one socket chunk; `deliver` gets each authenticated plaintext in order and returns false to stop (the
   * lane closed: the rest of the chunk is dropped). Throws LANE_OVERSIZED, LANE_MALFORMED, LANE_AUTH.
   * `owned` false: the chunk is borrowed (./reads.ts) and is written over once `push` returns, so nothing handed on
   * or kept is a view of it (a plaintext is always a buffer of its own then; length and tag bytes are copied).
   */
  push(chunk: Buffer, deliver: (plain: Buffer) => boolean, owned = true): void {
    let o = 0;
    while (o < chunk.length) {
      if (this.need < 0) {
        if (this.lenHave === 0 && chunk.length - o >= LENGTH_BYTES) {
          const n = this.check(chunk.readUInt32BE(o));
          if (chunk.length - o - LENGTH_BYTES >= n) {
            // the whole frame in this chunk: decrypted in place when the chunk is ours and read once, else into a
            // buffer of its own (a borrowed chunk is the shared read buffer, reused by the next read)
            const body = o + LENGTH_BYTES;
            const plain = this.opener.open([chunk.subarray(body, body + n - TAG_BYTES)], chunk.subarray(body + n - TAG_BYTES, body + n), owned);
            o = body + n;
            if (!deliver(plain)) return;
            continue;
          }
          o += LENGTH_BYTES;
          this.start(n);
        } else {
          const k = Math.min(LENGTH_BYTES - this.lenHave, chunk.length - o);
          chunk.copy(this.len, this.lenHave, o, o + k);
          this.lenHave += k;
          o += k;
          if (this.lenHave < LENGTH_BYTES) return;
          this.lenHave = 0;
          this.start(this.check(this.len.readUInt32BE(0)));
        }
        continue;
      }
      // the body of a frame in progress: ciphertext into its plaintext, then the tag
      const cipher = this.need - TAG_BYTES;
      const k = Math.min(this.need - this.got, chunk.length - o);
      const c = Math.max(0, Math.min(k, cipher - this.got));
      if (c > 0) this.opener.update(chunk.subarray(o, o + c));
      if (k > c) chunk.copy(this.tag, this.got + c - cipher, o + c, o + k);
      this.got += k;
      o += k;
      if (this.got < this.need) return;
      this.need = -1;
      const plain = this.opener.finish(this.tag);
      if (!deliver(plain)) return;
    }
  }

  private check(n: number): number {
    if (n > this.maxFrameBytes) throw new LaneError('LANE_OVERSIZED', `frame of ${n} bytes exceeds the cap of ${this.maxFrameBytes}`, { bytes: n, limit: this.maxFrameBytes });
    if (n < TAG_BYTES) throw new LaneError('LANE_MALFORMED', `frame of ${n} bytes cannot hold a tag`);
    return n;
  }

  private start(n: number): void {
    this.begunAt = Date.now();
    this.need = n;
    this.got = 0;
    this.opener.begin(n);
  }
}
