/**
 * The NeuroShard node service: every RPC with its protocol name, call shape, size limits and deadline. These
 * numbers are DoS policy as much as protocol (docs/LIMITS.md lists them with their reasons; docs/PROTOCOL.md
 * "## RPC" lists the messages). Decoding applies repeated-field limits before the message is built, and each
 * message is validated beyond its encoding (tensor shapes, spans, string lengths).
 */
import { PeerMisbehaviourError } from '../util/errors.js';
import * as pb from './pb/node.js';
import type { Codec } from 'protons-runtime';
import type { BidiMethod, MessageCodec, ServerStreamMethod, UnaryMethod } from './rpc/method.js';
import { encodeMessageFramed, encodeMessageParts } from './rpc/parts.js';
import { MAX_TENSOR_RANK, tensorFromPb } from './tensor-wire.js';
import { LEDGER_SYNC_LIMITS } from '../ledger/interfaces.js';
import { MAX_HOPS as MAX_ROUTE_HOPS } from '../ledger/events.js';
import { spanText } from '../util/span-text.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Longest id-like string field (session ids, request ids, model hashes, names). */
export const MAX_ID_CHARS = 128;
/** Most tokens in one inference request (a prompt chunk). */
export const MAX_TOKENS_PER_REQUEST = 8192;
/** A receipt for the driver (hop-commitment.ts): 18 hops of 161 bytes and the rest fit in 4 KiB. */
export const MAX_RECEIPT_BYTES = 4096;
/** Largest layer index a span may name. */
export const MAX_LAYER = 65535;

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', msg);
}

function checkId(s: string, what: string, required = false): void {
  if (s.length > MAX_ID_CHARS) throw malformed(`${what}: longer than ${MAX_ID_CHARS} characters`);
  if (required && s.length === 0) throw malformed(`${what}: missing`);
}

function checkSpan(s: pb.Span | undefined, what: string, required = false): void {
  if (s === undefined) {
    if (required) throw malformed(`${what}: missing`);
    return;
  }
  if (!(s.start < s.end) || s.end > MAX_LAYER + 1) throw malformed(`${what}: bad span ${spanText(s)}`);
}

const TENSOR_LIMITS = { shape: MAX_TENSOR_RANK };

/** A protons namespace with decode limits applied. */
function codec<T>(ns: { encode(v: Partial<T>): Uint8Array; decode(b: Uint8Array, opts?: { limits?: never }): T; codec(): Codec<T> }, limits?: object): MessageCodec<T> {
  return {
    encode: (v) => ns.encode(v),
    encodeParts: (v) => encodeMessageParts(ns.codec(), v),
    encodeFramed: (v, kind) => encodeMessageFramed(ns.codec(), v, kind),
    decode: (b) => ns.decode(b, limits === undefined ? undefined : ({ limits } as { limits: never })),
  };
}

export const echo: UnaryMethod<pb.EchoRequest, pb.EchoResponse> = {
  name: 'echo',
  version: '1.0.0',
  kind: 'unary',
  request: codec(pb.EchoRequest, { tensor: TENSOR_LIMITS }),
  response: codec(pb.EchoResponse, { tensor: TENSOR_LIMITS }),
  maxRequestBytes: 17 * MiB,
  maxResponseBytes: 17 * MiB,
  timeoutMs: 30_000,
  maxInboundStreams: 32,
  maxConcurrent: 64,
  validateRequest: (r) => {
    tensorFromPb(r.tensor, 'echo.tensor', true);
  },
  validateResponse: (r) => {
    tensorFromPb(r.tensor, 'echo.tensor', true);
  },
};

export const shardInfo: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = {
  name: 'shard-info',
  version: '1.0.0',
  kind: 'unary',
  request: codec(pb.ShardInfoRequest),
  response: codec(pb.ShardInfo),
  maxRequestBytes: 64,
  maxResponseBytes: 4 * KiB,
  timeoutMs: 5_000,
  maxInboundStreams: 8,
  maxConcurrent: 256,
  validateResponse: (r) => {
    checkId(r.peerId, 'shard-info.peer_id', true);
    checkId(r.modelHash, 'shard-info.model_hash');
    checkSpan(r.span, 'shard-info.span');
    if (!Number.isFinite(r.load) || r.load < 0) throw malformed('shard-info.load: not a non-negative number');
  },
};

export const holderRecord: UnaryMethod<pb.HolderRecordRequest, pb.HolderRecordResponse> = {
  name: 'holder-record',
  version: '1.0.0',
  kind: 'unary',
  request: codec(pb.HolderRecordRequest),
  response: codec(pb.HolderRecordResponse),
  maxRequestBytes: 64,
  // a binary HolderRecord is at most 4,608 bytes (HOLDER_RECORD_LIMITS.maxEncodedBytes)
  maxResponseBytes: 4608 + 16,
  timeoutMs: 5_000,
  maxInboundStreams: 8,
  maxConcurrent: 256,
  // the record itself is checked by the caller against the DHT rules (signature, key, expiry)
};

/** Commit and receipt requests (issue 11 §2) carry no activations and bounded bytes (hop-commitment.ts). */
function checkHopCommitRequest(r: pb.InferenceRequest): void {
  if (r.commitRequest === undefined && r.receipt === undefined) return;
  if (r.hidden !== undefined || r.tokens.length > 0 || r.chunks.length > 0) throw malformed('inference-stream: a commit or receipt request carries no activations');
  if (r.commitRequest !== undefined && r.receipt !== undefined) throw malformed('inference-stream: commit_request and receipt in one request');
  if (r.commitRequest !== undefined && (r.commitRequest.length !== 32 || (r.commitCount ?? 0) < 1 || r.commitCount! > MAX_ROUTE_HOPS || (r.commitIndex ?? 0) >= r.commitCount!)) {
    throw malformed(`inference-stream.commit_request: a 32-byte request id and index < count <= ${MAX_ROUTE_HOPS}`);
  }
  if (r.receipt !== undefined && (r.receipt.length < 1 || r.receipt.length > MAX_RECEIPT_BYTES)) throw malformed(`inference-stream.receipt: 1..${MAX_RECEIPT_BYTES} bytes`);
}

function checkHopCommitResponse(r: pb.InferenceResponse): void {
  const n = [r.hopKey, r.inCommit, r.outCommit, r.hopSignature].filter((x) => x !== undefined).length;
  if (n !== 0 && n !== 4) throw malformed('inference-stream: a hop commitment needs key, both commitments and a signature');
  if (n === 4 && (r.hopKey!.length !== 33 || r.inCommit!.length !== 32 || r.outCommit!.length !== 32 || r.hopSignature!.length !== 64)) throw malformed('inference-stream: hop commitment field sizes');
  if (r.completionId !== undefined && r.completionId.length !== 32) throw malformed('inference-stream.completion_id: 32 bytes');
}

/** Longest wait a placeholder step may ask for its pushed input (ms). */
export const MAX_PUSH_WAIT_MS = 60_000;

/** Session 29 push fields (docs/PROTOCOL.md "Pushed activations"): ids bounded, a placeholder carries no activations. */
function checkPushFields(r: pb.InferenceRequest, T: number): void {
  if (r.pushTo !== undefined) checkId(r.pushTo, 'inference-stream.push_to', true);
  if (r.pushSession !== undefined) checkId(r.pushSession, 'inference-stream.push_session', true);
  if ((r.pushTo === undefined) !== (r.pushSession === undefined)) throw malformed('inference-stream: push_to and push_session go together');
  if (r.pushFrom !== undefined) checkId(r.pushFrom, 'inference-stream.push_from', true);
  // session 30: the pusher's 32-byte Ed25519 session key goes with push_from only
  if (r.pushFromKey !== undefined && (r.pushFrom === undefined || r.pushFromKey.length !== 32)) throw malformed('inference-stream.push_from_key: 32 bytes, with push_from');
  if (r.inputByPush === true) {
    if (r.hidden !== undefined || r.tokens.length > 0 || T !== 0) throw malformed('inference-stream: a placeholder step carries no activations');
    if (r.chunks.length === 0) throw malformed('inference-stream: a placeholder step names its chunks');
    if (r.chunks.reduce((a, b) => a + b, 0) > MAX_TOKENS_PER_REQUEST) throw malformed('inference-stream.chunks: too many positions');
    if ((r.pushWaitMs ?? 0) > MAX_PUSH_WAIT_MS) throw malformed(`inference-stream.push_wait_ms: above ${MAX_PUSH_WAIT_MS}`);
  }
}

export const inferenceStream: BidiMethod<pb.InferenceRequest, pb.InferenceResponse> = {
  name: 'inference-stream',
  version: '1.0.0',
  kind: 'bidi',
  request: codec(pb.InferenceRequest, { hidden: TENSOR_LIMITS, tokens: MAX_TOKENS_PER_REQUEST, chunks: MAX_TOKENS_PER_REQUEST }),
  response: codec(pb.InferenceResponse, { hidden: TENSOR_LIMITS, tokens: MAX_TOKENS_PER_REQUEST }),
  maxRequestBytes: 16 * MiB,
  maxResponseBytes: 16 * MiB,
  // idle gap between two steps of one session
  timeoutMs: 120_000,
  maxFrames: 100_000,
  maxInboundStreams: 64,
  maxConcurrent: 256,
  validateRequest: (r) => {
    checkId(r.sessionId, 'inference-stream.session_id', true);
    checkId(r.requestId, 'inference-stream.request_id');
    const h = tensorFromPb(r.hidden, 'inference-stream.hidden', true);
    checkSpan(r.targetSpan, 'inference-stream.target_span');
    if (r.chunks.length > MAX_TOKENS_PER_REQUEST) throw malformed('inference-stream.chunks: too many');
    if (r.chunks.some((c) => c < 1)) throw malformed('inference-stream.chunks: a chunk of 0 positions');
    if (h !== undefined && r.tokens.length > 0) throw malformed('inference-stream: both hidden states and token ids');
    if (h !== undefined && (h.shape.length !== 2 || h.shape[0] < 1 || h.shape[0] > MAX_TOKENS_PER_REQUEST || (h.dtype !== 'fp32' && h.dtype !== 'fp16' && h.dtype !== 'bf16'))) {
      throw malformed(`inference-stream.hidden: must be fp32/fp16/bf16 [T, C] with 1 <= T <= ${MAX_TOKENS_PER_REQUEST}`);
    }
    const T = h !== undefined ? h.shape[0] : r.tokens.length;
    if (r.inputByPush !== true && r.chunks.length > 0 && r.chunks.reduce((a, b) => a + b, 0) !== T) throw malformed('inference-stream.chunks: do not sum to the positions sent');
    if (r.maxLength > 1 << 20) throw malformed('inference-stream.max_length: too large');
    if (!Number.isFinite(r.temperature) || r.temperature < 0 || r.temperature > 100) throw malformed('inference-stream.temperature: not in [0, 100]');
    if (!Number.isFinite(r.topP) || r.topP < 0 || r.topP > 1) throw malformed('inference-stream.top_p: not in [0, 1]');
    checkHopCommitRequest(r);
    checkPushFields(r, T);
  },
  validateResponse: (r) => {
    checkId(r.requestId, 'inference-stream.request_id');
    checkHopCommitResponse(r);
    if (r.inputDigest !== undefined && r.inputDigest.length !== 32) throw malformed('inference-stream.input_digest: 32 bytes');
    // session 30: a push key is an Ed25519 public key; an attestation a known dtype, a SHA-256 and a signature
    if (r.pushKey !== undefined && r.pushKey.length !== 32) throw malformed('inference-stream.push_key: 32 bytes');
    const a = r.pushAttestation;
    if (a !== undefined && ((a.dtype !== pb.DType.FP32 && a.dtype !== pb.DType.FP16 && a.dtype !== pb.DType.BF16) || a.digest.length !== 32 || a.signature.length !== 64 || r.inputDigest === undefined)) {
      throw malformed('inference-stream.push_attestation: fp32/fp16/bf16, a 32-byte digest and a 64-byte signature, beside input_digest');
    }
    if (r.pushMissing === true && (r.hidden !== undefined || r.tokens.length > 0)) throw malformed('inference-stream: push_missing with an output');
    const h = tensorFromPb(r.hidden, 'inference-stream.hidden', true);
    if (h !== undefined && (h.shape.length !== 2 || (h.dtype !== 'fp32' && h.dtype !== 'fp16' && h.dtype !== 'bf16'))) throw malformed('inference-stream.hidden: must be fp32/fp16/bf16 [T, C]');
    if (r.tokens.length > MAX_TOKENS_PER_REQUEST) throw malformed('inference-stream.tokens: too many');
  },
};

/**
 * Session 29: hop k's outputs pushed straight to hop k+1 (docs/PROTOCOL.md "Pushed activations"); one stream per
 * (pusher, session), requests only (the receiver answers nothing, or ends the stream with a typed error). A push is
 * one decode step's [T, C] (or a replayed run of them), as an inference-stream step's activations.
 */
export const inferencePush: BidiMethod<pb.InferencePush, pb.InferencePushAck> = {
  name: 'inference-push',
  version: '1.0.0',
  kind: 'bidi',
  request: codec(pb.InferencePush, { hidden: TENSOR_LIMITS }),
  response: codec(pb.InferencePushAck),
  maxRequestBytes: 16 * MiB,
  maxResponseBytes: 64,
  timeoutMs: 120_000,
  maxFrames: 100_000,
  maxInboundStreams: 64,
  maxConcurrent: 256,
  validateRequest: (r) => {
    checkId(r.sessionId, 'inference-push.session_id', true);
    const h = tensorFromPb(r.hidden, 'inference-push.hidden', true);
    if (h === undefined || h.shape.length !== 2 || h.shape[0] < 1 || h.shape[0] > MAX_TOKENS_PER_REQUEST || (h.dtype !== 'fp32' && h.dtype !== 'fp16' && h.dtype !== 'bf16')) {
      throw malformed(`inference-push.hidden: must be fp32/fp16/bf16 [T, C] with 1 <= T <= ${MAX_TOKENS_PER_REQUEST}`);
    }
    if (r.signature !== undefined && r.signature.length !== 64) throw malformed('inference-push.signature: 64 bytes');
  },
};

/** Length of a ledger order key (u64 timestampMs ‖ 32-byte event id) and of an event id. */
export const LEDGER_ORDER_KEY_BYTES = 40;
export const LEDGER_ID_BYTES = 32;

function checkLedgerEvents(r: pb.LedgerEvents, what: string, max: number): void {
  if (r.events.length > max) throw malformed(`${what}: more than ${max} events`);
  for (const e of r.events) {
    if (e.byteLength === 0 || e.byteLength > LEDGER_SYNC_LIMITS.maxEventBytes) throw malformed(`${what}: an event of ${e.byteLength} bytes`);
  }
}

/**
 * Ledger sync (docs/PROTOCOL.md "## Ledger sync"): a page of a peer's events in canonical order. A page holds at
 * most 512 events of at most 48 KiB each, so the response limit is their sum plus protobuf framing; the ledger's
 * own events are far smaller (a proof is about 1.5 KiB, a slash at most 17 KiB).
 */
export const ledgerRange: UnaryMethod<pb.LedgerRangeRequest, pb.LedgerEvents> = {
  name: 'ledger-range',
  version: '1.0.0',
  kind: 'unary',
  request: codec(pb.LedgerRangeRequest),
  response: codec(pb.LedgerEvents, { events: LEDGER_SYNC_LIMITS.maxRange }),
  maxRequestBytes: 64,
  maxResponseBytes: LEDGER_SYNC_LIMITS.maxRange * (LEDGER_SYNC_LIMITS.maxEventBytes + 4),
  timeoutMs: LEDGER_SYNC_LIMITS.callTimeoutMs,
  maxInboundStreams: 4,
  maxConcurrent: 16,
  validateRequest: (r) => {
    if (r.after.byteLength !== 0 && r.after.byteLength !== LEDGER_ORDER_KEY_BYTES) throw malformed(`ledger-range.after: ${r.after.byteLength} bytes, not 0 or 40`);
    if (r.limit < 1 || r.limit > LEDGER_SYNC_LIMITS.maxRange) throw malformed(`ledger-range.limit: ${r.limit} not in 1..${LEDGER_SYNC_LIMITS.maxRange}`);
  },
  validateResponse: (r) => checkLedgerEvents(r, 'ledger-range.events', LEDGER_SYNC_LIMITS.maxRange),
};

export const ledgerByIds: UnaryMethod<pb.LedgerByIdsRequest, pb.LedgerEvents> = {
  name: 'ledger-by-ids',
  version: '1.0.0',
  kind: 'unary',
  request: codec(pb.LedgerByIdsRequest, { ids: LEDGER_SYNC_LIMITS.maxIds }),
  response: codec(pb.LedgerEvents, { events: LEDGER_SYNC_LIMITS.maxIds }),
  maxRequestBytes: LEDGER_SYNC_LIMITS.maxIds * (LEDGER_ID_BYTES + 2) + 16,
  maxResponseBytes: LEDGER_SYNC_LIMITS.maxIds * (LEDGER_SYNC_LIMITS.maxEventBytes + 4),
  timeoutMs: LEDGER_SYNC_LIMITS.callTimeoutMs,
  maxInboundStreams: 4,
  maxConcurrent: 16,
  validateRequest: (r) => {
    if (r.ids.length === 0) throw malformed('ledger-by-ids.ids: empty');
    for (const id of r.ids) if (id.byteLength !== LEDGER_ID_BYTES) throw malformed(`ledger-by-ids.ids: an id of ${id.byteLength} bytes`);
  },
  validateResponse: (r) => checkLedgerEvents(r, 'ledger-by-ids.events', LEDGER_SYNC_LIMITS.maxIds),
};

export const ledgerStatus: UnaryMethod<pb.LedgerStatusRequest, pb.LedgerStatusResponse> = {
  name: 'ledger-status',
  version: '1.0.0',
  kind: 'unary',
  request: codec(pb.LedgerStatusRequest),
  response: codec(pb.LedgerStatusResponse),
  maxRequestBytes: 64,
  maxResponseBytes: 64,
  timeoutMs: 5_000,
  maxInboundStreams: 4,
  maxConcurrent: 64,
  validateResponse: (r) => {
    if (r.stateHash.byteLength !== 32) throw malformed(`ledger-status.state_hash: ${r.stateHash.byteLength} bytes, not 32`);
  },
};

/** An outer round number on the checkpoint stream: −1 (the state a node entered round 0 with) up to 2^48. */
function checkRound(r: bigint | undefined, what: string): void {
  if (r !== undefined && (r < -1n || r > 2n ** 48n)) throw malformed(`${what}: ${r} is out of range`);
}

/** Largest checkpoint chunk. */
export const CHECKPOINT_CHUNK_BYTES = 4 * MiB;

export const checkpoint: ServerStreamMethod<pb.CheckpointRequest, pb.CheckpointChunk> = {
  name: 'checkpoint',
  version: '1.0.0',
  kind: 'server-stream',
  request: codec(pb.CheckpointRequest),
  response: codec(pb.CheckpointChunk),
  maxRequestBytes: 1 * KiB,
  maxResponseBytes: CHECKPOINT_CHUNK_BYTES + 1 * KiB,
  timeoutMs: 30_000,
  maxFrames: 65_536,
  maxInboundStreams: 2,
  maxConcurrent: 4,
  validateRequest: (r) => {
    checkId(r.modelHash, 'checkpoint.model_hash');
    checkSpan(r.span, 'checkpoint.span');
    checkRound(r.round, 'checkpoint.round');
  },
  validateResponse: (r) => {
    checkId(r.name, 'checkpoint.name');
    checkId(r.modelHash, 'checkpoint.model_hash');
    if (r.sha256.byteLength !== 0 && r.sha256.byteLength !== 32) throw malformed('checkpoint.sha256: not 32 bytes');
    if (r.offset + BigInt(r.data.byteLength) > r.totalSize) throw malformed('checkpoint: chunk past the total size');
    checkRound(r.round, 'checkpoint.round');
  },
};

/** Every method of the node service, for docs and tests. */
export const NODE_METHODS = [
  echo,
  shardInfo,
  holderRecord,
  inferenceStream,
  inferencePush,
  ledgerRange,
  ledgerByIds,
  ledgerStatus,
  checkpoint,
] as const;
