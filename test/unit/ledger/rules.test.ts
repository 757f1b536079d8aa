/**
 * The state rules and the economics, event by event, with exact amounts (docs/ECONOMICS.md). Every ledger here
 * checks the supply invariant after every applied event.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO, formatAmount, parseAmount } from '../../../src/ledger/amount.js';
import {
  buildMarketClaim,
  buildServedCompletion,
  buildMarketRequest,
  buildProof,
  buildSlashEquivocation,
  buildSlashInvalidProof,
  buildStake,
  buildTransfer,
  buildUnstake,
} from '../../../src/ledger/build.js';
import { DAY_MS, UNSTAKE_COOLDOWN_MS, marketPriceStep, completionCost, MARKET_BASE_PRICE } from '../../../src/ledger/economics.js';
import { EventKind, signEvent } from '../../../src/ledger/events.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, holderRecord, NET, T0, testKey } from './helpers.js';

const A = testKey(1);
const B = testKey(2);
const C = testKey(3);
const R = testKey(4); // reporter
const V = testKey(5);
const W1 = testKey(6);
const W2 = testKey(7);

/** A ledger on a 1,000-layer model so that one training proof hits the 100 NEURO cap. */
function bigLedger(modelLayers = 1000): { l: Ledger; done: () => void; path: string } {
  const t = tempDir('neuroshard-rules-');
  const path = join(t.dir, 'ledger.db');
  const l = new Ledger({ path, networkId: NET, modelLayers, checkInvariant: true });
  return {
    l,
    path,
    done: () => {
      l.close();
      t.cleanup();
    },
  };
}

const n = (s: string): bigint => parseAmount(s);

function proof(key = A, ts: number, c: { span?: { start: number; end: number }; uptimeMs?: number; trainingTokens?: bigint; dataSamples?: bigint; nonce?: number; layersOverride?: boolean } = {}) {
  const span = c.span ?? { start: 0, end: 1000 };
  const training = c.trainingTokens ?? 0n;
  return buildProof(key, env(c.nonce ?? Math.floor(ts / 60_000), ts), {
    uptimeMs: c.uptimeMs ?? 60_000,
    trainingTokens: training,
    dataSamples: c.dataSamples ?? 0n,
    modelHashBefore: new Uint8Array(32).fill(1),
    modelHashAfter: new Uint8Array(32).fill(training > 0n ? 2 : 1),
    gradientCommitment: new Uint8Array(32).fill(training > 0n ? 3 : 0),
    lossMicro: training > 0n ? 2_000_000n : 0n,
    holderRecord: holderRecord(key, span, ts),
  });
}

/** Mints `count` × 100 NEURO to `key` with capped training proofs, one window apart from `start`. */
function fund(l: Ledger, key = A, count = 1, start = T0): number {
  const list: Uint8Array[] = [];
  for (let i = 0; i < count; i++) list.push(proof(key, start + i * 60_000, { trainingTokens: 1_200_000n }).bytes);
  for (const r of l.ingestMany(list)) assert.equal(r.status, 'applied', r.reason);
  return start + count * 60_000;
}

function pick(r: { status: string; reason?: string }): [string, string | undefined] {
  return [r.status, r.reason];
}

function ok(r: { status: string; reason?: string }): void {
  assert.equal(r.status, 'applied', `expected applied, got ${r.status} ${r.reason ?? ''}`);
}

describe('ledger rules: proof rewards', () => {
  it('pays uptime, data and pro-rata training at the documented rates', () => {
    const { l, done } = bigLedger(8);
    try {
      // middle span (no role bonus): 60 s uptime = 0.0001
      ok(l.ingest(proof(A, T0, { span: { start: 2, end: 4 } }).bytes));
      assert.equal(formatAmount(l.account(acct(A)).balance), '0.0001');
      // + 100 data samples = 0.001
      ok(l.ingest(proof(B, T0, { span: { start: 2, end: 4 }, dataSamples: 100n }).bytes));
      assert.equal(formatAmount(l.account(acct(B)).balance), '0.0011');
      // 1,024 training tokens (half a batch) on 1 layer = 0.00025, + uptime 0.0001
      ok(l.ingest(proof(C, T0, { span: { start: 3, end: 4 }, trainingTokens: 1024n }).bytes));
      assert.equal(formatAmount(l.account(acct(C)).balance), '0.00035');
      // 3 batches on 2 layers with 30 s uptime: 0.003 + 0.00005
      ok(l.ingest(proof(V, T0, { span: { start: 2, end: 4 }, uptimeMs: 30_000, trainingTokens: 6144n }).bytes));
      assert.equal(formatAmount(l.account(acct(V)).balance), '0.00305');
    } finally {
      done();
    }
  });

  it('applies the role bonus: +0.2 embedding, +0.3 LM head', () => {
    const { l, done } = bigLedger(8);
    try {
      ok(l.ingest(proof(A, T0, { span: { start: 0, end: 2 } }).bytes));
      ok(l.ingest(proof(B, T0, { span: { start: 6, end: 8 } }).bytes));
      ok(l.ingest(proof(C, T0, { span: { start: 0, end: 8 } }).bytes));
      assert.equal(formatAmount(l.account(acct(A)).balance), '0.00012');
      assert.equal(formatAmount(l.account(acct(B)).balance), '0.00013');
      assert.equal(formatAmount(l.account(acct(C)).balance), '0.00015');
    } finally {
      done();
    }
  });

  it('caps a proof at 100 NEURO and a node at 10,000 NEURO per day', () => {
    const { l, done } = bigLedger();
    try {
      const day0 = Math.floor(T0 / DAY_MS) * DAY_MS;
      fund(l, A, 100, day0);
      assert.equal(l.account(acct(A)).balance, 10_000n * NEURO);
      const r = l.ingest(proof(A, day0 + 100 * 60_000, { trainingTokens: 1_200_000n }).bytes);
      ok(r); // valid, but pays nothing more today
      assert.equal(l.account(acct(A)).balance, 10_000n * NEURO);
      ok(l.ingest(proof(A, day0 + DAY_MS, { trainingTokens: 1_200_000n }).bytes));
      assert.equal(l.account(acct(A)).balance, 10_100n * NEURO);
      assert.equal(l.status().minted, 10_100n * NEURO);
    } finally {
      done();
    }
  });

  it('multiplies by the stake: 1,000 NEURO staked → ×1.1', () => {
    const { l: l2, done: done2 } = bigLedger();
    try {
      let t = fund(l2, A, 10);
      ok(l2.ingest(buildStake(A, env(1, t), 1000n * NEURO, 30).bytes));
      t += 60_000;
      const before = l2.account(acct(A)).balance;
      ok(l2.ingest(proof(A, t, { span: { start: 2, end: 4 } }).bytes));
      assert.equal(formatAmount(l2.account(acct(A)).balance - before), '0.00011');
    } finally {
      done2();
    }
  });

  it('accepts one proof per node per 60 s window, whatever its nonce', () => {
    const { l, done } = bigLedger(8);
    try {
      ok(l.ingest(proof(A, T0 + 1000, { span: { start: 2, end: 4 }, nonce: 1 }).bytes));
      const r = l.ingest(proof(A, T0 + 30_000, { span: { start: 2, end: 4 }, nonce: 2 }).bytes);
      assert.deepEqual([r.status, r.reason], ['rejected', 'RATE_LIMIT_WINDOW']);
      ok(l.ingest(proof(A, T0 + 60_000, { span: { start: 2, end: 4 }, nonce: 3 }).bytes));
    } finally {
      done();
    }
  });
});

describe('ledger rules: transfers', () => {
  it('charges a 5 % fee on top and burns it; rejects an overdraft', () => {
    const { l, done } = bigLedger();
    try {
      const t = fund(l, A, 1); // 100 NEURO
      ok(l.ingest(buildTransfer(A, env(1, t), acct(B), n('40')).bytes));
      assert.equal(l.account(acct(A)).balance, n('58'));
      assert.equal(l.account(acct(B)).balance, n('40'));
      assert.equal(l.status().burned, n('2'));
      // 58 left: 55.238095238095238096 + fee ceil(2.7619047619047619048) = 58.000000000000000001 > 58
      const over = l.ingest(buildTransfer(A, env(2, t + 1), acct(B), n('55.238095238095238096')).bytes);
      assert.deepEqual([over.status, over.reason], ['rejected', 'INSUFFICIENT_BALANCE']);
      ok(l.ingest(buildTransfer(A, env(3, t + 2), acct(B), n('55.238095238095238095')).bytes));
      assert.equal(l.account(acct(A)).balance, 0n);
    } finally {
      done();
    }
  });

  it('drops a transfer whose fee is not exactly 5 % rounded up, and a transfer to oneself', () => {
    const { l, done } = bigLedger();
    try {
      const t = fund(l, A, 1);
      const cheap = signEvent(A, { ...env(1, t), body: { kind: EventKind.Transfer, to: acct(B), amount: n('10'), fee: n('0.49') } });
      assert.deepEqual([l.ingest(cheap.bytes).status, l.ingest(cheap.bytes).reason], ['dropped', 'FEE_MISMATCH']);
      const self = buildTransfer(A, env(2, t), acct(A), n('1'));
      assert.equal(l.ingest(self.bytes).reason, 'SELF_TRANSFER');
    } finally {
      done();
    }
  });

  it('voids the later transfer of a double spend in either arrival order (first wins), and the sender is slashable', () => {
    const one = bigLedger();
    const two = bigLedger();
    try {
      const t = fund(one.l, A, 1);
      fund(two.l, A, 1);
      const x = buildTransfer(A, env(7, t), acct(B), n('60'));
      const y = buildTransfer(A, env(7, t + 5), acct(C), n('60'));
      ok(one.l.ingest(x.bytes));
      const ry = one.l.ingest(y.bytes);
      assert.deepEqual([ry.status, ry.reason], ['void', 'EQUIVOCATION']);
      assert.deepEqual(one.l.eventStatus(x.id), { status: 'applied' });
      assert.equal(one.l.account(acct(B)).balance, n('60'));
      assert.equal(one.l.account(acct(C)).balance, 0n);
      assert.equal(one.l.account(acct(A)).balance, n('37'));
      two.l.ingest(y.bytes);
      two.l.ingest(x.bytes);
      assert.deepEqual(two.l.eventStatus(y.id), { status: 'void', reason: 'EQUIVOCATION' });
      assert.equal(two.l.stateHash(), one.l.stateHash());

      // Anyone holding both signed events can have the sender slashed: up to 1,000 NEURO (all A has), half to the reporter.
      const slash = buildSlashEquivocation(R, env(1, t + 10), x.bytes, y.bytes);
      ok(one.l.ingest(slash.bytes));
      assert.equal(one.l.account(acct(A)).balance, 0n);
      assert.equal(one.l.account(acct(R)).balance, n('18.5'));
      assert.equal(one.l.status().burned, n('21.5')); // the applied transfer's 3 NEURO fee + half the slash
      const again = one.l.ingest(buildSlashEquivocation(C, env(1, t + 11), y.bytes, x.bytes).bytes);
      assert.deepEqual([again.status, again.reason], ['rejected', 'ALREADY_SLASHED']);
    } finally {
      one.done();
      two.done();
    }
  });
});

describe('ledger rules: staking and slashing', () => {
  it('locks a stake, refuses an early unstake, and returns it after the cooldown', () => {
    const { l, done } = bigLedger();
    try {
      let t = fund(l, A, 2); // 200
      ok(l.ingest(buildStake(A, env(1, t), n('150'), 30).bytes));
      let v = l.account(acct(A));
      assert.deepEqual([v.balance, v.staked, v.locked, v.unlocksAt], [n('50'), n('150'), n('150'), t + 30 * DAY_MS]);
      assert.equal(l.status().staked, n('150'));
      const early = l.ingest(buildUnstake(A, env(1, t + 29 * DAY_MS), n('10')).bytes);
      assert.deepEqual([early.status, early.reason], ['rejected', 'STAKE_LOCKED']);
      t += 30 * DAY_MS;
      const tooMuch = l.ingest(buildUnstake(A, env(2, t), n('151')).bytes);
      assert.deepEqual([tooMuch.status, tooMuch.reason], ['rejected', 'INSUFFICIENT_STAKE']);
      ok(l.ingest(buildUnstake(A, env(3, t), n('100')).bytes));
      v = l.account(acct(A));
      assert.deepEqual([v.balance, v.staked, v.locked], [n('50'), n('150'), n('50')]);
      // cooling down: still not spendable, still slashable
      const spend = l.ingest(buildTransfer(A, env(4, t + UNSTAKE_COOLDOWN_MS - 1), acct(B), n('60')).bytes);
      assert.deepEqual([spend.status, spend.reason], ['rejected', 'INSUFFICIENT_BALANCE']);
      ok(l.ingest(buildTransfer(A, env(5, t + UNSTAKE_COOLDOWN_MS), acct(B), n('60')).bytes));
      v = l.account(acct(A));
      assert.deepEqual([v.balance, v.staked], [n('87'), n('50')]);
      assert.equal(l.status().staked, n('50'));
    } finally {
      done();
    }
  });

  it('slashes stake first, then cooling-down stake, then balance', () => {
    const { l, done } = bigLedger();
    try {
      let t = fund(l, A, 11);
      ok(l.ingest(buildStake(A, env(1, t), n('4'), 1).bytes));
      t += DAY_MS;
      ok(l.ingest(buildUnstake(A, env(1, t), n('1')).bytes)); // locked 3, cooling 1, balance 1,096
      const x = buildTransfer(A, env(9, t + 1), acct(B), n('1'));
      const y = buildTransfer(A, env(9, t + 2), acct(C), n('1'));
      l.ingestMany([x.bytes, y.bytes]);
      ok(l.ingest(buildSlashEquivocation(R, env(1, t + 3), x.bytes, y.bytes).bytes));
      const v = l.account(acct(A));
      // x (first) applied: 1,096 - 1.05; then the slash (1,000) takes 3 + 1 + 996
      assert.deepEqual([v.locked, v.staked, v.balance], [0n, 0n, n('98.95')]);
      assert.equal(l.account(acct(R)).balance, n('500'));
      assert.equal(l.status().staked, 0n);
    } finally {
      done();
    }
  });

  it('slashes a signed proof that breaks a fraud rule, and refuses a valid proof as evidence', () => {
    const { l, done } = bigLedger(8);
    try {
      ok(l.ingest(proof(A, T0, { span: { start: 0, end: 8 } }).bytes));
      // A claims layers 0..8 but embeds a record for 0..4: dropped, and slashable
      const lie = buildProof(A, env(99, T0 + 60_000), { uptimeMs: 60_000, holderRecord: holderRecord(A, { start: 0, end: 4 }, T0 + 60_000) });
      const forged = signEvent(A, { ...env(99, T0 + 60_000), body: { ...lie.body, layers: { start: 0, end: 8 } } });
      const r = l.ingest(forged.bytes);
      assert.deepEqual([r.status, r.reason], ['dropped', 'LAYERS_MISMATCH']);
      ok(l.ingest(buildSlashInvalidProof(R, env(1, T0 + 120_000), forged.bytes).bytes));
      assert.equal(l.account(acct(A)).balance, 0n); // had 0.00015, all taken
      assert.equal(l.account(acct(R)).balance, n('0.000075'));
      const honest = proof(A, T0 + 180_000, { span: { start: 0, end: 8 } });
      assert.equal(l.ingest(buildSlashInvalidProof(R, env(2, T0 + 240_000), honest.bytes).bytes).reason, 'EVIDENCE_INVALID');
      const selfReport = l.ingest(buildSlashInvalidProof(A, env(3, T0 + 240_000), forged.bytes).bytes);
      assert.equal(selfReport.reason, 'SELF_REPORT');
    } finally {
      done();
    }
  });
});

describe('ledger rules: inference market', () => {
  it('escrows at submission, pays the split on the requester receipt (5 % burned), refunds the rest, settles once', () => {
    const { l, done } = bigLedger();
    try {
      let t = fund(l, A, 1); // requester A: 100 NEURO
      ok(l.ingest(proof(B, t, { span: { start: 0, end: 1000 } }).bytes)); // supply: B advertises 100 tokens/s
      t += 1000;
      const req = buildMarketRequest(A, env(1, t), { maxTokens: 100_000, maxPricePerMillion: n('3'), expiresAtMs: t + 600_000 });
      const expectedPrice = marketPriceStep(MARKET_BASE_PRICE, 0n, 100n);
      ok(l.ingest(req.bytes));
      assert.equal(l.status().marketPricePerMillion, expectedPrice);
      assert.equal(l.status().escrowed, n('0.3'));
      assert.equal(l.account(acct(A)).balance, n('99.7'));

      // claims are retired; a receipt signed by anyone but the requester, or for more than the request, pays nothing
      assert.deepEqual(pick(l.ingest(buildMarketClaim(B, env(1, t + 2), req.id).bytes)), ['dropped', 'CLAIM_RETIRED']);
      assert.equal(l.ingest(buildServedCompletion(env(1, t + 4), { requestId: req.id, tokensUsed: 10, requester: C, hops: [B] }).bytes).reason, 'NOT_REQUESTER');
      assert.equal(l.ingest(buildServedCompletion(env(2, t + 5), { requestId: req.id, tokensUsed: 100_001, requester: A, hops: [B] }).bytes).reason, 'TOKENS_ABOVE_MAX');

      const bBefore = l.account(acct(B)).balance;
      const burnedBefore = l.status().burned;
      ok(l.ingest(buildServedCompletion(env(3, t + 6), { requestId: req.id, tokensUsed: 50_000, requester: A, hops: [B, W1, W2, V] }).bytes));
      const cost = completionCost(expectedPrice, 50_000);
      assert.equal(cost, (expectedPrice * 50_000n + 999_999n) / 1_000_000n);
      const fee = (cost * 500n + 9_999n) / 10_000n;
      const paid = cost - fee;
      assert.equal(l.status().burned - burnedBefore, fee);
      assert.equal(l.account(acct(V)).balance, (paid * 2000n) / 10_000n);
      const perWorker = (paid * 6000n) / 10_000n / 2n;
      assert.equal(l.account(acct(W1)).balance, perWorker);
      assert.equal(l.account(acct(W2)).balance, perWorker);
      assert.equal(l.account(acct(B)).balance - bBefore, paid - (paid * 2000n) / 10_000n - 2n * perWorker);
      assert.equal(l.account(acct(A)).balance, n('100') - cost);
      assert.equal(l.status().escrowed, 0n);
      assert.equal(l.ingest(buildServedCompletion(env(4, t + 7), { requestId: req.id, tokensUsed: 10, requester: A, hops: [B] }).bytes).reason, 'REQUEST_NOT_PENDING');
    } finally {
      done();
    }
  });

  it('refunds an expired request in full, measured in event time', () => {
    const { l, done } = bigLedger();
    try {
      const t = fund(l, A, 1);
      const req = buildMarketRequest(A, env(1, t), { maxTokens: 1000, maxPricePerMillion: n('50'), expiresAtMs: t + 60_000 });
      ok(l.ingest(req.bytes));
      assert.equal(l.status().escrowed, n('0.05'));
      ok(l.ingest(proof(B, t + 60_000, { span: { start: 1, end: 2 } }).bytes)); // at expiry: still pending
      assert.equal(l.status().escrowed, n('0.05'));
      // the next event after the expiry settles it, whoever sent it
      ok(l.ingest(proof(C, t + 60_001, { span: { start: 1, end: 2 } }).bytes));
      assert.equal(l.status().escrowed, 0n);
      assert.equal(l.account(acct(A)).balance, n('100'));
      assert.equal(l.ingest(buildServedCompletion(env(1, t + 60_002), { requestId: req.id, tokensUsed: 1, requester: A, hops: [B] }).bytes).reason, 'REQUEST_NOT_PENDING');
    } finally {
      done();
    }
  });

  it('rejects a request whose maximum is below the market price, and one the requester cannot cover', () => {
    const { l, done } = bigLedger();
    try {
      const t = fund(l, A, 1);
      const cheap = l.ingest(buildMarketRequest(A, env(1, t), { maxTokens: 1000, maxPricePerMillion: n('0.5'), expiresAtMs: t + 1000 }).bytes);
      assert.equal(cheap.reason, 'PRICE_ABOVE_MAX');
      const poor = l.ingest(buildMarketRequest(B, env(1, t), { maxTokens: 1000, maxPricePerMillion: n('2'), expiresAtMs: t + 1000 }).bytes);
      assert.equal(poor.reason, 'INSUFFICIENT_BALANCE');
      const bad = l.ingest(buildMarketRequest(A, env(2, t), { maxTokens: 1000, maxPricePerMillion: n('2'), expiresAtMs: t + 2 * 3_600_000 }).bytes);
      assert.deepEqual([bad.status, bad.reason], ['dropped', 'REQUEST_INVALID']);
    } finally {
      done();
    }
  });
});

describe('ledger rules: persistence', () => {
  it('reopens with the same state and refuses another network', () => {
    const { l, done, path } = bigLedger();
    try {
      const t = fund(l, A, 3);
      ok(l.ingest(buildTransfer(A, env(1, t), acct(B), n('10')).bytes));
      const hash = l.stateHash();
      l.close();
      const again = new Ledger({ path, networkId: NET, modelLayers: 1000 });
      assert.equal(again.stateHash(), hash);
      assert.equal(again.replayHash(), hash);
      assert.equal(again.account(acct(B)).balance, n('10'));
      assert.equal(again.nextNonce(A.publicKey, EventKind.Transfer), 2n);
      assert.equal(again.history(acct(A)).length, 4);
      again.close();
      assert.throws(() => new Ledger({ path, networkId: 'other', modelLayers: 1000 }), { code: 'LEDGER_NETWORK_MISMATCH' });
      const ro = new Ledger({ path, networkId: NET, modelLayers: 1000, readonly: true });
      assert.equal(ro.stateHash(), hash);
      assert.throws(() => ro.ingest(new Uint8Array(10)), { code: 'LEDGER_READONLY' });
      ro.close();
    } finally {
      done();
    }
  });
});
