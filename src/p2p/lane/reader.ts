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
 *
 * Placing (session 27): a message larger than a stream's window (a 16 MiB request: eight DATA of 2 MiB) used to
 * reach the RPC reader as eight frame plaintexts, which it then joined into one body: every byte decrypted, then
 * copied, and twice the message's size allocated per call. A reader given a `FramePlacer` (the lane) decrypts the
 * first PLACE_HEAD_BYTES of a large frame (the sub-frame header) into a small buffer of its own and asks the placer
 * where the rest goes: a DATA that fills the frame, for a stream whose reader has reserved the place for its next
 * bytes (./stream.ts `receiveInto`), is decrypted straight into that place. The header chooses a place and nothing
 * else before the tag verified (a forged frame fails LANE_AUTH, the place is zeroed and the lane closes, so its
 * reader never sees it); the placer gets the header and the place only after it verified (`placed`).
 */
import { LENGTH_BYTES, TAG_BYTES, type Opener } from './aead.js';
import { LaneError } from './errors.js';

/** The first bytes of a large frame's plaintext decrypted on their own to choose its place: a sub-frame header. */
export const PLACE_HEAD_BYTES = 9;
/** Frames with this much plaintext or more are offered to the placer (smaller ones are not worth the extra call). */
export const PLACE_MIN_BYTES = 64 * 1024;

/** Where the rest of a large frame's plaintext goes (./lane.ts). */
export interface FramePlacer {
  /**
   * `head`: the frame's first PLACE_HEAD_BYTES of plaintext, NOT yet authenticated (choose a place with it, nothing
   * else; valid only during the call). A buffer of exactly `rest` bytes for the rest of the plaintext, or undefined:
   * the frame is read into a plaintext of its own and delivered as usual.
   */
  place(head: Buffer, rest: number): Uint8Array | undefined;
  /** A placed frame, authenticated: its head (valid only during the call) and its place, now holding the rest. */
  placed(head: Buffer, rest: Uint8Array): boolean;
}

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
  /** The head of a frame offered to the placer (`placer` set): true while its head is being read. */
  private heading = false;
  private readonly head = Buffer.alloc(PLACE_HEAD_BYTES);
  /** Of the frame in progress: its place (the placer's), or its own plaintext when the placer had none. */
  private place: Uint8Array | undefined;
  private plain: Buffer | undefined;
  /** Counters (tests, the bench): plaintext bytes delivered as frames (`deliver`), and placed (`placer.placed`). */
  readonly stats = { plainBytes: 0, placedBytes: 0 };

  constructor(
    private readonly opener: Opener,
    private readonly maxFrameBytes: number,
    private readonly placer?: FramePlacer,
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
            this.stats.plainBytes += plain.length;
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
      // the body of a frame in progress: ciphertext into its plaintext (its head first, when it is offered to the
      // placer), then the tag
      const cipher = this.need - TAG_BYTES;
      const k = Math.min(this.need - this.got, chunk.length - o);
      let c = Math.max(0, Math.min(k, cipher - this.got));
      let p = o;
      if (this.heading && c > 0) {
        const h = Math.min(c, PLACE_HEAD_BYTES - this.got);
        this.opener.update(chunk.subarray(p, p + h));
        p += h;
        c -= h;
        if (this.got + h === PLACE_HEAD_BYTES) this.choosePlace(cipher - PLACE_HEAD_BYTES);
      }
      if (c > 0) this.opener.update(chunk.subarray(p, p + c));
      if (k > c + (p - o)) chunk.copy(this.tag, this.got + (p - o) + c - cipher, p + c, o + k);
      this.got += k;
      o += k;
      if (this.got < this.need) return;
      this.need = -1;
      if (!this.finish(deliver)) return;
    }
  }

  /** The head of a frame offered to the placer is in: the rest goes to the placer's place, or a plaintext of its own. */
  private choosePlace(rest: number): void {
    this.heading = false;
    const at = this.placer!.place(this.head, rest);
    if (at !== undefined && at.byteLength === rest) {
      this.place = at;
      this.opener.continueInto(at);
      return;
    }
    const plain = Buffer.allocUnsafe(PLACE_HEAD_BYTES + rest);
    this.head.copy(plain, 0);
    this.plain = plain;
    this.opener.continueInto(plain.subarray(PLACE_HEAD_BYTES));
  }

  /** The frame's tag is in: its plaintext to `deliver` (or its place to the placer) once it verified. */
  private finish(deliver: (plain: Buffer) => boolean): boolean {
    const place = this.place;
    const own = this.plain;
    this.place = undefined;
    this.plain = undefined;
    let first: Buffer;
    try {
      first = this.opener.finish(this.tag);
    } catch (e) {
      own?.fill(0, 0, PLACE_HEAD_BYTES); // the head's copy (the opener zeroed the rest and the head)
      throw e;
    }
    if (place !== undefined) {
      this.stats.placedBytes += place.byteLength;
      return this.placer!.placed(this.head, place);
    }
    const plain = own ?? first;
    this.stats.plainBytes += plain.length;
    return deliver(plain);
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
    // a large frame spread over reads: its head alone first, to choose where the rest goes
    this.heading = this.placer !== undefined && n - TAG_BYTES >= PLACE_MIN_BYTES;
    this.opener.begin(n, this.heading ? this.head : undefined);
  }
}
