/**
 * An event's signature check on wire bytes, for verify-pool.ts's worker threads: the envelope's header (the signer,
 * the payload's signing digest, the signature) without decoding the body, and the verdict-cache key of an accepted
 * signature. Kept apart from events.ts and verify.ts so that a worker loads this module, identity/sign.ts and
 * util/bytes.ts only (about 20 modules): through events.ts it loaded identity/index.ts and with it libp2p's crypto,
 * peer-id and multiformats, 174 modules and about 250 ms of CPU per worker start, ~10 % of a 20,000-event sync's
 * CPU (issue 11 §4, session 16). events.ts and verify.ts re-export what they used to define here.
 */
import { domainTag, SIGNATURE_LENGTH, verifyDomainDigest } from '../identity/sign.js';
import { sha256 } from '../util/bytes.js';

export const EVENT_DOMAIN = 'neuroshard/ledger-event/v1';
export const EVENT_VERSION = 1;
/** Every event but a slash; a proof with its HolderRecord is about 1.5 KiB at most. */
export const MAX_EVENT_BYTES = 8 * 1024;
/** A slash carries up to two evidence events. */
export const MAX_SLASH_BYTES = 2 * MAX_EVENT_BYTES + 1024;

/**
 * What a signature check needs of wire bytes, without decoding the body: the signer (read where decodeEvent reads
 * it), the signing digest of the payload (decodeEvent's id) and the signature; null when the header does not parse.
 * For the verify pool's threads (acceptedSignatureKeyOfBytes): the digest commits to the whole payload, so an event
 * that later decodes with this digest has this signer and this signature's verdict, and one that does not decode is
 * dropped at ingest whatever its signature.
 */
export function signedParts(bytes: Uint8Array): { signer: Uint8Array; digest: Uint8Array; signature: Uint8Array } | null {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength > MAX_SLASH_BYTES || bytes.byteLength < SIGNATURE_LENGTH + 2) return null;
  const n = bytes.byteLength - SIGNATURE_LENGTH;
  if (bytes[0] !== EVENT_VERSION || n < 4) return null;
  const at = 4 + ((bytes[2]! << 8) | bytes[3]!); // u8 version ‖ u8 kind ‖ u16 length ‖ networkId ‖ signer
  if (at + 33 > n) return null;
  const tag = domainTag(EVENT_DOMAIN);
  const signed = new Uint8Array(tag.byteLength + n);
  signed.set(tag);
  signed.set(bytes.subarray(0, n), tag.byteLength);
  return { signer: bytes.subarray(at, at + 33), digest: sha256(signed), signature: bytes.subarray(n) };
}

/** The verdict-cache key (verify.ts) of a signature over `digest` (the payload's signing digest): the digest and the signature bytes. */
export function verdictKeyOf(digest: Uint8Array, signature: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1') + Buffer.from(signature.buffer, signature.byteOffset, 64).toString('latin1');
}

/**
 * The verifier thread's entry: the verdict-cache key of the event in `bytes` when its signature verifies, else null.
 * Only the header is read (signedParts: the signer, and the payload's signing digest, which is decodeEvent's id), not
 * the body, whose decode took a fifth of the thread's time (issue 11 §4). Bytes whose header does not parse: null
 * (ingest drops them). The same key and check as verify.ts eventSignatureValid.
 */
export function acceptedSignatureKeyOfBytes(bytes: Uint8Array): string | null {
  const p = signedParts(bytes);
  if (p === null) return null;
  return verifyDomainDigest(p.signer, EVENT_DOMAIN, bytes.subarray(0, bytes.byteLength - 64), p.digest, p.signature) ? verdictKeyOf(p.digest, p.signature) : null;
}
