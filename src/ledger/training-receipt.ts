/**
 * Training receipts (issue 11 §2 "Training", with issue 9 §2's aggregation records): training rewards come only from
 * a record of an outer round that a quorum of the layer holders co-signed, never from a node's own word.
 * docs/ECONOMICS.md "Training: co-signed records" and docs/PROTOCOL.md "## Training receipts" are the normative text.
 *
 * At the close of an outer round every holder of a span (the round's members: they leave the round with bit-identical
 * weights, src/training/sync.ts) builds the same canonical **training record**: the round, the span of blocks, a hash
 * of the resulting weights, the members' keys, the contributions it aggregated (each a member, its token count, used
 * or rejected) and, when the gauntlet measured it, the loss change. Each member signs the record's payload under
 * TRAINING_RECORD_DOMAIN; one member (the submitter) puts the record and the co-signatures into a TrainingReceipt
 * ledger event (kind 11). The ledger then:
 *
 * - **stateless** (verify.ts, `checkReceipt`): 2..MAX_RECEIPT_MEMBERS members in ascending key order, contributions
 *   in ascending member order with 1..MAX_RECEIPT_TOKENS tokens, the event nonce = the round, every co-signature a
 *   valid signature of the member it names, co-signers distinct and at least `receiptQuorum(members)`, the submitter
 *   one of them. A changed count, member or hash breaks every signature; a non-member's signature verifies under no
 *   member's key.
 * - **state** (apply.ts): witnessed rules only; at least `receiptQuorum(members)` co-signers bonded (locked stake ≥
 *   MIN_REWARD_BOND) at the event's place; no co-signer has co-signed another receipt of this round (one record per
 *   member and round: a replay under another submitter, or a second record for the round, is TRAINING_RECEIPT_DUPLICATE);
 *   then each *accepted* contributor that is bonded and not yet paid for this round is minted the training reward of
 *   its tokens over the span (economics.ts proofReward's training term × role × its stake multiplier, under the
 *   per-event and daily caps). Rejected contributions and unbonded contributors get nothing.
 *
 * Quorum: `max(2, ⌊M/2⌋ + 1)` co-signers of the M members, so a majority of the round's members and never one key
 * alone; each contributor's pay is therefore vouched for by at least one bonded member other than itself.
 */
import { accountIdFromPublicKey, signDomain, verifyDomain, SIGNATURE_LENGTH, type NodeKey } from '../identity/index.js';
import { bytesEqual, sha256, toHex } from '../util/bytes.js';
import { DecodeError, Reader, Writer } from './codec.js';

export const TRAINING_RECORD_DOMAIN = 'neuroshard/training-record/v1';
export const TRAINING_RECORD_VERSION = 1;
/** Most members (and so most contributions and co-signatures) one record names. */
export const MAX_RECEIPT_MEMBERS = 16;
/** Most tokens one contribution may claim: an hour of inner steps at the proof rate cap (20,000 tokens/s). */
export const MAX_RECEIPT_TOKENS = 72_000_000n;
const KEY_BYTES = 33;
const HASH_BYTES = 32;
const MAX_NETWORK_ID = 128;

export interface ReceiptContribution {
  /** Index into `members` of the contribution's sender. */
  member: number;
  /** Tokens the sender trained on in the round (the network's nominal count, node/training-receipts.ts). */
  tokens: bigint;
  /** Used by the aggregation (true) or rejected (false: non-finite, Krum score, harmful, …). */
  accepted: boolean;
}

/** The canonical record of one outer round of one span, as every member of the round builds it. */
export interface TrainingRecord {
  round: number;
  /** Blocks [start, end) of the span. */
  layers: { start: number; end: number };
  /** SHA-256 over the span's agreed per-layer state hashes after the round (training/receipt.ts). */
  weightsHash: Uint8Array;
  /** The round's members' compressed public keys, ascending (byte order), distinct. */
  members: Uint8Array[];
  /** Ascending by member index, at most one per member. */
  contributions: ReceiptContribution[];
  /** The held-out loss change the gauntlet measured × 1e6 (negative = better), when it ran. */
  lossChangeMicro?: bigint;
}

export interface RecordCosignature {
  /** Index into the record's members of the signer. */
  member: number;
  signature: Uint8Array;
}

/** The record's fields after the network id (shared by the signed payload and the event body). */
export function writeRecordFields(w: Writer, r: TrainingRecord): void {
  w.u64(r.round).u32(r.layers.start).u32(r.layers.end).fixed(r.weightsHash, HASH_BYTES);
  w.u8(r.members.length);
  for (const m of r.members) w.fixed(m, KEY_BYTES);
  w.u8(r.contributions.length);
  for (const c of r.contributions) w.u8(c.member).u64(c.tokens).u8(c.accepted ? 1 : 0);
  if (r.lossChangeMicro === undefined) w.u8(0);
  else w.u8(1).u64(BigInt.asUintN(64, r.lossChangeMicro));
}

export function readRecordFields(r: Reader): TrainingRecord {
  const round = r.u64n();
  const layers = { start: r.u32(), end: r.u32() };
  const weightsHash = r.fixed(HASH_BYTES);
  const m = r.u8();
  if (m < 2 || m > MAX_RECEIPT_MEMBERS) throw new DecodeError(`member count ${m} outside 2..${MAX_RECEIPT_MEMBERS}`);
  const members: Uint8Array[] = [];
  for (let i = 0; i < m; i++) members.push(r.fixed(KEY_BYTES));
  const c = r.u8();
  if (c < 1 || c > m) throw new DecodeError(`contribution count ${c} outside 1..${m}`);
  const contributions: ReceiptContribution[] = [];
  for (let i = 0; i < c; i++) {
    const member = r.u8();
    const tokens = r.u64();
    const acc = r.u8();
    if (acc > 1) throw new DecodeError('accepted flag is not 0 or 1');
    contributions.push({ member, tokens, accepted: acc === 1 });
  }
  const has = r.u8();
  if (has > 1) throw new DecodeError('loss flag is not 0 or 1');
  const rec: TrainingRecord = { round, layers, weightsHash, members, contributions };
  if (has === 1) rec.lossChangeMicro = BigInt.asIntN(64, r.u64());
  return rec;
}

export function writeCosignatures(w: Writer, sigs: readonly RecordCosignature[]): void {
  w.u8(sigs.length);
  for (const s of sigs) w.u8(s.member).fixed(s.signature, SIGNATURE_LENGTH);
}

export function readCosignatures(r: Reader): RecordCosignature[] {
  const n = r.u8();
  if (n < 1 || n > MAX_RECEIPT_MEMBERS) throw new DecodeError(`co-signature count ${n} outside 1..${MAX_RECEIPT_MEMBERS}`);
  const out: RecordCosignature[] = [];
  for (let i = 0; i < n; i++) out.push({ member: r.u8(), signature: r.fixed(SIGNATURE_LENGTH) });
  return out;
}

/** What each member signs: u8 1 ‖ str networkId ‖ the record's fields (writeRecordFields). */
export function trainingRecordPayload(networkId: string, r: TrainingRecord): Uint8Array {
  const w = new Writer().u8(TRAINING_RECORD_VERSION).str(networkId, MAX_NETWORK_ID);
  writeRecordFields(w, r);
  return w.finish();
}

/** Decodes a signed payload strictly (the record exchange between holders carries it as is). */
export function decodeTrainingRecordPayload(b: Uint8Array): { networkId: string; record: TrainingRecord } {
  const r = new Reader(b);
  if (r.u8() !== TRAINING_RECORD_VERSION) throw new DecodeError('unknown training record version');
  const networkId = r.str(MAX_NETWORK_ID);
  const record = readRecordFields(r);
  r.end();
  return { networkId, record };
}

/** Co-signers needed of M members: a strict majority, and never fewer than 2. */
export function receiptQuorum(members: number): number {
  return Math.max(2, Math.floor(members / 2) + 1);
}

/** `key`'s co-signature of `record`, or undefined when `key` is no member of it. */
export function cosignRecord(key: NodeKey, networkId: string, record: TrainingRecord): RecordCosignature | undefined {
  const member = record.members.findIndex((m) => bytesEqual(m, key.publicKey));
  if (member < 0) return undefined;
  return { member, signature: signDomain(key, TRAINING_RECORD_DOMAIN, trainingRecordPayload(networkId, record)) };
}

export function verifyCosignature(networkId: string, record: TrainingRecord, c: RecordCosignature): boolean {
  const key = record.members[c.member];
  return key !== undefined && verifyDomain(key, TRAINING_RECORD_DOMAIN, trainingRecordPayload(networkId, record), c.signature);
}

export type ReceiptReason = 'TRAINING_RECEIPT_INVALID' | 'TRAINING_RECEIPT_BAD_SIGNATURE';

/**
 * The stateless rules of a receipt submitted by `submitter` with event nonce `nonce` (module comment). Returns null
 * when they hold. The payload is built once and every signature checked against it.
 */
export function checkReceipt(networkId: string, modelLayers: number, submitter: Uint8Array, nonce: bigint, record: TrainingRecord, cosigs: readonly RecordCosignature[]): ReceiptReason | null {
  const r = record;
  if (nonce !== BigInt(r.round)) return 'TRAINING_RECEIPT_INVALID';
  if (r.layers.start >= r.layers.end || r.layers.end > modelLayers) return 'TRAINING_RECEIPT_INVALID';
  for (let i = 0; i < r.members.length; i++) {
    const k = r.members[i]!;
    if (k[0] !== 2 && k[0] !== 3) return 'TRAINING_RECEIPT_INVALID';
    if (i > 0 && compare(r.members[i - 1]!, k) >= 0) return 'TRAINING_RECEIPT_INVALID'; // ascending, so distinct
  }
  let prev = -1;
  for (const c of r.contributions) {
    if (c.member <= prev || c.member >= r.members.length) return 'TRAINING_RECEIPT_INVALID';
    if (c.tokens < 1n || c.tokens > MAX_RECEIPT_TOKENS) return 'TRAINING_RECEIPT_INVALID';
    prev = c.member;
  }
  prev = -1;
  let submitterSigned = false;
  for (const c of cosigs) {
    if (c.member <= prev || c.member >= r.members.length) return 'TRAINING_RECEIPT_INVALID';
    prev = c.member;
    if (bytesEqual(r.members[c.member]!, submitter)) submitterSigned = true;
  }
  if (cosigs.length < receiptQuorum(r.members.length)) return 'TRAINING_RECEIPT_INVALID'; // (bonded ones are counted in apply.ts)
  if (!submitterSigned) return 'TRAINING_RECEIPT_INVALID';
  const payload = trainingRecordPayload(networkId, r);
  for (const c of cosigs) if (!verifyDomain(r.members[c.member]!, TRAINING_RECORD_DOMAIN, payload, c.signature)) return 'TRAINING_RECEIPT_BAD_SIGNATURE';
  return null;
}

/** The co-signers' account ids (hex), in co-signature order. */
export function cosignerAccounts(record: TrainingRecord, cosigs: readonly RecordCosignature[]): string[] {
  return cosigs.map((c) => toHex(accountIdFromPublicKey(record.members[c.member]!)));
}

/**
 * State keys (the ledger state's one-shot key table, shared with slashes under a distinct prefix): a member co-signs
 * one receipt per round; a contributor is paid once per round.
 */
export function cosignedKey(round: number, accountHex: string): string {
  return `tr:s:${round}:${accountHex}`;
}
export function paidKey(round: number, accountHex: string): string {
  return `tr:p:${round}:${accountHex}`;
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Sorts keys into a record's canonical member order. */
export function sortMembers(keys: readonly Uint8Array[]): Uint8Array[] {
  return [...keys].sort(compare);
}

/** One holder's view of a closed outer round, as plain data (node/training-receipts.ts maps training's report). */
export interface ClosedRoundView {
  round: number;
  /** Blocks [start, end) of the span the round trained. */
  layers: { start: number; end: number };
  /** The agreed per-layer state hashes after the round (layer id → hex). */
  layerHashes: Record<string, string>;
  /** The round's members' public keys (any order). */
  members: Uint8Array[];
  /** Per layer: each contribution aggregated, by sender key, used or rejected. */
  contributions: Record<string, { sender: Uint8Array; used: boolean }[]>;
  /** Tokens each contribution stands for (the network's nominal count: H inner steps × tokens per step). */
  tokensPerContribution: bigint;
  lossChangeMicro?: bigint;
}

/**
 * The canonical record every member of the round builds from its view (undefined when the round gives none: more
 * members than MAX_RECEIPT_MEMBERS, fewer than 2, no contribution, a sender that is no member, or layers without a
 * hash). A contribution counts as accepted only when every layer used it (a contribution rejected in one layer is
 * rejected). The weights hash is SHA-256 over `id '=' hash '\n'` for each layer id in sorted order.
 */
export function roundRecord(v: ClosedRoundView): TrainingRecord | undefined {
  const members = sortMembers(v.members);
  if (members.length < 2 || members.length > MAX_RECEIPT_MEMBERS) return undefined;
  for (let i = 1; i < members.length; i++) if (compare(members[i - 1]!, members[i]!) === 0) return undefined;
  const ids = Object.keys(v.contributions).sort();
  if (ids.length === 0 || ids.some((id) => v.layerHashes[id] === undefined)) return undefined;
  const index = new Map(members.map((m, i) => [toHex(m), i]));
  const state = new Map<number, boolean>();
  for (const id of ids) {
    for (const c of v.contributions[id]!) {
      const i = index.get(toHex(c.sender));
      if (i === undefined) return undefined;
      state.set(i, (state.get(i) ?? true) && c.used);
    }
  }
  // a sender missing from a layer's record was not used there
  for (const [i, used] of state) if (used && ids.some((id) => !v.contributions[id]!.some((c) => toHex(c.sender) === toHex(members[i]!)))) state.set(i, false);
  if (state.size === 0 || v.tokensPerContribution < 1n || v.tokensPerContribution > MAX_RECEIPT_TOKENS) return undefined;
  const text = Object.keys(v.layerHashes).sort().map((id) => `${id}=${v.layerHashes[id]}\n`).join('');
  const rec: TrainingRecord = {
    round: v.round,
    layers: { start: v.layers.start, end: v.layers.end },
    weightsHash: sha256(text),
    members,
    contributions: [...state.entries()].sort((a, b) => a[0] - b[0]).map(([member, accepted]) => ({ member, tokens: v.tokensPerContribution, accepted })),
  };
  if (v.lossChangeMicro !== undefined) rec.lossChangeMicro = v.lossChangeMicro;
  return rec;
}
