/**
 * Session 27: a large message on a lane is decrypted straight into its RPC reader's body (src/p2p/lane/reader.ts
 * FramePlacer, stream.ts `receiveInto`, src/protocols/rpc/frame.ts `readReserved`) instead of into one frame
 * plaintext per window that the reader then joined: a body copies what came before it was reserved (its first
 * window, or an eighth of it), not every byte once more (a 16 MiB body copied 2 MiB, not 16 MiB in the join). Counted,
 * not timed. Both AES-GCM backends for the reader; the lane pair uses the default one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Opener, Sealer, aeadBackend, setAeadBackendForTests } from '../../../src/p2p/lane/aead.js';
import { SUB_DATA, SUB_HEADER_BYTES, subFrame, subHeader } from '../../../src/p2p/lane/codec.js';
import { LaneError } from '../../../src/p2p/lane/errors.js';
import { Lane } from '../../../src/p2p/lane/lane.js';
import { LANE_DEFAULTS } from '../../../src/p2p/lane/manager.js';
import { PLACE_HEAD_BYTES, SealedFrameReader, type FramePlacer } from '../../../src/p2p/lane/reader.js';
import type { DuplexStream } from '../../../src/p2p/types.js';
import { FRAME_MESSAGE, FrameReader, RESERVE_AFTER_SHARE, frameHeader } from '../../../src/protocols/rpc/frame.js';
import { socketPair } from '../../utils/socket-pair.js';

const backends = (['openssl', 'node'] as const).filter((b) => {
  if (b === 'node') return true;
  setAeadBackendForTests(undefined);
  return aeadBackend().backend === 'openssl';
});

const into0 = (payloads: Buffer[]): number => payloads.reduce((n, p) => n + p.length, 0);

/** A placer that places every DATA of stream 7 into `into` (at `at`), and records what it was asked and given. */
function placerInto(into: Uint8Array | undefined): FramePlacer & { asked: string[]; heads: Buffer[] } {
  const asked: string[] = [];
  const heads: Buffer[] = [];
  let at = 0;
  return {
    asked,
    heads,
    place(head, rest) {
      asked.push(`${head[0]}/${head.readUInt32BE(1)}/${head.readUInt32BE(5)}/${rest}`);
      if (into === undefined || head[0] !== SUB_DATA || head.readUInt32BE(1) !== 7) return undefined;
      const p = into.subarray(at, at + rest);
      at += rest;
      return p;
    },
    placed(head, rest) {
      heads.push(Buffer.from(head));
      assert.equal(rest.buffer, into!.buffer, 'the place the placer gave');
      return true;
    },
  };
}

describe('placing large frames (session 27)', () => {
  after(() => setAeadBackendForTests(undefined));

  for (const b of backends) {
    it(`${b}: a large DATA is decrypted into its place from any split of the socket's reads (the head cut anywhere)`, () => {
      setAeadBackendForTests(b);
      const key = randomBytes(32);
      const payloads = [randomBytes(300_000), randomBytes(70_000)];
      const sealer = new Sealer(key);
      const small = subFrame(SUB_DATA, 7, Buffer.from('small'));
      const wire = Buffer.concat([
        ...sealer.seal([subHeader(SUB_DATA, 7, payloads[0]!.length), payloads[0]!]),
        ...sealer.seal([small]),
        ...sealer.seal([subHeader(SUB_DATA, 7, payloads[1]!.length), payloads[1]!]),
      ]);
      // reads smaller than each large frame (as a socket delivers a 2 MiB frame: 64 KiB reads)
      for (const split of [[1], [3, 7], [4, 5], [13], [65536], [4 + 9, 60_000], [4 + 8, 2, 50_000]]) {
        const into = new Uint8Array(payloads[0]!.length + payloads[1]!.length);
        const placer = placerInto(into);
        const r = new SealedFrameReader(new Opener(key), 1 << 20, placer);
        const delivered: Buffer[] = [];
        // reads of `split` sizes (cycled); split [1] takes too long over 370 KB: only its first frame's head matters
        const sizes = split[0] === 1 ? [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 65536] : split;
        for (let o = 0, i = 0; o < wire.length; i++) {
          const k = Math.min(sizes[i % sizes.length]!, wire.length - o);
          r.push(Buffer.from(wire.subarray(o, o + k)), (p) => {
            delivered.push(Buffer.from(p));
            return true;
          });
          o += k;
        }
        assert.ok(Buffer.from(into).equals(Buffer.concat(payloads)), `split ${split.join(',')}`);
        assert.deepEqual(placer.heads.map((h) => h.subarray(0, PLACE_HEAD_BYTES).readUInt32BE(5)), payloads.map((p) => p.length));
        // the small frame is not offered (below PLACE_MIN_BYTES) and comes as its plaintext
        assert.deepEqual(delivered, [small]);
        assert.deepEqual(r.stats, { plainBytes: small.length, placedBytes: into.length });
      }
      // a frame whole in one read is not offered: decrypted in place in that read, delivered as its plaintext
      const whole = placerInto(new Uint8Array(into0(payloads)));
      const r = new SealedFrameReader(new Opener(key), 1 << 20, whole);
      const delivered: number[] = [];
      r.push(Buffer.from(wire), (p) => {
        delivered.push(p.length);
        return true;
      });
      assert.deepEqual(whole.asked, []);
      assert.deepEqual(delivered, [SUB_HEADER_BYTES + payloads[0]!.length, small.length, SUB_HEADER_BYTES + payloads[1]!.length]);
    });

    it(`${b}: a frame the placer has no place for comes whole as its own plaintext; a forged one zeroes its place and is never placed`, () => {
      setAeadBackendForTests(b);
      const key = randomBytes(32);
      const payload = randomBytes(200_000);
      const frame = [subHeader(SUB_DATA, 9, payload.length), payload]; // stream 9: no place
      const wire = Buffer.concat(new Sealer(key).seal(frame));
      const none = placerInto(new Uint8Array(payload.length));
      const r = new SealedFrameReader(new Opener(key), 1 << 20, none);
      const got: Buffer[] = [];
      for (let o = 0; o < wire.length; o += 65536) {
        r.push(Buffer.from(wire.subarray(o, o + 65536)), (p) => {
          got.push(Buffer.from(p));
          return true;
        });
      }
      assert.deepEqual(none.asked, [`${SUB_DATA}/9/${payload.length}/${payload.length}`]);
      assert.deepEqual(got, [Buffer.concat(frame)]);

      const wire7 = Buffer.concat(new Sealer(key).seal([subHeader(SUB_DATA, 7, payload.length), payload]));
      for (const at of [4 + 2, 4 + 1000, wire7.length - 3]) {
        const bad = Buffer.from(wire7);
        bad[at]! ^= 1;
        const into = new Uint8Array(payload.length).fill(0xee);
        const placer = placerInto(into);
        const rr = new SealedFrameReader(new Opener(key), 1 << 20, placer);
        assert.throws(() => {
          for (let o = 0; o < bad.length; o += 65536) rr.push(Buffer.from(bad.subarray(o, o + 65536)), () => assert.fail('nothing delivered'));
        }, (e) => e instanceof LaneError && e.code === 'LANE_AUTH');
        assert.equal(placer.heads.length, 0, `byte ${at}: never placed`);
        if (placer.asked.length > 0 && at !== 4 + 2) assert.ok(into.every((x) => x === 0), `byte ${at}: the place is zeroed`);
      }
    });
  }
});

/** Two lanes on a socket pair, default limits (2 MiB window, 4 MiB frames); the server reads one RPC frame a stream. */
async function pair(place = true): Promise<{
  client: Lane;
  server: Lane;
  readers: FrameReader[];
  bodies: Promise<{ body: Uint8Array; reader: FrameReader }>[];
  all: Promise<Uint8Array[]>[];
  close(): void;
}> {
  const [cs, ss] = await socketPair();
  const c2s = randomBytes(32);
  const s2c = randomBytes(32);
  const bodies: Promise<{ body: Uint8Array; reader: FrameReader }>[] = [];
  const readers: FrameReader[] = [];
  const read = (s: DuplexStream): void => {
    const reader = new FrameReader(s);
    readers.push(reader);
    bodies.push(
      reader.next(64 << 20).then((f) => {
        assert.equal(f?.kind, FRAME_MESSAGE);
        return { body: f.body, reader };
      }),
    );
  };
  // '/all': every frame until the stream ends, as a bidi call's server reads its requests
  const all: Promise<Uint8Array[]>[] = [];
  const readAll = (s: DuplexStream): void => {
    const reader = new FrameReader(s);
    all.push(
      (async () => {
        const out: Uint8Array[] = [];
        for (let f = await reader.next(64 << 20); f !== undefined; f = await reader.next(64 << 20)) out.push(f.body);
        return out;
      })(),
    );
  };
  const handlerOf = (p: string) => (p === '/read' ? { handler: read, maxInbound: 8 } : p === '/all' ? { handler: readAll, maxInbound: 8 } : undefined);
  const noop = (): void => {};
  const client = new Lane({ socket: cs, role: 'client', peer: 'S', remoteAddr: 's', sealer: new Sealer(c2s), opener: new Opener(s2c), limits: LANE_DEFAULTS, handlerOf, onClose: noop, place });
  const server = new Lane({ socket: ss, role: 'server', peer: 'C', remoteAddr: 'c', sealer: new Sealer(s2c), opener: new Opener(c2s), limits: LANE_DEFAULTS, handlerOf, onClose: noop, place });
  await client.whenReady();
  await server.whenReady();
  return { client, server, readers, bodies, all, close: () => client.close() };
}

/** Sends one RPC MESSAGE frame of `body` on a new stream. */
async function sendMessage(client: Lane, body: Uint8Array): Promise<void> {
  const s = await client.openStream('/read');
  if (!s.send(frameHeader(FRAME_MESSAGE, body.byteLength))) await s.onDrain();
  if (!s.send(body)) await s.onDrain();
  await s.close();
}

describe('large RPC bodies on a lane land in place (session 27)', () => {
  it('a body copies at most its first window or an eighth of it (what came before it was reserved), the rest lands in place: 4, 16, 24 MiB', async () => {
    const p = await pair();
    const window = LANE_DEFAULTS.windowBytes;
    for (const [i, n] of [4 << 20, 16 << 20, 24 << 20].entries()) {
      const body = randomBytes(n);
      const placedBefore = p.server.stats.bytesPlaced;
      await sendMessage(p.client, body);
      const { body: got, reader } = await p.bodies[i]!;
      assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(body), `${n}: the same bytes`);
      assert.ok(!Buffer.isBuffer(got), 'a plain Uint8Array, as a copied body is');
      assert.equal(got.byteLength, got.buffer.byteLength, 'its own memory, nothing else pinned');
      // before: every byte of the body copied once more (the join), and one frame plaintext per window allocated
      assert.equal(reader.reserved.bodies, 1);
      assert.equal(reader.reserved.copied + reader.reserved.inPlace, n);
      const bound = Math.max(window, n / RESERVE_AFTER_SHARE + window);
      assert.ok(reader.reserved.copied <= bound, `${n}: ${reader.reserved.copied} bytes copied (at most ${bound})`);
      assert.ok(p.server.stats.bytesPlaced - placedBefore >= n - bound, `${n}: ${p.server.stats.bytesPlaced - placedBefore} bytes decrypted in place`);
    }
    p.close();
  });

  it('frames back to back on one stream, large and small, sent in one go: each body whole, the next one read on from where the last ended', async () => {
    const p = await pair();
    const msgs = [randomBytes(6 << 20), randomBytes(10), randomBytes(5 << 20), randomBytes(300_000), randomBytes(3)];
    const s = await p.client.openStream('/all');
    // one buffer: DATA cut at the window's edges, so a DATA holds one body's tail and the next frames' start
    if (!s.send(Buffer.concat(msgs.flatMap((m) => [Buffer.from(frameHeader(FRAME_MESSAGE, m.length)), m])))) await s.onDrain();
    await s.close();
    const got = await p.all[0]!;
    assert.equal(got.length, msgs.length);
    for (let i = 0; i < msgs.length; i++) assert.ok(Buffer.from(got[i]!.buffer, got[i]!.byteOffset, got[i]!.byteLength).equals(msgs[i]!), `frame ${i}`);
    assert.ok(p.server.stats.bytesPlaced > 0);
    p.close();
  });

  it('a lane that does not place (Node\'s fresh reads: the default without the shared read buffer) reserves nothing and joins as before', async () => {
    const p = await pair(false);
    assert.equal(p.server.placing, false);
    const body = randomBytes(8 << 20);
    await sendMessage(p.client, body);
    const { body: got, reader } = await p.bodies[0]!;
    assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(body));
    assert.deepEqual(reader.reserved, { copied: 0, inPlace: 0, bodies: 0 });
    assert.equal(p.server.stats.bytesPlaced, 0);
    p.close();
  });

  it('nothing is reserved on a length alone: a body is allocated only once 1/RESERVE_AFTER_SHARE of it arrived', async () => {
    const p = await pair();
    const n = 32 << 20;
    const s = await p.client.openStream('/read');
    s.send(frameHeader(FRAME_MESSAGE, n));
    const first = randomBytes(1 << 20); // 1/32 of the body
    s.send(first);
    // the server took the bytes off its stream (its reader pulled them) and reserved nothing
    const deadline = Date.now() + 10_000;
    while (p.server.stats.bytesIn < first.length && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.ok(p.server.stats.bytesIn >= first.length);
    await new Promise((r) => setImmediate(r));
    assert.equal(p.readers[0]!.bytesRead, first.length + frameHeader(FRAME_MESSAGE, n).length, 'the reader took what came');
    assert.equal(p.readers[0]!.reserved.bodies, 0);
    // the rest: reserved once an eighth is in, the same bytes out
    const rest = randomBytes(n - first.length);
    if (!s.send(rest)) await s.onDrain();
    await s.close();
    const { body, reader } = await p.bodies[0]!;
    assert.ok(Buffer.from(body.buffer, body.byteOffset, body.byteLength).equals(Buffer.concat([first, rest])));
    assert.ok(reader.reserved.copied >= n / RESERVE_AFTER_SHARE - 4096, `${reader.reserved.copied} copied before the body was reserved`);
    assert.ok(reader.reserved.inPlace > 0);
    p.close();
  });

  it('a body abandoned halfway (the sender resets) frees its place; the lane carries the next one in place', async () => {
    const p = await pair();
    const s = await p.client.openStream('/read');
    s.send(frameHeader(FRAME_MESSAGE, 16 << 20));
    if (!s.send(randomBytes(6 << 20))) await s.onDrain();
    // wait until some of it was placed, then reset the stream
    const deadline = Date.now() + 10_000;
    while (p.server.stats.bytesPlaced === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.ok(p.server.stats.bytesPlaced > 0);
    s.abort(new Error('gave up'));
    await assert.rejects(p.bodies[0]!, (e: Error) => e.name === 'StreamResetError');
    const body = randomBytes(8 << 20);
    await sendMessage(p.client, body);
    const { body: got, reader } = await p.bodies[1]!;
    assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(body));
    assert.ok(reader.reserved.inPlace > 0);
    assert.equal(p.server.closed, false);
    p.close();
  });
});

// SUB_HEADER_BYTES is the head the reader decrypts on its own
assert.equal(PLACE_HEAD_BYTES, SUB_HEADER_BYTES);
