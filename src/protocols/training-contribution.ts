/**
 * TrainingContribution: one holder's compressed pseudo-gradient Δ for one layer in one outer round, signed by the
 * sender's node key, so it cannot be replayed into another round, passed off for another layer or attributed to
 * another peer (the aggregation record, and the ledger's training receipts after it, name the signer).
 *
 * Binary encoding, version 1, integers little-endian except where noted; `str` = u16 length ‖ UTF-8:
 *
 *   u8    version       = 1
 *   str   networkId     (≤ 128 bytes)
 *   u64   round         (outer round number, < 2^53)
 *   str   layer         the layer id: "embed", "layers.<i>", "head" (≤ 64 bytes, [A-Za-z0-9._-])
 *   u8    compression   0 none, 1 fp16, 2 int8, 3 sparse (training/compression/codec.ts)
 *   u32   n             elements of the layer
 *   u32   payloadLength ‖ payload bytes
 *   33 B  sender's compressed secp256k1 public key
 *   64 B  signature (compact r‖s, low-S) under the domain "neuroshard/training-contribution/v1" over every byte above
 *
 * `decodeContribution` checks, in this order and before any decompression: total size (≤ the caller's limit),
 * structure, network, round, layer, element count, compression kind, sender key and signature; then the injected
 * payload validator (training's decodeDelta: exact layout, finite values). Each failure is a PeerMisbehaviourError
 * with its own code, so the caller can penalise the sender (docs/PROTOCOL.md "## Training contributions").
 */
import { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, signDomain, verifyDomain, type NodeKey } from '../identity/index.js';
import { bytesEqual } from '../util/bytes.js';
import { InvalidArgumentError, PeerMisbehaviourError } from '../util/errors.js';

export const TRAINING_CONTRIBUTION_DOMAIN = 'neuroshard/training-contribution/v1';
export const TRAINING_CONTRIBUTION_VERSION = 1;
export const CONTRIBUTION_COMPRESSIONS = ['none', 'fp16', 'int8', 'sparse'] as const;
export type ContributionCompression = (typeof CONTRIBUTION_COMPRESSIONS)[number];

export const CONTRIBUTION_LIMITS = Object.freeze({
  maxNetworkIdBytes: 128,
  maxLayerIdBytes: 64,
  /** Elements of one layer: a hard ceiling (2^28, 1 GiB in fp32; the largest embedding of the ladder, 32 k × 7168, is
   * 229 M); the caller's per-layer expectation is exact. */
  maxElements: 1 << 28,
  /** Hard ceiling on one encoded contribution. */
  maxBytes: 1 << 30,
});

export interface ContributionFields {
  networkId: string;
  round: number;
  layer: string;
  compression: ContributionCompression;
  /** Elements of the layer (the decoded Δ's length). */
  n: number;
  payload: Uint8Array;
}

export interface TrainingContribution extends ContributionFields {
  /** 33-byte compressed public key of the sender. */
  sender: Uint8Array;
  signature: Uint8Array;
}

export interface ContributionExpectation {
  networkId: string;
  round: number;
  layer: string;
  n: number;
  compression: ContributionCompression;
  /** The public key of the peer the bytes came from (the stream's remote peer). */
  sender: Uint8Array;
  /** Largest acceptable encoding in bytes (default: fp32 of n elements plus the envelope). */
  maxBytes?: number;
  /** Checks the payload (layout, finite values); throws a PeerMisbehaviourError. */
  validatePayload?: (compression: ContributionCompression, n: number, payload: Uint8Array) => void;
}

const LAYER_RE = /^[A-Za-z0-9._-]+$/;
const NETWORK_RE = /^[A-Za-z0-9._-]+$/;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function err(code: string, message: string, meta?: Record<string, unknown>): PeerMisbehaviourError {
  return new PeerMisbehaviourError(code, `training contribution: ${message}`, meta);
}

function checkFields(f: ContributionFields, thrower: (m: string) => Error): void {
  const nb = enc.encode(f.networkId).length;
  if (nb === 0 || nb > CONTRIBUTION_LIMITS.maxNetworkIdBytes || !NETWORK_RE.test(f.networkId)) throw thrower(`bad networkId`);
  const lb = enc.encode(f.layer).length;
  if (lb === 0 || lb > CONTRIBUTION_LIMITS.maxLayerIdBytes || !LAYER_RE.test(f.layer)) throw thrower(`bad layer id`);
  if (!Number.isSafeInteger(f.round) || f.round < 0) throw thrower(`round ${f.round} must be an integer in 0..2^53-1`);
  if (!Number.isInteger(f.n) || f.n < 0 || f.n > CONTRIBUTION_LIMITS.maxElements) throw thrower(`n ${f.n} out of range`);
  if (!CONTRIBUTION_COMPRESSIONS.includes(f.compression)) throw thrower(`unknown compression`);
}

/** The bytes that are signed (everything but the signature). */
function body(f: ContributionFields, sender: Uint8Array): Uint8Array {
  const net = enc.encode(f.networkId);
  const layer = enc.encode(f.layer);
  const size = 1 + 2 + net.length + 8 + 2 + layer.length + 1 + 4 + 4 + f.payload.length + PUBLIC_KEY_LENGTH;
  const out = new Uint8Array(size + SIGNATURE_LENGTH);
  const dv = new DataView(out.buffer);
  let o = 0;
  dv.setUint8(o++, TRAINING_CONTRIBUTION_VERSION);
  dv.setUint16(o, net.length, true);
  out.set(net, (o += 2));
  o += net.length;
  dv.setBigUint64(o, BigInt(f.round), true);
  o += 8;
  dv.setUint16(o, layer.length, true);
  out.set(layer, (o += 2));
  o += layer.length;
  dv.setUint8(o++, CONTRIBUTION_COMPRESSIONS.indexOf(f.compression));
  dv.setUint32(o, f.n, true);
  dv.setUint32((o += 4), f.payload.length, true);
  out.set(f.payload, (o += 4));
  o += f.payload.length;
  out.set(sender, o);
  return out;
}

/** Signs and encodes a contribution with the node's key. */
export function encodeContribution(key: NodeKey, f: ContributionFields): Uint8Array {
  checkFields(f, (m) => new InvalidArgumentError(`training contribution: ${m}`));
  const out = body(f, key.publicKey);
  const signed = out.subarray(0, out.length - SIGNATURE_LENGTH);
  out.set(signDomain(key, TRAINING_CONTRIBUTION_DOMAIN, signed), signed.length);
  return out;
}

/** Envelope overhead besides the payload, for a network id and layer id of these byte lengths. */
export function contributionOverhead(networkIdBytes: number, layerIdBytes: number): number {
  return 1 + 2 + networkIdBytes + 8 + 2 + layerIdBytes + 1 + 4 + 4 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH;
}

/** Parses and fully validates a contribution received from a peer against what this round and layer expect. */
export function decodeContribution(bytes: Uint8Array, expect: ContributionExpectation): TrainingContribution {
  const limit = Math.min(
    CONTRIBUTION_LIMITS.maxBytes,
    expect.maxBytes ?? 4 * expect.n + contributionOverhead(enc.encode(expect.networkId).length, enc.encode(expect.layer).length),
  );
  if (bytes.byteLength > limit) throw err('CONTRIBUTION_TOO_LARGE', `${bytes.byteLength} bytes > limit ${limit}`, { bytes: bytes.byteLength, limit });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (k: number): void => {
    if (o + k > bytes.byteLength) throw err('CONTRIBUTION_MALFORMED', `truncated at byte ${o}`);
  };
  const str = (max: number, what: string): string => {
    need(2);
    const len = dv.getUint16(o, true);
    o += 2;
    if (len > max) throw err('CONTRIBUTION_MALFORMED', `${what} longer than ${max} bytes`);
    need(len);
    try {
      return dec.decode(bytes.subarray(o, (o += len)));
    } catch {
      throw err('CONTRIBUTION_MALFORMED', `${what} is not UTF-8`);
    }
  };
  need(1);
  const version = dv.getUint8(o++);
  if (version !== TRAINING_CONTRIBUTION_VERSION) throw err('CONTRIBUTION_MALFORMED', `version ${version} is not ${TRAINING_CONTRIBUTION_VERSION}`);
  const networkId = str(CONTRIBUTION_LIMITS.maxNetworkIdBytes, 'networkId');
  need(8);
  const round64 = dv.getBigUint64(o, true);
  o += 8;
  if (round64 > BigInt(Number.MAX_SAFE_INTEGER)) throw err('CONTRIBUTION_MALFORMED', 'round out of range');
  const round = Number(round64);
  const layer = str(CONTRIBUTION_LIMITS.maxLayerIdBytes, 'layer');
  need(9);
  const kind = dv.getUint8(o++);
  const n = dv.getUint32(o, true);
  const plen = dv.getUint32(o + 4, true);
  o += 8;
  need(plen + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH);
  const payload = bytes.subarray(o, (o += plen));
  const sender = bytes.subarray(o, (o += PUBLIC_KEY_LENGTH));
  const signature = bytes.subarray(o, (o += SIGNATURE_LENGTH));
  if (o !== bytes.byteLength) throw err('CONTRIBUTION_MALFORMED', `${bytes.byteLength - o} trailing bytes`);
  const compression = CONTRIBUTION_COMPRESSIONS[kind];
  if (compression === undefined) throw err('CONTRIBUTION_MALFORMED', `compression code ${kind}`);
  if (networkId !== expect.networkId) throw err('CONTRIBUTION_WRONG_NETWORK', `for network ${networkId}, not ${expect.networkId}`);
  if (round !== expect.round) throw err('CONTRIBUTION_WRONG_ROUND', `for round ${round}, this is round ${expect.round}`, { round, expected: expect.round });
  if (layer !== expect.layer) throw err('CONTRIBUTION_WRONG_LAYER', `for layer ${layer}, expected ${expect.layer}`, { layer, expected: expect.layer });
  if (n !== expect.n) throw err('CONTRIBUTION_WRONG_SIZE', `${n} elements, the layer has ${expect.n}`);
  if (compression !== expect.compression) throw err('CONTRIBUTION_WRONG_COMPRESSION', `${compression}, the network uses ${expect.compression}`);
  if (!bytesEqual(sender, expect.sender)) throw err('CONTRIBUTION_WRONG_SENDER', 'signed by another key than the sending peer');
  if (!verifyDomain(sender, TRAINING_CONTRIBUTION_DOMAIN, bytes.subarray(0, bytes.byteLength - SIGNATURE_LENGTH), signature)) {
    throw err('CONTRIBUTION_BAD_SIGNATURE', 'signature does not verify');
  }
  expect.validatePayload?.(compression, n, payload);
  return { networkId, round, layer, compression, n, payload, sender: sender.slice(), signature: signature.slice() };
}

/**
 * The round and layer a contribution claims, read from its header without checking anything else (the receiver
 * picks what to expect from them, then `decodeContribution` checks everything). Undefined when unreadable.
 */
export function peekContribution(bytes: Uint8Array): { round: number; layer: string } | undefined {
  try {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint8(0) !== TRAINING_CONTRIBUTION_VERSION) return undefined;
    let o = 1;
    const nl = dv.getUint16(o, true);
    o += 2 + nl;
    const r = dv.getBigUint64(o, true);
    o += 8;
    if (r > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const ll = dv.getUint16(o, true);
    o += 2;
    if (ll > CONTRIBUTION_LIMITS.maxLayerIdBytes || o + ll > bytes.byteLength) return undefined;
    return { round: Number(r), layer: dec.decode(bytes.subarray(o, o + ll)) };
  } catch {
    return undefined;
  }
}
