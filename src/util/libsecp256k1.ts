/**
 * libsecp256k1 (the `secp256k1` package's prebuilt N-API binding), loaded once for the two places that check and
 * make secp256k1 signatures on a hot path: identity/sign.ts (ledger events, holder records) and p2p/fast-secp256k1.ts
 * (libp2p's node key: gossipsub, noise, peer records). Only the binding is loaded: the package's main entry would
 * fall back to elliptic.js, slower than what each caller falls back to (node:crypto). Undefined where the binding
 * does not load (a platform without a prebuild, an install without scripts) or NEUROSHARD_NO_LIBSECP256K1=1.
 */
import { createRequire } from 'node:module';

export interface Libsecp256k1 {
  /** ecdsaVerify(sig64 r||s, msg32, pubkey 33 or 65): true, false (also for high-S), or throws on a key or
   * signature it cannot parse (r or s ≥ n). */
  verify(sig: Uint8Array, msg32: Uint8Array, pub: Uint8Array): boolean;
  /** publicKeyConvert(pubkey, compressed): the other form of a valid key; throws on bytes that are not a point. */
  convert(pub: Uint8Array, compressed: boolean): Uint8Array;
  /** ecdsaSign(msg32, seckey): RFC 6979 nonce (no extra entropy), low-S; 64-byte r||s. */
  sign(msg32: Uint8Array, seckey: Uint8Array): Uint8Array;
}

function load(): Libsecp256k1 | undefined {
  if (process.env.NEUROSHARD_NO_LIBSECP256K1 === '1') return undefined;
  try {
    const lib = createRequire(import.meta.url)('secp256k1/bindings') as {
      ecdsaVerify: (sig: Uint8Array, msg32: Uint8Array, pub: Uint8Array) => boolean;
      publicKeyConvert: (pub: Uint8Array, compressed: boolean) => Uint8Array;
      ecdsaSign: (msg32: Uint8Array, seckey: Uint8Array) => { signature: Uint8Array; recid: number };
    };
    if (typeof lib.ecdsaVerify !== 'function' || typeof lib.publicKeyConvert !== 'function' || typeof lib.ecdsaSign !== 'function') return undefined;
    return {
      verify: lib.ecdsaVerify.bind(lib),
      convert: lib.publicKeyConvert.bind(lib),
      sign: (msg32, seckey) => lib.ecdsaSign(msg32, seckey).signature,
    };
  } catch {
    return undefined;
  }
}

export const libsecp256k1: Libsecp256k1 | undefined = load();
