/**
 * Every number of NEURO's economics, and the pure formulas that use them. docs/ECONOMICS.md states the same rules
 * in prose; change both together. All arithmetic is integer (bigint): amounts in base units (1 NEURO = 1e18),
 * multipliers in WAD fixed point (1.0 = 1e18); payouts round down (floor), charges round up (ceil).
 */
import { NEURO, WAD, minBig, mulDivCeil } from './amount.js';

// ---- time (event time, from the events' own timestamps) ----
export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
/** One proof per node per window; a proof's epoch is floor(timestampMs / PROOF_WINDOW_MS). */
export const PROOF_WINDOW_MS = 60_000;

// ---- rewards (minted by proofs) ----
/** 0.0001 NEURO per minute of uptime. */
export const UPTIME_REWARD_PER_MINUTE = NEURO / 10_000n;
/** 0.0005 NEURO per standard batch per layer held. */
export const TRAINING_REWARD_PER_BATCH_LAYER = (NEURO * 5n) / 10_000n;
/** A standard batch is 2,048 tokens; partial batches pay pro rata. */
export const STANDARD_BATCH_TOKENS = 2048n;
/** 0.00001 NEURO per data sample. */
export const DATA_REWARD_PER_SAMPLE = NEURO / 100_000n;
/** Role bonus, additive: +0.2 for the embedding holder (layer 0), +0.3 for the LM-head holder (last layer). */
export const EMBEDDING_BONUS = (WAD * 2n) / 10n;
export const LM_HEAD_BONUS = (WAD * 3n) / 10n;
/** Stake multiplier 1 + 0.1 · log2(1 + stake / 1000 NEURO), capped at 1.5. */
export const STAKE_MULTIPLIER_SLOPE = WAD / 10n;
export const STAKE_MULTIPLIER_UNIT = 1000n * NEURO;
export const STAKE_MULTIPLIER_CAP = (WAD * 15n) / 10n;
/** At most 100 NEURO per proof and 10,000 NEURO per node per day (UTC day of the proof's timestamp). */
export const MAX_REWARD_PER_PROOF = 100n * NEURO;
export const MAX_REWARD_PER_DAY = 10_000n * NEURO;

// ---- proof plausibility caps ----
/** A proof covers at most one window of uptime. */
export const MAX_UPTIME_MS = PROOF_WINDOW_MS;
/** Training needs at least 10 s of uptime in the window. */
export const MIN_TRAINING_UPTIME_MS = 10_000;
/** Per second of claimed uptime. */
export const MAX_INFERENCE_TOKENS_PER_S = 5_000;
export const MAX_TRAINING_TOKENS_PER_S = 20_000;
export const MAX_DATA_SAMPLES_PER_S = 1_000;
export const MAX_REQUEST_IDS_PER_PROOF = 32;

// ---- transfers ----
/** 5 % of the amount, paid on top and burned: fee = ceil(amount · 500 / 10,000). */
export const TRANSFER_FEE_BPS = 500n;
export const BPS = 10_000n;

// ---- staking ----
export const MIN_STAKE = NEURO;
export const MIN_LOCK_DAYS = 1;
export const MAX_LOCK_DAYS = 365;
/** Unstaked NEURO stays slashable and frozen for 7 days before it returns to the balance. */
export const UNSTAKE_COOLDOWN_MS = 7 * DAY_MS;
/** At most this many unstakes may be cooling down at once per account. */
export const MAX_UNBONDING_ENTRIES = 16;

// ---- slashing ----
/**
 * A proven offence takes up to 1,000 NEURO (stake first, then cooling-down stake, then balance): ten times the most
 * one proof can earn (MAX_REWARD_PER_PROOF), so an offence never pays for itself (issue 11 item 13: at 10 NEURO a
 * slash was smaller than one proof's reward)…
 */
export const SLASH_AMOUNT = 1000n * NEURO;
/** … of which 50 % (floor) goes to the reporter. */
export const SLASH_REPORTER_BPS = 5_000n;

// ---- witnessed rewards (issue 11 §2; witness.ts, docs/ECONOMICS.md "Rewards only for witnessed work") ----
/**
 * Under witnessed rules nothing is minted to an account whose locked stake (not cooling down) is below this bond,
 * and only witnesses with this bond count toward a quorum. A slash (SLASH_AMOUNT, 1,000 NEURO) is 10 bonds.
 */
export const MIN_REWARD_BOND = 100n * NEURO;
/** An Uptime event pays only with attestations from at least this many distinct bonded witnesses (not the subject). */
export const UPTIME_QUORUM = 2;
/** An Uptime event must be dated inside its window or at most this long after it (the subject collects attestations). */
export const UPTIME_SUBMIT_GRACE_MS = PROOF_WINDOW_MS;
/** The genesis allocation: minted once to the genesis key, of which GENESIS_STAKE is staked for 365 days. */
export const GENESIS_ALLOCATION = 1_000_000n * NEURO;
export const GENESIS_STAKE = 100_000n * NEURO;
export const GENESIS_LOCK_DAYS = 365;

// ---- inference market ----
/** Base price: 1 NEURO per million tokens. */
export const MARKET_BASE_PRICE = NEURO;
/** EMA weight of the new target: price' = price + (target − price) · 2/10, floor. */
export const MARKET_EMA_NUM = 2n;
export const MARKET_EMA_DEN = 10n;
/** Utilisation is capped at 10 (so the target is at most 121 × base). */
export const MARKET_MAX_UTILISATION = 10n * WAD;
/** Capacity adverts (from proofs' HolderRecords) count as supply for 2 windows; each is capped at 50,000 tokens/s. */
export const CAPACITY_TTL_MS = 2 * PROOF_WINDOW_MS;
export const MAX_CAPACITY_TOKENS_PER_S = 50_000n;
/** Demand is the pending requests' max tokens against one minute of supply. */
export const DEMAND_HORIZON_S = 60n;
export const MAX_REQUEST_TOKENS = 1_000_000;
export const MAX_REQUEST_LIFETIME_MS = 60 * MINUTE_MS;
export const MAX_MARKET_WORKERS = 16;
/** The completion's cost is split: validator (LM-head hop) 20 %, workers 60 % in equal parts, driver the rest. */
export const MARKET_VALIDATOR_BPS = 2_000n;
export const MARKET_WORKERS_BPS = 6_000n;
export const TOKENS_PER_PRICE_UNIT = 1_000_000n;
/**
 * 5 % of a completion's cost (rounded up) is burned before the split (issue 11 attack 7): a requester paying its own
 * hops to push the price up loses 5 % of the volume it fakes.
 */
export const MARKET_FEE_BPS = 500n;

// ---- formulas ----

/** The transfer fee for `amount`: 5 %, rounded up. */
export function transferFee(amount: bigint): bigint {
  return mulDivCeil(amount, TRANSFER_FEE_BPS, BPS);
}

/** floor(log2(x / WAD)) · WAD + fractional bits, for x >= WAD, in WAD fixed point (error < 2^-59). */
export function log2Wad(x: bigint): bigint {
  if (x < WAD) throw new RangeError('log2Wad needs x >= 1');
  let n = 0n;
  while (x >= WAD << (n + 1n)) n++;
  let y = x >> n; // in [WAD, 2·WAD)
  let result = n * WAD;
  for (let bit = WAD / 2n, i = 0; i < 60 && bit > 0n; i++, bit /= 2n) {
    y = (y * y) / WAD;
    if (y >= 2n * WAD) {
      result += bit;
      y /= 2n;
    }
  }
  return result;
}

/** 1 + 0.1 · log2(1 + stake / 1000 NEURO), capped at 1.5, in WAD. */
export function stakeMultiplier(stake: bigint): bigint {
  if (stake <= 0n) return WAD;
  const x = WAD + (stake * WAD) / STAKE_MULTIPLIER_UNIT;
  const m = WAD + (STAKE_MULTIPLIER_SLOPE * log2Wad(x)) / WAD;
  return minBig(m, STAKE_MULTIPLIER_CAP);
}

/** 1 + 0.2 (holds layer 0) + 0.3 (holds the last layer), in WAD. */
export function roleMultiplier(span: { start: number; end: number }, modelLayers: number): bigint {
  let m = WAD;
  if (span.start === 0) m += EMBEDDING_BONUS;
  if (span.end === modelLayers) m += LM_HEAD_BONUS;
  return m;
}

export interface ProofWork {
  uptimeMs: number;
  trainingTokens: bigint;
  dataSamples: bigint;
  layersHeld: number;
}

/**
 * The reward of one proof before caps, in base units: with D = 60,000 · 2,048,
 *   base·D = uptimeMs · 0.0001e18 · 2,048 + trainingTokens · layers · 0.0005e18 · 60,000 + samples · 0.00001e18 · D
 *   reward = floor(base·D · role · stake / (D · WAD · WAD))
 * One floor at the end, so no partial term is rounded twice.
 */
export function proofReward(w: ProofWork, role: bigint, stake: bigint): bigint {
  const D = BigInt(MINUTE_MS) * STANDARD_BATCH_TOKENS;
  const num =
    BigInt(w.uptimeMs) * UPTIME_REWARD_PER_MINUTE * STANDARD_BATCH_TOKENS +
    w.trainingTokens * BigInt(w.layersHeld) * TRAINING_REWARD_PER_BATCH_LAYER * BigInt(MINUTE_MS) +
    w.dataSamples * DATA_REWARD_PER_SAMPLE * D;
  return (num * role * stake) / (D * WAD * WAD);
}

/**
 * The market's EMA step. u = min(10, demandTokens / (supplyTokensPerSec · 60)) (u = 10 when there is demand and no
 * supply), target = base · (1 + u)², price' = price + floor((target − price) · 2 / 10) (toward the target; a
 * falling price rounds toward the target too, never below base).
 */
export function marketPriceStep(price: bigint, demandTokens: bigint, supplyTokensPerSec: bigint): bigint {
  let u: bigint;
  if (demandTokens === 0n) u = 0n;
  else if (supplyTokensPerSec === 0n) u = MARKET_MAX_UTILISATION;
  else u = minBig(MARKET_MAX_UTILISATION, (demandTokens * WAD) / (supplyTokensPerSec * DEMAND_HORIZON_S));
  const f = WAD + u;
  const target = (MARKET_BASE_PRICE * f * f) / (WAD * WAD);
  let next: bigint;
  if (target >= price) next = price + ((target - price) * MARKET_EMA_NUM) / MARKET_EMA_DEN;
  else next = price - ((price - target) * MARKET_EMA_NUM) / MARKET_EMA_DEN;
  return next < MARKET_BASE_PRICE ? MARKET_BASE_PRICE : next;
}

/** Escrow of a request: ceil(maxPricePerMillion · maxTokens / 1e6). */
export function requestEscrow(maxPricePerMillion: bigint, maxTokens: number): bigint {
  return mulDivCeil(maxPricePerMillion, BigInt(maxTokens), TOKENS_PER_PRICE_UNIT);
}

/** Cost of a completion: ceil(lockedPrice · tokensUsed / 1e6). */
export function completionCost(pricePerMillion: bigint, tokensUsed: number): bigint {
  return mulDivCeil(pricePerMillion, BigInt(tokensUsed), TOKENS_PER_PRICE_UNIT);
}

/** The burned part of a completion's cost: ceil(5 %). */
export function completionFee(cost: bigint): bigint {
  return mulDivCeil(cost, MARKET_FEE_BPS, BPS);
}

/** Tokens served in the window of `ts` and the one before it (the market's demand), from the market row. */
export function servedDemand(m: { win: number; served: bigint; prevServed: bigint } | undefined, ts: number): bigint {
  if (m === undefined) return 0n;
  const w = Math.floor(ts / PROOF_WINDOW_MS);
  if (w === m.win) return m.served + m.prevServed;
  if (w === m.win + 1) return m.served;
  return 0n;
}

/** The market row's served counters after `tokens` more are served at `ts`. */
export function addServed(m: { win: number; served: bigint; prevServed: bigint } | undefined, ts: number, tokens: bigint): { win: number; served: bigint; prevServed: bigint } {
  const w = Math.floor(ts / PROOF_WINDOW_MS);
  if (m === undefined || w > m.win + 1) return { win: w, served: tokens, prevServed: 0n };
  if (w === m.win + 1) return { win: w, served: tokens, prevServed: m.served };
  return { win: m.win, served: m.served + tokens, prevServed: m.prevServed }; // same window (never earlier: event time is ordered)
}

/** Splits a completion's cost: { validator, perWorker, driver } with driver = cost − the others (gets the dust). */
export function splitCompletion(cost: bigint, workers: number, hasValidator: boolean): { validator: bigint; perWorker: bigint; driver: bigint } {
  const validator = hasValidator ? (cost * MARKET_VALIDATOR_BPS) / BPS : 0n;
  const perWorker = workers > 0 ? (cost * MARKET_WORKERS_BPS) / BPS / BigInt(workers) : 0n;
  const driver = cost - validator - perWorker * BigInt(workers);
  return { validator, perWorker, driver };
}

/** The slash split: reporter gets floor(50 %), the rest is burned. */
export function slashSplit(taken: bigint): { reporter: bigint; burned: bigint } {
  const reporter = (taken * SLASH_REPORTER_BPS) / BPS;
  return { reporter, burned: taken - reporter };
}
