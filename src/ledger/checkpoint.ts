/**
 * Finality (issue 11 §3), as pure functions over plain data: signed checkpoints, their committee and quorum, the
 * root over event ids, and the verification a node runs before it trusts one (docs/PROTOCOL.md "## Ledger
 * checkpoints", docs/ECONOMICS.md "## Finality").
 *
 * A checkpoint k covers every event dated before its cut (`cutMs`, a multiple of the checkpoint period). Its body
 * names the state hash at the cut, the finalized height (applied + void events up to the cut), a root over the
 * ids of those events, the hash of checkpoint k−1, and `committee`: the stake weights in the state at the cut,
 * which are the committee of checkpoint k+1. So a node that holds checkpoint k−1 (or the genesis key) can verify
 * checkpoint k without any state: the signers must be members of k−1's committee holding more than 2/3 of its
 * stake (bigint arithmetic, no rounding). A new node verifies the chain of headers from the genesis key, then the
 * latest one's snapshot: the state hash recomputed from the rows, and the committee recomputed from them.
 *
 * Events root: root_k = SHA-256(domain ‖ root_{k−1} ‖ merkle(ids of the events of period k, canonical order)), a
 * chain of per-period Merkle trees, so a checkpoint commits to every id up to its cut at the cost of its own
 * period's ids (a node started from a snapshot never needs the older ones).
 *
 * Genesis: the first committee is the network's genesis key alone (weight 1). A checkpoint whose state holds no
 * stake hands the committee back to the genesis key, so a network without stakers is finalized by its founder
 * and one with stakers by them; once stake exists, the genesis key has no say unless it stakes.
 */
import { accountIdFromPublicKey, isValidPublicKey, signDomain, verifyDomain, type NodeKey } from '../identity/index.js';
import { fromHex, sha256, toHex } from '../util/bytes.js';
import { MIN_STAKE } from './economics.js';
import type { LedgerState } from './state.js';

export const CHECKPOINT_DOMAIN = 'neuroshard/ledger-checkpoint/v1';
const ROOT_DOMAIN = 'neuroshard/ledger-events-root/v1';
/** The largest committee: the stakers with the most locked stake (ties by account id). */
export const MAX_COMMITTEE = 128;
/** Largest serialized checkpoint (a full committee and all its signatures fit with room to spare). */
export const MAX_CHECKPOINT_BYTES = 64 * 1024;
export const ZERO_HASH = '0'.repeat(64);

export interface CommitteeMember {
  /** 20-byte account id, hex. */
  account: string;
  /** Locked stake in base units (the genesis committee: 1). */
  stake: bigint;
}

export interface CheckpointBody {
  networkId: string;
  /** 1, 2, …: one more than the previous checkpoint's. */
  seq: number;
  /** Covers every event dated before this (ms). */
  cutMs: number;
  /** Applied + void events up to the cut: the finalized height. */
  height: number;
  /** The state hash at the cut (64 hex). */
  stateHash: string;
  /** Root over the ids of every applied or void event up to the cut (64 hex, file comment). */
  eventsRoot: string;
  /** checkpointHash of the previous checkpoint; ZERO_HASH for the first. */
  prev: string;
  /** Stake weights at the cut, descending: the committee that signs the next checkpoint. */
  committee: CommitteeMember[];
}

export interface CheckpointSignature {
  /** 33-byte compressed public key, hex. */
  key: string;
  /** 64-byte signature over checkpointPayload(body), hex. */
  sig: string;
}

export interface SignedCheckpoint {
  body: CheckpointBody;
  sigs: CheckpointSignature[];
}

export type CheckpointReason =
  | 'CHECKPOINT_MALFORMED'
  | 'CHECKPOINT_NETWORK'
  | 'CHECKPOINT_CHAIN'
  | 'CHECKPOINT_BAD_SIGNATURE'
  | 'CHECKPOINT_NOT_COMMITTEE'
  | 'CHECKPOINT_NO_QUORUM';

/** Canonical text of a value: keys sorted, bigints as decimal strings. */
function canonical(v: unknown): string {
  if (typeof v === 'bigint') return '"' + v.toString() + '"';
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return '{' + Object.keys(o).sort().map((k) => JSON.stringify(k) + ':' + canonical(o[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

/** The bytes a committee member signs. */
export function checkpointPayload(body: CheckpointBody): Uint8Array {
  return new TextEncoder().encode(canonical(body));
}

/** The checkpoint's identity (what the next one's `prev` names). */
export function checkpointHash(body: CheckpointBody): string {
  return toHex(sha256(checkpointPayload(body)));
}

export function signCheckpoint(key: NodeKey, body: CheckpointBody): CheckpointSignature {
  return { key: toHex(key.publicKey), sig: toHex(signDomain(key, CHECKPOINT_DOMAIN, checkpointPayload(body))) };
}

/** The first committee of a network: its genesis key, weight 1. */
export function genesisCommittee(genesisKey: Uint8Array): CommitteeMember[] {
  return [{ account: toHex(accountIdFromPublicKey(genesisKey)), stake: 1n }];
}

/** The committee of the checkpoint after `prev` (or the first one). */
export function committeeAfter(prev: CheckpointBody | undefined, genesis: CommitteeMember[]): CommitteeMember[] {
  if (prev === undefined) return genesis;
  return totalStake(prev.committee) > 0n ? prev.committee : genesis;
}

/** Stake weights in a state: accounts with at least MIN_STAKE locked, most stake first, at most MAX_COMMITTEE. */
export function committeeOf(state: LedgerState): CommitteeMember[] {
  const out: CommitteeMember[] = [];
  for (const [account, a] of state.accounts()) if (a.staked >= MIN_STAKE) out.push({ account, stake: a.staked });
  out.sort((x, y) => (x.stake > y.stake ? -1 : x.stake < y.stake ? 1 : x.account < y.account ? -1 : x.account > y.account ? 1 : 0));
  return out.slice(0, MAX_COMMITTEE);
}

export function totalStake(c: readonly CommitteeMember[]): bigint {
  let t = 0n;
  for (const m of c) t += m.stake;
  return t;
}

/** More than 2/3 of `total`: 3·signed > 2·total, exact in bigint; never with no stake at all. */
export function quorumReached(signed: bigint, total: bigint): boolean {
  return total > 0n && 3n * signed > 2n * total;
}

/** Merkle root of ids (SHA-256; leaves tagged 0x00, inner nodes 0x01; an odd node is carried up). */
export function merkleRoot(ids: readonly Uint8Array[]): Uint8Array {
  if (ids.length === 0) return sha256(new Uint8Array([0]));
  let level = ids.map((id) => sha256(concat(Uint8Array.of(0), id)));
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? sha256(concat(Uint8Array.of(1), level[i]!, level[i + 1]!)) : level[i]!);
    level = next;
  }
  return level[0]!;
}

/** root_k from root_{k−1} and the ids of period k in canonical order. */
export function nextEventsRoot(prevRoot: string, ids: readonly Uint8Array[]): string {
  return toHex(sha256(concat(new TextEncoder().encode(ROOT_DOMAIN + '\0'), fromHex(prevRoot), merkleRoot(ids))));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** The cut of the checkpoint due at `nowMs`: the latest period boundary at least `settleMs` old, if after `lastCutMs`. */
export function dueCut(nowMs: number, periodMs: number, settleMs: number, lastCutMs: number): number | undefined {
  const cut = Math.floor((nowMs - settleMs) / periodMs) * periodMs;
  return cut > lastCutMs && cut > 0 ? cut : undefined;
}

/** The stake of `committee` that signed, counting each member once; signatures are checked. */
export function signedStake(cp: SignedCheckpoint, committee: readonly CommitteeMember[]): { stake: bigint; reason?: CheckpointReason } {
  const weight = new Map(committee.map((m) => [m.account, m.stake]));
  const payload = checkpointPayload(cp.body);
  const seen = new Set<string>();
  let stake = 0n;
  for (const s of cp.sigs) {
    const key = fromHex(s.key);
    const account = toHex(accountIdFromPublicKey(key));
    const w = weight.get(account);
    if (w === undefined) return { stake, reason: 'CHECKPOINT_NOT_COMMITTEE' };
    if (!verifyDomain(key, CHECKPOINT_DOMAIN, payload, fromHex(s.sig))) return { stake, reason: 'CHECKPOINT_BAD_SIGNATURE' };
    if (seen.has(account)) continue;
    seen.add(account);
    stake += w;
  }
  return { stake };
}

/**
 * Verifies checkpoint `cp` against the one before it (`prev`, undefined for the first) and the genesis committee:
 * network, sequence, chain link, signatures, committee membership and quorum. Null when valid.
 */
export function verifyCheckpoint(cp: SignedCheckpoint, prev: CheckpointBody | undefined, genesis: CommitteeMember[], networkId: string): CheckpointReason | null {
  const b = cp.body;
  if (b.networkId !== networkId) return 'CHECKPOINT_NETWORK';
  if (prev === undefined ? b.seq !== 1 || b.prev !== ZERO_HASH : b.seq !== prev.seq + 1 || b.prev !== checkpointHash(prev) || b.cutMs <= prev.cutMs || b.height < prev.height) {
    return 'CHECKPOINT_CHAIN';
  }
  const committee = committeeAfter(prev, genesis);
  const { stake, reason } = signedStake(cp, committee);
  if (reason !== undefined) return reason;
  return quorumReached(stake, totalStake(committee)) ? null : 'CHECKPOINT_NO_QUORUM';
}

/** Verifies a chain of checkpoints following `prev` (in order); returns the first failure with its index. */
export function verifyChain(list: readonly SignedCheckpoint[], prev: CheckpointBody | undefined, genesis: CommitteeMember[], networkId: string): { ok: number; reason?: CheckpointReason } {
  let p = prev;
  for (let i = 0; i < list.length; i++) {
    const r = verifyCheckpoint(list[i]!, p, genesis, networkId);
    if (r !== null) return { ok: i, reason: r };
    p = list[i]!.body;
  }
  return { ok: list.length };
}

/** Equal committees (same members, same stakes, same order). */
export function sameCommittee(a: readonly CommitteeMember[], b: readonly CommitteeMember[]): boolean {
  return a.length === b.length && a.every((m, i) => m.account === b[i]!.account && m.stake === b[i]!.stake);
}

// ───────────────────────────── boundary: JSON ─────────────────────────────

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;

function fail(what: string): never {
  throw new TypeError(`checkpoint: ${what}`);
}

function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} is not a non-negative integer`);
  return v;
}

/** The JSON form (bigints as decimal strings). */
export function checkpointToJson(cp: SignedCheckpoint): unknown {
  return { body: { ...cp.body, committee: cp.body.committee.map((m) => ({ account: m.account, stake: m.stake.toString() })) }, sigs: cp.sigs.map((s) => ({ ...s })) };
}

/** Parses and bounds a checkpoint from untrusted JSON; throws a TypeError on anything malformed. */
export function checkpointFromJson(v: unknown): SignedCheckpoint {
  if (v === null || typeof v !== 'object') fail('not an object');
  const o = v as { body?: unknown; sigs?: unknown };
  return { body: bodyFromJson(o.body), sigs: sigsFromJson(o.sigs) };
}

export function bodyFromJson(v: unknown): CheckpointBody {
  if (v === null || typeof v !== 'object') fail('body is not an object');
  const b = v as Record<string, unknown>;
  if (typeof b.networkId !== 'string' || b.networkId.length === 0 || b.networkId.length > 128) fail('bad networkId');
  for (const k of ['stateHash', 'eventsRoot', 'prev'] as const) if (typeof b[k] !== 'string' || !HEX64.test(b[k])) fail(`bad ${k}`);
  if (!Array.isArray(b.committee) || b.committee.length > MAX_COMMITTEE) fail('bad committee');
  const committee = (b.committee as unknown[]).map((m) => {
    const x = m as { account?: unknown; stake?: unknown };
    if (typeof x?.account !== 'string' || !HEX40.test(x.account)) fail('bad committee account');
    if (typeof x.stake !== 'string' || !/^[0-9]{1,40}$/.test(x.stake)) fail('bad committee stake');
    return { account: x.account, stake: BigInt(x.stake) };
  });
  const seq = uint(b.seq, 'seq');
  if (seq < 1) fail('seq 0');
  return {
    networkId: b.networkId,
    seq,
    cutMs: uint(b.cutMs, 'cutMs'),
    height: uint(b.height, 'height'),
    stateHash: b.stateHash as string,
    eventsRoot: b.eventsRoot as string,
    prev: b.prev as string,
    committee,
  };
}

export function sigsFromJson(v: unknown): CheckpointSignature[] {
  if (!Array.isArray(v) || v.length > MAX_COMMITTEE) fail('bad signature list');
  return (v as unknown[]).map((s) => {
    const x = s as { key?: unknown; sig?: unknown };
    if (typeof x?.key !== 'string' || !/^[0-9a-f]{66}$/.test(x.key) || !isValidPublicKey(fromHex(x.key))) fail('bad signer key');
    if (typeof x.sig !== 'string' || !/^[0-9a-f]{128}$/.test(x.sig)) fail('bad signature');
    return { key: x.key, sig: x.sig };
  });
}
