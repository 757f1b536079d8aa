/**
 * Length-prefixed frames on a byte stream:
 *
 *   frame = uvarint(n) · kind (1 byte) · body (n - 1 bytes)
 *   kind  = 0x00 MESSAGE (a protobuf message of the call's type) | 0x01 ERROR (an RpcError message)
 *
 * The reader checks the length against the caller's limit as soon as the prefix arrives, before buffering the
 * body, so an oversized frame costs at most one read. A varint longer than 5 bytes, a zero length, an unknown
 * kind and a stream that ends inside a frame are all protocol violations.
 */
import { Uint8ArrayList } from 'uint8arraylist';
import type { AbortOptions } from '../../util/abort.js';
import type { ByteChunk, DuplexStream } from '../../p2p/types.js';
import { STABLE_CHUNKS, canReceiveInto, canSendParts, type ReceivesInto } from '../../p2p/lane/stream.js';
import { RpcViolationError } from './errors.js';
import { joinParts, partsLength } from './parts.js';

export const FRAME_MESSAGE = 0x00;
export const FRAME_ERROR = 0x01;
/** Only on a reusable unary stream (./mux.ts), client to server: forget the call with this id. */
export const FRAME_CANCEL = 0x02;
/**
 * Only on a reusable unary stream: a piece of a message for the frame's id; more pieces follow, and the last one is
 * the MESSAGE or ERROR frame itself (so that one large message does not hold up the other calls on the stream).
 */
export const FRAME_PART = 0x03;
/** The kinds a one-call stream carries. */
const CALL_KINDS: readonly number[] = [FRAME_MESSAGE, FRAME_ERROR];
/** Largest frame length the varint may announce at all (per-type limits are far lower). */
export const MAX_FRAME_LENGTH = 2 ** 31 - 1;
const MAX_VARINT_BYTES = 5;

export interface Frame {
  kind: typeof FRAME_MESSAGE | typeof FRAME_ERROR | typeof FRAME_CANCEL | typeof FRAME_PART;
  body: Uint8Array;
}

export function encodeUvarint(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > MAX_FRAME_LENGTH) throw new RangeError(`varint out of range: ${n}`);
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** The frame header (length prefix + kind byte) for a body of `bodyLength` bytes. */
export function frameHeader(kind: number, bodyLength: number): Uint8Array {
  const len = encodeUvarint(bodyLength + 1);
  const h = new Uint8Array(len.length + 1);
  h.set(len);
  h[len.length] = kind;
  return h;
}

/** Bytes of the uvarint of n (n ≤ MAX_FRAME_LENGTH). */
function uvarintLength(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** One contiguous frame (tests and small messages): one allocation, the length written in place. */
export function encodeFrame(kind: number, body: Uint8Array): Uint8Array {
  let n = body.byteLength + 1;
  if (n > MAX_FRAME_LENGTH) throw new RangeError(`varint out of range: ${n}`);
  const len = uvarintLength(n);
  const out = new Uint8Array(len + n);
  let i = 0;
  while (n >= 0x80) {
    out[i++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i] = n;
  out[len] = kind;
  out.set(body, len + 1);
  return out;
}

/**
 * The body length of a whole frame as `encodeFrame` (or MessageCodec.encodeFramed) writes it: its length prefix less
 * the kind byte. The frame is our own encoding (not checked as a peer's would be).
 */
export function framedBodyBytes(frame: Uint8Array): number {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < MAX_VARINT_BYTES && i < frame.byteLength; i++) {
    const b = frame[i]!;
    n += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return n - 1;
    mul *= 128;
  }
  throw new RangeError('not a frame: no length prefix');
}

/** Small bodies are joined with their header into one write; large ones go as two writes (no copy). */
const JOIN_BELOW = 64 * 1024;

/** Writes one frame, respecting backpressure. */
export async function writeFrame(stream: DuplexStream, kind: number, body: Uint8Array, opts: AbortOptions = {}): Promise<void> {
  await writeFrameWaiting(stream, kind, body, () => opts);
}

/**
 * writeFrame whose wait options (a deadline) are made only when the stream cannot take the frame at once: a frame
 * that fits the stream's buffer (every decode step's answer) costs no AbortController, linked signal or timer.
 */
export async function writeFrameWaiting(stream: DuplexStream, kind: number, body: Uint8Array, wait: () => AbortOptions): Promise<void> {
  if (body.byteLength < JOIN_BELOW) {
    if (!stream.send(encodeFrame(kind, body))) await stream.onDrain(wait());
    return;
  }
  if (!stream.send(frameHeader(kind, body.byteLength))) await stream.onDrain(wait());
  if (!stream.send(body)) await stream.onDrain(wait());
}

/**
 * Writes one frame whose body is `parts` joined (./parts.ts). A lane stream takes header and parts as one DATA
 * sub-frame without a copy (its sealer reads them: the caller must leave them unchanged until the call settles);
 * any other stream gets the body joined first, as `writeFrame` sends it.
 */
export async function writeFrameParts(stream: DuplexStream, kind: number, parts: readonly Uint8Array[], opts: AbortOptions = {}): Promise<void> {
  if (!canSendParts(stream)) {
    await writeFrame(stream, kind, joinParts(parts), opts);
    return;
  }
  if (!stream.sendParts([frameHeader(kind, partsLength(parts)), ...parts])) await stream.onDrain(opts);
}

/**
 * `writeFrameParts` and the stream's half-close, resolving once the stream took both (on a lane: once its socket is
 * no longer congested, as `writeFrameParts` waits). On a lane stream the CLOSE is queued in the same turn as the
 * frame, so both go in one sealed frame: the far end learns at once that no more comes and grants no WINDOW for a
 * request it read whole (session 24: one sealed frame a 1 MiB call fewer each way). Elsewhere: write, then close.
 */
export async function writeFramePartsAndClose(stream: DuplexStream, kind: number, parts: readonly Uint8Array[], opts: AbortOptions = {}): Promise<void> {
  if (!canSendParts(stream)) {
    await writeFrameParts(stream, kind, parts, opts);
    await stream.close(opts);
    return;
  }
  const ok = stream.sendParts([frameHeader(kind, partsLength(parts)), ...parts]);
  await stream.close(opts);
  if (!ok) await stream.onDrain(opts);
}

/**
 * Sessions 22–26: a body this large that lies in one chunk of a stream marked STABLE_CHUNKS (a lane's) was handed on
 * as a view of that chunk, not copied, as long as the view is at least half of the memory it keeps alive. Since
 * session 27 a body of any size is (the same half rule); kept for tests that need a large body.
 */
export const VIEW_MIN_BYTES = 64 * 1024;

/**
 * A body this large, not yet all in, is read into one buffer of its size reserved on a lane stream that places
 * (session 27: `receiveInto`; a lane reading into the shared buffer, p2p/lane/lane.ts `placing`): the lane decrypts
 * the DATA that follows straight into it. Otherwise a 16 MiB request comes as eight frame plaintexts of 2 MiB (the
 * stream's window) that are joined at the end: every byte copied once more and twice the body allocated per call
 * (docs/LIMITS.md "Session 27: big calls on the lane").
 */
export const RESERVE_MIN_BYTES = 256 * 1024;
/**
 * The body is reserved only once this share of it has arrived (1/RESERVE_AFTER_SHARE): the buffer is allocated
 * against bytes received, at most RESERVE_AFTER_SHARE times them, never against a length prefix alone (a peer that
 * announces a 64 MiB body and sends 5 bytes gets nothing allocated). 8: a 16 MiB body is reserved after its first
 * DATA (a 2 MiB window), so 2 MiB of it is copied and 14 MiB placed.
 */
export const RESERVE_AFTER_SHARE = 8;
/** What the share may fall short by: the first DATA of a window also carries the frame's prefix and the message's header. */
const RESERVE_SLACK_BYTES = 4096;

/** A Uint8ArrayList from the muxer as its parts, not joined. */
function partsOf(chunk: ByteChunk): readonly Uint8Array[] {
  const parts = (chunk as { bufs?: unknown }).bufs;
  if (Array.isArray(parts) && parts.every((p) => p instanceof Uint8Array)) return parts as Uint8Array[];
  return [chunk.subarray()];
}

/** Pulls frames off a stream one at a time, each with its own size limit. */
export class FrameReader {
  private readonly buf = new Uint8ArrayList();
  private readonly it: AsyncIterator<Uint8Array | ByteChunk>;
  private ended = false;
  /** The source never reuses a chunk it yielded (STABLE_CHUNKS): large bodies may be views. */
  private readonly stable: boolean;
  /** The source can receive into a reserved buffer (a lane stream). */
  private readonly into: ReceivesInto | undefined;
  /** Total bytes read, for accounting. */
  bytesRead = 0;
  /** Counters (tests): body bytes copied into a reserved body, and those that arrived in place (not copied). */
  readonly reserved = { copied: 0, inPlace: 0, bodies: 0 };

  /** `kinds`: the frame kinds this stream may carry (default MESSAGE and ERROR); any other is RPC_UNKNOWN_FRAME. */
  constructor(
    source: AsyncIterable<Uint8Array | ByteChunk>,
    private readonly kinds: readonly number[] = CALL_KINDS,
  ) {
    this.it = source[Symbol.asyncIterator]();
    this.stable = (source as { [STABLE_CHUNKS]?: unknown })[STABLE_CHUNKS] === true;
    this.into = canReceiveInto(source) ? source : undefined;
  }

  /**
   * The next frame, or undefined when the stream ended cleanly between frames. Throws RpcViolationError
   * (RPC_OVERSIZED, RPC_MALFORMED, RPC_UNKNOWN_FRAME, RPC_TRUNCATED); stream errors (reset) pass through.
   */
  async next(maxBodyBytes: number): Promise<Frame | undefined> {
    // 1. the length prefix
    let len = -1;
    let prefixBytes = 0;
    for (;;) {
      const r = this.tryVarint();
      if (r !== undefined) {
        [len, prefixBytes] = r;
        break;
      }
      if (!(await this.pull())) {
        if (this.buf.byteLength === 0) return undefined;
        throw new RpcViolationError('RPC_TRUNCATED', 'stream ended inside a frame length');
      }
    }
    if (len === 0) throw new RpcViolationError('RPC_MALFORMED', 'zero-length frame');
    if (len - 1 > maxBodyBytes) {
      throw new RpcViolationError('RPC_OVERSIZED', `frame of ${len - 1} bytes exceeds the limit of ${maxBodyBytes}`, { bytes: len - 1, limit: maxBodyBytes });
    }
    // 2. the kind byte and body (a large body on a lane: into a buffer reserved for it once a share of it is in)
    const reserve = this.into !== undefined && len - 1 >= RESERVE_MIN_BYTES;
    while (this.buf.byteLength < prefixBytes + len) {
      if (reserve && this.buf.byteLength > prefixBytes && (this.buf.byteLength - prefixBytes - 1 + RESERVE_SLACK_BYTES) * RESERVE_AFTER_SHARE >= len - 1) {
        const kind = this.buf.get(prefixBytes);
        if (!this.kinds.includes(kind)) throw new RpcViolationError('RPC_UNKNOWN_FRAME', `unknown frame kind 0x${kind.toString(16)}`);
        return { kind: kind as Frame['kind'], body: await this.readReserved(prefixBytes, len - 1) };
      }
      if (!(await this.pull())) {
        throw new RpcViolationError('RPC_TRUNCATED', `stream ended inside a frame (${this.buf.byteLength - prefixBytes} of ${len} bytes)`);
      }
    }
    const kind = this.buf.get(prefixBytes);
    if (!this.kinds.includes(kind)) throw new RpcViolationError('RPC_UNKNOWN_FRAME', `unknown frame kind 0x${kind.toString(16)}`);
    // A copy: a view into the transport's chunk may be overwritten by later reads (seen with hidden states decoded
    // on a bidi stream and read after an await), and decoded messages keep views of their bytes fields. Only a
    // body from a source that never reuses its chunks (a lane: STABLE_CHUNKS) is a view, when it lies in one chunk
    // (subarray joins it otherwise) and is at least half of the buffer it keeps alive.
    // Either way a plain Uint8Array, never a Buffer: decoded bytes fields are subarrays of it, and code that copies
    // one with `.slice()` (tensor-wire's alignment) must get a copy (Buffer's slice is a view).
    let body: Uint8Array;
    if (this.stable) {
      // any size (session 27: one decode step's 3 KiB, decrypted in place in its socket read, was copied into a
      // fresh buffer each way of a hop; docs/LIMITS.md "Session 27: hop round trip"). A small body split over chunks
      // (rare: a lane delivers a sealed frame whole) is joined by subarray and then copied once more.
      const v = this.buf.subarray(prefixBytes + 1, prefixBytes + len);
      body = v.buffer.byteLength > 2 * v.byteLength ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    } else body = this.buf.slice(prefixBytes + 1, prefixBytes + len);
    this.buf.consume(prefixBytes + len);
    return { kind: kind as Frame['kind'], body };
  }

  /**
   * The body of `n` bytes after the prefix and kind byte (`prefixBytes` + 1 bytes), part of it buffered (less than
   * all), read into one buffer of its size: what is buffered is copied in, the rest is reserved on the stream
   * (`receiveInto`), so that a chunk that arrives as a view of that buffer at the right place is already there; any
   * other chunk is copied to its place. A plain Uint8Array (see `next`), its own memory.
   */
  private async readReserved(prefixBytes: number, n: number): Promise<Uint8Array> {
    const mem = Buffer.allocUnsafeSlow(n);
    const body = new Uint8Array(mem.buffer, mem.byteOffset, n);
    let filled = 0;
    for (const b of this.buf.sublist(prefixBytes + 1)) {
      body.set(b, filled);
      filled += b.byteLength;
    }
    this.buf.consume(this.buf.byteLength);
    this.reserved.bodies++;
    this.reserved.copied += filled;
    this.into!.receiveInto(body, filled);
    try {
      while (filled < n) {
        const parts = await this.pullParts();
        if (parts === undefined) throw new RpcViolationError('RPC_TRUNCATED', `stream ended inside a frame (${filled} of ${n} body bytes)`);
        for (const p of parts) {
          const k = Math.min(p.byteLength, n - filled);
          if (k > 0) {
            if (p.buffer === body.buffer && p.byteOffset === body.byteOffset + filled) this.reserved.inPlace += k;
            else {
              body.set(k === p.byteLength ? p : p.subarray(0, k), filled);
              this.reserved.copied += k;
            }
            filled += k;
          }
          // bytes past the body (the next frame) stay buffered
          if (k < p.byteLength) this.buf.append(p.subarray(k));
        }
      }
    } finally {
      this.into!.receiveInto(undefined);
    }
    return body;
  }

  /** True when the stream has ended and nothing is buffered. */
  async atEnd(): Promise<boolean> {
    while (this.buf.byteLength === 0) {
      if (!(await this.pull())) return true;
    }
    return false;
  }

  private tryVarint(): [number, number] | undefined {
    let n = 0;
    let mul = 1;
    const avail = Math.min(this.buf.byteLength, MAX_VARINT_BYTES);
    for (let i = 0; i < avail; i++) {
      const b = this.buf.get(i);
      n += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (n > MAX_FRAME_LENGTH) throw new RpcViolationError('RPC_OVERSIZED', `frame length ${n} exceeds ${MAX_FRAME_LENGTH}`);
        if (i > 0 && b === 0) throw new RpcViolationError('RPC_MALFORMED', 'non-minimal varint length');
        return [n, i + 1];
      }
      mul *= 128;
    }
    if (this.buf.byteLength >= MAX_VARINT_BYTES) throw new RpcViolationError('RPC_MALFORMED', 'frame length varint longer than 5 bytes');
    return undefined;
  }

  /**
   * The next chunk appended to the buffer (false: the stream ended). It awaits the source itself, not pullParts: one
   * async layer per chunk fewer (every frame of a serving hop, each way; docs/LIMITS.md "Session 27: hop round trip").
   */
  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done === true) {
      this.ended = true;
      return false;
    }
    const chunk = r.value;
    this.bytesRead += chunk.byteLength;
    if (chunk instanceof Uint8Array) this.buf.append(chunk);
    else for (const p of partsOf(chunk)) this.buf.append(p);
    return true;
  }

  /** The next chunk as its parts (undefined: the stream ended). */
  private async pullParts(): Promise<readonly Uint8Array[] | undefined> {
    if (this.ended) return undefined;
    const r = await this.it.next();
    if (r.done === true) {
      this.ended = true;
      return undefined;
    }
    const chunk = r.value;
    this.bytesRead += chunk.byteLength;
    if (chunk instanceof Uint8Array) return [chunk];
    return partsOf(chunk);
  }

  /** Stops the underlying iterator (lets the stream release its read side). */
  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.();
  }
}
