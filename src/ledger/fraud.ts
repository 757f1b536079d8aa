/**
 * Hop fraud evidence (issue 11 §2 "Inference": validators re-execute sampled hop spans; docs/ECONOMICS.md
 * "Inference: validators re-execute and slash", docs/PROTOCOL.md "Hop transcripts and fraud evidence"). Pure.
 *
 * What is signed, by whom:
 * - the hop, when it signs its commitments for a market request, also signs a **transcript attestation**: the span it
 *   ran, the hash of its weights for that span (compute `modelHash`) and its engine, bound to the same (request,
 *   index, count, inCommit, outCommit). Its inCommit chains SHA-256 of every step's full input (commitment.ts v2), so
 *   the inputs a validator fetches are checked exactly;
 * - each validator that re-executed the hop's span on its own weights with the same model hash, from those inputs,
 *   and got another output commitment signs a **fraud statement** (completion id, hop index, model hash, the hop's
 *   outCommit, its own recomputed commitment).
 *
 * The slash (event kind 5, evidence type 3) carries the completion event (which holds the hop's signed commitment and
 * the requester's receipt) and the record: the hop's attestation plus at least HOP_FRAUD_QUORUM statements of
 * distinct validators (none the hop). Anyone checks it cheaply (signatures, the hop index, that every statement names
 * this completion, hop, model hash and the hop's outCommit, and differs from it); only the bond of each validator is
 * a state rule (apply.ts: each must hold MIN_REWARD_BOND locked). A false accusation needs a quorum of bonded
 * validators to lie, and the accusers earn nothing from it: the take goes to the defrauded requester and the fire.
 */
import { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, signDomain, verifyDomain, type NodeKey } from '../identity/index.js';
import { bytesEqual } from '../util/bytes.js';
import { DecodeError, Reader, Writer } from './codec.js';
import { MIN_REWARD_BOND } from './economics.js';
import { EventKind, EvidenceType, HASH_BYTES, MAX_NETWORK_ID, signEvent, type LedgerEvent, type MarketCompleteBody, type SlashBody } from './events.js';

export const TRANSCRIPT_DOMAIN = 'neuroshard/hop-transcript/v1';
export const FRAUD_STATEMENT_DOMAIN = 'neuroshard/hop-fraud/v1';
/** Distinct bonded validators whose re-execution must disagree with the hop before it is slashed. */
export const HOP_FRAUD_QUORUM = 2;
/**
 * Whether a validator holding `locked` stake (locked, not cooling down) counts toward HOP_FRAUD_QUORUM: the state rule
 * of a hop-fraud slash (apply.ts), and who a hop serves its transcripts to (protocols/transcript-access.ts, session
 * 28: a statement from a key without it slashes nobody, so such a key has no need for a hop's inputs).
 */
export function countsForFraudQuorum(locked: bigint): boolean {
  return locked >= MIN_REWARD_BOND;
}
/** Most statements a record carries (the rest would only cost bytes). */
export const MAX_FRAUD_STATEMENTS = 8;
/** Longest model hash and engine name (hex hashes are 64 characters). */
export const MAX_MODEL_HASH_CHARS = 128;
export const MAX_ENGINE_CHARS = 64;

/** What the hop claims it ran for (request, index): signed with its commitments. */
export interface TranscriptClaim {
  span: { start: number; end: number };
  modelHash: string;
  engine: string;
}

/** u8 1 ‖ str networkId ‖ requestId ‖ u8 index ‖ u8 count ‖ inCommit ‖ outCommit ‖ u32 start ‖ u32 end ‖ str modelHash ‖ str engine. */
export function transcriptPayload(networkId: string, requestId: Uint8Array, index: number, count: number, inCommit: Uint8Array, outCommit: Uint8Array, c: TranscriptClaim): Uint8Array {
  return new Writer()
    .u8(1)
    .str(networkId, MAX_NETWORK_ID)
    .fixed(requestId, HASH_BYTES)
    .u8(index)
    .u8(count)
    .fixed(inCommit, HASH_BYTES)
    .fixed(outCommit, HASH_BYTES)
    .u32(c.span.start)
    .u32(c.span.end)
    .str(c.modelHash, MAX_MODEL_HASH_CHARS)
    .str(c.engine, MAX_ENGINE_CHARS)
    .finish();
}

export function signTranscriptClaim(key: NodeKey, networkId: string, requestId: Uint8Array, index: number, count: number, inCommit: Uint8Array, outCommit: Uint8Array, c: TranscriptClaim): Uint8Array {
  return signDomain(key, TRANSCRIPT_DOMAIN, transcriptPayload(networkId, requestId, index, count, inCommit, outCommit, c));
}

/** One validator's signed disagreement with hop `index` of a completion. */
export interface FraudStatement {
  validator: Uint8Array;
  /** The output commitment the validator recomputed (≠ the hop's outCommit). */
  recomputed: Uint8Array;
  signature: Uint8Array;
}

/** u8 1 ‖ str networkId ‖ completionId ‖ u8 index ‖ str modelHash ‖ hop outCommit ‖ recomputed. */
export function statementPayload(networkId: string, completionId: Uint8Array, index: number, modelHash: string, hopOut: Uint8Array, recomputed: Uint8Array): Uint8Array {
  return new Writer().u8(1).str(networkId, MAX_NETWORK_ID).fixed(completionId, HASH_BYTES).u8(index).str(modelHash, MAX_MODEL_HASH_CHARS).fixed(hopOut, HASH_BYTES).fixed(recomputed, HASH_BYTES).finish();
}

export function signFraudStatement(key: NodeKey, networkId: string, completionId: Uint8Array, index: number, modelHash: string, hopOut: Uint8Array, recomputed: Uint8Array): FraudStatement {
  return { validator: key.publicKey, recomputed, signature: signDomain(key, FRAUD_STATEMENT_DOMAIN, statementPayload(networkId, completionId, index, modelHash, hopOut, recomputed)) };
}

/** The record a fraud slash carries next to the completion event. */
export interface HopFraudRecord {
  index: number;
  claim: TranscriptClaim;
  /** The hop's signature over transcriptPayload (TRANSCRIPT_DOMAIN). */
  claimSignature: Uint8Array;
  statements: FraudStatement[];
}

/** u8 1 ‖ u8 index ‖ u32 start ‖ u32 end ‖ str modelHash ‖ str engine ‖ 64-byte claim signature ‖ u8 n ‖ (33-byte key ‖ 32-byte recomputed ‖ 64-byte signature) × n. */
export function encodeFraudRecord(r: HopFraudRecord): Uint8Array {
  const w = new Writer().u8(1).u8(r.index).u32(r.claim.span.start).u32(r.claim.span.end).str(r.claim.modelHash, MAX_MODEL_HASH_CHARS).str(r.claim.engine, MAX_ENGINE_CHARS).fixed(r.claimSignature, SIGNATURE_LENGTH);
  w.u8(r.statements.length);
  for (const s of r.statements) w.fixed(s.validator, PUBLIC_KEY_LENGTH).fixed(s.recomputed, HASH_BYTES).fixed(s.signature, SIGNATURE_LENGTH);
  return w.finish();
}

/** Strict decode; throws DecodeError. */
export function decodeFraudRecord(b: Uint8Array): HopFraudRecord {
  const r = new Reader(b);
  if (r.u8() !== 1) throw new DecodeError('fraud record version');
  const index = r.u8();
  const span = { start: r.u32(), end: r.u32() };
  const modelHash = r.str(MAX_MODEL_HASH_CHARS);
  const engine = r.str(MAX_ENGINE_CHARS);
  const claimSignature = r.fixed(SIGNATURE_LENGTH);
  const n = r.u8();
  if (n < 1 || n > MAX_FRAUD_STATEMENTS) throw new DecodeError(`statement count ${n} outside 1..${MAX_FRAUD_STATEMENTS}`);
  const statements: FraudStatement[] = [];
  for (let i = 0; i < n; i++) statements.push({ validator: r.fixed(PUBLIC_KEY_LENGTH), recomputed: r.fixed(HASH_BYTES), signature: r.fixed(SIGNATURE_LENGTH) });
  r.end();
  return { index, claim: { span, modelHash, engine }, claimSignature, statements };
}

/**
 * The stateless check of a fraud record against its completion (already decoded and verified as an event: kind 8,
 * signatures, chain), reported by `reporter`. Returns null when the evidence holds, else why not. Validators'
 * bonds are a state rule (apply.ts `bondedValidators`).
 */
export function checkFraudRecord(networkId: string, completion: LedgerEvent<MarketCompleteBody>, record: Uint8Array, reporter: Uint8Array): 'EVIDENCE_INVALID' | 'SELF_REPORT' | null {
  let r: HopFraudRecord;
  try {
    r = decodeFraudRecord(record);
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) return 'EVIDENCE_INVALID';
    throw e;
  }
  const b = completion.body;
  const hop = b.hops[r.index];
  if (hop === undefined) return 'EVIDENCE_INVALID';
  if (bytesEqual(hop.key, reporter)) return 'SELF_REPORT';
  if (!(r.claim.span.start < r.claim.span.end)) return 'EVIDENCE_INVALID';
  if (!verifyDomain(hop.key, TRANSCRIPT_DOMAIN, transcriptPayload(networkId, b.requestId, r.index, b.hops.length, hop.inCommit, hop.outCommit, r.claim), r.claimSignature)) return 'EVIDENCE_INVALID';
  if (r.statements.length < HOP_FRAUD_QUORUM) return 'EVIDENCE_INVALID';
  const seen = new Set<string>();
  for (const s of r.statements) {
    const k = Buffer.from(s.validator).toString('hex');
    if (seen.has(k) || bytesEqual(s.validator, hop.key)) return 'EVIDENCE_INVALID';
    seen.add(k);
    if (bytesEqual(s.recomputed, hop.outCommit)) return 'EVIDENCE_INVALID'; // a validator that agrees accuses nothing
    if (!verifyDomain(s.validator, FRAUD_STATEMENT_DOMAIN, statementPayload(networkId, completion.id, r.index, r.claim.modelHash, hop.outCommit, s.recomputed), s.signature)) return 'EVIDENCE_INVALID';
  }
  return null;
}

/** The offence's slash key: completion id ‖ u8 hop index (33 bytes: apart from replay keys, 42, and proof ids, 32). */
export function fraudKey(completionId: Uint8Array, index: number): Uint8Array {
  const k = new Uint8Array(HASH_BYTES + 1);
  k.set(completionId);
  k[HASH_BYTES] = index;
  return k;
}

/** The validators' keys of a record that decodes (apply.ts counts the bonded ones). */
export function fraudValidators(record: Uint8Array): Uint8Array[] {
  return decodeFraudRecord(record).statements.map((s) => s.validator);
}

/** The offender (hop key) and index of a record. */
export function fraudIndex(record: Uint8Array): number {
  return decodeFraudRecord(record).index;
}

/** A hop-fraud slash (kind 5, evidence type 3) signed by `reporter`: [completion event, fraud record]. */
export function buildSlashHopFraud(reporter: NodeKey, env: { networkId: string; nonce: bigint; timestampMs: number }, completion: Uint8Array, record: Uint8Array): LedgerEvent<SlashBody> {
  return signEvent<SlashBody>(reporter, { ...env, body: { kind: EventKind.Slash, evidenceType: EvidenceType.HopFraud, evidence: [completion, record] } });
}
