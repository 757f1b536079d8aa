/**
 * One direct data lane: a TCP socket between two nodes that already hold a libp2p connection, carrying many
 * streams (./stream.ts) in sealed frames (./aead.ts, ./codec.ts). Made and owned by ./manager.ts after the key
 * exchange; here only the running lane: writing (sub-frames of one turn of the event loop coalesced into one
 * sealed frame, large data cut into pieces), reading (a frame's tag checked before a byte of it is parsed), stream
 * opens and their quotas, and closing (every stream reset with the lane's error).
 */
import type { Socket } from 'node:net';
import type { AbortOptions } from '../../util/abort.js';
import type { DuplexStream, ProtocolHandler, StreamInfo } from '../types.js';
import { SEAL_PIECE_BYTES, givePiece, type Opener, type Sealer } from './aead.js';
import {
  HELLO_MAGIC,
  MAX_PROTOCOL_BYTES,
  MAX_REASON_BYTES,
  SUB_CLOSE,
  SUB_DATA,
  SUB_HEADER_BYTES,
  SUB_HELLO,
  SUB_OPEN,
  SUB_OPEN_FAIL,
  SUB_OPEN_OK,
  SUB_RESET,
  SUB_WINDOW,
  forEachSubFrame,
  subFrame,
  subHeader,
} from './codec.js';
import { LaneError, isLaneViolation } from './errors.js';
import type { SocketReads } from './reads.js';
import { PLACE_HEAD_BYTES, SealedFrameReader, type FramePlacer } from './reader.js';
import { LaneStream, LaneStreamResetError, type StreamHost } from './stream.js';

export interface LaneLimits {
  /** Largest plaintext of one sealed frame; DATA is cut into pieces that fit. */
  maxFramePlainBytes: number;
  /** Per-stream receive window. */
  windowBytes: number;
  /** Streams open at once on one lane (both directions). */
  maxStreams: number;
  /** Unsent bytes the socket may hold before stream writes wait for it to drain. */
  writeHighWaterBytes: number;
  /** Unsent bytes past which the other end is taken to have stopped reading: the lane closes. */
  maxWriteBufferBytes: number;
  /** A stream open not answered within this long fails (the caller falls back). */
  openMs: number;
  /** A lane with no stream and no traffic for this long closes. */
  idleMs: number;
  /**
   * A sealed frame whose length has arrived must arrive whole within this long plus one second per frameBytesPerSec
   * of it, or the lane closes (LANE_TRUNCATED): the reader holds the frame's plaintext (up to maxFramePlainBytes) from
   * its length on, and a peer that sends a length and then nothing, or a byte now and then, would otherwise pin it for
   * as long as one of its streams stays open (review, session 23: 4 MiB per lane, 1 GiB over 256 lanes).
   */
  frameMs: number;
  /** The slowest sender the frame deadline allows for (bytes a second). */
  frameBytesPerSec: number;
}

/** Whether a frame in progress since `since` (ms), of `bytes`, has overrun its deadline at `now`. */
export function frameOverdue(frame: { since: number; bytes: number } | undefined, now: number, limits: Pick<LaneLimits, 'frameMs' | 'frameBytesPerSec'>): boolean {
  return frame !== undefined && now - frame.since > limits.frameMs + (frame.bytes * 1000) / limits.frameBytesPerSec;
}

export interface LaneHandlerEntry {
  handler: ProtocolHandler;
  /** Inbound streams of this protocol at once on one lane (the libp2p handler's maxInboundStreams). */
  maxInbound: number;
}

export interface LaneInit {
  socket: Socket;
  role: 'client' | 'server';
  peer: string;
  remoteAddr: string;
  sealer: Sealer;
  opener: Opener;
  limits: LaneLimits;
  handlerOf(protocol: string): LaneHandlerEntry | undefined;
  onClose(lane: Lane, err: Error): void;
  /**
   * Where the socket's bytes come from (./reads.ts: the shared read buffer, chunks borrowed); without it the socket's
   * 'data' events (chunks owned).
   */
  reads?: SocketReads;
  /** Bytes the socket delivered before the lane took it over (after the server read the hello); the lane's own. */
  leftover?: Buffer;
  /** The server already opened and checked the client's hello (./manager.ts) before making the lane. */
  helloSeen?: boolean;
  /**
   * Large DATA decrypted straight into the buffer a stream's reader reserved for it (./reader.ts FramePlacer,
   * ./stream.ts `receiveInto`). Default: where the socket reads into the shared buffer (`reads.reused`). With Node's
   * fresh 64 KiB reads the garbage of the reads drives a scavenge every few MiB, a reserved 16 MiB body lives through
   * them into the old generation, and the mark-compacts that free it cost more than the join it saves: a 16 MiB call
   * one at a time took 32 against 10-12 ms of server CPU; with the shared buffer 7 against 8-12 ms (docs/LIMITS.md
   * "Session 27: big calls on the lane").
   */
  place?: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** Sub-frames queued together fill one sealed frame up to this many bytes; the next one starts another frame. */
const COALESCE_BYTES = 256 * 1024;

/** A sub-frame this small joins a frame past COALESCE_BYTES (CLOSE, WINDOW, OPEN_OK, a short RESET). */
const TRAILER_BYTES = 64;

/** A sealed frame this small in several buffers is joined into one write. */
const JOIN_BELOW = 64 * 1024;

export class Lane implements StreamHost {
  readonly peer: string;
  readonly role: 'client' | 'server';
  readonly remoteAddr: string;
  /** The lane's socket (tests kill it to see the fallback). */
  readonly socket: Socket;
  private readonly sealer: Sealer;
  private readonly limits: LaneLimits;
  private readonly reader: SealedFrameReader;
  private readonly streams = new Map<number, LaneStream>();
  private readonly opens = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
  private readonly inboundByProtocol = new Map<string, number>();
  private nextId: number;
  /** Highest stream id the other end opened (ids only grow: an old id is a finished stream). */
  private lastRemoteId = 0;
  /** Queued sub-frames, each its parts (a sub-frame never straddles two sealed frames). */
  private out: Uint8Array[][] = [];
  private outBytes = 0;
  private flushQueued = false;
  private helloSeen = false;
  private closedWith: Error | undefined;
  private readonly readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private drainWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private lastActive = Date.now();
  private readonly idleTimer: NodeJS.Timeout;
  /** Whether large DATA is decrypted into its stream reader's place (`LaneInit.place`). */
  readonly placing: boolean;
  /** Counters (tests, the bench). */
  readonly stats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, streamsOut: 0, streamsIn: 0, windowsOut: 0, bytesPlaced: 0 };

  constructor(private readonly init: LaneInit) {
    this.socket = init.socket;
    this.peer = init.peer;
    this.role = init.role;
    this.remoteAddr = init.remoteAddr;
    this.sealer = init.sealer;
    this.limits = init.limits;
    this.nextId = init.role === 'client' ? 1 : 2;
    this.helloSeen = init.helloSeen ?? false;
    this.placing = init.place ?? init.reads?.reused === true;
    this.reader = new SealedFrameReader(init.opener, init.limits.maxFramePlainBytes + 16, this.placing ? this.placer : undefined);
    this.socket.setNoDelay(true);
    if (init.reads !== undefined) init.reads.attach((chunk, owned) => this.onData(chunk, owned));
    else this.socket.on('data', (chunk: Buffer) => this.onData(chunk, true));
    this.socket.on('drain', () => this.onDrained());
    this.socket.on('error', (e) => this.close(new LaneError('LANE_CLOSED', `lane socket failed: ${e.message}`, { peer: this.peer }, e)));
    this.socket.on('close', () => this.close(new LaneError(this.reader.midFrame ? 'LANE_TRUNCATED' : 'LANE_CLOSED', `lane to ${this.peer} closed by the other end`, { peer: this.peer })));
    this.idleTimer = setInterval(() => {
      const now = Date.now();
      const frame = this.reader.inProgress;
      if (frameOverdue(frame, now, this.limits)) {
        this.close(new LaneError('LANE_TRUNCATED', `lane to ${this.peer}: a frame of ${frame!.bytes} bytes begun ${now - frame!.since} ms ago is not complete`, { peer: this.peer }));
      } else if (this.streams.size === 0 && this.opens.size === 0 && now - this.lastActive > this.limits.idleMs) this.close(new LaneError('LANE_CLOSED', 'lane idle'));
    }, Math.max(50, Math.floor(Math.min(init.limits.idleMs, init.limits.frameMs) / 2)));
    this.idleTimer.unref();
    // our hello is the first frame each way; the server sends it once it accepted the client's
    this.queue(subFrame(SUB_HELLO, 0, HELLO_MAGIC));
    if (init.leftover !== undefined && init.leftover.length > 0) queueMicrotask(() => this.onData(init.leftover!, true));
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** True once the other end's hello authenticated. */
  get ready(): boolean {
    return this.helloSeen && this.closedWith === undefined;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Resolves once the other end's hello arrived; rejects when the lane closes first. */
  whenReady(signal?: AbortSignal): Promise<void> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    if (this.helloSeen) return Promise.resolve();
    return waitIn(this.readyWaiters, signal);
  }

  /** Opens a stream for `protocol`; resolves once the other end accepted it. Throws LaneError or the signal's reason. */
  async openStream(protocol: string, opts: AbortOptions = {}): Promise<DuplexStream> {
    if (this.closedWith !== undefined) throw this.closedWith;
    if (!this.helloSeen) throw new LaneError('LANE_CLOSED', 'lane not ready');
    const p = enc.encode(protocol);
    if (p.byteLength > MAX_PROTOCOL_BYTES) throw new LaneError('LANE_PROTOCOL', `protocol id of ${p.byteLength} bytes`);
    if (this.streams.size >= this.limits.maxStreams) throw new LaneError('LANE_QUOTA', `${this.streams.size} streams open on the lane`);
    if (this.nextId >= 2 ** 32 - 2) throw new LaneError('LANE_CLOSED', 'lane used all its stream ids');
    const id = this.nextId;
    this.nextId += 2;
    const s = new LaneStream(id, protocol, this, this.limits.windowBytes);
    this.streams.set(id, s);
    this.queue(subFrame(SUB_OPEN, id, p));
    const t = setTimeout(() => this.opens.get(id)?.reject(new LaneError('LANE_CLOSED', `stream open not answered in ${this.limits.openMs} ms`)), this.limits.openMs);
    const onAbort = (): void => this.opens.get(id)?.reject(opts.signal!.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        this.opens.set(id, { resolve, reject });
        if (opts.signal?.aborted === true) onAbort();
      });
    } catch (e) {
      s.abort(e instanceof Error ? e : new Error(String(e)));
      throw e;
    } finally {
      clearTimeout(t);
      this.opens.delete(id);
      opts.signal?.removeEventListener('abort', onAbort);
    }
    this.stats.streamsOut++;
    return s;
  }

  /** Closes the lane: every stream and pending open fails with `err`. Idempotent. */
  close(err: Error = new LaneError('LANE_CLOSED', 'lane closed')): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = err;
    clearInterval(this.idleTimer);
    const reset = new LaneStreamResetError(`lane to ${this.peer} closed: ${err.message}`, { cause: err });
    for (const o of [...this.opens.values()]) o.reject(err);
    for (const s of [...this.streams.values()]) s.die(reset);
    this.streams.clear();
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
    for (const w of this.drainWaiters.splice(0)) w.reject(err);
    this.out = [];
    this.socket.destroy();
    this.init.onClose(this, err);
  }

  // ── StreamHost ──

  sendData(stream: number, data: Uint8Array): void {
    const piece = this.limits.maxFramePlainBytes - SUB_HEADER_BYTES;
    for (let o = 0; o < data.byteLength; o += piece) {
      const d = data.subarray(o, Math.min(data.byteLength, o + piece));
      this.queue(subHeader(SUB_DATA, stream, d.byteLength), d);
    }
  }

  sendDataParts(stream: number, parts: readonly Uint8Array[], total: number): void {
    if (total > this.maxDataPartsBytes) throw new RangeError(`DATA of ${total} bytes past the frame cap`);
    this.queue(subHeader(SUB_DATA, stream, total), ...parts);
  }

  get maxDataPartsBytes(): number {
    return this.limits.maxFramePlainBytes - SUB_HEADER_BYTES;
  }

  sendWindow(stream: number, grant: number): void {
    this.stats.windowsOut++;
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(grant);
    this.queue(subFrame(SUB_WINDOW, stream, b));
  }

  sendClose(stream: number): void {
    this.queue(subFrame(SUB_CLOSE, stream));
  }

  sendReset(stream: number, reason: string): void {
    if (this.closedWith !== undefined) return;
    this.queue(subFrame(SUB_RESET, stream, enc.encode(reason).subarray(0, MAX_REASON_BYTES)));
  }

  congested(): boolean {
    return this.socket.writableLength + this.outBytes > this.limits.writeHighWaterBytes;
  }

  writable(signal?: AbortSignal): Promise<void> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    if (!this.congested()) return Promise.resolve();
    return waitIn(this.drainWaiters, signal);
  }

  forget(stream: LaneStream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    if (stream.id % 2 !== this.nextId % 2) {
      const n = (this.inboundByProtocol.get(stream.protocol) ?? 1) - 1;
      if (n <= 0) this.inboundByProtocol.delete(stream.protocol);
      else this.inboundByProtocol.set(stream.protocol, n);
    }
    this.lastActive = Date.now();
  }

  // ── writing ──

  private queue(...parts: Uint8Array[]): void {
    if (this.closedWith !== undefined) return;
    this.out.push(parts);
    for (const p of parts) this.outBytes += p.byteLength;
    if (!this.flushQueued) {
      this.flushQueued = true;
      // every sub-frame queued in this turn of the event loop goes in one sealed frame (one cipher call, one write)
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.closedWith !== undefined) return;
    try {
      const subs = this.out;
      this.out = [];
      this.outBytes = 0;
      let group: Uint8Array[] = [];
      let n = 0;
      for (const parts of subs) {
        let k = 0;
        for (const p of parts) k += p.byteLength;
        // a sealed frame holds sub-frames up to the cap; once it holds COALESCE_BYTES the next one starts a new frame,
        // so that a bulk DATA (its own frame) is not held back behind another one, nor the far end's reader on it. A
        // small sub-frame still joins (it holds nothing back): a request's CLOSE rides with its DATA, so the far end
        // sees the end of the stream with the data and sends no WINDOW for it (session 24).
        if ((n + k > this.limits.maxFramePlainBytes || (n >= COALESCE_BYTES && k > TRAILER_BYTES)) && group.length > 0) {
          this.writeFrame(group, n);
          group = [];
          n = 0;
        }
        for (const p of parts) group.push(p);
        n += k;
      }
      if (group.length > 0) this.writeFrame(group, n);
      if (this.socket.writableLength > this.limits.maxWriteBufferBytes) {
        this.close(new LaneError('LANE_CLOSED', `the other end stopped reading (${this.socket.writableLength} bytes unsent)`, { peer: this.peer }));
        return;
      }
      // A writer that found the lane congested counted the bytes queued for this flush; when the socket took them at
      // once it emits no 'drain' (write() returned true), so the waiters are woken here. Seen once sealing got fast
      // enough that a 1.2 MB request's frames all went into the kernel's buffer in one turn.
      if (this.drainWaiters.length > 0 && !this.congested()) this.onDrained();
    } catch (e) {
      this.close(e instanceof LaneError ? e : new LaneError('LANE_CLOSED', `lane write failed: ${(e as Error).message}`, undefined, e));
    }
  }

  private writeFrame(group: Uint8Array[], n: number): void {
    this.stats.framesOut++;
    this.stats.bytesOut += n;
    this.lastActive = Date.now();
    if (this.sealer.native) {
      // A large frame's buffers (≤ 256 KiB each) go to the kernel in one writev (corked) rather than one write each
      // as sealed: one syscall and one wake-up of the far end instead of 4-5 for a 1 MiB frame. Session 23, 1 MiB
      // lane calls 4 in flight, two in-process A/B runs (load 7-7.6): CPU per call client 783 -> 703 and 753 -> 704
      // us, server 820 -> 859 and 820 -> 781; the far end starting on the first piece early bought nothing measurable.
      if (n < JOIN_BELOW) {
        this.sealer.sealEach(group, this.writeOut);
        return;
      }
      this.socket.cork();
      this.sealer.sealEach(group, this.writeOut);
      this.socket.uncork();
      return;
    }
    const sealed = this.sealer.seal(group);
    if (n < JOIN_BELOW) {
      this.socket.write(Buffer.concat(sealed));
      return;
    }
    this.socket.cork();
    for (const b of sealed) this.socket.write(b);
    this.socket.uncork();
  }

  private readonly writeOut = (b: Buffer): void => {
    // a full piece goes back to the sealing pool once the socket has written it (no longer referred to)
    if (b.length === SEAL_PIECE_BYTES) this.socket.write(b, (e) => e == null && givePiece(b));
    else this.socket.write(b);
  };

  private onDrained(): void {
    if (this.congested()) return;
    for (const w of this.drainWaiters.splice(0)) w.resolve();
    for (const s of this.streams.values()) s.wakeDrain();
  }

  // ── reading ──

  private onData(chunk: Buffer, owned: boolean): void {
    if (this.closedWith !== undefined) return;
    try {
      // each plaintext only after its tag verified (LANE_AUTH first), before anything of it is parsed; a borrowed
      // chunk (the shared read buffer) is done with when push returns: the reader keeps no view of it
      this.reader.push(chunk, this.onPlain, owned);
    } catch (e) {
      if (isLaneViolation(e)) this.close(e as LaneError);
      else this.close(new LaneError('LANE_CLOSED', `lane read failed: ${(e as Error).message}`, undefined, e));
    }
  }

  private readonly onPlain = (plain: Buffer): boolean => {
    this.stats.framesIn++;
    this.stats.bytesIn += plain.length;
    this.lastActive = Date.now();
    forEachSubFrame(plain, this.onSubFrame);
    return this.closedWith === undefined;
  };

  private readonly onSubFrame = (type: number, id: number, payload: Buffer): void => this.onSub(type, id, payload);

  /**
   * Large DATA straight into the place its stream's reader reserved (./reader.ts FramePlacer, ./stream.ts
   * `receiveInto`): the frame must be that one DATA (its payload is the rest of the frame), for a stream of this
   * lane. `place` reads the header before the frame authenticated, only to choose the place; `placed` handles the
   * DATA as `onSub` does, once the frame authenticated.
   */
  private readonly placer: FramePlacer = {
    place: (head, rest) => {
      if (!this.helloSeen || this.closedWith !== undefined || head[0] !== SUB_DATA || head.readUInt32BE(5) !== rest) return undefined;
      return this.streams.get(head.readUInt32BE(1))?.placeFor(rest);
    },
    placed: (head, rest) => {
      this.stats.framesIn++;
      this.stats.bytesIn += PLACE_HEAD_BYTES + rest.byteLength;
      this.stats.bytesPlaced += rest.byteLength;
      this.lastActive = Date.now();
      this.streamOf(SUB_DATA, head.readUInt32BE(1))?.pushData(rest);
      return this.closedWith === undefined;
    },
  };

  private onSub(type: number, id: number, payload: Buffer): void {
    if (!this.helloSeen) {
      if (type !== SUB_HELLO || id !== 0 || !payload.equals(HELLO_MAGIC)) throw new LaneError('LANE_HANDSHAKE', 'the first sub-frame is not the hello');
      this.helloSeen = true;
      for (const w of this.readyWaiters.splice(0)) w.resolve();
      return;
    }
    switch (type) {
      case SUB_HELLO:
        throw new LaneError('LANE_PROTOCOL', 'a second hello');
      case SUB_OPEN:
        return this.onOpen(id, payload);
      case SUB_OPEN_OK:
      case SUB_OPEN_FAIL: {
        const o = this.opens.get(id);
        if (o === undefined) {
          if (this.isOurs(id) && id < this.nextId) return; // an open we gave up on (its RESET crossed this answer)
          throw new LaneError('LANE_PROTOCOL', `answer to stream ${id}, which we never opened`);
        }
        if (type === SUB_OPEN_OK) o.resolve();
        else o.reject(new LaneError('LANE_UNAVAILABLE', `stream refused: ${reason(payload)}`, { reason: reason(payload) }));
        return;
      }
      case SUB_DATA:
      case SUB_CLOSE:
      case SUB_RESET:
      case SUB_WINDOW: {
        const s = this.streamOf(type, id);
        if (s === undefined) return;
        if (type === SUB_DATA) s.pushData(payload);
        else if (type === SUB_CLOSE) s.remoteClose();
        else if (type === SUB_RESET) s.die(new LaneStreamResetError(`stream reset by the other end: ${reason(payload)}`));
        else {
          if (payload.length !== 4) throw new LaneError('LANE_MALFORMED', `window of ${payload.length} bytes`);
          s.grant(payload.readUInt32BE(0));
        }
        return;
      }
      default:
        throw new LaneError('LANE_MALFORMED', `sub-frame type ${type}`);
    }
  }

  /** The stream a sub-frame of `type` is for; undefined when it ended here. Throws LANE_PROTOCOL when it never existed. */
  private streamOf(type: number, id: number): LaneStream | undefined {
    const s = this.streams.get(id);
    if (s !== undefined) return s;
    // a stream that ended here (its last frames crossed ours) is fine; one that never existed is not
    if (this.isOurs(id) ? id < this.nextId : id <= this.lastRemoteId) return undefined;
    throw new LaneError('LANE_PROTOCOL', `sub-frame ${type} for stream ${id}, which does not exist`);
  }

  private isOurs(id: number): boolean {
    return id % 2 === this.nextId % 2;
  }

  private onOpen(id: number, payload: Buffer): void {
    if (id === 0 || this.isOurs(id) || id <= this.lastRemoteId) throw new LaneError('LANE_PROTOCOL', `open of stream ${id} (not a new id of the other end)`);
    this.lastRemoteId = id;
    if (payload.length > MAX_PROTOCOL_BYTES) throw new LaneError('LANE_MALFORMED', `protocol id of ${payload.length} bytes`);
    let protocol: string;
    try {
      protocol = dec.decode(payload);
    } catch {
      throw new LaneError('LANE_MALFORMED', 'protocol id is not UTF-8');
    }
    const entry = this.init.handlerOf(protocol);
    const fail = (why: string): void => this.queue(subFrame(SUB_OPEN_FAIL, id, enc.encode(why)));
    if (entry === undefined) return fail('unsupported');
    const mine = this.inboundByProtocol.get(protocol) ?? 0;
    if (this.streams.size >= this.limits.maxStreams || mine >= entry.maxInbound) return fail('quota');
    this.inboundByProtocol.set(protocol, mine + 1);
    const s = new LaneStream(id, protocol, this, this.limits.windowBytes);
    this.streams.set(id, s);
    this.stats.streamsIn++;
    this.queue(subFrame(SUB_OPEN_OK, id));
    const info: StreamInfo = { peer: this.peer, limited: false, remoteAddr: this.remoteAddr };
    // the handler runs on its own; a failure resets its stream, never the lane
    void (async () => {
      try {
        await entry.handler(s, info);
      } catch (e) {
        s.abort(e instanceof Error ? e : new Error(String(e)));
      }
    })();
  }
}

function reason(payload: Buffer): string {
  return payload.subarray(0, MAX_REASON_BYTES).toString('utf8').replace(/[^\x20-\x7e]/g, '?');
}

type Waiter = { resolve: () => void; reject: (e: unknown) => void };

/**
 * A waiter in `list`, settled by whoever empties the list, or by `signal`'s abort (it then leaves the list). The abort
 * listener goes when the wait settles either way: a long-lived signal (a node's, a long call's) that waits on a
 * congested lane again and again gathers no listener per wait (test/attacks/lane-inplace).
 */
function waitIn(list: Waiter[], signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal === undefined) {
      list.push({ resolve, reject });
      return;
    }
    if (signal.aborted) return reject(signal.reason);
    const w: Waiter = {
      resolve: () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      reject: (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    };
    const onAbort = (): void => {
      const i = list.indexOf(w);
      if (i >= 0) list.splice(i, 1);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    list.push(w);
  });
}
