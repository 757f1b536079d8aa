/**
 * One stream of a lane (./lane.ts) as the RPC layer sees any stream (p2p/types.ts DuplexStream): `send` returns
 * false when the stream's send window or the lane's socket is full, `close` half-closes, `abort` resets, and
 * iterating yields what the other end sends until it closes.
 *
 * Flow control is per stream, as in yamux: the reader grants `window` bytes up front and more (WINDOW sub-frames)
 * as its consumer takes bytes out, so a stream never buffers more than `window` bytes for a reader that stopped
 * reading, and one slow stream does not hold up the others on the lane. A peer sending past what it was granted
 * breaks the protocol (LANE_PROTOCOL): the whole lane closes.
 */
import type { AbortOptions } from '../../util/abort.js';
import type { DuplexStream } from '../types.js';
import { LaneError } from './errors.js';

/** What a stream needs of its lane. */
export interface StreamHost {
  /** Queues one DATA sub-frame (the lane splits it into pieces). */
  sendData(stream: number, data: Uint8Array): void;
  /** Queues one DATA sub-frame whose payload is `parts` joined (their total fits one sealed frame): no copy. */
  sendDataParts(stream: number, parts: readonly Uint8Array[], total: number): void;
  /** Largest DATA payload `sendDataParts` takes. */
  readonly maxDataPartsBytes: number;
  /** Whether the lane decrypts large DATA into a place the reader reserved (`LaneStream.receiveInto`). */
  readonly placing: boolean;
  sendWindow(stream: number, grant: number): void;
  sendClose(stream: number): void;
  sendReset(stream: number, reason: string): void;
  /** True while the lane's socket holds more unsent bytes than it should take more of. */
  congested(): boolean;
  /** Resolves when the socket drained (or the lane died: rejects). */
  writable(signal?: AbortSignal): Promise<void>;
  /** The stream is finished in both directions (or reset): the lane forgets it. */
  forget(stream: LaneStream): void;
}

/** A reset stream's error, named as libp2p names its own so that callers treat both alike. */
export class LaneStreamResetError extends Error {
  override readonly name = 'StreamResetError';
}

/**
 * Set (true) on a stream whose chunks are never reused or written after they are yielded: a reader may keep views of
 * them (rpc/frame.ts takes a large message body as a view instead of copying it). A lane's chunks are views into
 * authenticated plaintexts that the lane made for this one delivery (a frame's own buffer, a socket read decrypted
 * in place, or a block small payloads are appended to past every view handed out).
 */
export const STABLE_CHUNKS = Symbol.for('neuroshard.stable-chunks');

/**
 * A stream that can receive its next bytes straight into its reader's buffer (a lane's: `LaneStream.receiveInto`):
 * rpc/frame.ts reserves the rest of a large message body this way, and a DATA that fills a sealed frame is then
 * decrypted into it (./reader.ts FramePlacer) instead of into a frame plaintext that the reader would copy.
 */
export interface ReceivesInto {
  receiveInto(buf: Uint8Array | undefined, at?: number): void;
}

/** A lane stream whose lane places large DATA (else reserving a body would only move the join earlier). */
export function canReceiveInto<S extends object>(s: S): s is S & ReceivesInto {
  return s instanceof LaneStream && s.placing;
}

/** A stream that can send a payload given in parts without joining them (a lane's: `LaneStream.sendParts`). */
export interface PartsSender {
  sendParts(parts: readonly Uint8Array[]): boolean;
}

export function canSendParts<S extends object>(s: S): s is S & PartsSender {
  return s instanceof LaneStream;
}

/** DATA payloads up to this size are copied together into one block for the reader (see `LaneStream.inbox`). */
const SMALL_DATA_BYTES = 512;
const TAIL_BLOCK_BYTES = 16 * 1024;

type Waiter = { resolve: () => void; reject: (e: unknown) => void };

export class LaneStream implements DuplexStream {
  readonly [STABLE_CHUNKS] = true;
  /** Send credit left (bytes the other end still accepts). */
  private credit: number;
  /** Data waiting for credit. */
  private readonly pendingOut: Uint8Array[] = [];
  /**
   * What the other end sent and the reader has not taken: a queue read from `inboxHead` (Array.shift() is O(length),
   * and a keyed peer sending a lagging reader a million one-byte DATA sub-frames made taking them quadratic), small
   * payloads copied together into `tail` blocks so that such a flood is a few entries, not one per sub-frame
   * (test/attacks/lane-inplace).
   */
  private inbox: (Uint8Array | undefined)[] = [];
  private inboxHead = 0;
  /** The block small payloads are copied into, how much of it is used, and the inbox entry that is its open view. */
  private tail: Uint8Array | undefined;
  private tailUsed = 0;
  private tailFrom = 0;
  private tailView: Uint8Array | undefined;
  /** Bytes the other end may send in all (the window plus every grant), received, and handed to the reader. */
  private allowed: number;
  private received = 0;
  private consumed = 0;
  private readWaiter: (() => void) | undefined;
  private drainWaiters: Waiter[] = [];
  private writeClosed = false;
  private remoteClosed = false;
  private error: Error | undefined;
  private finished = false;
  private readonly closeListeners: ((evt: { error?: Error }) => void)[] = [];
  /** The reader's reserved buffer (`receiveInto`) and where in it the next byte to arrive on the stream goes. */
  private reserve: Uint8Array | undefined;
  private reserveAt = 0;

  constructor(
    readonly id: number,
    readonly protocol: string,
    private readonly host: StreamHost,
    private readonly window: number,
  ) {
    this.credit = window;
    this.allowed = window;
  }

  /** Whether its lane decrypts large DATA into a place the reader reserved (`receiveInto`). */
  get placing(): boolean {
    return this.host.placing;
  }

  /** Bytes buffered for the reader (tests). */
  get bufferedIn(): number {
    return this.received - this.consumed;
  }

  get dead(): boolean {
    return this.finished;
  }

  send(data: Uint8Array): boolean {
    if (this.error !== undefined) throw this.error;
    if (this.writeClosed) throw new LaneStreamResetError('stream closed for writing');
    if (data.byteLength === 0) return !this.host.congested();
    if (this.pendingOut.length === 0 && data.byteLength <= this.credit) {
      this.credit -= data.byteLength;
      this.host.sendData(this.id, data);
      return !this.host.congested();
    }
    this.pendingOut.push(data);
    this.flushPending();
    return this.pendingOut.length === 0 && !this.host.congested();
  }

  /**
   * `send` of the parts joined, as one DATA sub-frame when the send window and the lane's frame cap allow it (the
   * reader then gets them as one chunk: rpc/frame.ts takes a large message body in one chunk as a view), else part
   * by part. The parts are read when the lane seals them (the next microtask, or when credit comes): the caller must
   * not change them before that (rpc/service.ts sends a call's request this way and documents it).
   */
  sendParts(parts: readonly Uint8Array[]): boolean {
    if (this.error !== undefined) throw this.error;
    if (this.writeClosed) throw new LaneStreamResetError('stream closed for writing');
    let total = 0;
    for (const p of parts) total += p.byteLength;
    if (this.pendingOut.length === 0 && total > 0 && total <= this.credit && total <= this.host.maxDataPartsBytes) {
      this.credit -= total;
      this.host.sendDataParts(this.id, parts, total);
      return !this.host.congested();
    }
    let ok = true;
    for (const p of parts) ok = this.send(p);
    return ok;
  }

  async onDrain(opts: AbortOptions = {}): Promise<void> {
    for (;;) {
      if (this.error !== undefined) throw this.error;
      if (opts.signal?.aborted === true) throw opts.signal.reason;
      if (this.pendingOut.length > 0) {
        await this.wait(opts.signal);
        continue;
      }
      if (this.host.congested()) {
        await this.host.writable(opts.signal);
        continue;
      }
      return;
    }
  }

  /**
   * Half-closes once every byte sent before is queued on the lane (data waiting for send credit goes first). It does
   * not wait for the socket to drain (before session 24 it did): the lane writes its sub-frames in order, so a CLOSE
   * queued in the same turn as a request's DATA goes in the same sealed frame, and the far end, knowing that nothing
   * more comes, sends no WINDOW for it. Backpressure stays with `send`/`onDrain`.
   */
  async close(opts: AbortOptions = {}): Promise<void> {
    if (this.writeClosed || this.error !== undefined) return;
    while (this.pendingOut.length > 0) {
      if (this.error !== undefined) throw this.error;
      if (opts.signal?.aborted === true) throw opts.signal.reason;
      await this.wait(opts.signal);
    }
    if (this.writeClosed || this.error !== undefined) return;
    this.writeClosed = true;
    this.host.sendClose(this.id);
    if (this.remoteClosed) this.finish(undefined);
  }

  abort(err: Error): void {
    if (this.finished) return;
    this.host.sendReset(this.id, err.message.slice(0, 200));
    this.die(err);
  }

  addEventListener(_type: 'close', listener: (evt: { error?: Error }) => void): void {
    if (this.finished) {
      queueMicrotask(() => listener(this.error === undefined ? {} : { error: this.error }));
      return;
    }
    this.closeListeners.push(listener);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const c = this.take();
      if (c !== undefined) {
        this.consumed += c.byteLength;
        this.maybeGrant();
        yield c;
        continue;
      }
      if (this.error !== undefined) throw this.error;
      if (this.remoteClosed) return;
      await new Promise<void>((r) => (this.readWaiter = r));
    }
  }

  /**
   * The reader's next bytes (after those it has not taken yet) are to land in `buf` from `at` on: a DATA that fills
   * a sealed frame and fits there is decrypted straight into it (`placeFor`) and handed to the reader as a view of
   * it, where it already lies. Any other DATA is handed on as usual (the reader copies it to its place). Undefined:
   * no more. Only the place is reserved here; the reader checks each chunk it gets (rpc/frame.ts).
   */
  receiveInto(buf: Uint8Array | undefined, at = 0): void {
    this.reserve = undefined;
    if (buf === undefined || this.error !== undefined || this.remoteClosed) return;
    const next = at + this.bufferedIn;
    if (next >= buf.byteLength) return;
    this.reserve = buf;
    this.reserveAt = next;
  }

  /** Where a DATA of `n` bytes arriving next goes, when the reader reserved room for it; else undefined. */
  placeFor(n: number): Uint8Array | undefined {
    const r = this.reserve;
    if (r === undefined || n === 0 || this.reserveAt + n > r.byteLength || this.received + n > this.allowed) return undefined;
    return r.subarray(this.reserveAt, this.reserveAt + n);
  }

  // ── from the lane ──

  /** DATA from the other end. Throws LANE_PROTOCOL past the granted window (the lane then closes). */
  pushData(payload: Uint8Array): void {
    if (this.remoteClosed) throw new LaneError('LANE_PROTOCOL', `data on stream ${this.id} after its close`);
    this.received += payload.byteLength;
    if (this.received > this.allowed) throw new LaneError('LANE_PROTOCOL', `stream ${this.id} sent ${this.received} bytes, ${this.allowed} granted`);
    if (this.error !== undefined) {
      // reset locally: the bytes are dropped, but they still count against the window
      this.consumed += payload.byteLength;
      return;
    }
    // a DATA placed in the reader's reserved buffer (it holds that buffer anyway): handed on as the view it is
    const placed = this.reserve !== undefined && payload.buffer === this.reserve.buffer;
    if (this.reserve !== undefined) {
      this.reserveAt += payload.byteLength;
      if (this.reserveAt >= this.reserve.byteLength) this.reserve = undefined;
    }
    // an empty DATA carries nothing (an honest sender never sends one: `send` skips empty data): not queued
    if (payload.byteLength === 0) return;
    if (placed) this.inbox.push(payload);
    else if (payload.byteLength <= SMALL_DATA_BYTES) this.pushSmall(payload);
    // A view pins the frame it came in (up to maxFramePlainBytes) until the reader takes it: a DATA in a frame more
    // than twice its size is copied, so a stream that does not read holds about its window, not every frame its DATA
    // shared (review, session 23: 14,400 bytes of window held 24 MiB). A bulk DATA alone in its frame stays a view.
    else this.inbox.push(payload.buffer.byteLength > 2 * payload.byteLength ? new Uint8Array(payload) : payload);
    this.wake();
  }

  /** Copies a small payload onto the open tail entry while the reader has not taken it, else starts an entry. */
  private pushSmall(payload: Uint8Array): void {
    const n = payload.byteLength;
    const last = this.inbox.length - 1;
    // the open entry: the tail's current view, not yet taken, still the queue's last entry (nothing came after it)
    const open = this.tailView !== undefined && last >= this.inboxHead && this.inbox[last] === this.tailView;
    if (this.tail === undefined || this.tailUsed + n > this.tail.byteLength) {
      // a fresh block and a new entry; the old block's bytes (held by the reader or still queued) stay as they are
      this.tail = new Uint8Array(TAIL_BLOCK_BYTES);
      this.tail.set(payload, 0);
      this.tailUsed = n;
      this.tailFrom = 0;
      this.tailView = this.tail.subarray(0, n);
      this.inbox.push(this.tailView);
      return;
    }
    if (!open) this.tailFrom = this.tailUsed;
    this.tail.set(payload, this.tailUsed);
    this.tailUsed += n;
    this.tailView = this.tail.subarray(this.tailFrom, this.tailUsed);
    if (open) this.inbox[last] = this.tailView;
    else this.inbox.push(this.tailView);
  }

  /** The reader's next chunk, or undefined when none is queued. */
  private take(): Uint8Array | undefined {
    if (this.inboxHead >= this.inbox.length) return undefined;
    const c = this.inbox[this.inboxHead];
    this.inbox[this.inboxHead++] = undefined;
    if (this.inboxHead === this.inbox.length) {
      this.inbox.length = 0;
      this.inboxHead = 0;
    } else if (this.inboxHead >= 1024 && this.inboxHead * 2 >= this.inbox.length) {
      // drop the taken half at once: amortised O(1) a chunk
      this.inbox = this.inbox.slice(this.inboxHead);
      this.inboxHead = 0;
    }
    if (c === this.tailView) this.tailView = undefined;
    return c;
  }

  /** More send credit. */
  grant(n: number): void {
    this.credit += n;
    if (this.credit > 2 ** 40) throw new LaneError('LANE_PROTOCOL', `stream ${this.id} granted an absurd window`);
    this.flushPending();
  }

  remoteClose(): void {
    if (this.remoteClosed) throw new LaneError('LANE_PROTOCOL', `stream ${this.id} closed twice`);
    this.remoteClosed = true;
    this.wake();
    if (this.writeClosed) this.finish(undefined);
  }

  /** The other end reset the stream, or the lane died. */
  die(err: Error): void {
    if (this.finished) return;
    this.error ??= err;
    this.pendingOut.length = 0;
    this.inbox.length = 0;
    this.inboxHead = 0;
    this.tailView = undefined;
    this.reserve = undefined;
    this.wake();
    this.finish(this.error);
  }

  /** The socket drained: pending data may go. */
  wakeDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  private finish(err: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    for (const w of this.drainWaiters.splice(0)) (err === undefined ? w.resolve() : w.reject(err));
    this.host.forget(this);
    for (const l of this.closeListeners.splice(0)) l(err === undefined ? {} : { error: err });
  }

  private wake(): void {
    const w = this.readWaiter;
    this.readWaiter = undefined;
    w?.();
    if (this.error !== undefined) for (const d of this.drainWaiters.splice(0)) d.reject(this.error);
  }

  private wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      this.drainWaiters.push(w);
      if (signal !== undefined) {
        const onAbort = (): void => {
          const i = this.drainWaiters.indexOf(w);
          if (i >= 0) this.drainWaiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const done = (): void => signal.removeEventListener('abort', onAbort);
        w.resolve = () => {
          done();
          resolve();
        };
        w.reject = (e) => {
          done();
          reject(e);
        };
      }
    });
  }

  private flushPending(): void {
    while (this.pendingOut.length > 0 && this.credit > 0) {
      const d = this.pendingOut[0]!;
      if (d.byteLength <= this.credit) {
        this.pendingOut.shift();
        this.credit -= d.byteLength;
        this.host.sendData(this.id, d);
      } else {
        this.host.sendData(this.id, d.subarray(0, this.credit));
        this.pendingOut[0] = d.subarray(this.credit);
        this.credit = 0;
      }
    }
    if (this.pendingOut.length === 0) this.wakeDrain();
  }

  /** Grants more once the reader took half a window: the other end never waits on a reader that keeps up. */
  private maybeGrant(): void {
    if (this.remoteClosed || this.error !== undefined) return;
    const left = this.allowed - this.consumed;
    if (left > this.window / 2) return;
    const g = this.consumed + this.window - this.allowed;
    this.allowed += g;
    this.host.sendWindow(this.id, g);
  }
}
