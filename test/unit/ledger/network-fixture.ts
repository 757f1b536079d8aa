/**
 * A small history with every kind of event the witnessed rules apply (session 25, ledger convergence): the genesis
 * allocation, transfers (each burns its fee), stakes, an unstake past its lock, a market request (escrow) and its
 * served completion (the payment, split between hops, its fee burned), training receipts (rewards held unminted until
 * their checkpoint, then minted by the account's next event), an equivocation (two transfers, one nonce: the later one
 * void) and its slash, a transfer that spends what an earlier transfer brought (a dependency), and an overdraft
 * (rejected: never served). Deterministic keys and dates.
 */
import { NEURO } from '../../../src/ledger/amount.js';
import { buildGenesis, buildMarketRequest, buildServedCompletion, buildSlashEquivocation, buildStake, buildTransfer, buildUnstake } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../../src/ledger/economics.js';
import type { RewardRules } from '../../../src/ledger/witness.js';
import { acct, env, LAYERS, NET, T0, testKey } from './helpers.js';
import { receipt, recordOf } from './receipt-fixture.js';

export const G = testKey(9500);
export const A = testKey(9501);
export const B = testKey(9502);
export const C = testKey(9503);
export const D = testKey(9504);
export const PERIOD_MS = 60_000;
export const RULES: RewardRules = { witnessed: true, genesisKey: G.publicKey, mintAt: { periodMs: PERIOD_MS, settleMs: 10_000 } };
const DAY = 86_400_000;

export interface NetworkHistory {
  /** Wire bytes in canonical (date) order. */
  events: Uint8Array[];
  /** Labels, same order (what each is, for messages). */
  labels: string[];
  /** Labels of the events that spend what an earlier one brought. */
  dependents: string[];
}

export function networkHistory(): NetworkHistory {
  const out: { b: Uint8Array; label: string; ts: number }[] = [];
  const add = (label: string, ts: number, b: Uint8Array): Uint8Array => {
    out.push({ b, label, ts });
    return b;
  };
  let t = T0 + 1000;
  add('genesis', t, buildGenesis(G, { networkId: NET, timestampMs: t }).bytes);
  [A, B, C].forEach((k, i) => add(`fund ${i}`, (t += 1000), buildTransfer(G, env(i + 1, t), acct(k), 1000n * NEURO).bytes));
  [A, B, C].forEach((k, i) => add(`bond ${i}`, (t += 1000), buildStake(k, env(1, t), MIN_REWARD_BOND, 1).bytes));
  add('A to D', (t += 1000), buildTransfer(A, env(1, t), acct(D), 5n * NEURO).bytes);
  add('D to C (spends A to D)', (t += 1000), buildTransfer(D, env(1, t), acct(C), 1n * NEURO).bytes);
  const req = buildMarketRequest(A, env(1, (t += 1000)), { maxTokens: 10_000, maxPricePerMillion: 4n * NEURO, expiresAtMs: t + 10 * 60_000 });
  add('request', t, req.bytes);
  add('completion (pays the request)', (t += 2000), buildServedCompletion(env(1, t), { requestId: req.id, tokensUsed: 5000, requester: A, hops: [B, C] }).bytes);
  for (let round = 1; round <= 3; round++) {
    const rec = recordOf([A, B, C], round, { layers: { start: 0, end: LAYERS }, contributors: [A] });
    add(`receipt ${round}`, (t += 20_000), receipt(A, rec, [A, B], t));
  }
  const e1 = buildTransfer(C, env(2, (t += 1000)), acct(A), 2n * NEURO);
  add('equivocation 1', t, e1.bytes);
  const e2 = buildTransfer(C, env(2, (t += 1000)), acct(B), 3n * NEURO);
  add('equivocation 2 (void)', t, e2.bytes);
  add('slash of C', (t += 1000), buildSlashEquivocation(B, env(1, t), e1.bytes, e2.bytes).bytes);
  add('overdraft (rejected)', (t += 1000), buildTransfer(D, env(2, t), acct(A), 1000n * NEURO).bytes);
  // past the receipts' checkpoint: A's next event mints its rewards, and the transfer spends part of them
  t += 3 * PERIOD_MS;
  add('A to B (mints the rewards)', t, buildTransfer(A, env(2, t), acct(B), 10n * NEURO).bytes);
  add('unstake (past the lock)', (t = T0 + DAY + 60_000), buildUnstake(A, env(1, t), MIN_REWARD_BOND / 2n).bytes);
  add('B to D after the unstake', (t += 1000), buildTransfer(B, env(3, t), acct(D), 1n * NEURO).bytes);
  out.sort((x, y) => x.ts - y.ts);
  return { events: out.map((x) => x.b), labels: out.map((x) => x.label), dependents: ['D to C (spends A to D)', 'completion (pays the request)', 'A to B (mints the rewards)', 'slash of C'] };
}
