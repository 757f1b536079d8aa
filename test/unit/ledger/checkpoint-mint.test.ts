/**
 * Issue 11 §3, "rewards are minted at checkpoints" (src/ledger/apply.ts `earn`, `settleRewards`, `rewardReleaseAt`;
 * docs/ECONOMICS.md "Rewards minted at checkpoints"): a reward is held unminted in the account's state (in the state
 * hash) until the signing time of the first checkpoint that covers it, and minted at the account's first event at or
 * after it; until then it can be neither spent nor counted as supply. Deterministic (any arrival order, a reopened
 * file), the supply invariant checked after every event, and a slash forfeits what is unminted.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { rewardReleaseAt } from '../../../src/ledger/apply.js';
import { buildGenesis, buildSlashEquivocation, buildStake, buildTrainingReceipt, buildTransfer } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND, transferFee } from '../../../src/ledger/economics.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import type { RewardRules } from '../../../src/ledger/witness.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, LAYERS, NET, T0, testKey } from './helpers.js';
import { cosigsOf, recordOf } from './receipt-fixture.js';

const G = testKey(7100);
const S = testKey(7101);
const W = testKey(7102);
const PERIOD = 60_000;
const SETTLE = 10_000;
const RULES: RewardRules = { witnessed: true, genesisKey: G.publicKey, mintAt: { periodMs: PERIOD, settleMs: SETTLE } };

function open(dir: string, name = 'ledger.db'): Ledger {
  return new Ledger({ path: join(dir, name), networkId: NET, modelLayers: LAYERS, checkInvariant: true, rewards: RULES });
}

/**
 * A training receipt of round `round` at `ts` (what a bonded key earns from under the witnessed rules): S contributed
 * and was accepted; S and W, both bonded, co-sign (the quorum of two members). Only S is a contributor, so only S earns.
 */
function trainingProof(round: number, ts: number): Uint8Array {
  const record = recordOf([S, W], round, { layers: { start: 0, end: LAYERS }, contributors: [S] });
  return buildTrainingReceipt(S, { networkId: NET, timestampMs: ts }, record, cosigsOf(record, [S, W])).bytes;
}

/** The genesis allocation; S and W funded with 1,000 NEURO each and bonded. */
function bootstrap(): Uint8Array[] {
  return [
    buildGenesis(G, { networkId: NET, timestampMs: T0 + 1000 }).bytes,
    buildTransfer(G, env(1, T0 + 2000), acct(S), 1000n * NEURO).bytes,
    buildTransfer(G, env(2, T0 + 2500), acct(W), 1000n * NEURO).bytes,
    buildStake(S, env(1, T0 + 3000), MIN_REWARD_BOND, 30).bytes,
    buildStake(W, env(1, T0 + 3500), MIN_REWARD_BOND, 30).bytes,
  ];
}

describe('rewards minted at checkpoints (issue 11 §3)', () => {
  it('release time: the cut of the first checkpoint covering the event, plus the settle time', () => {
    assert.equal(rewardReleaseAt(T0, RULES), T0 + PERIOD + SETTLE, 'an event at a cut is covered by the next one (a checkpoint covers events dated before its cut)');
    assert.equal(rewardReleaseAt(T0 + PERIOD - 1, RULES), T0 + PERIOD + SETTLE);
    assert.equal(rewardReleaseAt(T0 + 1, { witnessed: true }), undefined, 'rules without mintAt mint at once');
  });

  it('a reward is unminted and unspendable until its checkpoint, then minted by the account’s next event', () => {
    const t = tempDir('neuroshard-cpmint-');
    const l = open(t.dir);
    try {
      for (const b of bootstrap()) assert.equal(l.ingest(b).status, 'applied');
      const minted0 = l.status().minted;
      const bal0 = l.account(acct(S)).balance;
      const tp = T0 + 5 * PERIOD + 2000;
      const r = l.ingest(trainingProof(1, tp));
      assert.equal(r.status, 'applied');
      const reward = l.account(acct(S)).unminted;
      assert.ok(reward > 0n, "the proof earned a reward");
      assert.deepEqual(l.account(acct(S)).unmintedRewards, [{ amount: reward, releaseAt: T0 + 6 * PERIOD + SETTLE }]);
      assert.equal(l.account(acct(S)).balance, bal0, 'not in the balance');
      assert.equal(l.status().minted, minted0, 'not minted');
      assert.equal(l.supplyGap(), 0n);

      // a transfer that needs the reward: refused before the release time (even past the cut), taken at it
      let amount = ((bal0 + reward) * 20n) / 21n;
      while (amount + transferFee(amount) > bal0 + reward) amount--;
      assert.ok(amount + transferFee(amount) > bal0, 'the transfer needs part of the reward');
      const release = T0 + 6 * PERIOD + SETTLE;
      const early = l.ingest(buildTransfer(S, env(1, release - 1), acct(W), amount).bytes);
      assert.equal(early.status === 'applied', false);
      assert.equal(early.reason, 'INSUFFICIENT_BALANCE');
      assert.equal(l.account(acct(S)).unminted, reward);
      const onTime = l.ingest(buildTransfer(S, env(2, release), acct(W), amount).bytes);
      assert.equal(onTime.status, 'applied');
      assert.equal(l.account(acct(S)).unminted, 0n);
      assert.equal(l.account(acct(S)).balance, bal0 + reward - amount - transferFee(amount));
      assert.equal(l.status().minted, minted0 + reward, 'minted at the checkpoint');
      assert.equal(l.supplyGap(), 0n);

      // the unminted reward is state: a reopened file holds the same rows and hash
      const hash = l.stateHash();
      l.close();
      const again = open(t.dir);
      try {
        assert.equal(again.stateHash(), hash);
        assert.equal(again.replayHash(), hash);
      } finally {
        again.close();
      }
    } finally {
      try {
        l.close();
      } catch {
        /* closed above */
      }
      t.cleanup();
    }
  });

  it('the same state in any arrival order, with rewards of several windows pending at once', () => {
    const t = tempDir('neuroshard-cpmint-');
    const a = open(t.dir, 'a.db');
    const b = open(t.dir, 'b.db');
    try {
      const events = [...bootstrap()];
      // proofs in 4 consecutive windows: up to two release times pending at once (settle < period here)
      for (let i = 0; i < 4; i++) events.push(trainingProof(1 + i, T0 + (5 + i) * PERIOD + 30_000));
      events.push(buildTransfer(S, env(1, T0 + 8 * PERIOD + 40_000), acct(W), NEURO).bytes);
      for (const e of events) assert.equal(a.ingest(e).status, 'applied');
      const u = a.account(acct(S)).unmintedRewards;
      assert.ok(u.length >= 1 && u.every((x, i) => i === 0 || x.releaseAt > u[i - 1]!.releaseAt), JSON.stringify(u.map((x) => x.releaseAt)));
      for (const e of [...events].reverse()) b.ingest(e);
      assert.equal(b.stateHash(), a.stateHash());
      assert.deepEqual(b.account(acct(S)), a.account(acct(S)));
      assert.equal(b.supplyGap(), 0n);
    } finally {
      a.close();
      b.close();
      t.cleanup();
    }
  });

  it('a slash forfeits the offender’s unminted rewards: they are never minted', () => {
    const t = tempDir('neuroshard-cpmint-');
    const l = open(t.dir);
    try {
      for (const b of bootstrap()) l.ingest(b);
      // enough that S keeps a balance after the slash (1,000 NEURO) to make an event with
      l.ingest(buildTransfer(G, env(3, T0 + 4500), acct(S), 2000n * NEURO).bytes);
      assert.equal(l.ingest(trainingProof(1, T0 + 5 * PERIOD + 2000)).status, 'applied');
      assert.ok(l.account(acct(S)).unminted > 0n);
      // S signs two transfers with one nonce: equivocation, reported by W
      const x = buildTransfer(S, env(7, T0 + 5 * PERIOD + 3000), acct(W), NEURO);
      const y = buildTransfer(S, env(7, T0 + 5 * PERIOD + 3001), acct(G), NEURO);
      l.ingest(x.bytes);
      l.ingest(y.bytes);
      const minted0 = l.status().minted;
      assert.equal(l.ingest(buildSlashEquivocation(W, env(1, T0 + 5 * PERIOD + 4000), x.bytes, y.bytes).bytes).status, 'applied');
      assert.equal(l.account(acct(S)).unminted, 0n);
      // S's next event after the release time mints nothing
      assert.equal(l.ingest(buildTransfer(S, env(8, T0 + 7 * PERIOD), acct(W), NEURO).bytes).status, 'applied');
      assert.equal(l.status().minted, minted0);
      assert.equal(l.supplyGap(), 0n);
    } finally {
      l.close();
      t.cleanup();
    }
  });
});
