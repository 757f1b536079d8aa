/**
 * Stateless verification: everything about an event that depends on the event alone (and the network's fixed
 * configuration), never on the wall clock or other events. An event failing here can never become valid, so the
 * ledger drops it without storing it. State rules (balances, rate windows, equivocation) are in apply.ts.
 */
import { bytesEqual } from '../util/bytes.js';
import { accountIdFromPublicKey, publicKeyViewFromPeerId, signingDigest, verifyDomain, verifyDomainDigest } from '../identity/index.js';
import { checkFraudRecord, fraudIndex, fraudKey } from './fraud.js';
import { DecodeError } from './codec.js';
import {
  MAX_DATA_SAMPLES_PER_S,
  MAX_INFERENCE_TOKENS_PER_S,
  MAX_LOCK_DAYS,
  MAX_MARKET_WORKERS,
  MAX_REQUEST_LIFETIME_MS,
  MAX_REQUEST_TOKENS,
  MAX_TRAINING_TOKENS_PER_S,
  MAX_UPTIME_MS,
  MIN_LOCK_DAYS,
  MIN_STAKE,
  MIN_TRAINING_UPTIME_MS,
  PROOF_WINDOW_MS,
  UPTIME_SUBMIT_GRACE_MS,
  transferFee,
} from './economics.js';
import { attestationsValid } from './witness.js';
import { checkReceipt } from './training-receipt.js';
import {
  decodedDigest,
  decodeEvent,
  EVENT_DOMAIN,
  EventKind,
  EvidenceType,
  HOP_COMMITMENT_DOMAIN,
  hopCommitmentPayload,
  RECEIPT_DOMAIN,
  receiptPayload,
  replayKey,
  ZERO32,
  type LedgerEvent,
  type MarketCompleteBody,
  type ProofBody,
} from './events.js';
import { holderRecordPayloadOf, type EmbeddedHolderRecord } from './holder.js';
import { verdictKeyOf } from './signed-parts.js';
/** The verifier thread's entry (verify-pool.ts), in a module of its own so that a worker loads little. */
export { acceptedSignatureKeyOfBytes } from './signed-parts.js';
import type { HolderRecordVerifier } from './interfaces.js';
import { FRAUD_REASONS, type ReasonCode } from './reasons.js';

export interface VerifyConfig {
  networkId: string;
  /** Layers of the model (the LM-head holder is the one whose span ends here). */
  modelLayers: number;
  holderVerifier: HolderRecordVerifier;
}

export type Verdict = { ok: true; event: LedgerEvent } | { ok: false; reason: ReasonCode; event?: LedgerEvent };

/** Decodes and verifies wire bytes. */
export function verifyEventBytes(bytes: Uint8Array, cfg: VerifyConfig): Verdict {
  let e: LedgerEvent;
  try {
    e = decodeEvent(bytes);
  } catch (err) {
    if (err instanceof DecodeError || err instanceof RangeError) return { ok: false, reason: bytes.byteLength > 48 * 1024 ? 'TOO_LARGE' : 'MALFORMED' };
    throw err;
  }
  const reason = verifyEvent(e, cfg);
  return reason === null ? { ok: true, event: e } : { ok: false, reason, event: e };
}

/** Verifies a decoded event; returns null when valid, else the reason code. */
export function verifyEvent(e: LedgerEvent, cfg: VerifyConfig): ReasonCode | null {
  if (e.networkId !== cfg.networkId) return 'WRONG_NETWORK';
  if (!eventSignatureValid(e)) return 'BAD_SIGNATURE';
  return checkFields(e, cfg);
}

/**
 * Event signature verdicts (issue 11 §4, ledger_events_per_s): a node verifies a gossip event at admission (the
 * gossip validator in protocols/ledger-sync.ts) and the ledger verifies it again at ingest; the second ECDSA check
 * was half the CPU of taking an event. (A sync page is only decoded before ingest, so its events are verified
 * once, at ingest, unless verify-pool.ts checked them first.) The key is the event id (the signed digest, which covers the
 * signer; recomputed from the payload) followed by the 64 signature bytes: ECDSA verification is a function of (key, digest, signature), so a
 * hit is exactly the verdict a new check would give; a malleated or tampered copy has another key. Only
 * acceptances are kept (a flood of bad signatures evicts nothing it could not have put there itself); bounded,
 * first in first out.
 */
const eventVerdicts = new Map<string, true>();
const EVENT_VERDICTS_MAX = 65_536;

function remember(key: string): void {
  if (eventVerdicts.size >= EVENT_VERDICTS_MAX) eventVerdicts.delete(eventVerdicts.keys().next().value!);
  eventVerdicts.set(key, true);
}

function eventSignatureValid(e: LedgerEvent): boolean {
  if (!(e.signature instanceof Uint8Array) || e.signature.byteLength !== 64) return verifyDomain(e.signer, EVENT_DOMAIN, e.payload, e.signature);
  // the digest of the payload, never e.id taken on trust: an in-process caller may hand an object whose fields
  // disagree, so nothing but the signed bytes goes in. An event decodeEvent made has it as its id already (computed
  // there from these payload bytes: decodedDigest); any other object's is computed here, once for key and check.
  const digest = decodedDigest(e) ?? signingDigest(EVENT_DOMAIN, e.payload);
  const key = verdictKeyOf(digest, e.signature);
  if (eventVerdicts.has(key)) return true;
  if (!verifyDomainDigest(e.signer, EVENT_DOMAIN, e.payload, digest, e.signature)) return false;
  remember(key);
  return true;
}

/**
 * On a verifier thread (verify-pool.ts: a sync page's signatures checked in parallel before ingest): the verdict
 * cache key of `e` when its signature verifies, else null. The same key and the same check as eventSignatureValid,
 * so a key the event loop then records (rememberSignatureKey) is exactly the verdict a check there would give.
 */
export function acceptedSignatureKey(e: LedgerEvent): string | null {
  if (!(e.signature instanceof Uint8Array) || e.signature.byteLength !== 64) return null;
  const digest = signingDigest(EVENT_DOMAIN, e.payload);
  return verifyDomainDigest(e.signer, EVENT_DOMAIN, e.payload, digest, e.signature) ? verdictKeyOf(digest, e.signature) : null;
}

/** Records a key acceptedSignatureKey returned (the event loop's side of verify-pool.ts). */
export function rememberSignatureKey(key: string): void {
  if (typeof key === 'string' && key.length === 96) remember(key);
}

/** Forgets the cached event signature verdicts (the benchmark measures ingest with one verification per event). */
export function clearEventVerdicts(): void {
  eventVerdicts.clear();
}

/** The stateless field rules of each kind (the signature is already checked). */
export function checkFields(e: LedgerEvent, cfg: VerifyConfig): ReasonCode | null {
  const b = e.body;
  switch (b.kind) {
    case EventKind.Proof:
      return checkProof(e as LedgerEvent<ProofBody>, cfg);
    case EventKind.Transfer:
      if (b.amount === 0n) return 'AMOUNT_ZERO';
      if (b.fee !== transferFee(b.amount)) return 'FEE_MISMATCH';
      if (bytesEqual(b.to, e.account)) return 'SELF_TRANSFER';
      return null;
    case EventKind.Stake:
      if (b.amount < MIN_STAKE) return 'STAKE_TOO_SMALL';
      if (b.lockDays < MIN_LOCK_DAYS || b.lockDays > MAX_LOCK_DAYS) return 'LOCK_OUT_OF_RANGE';
      return null;
    case EventKind.Unstake:
      return b.amount === 0n ? 'AMOUNT_ZERO' : null;
    case EventKind.Slash:
      return checkEvidence(e, cfg);
    case EventKind.MarketRequest:
      if (b.maxTokens < 1 || b.maxTokens > MAX_REQUEST_TOKENS || b.maxPricePerMillion === 0n) return 'REQUEST_INVALID';
      if (b.expiresAtMs <= e.timestampMs || b.expiresAtMs > e.timestampMs + MAX_REQUEST_LIFETIME_MS) return 'REQUEST_INVALID';
      return null;
    case EventKind.MarketClaim:
      // Issue 11 attack 7: a claim reserved a request for whoever dated it first and let the claimer name its own
      // payout. Payment now comes only from the requester's receipt (MarketComplete), so claims are retired.
      return 'CLAIM_RETIRED';
    case EventKind.MarketComplete:
      return checkCompletion(e as LedgerEvent<MarketCompleteBody>, cfg);
    case EventKind.Genesis:
      return e.nonce === 0n ? null : 'GENESIS_INVALID';
    case EventKind.Uptime: {
      // issue 11 §2: one per subject per window (nonce = epoch), dated in its window or the grace after it, and
      // every attestation a valid signature of a distinct witness other than the subject
      const start = b.epoch * PROOF_WINDOW_MS;
      if (e.nonce !== BigInt(b.epoch) || e.timestampMs < start || e.timestampMs >= start + PROOF_WINDOW_MS + UPTIME_SUBMIT_GRACE_MS) return 'UPTIME_INVALID';
      return attestationsValid(cfg.networkId, e.signer, b.epoch, b.attestations) ? null : 'UPTIME_INVALID';
    }
    case EventKind.TrainingReceipt:
      return checkReceipt(cfg.networkId, cfg.modelLayers, e.signer, e.nonce, b.record, b.cosigs);
  }
}

/**
 * A completion stands on signatures only (issue 11 attack 7 and §2): the submitter is the driver (hops[0]); every
 * hop signed its own commitment; the commitments chain (hop k's output = hop k+1's input) and end in the output the
 * requester's receipt names; the requester signed the receipt (tokens, output, route). The requester's key must
 * also be the request's signer: a state rule (apply.ts), since the request is another event.
 */
function checkCompletion(e: LedgerEvent<MarketCompleteBody>, cfg: VerifyConfig): ReasonCode | null {
  const b = e.body;
  if (b.tokensUsed < 1 || b.tokensUsed > MAX_REQUEST_TOKENS || b.hops.length > MAX_MARKET_WORKERS + 2) return 'COMPLETION_INVALID';
  if (!bytesEqual(b.hops[0]!.key, e.signer)) return 'COMPLETION_NOT_DRIVER';
  const seen = new Set<string>();
  for (const h of [...b.hops.map((x) => x.key), b.requesterKey]) {
    const k = Buffer.from(h).toString('hex');
    if (seen.has(k)) return 'COMPLETION_INVALID'; // a hop twice, or the requester serving itself
    seen.add(k);
  }
  for (let i = 0; i + 1 < b.hops.length; i++) if (!bytesEqual(b.hops[i]!.outCommit, b.hops[i + 1]!.inCommit)) return 'HOP_CHAIN_BROKEN';
  if (!bytesEqual(b.hops[b.hops.length - 1]!.outCommit, b.outputCommitment)) return 'HOP_CHAIN_BROKEN';
  for (let i = 0; i < b.hops.length; i++) {
    const h = b.hops[i]!;
    if (h.key[0] !== 2 && h.key[0] !== 3) return 'COMPLETION_INVALID';
    const p = hopCommitmentPayload(cfg.networkId, b.requestId, i, b.hops.length, h.inCommit, h.outCommit);
    if (!verifyDomain(h.key, HOP_COMMITMENT_DOMAIN, p, h.signature)) return 'HOP_BAD_SIGNATURE';
  }
  if (b.requesterKey[0] !== 2 && b.requesterKey[0] !== 3) return 'COMPLETION_INVALID';
  const receipt = receiptPayload(cfg.networkId, b.requestId, b.tokensUsed, b.outputCommitment, b.hops);
  if (!verifyDomain(b.requesterKey, RECEIPT_DOMAIN, receipt, b.receiptSignature)) return 'RECEIPT_BAD_SIGNATURE';
  return null;
}

function isZero(h: Uint8Array): boolean {
  return bytesEqual(h, ZERO32);
}

function checkProof(e: LedgerEvent<ProofBody>, cfg: VerifyConfig): ReasonCode | null {
  const b = e.body;
  const rec = b.holderRecord;
  // The record must be the signer's own, signed, for this network, valid at the proof's time.
  let recKey: Uint8Array;
  try {
    recKey = publicKeyViewFromPeerId(rec.peerId); // only compared
  } catch {
    return 'HOLDER_RECORD_KEY_MISMATCH';
  }
  if (!bytesEqual(recKey, e.signer)) return 'HOLDER_RECORD_KEY_MISMATCH';
  if (rec.networkId !== cfg.networkId) return 'HOLDER_RECORD_WRONG_NETWORK';
  if (e.timestampMs < rec.timestampMs || e.timestampMs > rec.expiresMs) return 'HOLDER_RECORD_NOT_VALID_AT_TIME';
  // protocols/ never signs nor accepts a record valid for more than a day; nor does the ledger, whichever verifier.
  if (rec.expiresMs - rec.timestampMs > MAX_HOLDER_RECORD_LIFETIME_MS) return 'HOLDER_RECORD_NOT_VALID_AT_TIME';
  if (b.layers.start !== rec.span.start || b.layers.end !== rec.span.end) return 'LAYERS_MISMATCH';
  if (b.layers.start >= b.layers.end || b.layers.end > cfg.modelLayers) return 'LAYERS_OUT_OF_RANGE';
  if (b.epoch !== Math.floor(e.timestampMs / PROOF_WINDOW_MS)) return 'EPOCH_MISMATCH';
  if (b.uptimeMs > MAX_UPTIME_MS) return 'UPTIME_TOO_LONG';
  // Rates per second of uptime, in integers: x / (uptimeMs / 1000) <= cap  ⇔  x · 1000 <= cap · uptimeMs.
  const up = BigInt(b.uptimeMs);
  if (b.inferenceTokens * 1000n > BigInt(MAX_INFERENCE_TOKENS_PER_S) * up) return 'INFERENCE_RATE';
  if (b.trainingTokens * 1000n > BigInt(MAX_TRAINING_TOKENS_PER_S) * up) return 'TRAINING_RATE';
  if (b.dataSamples * 1000n > BigInt(MAX_DATA_SAMPLES_PER_S) * up) return 'DATA_RATE';
  if (b.trainingTokens > 0n) {
    if (b.uptimeMs < MIN_TRAINING_UPTIME_MS) return 'TRAINING_UPTIME_TOO_SHORT';
    if (bytesEqual(b.modelHashBefore, b.modelHashAfter)) return 'TRAINING_HASH_UNCHANGED';
    if (b.lossMicro === 0n) return 'TRAINING_LOSS_INVALID';
    if (isZero(b.gradientCommitment)) return 'TRAINING_NO_COMMITMENT';
  }
  // Last: the record signature is the most expensive check.
  if (!holderRecordVerified(cfg.holderVerifier, rec)) return 'HOLDER_RECORD_BAD_SIGNATURE';
  return null;
}

/** The longest validity period of a HolderRecord (src/protocols/holder-record.ts HOLDER_RECORD_LIMITS.maxLifetimeMs). */
export const MAX_HOLDER_RECORD_LIFETIME_MS = 24 * 60 * 60 * 1000;

/**
 * Records whose signature a verifier accepted, per verifier: a node embeds its current record (re-signed every few
 * minutes) in each proof, so consecutive proofs of one node carry the same record and its ECDSA check, half the cost
 * of a proof, is done once. The key is the record's signature (length-prefixed) and its whole canonical
 * payload, so only a byte-identical record reuses a verdict; only acceptances are kept, so a flood of bad records
 * cannot evict anything it could not have put there itself. Bounded, first in first out.
 */
const holderVerdicts = new WeakMap<HolderRecordVerifier, Map<string, true>>();
const HOLDER_VERDICTS_MAX = 4096;

function holderRecordVerified(v: HolderRecordVerifier, rec: EmbeddedHolderRecord): boolean {
  let key: string;
  try {
    const p = holderRecordPayloadOf(rec);
    key = `${rec.signature.length}:${rec.signature}` + Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('latin1');
  } catch {
    return v.verifySignature(rec); // out-of-range fields: no canonical payload to key on
  }
  let cache = holderVerdicts.get(v);
  if (cache === undefined) {
    cache = new Map();
    holderVerdicts.set(v, cache);
  }
  if (cache.has(key)) return true;
  if (!v.verifySignature(rec)) return false;
  if (cache.size >= HOLDER_VERDICTS_MAX) cache.delete(cache.keys().next().value!);
  cache.set(key, true);
  return true;
}

/** Forgets the HolderRecord verdicts cached for `v` (the benchmark measures each pass from cold). */
export function clearHolderRecordVerdicts(v: HolderRecordVerifier): void {
  holderVerdicts.delete(v);
}

/** A slash is valid when its evidence, on its own, proves the offence. */
function checkEvidence(e: LedgerEvent, cfg: VerifyConfig): ReasonCode | null {
  const b = e.body;
  if (b.kind !== EventKind.Slash) return 'EVIDENCE_INVALID';
  if (b.evidenceType === EvidenceType.HopFraud) return checkHopFraud(e, b.evidence, cfg); // issue 11 §2 (fraud.ts)
  const evs: LedgerEvent[] = [];
  for (const bytes of b.evidence) {
    let ev: LedgerEvent;
    try {
      ev = decodeEvent(bytes);
    } catch {
      return 'EVIDENCE_INVALID';
    }
    if (ev.networkId !== cfg.networkId || !verifyDomain(ev.signer, EVENT_DOMAIN, ev.payload, ev.signature)) return 'EVIDENCE_INVALID';
    evs.push(ev);
  }
  const offender = evs[0]!;
  if (bytesEqual(offender.signer, e.signer)) return 'SELF_REPORT';
  if (b.evidenceType === EvidenceType.Equivocation) {
    const [a, c] = evs as [LedgerEvent, LedgerEvent];
    if (!bytesEqual(replayKey(a), replayKey(c)) || bytesEqual(a.id, c.id)) return 'EVIDENCE_INVALID';
    return null;
  }
  if (offender.body.kind !== EventKind.Proof) return 'EVIDENCE_INVALID';
  const why = checkFields(offender, cfg);
  return why !== null && FRAUD_REASONS.has(why) ? null : 'EVIDENCE_INVALID';
}

/** The key under which an offence is slashed at most once (the replay key, or the invalid proof's id). */
export function evidenceKey(e: LedgerEvent): { offender: Uint8Array; key: Uint8Array } {
  const b = e.body;
  if (b.kind !== EventKind.Slash) throw new TypeError('not a slash');
  const first = decodeEvent(b.evidence[0]!);
  if (b.evidenceType === EvidenceType.Equivocation) return { offender: first.account, key: replayKey(first) };
  if (b.evidenceType === EvidenceType.HopFraud) {
    // issue 11 §2: the hop named by the record, once per (completion, hop index)
    const index = fraudIndex(b.evidence[1]!);
    const hop = (first.body as MarketCompleteBody).hops[index]!;
    return { offender: accountIdFromPublicKey(hop.key), key: fraudKey(first.id, index) };
  }
  return { offender: first.account, key: first.id };
}

// ---- issue 11 §2: hop fraud evidence (validators' re-execution; fraud.ts) ----
/** [completion event, fraud record]: the completion must itself be a valid event of this network. */
function checkHopFraud(e: LedgerEvent, evidence: Uint8Array[], cfg: VerifyConfig): ReasonCode | null {
  let c: LedgerEvent;
  try {
    c = decodeEvent(evidence[0]!);
  } catch {
    return 'EVIDENCE_INVALID';
  }
  if (c.body.kind !== EventKind.MarketComplete || verifyEvent(c, cfg) !== null) return 'EVIDENCE_INVALID';
  return checkFraudRecord(cfg.networkId, c as LedgerEvent<MarketCompleteBody>, evidence[1]!, e.signer);
}
