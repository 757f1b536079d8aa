/**
 * The state transition: applies one stateless-valid event to the balance sheet at its place in canonical order.
 * A pure function of the state (= the events before it) and the event, plus one question about the event *set*
 * (`hasConflict`: does a stored applied or void event that sorts before this one share its (signer, kind, nonce)?
 * A rejected one does not count: it is neither relayed nor served, so nodes hold different ones; session 25): the first of
 * two equivocating events in canonical order keeps its verdict and the later one is void, whatever order they
 * arrive in. First-wins (not both-void) means a reused old nonce cannot reach back and void history, so it costs
 * no rewind (issue 11, attacks 4 and 6); the signer is slashable either way. It never reads a clock: "now" is the event's own
 * timestamp.
 */
import { toHex } from '../util/bytes.js';
import { minBig, WAD } from './amount.js';
import {
  CAPACITY_TTL_MS,
  DAY_MS,
  GENESIS_ALLOCATION,
  GENESIS_LOCK_DAYS,
  GENESIS_STAKE,
  MIN_REWARD_BOND,
  UPTIME_QUORUM,
  UPTIME_REWARD_PER_MINUTE,
  MARKET_BASE_PRICE,
  MAX_CAPACITY_TOKENS_PER_S,
  MAX_REWARD_PER_DAY,
  MAX_REWARD_PER_PROOF,
  MAX_UNBONDING_ENTRIES,
  SLASH_AMOUNT,
  UNSTAKE_COOLDOWN_MS,
  addServed,
  completionCost,
  completionFee,
  marketPriceStep,
  servedDemand,
  proofReward,
  requestEscrow,
  roleMultiplier,
  slashSplit,
  splitCompletion,
  stakeMultiplier,
} from './economics.js';
import { EventKind, type LedgerEvent, type ProofBody, type TrainingReceiptBody, type UptimeBody } from './events.js';
import { cosignedKey, cosignerAccounts, paidKey, receiptQuorum } from './training-receipt.js';
import { bytesEqual } from '../util/bytes.js';
import { accountIdFromPublicKey } from '../identity/index.js';
import type { ReasonCode } from './reasons.js';
import type { Account, LedgerState, Totals } from './state.js';
import { evidenceKey } from './verify.js';
import { countsForFraudQuorum, fraudValidators, HOP_FRAUD_QUORUM } from './fraud.js';
// issue 11 §2 hop fraud: a separate import line, kept apart for merges
import { decodeEvent, EvidenceType, type MarketCompleteBody } from './events.js';
import { bondedWitnesses, type RewardRules } from './witness.js';

export type EventStatus = 'applied' | 'rejected' | 'void';

export interface ApplyResult {
  status: EventStatus;
  reason?: ReasonCode;
  /** The main amount moved: a proof's reward, a transfer's amount, a slash's take, a completion's cost. */
  amount?: bigint;
}

export interface ApplyContext {
  modelLayers: number;
  /** The network's reward rules (issue 11 §2, witness.ts); absent = SELF_CLAIMED_REWARDS. */
  rewards?: RewardRules;
  /**
   * True when a stored event that sorts before `e` in canonical order has the same replay key and was applied or
   * void (not rejected: which rejected events a node holds depends on arrival order; ledger.ts hasEarlier).
   */
  hasConflict(e: LedgerEvent): boolean;
}

function hex(b: Uint8Array): string {
  return toHex(b);
}

function bump(s: LedgerState, f: (t: Totals) => Partial<Totals>): void {
  const t = s.totals();
  s.setTotals({ ...t, ...f(t) });
}

/** Moves matured cooling-down stake of `id` back to its balance (at event time `ts`). */
function settleUnbonding(s: LedgerState, id: string, ts: number): Account {
  const a = s.account(id);
  if (a.unbonding.length === 0 || a.unbonding[0]!.releaseAt > ts) return a;
  let released = 0n;
  const rest = a.unbonding.filter((u) => {
    if (u.releaseAt <= ts) {
      released += u.amount;
      return false;
    }
    return true;
  });
  const next = { ...a, balance: a.balance + released, unbonding: rest };
  s.setAccount(id, next);
  bump(s, (t) => ({ staked: t.staked - released }));
  return next;
}

/**
 * Issue 11 §3, rewards are minted at checkpoints: mints `id`'s unminted rewards whose checkpoint has been signed by
 * event time `ts` (releaseAt <= ts) into its balance. Like matured unbonding, this happens at the account's own
 * events (a reward can only be spent by one), so it is a function of canonical order alone.
 */
function settleRewards(s: LedgerState, id: string, a: Account, ts: number): Account {
  const u = a.unminted;
  if (u === undefined || u.length === 0 || u[0]!.releaseAt > ts) return a;
  const released = releasedAmount(u, ts);
  const rest = u.filter((r) => r.releaseAt > ts);
  const next = withUnminted({ ...a, balance: a.balance + released }, rest);
  s.setAccount(id, next);
  bump(s, (t) => ({ minted: t.minted + released }));
  return next;
}

function releasedAmount(u: readonly { amount: bigint; releaseAt: number }[], ts: number): bigint {
  let n = 0n;
  for (const r of u) if (r.releaseAt <= ts) n += r.amount;
  return n;
}

/** The account with `unminted` set, or without the field when empty (so its row text is the pre-§3 one). */
function withUnminted(a: Account, u: readonly { amount: bigint; releaseAt: number }[]): Account {
  const { unminted: _drop, ...rest } = a;
  return u.length === 0 ? rest : { ...rest, unminted: u };
}

/**
 * When a reward earned at event time `ts` is minted (issue 11 §3): at the signing time of the first checkpoint that
 * covers it, i.e. its cut (the first multiple of the period after `ts`: a checkpoint covers events dated before its
 * cut) plus the settle time after which the committee signs it. Undefined: the rules mint at once (pre-§3).
 */
export function rewardReleaseAt(ts: number, rules: RewardRules | undefined): number | undefined {
  const m = rules?.mintAt;
  if (m === undefined) return undefined;
  return (Math.floor(ts / m.periodMs) + 1) * m.periodMs + m.settleMs;
}

/**
 * Credits a reward earned by event `ts` to `a` (returned, not written): to the balance and the minted total at once
 * under rules without checkpoint minting, else as unminted until its checkpoint (rewardReleaseAt). The supply
 * invariant counts only minted NEURO, so an unminted reward is in neither side.
 */
function earn(s: LedgerState, a: Account, reward: bigint, ts: number, rules: RewardRules | undefined): Account {
  if (reward === 0n) return a;
  const at = rewardReleaseAt(ts, rules);
  if (at === undefined) {
    bump(s, (t) => ({ minted: t.minted + reward }));
    return { ...a, balance: a.balance + reward };
  }
  const u = [...(a.unminted ?? [])];
  const last = u[u.length - 1];
  // event time only moves forward in canonical order, so release times are ascending: merge with the last one
  if (last !== undefined && last.releaseAt === at) u[u.length - 1] = { amount: last.amount + reward, releaseAt: at };
  else u.push({ amount: reward, releaseAt: at });
  return withUnminted(a, u);
}

/** Refunds every request whose expiry is before `ts`. */
function settleExpired(s: LedgerState, ts: number): void {
  for (const [id, r] of s.takeExpiredRequests(ts)) {
    const a = s.account(r.requester);
    s.setAccount(r.requester, { ...a, balance: a.balance + r.escrow });
    bump(s, (t) => ({ escrowed: t.escrowed - r.escrow }));
    s.deleteRequest(id);
  }
}

function credit(s: LedgerState, id: string, amount: bigint): void {
  if (amount === 0n) return;
  const a = s.account(id);
  s.setAccount(id, { ...a, balance: a.balance + amount });
}

function reject(s: LedgerState, reason: ReasonCode): ApplyResult {
  bump(s, (t) => ({ rejected: t.rejected + 1 }));
  return { status: 'rejected', reason };
}

function ok(s: LedgerState, amount?: bigint): ApplyResult {
  bump(s, (t) => ({ applied: t.applied + 1 }));
  return amount === undefined ? { status: 'applied' } : { status: 'applied', amount };
}

/**
 * Applies `e` at the end of `s`. A rejected event changes nothing but the rejected counter (which the state hash
 * leaves out): the time-driven settlements that run before the rules decide (expired requests refunded, the
 * signer's matured stake and rewards released) are undone with the rest. Why (session 25): a rejected event is
 * neither relayed nor served, and whether a node holds one depends on the order events reached it (one applied at
 * the tip and rejected once an earlier event arrived is kept; one rejected at the tip is dropped), so anything it
 * changed would make two nodes holding the same served events differ, until the next event that settles the same
 * rows, and for good at the end of a run or at a checkpoint's cut.
 */
export function applyEvent(s: LedgerState, e: LedgerEvent, ctx: ApplyContext): ApplyResult {
  s.begin();
  let r: ApplyResult | undefined;
  try {
    r = applyAtEnd(s, e, ctx);
  } finally {
    if (r?.status === 'rejected') {
      s.rollback();
      bump(s, (t) => ({ rejected: t.rejected + 1 }));
    } else s.end();
  }
  return r;
}

function applyAtEnd(s: LedgerState, e: LedgerEvent, ctx: ApplyContext): ApplyResult {
  const ts = e.timestampMs;
  settleExpired(s, ts);
  if (ctx.hasConflict(e)) {
    bump(s, (t) => ({ void: t.void + 1 }));
    return { status: 'void', reason: 'EQUIVOCATION' };
  }
  const me = hex(e.account);
  let a = settleRewards(s, me, settleUnbonding(s, me, ts), ts);
  const b = e.body;
  switch (b.kind) {
    case EventKind.Proof:
      return applyProof(s, e as LedgerEvent<ProofBody>, me, a, ctx);

    case EventKind.Transfer: {
      const need = b.amount + b.fee;
      if (a.balance < need) return reject(s, 'INSUFFICIENT_BALANCE');
      s.setAccount(me, { ...a, balance: a.balance - need });
      credit(s, hex(b.to), b.amount);
      bump(s, (t) => ({ burned: t.burned + b.fee }));
      return ok(s, b.amount);
    }

    case EventKind.Stake: {
      if (a.balance < b.amount) return reject(s, 'INSUFFICIENT_BALANCE');
      const unlock = ts + b.lockDays * DAY_MS;
      s.setAccount(me, { ...a, balance: a.balance - b.amount, staked: a.staked + b.amount, unlocksAt: Math.max(a.unlocksAt, unlock) });
      bump(s, (t) => ({ staked: t.staked + b.amount }));
      return ok(s, b.amount);
    }

    case EventKind.Unstake: {
      if (ts < a.unlocksAt) return reject(s, 'STAKE_LOCKED');
      if (a.staked < b.amount) return reject(s, 'INSUFFICIENT_STAKE');
      if (a.unbonding.length >= MAX_UNBONDING_ENTRIES) return reject(s, 'UNBONDING_FULL');
      // Appending keeps the queue sorted: event time only moves forward in canonical order.
      s.setAccount(me, { ...a, staked: a.staked - b.amount, unbonding: [...a.unbonding, { amount: b.amount, releaseAt: ts + UNSTAKE_COOLDOWN_MS }] });
      return ok(s, b.amount);
    }

    case EventKind.Slash: {
      const { offender, key } = evidenceKey(e);
      const k = hex(key);
      if (s.slashed(k)) return reject(s, 'ALREADY_SLASHED');
      const fraud = hopFraudTerms(s, e); // issue 11 §2: a quorum of bonded validators, and the take goes to the requester
      if (fraud !== null && fraud.bonded < HOP_FRAUD_QUORUM) return reject(s, 'HOP_FRAUD_QUORUM');
      const oid = hex(offender);
      let o = settleRewards(s, oid, settleUnbonding(s, oid, ts), ts);
      let left = SLASH_AMOUNT;
      const fromStake = minBig(left, o.staked);
      left -= fromStake;
      const unbonding = o.unbonding.map((u) => ({ ...u }));
      let fromUnbonding = 0n;
      for (let i = unbonding.length - 1; i >= 0 && left > 0n; i--) {
        const take = minBig(left, unbonding[i]!.amount);
        unbonding[i]!.amount -= take;
        fromUnbonding += take;
        left -= take;
      }
      const fromBalance = minBig(left, o.balance);
      const taken = fromStake + fromUnbonding + fromBalance;
      if (taken === 0n) return reject(s, 'NOTHING_TO_SLASH');
      // issue 11 §3: a slashed account also forfeits its unminted rewards (never minted, so no total changes)
      o = withUnminted({ ...o, staked: o.staked - fromStake, unbonding: unbonding.filter((u) => u.amount > 0n), balance: o.balance - fromBalance }, []);
      s.setAccount(oid, o);
      s.markSlashed(k);
      const split = slashSplit(taken);
      const payee = fraud === null ? me : fraud.requester;
      a = s.account(payee);
      s.setAccount(payee, { ...a, balance: a.balance + split.reporter });
      bump(s, (t) => ({ burned: t.burned + split.burned, staked: t.staked - fromStake - fromUnbonding }));
      return ok(s, taken);
    }

    case EventKind.MarketRequest: {
      const m = s.market();
      const price = marketPriceStep(m?.price ?? MARKET_BASE_PRICE, servedDemand(m, ts), supplyAt(s, ts));
      if (price > b.maxPricePerMillion) return reject(s, 'PRICE_ABOVE_MAX');
      const escrow = requestEscrow(b.maxPricePerMillion, b.maxTokens);
      if (a.balance < escrow) return reject(s, 'INSUFFICIENT_BALANCE');
      s.setMarket({ ...(m ?? { win: 0, served: 0n, prevServed: 0n }), price, updatedAt: ts });
      s.setAccount(me, { ...a, balance: a.balance - escrow });
      s.setRequest(hex(e.id), { requester: me, escrow, price, maxTokens: b.maxTokens, expiresAt: b.expiresAtMs, claimer: null });
      bump(s, (t) => ({ escrowed: t.escrowed + escrow }));
      return ok(s, escrow);
    }

    case EventKind.MarketClaim:
      return reject(s, 'CLAIM_RETIRED'); // dropped by verify.ts before it gets here

    case EventKind.MarketComplete: {
      const rid = hex(b.requestId);
      const r = s.request(rid);
      if (r === undefined) return reject(s, 'REQUEST_NOT_PENDING');
      if (hex(accountIdFromPublicKey(b.requesterKey)) !== r.requester) return reject(s, 'NOT_REQUESTER');
      if (b.tokensUsed > r.maxTokens) return reject(s, 'TOKENS_ABOVE_MAX');
      const cost = completionCost(r.price, b.tokensUsed); // <= escrow: price <= max price, tokens <= max tokens
      const fee = completionFee(cost);
      const n = b.hops.length;
      const hasValidator = n >= 2;
      const workers = b.hops.slice(1, hasValidator ? n - 1 : 1);
      const split = splitCompletion(cost - fee, workers.length, hasValidator);
      s.deleteRequest(rid);
      credit(s, r.requester, r.escrow - cost);
      credit(s, me, split.driver);
      if (hasValidator) credit(s, hex(accountIdFromPublicKey(b.hops[n - 1]!.key)), split.validator);
      for (const w of workers) credit(s, hex(accountIdFromPublicKey(w.key)), split.perWorker);
      const m = s.market();
      s.setMarket({ price: m?.price ?? MARKET_BASE_PRICE, updatedAt: m?.updatedAt ?? 0, ...addServed(m, ts, BigInt(b.tokensUsed)) });
      bump(s, (t) => ({ escrowed: t.escrowed - r.escrow, burned: t.burned + fee }));
      return ok(s, cost);
    }

    case EventKind.Genesis: {
      if (!isGenesisSigner(e, ctx)) return reject(s, 'NOT_GENESIS');
      // nonce 0 (verify.ts) and first-wins on the replay key: a second genesis event is void, so this mints once
      s.setAccount(me, {
        ...a,
        balance: a.balance + GENESIS_ALLOCATION - GENESIS_STAKE,
        staked: a.staked + GENESIS_STAKE,
        unlocksAt: Math.max(a.unlocksAt, ts + GENESIS_LOCK_DAYS * DAY_MS),
      });
      bump(s, (t) => ({ minted: t.minted + GENESIS_ALLOCATION, staked: t.staked + GENESIS_STAKE }));
      return ok(s, GENESIS_ALLOCATION);
    }

    case EventKind.Uptime:
      return applyUptime(s, e as LedgerEvent<UptimeBody>, me, a, ctx);

    case EventKind.TrainingReceipt:
      return applyTrainingReceipt(s, e as LedgerEvent<TrainingReceiptBody>, ctx);
  }
}

/**
 * The reason the receipt rules refuse `e`, or null (training-receipt.ts): witnessed rules, a quorum of co-signers
 * bonded at this place in canonical order, and no co-signer that co-signed another receipt of the round.
 */
function receiptRefusal(s: LedgerState, e: LedgerEvent<TrainingReceiptBody>, ctx: Pick<ApplyContext, 'rewards'>): ReasonCode | null {
  if (ctx.rewards?.witnessed !== true) return 'WITNESS_RULES_OFF';
  const { record, cosigs } = e.body;
  const signers = cosignerAccounts(record, cosigs);
  if (signers.some((id) => s.slashed(cosignedKey(record.round, id)))) return 'TRAINING_RECEIPT_DUPLICATE';
  const bonded = signers.filter((id) => s.account(id).staked >= MIN_REWARD_BOND).length;
  return bonded < receiptQuorum(record.members.length) ? 'TRAINING_RECEIPT_QUORUM' : null;
}

/**
 * A co-signed training record (issue 11 §2): each accepted contributor that is bonded and not yet paid for the
 * round earns the training term of proofReward for its tokens over the record's span (× role × its own stake
 * multiplier), under the per-event and daily caps. The amount reported is the total minted.
 */
function applyTrainingReceipt(s: LedgerState, e: LedgerEvent<TrainingReceiptBody>, ctx: ApplyContext): ApplyResult {
  const why = receiptRefusal(s, e, ctx);
  if (why !== null) return reject(s, why);
  const { record, cosigs } = e.body;
  for (const id of cosignerAccounts(record, cosigs)) s.markSlashed(cosignedKey(record.round, id));
  const ts = e.timestampMs;
  const day = Math.floor(ts / DAY_MS);
  const role = roleMultiplier(record.layers, ctx.modelLayers);
  let total = 0n;
  for (const c of record.contributions) {
    if (!c.accepted) continue;
    const id = hex(accountIdFromPublicKey(record.members[c.member]!));
    const a = settleUnbonding(s, id, ts);
    if (a.staked < MIN_REWARD_BOND || s.slashed(paidKey(record.round, id))) continue;
    s.markSlashed(paidKey(record.round, id));
    const mintedToday = a.day === day ? a.mintedDay : 0n;
    const raw = proofReward({ uptimeMs: 0, trainingTokens: c.tokens, dataSamples: 0n, layersHeld: record.layers.end - record.layers.start }, role, stakeMultiplier(a.staked));
    const reward = minBig(minBig(raw, MAX_REWARD_PER_PROOF), MAX_REWARD_PER_DAY - mintedToday);
    // minted at once, or held unminted until its checkpoint (issue 11 §3), as every reward
    s.setAccount(id, { ...earn(s, a, reward, ts, ctx.rewards), day, mintedDay: mintedToday + reward });
    total += reward;
  }
  return ok(s, total);
}

function isGenesisSigner(e: LedgerEvent, ctx: Pick<ApplyContext, 'rewards'>): boolean {
  const g = ctx.rewards?.genesisKey;
  return g !== undefined && bytesEqual(g, e.signer);
}

/** The reason the witnessed-uptime rules refuse `e` (subject `a`), or null: bond, then the witness quorum. */
function uptimeRefusal(s: LedgerState, e: LedgerEvent<UptimeBody>, a: Account, ctx: Pick<ApplyContext, 'rewards'>): ReasonCode | null {
  if (ctx.rewards?.witnessed !== true) return 'WITNESS_RULES_OFF';
  if (a.staked < MIN_REWARD_BOND) return 'NOT_BONDED';
  // witnesses' locked stake at this place in canonical order (cooling-down stake does not bond a witness)
  const n = bondedWitnesses(e.body.attestations, (id) => s.account(id).staked, MIN_REWARD_BOND);
  return n < UPTIME_QUORUM ? 'WITNESS_QUORUM' : null;
}

/**
 * A witnessed window of uptime (issue 11 §2): one minute's uptime reward × the stake multiplier (the role bonus is
 * the proof's: uptime alone does not say which layers were served), under the same daily cap as proofs.
 */
function applyUptime(s: LedgerState, e: LedgerEvent<UptimeBody>, me: string, a: Account, ctx: ApplyContext): ApplyResult {
  const why = uptimeRefusal(s, e, a, ctx);
  if (why !== null) return reject(s, why);
  const day = Math.floor(e.timestampMs / DAY_MS);
  const mintedToday = a.day === day ? a.mintedDay : 0n;
  const raw = (UPTIME_REWARD_PER_MINUTE * stakeMultiplier(a.staked)) / WAD;
  const reward = minBig(minBig(raw, MAX_REWARD_PER_PROOF), MAX_REWARD_PER_DAY - mintedToday);
  s.setAccount(me, { ...earn(s, a, reward, e.timestampMs, ctx.rewards), day, mintedDay: mintedToday + reward });
  return ok(s, reward);
}

/** Σ advertised tokens/s of the nodes whose last proof is at most CAPACITY_TTL_MS before `ts`. */
function supplyAt(s: LedgerState, ts: number): bigint {
  let supply = 0n;
  for (const c of s.capacities()) if (c.lastSeen + CAPACITY_TTL_MS >= ts) supply += c.tokensPerSec;
  return supply;
}

/**
 * The reason applying `e` at the end of `s` rejects it, or null; `s` is left as it was (LedgerState.begin/rollback).
 * Only for an event without an earlier conflicting one (what precheckEvent's callers have checked).
 */
function trialVerdict(s: LedgerState, e: LedgerEvent, ctx: Pick<ApplyContext, 'modelLayers' | 'rewards'>): ReasonCode | null {
  s.begin();
  let r: ApplyResult;
  try {
    r = applyAtEnd(s, e, { ...ctx, hasConflict: () => false });
  } finally {
    s.rollback();
  }
  return r.status === 'rejected' ? (r.reason ?? null) : null;
}

/**
 * The reason the state rules would reject `e` at the current end of the state, read-only, or null when they would
 * not (or cannot tell cheaply). Issue 11 attack 5: an event from the network that its state rules reject is not
 * stored or relayed (ledger.ts), so a key with nothing cannot make every node keep its spam forever. It mirrors
 * applyEvent's checks in order, including what the time-driven settlements (matured unbonding, expired requests)
 * would change first; a null it returns where applyEvent rejects only means the event is stored rejected.
 * Equivocation (void) is not a rejection: a void event is evidence, and is kept.
 */
export function precheckEvent(s: LedgerState, e: LedgerEvent, ctx: Pick<ApplyContext, 'modelLayers' | 'rewards'>): ReasonCode | null {
  const ts = e.timestampMs;
  // A request expiring before ts refunds its requester (and unpends it) first: rare, so the verdict is taken by
  // applying it and undoing that. It admitted every event then, which was harmless while a rejected event kept its
  // settlements (the first one settled the expiry); since session 25 they are rolled back, so the expiry stayed
  // unsettled until an event was applied, and every event the rules reject meanwhile was stored and relayed (review,
  // session 26: 20 overdrafts after an expiry, 20 stored; before session 25, 1).
  const nx = s.nextExpiry();
  if (nx !== undefined && nx < ts) return trialVerdict(s, e, ctx);
  const a = settledView(s.account(hex(e.account)), ts);
  const b = e.body;
  switch (b.kind) {
    case EventKind.Proof:
      return a.lastEpoch >= b.epoch ? 'RATE_LIMIT_WINDOW' : null;
    case EventKind.Transfer:
      return a.balance < b.amount + b.fee ? 'INSUFFICIENT_BALANCE' : null;
    case EventKind.Stake:
      return a.balance < b.amount ? 'INSUFFICIENT_BALANCE' : null;
    case EventKind.Unstake:
      if (ts < a.unlocksAt) return 'STAKE_LOCKED';
      if (a.staked < b.amount) return 'INSUFFICIENT_STAKE';
      return a.unbonding.length >= MAX_UNBONDING_ENTRIES ? 'UNBONDING_FULL' : null;
    case EventKind.Slash: {
      const { offender, key } = evidenceKey(e);
      if (s.slashed(hex(key))) return 'ALREADY_SLASHED';
      const fraud = hopFraudTerms(s, e);
      if (fraud !== null && fraud.bonded < HOP_FRAUD_QUORUM) return 'HOP_FRAUD_QUORUM';
      const o = settledView(s.account(hex(offender)), ts);
      let cooling = 0n;
      for (const u of o.unbonding) cooling += u.amount;
      return o.staked + cooling + o.balance === 0n ? 'NOTHING_TO_SLASH' : null;
    }
    case EventKind.MarketRequest: {
      const m = s.market();
      const price = marketPriceStep(m?.price ?? MARKET_BASE_PRICE, servedDemand(m, ts), supplyAt(s, ts));
      if (price > b.maxPricePerMillion) return 'PRICE_ABOVE_MAX';
      return a.balance < requestEscrow(b.maxPricePerMillion, b.maxTokens) ? 'INSUFFICIENT_BALANCE' : null;
    }
    case EventKind.MarketClaim:
      return 'CLAIM_RETIRED';
    case EventKind.MarketComplete: {
      const r = s.request(hex(b.requestId));
      if (r === undefined) return 'REQUEST_NOT_PENDING';
      if (hex(accountIdFromPublicKey(b.requesterKey)) !== r.requester) return 'NOT_REQUESTER';
      return b.tokensUsed > r.maxTokens ? 'TOKENS_ABOVE_MAX' : null;
    }
    case EventKind.Genesis:
      return isGenesisSigner(e, ctx) ? null : 'NOT_GENESIS';
    case EventKind.Uptime:
      return uptimeRefusal(s, e as LedgerEvent<UptimeBody>, a, ctx);
    case EventKind.TrainingReceipt:
      return receiptRefusal(s, e as LedgerEvent<TrainingReceiptBody>, ctx);
  }
}

/** An account as settleUnbonding and settleRewards would leave it at `ts`, without writing. */
function settledView(a: Account, ts: number): Account {
  const u = a.unminted;
  if (u !== undefined && u.length > 0 && u[0]!.releaseAt <= ts) a = withUnminted({ ...a, balance: a.balance + releasedAmount(u, ts) }, u.filter((r) => r.releaseAt > ts));
  if (a.unbonding.length === 0 || a.unbonding[0]!.releaseAt > ts) return a;
  let released = 0n;
  const rest = a.unbonding.filter((u) => {
    if (u.releaseAt <= ts) {
      released += u.amount;
      return false;
    }
    return true;
  });
  return { ...a, balance: a.balance + released, unbonding: rest };
}

function applyProof(s: LedgerState, e: LedgerEvent<ProofBody>, me: string, a: Account, ctx: ApplyContext): ApplyResult {
  const b = e.body;
  if (a.lastEpoch >= b.epoch) return reject(s, 'RATE_LIMIT_WINDOW');
  const day = Math.floor(e.timestampMs / DAY_MS);
  const mintedToday = a.day === day ? a.mintedDay : 0n;
  // Issue 11 §2, witnessed rules: a proof is the claimant's word alone. Its uptime, training and data counters mint
  // nothing (uptime is paid by Uptime events with bonded witnesses, training by TrainingReceipt events co-signed by
  // a quorum of the round's members (training-receipt.ts); data has no witness) (docs/ECONOMICS.md).
  const witnessed = ctx.rewards?.witnessed === true;
  const bonded = a.staked >= MIN_REWARD_BOND;
  const work = witnessed
    ? { uptimeMs: 0, trainingTokens: 0n, dataSamples: 0n, layersHeld: b.layers.end - b.layers.start }
    : { uptimeMs: b.uptimeMs, trainingTokens: b.trainingTokens, dataSamples: b.dataSamples, layersHeld: b.layers.end - b.layers.start };
  const raw = proofReward(
    work,
    roleMultiplier(b.layers, ctx.modelLayers),
    stakeMultiplier(a.staked),
  );
  const reward = minBig(minBig(raw, MAX_REWARD_PER_PROOF), MAX_REWARD_PER_DAY - mintedToday);
  s.setAccount(me, { ...earn(s, a, reward, e.timestampMs, ctx.rewards), day, mintedDay: mintedToday + reward, lastEpoch: b.epoch });
  // witnessed rules: an unbonded node's advertised capacity is not market supply (fresh keys cannot fake supply)
  if (!witnessed || bonded) {
    const tps = BigInt(b.holderRecord.capacity.tokensPerSec);
    s.setCapacity(me, { tokensPerSec: tps > MAX_CAPACITY_TOKENS_PER_S ? MAX_CAPACITY_TOKENS_PER_S : tps, lastSeen: e.timestampMs });
  }
  return ok(s, reward);
}

// ---- issue 11 §2: hop fraud (validators' re-execution; fraud.ts, docs/ECONOMICS.md) ----
/**
 * For a hop-fraud slash: how many of its validators hold the reward bond (locked stake) here, and the defrauded
 * requester's account, which receives the half a reporter would get (the accusers earn nothing: no profit in a false
 * accusation). Null for other slashes.
 */
function hopFraudTerms(s: LedgerState, e: LedgerEvent): { bonded: number; requester: string } | null {
  const b = e.body;
  if (b.kind !== EventKind.Slash || b.evidenceType !== EvidenceType.HopFraud) return null;
  const completion = decodeEvent(b.evidence[0]!).body as MarketCompleteBody;
  let bonded = 0;
  for (const v of fraudValidators(b.evidence[1]!)) if (countsForFraudQuorum(s.account(hex(accountIdFromPublicKey(v))).staked)) bonded++;
  return { bonded, requester: hex(accountIdFromPublicKey(completion.requesterKey)) };
}
