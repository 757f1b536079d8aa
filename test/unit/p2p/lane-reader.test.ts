/**
 * Session 22's bulk path of the direct data lane (docs/PROTOCOL.md "Direct data lane"): frames larger than a socket
 * read are opened as their reads arrive into one plaintext (src/p2p/lane/reader.ts), sealed frames are written in
 * buffers of at most SEAL_PIECE_BYTES (aead.ts `pieceSizes`, `sealEach`) from a bounded pool of spare pieces, and the
 * RPC frame reader takes a large body from a lane as a view (src/protocols/rpc/frame.ts). Both AES-GCM backends.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import {
  LENGTH_BYTES,
  MAX_SPARE_PIECES,
  Opener,
  SEAL_PIECE_BYTES,
  Sealer,
  TAG_BYTES,
  aeadBackend,
  givePiece,
  pieceSizes,
  setAeadBackendForTests,
  sparePieces,
  takePiece,
} from '../../../src/p2p/lane/aead.js';
import { FrameAccumulator } from '../../../src/p2p/lane/codec.js';
import { LaneError } from '../../../src/p2p/lane/errors.js';
import { SealedFrameReader } from '../../../src/p2p/lane/reader.js';
import { STABLE_CHUNKS } from '../../../src/p2p/lane/stream.js';
import { FRAME_MESSAGE, FrameReader, VIEW_MIN_BYTES, frameHeader } from '../../../src/protocols/rpc/frame.js';

const backends = (['openssl', 'node'] as const).filter((b) => {
  if (b === 'node') return true;
  setAeadBackendForTests(undefined);
  return aeadBackend().backend === 'openssl';
});

/** Frames sealed by one Sealer, as one wire. */
function wireOf(key: Buffer, frames: Buffer[][]): Buffer {
  const s = new Sealer(key);
  return Buffer.concat(frames.flatMap((parts) => s.seal(parts)));
}

/** Opens a wire fed in chunks of the given sizes (cycled), with a SealedFrameReader. */
function readAll(key: Buffer, wire: Buffer, sizes: number[], max = 8 << 20): Buffer[] {
  const r = new SealedFrameReader(new Opener(key), max);
  const out: Buffer[] = [];
  for (let o = 0, i = 0; o < wire.length; i++) {
    const k = Math.min(sizes[i % sizes.length]!, wire.length - o);
    // a fresh copy: the reader may decrypt a whole frame in place in its chunk
    r.push(Buffer.from(wire.subarray(o, o + k)), (p) => {
      out.push(Buffer.from(p));
      return true;
    });
    o += k;
  }
  assert.equal(r.midFrame, false);
  return out;
}

describe('lane bulk frames (session 22)', () => {
  after(() => setAeadBackendForTests(undefined));

  it('pieceSizes: pieces of at most SEAL_PIECE_BYTES that add up, the last one holding the whole tag', () => {
    const P = SEAL_PIECE_BYTES;
    for (const total of [20, 21, P - 1, P, P + 1, P + 15, P + 16, P + 17, 2 * P, 2 * P + 3, 4 * P + 60, 17 * P + 8]) {
      const s = pieceSizes(total);
      assert.equal(s.reduce((a, b) => a + b, 0), total, `sum for ${total}`);
      assert.ok(s.every((k) => k > 0 && k <= P), `sizes ${s.join(',')}`);
      assert.ok(s[s.length - 1]! >= TAG_BYTES, `last piece of ${total}`);
      assert.ok(s[0]! >= LENGTH_BYTES);
    }
  });

  for (const b of backends) {
    it(`${b}: frames of every size around the piece boundaries seal to the same bytes as before and open from any split`, () => {
      const key = randomBytes(32);
      const P = SEAL_PIECE_BYTES;
      const sizes = [0, 1, 100, P - 20, P - 19, P - 4, P, P + 1, 2 * P - 20, 2 * P - 8, 2 * P, (1 << 20) + 60];
      const frames = sizes.map((n) => {
        const x = randomBytes(n);
        // several parts, cut at odd places (a sub-frame header, then its payload)
        return n > 10 ? [x.subarray(0, 9), x.subarray(9, Math.floor(n / 2)), x.subarray(Math.floor(n / 2))] : [x];
      });
      setAeadBackendForTests(b);
      const wire = wireOf(key, frames);
      // the other backend opens it too, with the old accumulator (the wire format is unchanged)
      setAeadBackendForTests(b === 'node' ? backends[0] : 'node');
      const acc = new FrameAccumulator(8 << 20);
      acc.push(wire);
      const o = new Opener(key);
      for (const parts of frames) {
        const f = acc.next();
        assert.ok(f !== undefined);
        assert.ok(o.open(f.pieces, f.tag).equals(Buffer.concat(parts)));
      }
      setAeadBackendForTests(b);
      for (const split of [[wire.length], [1], [3, 5, 7], [65536], [4, 65536, 13, 262144], [P + 4]]) {
        const got = readAll(key, wire, split);
        assert.equal(got.length, frames.length, `split ${split.join(',')}`);
        got.forEach((g, i) => assert.ok(g.equals(Buffer.concat(frames[i]!)), `frame ${i} (${sizes[i]} bytes) split ${split.join(',')}`));
      }
    });

    it(`${b}: a tampered frame read over many chunks is refused at its tag, its plaintext zeroed and never delivered`, () => {
      const key = randomBytes(32);
      const x = randomBytes(300_000);
      setAeadBackendForTests(b);
      const wire = wireOf(key, [[Buffer.from('first')], [x]]);
      for (const at of [5 + 4 + 16 + 4 + 10, wire.length - 1, wire.length - 20]) {
        const bad = Buffer.from(wire);
        bad[at]! ^= 1;
        const r = new SealedFrameReader(new Opener(key), 1 << 20);
        const delivered: Buffer[] = [];
        let err: unknown;
        try {
          for (let o = 0; o < bad.length; o += 65536) {
            r.push(Buffer.from(bad.subarray(o, o + 65536)), (p) => {
              delivered.push(p);
              return true;
            });
          }
        } catch (e) {
          err = e;
        }
        assert.ok(err instanceof LaneError && err.code === 'LANE_AUTH', `byte ${at}: ${String(err)}`);
        assert.equal(delivered.length, 1, 'only the honest first frame');
        assert.equal(delivered[0]!.toString(), 'first');
      }
    });

    it(`${b}: the length is checked against the cap before any of the body is taken, split or not`, () => {
      const key = randomBytes(32);
      for (const chunks of [[Buffer.from([0, 0x10, 0, 0x11])], [Buffer.from([0]), Buffer.from([0x10, 0]), Buffer.from([0x11])]]) {
        setAeadBackendForTests(b);
        const r = new SealedFrameReader(new Opener(key), 1 << 20);
        assert.throws(() => {
          for (const c of chunks) r.push(c, () => true);
        }, (e: unknown) => e instanceof LaneError && e.code === 'LANE_OVERSIZED');
      }
      const r = new SealedFrameReader(new Opener(key), 1 << 20);
      assert.throws(() => r.push(Buffer.from([0, 0, 0, 15, 1, 2]), () => true), (e: unknown) => e instanceof LaneError && e.code === 'LANE_MALFORMED');
    });

    it(`${b}: a deliver that returns false (the lane closed) stops the reader in that chunk`, () => {
      const key = randomBytes(32);
      setAeadBackendForTests(b);
      const wire = wireOf(key, [[Buffer.from('a')], [Buffer.from('b')], [Buffer.from('c')]]);
      const r = new SealedFrameReader(new Opener(key), 1 << 20);
      const seen: string[] = [];
      r.push(Buffer.from(wire), (p) => {
        seen.push(p.toString());
        return false;
      });
      assert.deepEqual(seen, ['a']);
    });
  }

  it('spare pieces: a piece is reused only once given back, and the pool is bounded', () => {
    while (sparePieces() > 0) takePiece();
    const a = takePiece();
    const b2 = takePiece();
    assert.notEqual(a, b2);
    assert.equal(a.length, SEAL_PIECE_BYTES);
    givePiece(a);
    assert.equal(sparePieces(), 1);
    assert.equal(takePiece(), a, 'the given-back piece is the next one taken');
    // not a whole piece buffer (a view, another size): never pooled
    givePiece(Buffer.alloc(SEAL_PIECE_BYTES + 1).subarray(1));
    givePiece(Buffer.alloc(100));
    assert.equal(sparePieces(), 0);
    for (let i = 0; i < MAX_SPARE_PIECES + 5; i++) givePiece(Buffer.allocUnsafeSlow(SEAL_PIECE_BYTES));
    assert.equal(sparePieces(), MAX_SPARE_PIECES);
    while (sparePieces() > 0) takePiece();
  });
});

/** A stream-like source of chunks. */
function source(chunks: Uint8Array[], stable: boolean): AsyncIterable<Uint8Array> {
  const s = {
    async *[Symbol.asyncIterator]() {
      for (const c of chunks) yield c;
    },
  };
  if (stable) (s as Record<symbol, unknown>)[STABLE_CHUNKS] = true;
  return s;
}

describe('rpc FrameReader: a large body from a lane is a view (session 22)', () => {
  const body = randomBytes(VIEW_MIN_BYTES + 100);
  const hdr = Buffer.from(frameHeader(FRAME_MESSAGE, body.length));

  it('a stable source, the body in one chunk: the same memory, no copy', async () => {
    const f = await new FrameReader(source([hdr, body], true)).next(1 << 20);
    assert.ok(f !== undefined && Buffer.from(f.body).equals(body));
    assert.equal(f.body.buffer, body.buffer);
    // a plain Uint8Array even from a Buffer chunk: a decoded field's `.slice()` must copy (Buffer's is a view)
    assert.equal(Object.getPrototypeOf(f.body), Uint8Array.prototype);
  });

  it('a small body in one chunk of a stable source is a view too (session 27: a decode step\'s 3 KiB on a hop)', async () => {
    const small = randomBytes(3080);
    // its own memory (not the pool), header and body in one chunk, as a lane frame decrypted in place in its read
    const one = new Uint8Array(Buffer.concat([Buffer.from(frameHeader(FRAME_MESSAGE, small.length)), small]));
    const s = await new FrameReader(source([one], true)).next(1 << 20);
    assert.ok(s !== undefined && Buffer.from(s.body).equals(small));
    assert.equal(s.body.buffer, one.buffer);
    assert.equal(s.body.byteOffset, one.byteLength - small.length);
    assert.equal(Object.getPrototypeOf(s.body), Uint8Array.prototype);
    // two frames in the chunk: each is less than half of the chunk's memory, so each is copied (the half rule)
    const two = new Uint8Array(Buffer.concat([Buffer.from(one), Buffer.from(one)]));
    const r2 = new FrameReader(source([two], true));
    const [a, b] = [await r2.next(1 << 20), await r2.next(1 << 20)];
    assert.ok(a !== undefined && b !== undefined && a.body.buffer !== two.buffer && b.body.buffer !== two.buffer);
    assert.ok(Buffer.from(a.body).equals(small) && Buffer.from(b.body).equals(small));
  });

  it('copies where a view would be unsafe or wasteful: an unmarked source, a small body in a big buffer, a body across chunks, a body that is a small part of its buffer', async () => {
    const unmarked = await new FrameReader(source([hdr, body], false)).next(1 << 20);
    assert.ok(unmarked !== undefined && unmarked.body.buffer !== body.buffer && Buffer.from(unmarked.body).equals(body));
    const small = randomBytes(1000);
    const inBig = new Uint8Array(8192);
    inBig.set(frameHeader(FRAME_MESSAGE, small.length));
    inBig.set(small, 3);
    const s = await new FrameReader(source([inBig.subarray(0, 3 + small.length)], true)).next(1 << 20);
    assert.ok(s !== undefined && s.body.buffer !== inBig.buffer && Buffer.from(s.body).equals(small));
    const smallAcross = await new FrameReader(source([inBig.subarray(0, 500), inBig.subarray(500, 3 + small.length)], true)).next(1 << 20);
    assert.ok(smallAcross !== undefined && smallAcross.body.buffer !== inBig.buffer && Buffer.from(smallAcross.body).equals(small));
    const cut = body.length >> 1;
    const across = await new FrameReader(source([hdr, body.subarray(0, cut), body.subarray(cut)], true)).next(1 << 20);
    assert.ok(across !== undefined && Buffer.from(across.body).equals(body) && across.body.buffer !== body.buffer);
    const big = Buffer.concat([body, randomBytes(body.length * 2)]);
    const part = await new FrameReader(source([hdr, big.subarray(0, body.length)], true)).next(1 << 20);
    assert.ok(part !== undefined && part.body.buffer !== big.buffer && part.body.buffer.byteLength === body.length, 'a view would keep 3x its size alive');
    assert.equal(Object.getPrototypeOf(part.body), Uint8Array.prototype);
    assert.ok(Buffer.from(part.body).equals(body));
  });
});
