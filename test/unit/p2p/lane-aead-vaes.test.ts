/**
 * The addon's own AES-256-GCM kernel (src/tensor/native/aead.cc `vgcm`: 512-bit VAES and VPCLMULQDQ, used where the
 * CPU has them) gives GCM's bytes: the NIST vectors, and node:crypto's and OpenSSL's output on thousands of random
 * keys, IVs, AADs and lengths (0, 1, 15, 16, 17, … 1 MiB + 3) fed in update calls split at odd boundaries, encrypting
 * and decrypting, in place and into another buffer; every tampered tag is refused. On a CPU without the instructions
 * both kernels are OpenSSL's and the cases still hold (they then check nothing new).
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { GcmContextCtor as Ctor } from '../../../src/p2p/lane/aead.js';
import { findPackageRoot } from '../../../src/util/package-root.js';
import { Rng } from '../../../src/util/rng.js';

const addonPath = join(findPackageRoot() ?? '.', 'build', 'Release', 'neuroshard_aead.node');
const mod = existsSync(addonPath) ? (createRequire(import.meta.url)(addonPath) as { GcmContext?: Ctor; vaes?: boolean }) : undefined;
const Gcm = mod?.GcmContext;
const skip = Gcm === undefined ? `${addonPath} not built (or without OpenSSL headers)` : false;
const h = (s: string): Buffer => Buffer.from(s, 'hex');

const K15 = 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308';
const P15 =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255';
const C15 =
  '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad';
/** AES-256 cases 13-16 of McGrew & Viega, "The Galois/Counter Mode of Operation" (the NIST GCM submission). */
const VECTORS = [
  { key: '00'.repeat(32), iv: '00'.repeat(12), aad: '', pt: '', ct: '', tag: '530f8afbc74536b9a963b4f1c4cb738b' },
  { key: '00'.repeat(32), iv: '00'.repeat(12), aad: '', pt: '00'.repeat(16), ct: 'cea7403d4d606b6e074ec5d3baf39d18', tag: 'd0d1c8a799996bf0265b98b5d48ab919' },
  { key: K15, iv: 'cafebabefacedbaddecaf888', aad: '', pt: P15, ct: C15, tag: 'b094dac5d93471bdec1a502270e3cc6c' },
  { key: K15, iv: 'cafebabefacedbaddecaf888', aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2', pt: P15.slice(0, 120), ct: C15.slice(0, 120), tag: '76fc6ece0f4e1768cddf8853bb2d551b' },
];

const KERNELS = ['auto', 'openssl'] as const;

function reference(key: Buffer, iv: Buffer, aad: Buffer, pt: Buffer): { ct: Buffer; tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return { ct, tag: c.getAuthTag() };
}

/** Cut points of n bytes: random pieces of up to `max` bytes, odd sizes included. */
function splits(rng: Rng, n: number, max: number): number[] {
  const cuts: number[] = [];
  for (let o = 0; o < n; ) {
    o = Math.min(n, o + 1 + rng.int(max));
    cuts.push(o);
  }
  return cuts;
}

function seal(kernel: 'auto' | 'openssl', key: Buffer, iv: Buffer, aad: Buffer, pt: Buffer, cuts: number[], inPlace: boolean): { ct: Buffer; tag: Buffer } {
  const e = new Gcm!(key, true, kernel);
  e.begin(iv, aad);
  const ct = inPlace ? Buffer.from(pt) : Buffer.alloc(pt.length + 5);
  let from = 0;
  for (const to of cuts) {
    if (inPlace) e.update(ct.subarray(from, to), ct, from);
    else e.update(pt.subarray(from, to), ct, from + 5);
    from = to;
  }
  const tag = Buffer.alloc(20);
  e.finishEncrypt(tag, 3);
  return { ct: inPlace ? ct : ct.subarray(5), tag: tag.subarray(3, 19) };
}

function open(kernel: 'auto' | 'openssl', key: Buffer, iv: Buffer, aad: Buffer, ct: Buffer, tag: Buffer, cuts: number[], inPlace: boolean): { ok: boolean; pt: Buffer } {
  const d = new Gcm!(key, false, kernel);
  d.begin(iv, aad);
  const out = inPlace ? Buffer.from(ct) : Buffer.alloc(ct.length);
  let from = 0;
  for (const to of cuts) {
    d.update((inPlace ? out : ct).subarray(from, to), out, from);
    from = to;
  }
  return { ok: d.finishDecrypt(tag), pt: out };
}

describe('lane AES-256-GCM: the VAES-512 kernel', () => {
  it('reports its kernel: vaes512 by default where the CPU has it, openssl when asked', { skip }, () => {
    const k = Buffer.alloc(32);
    assert.equal(new Gcm!(k, true, 'openssl').kernel?.(), 'openssl');
    assert.equal(new Gcm!(k, true).kernel?.(), mod!.vaes === true ? 'vaes512' : 'openssl');
    assert.throws(() => new Gcm!(k, true, 'fast' as never), RangeError);
  });

  it('gives the NIST GCM vectors and refuses every one-bit change of their tags', { skip }, () => {
    for (const kernel of KERNELS) {
      for (const v of VECTORS) {
        const pt = h(v.pt);
        for (const inPlace of [false, true]) {
          const r = seal(kernel, h(v.key), h(v.iv), h(v.aad), pt, splits(new Rng(pt.length + 1), pt.length, 7), inPlace);
          assert.equal(r.ct.toString('hex'), v.ct, `${kernel} ct`);
          assert.equal(r.tag.toString('hex'), v.tag, `${kernel} tag`);
          const o = open(kernel, h(v.key), h(v.iv), h(v.aad), h(v.ct), h(v.tag), [pt.length], inPlace);
          assert.ok(o.ok);
          assert.equal(o.pt.toString('hex'), v.pt);
        }
        for (let bit = 0; bit < 128; bit++) {
          const bad = h(v.tag);
          bad[bit >> 3]! ^= 1 << (bit & 7);
          assert.equal(open(kernel, h(v.key), h(v.iv), h(v.aad), h(v.ct), bad, [h(v.ct).length], false).ok, false, `${kernel} bit ${bit}`);
        }
      }
    }
  });

  it('matches node:crypto and OpenSSL on thousands of random keys, IVs, AADs, lengths and update splits', { skip }, () => {
    const rng = new Rng(23);
    const edge = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 239, 240, 255, 256, 257, 271, 272, 511, 512, 513, 4095, 4096, 4097, 65_535, 65_536, 65_537];
    let cases = 0;
    const one = (n: number, maxPiece: number): void => {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const aad = randomBytes([0, 1, 4, 15, 16, 17, 40][rng.int(7)]!);
      const pt = randomBytes(n);
      const want = reference(key, iv, aad, pt);
      const cuts = splits(rng, n, maxPiece);
      const inPlace = rng.next() < 0.5;
      for (const kernel of KERNELS) {
        const got = seal(kernel, key, iv, aad, pt, cuts, inPlace);
        assert.ok(got.ct.equals(want.ct) && got.tag.equals(want.tag), `${kernel}: ${n} bytes, aad ${aad.length}, cuts ${cuts.slice(0, 8).join(',')}`);
        const back = open(kernel, key, iv, aad, want.ct, want.tag, splits(rng, n, maxPiece), !inPlace);
        assert.ok(back.ok && back.pt.equals(pt), `${kernel} open: ${n} bytes`);
        if (n > 0) {
          // a changed ciphertext byte or AAD fails the tag
          const ct = Buffer.from(want.ct);
          ct[rng.int(n)]! ^= 1 << rng.int(8);
          assert.equal(open(kernel, key, iv, aad, ct, want.tag, [n], false).ok, false);
        }
        if (aad.length > 0) {
          const a = Buffer.from(aad);
          a[rng.int(a.length)]! ^= 0x80;
          assert.equal(open(kernel, key, iv, a, want.ct, want.tag, n === 0 ? [] : [n], false).ok, false);
        }
      }
      cases++;
    };
    for (const n of edge) for (let t = 0; t < 12; t++) one(n, [1, 7, 16, 100, 300, n + 1][t % 6]!);
    for (let t = 0; t < 2000; t++) one(rng.int(3000), 1 + rng.int(600));
    for (const n of [(1 << 20) + 3, 4 << 20]) for (let t = 0; t < 3; t++) one(n, [65_536, 262_144, 1_000_003][t]!);
    assert.ok(cases > 2300);
  });

  it('one context carries many frames: each begin starts afresh (a frame left unfinished leaves nothing behind)', { skip }, () => {
    const rng = new Rng(5);
    const key = randomBytes(32);
    const e = new Gcm!(key, true);
    for (let f = 0; f < 200; f++) {
      const iv = randomBytes(12);
      const pt = randomBytes(rng.int(2000));
      if (f % 7 === 3) {
        // an abandoned frame: begun, half fed, never finished
        e.begin(iv, Buffer.alloc(4));
        e.update(pt.subarray(0, pt.length >> 1), Buffer.alloc(pt.length));
      }
      const want = reference(key, iv, Buffer.alloc(4), pt);
      e.begin(iv, Buffer.alloc(4));
      const ct = Buffer.alloc(pt.length);
      let from = 0;
      for (const to of splits(rng, pt.length, 50)) {
        e.update(pt.subarray(from, to), ct, from);
        from = to;
      }
      const tag = Buffer.alloc(16);
      e.finishEncrypt(tag);
      assert.ok(ct.equals(want.ct) && tag.equals(want.tag), `frame ${f}`);
    }
  });
});
