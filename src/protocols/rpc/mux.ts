/**
 * Reusable unary streams (issue 8 §5): one long-lived stream per (peer, method) carries many unary calls, each
 * with a request id, answered in any order. A new stream per call cost about 5 ms of CPU and 18-25 ms of wall time
 * on loopback (multistream-select, yamux SYN/ACK/FIN, peer-store updates: docs/SCALE.md); a call on an open stream
 * costs what one message costs.
 *
 * Protocol id: the method's own id plus `/mux/1.0.0` (e.g. /neuroshard/<net>/echo/1.0.0/mux/1.0.0). A node that
 * does not speak it answers the stream open with "protocol not supported"; the caller then remembers that and
 * calls that method on that peer with a stream per call, as before.
 *
 *   frame  = uvarint(n) · kind (1 byte) · uvarint(id) · payload          (n = 1 + the id's bytes + payload)
 *   kind   = 0x00 MESSAGE   client: the request; server: the response          payload: the method's message
 *          | 0x01 ERROR     server only: the call failed                         payload: an RpcError message
 *          | 0x02 CANCEL    client only: forget call `id` (deadline, abort)      payload: empty
 *   id     = 1 .. 2^31-1, chosen by the client, unique among its calls in flight on the stream
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
import { FRAME_CANCEL, FRAME_ERROR, FRAME_MESSAGE, FrameReader, encodeUvarint, frameHeader, type Frame } from './frame.js';

/** The framing's own version, appended to the method's protocol id. */
export const MUX_SUFFIX = '/mux/1.0.0';
export const MUX_KINDS: readonly number[] = [FRAME_MESSAGE, FRAME_ERROR, FRAME_CANCEL];
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

/**
 * Serialises frames onto a stream shared by several calls (a frame's header and body must not interleave with
 * another's), respecting backpressure. A write that cannot drain within `stallMs` means the other side stopped
 * reading: the stream is reset, since every call on it would wait for the same drain.
 */
export class MuxWriter {
  private tail: Promise<void> = Promise.resolve();
  /** Frames queued or being written. */
  queued = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly stream: DuplexStream,
    private readonly stallMs: number,
    private readonly signal: AbortSignal,
  ) {}

  write(kind: number, id: number, payload: Uint8Array): Promise<void> {
    this.queued++;
    const parts = muxFrameParts(kind, id, payload);
    const p = this.tail.then(async () => {
      if (this.signal.aborted) throw this.signal.reason instanceof Error ? this.signal.reason : new AbortedError('stream closed');
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
    });
    const done = (): void => {
      this.queued--;
      for (const w of this.drainWaiters.splice(0)) w();
    };
    this.tail = p.then(done, done);
    return p;
  }

  /** Resolves once at most `n` frames are queued. */
  async below(n: number): Promise<void> {
    while (this.queued > n && !this.signal.aborted) await new Promise<void>((r) => this.drainWaiters.push(r));
  }

  /** Resolves when everything queued so far is written (or failed). */
  async flushed(): Promise<void> {
    await this.tail;
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

  constructor(private readonly o: MuxChannelOptions) {
    this.stream = o.stream;
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
   * stream dies.
   */
  request(payload: Uint8Array, signal: AbortSignal): Promise<Frame> {
    if (this.ended) return Promise.reject(new RpcTransportError('RPC_STREAM_RESET', `${this.o.method}: stream to ${this.o.peer} is closed`, { peer: this.o.peer }));
    if (signal.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    this.disarmIdle();
    return new Promise<Frame>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.delete(id)) return;
        reject(signal.reason);
        // tell the server to stop; a late answer for this id is dropped when it comes
        if (!this.ended) this.writer.write(FRAME_CANCEL, id, new Uint8Array(0)).catch(() => {});
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
      this.writer.write(FRAME_MESSAGE, id, payload).catch((e: unknown) => {
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
  private retire(): void {
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
    const peer = this.o.peer;
    try {
      for (;;) {
        const frame = await reader.next(Math.max(this.o.maxResponseBytes, this.o.maxErrorBytes) + ID_BYTES);
        if (frame === undefined) break;
        const [id, payload] = splitId(frame.body);
        if (frame.kind === FRAME_CANCEL) throw new RpcViolationError('RPC_PROTOCOL', `${this.o.method}: a server may not send CANCEL`);
        if (id >= this.nextId) throw new RpcViolationError('RPC_PROTOCOL', `${this.o.method}: response for call ${id}, which was never sent`);
        const limit = frame.kind === FRAME_MESSAGE ? this.o.maxResponseBytes : this.o.maxErrorBytes;
        if (payload.byteLength > limit) {
          throw new RpcViolationError('RPC_OVERSIZED', `${this.o.method}: frame of ${payload.byteLength} bytes exceeds the limit of ${limit}`, { bytes: payload.byteLength, limit });
        }
        const p = this.pending.get(id);
        if (p === undefined) continue; // a cancelled call's late answer
        this.pending.delete(id);
        p.resolve({ kind: frame.kind, body: payload });
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
