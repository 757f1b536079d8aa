/**
 * Ledger events: types, canonical binary encoding, signing and ids. docs/PROTOCOL.md "## Ledger events" is the
 * normative description; keep the two in step.
 *
 * Wire form: payload ‖ 64-byte signature, where the signature is identity's signDomain over the payload with domain
 * "neuroshard/ledger-event/v1". The payload (integers big-endian, `str` = u16 length ‖ UTF-8):
 *
 *   u8  version = 1 ‖ u8 kind ‖ str networkId ‖ 33-byte signer public key ‖ u64 nonce ‖ u64 timestampMs ‖ body
 *
 * id = SHA-256(UTF-8 domain ‖ 0x00 ‖ payload): the digest that is signed, so the id excludes the signature and a
 * re-signed or malleated copy is the same event. Canonical order: (timestampMs, id) ascending, i.e. the 40-byte
 * key u64 timestampMs ‖ id compared as bytes.
 */
import { addressFromAccountId, accountIdFromPublicKey, domainTag, signDomain, signingDigest, type NodeKey, SIGNATURE_LENGTH } from '../identity/index.js';
import { sha256, toHex } from '../util/bytes.js';
import { formatAmount } from './amount.js';
import { DecodeError, Reader, Writer } from './codec.js';
import { readHolderRecord, writeHolderRecord, type EmbeddedHolderRecord } from './holder.js';
import { EVENT_DOMAIN, EVENT_VERSION, MAX_EVENT_BYTES, MAX_SLASH_BYTES } from './signed-parts.js';
import type { LivenessAttestation } from './witness.js';
import { readCosignatures, readRecordFields, writeCosignatures, writeRecordFields, type RecordCosignature, type TrainingRecord } from './training-receipt.js';

/** Most liveness attestations an Uptime event carries, and the witness's challenge nonce length. */
export const MAX_ATTESTATIONS = 8;
export { EVENT_DOMAIN, EVENT_VERSION, MAX_EVENT_BYTES, MAX_SLASH_BYTES, signedParts } from './signed-parts.js';
export const NONCE_BYTES = 32;

export const MAX_NETWORK_ID = 128;
export const ACCOUNT_BYTES = 20;
export const HASH_BYTES = 32;

export enum EventKind {
  Proof = 1,
  Transfer = 2,
  Stake = 3,
  Unstake = 4,
  Slash = 5,
  MarketRequest = 6,
  MarketClaim = 7,
  MarketComplete = 8,
  /** Issue 11 §2: the network's genesis allocation, signed by its genesis key (witness.ts). */
  Genesis = 9,
  /** Issue 11 §2: a window of uptime witnessed by bonded peers' liveness attestations (witness.ts). */
  Uptime = 10,
  /** Issue 11 §2: an outer round's training record co-signed by a quorum of its members (training-receipt.ts). */
  TrainingReceipt = 11,
}

export const KIND_NAMES: Record<EventKind, string> = {
  [EventKind.Proof]: 'proof',
  [EventKind.Transfer]: 'transfer',
  [EventKind.Stake]: 'stake',
  [EventKind.Unstake]: 'unstake',
  [EventKind.Slash]: 'slash',
  [EventKind.MarketRequest]: 'market-request',
  [EventKind.MarketClaim]: 'market-claim',
  [EventKind.MarketComplete]: 'market-complete',
  [EventKind.Genesis]: 'genesis',
  [EventKind.Uptime]: 'uptime',
  [EventKind.TrainingReceipt]: 'training-receipt',
};

/** Proof of Neural Work: one per node per 60 s window, carrying all its counters for that window. */
export interface ProofBody {
  kind: EventKind.Proof;
  /** Milliseconds of uptime in this window (<= 60,000). */
  uptimeMs: number;
  inferenceTokens: bigint;
  trainingTokens: bigint;
  dataSamples: bigint;
  /** Market requests served in this window (informational; payment comes from the market). */
  requestIds: Uint8Array[];
  /** Hash of the model state the node serves. */
  modelHash: Uint8Array;
  /** Layers held [start, end): must equal the embedded HolderRecord's span. */
  layers: { start: number; end: number };
  /** floor(timestampMs / 60,000). */
  epoch: number;
  modelHashBefore: Uint8Array;
  modelHashAfter: Uint8Array;
  gradientCommitment: Uint8Array;
  dataHash: Uint8Array;
  /** Training loss × 1e6 (integer, so the encoding has one form). */
  lossMicro: bigint;
  /** Gradient norm × 1e6. */
  gradNormMicro: bigint;
  holderRecord: EmbeddedHolderRecord;
}

export interface TransferBody {
  kind: EventKind.Transfer;
  /** Recipient account id (20 bytes). */
  to: Uint8Array;
  amount: bigint;
  /** Must equal ceil(5 % · amount); paid on top and burned. Inside the signature, so the sender agreed to it. */
  fee: bigint;
}

export interface StakeBody {
  kind: EventKind.Stake;
  amount: bigint;
  lockDays: number;
}

export interface UnstakeBody {
  kind: EventKind.Unstake;
  amount: bigint;
}

export enum EvidenceType {
  /** Two different signed events with one (signer, kind, nonce). */
  Equivocation = 1,
  /** One signed proof that breaks a stateless rule marked "fraud". */
  InvalidProof = 2,
  // ---- issue 11 §2 validator re-execution (fraud.ts) ----
  /** A hop whose outputs a quorum of validators' re-execution contradicts: [completion event, fraud record]. */
  HopFraud = 3,
}

export interface SlashBody {
  kind: EventKind.Slash;
  evidenceType: EvidenceType;
  /** Wire bytes of the evidence events: two for equivocation, one for an invalid proof. */
  evidence: Uint8Array[];
}

export interface MarketRequestBody {
  kind: EventKind.MarketRequest;
  maxTokens: number;
  /** The most the requester pays per million tokens. */
  maxPricePerMillion: bigint;
  /** Event time after which the request refunds in full. */
  expiresAtMs: number;
}

export interface MarketClaimBody {
  kind: EventKind.MarketClaim;
  requestId: Uint8Array;
}

/**
 * One hop's signed commitment to what it computed for a request (issue 11 §2): `inCommit` commits to the
 * activations it received (the driver: to the token ids), `outCommit` to those it produced (commitment.ts); hop
 * k's outCommit must equal hop k+1's inCommit, and the last hop's outCommit the receipt's output commitment.
 * Signed by the hop's key under HOP_COMMITMENT_DOMAIN over hopCommitmentPayload().
 */
export interface HopCommitment {
  /** The hop's compressed secp256k1 public key (33 bytes). */
  key: Uint8Array;
  inCommit: Uint8Array;
  outCommit: Uint8Array;
  signature: Uint8Array;
}

/**
 * A market completion: pays the hops of a served request from its escrow, on the requester's signed receipt. The
 * driver (hops[0]) submits it; the last hop (when there are two or more) is the validator (LM head), the ones in
 * between are workers. Nothing in it is the driver's word alone: tokensUsed and the output commitment are signed
 * by the requester, each hop's share by that hop.
 */
export interface MarketCompleteBody {
  kind: EventKind.MarketComplete;
  requestId: Uint8Array;
  /** Tokens the requester acknowledges (receipt). */
  tokensUsed: number;
  /** Commitment to the final output (receipt; equals the last hop's outCommit). */
  outputCommitment: Uint8Array;
  /** 1..MAX_MARKET_WORKERS + 2 hops in route order. */
  hops: HopCommitment[];
  /** The requester's compressed public key: its account must be the request's signer. */
  requesterKey: Uint8Array;
  /** The requester's signature over receiptPayload() under RECEIPT_DOMAIN. */
  receiptSignature: Uint8Array;
}

export const HOP_COMMITMENT_DOMAIN = 'neuroshard/hop-commitment/v1';
export const RECEIPT_DOMAIN = 'neuroshard/market-receipt/v1';
/** A route has at most this many hops (driver + 16 workers + validator). */
export const MAX_HOPS = 18;

/** What hop `index` of `count` signs: u8 1 ‖ str networkId ‖ requestId ‖ u8 index ‖ u8 count ‖ inCommit ‖ outCommit. */
export function hopCommitmentPayload(networkId: string, requestId: Uint8Array, index: number, count: number, inCommit: Uint8Array, outCommit: Uint8Array): Uint8Array {
  return new Writer().u8(1).str(networkId, MAX_NETWORK_ID).fixed(requestId, HASH_BYTES).u8(index).u8(count).fixed(inCommit, HASH_BYTES).fixed(outCommit, HASH_BYTES).finish();
}

/**
 * What the requester signs: u8 1 ‖ str networkId ‖ requestId ‖ u32 tokensUsed ‖ outputCommitment ‖ u8 count ‖
 * (hop key ‖ inCommit ‖ outCommit) per hop. The receipt names the route, so a payee cannot be swapped.
 */
export function receiptPayload(networkId: string, requestId: Uint8Array, tokensUsed: number, outputCommitment: Uint8Array, hops: readonly Pick<HopCommitment, 'key' | 'inCommit' | 'outCommit'>[]): Uint8Array {
  const w = new Writer().u8(1).str(networkId, MAX_NETWORK_ID).fixed(requestId, HASH_BYTES).u32(tokensUsed).fixed(outputCommitment, HASH_BYTES).u8(hops.length);
  for (const h of hops) w.fixed(h.key, 33).fixed(h.inCommit, HASH_BYTES).fixed(h.outCommit, HASH_BYTES);
  return w.finish();
}

/** The genesis allocation (issue 11 §2): amounts are the fixed GENESIS_* of economics.ts; the body only names them. */
export interface GenesisBody {
  kind: EventKind.Genesis;
}

/**
 * One window of uptime witnessed by peers (issue 11 §2): its signer is the subject; nonce must equal epoch (one per
 * subject per window: a second reuses the replay key and is void); pays only with a quorum of bonded witnesses.
 */
export interface UptimeBody {
  kind: EventKind.Uptime;
  /** floor(timestampMs / 60,000). */
  epoch: number;
  attestations: LivenessAttestation[];
}

/**
 * A co-signed training record (issue 11 §2, training-receipt.ts): nonce must equal the record's round and the
 * signer must be one of the co-signers; pays the accepted, bonded contributors.
 */
export interface TrainingReceiptBody {
  kind: EventKind.TrainingReceipt;
  record: TrainingRecord;
  /** Ascending by member index. */
  cosigs: RecordCosignature[];
}

export type EventBody = ProofBody | TransferBody | StakeBody | UnstakeBody | SlashBody | MarketRequestBody | MarketClaimBody | MarketCompleteBody | GenesisBody | UptimeBody | TrainingReceiptBody;

export interface UnsignedEvent<B extends EventBody = EventBody> {
  networkId: string;
  signer: Uint8Array;
  nonce: bigint;
  timestampMs: number;
  body: B;
}

/** A decoded event with its derived identifiers. */
export interface LedgerEvent<B extends EventBody = EventBody> extends UnsignedEvent<B> {
  /** 32-byte id: the signed digest. */
  id: Uint8Array;
  signature: Uint8Array;
  /** Payload bytes (what the signature covers, without domain tag). */
  payload: Uint8Array;
  /** The full wire bytes. */
  bytes: Uint8Array;
  /** Signer account id (20 bytes). */
  account: Uint8Array;
}

const ZERO32 = new Uint8Array(32);
export const ZERO_ACCOUNT = new Uint8Array(ACCOUNT_BYTES);

function writeBody(w: Writer, b: EventBody): void {
  switch (b.kind) {
    case EventKind.Proof:
      w.u32(b.uptimeMs).u64(b.inferenceTokens).u64(b.trainingTokens).u64(b.dataSamples);
      w.u8(b.requestIds.length);
      for (const r of b.requestIds) w.fixed(r, HASH_BYTES);
      w.fixed(b.modelHash, HASH_BYTES).u32(b.layers.start).u32(b.layers.end).u64(b.epoch);
      w.fixed(b.modelHashBefore, HASH_BYTES).fixed(b.modelHashAfter, HASH_BYTES).fixed(b.gradientCommitment, HASH_BYTES).fixed(b.dataHash, HASH_BYTES);
      w.u64(b.lossMicro).u64(b.gradNormMicro);
      writeHolderRecord(w, b.holderRecord);
      return;
    case EventKind.Transfer:
      w.fixed(b.to, ACCOUNT_BYTES).amount(b.amount).amount(b.fee);
      return;
    case EventKind.Stake:
      w.amount(b.amount).u16(b.lockDays);
      return;
    case EventKind.Unstake:
      w.amount(b.amount);
      return;
    case EventKind.Slash:
      w.u8(b.evidenceType).u8(b.evidence.length);
      for (const e of b.evidence) w.bytes(e, MAX_EVENT_BYTES);
      return;
    case EventKind.MarketRequest:
      w.u32(b.maxTokens).amount(b.maxPricePerMillion).u64(b.expiresAtMs);
      return;
    case EventKind.MarketClaim:
      w.fixed(b.requestId, HASH_BYTES);
      return;
    case EventKind.MarketComplete:
      w.fixed(b.requestId, HASH_BYTES).u32(b.tokensUsed).fixed(b.outputCommitment, HASH_BYTES).u8(b.hops.length);
      for (const h of b.hops) w.fixed(h.key, 33).fixed(h.inCommit, HASH_BYTES).fixed(h.outCommit, HASH_BYTES).fixed(h.signature, SIGNATURE_LENGTH);
      w.fixed(b.requesterKey, 33).fixed(b.receiptSignature, SIGNATURE_LENGTH);
      return;
    case EventKind.Genesis:
      return;
    case EventKind.Uptime:
      w.u64(b.epoch).u8(b.attestations.length);
      for (const a of b.attestations) w.fixed(a.witness, 33).fixed(a.nonce, NONCE_BYTES).fixed(a.signature, SIGNATURE_LENGTH);
      return;
    case EventKind.TrainingReceipt:
      writeRecordFields(w, b.record);
      writeCosignatures(w, b.cosigs);
      return;
  }
}

function readBody(r: Reader, kind: number): EventBody {
  switch (kind) {
    case EventKind.Proof: {
      const uptimeMs = r.u32();
      const inferenceTokens = r.u64();
      const trainingTokens = r.u64();
      const dataSamples = r.u64();
      const n = r.u8();
      if (n > 32) throw new DecodeError('more than 32 request ids');
      const requestIds: Uint8Array[] = [];
      for (let i = 0; i < n; i++) requestIds.push(r.fixed(HASH_BYTES));
      const modelHash = r.fixed(HASH_BYTES);
      const layers = { start: r.u32(), end: r.u32() };
      const epoch = r.u64n();
      const modelHashBefore = r.fixed(HASH_BYTES);
      const modelHashAfter = r.fixed(HASH_BYTES);
      const gradientCommitment = r.fixed(HASH_BYTES);
      const dataHash = r.fixed(HASH_BYTES);
      const lossMicro = r.u64();
      const gradNormMicro = r.u64();
      const holderRecord = readHolderRecord(r);
      return {
        kind,
        uptimeMs,
        inferenceTokens,
        trainingTokens,
        dataSamples,
        requestIds,
        modelHash,
        layers,
        epoch,
        modelHashBefore,
        modelHashAfter,
        gradientCommitment,
        dataHash,
        lossMicro,
        gradNormMicro,
        holderRecord,
      };
    }
    case EventKind.Transfer:
      return { kind, to: r.fixed(ACCOUNT_BYTES), amount: r.amount(), fee: r.amount() };
    case EventKind.Stake:
      return { kind, amount: r.amount(), lockDays: r.u16() };
    case EventKind.Unstake:
      return { kind, amount: r.amount() };
    case EventKind.Slash: {
      const evidenceType = r.u8();
      if (evidenceType !== EvidenceType.Equivocation && evidenceType !== EvidenceType.InvalidProof && evidenceType !== EvidenceType.HopFraud) throw new DecodeError(`evidence type ${evidenceType}`);
      const n = r.u8();
      if (n !== (evidenceType === EvidenceType.InvalidProof ? 1 : 2)) throw new DecodeError('wrong number of evidence events');
      const evidence: Uint8Array[] = [];
      for (let i = 0; i < n; i++) evidence.push(r.bytes(MAX_EVENT_BYTES));
      return { kind, evidenceType, evidence };
    }
    case EventKind.MarketRequest:
      return { kind, maxTokens: r.u32(), maxPricePerMillion: r.amount(), expiresAtMs: r.u64n() };
    case EventKind.MarketClaim:
      return { kind, requestId: r.fixed(HASH_BYTES) };
    case EventKind.MarketComplete: {
      const requestId = r.fixed(HASH_BYTES);
      const tokensUsed = r.u32();
      const outputCommitment = r.fixed(HASH_BYTES);
      const n = r.u8();
      if (n < 1 || n > MAX_HOPS) throw new DecodeError(`hop count ${n} outside 1..${MAX_HOPS}`);
      const hops: HopCommitment[] = [];
      for (let i = 0; i < n; i++) hops.push({ key: r.fixed(33), inCommit: r.fixed(HASH_BYTES), outCommit: r.fixed(HASH_BYTES), signature: r.fixed(SIGNATURE_LENGTH) });
      return { kind, requestId, tokensUsed, outputCommitment, hops, requesterKey: r.fixed(33), receiptSignature: r.fixed(SIGNATURE_LENGTH) };
    }
    case EventKind.Genesis:
      return { kind };
    case EventKind.Uptime: {
      const epoch = r.u64n();
      const n = r.u8();
      if (n < 1 || n > MAX_ATTESTATIONS) throw new DecodeError(`attestation count ${n} outside 1..${MAX_ATTESTATIONS}`);
      const attestations: LivenessAttestation[] = [];
      for (let i = 0; i < n; i++) attestations.push({ witness: r.fixed(33), nonce: r.fixed(NONCE_BYTES), signature: r.fixed(SIGNATURE_LENGTH) });
      return { kind, epoch, attestations };
    }
    case EventKind.TrainingReceipt: {
      const record = readRecordFields(r);
      return { kind, record, cosigs: readCosignatures(r) };
    }
    default:
      throw new DecodeError(`unknown event kind ${kind}`);
  }
}

/** The canonical payload of an unsigned event. Throws RangeError on out-of-range fields. */
export function encodePayload(e: UnsignedEvent): Uint8Array {
  const w = new Writer();
  w.u8(EVENT_VERSION).u8(e.body.kind).str(e.networkId, MAX_NETWORK_ID).fixed(e.signer, 33).u64(e.nonce).u64(e.timestampMs);
  writeBody(w, e.body);
  return w.finish();
}

/** Signs an event with the node key; returns the decoded event with id and wire bytes. */
export function signEvent<B extends EventBody>(key: NodeKey, e: Omit<UnsignedEvent<B>, 'signer'>): LedgerEvent<B> {
  const unsigned: UnsignedEvent<B> = { ...e, signer: key.publicKey };
  const payload = encodePayload(unsigned);
  const signature = signDomain(key, EVENT_DOMAIN, payload);
  const bytes = new Uint8Array(payload.byteLength + SIGNATURE_LENGTH);
  bytes.set(payload);
  bytes.set(signature, payload.byteLength);
  return { ...unsigned, id: signingDigest(EVENT_DOMAIN, payload), signature, payload, bytes, account: accountIdFromPublicKey(key.publicKey) };
}

/**
 * The signing digest of each event decodeEvent made (issue 11 §4: the signature check hashed the payload a second
 * time so as not to trust `e.id`). Keyed by the object, with the very payload array it was given and a private copy
 * of the digest: an object assembled elsewhere, or one whose payload field was replaced, is not found or does not
 * match and has its digest computed again; nothing done to `e.id` changes the answer. (The payload is a view of a
 * buffer decodeEvent made, and no code writes into a decoded event's bytes: see decodeEvent.)
 */
const digested = new WeakMap<LedgerEvent, { payload: Uint8Array; digest: Uint8Array }>();

/**
 * Decodes wire bytes strictly (DecodeError on anything malformed: truncation, trailing bytes, unknown kind or
 * version, out-of-range values). Does not verify the signature: see verify.ts.
 *
 * One allocation for the bytes (issue 11 §4, decode without allocations): a private copy laid out as domain tag ‖
 * wire bytes ‖ id ‖ account id, so the signed message (tag ‖ payload, whose SHA-256 is the id) is one contiguous
 * view of it, and `bytes`, `payload`, `signature`, `id`, `account` and every byte string of the body are views of
 * that copy, not copies each. The
 * caller's array is never referenced: it may be reused or changed after. Nothing may write into a decoded event's
 * byte fields (the id's digest and verify.ts's verdicts are keyed on them); who keeps one past the event's life
 * keeps the whole copy alive, so copy it (slice()) to keep it.
 */
export function decodeEvent(bytes: Uint8Array): LedgerEvent {
  checkSize(bytes);
  const tag = domainTag(EVENT_DOMAIN);
  const buf = new Uint8Array(tag.byteLength + bytes.byteLength + DERIVED_BYTES);
  buf.set(tag);
  buf.set(bytes, tag.byteLength);
  return decodeAt(buf, 0, bytes.byteLength);
}

/**
 * decodeEvent of each event of a sync page (or any batch), with ONE copy for the whole page: each event's slot in it
 * is tag ‖ wire bytes, and its views are as decodeEvent's. An entry that does not decode is its DecodeError (or
 * RangeError) instead. The events share the copy: it lives as long as any of them (or a view kept of them) does;
 * a page's events are ingested and dropped together, so it is freed with the page.
 */
export function decodeEvents(list: readonly Uint8Array[]): (LedgerEvent | Error)[] {
  const tag = domainTag(EVENT_DOMAIN);
  const out = new Array<LedgerEvent | Error>(list.length);
  let total = 0;
  for (let i = 0; i < list.length; i++) {
    const b = list[i]!;
    try {
      checkSize(b);
      total += tag.byteLength + b.byteLength + DERIVED_BYTES;
    } catch (e) {
      out[i] = e as Error;
    }
  }
  const buf = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < list.length; i++) {
    if (out[i] !== undefined) continue;
    const b = list[i]!;
    buf.set(tag, at);
    buf.set(b, at + tag.byteLength);
    try {
      out[i] = decodeAt(buf, at, b.byteLength);
    } catch (e) {
      if (!(e instanceof DecodeError || e instanceof RangeError)) throw e;
      out[i] = e;
    }
    at += tag.byteLength + b.byteLength + DERIVED_BYTES;
  }
  return out;
}

function checkSize(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('event must be bytes');
  if (bytes.byteLength > MAX_SLASH_BYTES) throw new DecodeError('event too large');
  if (bytes.byteLength < SIGNATURE_LENGTH + 2) throw new DecodeError('event too short');
}

/**
 * Bytes after each event's wire bytes in the private copy: its id (32) and account id (20), so that these too are
 * views of the copy instead of an ArrayBuffer each (issue 11 §4: small ArrayBuffers cost their allocation and the
 * garbage collector's tracking of each; a proof's decode made four).
 */
const DERIVED_BYTES = 32 + 20;

/**
 * Account ids of recent signers (SHA-256 of the key, first 20 bytes: a pure function of the 33 key bytes, which
 * are the whole key of the memo), so that a signer's many events hash its key once. Bounded, first in first out;
 * the entries are private (copied into each event's buffer).
 */
const accountIds = new Map<string, Uint8Array>();
const ACCOUNT_IDS_MAX = 4096;

function accountIdOf(signer: Uint8Array): Uint8Array {
  const k = Buffer.from(signer.buffer, signer.byteOffset, signer.byteLength).toString('latin1');
  let a = accountIds.get(k);
  if (a === undefined) {
    a = accountIdFromPublicKey(signer);
    if (accountIds.size >= ACCOUNT_IDS_MAX) accountIds.delete(accountIds.keys().next().value!);
    accountIds.set(k, a);
  }
  return a;
}

/**
 * Decodes the event of `len` wire bytes in `buf` at `at + tag length`, `buf[at ..]` holding the domain tag and
 * DERIVED_BYTES free after the wire bytes.
 */
function decodeAt(buf: Uint8Array, at: number, len: number): LedgerEvent {
  const tagLen = domainTag(EVENT_DOMAIN).byteLength;
  const n = len - SIGNATURE_LENGTH;
  const signed = buf.subarray(at, at + tagLen + n);
  const payload = buf.subarray(at + tagLen, at + tagLen + n);
  const bytes = buf.subarray(at + tagLen, at + tagLen + len);
  const signature = buf.subarray(at + tagLen + n, at + tagLen + len);
  const r = new Reader(payload, true);
  const version = r.u8();
  if (version !== EVENT_VERSION) throw new DecodeError(`unknown event version ${version}`);
  const kind = r.u8();
  const networkId = r.str(MAX_NETWORK_ID);
  const signer = r.fixed(33);
  const nonce = r.u64();
  const timestampMs = r.u64n();
  const body = readBody(r, kind);
  r.end();
  if (kind !== EventKind.Slash && len > MAX_EVENT_BYTES) throw new DecodeError('event too large');
  if (signer[0] !== 2 && signer[0] !== 3) throw new DecodeError('signer is not a compressed public key');
  // the digest's own array stays private (digested), the id is a copy of it in the event's buffer
  const digest = sha256(signed);
  const idAt = at + tagLen + len;
  buf.set(digest, idAt);
  buf.set(accountIdOf(signer), idAt + 32);
  const id = buf.subarray(idAt, idAt + 32);
  const account = buf.subarray(idAt + 32, idAt + DERIVED_BYTES);
  const e: LedgerEvent = { networkId, signer, nonce, timestampMs, body, id, signature, payload, bytes, account };
  digested.set(e, { payload, digest });
  return e;
}

/** The signing digest of `e.payload` when decodeEvent made `e` (computed there from these bytes), else undefined. */
export function decodedDigest(e: LedgerEvent): Uint8Array | undefined {
  const d = digested.get(e);
  return d !== undefined && d.payload === e.payload ? d.digest : undefined;
}

/** The 40-byte canonical order key: u64 timestampMs ‖ id. */
export function orderKey(timestampMs: number, id: Uint8Array): Uint8Array {
  const k = new Uint8Array(8 + HASH_BYTES);
  const v = new DataView(k.buffer);
  if (Number.isSafeInteger(timestampMs) && timestampMs >= 0) {
    // u64 big-endian in two halves (an event's time is one, u64n): BigInt(timestampMs) cost more than the rest
    v.setUint32(0, Math.floor(timestampMs / 0x1_0000_0000));
    v.setUint32(4, timestampMs >>> 0);
  } else {
    v.setBigUint64(0, BigInt(timestampMs)); // as before for anything else (a fraction throws)
  }
  k.set(id, 8);
  return k;
}

/** The replay key (signer ‖ kind ‖ nonce), 42 bytes: two different events with one key are an equivocation. */
export function replayKey(e: Pick<LedgerEvent, 'signer' | 'body' | 'nonce'>): Uint8Array {
  const k = new Uint8Array(33 + 1 + 8);
  k.set(e.signer);
  k[33] = e.body.kind;
  new DataView(k.buffer).setBigUint64(34, e.nonce);
  return k;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.byteLength - b.byteLength;
}

/** A JSON-friendly description of an event (CLI history, logs). Amounts are decimal strings of base units. */
export function describeEvent(e: LedgerEvent): Record<string, unknown> {
  const o: Record<string, unknown> = {
    id: toHex(e.id),
    kind: KIND_NAMES[e.body.kind],
    from: addressFromAccountId(e.account),
    nonce: e.nonce.toString(),
    timestampMs: e.timestampMs,
  };
  const b = e.body;
  switch (b.kind) {
    case EventKind.Transfer:
      Object.assign(o, { to: addressFromAccountId(b.to), amount: formatAmount(b.amount), fee: formatAmount(b.fee) });
      break;
    case EventKind.Stake:
      Object.assign(o, { amount: formatAmount(b.amount), lockDays: b.lockDays });
      break;
    case EventKind.Unstake:
      Object.assign(o, { amount: formatAmount(b.amount) });
      break;
    case EventKind.Proof:
      Object.assign(o, {
        uptimeMs: b.uptimeMs,
        inferenceTokens: b.inferenceTokens.toString(),
        trainingTokens: b.trainingTokens.toString(),
        dataSamples: b.dataSamples.toString(),
        layers: b.layers,
        epoch: b.epoch,
      });
      break;
    case EventKind.Slash:
      Object.assign(o, { evidenceType: b.evidenceType === EvidenceType.Equivocation ? 'equivocation' : b.evidenceType === EvidenceType.HopFraud ? 'hop-fraud' : 'invalid-proof' });
      break;
    case EventKind.MarketRequest:
      Object.assign(o, { maxTokens: b.maxTokens, maxPricePerMillion: formatAmount(b.maxPricePerMillion), expiresAtMs: b.expiresAtMs });
      break;
    case EventKind.MarketClaim:
      Object.assign(o, { requestId: toHex(b.requestId) });
      break;
    case EventKind.MarketComplete:
      Object.assign(o, { requestId: toHex(b.requestId), tokensUsed: b.tokensUsed, hops: b.hops.length });
      break;
    case EventKind.Uptime:
      Object.assign(o, { epoch: b.epoch, witnesses: b.attestations.length });
      break;
    case EventKind.TrainingReceipt:
      Object.assign(o, {
        round: b.record.round,
        layers: b.record.layers,
        members: b.record.members.length,
        cosigners: b.cosigs.length,
        accepted: b.record.contributions.filter((c) => c.accepted).length,
        rejected: b.record.contributions.filter((c) => !c.accepted).length,
      });
      break;
    case EventKind.Genesis:
      break;
  }
  return o;
}

export { ZERO32 };
