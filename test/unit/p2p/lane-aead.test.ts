/**
 * The lane's two AES-256-GCM implementations (src/p2p/lane/aead.ts): OpenSSL through the `neuroshard_aead` addon
 * (src/tensor/native/aead.cc, one context per direction, only the IV renewed per frame) and node:crypto (a new
 * cipher per frame). Both must give the same bytes: the addon against the NIST GCM vectors and against node:crypto
 * on random frames, each side's frames opened by the other, tampered frames refused by both, and nothing of a
 * refused frame returned. Without the addon (NEUROSHARD_SKIP_NATIVE=1 at install) the addon's cases are skipped.
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Opener, Sealer, aeadBackend, setAeadBackendForTests, type GcmContextCtor as Ctor } from '../../../src/p2p/lane/aead.js';
import { FrameAccumulator } from '../../../src/p2p/lane/codec.js';
import { LaneError } from '../../../src/p2p/lane/errors.js';
import { findPackageRoot } from '../../../src/util/package-root.js';


const addonPath = join(findPackageRoot() ?? '.', 'build', 'Release', 'neuroshard_aead.node');
const Gcm: Ctor | undefined = existsSync(addonPath) ? (createRequire(import.meta.url)(addonPath) as { GcmContext: Ctor }).GcmContext : undefined;
const skip = Gcm === undefined ? `${addonPath} not built` : false;
const h = (s: string): Buffer => Buffer.from(s, 'hex');

/** AES-256 cases 13-16 of McGrew & Viega, "The Galois/Counter Mode of Operation" (the NIST GCM submission). */
const K15 = 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308';
const P15 =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255';
const C15 =
  '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad';
const VECTORS = [
  { name: 'case 13', key: '00'.repeat(32), iv: '00'.repeat(12), aad: '', pt: '', ct: '', tag: '530f8afbc74536b9a963b4f1c4cb738b' },
  { name: 'case 14', key: '00'.repeat(32), iv: '00'.repeat(12), aad: '', pt: '00'.repeat(16), ct: 'cea7403d4d606b6e074ec5d3baf39d18', tag: 'd0d1c8a799996bf0265b98b5d48ab919' },
  { name: 'case 15', key: K15, iv: 'cafebabefacedbaddecaf888', aad: '', pt: P15, ct: C15, tag: 'b094dac5d93471bdec1a502270e3cc6c' },
  { name: 'case 16', key: K15, iv: 'cafebabefacedbaddecaf888', aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2', pt: P15.slice(0, 120), ct: C15.slice(0, 120), tag: '76fc6ece0f4e1768cddf8853bb2d551b' },
];

function frameOf(wire: Buffer): { pieces: Buffer[]; tag: Buffer } {
  const acc = new FrameAccumulator(1 << 20);
  acc.push(wire);
  const f = acc.next();
  assert.ok(f !== undefined);
  return f;
}

function sealWith(b: 'openssl' | 'node', key: Buffer, frames: Buffer[][]): Buffer {
  setAeadBackendForTests(b);
  const s = new Sealer(key);
  return Buffer.concat(frames.flatMap((parts) => s.seal(parts)));
}

function openAllWith(b: 'openssl' | 'node', key: Buffer, wire: Buffer, consume: boolean): Buffer[] {
  setAeadBackendForTests(b);
  const o = new Opener(key);
  const acc = new FrameAccumulator(1 << 20);
  const out: Buffer[] = [];
  // socket-like reads of 5,000 bytes: frames in one piece and in several
  for (let i = 0; i < wire.length; i += 5000) {
    acc.push(Buffer.from(wire.subarray(i, i + 5000)));
    for (let f = acc.next(); f !== undefined; f = acc.next()) out.push(Buffer.from(o.open(f.pieces, f.tag, consume)));
  }
  return out;
}

describe('lane AES-256-GCM: the addon and node:crypto', () => {
  after(() => setAeadBackendForTests(undefined));

  it('the addon gives the NIST GCM vectors, in place and into another buffer, and refuses their tampered tags', { skip }, () => {
    for (const v of VECTORS) {
      const e = new Gcm!(h(v.key), true);
      const out = Buffer.alloc(v.pt.length / 2 + 16);
      e.begin(h(v.iv), h(v.aad));
      e.update(h(v.pt), out, 0);
      e.finishEncrypt(out, v.pt.length / 2);
      assert.equal(out.toString('hex'), v.ct + v.tag, v.name);
      // node:crypto agrees with the vector too (the vector was copied right)
      const c = createCipheriv('aes-256-gcm', h(v.key), h(v.iv));
      c.setAAD(h(v.aad));
      assert.equal(Buffer.concat([c.update(h(v.pt)), c.final(), c.getAuthTag()]).toString('hex'), v.ct + v.tag, v.name);
      const d = new Gcm!(h(v.key), false);
      const buf = h(v.ct);
      d.begin(h(v.iv), h(v.aad));
      d.update(buf, buf);
      assert.equal(d.finishDecrypt(h(v.tag)), true, v.name);
      assert.equal(buf.toString('hex'), v.pt, v.name);
      for (const flip of [0, 15]) {
        const bad = h(v.tag);
        bad[flip]! ^= 0x80;
        d.begin(h(v.iv), h(v.aad));
        d.update(h(v.ct), Buffer.alloc(v.ct.length / 2));
        assert.equal(d.finishDecrypt(bad), false, `${v.name} tag byte ${flip}`);
      }
      // a context is reused: the same frame twice gives the same bytes (only the IV is set per frame)
      e.begin(h(v.iv), h(v.aad));
      const again = Buffer.alloc(out.length);
      e.update(h(v.pt), again);
      e.finishEncrypt(again, v.pt.length / 2);
      assert.deepEqual(again, out);
    }
  });

  it('the addon checks every length and offset', { skip }, () => {
    const e = new Gcm!(randomBytes(32), true);
    assert.throws(() => new Gcm!(randomBytes(31), true), RangeError);
    assert.throws(() => e.update(Buffer.alloc(4), Buffer.alloc(4)), /outside a frame/);
    assert.throws(() => e.begin(Buffer.alloc(11), Buffer.alloc(0)), RangeError);
    e.begin(Buffer.alloc(12), Buffer.alloc(4));
    assert.throws(() => e.update(Buffer.alloc(8), Buffer.alloc(7)), RangeError);
    assert.throws(() => e.update(Buffer.alloc(8), Buffer.alloc(8), 1), RangeError);
    assert.throws(() => e.update(Buffer.alloc(8), Buffer.alloc(8), -1), RangeError);
    const shared = Buffer.alloc(16);
    assert.throws(() => e.update(shared.subarray(0, 8), shared, 4), /overlap/);
    assert.throws(() => e.finishEncrypt(Buffer.alloc(16), 1), RangeError);
    assert.throws(() => (e as unknown as { finishDecrypt(t: Uint8Array): boolean }).finishDecrypt(Buffer.alloc(16)), /encrypting context/);
  });

  it('both implementations seal random frames to the same bytes and open each other\'s', { skip }, () => {
    const key = randomBytes(32);
    // sizes around the edges: empty, a decode step, a frame's worth, several parts, a piece cut across reads
    const frames = [[0], [1], [3081], [9, 3072], [16], [17], [9, 262_135], [100, 0, 7], [65_536], [9, 70_000]].map((sizes) => sizes.map((n) => randomBytes(n)));
    const a = sealWith('openssl', key, frames);
    const b = sealWith('node', key, frames);
    assert.equal(a.length, b.length);
    assert.ok(a.equals(b), 'the addon and node:crypto sealed different bytes');
    const plain = frames.map((parts) => Buffer.concat(parts));
    for (const by of ['openssl', 'node'] as const) for (const consume of [false, true]) assert.deepEqual(openAllWith(by, key, a, consume), plain, `${by} consume=${consume}`);
    // random frames, many: one context reused across all of them
    const many = Array.from({ length: 200 }, () => [randomBytes(Math.floor(Math.random() * 5000))]);
    assert.ok(sealWith('openssl', key, many).equals(sealWith('node', key, many)));
  });

  it('a tampered frame fails LANE_AUTH under both, returning nothing; open() without consume leaves the pieces as they were', { skip }, () => {
    const key = randomBytes(32);
    const wire = sealWith('openssl', key, [[randomBytes(300)]]);
    for (const by of ['openssl', 'node'] as const) {
      for (const i of [3, 4, 150, wire.length - 16, wire.length - 1]) {
        const bad = Buffer.from(wire);
        bad[i]! ^= 0x01;
        setAeadBackendForTests(by);
        const acc = new FrameAccumulator(1 << 20);
        acc.push(bad);
        const f = acc.next();
        if (f === undefined) continue; // the length grew: the frame never completes
        const before = Buffer.concat(f.pieces);
        assert.throws(() => new Opener(key).open(f.pieces, f.tag), (e) => e instanceof LaneError && e.code === 'LANE_AUTH', `${by} byte ${i}`);
        assert.deepEqual(Buffer.concat(f.pieces), before, `${by}: pieces changed by a non-consuming open`);
      }
      // a frame opened without consume opens again under a fresh opener (the pieces are still ciphertext)
      setAeadBackendForTests(by);
      const f = frameOf(Buffer.from(wire));
      const p1 = Buffer.from(new Opener(key).open(f.pieces, f.tag));
      assert.deepEqual(new Opener(key).open(f.pieces, f.tag), p1);
    }
  });

  it('reports which implementation the lane uses', () => {
    setAeadBackendForTests(undefined);
    const b = aeadBackend();
    if (Gcm !== undefined && process.env.NEUROSHARD_LANE_AEAD !== 'js') assert.equal(b.backend, 'openssl');
    else assert.equal(b.backend, 'node');
  });
});
