/**
 * src/p2p/lane/: the direct data lane's sealed frames and streams. Every way a frame can go wrong on the wire
 * (a tampered byte, a replayed, reordered or dropped frame, another key, an oversized or short length, a socket
 * ending inside a frame, a sub-frame overrunning its frame, data past the granted window) is a typed LaneError that
 * closes the lane, resets its streams, and keeps at most one capped frame buffered.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { socketPair } from '../../utils/socket-pair.js';
import { describe, it } from 'node:test';
import { Opener, Sealer, TAG_BYTES, deriveLaneKeys, ephemeralKey } from '../../../src/p2p/lane/aead.js';
import { FrameAccumulator, SUB_DATA, SUB_HELLO, HELLO_MAGIC, forEachSubFrame, subFrame } from '../../../src/p2p/lane/codec.js';
import { LaneError } from '../../../src/p2p/lane/errors.js';
import { Lane, type LaneLimits } from '../../../src/p2p/lane/lane.js';
import { LANE_DEFAULTS } from '../../../src/p2p/lane/manager.js';
import { type LaneStream, canSendParts } from '../../../src/p2p/lane/stream.js';
import type { DuplexStream } from '../../../src/p2p/types.js';

const key = (): Buffer => randomBytes(32);
const join = (bufs: Buffer[]): Buffer => Buffer.concat(bufs);

/** Cuts one sealed frame (as written on the socket) into what the accumulator hands the opener. */
function frameOf(wire: Buffer, maxFrame = 1 << 20): { pieces: Buffer[]; tag: Buffer } {
  const acc = new FrameAccumulator(maxFrame);
  acc.push(wire);
  const f = acc.next();
  assert.ok(f !== undefined);
  return f;
}

function code(e: unknown): string {
  return e instanceof LaneError ? e.code : `not a LaneError: ${String(e)}`;
}

describe('lane AEAD frames', () => {
  it('a frame opens to its plaintext under the right key and counter', () => {
    const k = key();
    const s = new Sealer(k);
    const o = new Opener(k);
    for (const n of [0, 1, 100, 70_000]) {
      const msg = randomBytes(n);
      const f = frameOf(join(s.seal([msg.subarray(0, n >> 1), msg.subarray(n >> 1)])));
      assert.deepEqual(o.open(f.pieces, f.tag), msg);
    }
  });

  it('a tampered byte anywhere (length, ciphertext, tag) fails LANE_AUTH and yields no plaintext', () => {
    const k = key();
    const wire = join(new Sealer(k).seal([Buffer.from('activations of one decode step')]));
    let failed = 0;
    for (let i = 0; i < wire.length; i++) {
      const bad = Buffer.from(wire);
      bad[i]! ^= 0x01;
      try {
        const acc = new FrameAccumulator(1 << 20);
        acc.push(bad);
        const f = acc.next();
        if (f === undefined) {
          failed++; // the length grew: the frame never completes (and a socket end is LANE_TRUNCATED)
          continue;
        }
        new Opener(k).open(f.pieces, f.tag);
        assert.fail(`byte ${i} flipped and the frame still opened`);
      } catch (e) {
        assert.ok(['LANE_AUTH', 'LANE_MALFORMED', 'LANE_OVERSIZED'].includes(code(e)), code(e));
        failed++;
      }
    }
    assert.equal(failed, wire.length);
  });

  it('a replayed, reordered or dropped frame fails LANE_AUTH (the opener uses its own counter)', () => {
    const k = key();
    const s = new Sealer(k);
    const f0 = frameOf(join(s.seal([Buffer.from('zero')])));
    const f1 = frameOf(join(s.seal([Buffer.from('one')])));
    const f2 = frameOf(join(s.seal([Buffer.from('two')])));
    // replay: frame 0 twice
    const o = new Opener(k);
    o.open(f0.pieces, f0.tag);
    assert.throws(() => o.open(f0.pieces, f0.tag), (e) => code(e) === 'LANE_AUTH');
    // reorder: frame 1 first
    assert.throws(() => new Opener(k).open(f1.pieces, f1.tag), (e) => code(e) === 'LANE_AUTH');
    // drop: frame 1 lost, frame 2 arrives as the second
    const o2 = new Opener(k);
    o2.open(f0.pieces, f0.tag);
    assert.throws(() => o2.open(f2.pieces, f2.tag), (e) => code(e) === 'LANE_AUTH');
  });

  it('a frame under another key fails LANE_AUTH', () => {
    const f = frameOf(join(new Sealer(key()).seal([Buffer.from('hello')])));
    assert.throws(() => new Opener(key()).open(f.pieces, f.tag), (e) => code(e) === 'LANE_AUTH');
  });

  it('both ends derive the same direction keys, bound to the peer ids, keys and lane id', () => {
    const c = ephemeralKey();
    const s = ephemeralKey();
    const laneId = randomBytes(16);
    const binding = { clientPeer: 'peerC', serverPeer: 'peerS', clientPublic: c.publicRaw, serverPublic: s.publicRaw, laneId };
    const kc = deriveLaneKeys(c, s.publicRaw, binding);
    const ks = deriveLaneKeys(s, c.publicRaw, binding);
    assert.deepEqual(kc, ks);
    assert.notDeepEqual(kc.clientToServer, kc.serverToClient);
    // a client that believes it talks to another peer id gets other keys: a relay of the setup cannot read the lane
    assert.notDeepEqual(deriveLaneKeys(c, s.publicRaw, { ...binding, serverPeer: 'mallory' }).clientToServer, kc.clientToServer);
    assert.notDeepEqual(deriveLaneKeys(c, s.publicRaw, { ...binding, laneId: randomBytes(16) }).clientToServer, kc.clientToServer);
    // the all-zero key is of low order: the shared secret would be zero
    assert.throws(() => deriveLaneKeys(c, Buffer.alloc(32), binding), (e) => code(e) === 'LANE_HANDSHAKE');
    assert.throws(() => deriveLaneKeys(c, Buffer.alloc(31), binding), (e) => code(e) === 'LANE_HANDSHAKE');
  });
});

describe('lane frame codec', () => {
  it('an oversized length is refused as soon as its 4 bytes are in, before any body is kept', () => {
    const acc = new FrameAccumulator(1024);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(1025);
    acc.push(len);
    assert.throws(() => acc.next(), (e) => code(e) === 'LANE_OVERSIZED');
    assert.ok(acc.buffered <= 4);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff);
    const acc2 = new FrameAccumulator(1024);
    acc2.push(huge);
    assert.throws(() => acc2.next(), (e) => code(e) === 'LANE_OVERSIZED');
  });

  it('a length too short for a tag is LANE_MALFORMED', () => {
    const acc = new FrameAccumulator(1024);
    const len = Buffer.alloc(4 + 15);
    len.writeUInt32BE(TAG_BYTES - 1);
    acc.push(len);
    assert.throws(() => acc.next(), (e) => code(e) === 'LANE_MALFORMED');
  });

  it('frames cut anywhere across socket reads come out the same', () => {
    const k = key();
    const s = new Sealer(k);
    const msgs = [randomBytes(10), randomBytes(3000), randomBytes(0), randomBytes(70_000)];
    const wire = join(msgs.flatMap((m) => s.seal([m])));
    for (const step of [1, 7, 4096, wire.length]) {
      const acc = new FrameAccumulator(1 << 20);
      const o = new Opener(k);
      const got: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) {
        acc.push(wire.subarray(i, i + step));
        for (let f = acc.next(); f !== undefined; f = acc.next()) got.push(o.open(f.pieces, f.tag));
      }
      assert.deepEqual(got, msgs);
      assert.equal(acc.buffered, 0);
    }
  });

  it('a truncated or unknown sub-frame is LANE_MALFORMED', () => {
    const good = subFrame(SUB_DATA, 1, Buffer.from('abc'));
    const seen: number[] = [];
    forEachSubFrame(Buffer.concat([good, subFrame(SUB_HELLO, 0, HELLO_MAGIC)]), (t) => seen.push(t));
    assert.deepEqual(seen, [SUB_DATA, SUB_HELLO]);
    assert.throws(() => forEachSubFrame(good.subarray(0, good.length - 1), () => {}), (e) => code(e) === 'LANE_MALFORMED');
    assert.throws(() => forEachSubFrame(good.subarray(0, 5), () => {}), (e) => code(e) === 'LANE_MALFORMED');
    const unknown = Buffer.from(good);
    unknown[0] = 0x7f;
    assert.throws(() => forEachSubFrame(unknown, () => {}), (e) => code(e) === 'LANE_MALFORMED');
  });
});


const LIMITS: LaneLimits = { ...LANE_DEFAULTS, maxFramePlainBytes: 16 * 1024, windowBytes: 64 * 1024, openMs: 5000 };

interface Pair {
  client: Lane;
  server: Lane;
  clientClosed: Promise<Error>;
  serverClosed: Promise<Error>;
  accepted: DuplexStream[];
  cs: Socket;
  ss: Socket;
  keys: { c2s: Buffer; s2c: Buffer };
}

async function lanePair(limits: LaneLimits = LIMITS): Promise<Pair> {
  const [cs, ss] = await socketPair();
  const keys = { c2s: key(), s2c: key() };
  const accepted: DuplexStream[] = [];
  let onC!: (e: Error) => void;
  let onS!: (e: Error) => void;
  const clientClosed = new Promise<Error>((r) => (onC = r));
  const serverClosed = new Promise<Error>((r) => (onS = r));
  const echo = async (s: DuplexStream): Promise<void> => {
    accepted.push(s);
    for await (const c of s) {
      const b = c instanceof Uint8Array ? c : c.subarray();
      if (!s.send(b)) await s.onDrain();
    }
    await s.close();
  };
  const sink = (s: DuplexStream): void => {
    accepted.push(s); // never reads
  };
  const handlerOf = (p: string) => (p === '/echo' ? { handler: echo, maxInbound: 4 } : p === '/sink' ? { handler: sink, maxInbound: 4 } : undefined);
  const client = new Lane({ socket: cs, role: 'client', peer: 'S', remoteAddr: 's', sealer: new Sealer(keys.c2s), opener: new Opener(keys.s2c), limits, handlerOf, onClose: (_l, e) => onC(e) });
  const server = new Lane({ socket: ss, role: 'server', peer: 'C', remoteAddr: 'c', sealer: new Sealer(keys.s2c), opener: new Opener(keys.c2s), limits, handlerOf, onClose: (_l, e) => onS(e) });
  await client.whenReady();
  await server.whenReady();
  return { client, server, clientClosed, serverClosed, accepted, cs, ss, keys };
}

async function readAll(s: DuplexStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(Buffer.from(c instanceof Uint8Array ? c : c.subarray()));
  return Buffer.concat(out);
}

describe('lane streams', () => {
  it('streams carry bytes both ways, large ones in pieces under the window, and close cleanly', async () => {
    const p = await lanePair();
    const msg = randomBytes(300_000); // > window (64 KiB) and > frame (16 KiB): pieces and window updates
    const s = await p.client.openStream('/echo');
    const back = readAll(s);
    if (!s.send(msg)) await s.onDrain();
    await s.close();
    assert.deepEqual(await back, msg);
    // several at once
    const many = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const t = await p.client.openStream('/echo');
        const r = readAll(t);
        t.send(Buffer.alloc(1000 * i, i));
        await t.close();
        return (await r).length;
      }),
    );
    assert.deepEqual(many, [1000, 2000, 3000]);
    await assert.rejects(p.client.openStream('/nope'), (e) => code(e) === 'LANE_UNAVAILABLE');
    p.client.close();
    await p.serverClosed;
  });

  it('a reader that stops reading holds at most its window; the writer waits', async () => {
    const p = await lanePair();
    const s = await p.client.openStream('/sink');
    const chunk = Buffer.alloc(8192, 1);
    // the sink never reads: send until send() says wait, then check what the server buffered
    while (s.send(chunk));
    const drained = s.onDrain({ signal: AbortSignal.timeout(300) }).then(
      () => 'drained',
      () => 'waiting',
    );
    assert.equal(await drained, 'waiting');
    await new Promise((r) => setTimeout(r, 50));
    const srv = p.accepted[0] as unknown as { bufferedIn: number };
    assert.ok(srv.bufferedIn <= LIMITS.windowBytes, `server buffered ${srv.bufferedIn} > window`);
    p.client.close();
    await p.serverClosed;
  });

  it('a writer waiting for drain is woken when the socket took the whole flush at once (no drain event comes)', async () => {
    // Session 19's fix in Lane.flush: a write that queues more than writeHighWaterBytes in one turn finds the lane
    // congested (the bytes wait for the flush's microtask), so send() says wait; the flush then hands them all to a
    // socket whose kernel buffer takes them (write() returns true, so Node emits no 'drain'). Without the wake-up in
    // flush the writer waited forever (the 1.2 MB call of the lane integration test hung once sealing got fast).
    const limits: LaneLimits = { ...LIMITS, writeHighWaterBytes: 4096 };
    const p = await lanePair(limits);
    try {
      const s = await p.client.openStream('/echo');
      const back = readAll(s);
      back.catch(() => {}); // a failed wait closes the lane in `finally`: the assertion, not this, is the failure
      const msg = randomBytes(12_000); // < window and a kernel socket buffer, > the high-water mark: one flush takes it
      assert.equal(s.send(msg), false, 'the queued bytes make the lane congested until the flush');
      let drainEvents = 0;
      p.cs.on('drain', () => drainEvents++);
      const woke = await s.onDrain({ signal: AbortSignal.timeout(3000) }).then(
        () => 'woken',
        () => 'still waiting after 3 s',
      );
      assert.equal(woke, 'woken');
      assert.equal(drainEvents, 0, 'the socket took the flush at once: no drain event (the case under test)');
      await s.close();
      assert.deepEqual(await back, msg);
    } finally {
      p.client.close();
      await p.serverClosed;
    }
  });

  it('a tampered byte on the wire closes both ends with LANE_AUTH at the reader, streams reset', async () => {
    const p = await lanePair();
    const s = await p.client.openStream('/echo');
    // a man in the middle: the next frame the client writes has one ciphertext byte flipped
    const write = p.cs.write.bind(p.cs);
    p.cs.write = ((b: Buffer | Uint8Array, ...rest: unknown[]) => {
      const bad = Buffer.from(b);
      bad[bad.length - 20]! ^= 0x80;
      p.cs.write = write;
      return (write as (...a: unknown[]) => boolean)(bad, ...rest);
    }) as typeof p.cs.write;
    const back = readAll(s).then(
      () => 'ended',
      (e: Error) => e.name,
    );
    s.send(Buffer.from('data in flight'));
    const err = await p.serverClosed;
    assert.equal(code(err), 'LANE_AUTH');
    assert.equal(await back, 'StreamResetError');
    assert.ok(p.client.closed || (await p.clientClosed) !== undefined);
  });

  it('a replayed frame on the wire closes the lane (LANE_AUTH)', async () => {
    const p = await lanePair();
    const s = await p.client.openStream('/echo');
    // capture the next frame the client writes and send it twice
    const write = p.cs.write.bind(p.cs);
    p.cs.write = ((b: Buffer, ...rest: unknown[]) => {
      p.cs.write = write;
      (write as (...a: unknown[]) => boolean)(b);
      return (write as (...a: unknown[]) => boolean)(b, ...rest);
    }) as typeof p.cs.write;
    s.send(Buffer.from('once'));
    assert.equal(code(await p.serverClosed), 'LANE_AUTH');
  });

  it('data past the granted window is LANE_PROTOCOL', async () => {
    const p = await lanePair();
    const s = await p.client.openStream('/sink');
    // a client that ignores its credit: raw DATA sub-frames sealed with the right key and counter
    const rogue = p.client as unknown as { queue: (...parts: Uint8Array[]) => void };
    for (let i = 0; i < 10; i++) rogue.queue(subFrame(SUB_DATA, (s as unknown as { id: number }).id, Buffer.alloc(15_000)));
    assert.equal(code(await p.serverClosed), 'LANE_PROTOCOL');
  });

  it('a socket ending inside a frame is LANE_TRUNCATED; an oversized length LANE_OVERSIZED, nothing buffered past it', async () => {
    const p = await lanePair();
    const len = Buffer.alloc(4);
    len.writeUInt32BE(1000);
    p.cs.end(Buffer.concat([len, Buffer.alloc(10)]));
    assert.equal(code(await p.serverClosed), 'LANE_TRUNCATED');
    const q = await lanePair();
    const big = Buffer.alloc(4);
    big.writeUInt32BE(LIMITS.maxFramePlainBytes + 1000);
    q.cs.write(big);
    assert.equal(code(await q.serverClosed), 'LANE_OVERSIZED');
    q.client.close();
  });

  it('an unknown stream id and a second hello are LANE_PROTOCOL', async () => {
    const p = await lanePair();
    (p.client as unknown as { queue: (...parts: Uint8Array[]) => void }).queue(subFrame(SUB_DATA, 99, Buffer.from('x')));
    assert.equal(code(await p.serverClosed), 'LANE_PROTOCOL');
    const q = await lanePair();
    (q.client as unknown as { queue: (...parts: Uint8Array[]) => void }).queue(subFrame(SUB_HELLO, 0, HELLO_MAGIC));
    assert.equal(code(await q.serverClosed), 'LANE_PROTOCOL');
  });
});

describe('lane bulk messages (session 22)', () => {
  it('with the default limits a 1 MiB message reaches its reader as one chunk, over many socket reads, and is echoed whole', async () => {
    const p = await lanePair(LANE_DEFAULTS);
    const msg = randomBytes(1 << 20);
    const s = await p.client.openStream('/echo');
    const chunks: Uint8Array[] = [];
    const back = (async () => {
      for await (const c of s) chunks.push(c instanceof Uint8Array ? c : c.subarray());
    })();
    const framesBefore = p.server.stats.framesIn;
    if (!s.send(msg)) await s.onDrain();
    await s.close();
    await back;
    assert.ok(Buffer.concat(chunks).equals(msg));
    // the echo handler got it as one view and sent it back as one DATA: one chunk here too
    const big = chunks.filter((c) => c.byteLength > 64 * 1024);
    assert.equal(big.length, 1, `chunk sizes ${chunks.map((c) => c.byteLength).join(',')}`);
    assert.equal(big[0]!.byteLength, msg.length);
    assert.ok(p.server.stats.framesIn - framesBefore <= 3, `${p.server.stats.framesIn - framesBefore} frames for one 1 MiB message`);
    p.client.close();
    await p.serverClosed;
  });

  it('a payload sent in parts (sendParts) reaches the reader as one chunk of their joined bytes, parts not copied before sealing', async () => {
    const p = await lanePair(LANE_DEFAULTS);
    const parts = [Buffer.from([1, 2, 3]), randomBytes(1 << 20), Buffer.from('tail'), randomBytes(70_000)];
    const whole = Buffer.concat(parts);
    const s = await p.client.openStream('/echo');
    assert.ok(canSendParts(s));
    const chunks: Uint8Array[] = [];
    const back = (async () => {
      for await (const c of s) chunks.push(c instanceof Uint8Array ? c : c.subarray());
    })();
    const framesBefore = p.server.stats.framesIn;
    if (!s.sendParts(parts)) await s.onDrain();
    await s.close();
    await back;
    assert.ok(Buffer.concat(chunks).equals(whole));
    // the echo got the parts as one DATA (one view) and sent it back whole: one chunk
    assert.deepEqual(chunks.map((c) => c.byteLength), [whole.length]);
    assert.ok(p.server.stats.framesIn - framesBefore <= 2, `${p.server.stats.framesIn - framesBefore} frames`);
    p.client.close();
    await p.serverClosed;
  });

  it('parts past the send window or the frame cap go part by part, the same bytes in order', async () => {
    const p = await lanePair(); // window 64 KiB, frames of 16 KiB
    const parts = [Buffer.from('head'), randomBytes(300_000), Buffer.alloc(0), randomBytes(10)];
    const s = await p.client.openStream('/echo');
    const back = readAll(s);
    if (!(s as LaneStream).sendParts(parts)) await s.onDrain();
    (s as LaneStream).sendParts([Buffer.from('x'), Buffer.from('yz')]);
    await s.close();
    assert.ok((await back).equals(Buffer.concat([...parts, Buffer.from('xyz')])));
    p.client.close();
    await p.serverClosed;
  });
});
