/**
 * Reusable unary streams (issue 8 §5): one long-lived stream per (peer, method) carries many unary calls, each
 * with a request id, answered in any order. A new stream per call cost about 5 ms of CPU and 18-25 ms of wall time
 * on loopback (multistream-select, yamux SYN/ACK/FIN, peer-store updates: docs/SCALE.md); a call on an open stream
 * costs what one message costs.
 *
 * Protocol id: the method's own id plus `/mux/2.0.0` (e.g. /neuroshard/<net>/echo/1.0.0/mux/2.0.0). A node that
 * does not speak it answers the stream open with "protocol not supported"; the caller then remembers that and
 * calls that method on that peer with a stream per call, as before. (1.0.0, never on by default, had no PART frames.)
 *
 *   frame  = uvarint(n) · kind (1 byte) · uvarint(id) · payload          (n = 1 + the id's bytes + payload)
 *   kind   = 0x00 MESSAGE   client: the request; server: the response          payload: the method's message
 *          | 0x01 ERROR     server only: the call failed                         payload: an RpcError message
 *          | 0x02 CANCEL    client only: forget call `id` (deadline, abort)      payload: empty
 *          | 0x03 PART      either side: a piece of call `id`'s next MESSAGE or ERROR; the pieces and the final
 *                           frame's payload, joined in order, are the message
 *   id     = 1 .. 2^31-1, chosen by the client, unique among its calls in flight on the stream
 *   payload of any frame: at most MUX_PIECE_BYTES (64 KiB)
 *
 * Large messages (issue 8 §5): a message longer than MUX_PIECE_BYTES goes as PART pieces, and each side's writer
 * sends the pieces of the messages it has queued in turn (round robin, at most MUX_MAX_PARTIAL messages begun and
 * not finished at once), so a small call waits for at most one 64-KiB piece of each large message ahead of it, not
 * for the whole of a 64-MiB tensor. A request over MUX_MAX_REQUEST_BYTES (1 MiB) is not sent on the shared stream
 * at all: the client calls it on a stream of its own. That bounds what a server buffers for one reusable stream's
 * unfinished requests (MUX_MAX_PARTIAL × 1 MiB); responses are bounded by the caller's own calls.
 *
 * The server keeps its one-call semantics per request: the same decoding, validation, penalties, per-method and
 * per-peer slot limits (a request past the limit gets RPC_BUSY, so a stranger cannot hold every slot however many
 * calls it pipelines), and handler deadline. A frame that breaks the framing itself (oversized, unknown kind,
 * truncated, a duplicate or unknown id) is a protocol violation that resets the stream and fails its calls; a
 * request that does not decode or validate is penalised and answered with an ERROR frame for its id alone.
 *
 * Either side closes an idle stream (the client after CLIENT_IDLE_MS without a call in flight, the server after
 * SERVER_IDLE_MS); when a stream or its connection dies, the calls in flight on it fail with RpcTransportError
 * (a NetworkError, RPC_STREAM_RESET) and the next call opens a new stream.
 */
import type { DuplexStream, PeerIdString } from '../../p2p/types.js';
import { AbortedError, TimeoutError, errorMessage } from '../../util/errors.js';
import { RpcTransportError, RpcViolationError } from './errors.js';
import { FRAME_CANCEL, FRAME_ERROR, FRAME_MESSAGE, FRAME_PART, FrameReader, encodeUvarint, frameHeader, type Frame } from './frame.js';

/** The framing's own version, appended to the method's protocol id. */
export const MUX_SUFFIX = '/mux/2.0.0';
export const MUX_KINDS: readonly number[] = [FRAME_MESSAGE, FRAME_ERROR, FRAME_CANCEL, FRAME_PART];
/** Largest payload of one frame on a reusable stream; longer messages go as PART pieces of this size. */
export const MUX_PIECE_BYTES = 64 * 1024;
/** Messages one side may have begun (a PART sent) and not finished at once on one stream. */
export const MUX_MAX_PARTIAL = 8;
/** Largest request sent on a reusable stream; a larger one goes on a stream of its own. */
export const MUX_MAX_REQUEST_BYTES = 1024 * 1024;
/** Largest request id; a client that used them all retires the stream. */
export const MAX_CALL_ID = 2 ** 31 - 1;
/** Bytes an id may add to a frame (a 5-byte uvarint). */
export const ID_BYTES = 5;
/** A client closes a stream with no call in flight for this long. */
export const CLIENT_IDLE_MS = 20_000;
/** A server resets a stream that sent no complete frame for this long while no call of it runs. */
export const SERVER_IDLE_MS = 60_000;
/** Most calls one client stream carries at once (more go on a stream of their own). */
export const MAX_CLIENT_PENDING = 1024;
/** Concurrent reusable streams of one method per connection (a client needs one; reconnects may briefly hold two). */
export const MUX_MAX_INBOUND_STREAMS = 4;

export function muxProtocolOf(protocol: string): string {
  return protocol + MUX_SUFFIX;
}

/** One frame with its id, joined into one buffer when small (one write), else header and body apart. */
function muxFrameParts(kind: number, id: number, payload: Uint8Array): Uint8Array[] {
  const idb = encodeUvarint(id);
  const h = frameHeader(kind, idb.byteLength + payload.byteLength);
  if (payload.byteLength >= 64 * 1024) {
    const head = new Uint8Array(h.byteLength + idb.byteLength);
    head.set(h);
    head.set(idb, h.byteLength);
    return [head, payload];
  }
  const out = new Uint8Array(h.byteLength + idb.byteLength + payload.byteLength);
  out.set(h);
  out.set(idb, h.byteLength);
  out.set(payload, h.byteLength + idb.byteLength);
  return [out];
}

/** One contiguous frame (tests). */
export function encodeMuxFrame(kind: number, id: number, payload: Uint8Array): Uint8Array {
  const parts = muxFrameParts(kind, id, payload);
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts[0]!.byteLength + parts[1]!.byteLength);
  out.set(parts[0]!);
  out.set(parts[1]!, parts[0]!.byteLength);
  return out;
}

/** Splits a frame body into its id and payload; RPC_MALFORMED when the id is missing, not minimal or out of range. */
export function splitId(body: Uint8Array): [number, Uint8Array] {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < Math.min(body.byteLength, ID_BYTES); i++) {
    const b = body[i]!;
    n += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) {
      if (i > 0 && b === 0) throw new RpcViolationError('RPC_MALFORMED', 'non-minimal call id');
      if (n < 1 || n > MAX_CALL_ID) throw new RpcViolationError('RPC_MALFORMED', `call id ${n} out of range`);
      return [n, body.subarray(i + 1)];
    }
    mul *= 128;
  }
  throw new RpcViolationError('RPC_MALFORMED', 'frame without a call id');
}

interface WriteJob {
  kind: number;
  id: number;
  payload: Uint8Array;
  /** Bytes of the payload sent so far (as PART pieces). */
  off: number;
  /** Its caller gave up while a piece of it was being written: no more pieces. */
  dropped?: boolean;
  resolve(): void;
  reject(e: unknown): void;
}

/**
 * Serialises frames onto a stream shared by several calls (a frame's header and body must not interleave with
 * another's), respecting backpressure, and interleaves large messages piece by piece (round robin over the queued
 * messages, at most MUX_MAX_PARTIAL of them begun at once) so that none holds up the others. A write that cannot
 * drain within `stallMs` means the other side stopped reading: the stream is reset, since every call on it would
 * wait for the same drain.
 */
export class MuxWriter {
  private readonly jobs: WriteJob[] = [];
  /** The message whose piece is being written now (out of `jobs` meanwhile). */
  private current: WriteJob | undefined;
  private pumping = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly stream: DuplexStream,
    private readonly stallMs: number,
    private readonly signal: AbortSignal,
    private readonly pieceBytes = MUX_PIECE_BYTES,
  ) {}

  /** Messages queued or being written. */
  get queued(): number {
    return this.jobs.length + (this.current === undefined ? 0 : 1);
  }

  write(kind: number, id: number, payload: Uint8Array): Promise<void> {
    if (this.signal.aborted) return Promise.reject(this.abortReason());
    return new Promise<void>((resolve, reject) => {
      this.jobs.push({ kind, id, payload, off: 0, resolve, reject });
      void this.pump();
    });
  }

  /**
   * Forgets call `id`'s queued message (its caller gave up). Returns false when nothing of it was sent (the peer
   * never heard of it), true when a part or all of it was: the peer must then be sent a CANCEL, which the writer's
   * order puts after the last piece it sent.
   */
  drop(id: number): boolean {
    if (this.current?.id === id) {
      this.current.dropped = true;
      return true;
    }
    const i = this.jobs.findIndex((j) => j.id === id);
    if (i < 0) return true;
    const [j] = this.jobs.splice(i, 1);
    j!.resolve();
    this.notify();
    return j!.off > 0;
  }

  /** Resolves once at most `n` messages are queued. */
  async below(n: number): Promise<void> {
    while (this.queued > n && !this.signal.aborted) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Resolves when everything queued so far is written (or failed). */
  async flushed(): Promise<void> {
    while (this.queued > 0 && !this.signal.aborted) await new Promise<void>((r) => this.waiters.push(r));
  }

  private abortReason(): Error {
    return this.signal.reason instanceof Error ? this.signal.reason : new AbortedError('stream closed');
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next message to send a piece of: the first queued one that may go now (begun, or small, or a free slot). */
  private next(): WriteJob | undefined {
    let begun = 0;
    for (const j of this.jobs) if (j.off > 0) begun++;
    const i = this.jobs.findIndex((j) => j.off > 0 || j.payload.byteLength <= this.pieceBytes || begun < MUX_MAX_PARTIAL);
    return i < 0 ? undefined : this.jobs.splice(i, 1)[0];
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        if (this.signal.aborted) throw this.abortReason();
        const j = this.next();
        if (j === undefined) break;
        const end = Math.min(j.payload.byteLength, j.off + this.pieceBytes);
        const last = end === j.payload.byteLength;
        const piece = j.payload.subarray(j.off, end);
        j.off = end;
        this.current = j;
        try {
          await this.send(muxFrameParts(last ? j.kind : FRAME_PART, j.id, piece));
        } catch (e) {
          j.reject(e);
          throw e;
        } finally {
          this.current = undefined;
        }
        // an unfinished message goes to the back of the queue, behind those queued while its piece was written
        if (last || j.dropped === true) j.resolve();
        else this.jobs.push(j);
        this.notify();
      }
    } catch (e) {
      for (const j of this.jobs.splice(0)) j.reject(e);
    } finally {
      this.pumping = false;
      this.notify();
    }
  }

  private async send(parts: Uint8Array[]): Promise<void> {
    for (const part of parts) {
      if (this.stream.send(part)) continue;
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(new TimeoutError(`stream write stalled for ${this.stallMs} ms`, { ms: this.stallMs })), this.stallMs);
      const onAbort = (): void => ac.abort(this.signal.reason);
      this.signal.addEventListener('abort', onAbort, { once: true });
      try {
        await this.stream.onDrain({ signal: ac.signal });
      } catch (e) {
        this.stream.abort(e instanceof Error ? e : new Error(String(e)));
        throw e;
      } finally {
        clearTimeout(t);
        this.signal.removeEventListener('abort', onAbort);
      }
    }
  }
}

/**
 * Joins PART pieces into messages, per call id. At most `maxOpen` messages may be unfinished at once, and a
 * message (pieces and final frame together) may not exceed the limit its caller gives.
 */
export class MuxAssembler {
  private readonly open = new Map<number, { bufs: Uint8Array[]; bytes: number }>();

  constructor(private readonly maxOpen = MUX_MAX_PARTIAL) {}

  /** Buffered bytes of unfinished messages. */
  get bufferedBytes(): number {
    let n = 0;
    for (const p of this.open.values()) n += p.bytes;
    return n;
  }

  has(id: number): boolean {
    return this.open.has(id);
  }

  /**
   * Adds one MESSAGE, ERROR or PART frame's payload for `id`. Returns the whole message when the frame ends one,
   * undefined after a PART. Throws RpcViolationError (RPC_OVERSIZED past `limit`, RPC_PROTOCOL past maxOpen).
   */
  add(kind: number, id: number, payload: Uint8Array, limit: number): Frame | undefined {
    const p = this.open.get(id);
    const bytes = (p?.bytes ?? 0) + payload.byteLength;
    if (bytes > limit) throw new RpcViolationError('RPC_OVERSIZED', `message of ${bytes}+ bytes exceeds the limit of ${limit}`, { bytes, limit });
    if (kind === FRAME_PART) {
      if (p === undefined) {
        if (this.open.size >= this.maxOpen) throw new RpcViolationError('RPC_PROTOCOL', `more than ${this.maxOpen} messages begun at once`);
        this.open.set(id, { bufs: [payload], bytes });
      } else {
        p.bufs.push(payload);
        p.bytes = bytes;
      }
      return undefined;
    }
    if (p === undefined) return { kind: kind as Frame['kind'], body: payload };
    this.open.delete(id);
    const body = new Uint8Array(bytes);
    let o = 0;
    for (const b of [...p.bufs, payload]) {
      body.set(b, o);
      o += b.byteLength;
    }
    return { kind: kind as Frame['kind'], body };
  }

  /** Forgets an unfinished message (its call was cancelled). */
  drop(id: number): void {
    this.open.delete(id);
  }
}

interface Pending {
  resolve(frame: Frame): void;
  reject(e: unknown): void;
}

export interface MuxChannelOptions {
  stream: DuplexStream;
  peer: PeerIdString;
  method: string;
  /** Largest response message body. */
  maxResponseBytes: number;
  /** Largest error body the client reads. */
  maxErrorBytes: number;
  /** A write that cannot drain for this long kills the stream (the method's timeout). */
  stallMs: number;
  idleMs?: number;
  /** The stream runs on a direct data lane (p2p/lane/), not libp2p. */
  onLane?: boolean;
  /** The peer broke the framing: penalise it (once per stream). */
  onViolation(e: RpcViolationError): void;
  /** The channel ended (dead or closed for idleness): the owner forgets it. */
  onEnd(ch: MuxChannel): void;
}

/** The client end of a reusable stream: sends requests with fresh ids and routes each response to its caller. */
export class MuxChannel {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly writer: MuxWriter;
  private readonly life = new AbortController();
  private ended = false;
  private writeClosed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly stream: DuplexStream;
  /** The stream runs on a direct data lane. */
  readonly onLane: boolean;

  constructor(private readonly o: MuxChannelOptions) {
    this.stream = o.stream;
    this.onLane = o.onLane ?? false;
    this.writer = new MuxWriter(o.stream, o.stallMs, this.life.signal);
    void this.readLoop();
    this.armIdle();
  }

  /** True while new calls may use this channel. */
  get usable(): boolean {
    return !this.ended && this.nextId < MAX_CALL_ID && this.pending.size < MAX_CLIENT_PENDING;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one request and resolves with its response frame (MESSAGE or ERROR, id stripped). Rejects with the
   * signal's reason when it fires (the server is told to forget the call) and with RpcTransportError when the
   * stream dies. `written` is called once the request's last byte is written.
   */
  request(payload: Uint8Array, signal: AbortSignal, written?: () => void): Promise<Frame> {
    if (this.ended) return Promise.reject(new RpcTransportError('RPC_STREAM_RESET', `${this.o.method}: stream to ${this.o.peer} is closed`, { peer: this.o.peer }));
    if (signal.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    this.disarmIdle();
    return new Promise<Frame>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.delete(id)) return;
        reject(signal.reason);
        // tell the server to stop; a late answer for this id is dropped when it comes
        if (!this.ended && this.writer.drop(id)) this.writer.write(FRAME_CANCEL, id, new Uint8Array(0)).catch(() => {});
        this.armIdle();
      };
      this.pending.set(id, {
        resolve: (f) => {
          signal.removeEventListener('abort', onAbort);
          resolve(f);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
      this.writer.write(FRAME_MESSAGE, id, payload).then(written, (e: unknown) => {
        this.fail(new RpcTransportError('RPC_STREAM_RESET', `${this.o.method}: writing to ${this.o.peer} failed: ${errorMessage(e)}`, { peer: this.o.peer }, e));
      });
      if (this.nextId >= MAX_CALL_ID) this.retire();
    });
  }

  /** Fails every call in flight with `e`, resets the stream and forgets the channel. */
  fail(e: unknown): void {
    if (!this.ended) this.end();
    this.life.abort(e);
    this.stream.abort(e instanceof Error ? e : new Error(String(e)));
    for (const [id, p] of [...this.pending]) {
      this.pending.delete(id);
      p.reject(e);
    }
  }

  private end(): void {
    this.ended = true;
    this.disarmIdle();
    this.o.onEnd(this);
  }

  /** No new calls; half-close once the calls in flight are answered. */
  retire(): void {
    if (this.ended) return;
    this.end();
    if (this.pending.size === 0) this.closeWrite();
  }

  private closeWrite(): void {
    if (this.writeClosed) return;
    this.writeClosed = true;
    const s = AbortSignal.timeout(this.o.stallMs);
    this.writer
      .flushed()
      .then(() => this.stream.close({ signal: s }))
      .catch(() => this.stream.abort(new AbortedError('closing an idle stream failed')));
  }

  private armIdle(): void {
    if (this.ended || this.pending.size > 0 || this.idleTimer !== undefined) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.pending.size === 0) this.retire();
    }, this.o.idleMs ?? CLIENT_IDLE_MS);
    this.idleTimer.unref?.();
  }

  private disarmIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private async readLoop(): Promise<void> {
    const reader = new FrameReader(this.stream, MUX_KINDS);
    const parts = new MuxAssembler();
    const peer = this.o.peer;
    const maxBody = Math.max(this.o.maxResponseBytes, this.o.maxErrorBytes);
    try {
      for (;;) {
        const frame = await reader.next(MUX_PIECE_BYTES + ID_BYTES);
        if (frame === undefined) break;
        const [id, payload] = splitId(frame.body);
        if (frame.kind === FRAME_CANCEL) throw new RpcViolationError('RPC_PROTOCOL', `${this.o.method}: a server may not send CANCEL`);
        if (id >= this.nextId) throw new RpcViolationError('RPC_PROTOCOL', `${this.o.method}: response for call ${id}, which was never sent`);
        const p = this.pending.get(id);
        if (p === undefined) {
          parts.drop(id); // a cancelled call's late answer: nothing of it is kept
          continue;
        }
        const whole = parts.add(frame.kind, id, payload, maxBody);
        if (whole === undefined) continue;
        const limit = whole.kind === FRAME_MESSAGE ? this.o.maxResponseBytes : this.o.maxErrorBytes;
        if (whole.body.byteLength > limit) {
          throw new RpcViolationError('RPC_OVERSIZED', `${this.o.method}: frame of ${whole.body.byteLength} bytes exceeds the limit of ${limit}`, { bytes: whole.body.byteLength, limit });
        }
        this.pending.delete(id);
        p.resolve(whole);
        if (this.pending.size === 0) {
          if (this.ended) this.closeWrite();
          else this.armIdle();
        }
      }
      // the server closed its side: calls still waiting will never be answered
      if (this.pending.size > 0) this.fail(new RpcTransportError('RPC_STREAM_RESET', `${this.o.method}: ${peer} closed the stream`, { peer }));
      else {
        if (!this.ended) this.end();
        this.closeWrite();
      }
    } catch (e) {
      if (e instanceof RpcViolationError) {
        this.o.onViolation(e);
        this.fail(new RpcTransportError('RPC_STREAM_RESET', `${this.o.method}: stream to ${peer} reset after a protocol violation: ${e.message}`, { peer, violation: e.code }, e));
      } else if (this.life.signal.aborted) {
        this.fail(this.life.signal.reason);
      } else {
        this.fail(new RpcTransportError('RPC_STREAM_RESET', `${this.o.method}: stream to ${peer} failed: ${errorMessage(e)}`, { peer }, e));
      }
    }
  }
}
