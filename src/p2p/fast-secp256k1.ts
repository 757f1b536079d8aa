/**
 * Faster secp256k1 for libp2p's node key, with noble's acceptance rules kept.
 *
 * @libp2p/crypto does all of its secp256k1 work in @noble/curves (pure JS, BigInt) on the event loop. Every gossipsub
 * message (heartbeats: each node receives every peer's every 5 s, so a node's share grows with the network), every
 * noise handshake and every signed peer record pays it. Three parts are swapped here, each installed once per
 * process before the first libp2p node is built, each a no-op when libp2p's shapes are not what this code expects:
 *
 * - verify (Secp256k1PublicKey.prototype.verify): libsecp256k1 (util/libsecp256k1.ts) where the binding loads,
 *   else OpenSSL (node:crypto) with one cached KeyObject per key. Noble's rules: strict DER only, 1 ≤ r, s < n, and
 *   high-S rejected (OpenSSL accepts it; noble does not, and a malleated copy must not pass where the original
 *   would be deduped).
 * - parsing a key (session 30): Secp256k1PublicKey's constructor decompresses a 33-byte key twice in pure JS
 *   (validate, then compress: ~120 µs quiet), and gossipsub builds two per delivered message (the `from` peer id and
 *   the `key` field). The constructor cannot be reached (ESM bindings, noble's frozen Point), but both parse paths
 *   go through the protobuf codec `PublicKey.decode` of @libp2p/crypto's keys.js, a plain object: the hook below
 *   hands the constructor the 65-byte uncompressed form of the same point, cached per key, which noble then checks
 *   against the curve equation without a square root (~7 µs). The key object is the same: `raw` is noble's
 *   compression of the point, equal to the 33 bytes received.
 * - sign (Secp256k1PrivateKey.prototype.sign): libsecp256k1's ecdsaSign, RFC 6979 like noble, so the signature
 *   bytes are the same as noble's; without the binding OpenSSL with a random nonce, s normalised to low-S. Nothing
 *   depends on libp2p's signatures being deterministic (docs/LIMITS.md "Session 30: heartbeat cost at scale").
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { generateKeyPair, publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { libsecp256k1 } from '../util/libsecp256k1.js';

// secp256k1 group order n and n / 2
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SPKI_PREFIX = Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex');
// SEC1 ECPrivateKey without the optional public key: SEQUENCE { 1, OCTET STRING(32) d, [0] secp256k1 }
const SEC1_PREFIX = Buffer.from('302e0201010420', 'hex');
const SEC1_SUFFIX = Buffer.from('a00706052b8104000a', 'hex');
const CACHE_MAX = 4096;

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/** Which parts are on; experiments switch them off to measure the old path in the same process (A/B). */
const paths = { keyCache: true, sign: true, libsecpVerify: true };

/** Counters of the key cache, for tests and the micro-benchmark. */
export const keyCacheStats = { hits: 0, decompressions: 0, invalid: 0 };
/** Signatures made by the installed sign (tests and experiments tell the paths apart with it). */
export const signStats = { fast: 0 };

/**
 * 33-byte compressed key (as a latin1 string of all its bytes) → the 65-byte uncompressed form of that point. Only
 * keys that decompressed to a valid point whose compression is those exact 33 bytes are stored, and an entry is
 * computed from its own key's bytes alone, so no input can plant an entry under another key. Bounded, least
 * recently used first out: a flood of fresh keys costs what it cost before (one decompression each) and evicts.
 */
const points = new Map<string, Uint8Array>();

function decompress(raw: Uint8Array): Uint8Array | undefined {
  try {
    return libsecp256k1 !== undefined ? libsecp256k1.convert(raw, false) : secp256k1.Point.fromBytes(raw).toBytes(false);
  } catch {
    return undefined;
  }
}

/**
 * The uncompressed form of a 33-byte compressed key, from the cache or decompressed once; undefined when the bytes
 * are not a compressed point. The array is the cache's own: callers copy it before handing it on.
 */
export function uncompressedKey(raw: Uint8Array): Uint8Array | undefined {
  if (raw.byteLength !== 33 || (raw[0] !== 2 && raw[0] !== 3)) return undefined;
  const id = latin1(raw);
  const hit = points.get(id);
  if (hit !== undefined) {
    keyCacheStats.hits++;
    points.delete(id);
    points.set(id, hit);
    return hit;
  }
  keyCacheStats.decompressions++;
  const full = decompress(raw);
  // the point's own compression must be these bytes (x below p, the parity of y): the entry is exactly this key
  if (full === undefined || full.byteLength !== 65 || full[0] !== 4 || (full[64]! & 1) !== (raw[0] & 1) || Buffer.compare(full.subarray(1, 33), raw.subarray(1)) !== 0) {
    keyCacheStats.invalid++;
    return undefined;
  }
  if (points.size >= CACHE_MAX) points.delete(points.keys().next().value!);
  points.set(id, full);
  return full;
}

/** Empties the key cache and its counters (tests, the micro-benchmark's cold runs). */
export function clearKeyCache(): void {
  points.clear();
  keyCacheStats.hits = keyCacheStats.decompressions = keyCacheStats.invalid = 0;
}

/** Keys in the cache (tests check the bound). */
export function keyCacheSize(): number {
  return points.size;
}

/** Parses a strict DER ECDSA signature; undefined when it is not one. */
export function parseDerSignature(sig: Uint8Array): { r: bigint; s: bigint } | undefined {
  if (sig.byteLength < 8 || sig.byteLength > 72 || sig[0] !== 0x30 || sig[1] !== sig.byteLength - 2) return undefined;
  let o = 2;
  const ints: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    if (sig[o] !== 0x02) return undefined;
    const len = sig[o + 1]!;
    if (len === 0 || len > 33 || o + 2 + len > sig.byteLength) return undefined;
    const body = sig.subarray(o + 2, o + 2 + len);
    if ((body[0]! & 0x80) !== 0) return undefined; // negative
    if (len > 1 && body[0] === 0 && (body[1]! & 0x80) === 0) return undefined; // non-minimal
    ints.push(BigInt('0x' + Buffer.from(body).toString('hex')));
    o += 2 + len;
  }
  if (o !== sig.byteLength) return undefined;
  return { r: ints[0]!, s: ints[1]! };
}

/** Minimal DER INTEGER body of a positive value below 2^256. */
function derInt(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  const b = Buffer.from(hex, 'hex');
  return (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), b]) : b;
}

/** The strict DER encoding of (r, s), as noble writes it. */
export function encodeDerSignature(r: bigint, s: bigint): Uint8Array {
  const rb = derInt(r);
  const sb = derInt(s);
  const out = new Uint8Array(6 + rb.length + sb.length);
  out.set([0x30, 4 + rb.length + sb.length, 0x02, rb.length]);
  out.set(rb, 4);
  out.set([0x02, sb.length], 4 + rb.length);
  out.set(sb, 6 + rb.length);
  return out;
}

function be32(v: bigint, out: Uint8Array, off: number): void {
  out.set(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'), off);
}

function digestOf(data: Uint8Array | Iterable<Uint8Array>): Buffer {
  const h = createHash('sha256');
  if (data instanceof Uint8Array) h.update(data);
  else for (const part of data) h.update(part);
  return h.digest();
}

const publicKeyObjects = new Map<string, KeyObject>();

function publicKeyObject(raw: Uint8Array): KeyObject | undefined {
  const id = latin1(raw);
  let k = publicKeyObjects.get(id);
  if (k === undefined) {
    if (raw.byteLength !== 33) return undefined;
    try {
      k = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    } catch {
      return undefined;
    }
    if (publicKeyObjects.size >= CACHE_MAX) publicKeyObjects.delete(publicKeyObjects.keys().next().value!);
    publicKeyObjects.set(id, k);
  }
  return k;
}

/**
 * Verifies sha256(data) against a DER signature the way noble does (strict DER, low-S only): libsecp256k1 with the
 * key's cached uncompressed form where the binding loads, else OpenSSL. `backend` forces one (tests).
 */
export function verifySecp256k1(raw: Uint8Array, data: Uint8Array | Iterable<Uint8Array>, sig: Uint8Array, backend: 'libsecp256k1' | 'openssl' = libsecp256k1 !== undefined ? 'libsecp256k1' : 'openssl'): boolean {
  const rs = parseDerSignature(sig);
  if (rs === undefined || rs.r <= 0n || rs.r >= N || rs.s <= 0n || rs.s > HALF_N) return false;
  if (backend === 'libsecp256k1' && libsecp256k1 !== undefined) {
    const key = uncompressedKey(raw);
    if (key === undefined) return false;
    const compact = new Uint8Array(64);
    be32(rs.r, compact, 0);
    be32(rs.s, compact, 32);
    try {
      return libsecp256k1.verify(compact, digestOf(data), key);
    } catch {
      return false;
    }
  }
  const key = publicKeyObject(raw);
  if (key === undefined) return false;
  const msg = data instanceof Uint8Array ? data : Buffer.concat([...data]);
  return cryptoVerify('sha256', msg, { key, dsaEncoding: 'der' }, sig);
}

const privateKeyObjects = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(raw: Uint8Array): KeyObject {
  let k = privateKeyObjects.get(raw);
  if (k === undefined) {
    k = createPrivateKey({ key: Buffer.concat([SEC1_PREFIX, raw, SEC1_SUFFIX]), format: 'der', type: 'sec1' });
    privateKeyObjects.set(raw, k);
  }
  return k;
}

/**
 * Signs sha256(data) with a 32-byte private key: DER, low-S, verifiable by noble. libsecp256k1 (RFC 6979: the same
 * bytes as noble) where the binding loads, else OpenSSL (a random nonce; s replaced by n − s when above n / 2, since
 * noble rejects high-S). `backend` forces one (tests). Throws on an invalid private key.
 */
export function signSecp256k1(priv: Uint8Array, data: Uint8Array | Iterable<Uint8Array>, backend: 'libsecp256k1' | 'openssl' = libsecp256k1 !== undefined ? 'libsecp256k1' : 'openssl'): Uint8Array {
  if (backend === 'libsecp256k1' && libsecp256k1 !== undefined) {
    const compact = libsecp256k1.sign(digestOf(data), priv);
    return encodeDerSignature(BigInt('0x' + Buffer.from(compact.subarray(0, 32)).toString('hex')), BigInt('0x' + Buffer.from(compact.subarray(32, 64)).toString('hex')));
  }
  const msg = data instanceof Uint8Array ? data : Buffer.concat([...data]);
  const rs = parseDerSignature(cryptoSign('sha256', msg, { key: privateKeyObject(priv), dsaEncoding: 'der' }))!;
  return encodeDerSignature(rs.r, rs.s > HALF_N ? N - rs.s : rs.s);
}

/**
 * Switches parts back to the session-21 path (experiments measuring old against new in one process): the key cache
 * off, noble signing, OpenSSL verifying.
 */
export function setFastSecp256k1Paths(on: { keyCache?: boolean; sign?: boolean; libsecpVerify?: boolean }): void {
  if (on.keyCache !== undefined) paths.keyCache = on.keyCache;
  if (on.sign !== undefined) paths.sign = on.sign;
  if (on.libsecpVerify !== undefined) paths.libsecpVerify = on.libsecpVerify;
}

type Decoded = { Type?: unknown; Data?: Uint8Array };
interface PublicKeyCodec { decode: (buf: Uint8Array, opts?: unknown) => Decoded }

/** Hooks keys.js's PublicKey.decode (see the header); false when the module is not shaped as expected. */
async function installKeyCache(sample: { raw: Uint8Array; type: string }): Promise<boolean> {
  let pb: { PublicKey?: PublicKeyCodec; KeyType?: { secp256k1?: unknown } };
  try {
    // keys.js is not in the package's exports; a file URL reaches the module instance keys/index.js imports
    pb = (await import(new URL('./keys.js', import.meta.resolve('@libp2p/crypto/keys')).href)) as typeof pb;
  } catch {
    return false;
  }
  const codec = pb.PublicKey;
  const secp = pb.KeyType?.secp256k1;
  if (codec === undefined || typeof codec.decode !== 'function' || secp !== 'secp256k1') return false;
  const original = codec.decode;
  codec.decode = function decode(this: unknown, buf: Uint8Array, opts?: unknown): Decoded {
    const out = original.call(this, buf, opts);
    if (paths.keyCache && out.Type === secp && out.Data instanceof Uint8Array) {
      const full = uncompressedKey(out.Data);
      if (full !== undefined) out.Data = full.slice(); // the key object keeps it: never the cache's own array
    }
    return out;
  };
  // the hook must reach the parse libp2p uses, and give the same key back
  const before = keyCacheStats.hits + keyCacheStats.decompressions;
  let ok = false;
  try {
    const k = publicKeyFromProtobuf(publicKeyToProtobuf(sample as never));
    ok = k.type === 'secp256k1' && Buffer.compare(k.raw, sample.raw) === 0 && keyCacheStats.hits + keyCacheStats.decompressions > before;
  } catch {
    ok = false;
  }
  if (!ok) codec.decode = original;
  return ok;
}

let installed: { verify: boolean; keyCache: boolean; sign: boolean } | undefined;

/** Installs the three parts (once per process); says which took. */
export async function installFastSecp256k1(): Promise<{ verify: boolean; keyCache: boolean; sign: boolean }> {
  if (installed !== undefined) return installed;
  installed = { verify: false, keyCache: false, sign: false };
  const priv = await generateKeyPair('secp256k1');
  const sample = priv.publicKey;
  const pubProto = Object.getPrototypeOf(sample) as { verify?: unknown };
  if (typeof pubProto.verify === 'function' && sample.raw instanceof Uint8Array && sample.raw.byteLength === 33) {
    pubProto.verify = function verify(this: { raw: Uint8Array }, data: Uint8Array | Iterable<Uint8Array>, sig: Uint8Array, options?: { signal?: AbortSignal }): boolean {
      options?.signal?.throwIfAborted();
      return paths.libsecpVerify ? verifySecp256k1(this.raw, data, sig) : verifySecp256k1(this.raw, data, sig, 'openssl');
    };
    installed.verify = true;
  }
  installed.keyCache = await installKeyCache(sample);
  const privProto = Object.getPrototypeOf(priv) as { sign?: (data: Uint8Array | Iterable<Uint8Array>, options?: { signal?: AbortSignal }) => Uint8Array };
  const originalSign = privProto.sign;
  if (typeof originalSign === 'function' && priv.raw instanceof Uint8Array && priv.raw.byteLength === 32) {
    privProto.sign = function sign(this: { raw: Uint8Array }, data: Uint8Array | Iterable<Uint8Array>, options?: { signal?: AbortSignal }): Uint8Array {
      options?.signal?.throwIfAborted();
      if (!paths.sign) return originalSign.call(this, data, options);
      try {
        const sig = signSecp256k1(this.raw, data);
        signStats.fast++;
        return sig;
      } catch {
        return originalSign.call(this, data, options); // libp2p's own error for a key it cannot sign with
      }
    };
    // noble must accept what the new path signs
    const msg = Buffer.from('neuroshard fast-secp256k1 self-test');
    let good = false;
    try {
      const sig = priv.sign(msg) as Uint8Array;
      good = secp256k1.verify(sig, createHash('sha256').update(msg).digest(), sample.raw, { prehash: false, format: 'der' });
    } catch {
      good = false;
    }
    if (good) installed.sign = true;
    else privProto.sign = originalSign;
  }
  return installed;
}
