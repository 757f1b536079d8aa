/**
 * Signed pushes (session 30, docs/PROTOCOL.md "Pushed activations"). A session told to push (`push_to`) makes an
 * ephemeral Ed25519 key pair and answers the entry its public key over its own authenticated stream, so the entry
 * knows it is that hop's key for that session. The entry hands it to the next hop (`push_from_key`); every push is
 * signed over a domain-separated message naming the receiving session, the position, the pushed tensor's dtype and
 * shape and the SHA-256 of its bytes as sent; the receiver verifies each push before taking it and returns the
 * attestation beside its `input_digest`. When that digest does not match the entry's copy of the pusher's answer,
 * `judgePushMismatch` says which of the two hops lied.
 *
 * Ed25519 through node:crypto rather than the node's secp256k1 key: a secp256k1 signature costs ~0.5 ms in this
 * code base's pure-JS implementation, Ed25519 a few tens of µs in OpenSSL (docs/LIMITS.md "Session 30: signed
 * pushes"), and a fresh key per session binds a signature to a session even if its id were reused.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { DType } from './pb/node.js';
import { activationTensor, toFloat32, type WireDType, type WireTensor } from './tensor-wire.js';

/** Domain separation: a signature over this message can be nothing but a push of this protocol. */
const TAG = Buffer.from('neuroshard/inference-push/1.0.0/attestation\0', 'utf8');
export const PUSH_KEY_BYTES = 32;
export const PUSH_SIGNATURE_BYTES = 64;
export const PUSH_DIGEST_BYTES = 32;
/** Session ids are checked to be at most this long on the wire (methods.ts checkId); the message's length prefix is a u16. */
const MAX_ID_BYTES = 0xffff;

/** The 12-byte DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw 32-byte key follows. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface PushSigner {
  /** The raw 32-byte public key (the answer's push_key). */
  publicKey: Uint8Array<ArrayBuffer>;
  privateKey: KeyObject;
}

/** What a pusher signed and the receiver hands back to the entry. */
export interface PushAttestationData {
  dtype: 'fp32' | 'fp16' | 'bf16';
  /** SHA-256 of the pushed tensor's bytes as sent. */
  digest: Uint8Array;
  signature: Uint8Array;
}

export function newPushSigner(): PushSigner {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { publicKey: new Uint8Array(der.subarray(der.length - PUSH_KEY_BYTES)), privateKey };
}

/** A raw 32-byte Ed25519 public key as a KeyObject (throws on a malformed one; callers check the length first). */
export function pushVerifier(publicKey: Uint8Array): KeyObject {
  if (publicKey.byteLength !== PUSH_KEY_BYTES) throw new RangeError(`an Ed25519 public key is ${PUSH_KEY_BYTES} bytes`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

/** The dtype's number in the signed message: its field number in node.proto's DType enum. */
const DTYPE_CODE: Record<'fp32' | 'fp16' | 'bf16', number> = { fp32: 1, fp16: 2, bf16: 5 };

/** The signed message: tag ‖ u16 len ‖ session id ‖ u32 position ‖ u8 dtype ‖ u8 rank ‖ u32 dims ‖ digest. */
export function pushMessage(sessionId: string, position: number, dtype: 'fp32' | 'fp16' | 'bf16', shape: readonly number[], digest: Uint8Array): Buffer {
  const id = Buffer.from(sessionId, 'utf8');
  if (id.length > MAX_ID_BYTES || shape.length > 255 || digest.byteLength !== PUSH_DIGEST_BYTES) throw new RangeError('push attestation fields out of range');
  const out = Buffer.alloc(TAG.length + 2 + id.length + 4 + 2 + 4 * shape.length + PUSH_DIGEST_BYTES);
  let at = TAG.copy(out, 0);
  at = out.writeUInt16BE(id.length, at);
  at += id.copy(out, at);
  at = out.writeUInt32BE(position >>> 0, at);
  at = out.writeUInt8(DTYPE_CODE[dtype], at);
  at = out.writeUInt8(shape.length, at);
  for (const d of shape) at = out.writeUInt32BE(d >>> 0, at);
  out.set(digest, at);
  return out;
}

export function sha256(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** Hop k: signs a push of `t` (its bytes as they go on the wire) for position `position` of the next hop's session. */
export function signPush(signer: PushSigner, sessionId: string, position: number, t: WireTensor, digest: Uint8Array = sha256(t.data)): Uint8Array<ArrayBuffer> {
  if (t.dtype !== 'fp32' && t.dtype !== 'fp16' && t.dtype !== 'bf16') throw new RangeError(`a push is fp32, fp16 or bf16, not ${t.dtype}`);
  return new Uint8Array(sign(null, pushMessage(sessionId, position, t.dtype, t.shape, digest), signer.privateKey));
}

/** Whether `signature` is the pusher's over these fields (false for any malformed input, never throws). */
export function verifyPush(key: KeyObject, sessionId: string, position: number, dtype: WireDType, shape: readonly number[], digest: Uint8Array, signature: Uint8Array): boolean {
  if (dtype !== 'fp32' && dtype !== 'fp16' && dtype !== 'bf16') return false;
  if (signature.byteLength !== PUSH_SIGNATURE_BYTES || digest.byteLength !== PUSH_DIGEST_BYTES) return false;
  try {
    return verify(null, pushMessage(sessionId, position, dtype, shape, digest), key, signature);
  } catch {
    return false;
  }
}

/** Who lied when a pushed step's input digest does not match the entry's copy of the pusher's answer. */
export type PushBlame = 'receiver' | 'pusher';

/**
 * The entry's verdict on a digest mismatch at a pushed boundary (hop k pushed to hop k+1; hop k+1 answered
 * `input_digest` ≠ the digest of the entry's copy of hop k's answer rounded to the session's dtype):
 *
 * - no attestation, or one that does not verify under hop k's session key for this session, position and [T, C]:
 *   hop k+1 lied (it verifies every push before it runs on it, so an honest one always holds a valid attestation);
 * - it verifies and names bytes other than hop k's answer re-encoded in the attested dtype: hop k pushed other values
 *   than it answered (the pusher);
 * - it names hop k's answer, and those bytes rounded to the session's dtype (as hop k+1 rounds a push, the function
 *   the entry rounds with) are the bytes the entry expects: an honest hop k+1 would have reported the expected
 *   digest, so hop k+1 lied about what it ran on (the receiver);
 * - it names hop k's answer in a dtype whose rounding to the session's differs from rounding the answer directly
 *   (a double rounding, e.g. fp32 → fp16 → bf16): hop k chose a push that is not what it answered (the pusher).
 *
 * `answer`: the entry's copy of hop k's output [T, C] (decoded from the dtype hop k answered in: fp32 for the
 * driver hop, the entry's wire otherwise; exactly representable there, so re-encoding it in that dtype gives back
 * hop k's bytes). Pure: no I/O, the same verdict for the same arguments.
 */
export function judgePushMismatch(a: {
  pusherKey: KeyObject | undefined;
  sessionId: string;
  position: number;
  T: number;
  C: number;
  wire: 'f32' | 'f16' | 'bf16';
  answer: Float32Array;
  attestation: PushAttestationData | undefined;
}): PushBlame {
  const at = a.attestation;
  // (no key: the entry never set this boundary up as signed, and never arms one that is not; the receiver is the one
  // holding a step it cannot account for)
  if (at === undefined || a.pusherKey === undefined) return 'receiver';
  const shape = [a.T, a.C];
  if (!verifyPush(a.pusherKey, a.sessionId, a.position, at.dtype, shape, at.digest, at.signature)) return 'receiver';
  if (a.answer.length !== a.T * a.C) return 'pusher';
  const wireOf = (d: 'fp32' | 'fp16' | 'bf16'): 'f32' | 'f16' | 'bf16' => (d === 'fp16' ? 'f16' : d === 'bf16' ? 'bf16' : 'f32');
  const pushed = activationTensor(a.answer, shape, wireOf(at.dtype));
  if (!Buffer.from(sha256(pushed.data)).equals(Buffer.from(at.digest))) return 'pusher';
  // the attested bytes are hop k's answer: what an honest receiver ran on is their rounding to the session's dtype
  const ran = at.dtype === dtypeOf(a.wire) ? pushed : activationTensor(toFloat32(pushed), shape, a.wire);
  const expected = activationTensor(a.answer, shape, a.wire);
  return Buffer.from(ran.data).equals(Buffer.from(expected.data)) ? 'receiver' : 'pusher';
}

function dtypeOf(w: 'f32' | 'f16' | 'bf16'): 'fp32' | 'fp16' | 'bf16' {
  return w === 'f16' ? 'fp16' : w === 'bf16' ? 'bf16' : 'fp32';
}

/** The pb enum of an attestation's dtype, and back (undefined for anything but fp32 / fp16 / bf16). */
export function attestationDtypeToPb(d: 'fp32' | 'fp16' | 'bf16'): DType {
  return d === 'fp16' ? DType.FP16 : d === 'bf16' ? DType.BF16 : DType.FP32;
}
export function attestationDtypeFromPb(d: DType): 'fp32' | 'fp16' | 'bf16' | undefined {
  return d === DType.FP32 ? 'fp32' : d === DType.FP16 ? 'fp16' : d === DType.BF16 ? 'bf16' : undefined;
}
