/**
 * Domain-separated secp256k1 ECDSA signatures.
 *
 *   digest    = SHA-256( UTF-8(domain) || 0x00 || payload )
 *   signature = 64 bytes r || s (big-endian), deterministic (RFC 6979), low-S (s <= n/2)
 *
 * The domain ("neuroshard/ledger-event/v1", "neuroshard/holder-record/v1", …) keeps a signature made for one
 * purpose from being valid for another; it may not contain a NUL byte, so the encoding is unambiguous.
 *
 * Signing uses @noble/curves. Verification uses libsecp256k1 (the `secp256k1` package's prebuilt N-API binding,
 * loaded without its pure-JS fallback) where it loads: about 5× faster than node:crypto (OpenSSL, generic curve
 * code), which is about 3.5× faster than @noble/curves (issue 11 §4, proof_verify_per_s). Where the binding does
 * not load (a platform without a prebuild, an install without scripts), verification falls back to node:crypto with
 * one cached KeyObject per public key. Both give the same verdicts (test/unit/identity/sign-backends.test.ts).
 * OpenSSL accepts high-S signatures, so the low-S rule is checked here first: (r, n - s) is a second valid
 * signature of the same digest, and accepting it would let anyone re-broadcast a message under new signature bytes
 * (the Python original's replay hole).
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '../util/bytes.js';
import { libsecp256k1 } from '../util/libsecp256k1.js';
import { InvalidArgumentError } from '../util/errors.js';
import type { NodeKey } from './mnemonic.js';

export const SIGNATURE_LENGTH = 64;
export const PUBLIC_KEY_LENGTH = 33;

const DOMAIN_RE = /^[\x21-\x7e]{1,128}$/;
const encoder = new TextEncoder();
const domainTags = new Map<string, Uint8Array>();

/** UTF-8(domain) || 0x00, cached per domain. */
export function domainTag(domain: string): Uint8Array {
  let t = domainTags.get(domain);
  if (t === undefined) {
    if (!DOMAIN_RE.test(domain)) throw new InvalidArgumentError(`signature domain must be 1-128 printable ASCII characters without spaces: ${JSON.stringify(domain)}`);
    const d = encoder.encode(domain);
    t = new Uint8Array(d.length + 1);
    t.set(d);
    domainTags.set(domain, t);
  }
  return t;
}

function taggedMessage(domain: string, payload: Uint8Array): Uint8Array {
  const tag = domainTag(domain);
  const m = new Uint8Array(tag.length + payload.length);
  m.set(tag);
  m.set(payload, tag.length);
  return m;
}

/**
 * Scratch for tag || payload (issue 11 §4, proof_verify_per_s): the one-shot SHA-256 (util/bytes sha256) takes one
 * contiguous input, so the tagged message is laid out here instead of in a fresh array per digest (an ArrayBuffer
 * each, and a Hash object each on the createHash path it replaces). Used synchronously only; grows to the
 * largest message seen up to SCRATCH_MAX (a larger one gets its own array, as before).
 */
let scratch = new Uint8Array(1024);
const SCRATCH_MAX = 64 * 1024;

/** SHA-256(domain tag || payload): the 32 bytes that are actually signed. */
export function signingDigest(domain: string, payload: Uint8Array): Uint8Array {
  const tag = domainTag(domain);
  const n = tag.length + payload.byteLength;
  if (n > SCRATCH_MAX) return sha256(taggedMessage(domain, payload));
  if (n > scratch.length) scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(n, scratch.length * 2)));
  scratch.set(tag);
  scratch.set(payload, tag.length);
  return sha256(scratch.subarray(0, n));
}

/** Signs `payload` under `domain`: 64-byte compact r||s, low-S, deterministic. */
export function signDomain(key: NodeKey, domain: string, payload: Uint8Array): Uint8Array {
  const digest = signingDigest(domain, payload);
  return secp256k1.sign(digest, key.privateKey, { prehash: false, lowS: true, format: 'compact' });
}

// secp256k1 group order n and n/2, big-endian, for the byte-wise range checks below.
const N = fromHexConst('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
const HALF_N = fromHexConst('7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0');

function fromHexConst(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, 'hex'));
}

/** Compares the 32-byte big-endian integer at a[off..off+32) with b. */
function cmp32(a: Uint8Array, off: number, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const x = a[off + i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function isZero32(a: Uint8Array, off: number): boolean {
  for (let i = 0; i < 32; i++) if (a[off + i] !== 0) return false;
  return true;
}

/** True when the 64-byte signature has 1 <= r < n and 1 <= s <= n/2. */
export function isLowS(sig: Uint8Array): boolean {
  if (sig.byteLength !== SIGNATURE_LENGTH) return false;
  if (isZero32(sig, 0) || cmp32(sig, 0, N) >= 0) return false;
  if (isZero32(sig, 32) || cmp32(sig, 32, HALF_N) > 0) return false;
  return true;
}

// DER prefix of a SubjectPublicKeyInfo for a compressed secp256k1 point (id-ecPublicKey, secp256k1, BIT STRING 34).
const SPKI_PREFIX = fromHexConst('3036301006072a8648ce3d020106052b8104000a032200');
const KEY_CACHE_MAX = 16384;
const keyCache = new Map<string, KeyObject | null>();

/** The cached OpenSSL key object of a compressed public key; null when the bytes are not a point on the curve. */
function keyObject(pub: Uint8Array): KeyObject | null {
  const id = Buffer.from(pub.buffer, pub.byteOffset, pub.byteLength).toString('latin1');
  const hit = keyCache.get(id);
  if (hit !== undefined) return hit;
  let ko: KeyObject | null = null;
  if (pub.byteLength === PUBLIC_KEY_LENGTH && (pub[0] === 2 || pub[0] === 3)) {
    const der = new Uint8Array(SPKI_PREFIX.length + PUBLIC_KEY_LENGTH);
    der.set(SPKI_PREFIX);
    der.set(pub, SPKI_PREFIX.length);
    try {
      ko = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
    } catch {
      ko = null; // not on the curve
    }
  }
  // A plain insertion-ordered map as a FIFO cache: bounded memory under a flood of fresh keys.
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(id, ko);
  return ko;
}

/** True when `publicKey` is a valid compressed secp256k1 point. */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  return keyObject(publicKey) !== null;
}

const nativeLib = libsecp256k1;

/**
 * Uncompressed forms of the signers' keys (issue 11 §4, proof_verify_per_s): libsecp256k1 parses a 33-byte key by
 * decompressing it (a field square root, ~10 % of a verification); handed the 65-byte form of the same point it
 * only checks the curve equation, and the verdict is the same (a function of the point, the digest and the
 * signature). A key is converted on its second successful verification (`seenOnce` first), so a flood of one-shot
 * fresh keys costs no conversion and evicts nothing, and only keys that signed something valid are kept;
 * both maps are bounded, first in first out (a key's entry is 33 + 65 bytes).
 */
const POINTS_MAX = 8192;
const points = new Map<string, Uint8Array>();
const seenOnce = new Set<string>();

function bounded<K>(m: Map<K, unknown> | Set<K>): void {
  if (m.size >= POINTS_MAX) m.delete(m.keys().next().value!);
}

/** libsecp256k1 verification of a well-formed 33-byte key (checked by the caller): the cached point when there is one. */
function nativeVerify(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): boolean {
  const lib = nativeLib!;
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, PUBLIC_KEY_LENGTH).toString('latin1');
  const full = points.get(id);
  try {
    if (full !== undefined) return lib.verify(sig, digest, full);
    if (!lib.verify(sig, digest, publicKey)) return false;
  } catch {
    return false; // not a point on the curve
  }
  if (seenOnce.delete(id)) {
    bounded(points);
    points.set(id, lib.convert(publicKey, false));
  } else {
    bounded(seenOnce);
    seenOnce.add(id);
  }
  return true;
}

/** Forgets the cached uncompressed keys (benchmarks that measure cold verification; tests). */
export function clearVerifyKeyCache(): void {
  points.clear();
  seenOnce.clear();
}

/** Keys whose uncompressed form is cached (tests check the bound). */
export function verifyKeyCacheSize(): number {
  return points.size;
}

const native = nativeLib?.verify;

/** Which verifier verifyDomain uses ('libsecp256k1' or 'openssl'): for status output and tests. */
export const verifyBackend: 'libsecp256k1' | 'openssl' = native === undefined ? 'openssl' : 'libsecp256k1';

/** verifyDomain on node:crypto alone (the fallback; tests compare the two backends with it). */
export function verifyDomainOpenssl(publicKey: Uint8Array, domain: string, payload: Uint8Array, sig: Uint8Array): boolean {
  if (!(sig instanceof Uint8Array) || !isLowS(sig)) return false;
  const ko = keyObject(publicKey);
  if (ko === null) return false;
  const msg = taggedMessage(domain, payload);
  return cryptoVerify('sha256', msg, { key: ko, dsaEncoding: 'ieee-p1363' }, sig);
}

/**
 * Verifies a signature made by signDomain. Returns false (never throws) for a malformed key or signature, a
 * high-S signature, or a signature that does not match.
 */
export function verifyDomain(publicKey: Uint8Array, domain: string, payload: Uint8Array, sig: Uint8Array): boolean {
  if (native === undefined) return verifyDomainOpenssl(publicKey, domain, payload, sig);
  if (!(sig instanceof Uint8Array) || !isLowS(sig)) return false;
  // the same key rules as the OpenSSL path: 33 bytes, compressed prefix (libsecp256k1 would also take 65 bytes)
  if (!(publicKey instanceof Uint8Array) || publicKey.byteLength !== PUBLIC_KEY_LENGTH || (publicKey[0] !== 2 && publicKey[0] !== 3)) return false;
  return nativeVerify(sig, signingDigest(domain, payload), publicKey);
}

/**
 * verifyDomain for a caller that already holds `digest` = signingDigest(domain, payload) (the ledger: an event's id
 * and its verdict-cache key are that digest), so libsecp256k1 is not handed a second SHA-256 of the same bytes. Same
 * verdicts as verifyDomain when `digest` is that digest; callers compute it from `payload` themselves, never take it
 * from the message (another message's digest would verify that message's signature). The OpenSSL fallback hashes
 * `payload` and ignores `digest`.
 */
export function verifyDomainDigest(publicKey: Uint8Array, domain: string, payload: Uint8Array, digest: Uint8Array, sig: Uint8Array): boolean {
  if (native === undefined || !(digest instanceof Uint8Array) || digest.byteLength !== 32) return verifyDomain(publicKey, domain, payload, sig);
  if (!(sig instanceof Uint8Array) || !isLowS(sig)) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.byteLength !== PUBLIC_KEY_LENGTH || (publicKey[0] !== 2 && publicKey[0] !== 3)) return false;
  return nativeVerify(sig, digest, publicKey);
}

/** The other valid signature of the same digest, (r, n - s): used by tests to prove malleated copies fail. */
export function malleate(sig: Uint8Array): Uint8Array {
  const s = secp256k1.Signature.fromBytes(sig, 'compact');
  const n = secp256k1.Point.Fn.ORDER;
  return new secp256k1.Signature(s.r, n - s.s).toBytes('compact');
}
