/**
 * liveness-challenge/1.0.0 and liveness-attest/1.0.0 (issue 11 §2; docs/PROTOCOL.md "## Liveness witnesses"): peers
 * witness a node's uptime, so that uptime is never self-claimed. Once per window a witness W
 *
 *   1. sends the subject S a signed challenge: u8 1 ‖ str networkId ‖ W key (33) ‖ S key (33) ‖ u64 timeMs ‖
 *      nonce (32) ‖ W's signature (64) under "neuroshard/liveness-challenge/v1" over every byte before it;
 *   2. S answers, within ANSWER_DEADLINE_MS (2 s) of the challenge being written to the stream, with its signature
 *      (64) under "neuroshard/liveness-answer/v1" over the same challenge bytes (signature included): S's key is
 *      online and answering now. Opening the stream (connection, multistream negotiation) is not counted: that is
 *      the witness's own cost, which under load took most of the 2 s (issue 8); the call as a whole has
 *      CHALLENGE_CALL_MS.
 *   3. W checks the answer and sends S its attestation (ledger/witness.ts): u8 1 ‖ str networkId ‖ u64 epoch ‖ W key
 *      (33) ‖ nonce (32) ‖ signature (64), which S puts into its Uptime ledger event for that window.
 *
 * Each side checks that the key in a message is the key of the peer on the stream, so a challenge or attestation
 * cannot be relayed under another's name. The messages are fixed binary layouts (not protobuf): small, with one
 * encoding each. The subject's handler (handlers/liveness-witness.ts) has its quotas and rate limits.
 */
import { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, publicKeyFromPeerId, signDomain, verifyDomain, type NodeKey } from '../identity/index.js';
import { Reader, Writer } from '../ledger/codec.js';
import { MAX_NETWORK_ID, NONCE_BYTES } from '../ledger/events.js';
import { signAttestation, verifyAttestation, type LivenessAttestation } from '../ledger/witness.js';
import { randomBytes } from 'node:crypto';
import { bytesEqual } from '../util/bytes.js';
import { PeerMisbehaviourError } from '../util/errors.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';
import type { RpcNode } from './rpc/service.js';

export const CHALLENGE_DOMAIN = 'neuroshard/liveness-challenge/v1';
export const ANSWER_DOMAIN = 'neuroshard/liveness-answer/v1';
/**
 * The subject must answer a challenge within this, counted from the moment the challenge is written. Fair to a node
 * busy with inference: the forward passes run in the compute worker thread (src/compute/worker.ts), so the event
 * loop that verifies the challenge and signs the answer (two secp256k1 operations, about 1 ms) stays free; a node
 * whose event loop is blocked for 2 s misses its heartbeats' deadlines too and is not serving well anyway.
 */
export const ANSWER_DEADLINE_MS = 2_000;
/** The whole challenge call, stream open included (a busy witness may need seconds to open a stream). */
export const CHALLENGE_CALL_MS = 10_000;
/** Largest challenge / attestation message: version, network id, two keys, time, nonce, signature. */
/** Room for an ERROR frame (code, message up to 512 characters, fault), which the response limit also bounds. */
const ERROR_FRAME_BYTES = 1024;
const MAX_MESSAGE_BYTES = 1 + 2 + MAX_NETWORK_ID + 2 * PUBLIC_KEY_LENGTH + 8 + NONCE_BYTES + SIGNATURE_LENGTH;

export interface LivenessChallenge {
  networkId: string;
  challenger: Uint8Array;
  subject: Uint8Array;
  timeMs: number;
  nonce: Uint8Array;
  signature: Uint8Array;
}

export interface AttestationMessage {
  networkId: string;
  epoch: number;
  attestation: LivenessAttestation;
}

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', `liveness: ${msg}`);
}

function challengePayload(c: Omit<LivenessChallenge, 'signature'>): Uint8Array {
  return new Writer().u8(1).str(c.networkId, MAX_NETWORK_ID).fixed(c.challenger, PUBLIC_KEY_LENGTH).fixed(c.subject, PUBLIC_KEY_LENGTH).u64(c.timeMs).fixed(c.nonce, NONCE_BYTES).finish();
}

export function encodeChallenge(c: LivenessChallenge): Uint8Array {
  const p = challengePayload(c);
  const out = new Uint8Array(p.byteLength + SIGNATURE_LENGTH);
  out.set(p);
  out.set(c.signature, p.byteLength);
  return out;
}

/** Throws a PeerMisbehaviourError on anything malformed (strict: no trailing bytes). */
export function decodeChallenge(b: Uint8Array): LivenessChallenge {
  try {
    const r = new Reader(b);
    if (r.u8() !== 1) throw malformed('challenge version');
    const c = { networkId: r.str(MAX_NETWORK_ID), challenger: r.fixed(PUBLIC_KEY_LENGTH), subject: r.fixed(PUBLIC_KEY_LENGTH), timeMs: r.u64n(), nonce: r.fixed(NONCE_BYTES), signature: r.fixed(SIGNATURE_LENGTH) };
    r.end();
    return c;
  } catch (e) {
    if (e instanceof PeerMisbehaviourError) throw e;
    throw malformed(`challenge does not decode (${(e as Error).message})`);
  }
}

export function signChallenge(key: NodeKey, c: Omit<LivenessChallenge, 'signature' | 'challenger'>): LivenessChallenge {
  const u = { ...c, challenger: key.publicKey };
  return { ...u, signature: signDomain(key, CHALLENGE_DOMAIN, challengePayload(u)) };
}

export function challengeSignatureValid(c: LivenessChallenge): boolean {
  return verifyDomain(c.challenger, CHALLENGE_DOMAIN, challengePayload(c), c.signature);
}

/** The subject's answer: its signature over the whole challenge (signature included). */
export function signAnswer(key: NodeKey, challengeBytes: Uint8Array): Uint8Array {
  return signDomain(key, ANSWER_DOMAIN, challengeBytes);
}

export function answerValid(subject: Uint8Array, challengeBytes: Uint8Array, answer: Uint8Array): boolean {
  return answer.byteLength === SIGNATURE_LENGTH && verifyDomain(subject, ANSWER_DOMAIN, challengeBytes, answer);
}

export function encodeAttestationMessage(m: AttestationMessage): Uint8Array {
  const a = m.attestation;
  return new Writer().u8(1).str(m.networkId, MAX_NETWORK_ID).u64(m.epoch).fixed(a.witness, PUBLIC_KEY_LENGTH).fixed(a.nonce, NONCE_BYTES).fixed(a.signature, SIGNATURE_LENGTH).finish();
}

export function decodeAttestationMessage(b: Uint8Array): AttestationMessage {
  try {
    const r = new Reader(b);
    if (r.u8() !== 1) throw malformed('attestation version');
    const m = { networkId: r.str(MAX_NETWORK_ID), epoch: r.u64n(), attestation: { witness: r.fixed(PUBLIC_KEY_LENGTH), nonce: r.fixed(NONCE_BYTES), signature: r.fixed(SIGNATURE_LENGTH) } };
    r.end();
    return m;
  } catch (e) {
    if (e instanceof PeerMisbehaviourError) throw e;
    throw malformed(`attestation does not decode (${(e as Error).message})`);
  }
}

const raw: MessageCodec<Uint8Array> = { encode: (v) => v, decode: (b) => b };

export const livenessChallenge: UnaryMethod<Uint8Array, Uint8Array> = {
  name: 'liveness-challenge',
  version: '1.0.0',
  kind: 'unary',
  request: raw,
  response: raw,
  maxRequestBytes: MAX_MESSAGE_BYTES,
  maxResponseBytes: ERROR_FRAME_BYTES, // the answer is 64 bytes (validateResponse); an error frame is larger
  timeoutMs: CHALLENGE_CALL_MS, // the answer's own deadline (ANSWER_DEADLINE_MS) is witnessPeer's answerTimeoutMs
  maxInboundStreams: 2,
  maxConcurrent: 32,
  maxConcurrentPerPeer: 2,
  requestReadMs: ANSWER_DEADLINE_MS,
  validateResponse: (r) => {
    if (r.byteLength !== SIGNATURE_LENGTH) throw malformed(`answer of ${r.byteLength} bytes, not ${SIGNATURE_LENGTH}`);
  },
};

export const livenessAttest: UnaryMethod<Uint8Array, Uint8Array> = {
  name: 'liveness-attest',
  version: '1.0.0',
  kind: 'unary',
  request: raw,
  response: raw,
  maxRequestBytes: MAX_MESSAGE_BYTES,
  maxResponseBytes: ERROR_FRAME_BYTES,
  timeoutMs: 5_000,
  maxInboundStreams: 2,
  maxConcurrent: 32,
  maxConcurrentPerPeer: 2,
  requestReadMs: 2_000,
};

/** The key of the peer on a stream, or a PeerMisbehaviourError when `key` is not it. */
export function checkPeerKey(peer: string, key: Uint8Array, what: string): void {
  let pk: Uint8Array;
  try {
    pk = publicKeyFromPeerId(peer);
  } catch {
    throw new PeerMisbehaviourError('LIVENESS_FORGED', `liveness: ${what} from a peer id without a secp256k1 key`);
  }
  if (!bytesEqual(pk, key)) throw new PeerMisbehaviourError('LIVENESS_FORGED', `liveness: ${what} names a key that is not the calling peer's`);
}

/**
 * Witness side: challenges `peer` (whose key is `subject`) now and, when it answers in time with a valid signature,
 * signs and delivers an attestation for `epoch`. Returns the attestation, or throws (a typed RPC error, a
 * PeerMisbehaviourError for a bad answer, or a timeout). Every call has its deadline (the methods' timeoutMs).
 */
export async function witnessPeer(
  rpc: RpcNode,
  key: NodeKey,
  o: { networkId: string; peer: string; nowMs: number; epoch: number; signal?: AbortSignal; answerTimeoutMs?: number },
): Promise<LivenessAttestation> {
  const subject = publicKeyFromPeerId(o.peer);
  const c = signChallenge(key, { networkId: o.networkId, subject, timeMs: o.nowMs, nonce: new Uint8Array(randomBytes(NONCE_BYTES)) });
  const bytes = encodeChallenge(c);
  const answer = await rpc.call(o.peer, livenessChallenge, bytes, { signal: o.signal, answerTimeoutMs: o.answerTimeoutMs ?? ANSWER_DEADLINE_MS });
  if (!answerValid(subject, bytes, answer)) throw new PeerMisbehaviourError('LIVENESS_BAD_ANSWER', 'liveness: the answer is not the subject\'s signature over our challenge');
  const attestation = signAttestation(key, o.networkId, subject, o.epoch, c.nonce);
  await rpc.call(o.peer, livenessAttest, encodeAttestationMessage({ networkId: o.networkId, epoch: o.epoch, attestation }), { signal: o.signal });
  return attestation;
}

export { verifyAttestation };
