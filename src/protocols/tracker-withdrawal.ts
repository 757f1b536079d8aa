/**
 * TrackerWithdrawal: the signed statement "peer P leaves network N's tracker list as of T", which a node sends to
 * `POST /withdraw` of every tracker it announced to when it stops, so its HolderRecord does not linger there for
 * the tracker's ttl. The tracker may not import protocols/, so node/tracker.ts injects this parser and verifier
 * (as it does the HolderRecord one); docs/PROTOCOL.md "## Tracker" documents the encoding with a test vector.
 *
 * Canonical encoding, version 1; integers big-endian; `str` = u16 byte length ‖ UTF-8 bytes:
 *
 *   u8   version     = 1
 *   str  networkId
 *   str  peerId
 *   u64  timestampMs
 *
 * signed with the node key under its own domain "neuroshard/tracker-withdraw/v1" (identity's signDomain), so no
 * HolderRecord or ledger signature can be passed off as a withdrawal or the other way round. The signer's public key
 * is the one inside `peerId`: nobody can withdraw another peer's record. The JSON form carries the same fields with
 * the signature in padded base64; parsing is strict (unknown keys are refused).
 */
import { type NodeKey, peerIdFromPublicKey, publicKeyFromPeerId, signDomain, verifyDomain } from '../identity/index.js';
import { PeerMisbehaviourError } from '../util/errors.js';
import { HOLDER_RECORD_LIMITS } from './holder-record.js';

export const TRACKER_WITHDRAWAL_DOMAIN = 'neuroshard/tracker-withdraw/v1';
export const TRACKER_WITHDRAWAL_VERSION = 1;

export interface TrackerWithdrawalFields {
  networkId: string;
  peerId: string;
  /** When the peer signed the withdrawal, Unix ms: it removes a held record signed at or before this instant. */
  timestampMs: number;
}

export interface TrackerWithdrawal extends TrackerWithdrawalFields {
  /** Padded base64 of the 64-byte compact low-S secp256k1 signature. */
  signature: string;
}

export type TrackerWithdrawalRejection = 'peer_id_invalid' | 'bad_signature' | 'from_future' | 'too_old';

export type TrackerWithdrawalVerdict = { ok: true } | { ok: false; reason: TrackerWithdrawalRejection; message: string };

const FIELDS = ['networkId', 'peerId', 'timestampMs', 'signature'] as const;
const NETWORK_ID_RE = /^[A-Za-z0-9._-]+$/;
const BASE58_RE = /^[1-9A-HJ-NP-Za-km-z]+$/;
const BASE64_SIG_RE = /^[A-Za-z0-9+/]{86}==$/;
/** The largest JSON form: two bounded strings, an integer, a signature and the keys, with room to spare. */
export const TRACKER_WITHDRAWAL_MAX_JSON_BYTES = 1024;

function malformed(message: string, field?: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('TRACKER_WITHDRAWAL_MALFORMED', `tracker withdrawal: ${message}`, field === undefined ? undefined : { field });
}

function tooLarge(message: string, field: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('TRACKER_WITHDRAWAL_TOO_LARGE', `tracker withdrawal: ${message}`, { field });
}

function checkFields(o: Record<string, unknown>): TrackerWithdrawalFields {
  const { networkId, peerId, timestampMs } = o;
  if (typeof networkId !== 'string' || networkId.length === 0) throw malformed('networkId must be a non-empty string', 'networkId');
  if (networkId.length > HOLDER_RECORD_LIMITS.maxNetworkIdLength) throw tooLarge('networkId is too long', 'networkId');
  if (!NETWORK_ID_RE.test(networkId)) throw malformed('networkId may hold only A-Z a-z 0-9 . _ -', 'networkId');
  if (typeof peerId !== 'string' || peerId.length === 0) throw malformed('peerId must be a non-empty string', 'peerId');
  if (peerId.length > HOLDER_RECORD_LIMITS.maxPeerIdLength) throw tooLarge('peerId is too long', 'peerId');
  if (!BASE58_RE.test(peerId)) throw malformed('peerId must be base58btc', 'peerId');
  if (typeof timestampMs !== 'number' || !Number.isSafeInteger(timestampMs) || timestampMs < 1) {
    throw malformed('timestampMs must be an integer in 1..2^53-1', 'timestampMs');
  }
  return { networkId, peerId, timestampMs };
}

function checkSignature(v: unknown): string {
  if (typeof v !== 'string') throw malformed('signature must be a string', 'signature');
  if (v.length > 88) throw tooLarge('signature is too long', 'signature');
  if (!BASE64_SIG_RE.test(v) || Buffer.from(v, 'base64').toString('base64') !== v) throw malformed('signature must be 64 bytes in canonical padded base64', 'signature');
  return v;
}

/**
 * Strictly parses a withdrawal from a decoded JSON value; a fresh object that shares nothing with the input.
 * Throws PeerMisbehaviourError TRACKER_WITHDRAWAL_MALFORMED / TRACKER_WITHDRAWAL_TOO_LARGE. It checks neither the
 * signature nor the clock: that is verifyTrackerWithdrawal.
 */
export function parseTrackerWithdrawal(json: unknown): TrackerWithdrawal {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw malformed('must be a JSON object');
  const proto = Object.getPrototypeOf(json) as unknown;
  if (proto !== Object.prototype && proto !== null) throw malformed('must be a plain JSON object');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(FIELDS as readonly string[]).includes(k)) throw malformed(`unknown field ${JSON.stringify(k.slice(0, 64))}`);
  for (const k of FIELDS) if (!(k in o)) throw malformed(`missing field ${k}`);
  return { ...checkFields(o), signature: checkSignature(o.signature) };
}

/** The JSON object of a withdrawal, keys in canonical order (what the client sends). */
export function trackerWithdrawalToJson(w: TrackerWithdrawal): TrackerWithdrawal {
  return { networkId: w.networkId, peerId: w.peerId, timestampMs: w.timestampMs, signature: w.signature };
}

/** The canonical payload that is signed (see the file comment); the fields are validated first. */
export function trackerWithdrawalPayload(fields: TrackerWithdrawalFields): Uint8Array {
  const f = checkFields(fields as unknown as Record<string, unknown>);
  const net = Buffer.from(f.networkId, 'utf8');
  const peer = Buffer.from(f.peerId, 'utf8');
  const out = Buffer.alloc(1 + 2 + net.length + 2 + peer.length + 8);
  let o = out.writeUInt8(TRACKER_WITHDRAWAL_VERSION, 0);
  o = out.writeUInt16BE(net.length, o);
  o += net.copy(out, o);
  o = out.writeUInt16BE(peer.length, o);
  o += peer.copy(out, o);
  out.writeBigUInt64BE(BigInt(f.timestampMs), o);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Signs a withdrawal of our own record from `networkId`'s list, dated `timestampMs`; peerId is the key's. */
export function signTrackerWithdrawal(key: NodeKey, content: { networkId: string; timestampMs: number }): TrackerWithdrawal {
  const fields = checkFields({ networkId: content.networkId, peerId: peerIdFromPublicKey(key.publicKey), timestampMs: content.timestampMs });
  const sig = signDomain(key, TRACKER_WITHDRAWAL_DOMAIN, trackerWithdrawalPayload(fields));
  return { ...fields, signature: Buffer.from(sig).toString('base64') };
}

/**
 * Checks a parsed withdrawal against the clock (cheap, first: a flood of old withdrawals costs no signature check)
 * and its signature against the key inside peerId. `maxAgeMs` bounds how old it may be: an old withdrawal is useless
 * to an honest peer and, bounded, its replay window is too. Never throws for a bad withdrawal.
 */
export function verifyTrackerWithdrawal(w: TrackerWithdrawal, opts: { nowMs: number; maxSkewMs: number; maxAgeMs: number }): TrackerWithdrawalVerdict {
  if (w.timestampMs > opts.nowMs + opts.maxSkewMs) {
    return { ok: false, reason: 'from_future', message: `withdrawal is signed ${w.timestampMs - opts.nowMs} ms in the future (allowed skew ${opts.maxSkewMs} ms)` };
  }
  if (w.timestampMs < opts.nowMs - opts.maxAgeMs) {
    return { ok: false, reason: 'too_old', message: `withdrawal was signed ${opts.nowMs - w.timestampMs} ms ago (at most ${opts.maxAgeMs} ms allowed)` };
  }
  let pub: Uint8Array;
  try {
    pub = publicKeyFromPeerId(w.peerId);
  } catch (e) {
    return { ok: false, reason: 'peer_id_invalid', message: (e as Error).message };
  }
  let payload: Uint8Array;
  let sig: Uint8Array;
  try {
    payload = trackerWithdrawalPayload(w);
    sig = new Uint8Array(Buffer.from(checkSignature(w.signature), 'base64'));
  } catch (e) {
    return { ok: false, reason: 'bad_signature', message: (e as Error).message };
  }
  if (!verifyDomain(pub, TRACKER_WITHDRAWAL_DOMAIN, payload, sig)) {
    return { ok: false, reason: 'bad_signature', message: 'signature does not verify against the key of peerId' };
  }
  return { ok: true };
}
