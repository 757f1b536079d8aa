/**
 * A lane peer that holds the keys (a connected peer, or whoever sits on its socket) against the lane's reading and
 * writing: frames cut at every byte boundary (so that a frame, a sub-frame header or a DATA payload crosses socket
 * reads), a forged frame right after an honest one, huge or tiny frame lengths, floods of empty DATA; and the
 * writer's sealed frames while the socket cannot take them (a paused reader: frames queue in Node's write buffer)
 * or dies mid-write. The lane decrypts a frame in the socket's own read buffers and hands DATA to readers as views
 * of them, and (session 21) may reuse a large sealed frame's buffer once the socket's write callback ran: no byte a
 * reader was handed may change afterwards, no byte of a forged frame may reach a reader, and no byte on the wire
 * may be overwritten before the kernel has it (the far end would see LANE_AUTH, or other data).
 *
 * Only public behaviour: a Lane over a stand-in socket whose 'data' chunks the test cuts exactly, or over a real
 * loopback TCP pair, with our own Sealer/Opener on the other side.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, getEventListeners } from 'node:events';
import type { Socket } from 'node:net';
import { socketPair } from '../utils/socket-pair.js';
import { describe, it } from 'node:test';
import { Opener, Sealer } from '../../src/p2p/lane/aead.js';
import { HELLO_MAGIC, SUB_CLOSE, SUB_DATA, SUB_HELLO, SUB_OPEN, subFrame } from '../../src/p2p/lane/codec.js';
import { LaneError } from '../../src/p2p/lane/errors.js';
import { Lane, type LaneHandlerEntry, type LaneLimits } from '../../src/p2p/lane/lane.js';
import { LANE_DEFAULTS } from '../../src/p2p/lane/manager.js';
import type { DuplexStream } from '../../src/p2p/types.js';
import { waitFor } from '../../src/util/abort.js';
import { tally } from './tally.js';

const key = (): Buffer => randomBytes(32);
const codeOf = (e: unknown): string => (e instanceof LaneError ? e.code : String(e));
/** A chunk as a reader gets it (a Uint8Array, or a list of views with subarray()). */
const viewOf = (c: Uint8Array | { subarray(): Uint8Array }): Uint8Array => (c instanceof Uint8Array ? c : c.subarray());

/** What a Lane needs of its socket, with the 'data' chunks delivered by the test, exactly as cut. */
class StandInSocket extends EventEmitter {
  readonly written: Buffer[] = [];
  writableLength = 0;
  destroyed = false;
  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(b: Uint8Array, cb?: (e?: Error | null) => void): boolean {
    this.written.push(Buffer.from(b));
    cb?.();
    return true;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      queueMicrotask(() => this.emit('close'));
    }
    return this;
  }
  /** One socket read: a chunk in memory of its own (as Node gives each read its own ArrayBuffer). */
  deliver(bytes: Uint8Array): void {
    const b = Buffer.allocUnsafeSlow(bytes.byteLength);
    b.set(bytes);
    this.emit('data', b);
  }
}

/** Everything a handler got, chunk by chunk, as the views it was handed, and a copy of each taken on receipt. */
interface Got {
  protocol: string;
  views: Uint8Array[];
  copies: Buffer[];
  ended: boolean;
  error: unknown;
}

interface ServerLane {
  lane: Lane;
  sock: StandInSocket;
  got: Got[];
  closed: Promise<Error>;
  /** Seals the client's frames (the other direction's key). */
  sealer: Sealer;
}

const SMALL: LaneLimits = { ...LANE_DEFAULTS, maxFramePlainBytes: 4096, windowBytes: 64 * 1024, openMs: 5000 };

/** A server lane on a stand-in socket; '/collect' handlers keep every view they are handed, '/sink' never reads. */
function serverLane(limits: LaneLimits = SMALL): ServerLane {
  const c2s = key();
  const sock = new StandInSocket();
  const got: Got[] = [];
  const collect = async (s: DuplexStream): Promise<void> => {
    const g: Got = { protocol: '/collect', views: [], copies: [], ended: false, error: undefined };
    got.push(g);
    try {
      for await (const c of s) {
        const v = viewOf(c);
        g.views.push(v);
        g.copies.push(Buffer.from(v));
      }
      g.ended = true;
    } catch (e) {
      g.error = e;
    }
  };
  const sink = (): void => {
    got.push({ protocol: '/sink', views: [], copies: [], ended: false, error: undefined });
  };
  const handlerOf = (p: string): LaneHandlerEntry | undefined =>
    p === '/collect' ? { handler: collect, maxInbound: 16 } : p === '/sink' ? { handler: sink, maxInbound: 16 } : undefined;
  let onClose!: (e: Error) => void;
  const closed = new Promise<Error>((r) => (onClose = r));
  const lane = new Lane({
    socket: sock as unknown as Socket,
    role: 'server',
    peer: 'client',
    remoteAddr: 'stand-in',
    sealer: new Sealer(key()),
    opener: new Opener(c2s),
    limits,
    handlerOf,
    onClose: (_l, e) => onClose(e),
  });
  return { lane, sock, got, closed, sealer: new Sealer(c2s) };
}

const wireOf = (frames: Buffer[][]): Buffer => Buffer.concat(frames.flat());

/** Sealed client frames: hello; OPEN 1 + DATA 1 (a1); DATA 1 (a2) + OPEN 3 + DATA 3 (b) + CLOSE 1 + CLOSE 3. */
function honestWire(sealer: Sealer, a1: Buffer, a2: Buffer, b: Buffer): { frames: Buffer[]; wire: Buffer } {
  const frames = [
    sealer.seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC)]),
    sealer.seal([subFrame(SUB_OPEN, 1, Buffer.from('/collect')), subFrame(SUB_DATA, 1, a1)]),
    sealer.seal([subFrame(SUB_DATA, 1, a2), subFrame(SUB_OPEN, 3, Buffer.from('/collect')), subFrame(SUB_DATA, 3, b), subFrame(SUB_CLOSE, 1), subFrame(SUB_CLOSE, 3)]),
  ].map((f) => Buffer.concat(f));
  return { frames, wire: wireOf([frames]) };
}

/** The cut points as chunks of `wire`. */
function cut(wire: Buffer, at: number[]): Buffer[] {
  const xs = [0, ...at.filter((a) => a > 0 && a < wire.length).sort((p, q) => p - q), wire.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < xs.length; i++) if (xs[i + 1]! > xs[i]!) out.push(wire.subarray(xs[i], xs[i + 1]));
  return out;
}

/** Every view a reader was handed still holds the bytes it held when handed (nothing decrypted or zeroed over it). */
function assertViewsIntact(got: Got[], what: string): void {
  for (const g of got) {
    g.views.forEach((v, i) => assert.ok(Buffer.from(v).equals(g.copies[i]!), `${what}: a view handed to the reader changed afterwards (chunk ${i})`));
  }
}

/** One turn of the event loop (a socket's next read comes no sooner). */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Lets the handlers' async loops take what the lane pushed (bounded: a condition, not a sleep). */
async function settle(cond: () => boolean, what: string): Promise<void> {
  await waitFor(cond, { timeoutMs: 5000, intervalMs: 1, what });
}

describe('attack: a keyed lane peer against in-place reads and reused write buffers', () => {
  it('an honest exchange cut at every byte boundary (and one byte per read) gives every reader exactly its bytes, never changed afterwards', async () => {
    const a1 = randomBytes(900);
    const a2 = randomBytes(1300);
    const b = randomBytes(700);
    let runs = 0;
    const check = async (cuts: (wire: Buffer) => number[], what: string): Promise<void> => {
      const s = serverLane();
      const { wire } = honestWire(s.sealer, a1, a2, b);
      // one read per turn of the event loop, as a socket delivers them: readers take what they were handed between
      for (const c of cut(wire, cuts(wire))) {
        s.sock.deliver(c);
        await turn();
      }
      await settle(() => s.got.length === 2 && s.got.every((g) => g.ended || g.error !== undefined), `${what}: both streams read to their end`);
      assert.equal(s.lane.closed, false, `${what}: the lane closed`);
      assert.deepEqual(s.got.map((g) => g.error), [undefined, undefined], what);
      assert.ok(Buffer.concat(s.got[0]!.views).equals(Buffer.concat([a1, a2])), `${what}: stream 1's bytes`);
      assert.ok(Buffer.concat(s.got[1]!.views).equals(b), `${what}: stream 3's bytes`);
      assertViewsIntact(s.got, what);
      s.lane.close();
      runs++;
    };
    const probe = serverLane();
    const len = honestWire(probe.sealer, a1, a2, b).wire.length;
    probe.lane.close();
    // two reads, cut at every byte
    for (let k = 1; k < len; k++) await check(() => [k], `cut at ${k}`);
    // one byte per read
    await check((w) => Array.from({ length: w.length - 1 }, (_, i) => i + 1), 'one byte per read');
    // three and five reads at random places
    for (let r = 0; r < 200; r++) {
      const at = Array.from({ length: 2 + (r % 4) }, () => 1 + Math.floor(Math.random() * (len - 1)));
      await check(() => at, `cut at ${at.join(',')}`);
    }
    tally('lane: honest frames cut at every byte', runs, 0);
  });

  it('a forged frame right after an honest one, cut anywhere: LANE_AUTH, none of its bytes reach a reader, the honest bytes stay as handed', async () => {
    const a1 = randomBytes(900);
    const forgedData = Buffer.alloc(1300, 0xab);
    let runs = 0;
    let leaked = 0;
    let held = 0;
    const probe = serverLane();
    const probeWire = honestWire(probe.sealer, a1, forgedData, Buffer.alloc(10));
    probe.lane.close();
    const f0 = probeWire.frames[0]!.length + probeWire.frames[1]!.length;
    const len = probeWire.wire.length;
    // a flipped byte in: the length, the ciphertext (its start, a sub-frame header, the DATA), the tag
    for (const flip of [f0 + 1, f0 + 4, f0 + 13, f0 + 600, len - 9]) {
      for (let k = 1; k < len; k += 7) {
        const s = serverLane();
        const { wire } = honestWire(s.sealer, a1, forgedData, Buffer.alloc(10));
        const bad = Buffer.from(wire);
        bad[flip]! ^= 0x01;
        // one read per turn: the reader holds the honest frame's views when the forged frame is refused
        for (const c of cut(bad, [k, f0 + ((k * 13) % (len - f0))])) {
          s.sock.deliver(c);
          await turn();
        }
        const err = await s.closed;
        // a flipped length byte (f0 + 1) makes the frame too long: refused as soon as its length is in
        const code = codeOf(err);
        assert.ok(['LANE_AUTH', 'LANE_OVERSIZED'].includes(code), `flip ${flip} cut ${k}: closed with ${code}`);
        await settle(() => s.got.every((g) => g.ended || g.error !== undefined), `flip ${flip} cut ${k}: readers ended`);
        // stream 3 (opened only in the forged frame) never reached a handler; stream 1 got a prefix of a1 at most
        assert.ok(s.got.length <= 1, `flip ${flip} cut ${k}: a stream of the forged frame was opened`);
        const all = Buffer.concat(s.got.flatMap((g) => g.views));
        if (!a1.subarray(0, all.length).equals(all)) leaked++;
        assert.ok(a1.subarray(0, all.length).equals(all), `flip ${flip} cut ${k}: a reader got bytes that are not the honest frame's`);
        assertViewsIntact(s.got, `flip ${flip} cut ${k}`);
        if (all.length > 0) held++;
        runs++;
      }
    }
    assert.ok(held > runs / 4, `the reader held honest bytes when the forged frame came in only ${held} of ${runs} runs`);
    tally('lane: forged frame after an honest one', runs, leaked);
  });

  it('a frame length over the cap, or too short for a tag, closes the lane before any of its body is kept', async () => {
    let runs = 0;
    for (const n of [0xffffffff, 0x7fffffff, SMALL.maxFramePlainBytes + 16 + 1, 15, 0]) {
      for (const split of [false, true]) {
        const s = serverLane();
        s.sock.deliver(Buffer.concat(s.sealer.seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC)])));
        const len = Buffer.alloc(4);
        len.writeUInt32BE(n >>> 0);
        if (split) for (const b of len) s.sock.deliver(Buffer.from([b]));
        else s.sock.deliver(len);
        const err = await s.closed;
        assert.equal(codeOf(err), n < 16 ? 'LANE_MALFORMED' : 'LANE_OVERSIZED', `length ${n}`);
        assert.ok(s.sock.destroyed, 'the socket was not closed');
        runs++;
      }
    }
    tally('lane: huge and tiny frame lengths', runs, 0);
  });

  it(
    'a flood of empty DATA sub-frames to a stream that does not read costs bounded memory (no queued entry per sub-frame)',
    async () => {
      const limits: LaneLimits = { ...SMALL, maxFramePlainBytes: 256 * 1024 };
      const s = serverLane(limits);
      s.sock.deliver(Buffer.concat(s.sealer.seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC), subFrame(SUB_OPEN, 1, Buffer.from('/collect'))])));
      await settle(() => s.got.length === 1, 'the stream opened');
      // the handler reads only once the flood is in: what it is handed then is what the lane queued meanwhile
      const perFrame = Math.floor((256 * 1024) / 9);
      // 2 frames (58 k sub-frames) keep this quick: the reader's inbox.shift() is O(queue) per chunk, so taking the
      // queue is quadratic (20 frames, 583 k sub-frames: 216 s of CPU at load 12 before the reader had them all)
      const frames = 2;
      const empty = subFrame(SUB_DATA, 1);
      const body = Buffer.concat(Array.from({ length: perFrame }, () => empty));
      const h0 = process.memoryUsage().heapUsed;
      for (let f = 0; f < frames; f++) s.sock.deliver(Buffer.concat(s.sealer.seal([body])));
      const grew = process.memoryUsage().heapUsed - h0;
      const closedEarly = s.lane.closed;
      s.sock.deliver(Buffer.concat(s.sealer.seal([subFrame(SUB_CLOSE, 1)])));
      await settle(() => s.got[0]!.ended || s.got[0]!.error !== undefined || s.lane.closed, 'the reader ended');
      const emptyChunks = s.got[0]!.views.filter((v) => v.byteLength === 0).length;
      s.lane.close();
      assert.ok(closedEarly || emptyChunks === 0, `${frames * perFrame} empty DATA sub-frames (${((frames * perFrame * 9) / 2 ** 20).toFixed(1)} MiB sent) were queued as ${emptyChunks} empty chunks for the reader; heap grew ${(grew / 2 ** 20).toFixed(0)} MiB`);
    },
  );

  it(
    'a flood of 1-byte DATA sub-frames (inside the window) to a reader that lags is not queued one entry per sub-frame',
    async () => {
      const n = 60_000;
      const limits: LaneLimits = { ...SMALL, maxFramePlainBytes: 256 * 1024, windowBytes: 4 * 1024 * 1024 };
      const s = serverLane(limits);
      // the stream opens and its reader waits for the flood: a '/collect' handler reads everything once it comes
      s.sock.deliver(Buffer.concat(s.sealer.seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC), subFrame(SUB_OPEN, 1, Buffer.from('/collect'))])));
      await settle(() => s.got.length === 1, 'the stream opened');
      const one = subFrame(SUB_DATA, 1, Buffer.from([1]));
      const perFrame = Math.floor((256 * 1024) / one.length);
      const frames: Buffer[] = [];
      for (let i = 0; i < n; i += perFrame) frames.push(Buffer.concat(s.sealer.seal([Buffer.concat(Array.from({ length: Math.min(perFrame, n - i) }, () => one))])));
      frames.push(Buffer.concat(s.sealer.seal([subFrame(SUB_CLOSE, 1)])));
      // all in one read: the reader lags the whole flood, then takes it
      s.sock.deliver(Buffer.concat(frames));
      const t0 = performance.now();
      await settle(() => s.got[0]!.ended || s.got[0]!.error !== undefined, 'the reader took the flood');
      const ms = performance.now() - t0;
      const chunks = s.got[0]!.views.length;
      assert.equal(Buffer.concat(s.got[0]!.views).length, n);
      s.lane.close();
      assert.ok(chunks <= n / 64, `${n} one-byte DATA sub-frames (${((n * one.length) / 2 ** 20).toFixed(1)} MiB sent) reached the reader as ${chunks} chunks, taken in ${ms.toFixed(0)} ms`);
    },
  );
});


/**
 * A Sealer that may reuse its large frames' buffers (session 21's second argument, the largest sealed frame; a build
 * without it takes one argument and ignores the other), so that these tests run the reuse wherever it exists.
 */
function bulkSealer(k: Buffer, limits: LaneLimits): Sealer {
  const S = Sealer as unknown as new (key: Buffer, frameCapacity: number) => Sealer;
  return new S(k, 4 + limits.maxFramePlainBytes + 16);
}

/** A block of `n` bytes that says which block of which stream it is (a frame overwritten with another shows). */
function block(stream: number, i: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let o = 0; o + 8 <= n; o += 8) {
    b.writeUInt32BE(stream, o);
    b.writeUInt32BE(i, o + 4);
  }
  return b;
}

describe('attack: a reader that stops reading, and a socket that dies mid-write, against reused seal buffers', () => {
  // big frames (reused buffers), a big window and write buffer: many sealed frames wait in Node's write queue
  const BULK: LaneLimits = { ...LANE_DEFAULTS, maxFramePlainBytes: 256 * 1024, windowBytes: 16 * 1024 * 1024, writeHighWaterBytes: 32 * 1024 * 1024, maxWriteBufferBytes: 256 * 1024 * 1024, openMs: 5000 };

  async function bulkPair(): Promise<{ client: Lane; server: Lane; cs: Socket; ss: Socket; hashes: Map<number, Promise<{ hash: string; bytes: number }>>; serverClosed: Promise<Error>; clientClosed: Promise<Error> }> {
    const [cs, ss] = await socketPair();
    const c2s = key();
    const s2c = key();
    const hashes = new Map<number, Promise<{ hash: string; bytes: number }>>();
    let n = 0;
    const hashing = (s: DuplexStream): void => {
      const done = (async () => {
        const h = createHash('sha256');
        let bytes = 0;
        for await (const c of s) {
          const v = viewOf(c);
          h.update(v);
          bytes += v.byteLength;
        }
        await s.close();
        return { hash: h.digest('hex'), bytes };
      })();
      done.catch(() => {}); // a stream reset when a test closes the lane: the test's assertions say what went wrong
      hashes.set(++n, done);
    };
    const handlerOf = (p: string): LaneHandlerEntry | undefined => (p === '/hash' ? { handler: hashing, maxInbound: 16 } : undefined);
    let onC!: (e: Error) => void;
    let onS!: (e: Error) => void;
    const clientClosed = new Promise<Error>((r) => (onC = r));
    const serverClosed = new Promise<Error>((r) => (onS = r));
    const client = new Lane({ socket: cs, role: 'client', peer: 'S', remoteAddr: 's', sealer: bulkSealer(c2s, BULK), opener: new Opener(s2c), limits: BULK, handlerOf, onClose: (_l, e) => onC(e) });
    const server = new Lane({ socket: ss, role: 'server', peer: 'C', remoteAddr: 'c', sealer: bulkSealer(s2c, BULK), opener: new Opener(c2s), limits: BULK, handlerOf, onClose: (_l, e) => onS(e) });
    await client.whenReady();
    await server.whenReady();
    return { client, server, cs, ss, hashes, serverClosed, clientClosed };
  }

  it('frames queued behind a paused reader (then several streams at once) arrive intact: no reused buffer was overwritten before the socket wrote it', async () => {
    const p = await bulkPair();
    let laneError: Error | undefined;
    void p.serverClosed.then((e) => (laneError = e));
    try {
      const STREAMS = 3;
      const BLOCKS = 24;
      const SIZE = 200 * 1024 + 3; // below a frame: one sub-frame per block, most frames >= 64 KiB (reused)
      const want: string[] = [];
      const streams = await Promise.all(Array.from({ length: STREAMS }, () => p.client.openStream('/hash')));
      // the server stops reading: the client's frames pile up in its socket's write queue (write callbacks not run)
      p.ss.pause();
      const sending = streams.map(async (s, si) => {
        const h = createHash('sha256');
        for (let i = 0; i < BLOCKS; i++) {
          const b = block(si, i, SIZE);
          h.update(b);
          if (!s.send(b)) await s.onDrain({ signal: AbortSignal.timeout(60_000) });
        }
        await s.close({ signal: AbortSignal.timeout(60_000) });
        want[si] = h.digest('hex');
      });
      // bounded: wait until at least a few MiB sit unsent in the client's socket (frames waiting on the kernel)
      await waitFor(() => p.cs.writableLength > 2 * 1024 * 1024 || laneError !== undefined, { timeoutMs: 30_000, what: 'frames queue behind the paused reader' });
      const queued = p.cs.writableLength;
      p.ss.resume();
      await Promise.all(sending);
      await waitFor(() => p.hashes.size === STREAMS || laneError !== undefined, { timeoutMs: 30_000, what: 'every stream reached the server' });
      const got = await Promise.all([...p.hashes.values()]);
      assert.equal(laneError, undefined, `the server's lane closed: ${laneError?.message}`);
      assert.ok(queued > 2 * 1024 * 1024, `only ${queued} bytes queued`);
      // streams open in order 1, 3, 5 on the client: the server's handlers in the same order
      assert.deepEqual(got.map((g) => g.bytes), Array.from({ length: STREAMS }, () => BLOCKS * SIZE));
      assert.deepEqual(got.map((g) => g.hash), want, 'a stream arrived with other bytes than were sent');
      tally('lane: sealed frames behind a paused reader', STREAMS * BLOCKS, laneError === undefined ? 0 : 1);
    } finally {
      p.client.close();
      p.server.close();
    }
  });

  it('the socket destroyed mid-write (ours, then the far end): the writer fails cleanly, nothing is written after', async () => {
    for (const who of ['ours', 'theirs'] as const) {
      const p = await bulkPair();
      const errs: unknown[] = [];
      try {
        const s = await p.client.openStream('/hash');
        p.ss.pause();
        const sending = (async () => {
          for (let i = 0; i < 200; i++) {
            if (!s.send(block(1, i, 200 * 1024))) await s.onDrain({ signal: AbortSignal.timeout(30_000) });
          }
        })().catch((e: unknown) => errs.push(e));
        await waitFor(() => p.cs.writableLength > 2 * 1024 * 1024, { timeoutMs: 30_000, what: 'frames queued' });
        if (who === 'ours') p.cs.destroy();
        else p.ss.destroy();
        const err = await p.clientClosed;
        await sending;
        assert.ok(err instanceof LaneError, `${who}: the lane closed with ${String(err)}`);
        assert.equal(errs.length, 1, `${who}: the writer was not told`);
        assert.ok(p.client.closed);
        // the lane accepts nothing more
        assert.throws(() => s.send(Buffer.alloc(10)));
      } finally {
        p.client.close();
        p.server.close();
      }
    }
    tally('lane: socket destroyed mid-write', 2, 0);
  });

  it('a writer that waits for a congested lane again and again under one long-lived signal leaves no abort listener per wait', async () => {
    const p = await bulkPair();
    try {
      const ac = new AbortController();
      const s = await p.client.openStream('/hash');
      let waits = 0;
      // 48 blocks of 512 KiB: more than the high-water mark each, so nearly every send waits for the socket
      const tight = p.client as unknown as { limits: LaneLimits };
      tight.limits.writeHighWaterBytes = 256 * 1024;
      for (let i = 0; i < 48; i++) {
        if (!s.send(block(1, i, 512 * 1024))) {
          waits++;
          await s.onDrain({ signal: ac.signal });
        }
      }
      await s.close({ signal: ac.signal });
      const left = getEventListeners(ac.signal, 'abort').length;
      assert.ok(waits > 8, `only ${waits} waits`);
      assert.ok(left <= 1, `${left} abort listeners left on the signal after ${waits} waits that all ended`);
    } finally {
      p.client.close();
      p.server.close();
    }
  });
});
