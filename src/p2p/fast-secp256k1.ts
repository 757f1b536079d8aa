/**
 * Faster secp256k1 signature checks for libp2p.
 *
 * @libp2p/crypto verifies secp256k1 signatures with @noble/curves, which costs about 1 ms per check plus a point
 * decompression, on the event loop. Every gossipsub message (heartbeats: N peers / 5 s), every noise handshake and
 * every signed peer record pays it; with eight nodes in one test process, heartbeats alone kept a core busy.
 * This module swaps the verify method of libp2p's Secp256k1PublicKey for OpenSSL (node:crypto) with one cached
 * KeyObject per key. It keeps noble's acceptance rules: DER signatures only, and high-S signatures rejected
 * (OpenSSL accepts them; noble does not, and a malleated copy must not pass where the original would be deduped).
 * Installed once, before the first libp2p node is built; a no-op when the prototype has an unexpected shape.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { generateKeyPair } from '@libp2p/crypto/keys';

// secp256k1 group order n / 2, big-endian
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SPKI_PREFIX = Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex');
const CACHE_MAX = 4096;
const keys = new Map<string, KeyObject>();

function keyObject(raw: Uint8Array): KeyObject | undefined {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
  let k = keys.get(id);
  if (k === undefined) {
    if (raw.byteLength !== 33) return undefined;
    try {
      k = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    } catch {
      return undefined;
    }
    if (keys.size >= CACHE_MAX) keys.delete(keys.keys().next().value!);
    keys.set(id, k);
  }
  return k;
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

/** Verifies sha256(data) against a DER signature the way noble does (low-S only), with OpenSSL. */
export function verifySecp256k1(raw: Uint8Array, data: Uint8Array | Iterable<Uint8Array>, sig: Uint8Array): boolean {
  const rs = parseDerSignature(sig);
  if (rs === undefined || rs.r <= 0n || rs.r >= N || rs.s <= 0n || rs.s > HALF_N) return false;
  const key = keyObject(raw);
  if (key === undefined) return false;
  const msg = data instanceof Uint8Array ? data : Buffer.concat([...data]);
  return cryptoVerify('sha256', msg, { key, dsaEncoding: 'der' }, sig);
}

let installed = false;

/** Replaces libp2p's secp256k1 verify with verifySecp256k1 (once per process). */
export async function installFastSecp256k1(): Promise<boolean> {
  if (installed) return true;
  installed = true;
  const sample = (await generateKeyPair('secp256k1')).publicKey;
  const proto = Object.getPrototypeOf(sample) as { verify?: unknown };
  if (typeof proto.verify !== 'function' || !(sample.raw instanceof Uint8Array) || sample.raw.byteLength !== 33) return false;
  proto.verify = function verify(this: { raw: Uint8Array }, data: Uint8Array | Iterable<Uint8Array>, sig: Uint8Array, options?: { signal?: AbortSignal }): boolean {
    options?.signal?.throwIfAborted();
    return verifySecp256k1(this.raw, data, sig);
  };
  return true;
}
