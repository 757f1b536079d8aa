/**
 * Issue 11 §2 "Training": rewards only from co-signed training records (src/ledger/training-receipt.ts). Each attack
 * is tried many times against a ledger under the witnessed rules with a bonded honest round (A, B, C; D bonded too);
 * success for the attacker = any NEURO minted by the attack event. Counted with tally() like the other attack files.
 *
 *   1. replays: the honest receipt again (same bytes), under another co-signer as submitter, and in a later round's
 *      clothing (same record, another timestamp);
 *   2. duplicate records for one round: a second record of the same members (other counts, another hash);
 *   3. co-signed by non-members: fresh keys' signatures under members' indices, and records whose members are fresh keys;
 *   4. the contributor alone: its own signature only, and with one fresh (unbonded) key as the second member;
 *   5. forged counts: tokens raised after signing, tokens above the cap, a rejected contribution flipped to accepted.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate, signDomain, type NodeKey } from '../../src/identity/index.js';
import { NEURO } from '../../src/ledger/amount.js';
import { buildTrainingReceipt } from '../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../src/ledger/economics.js';
import { MAX_RECEIPT_TOKENS, TRAINING_RECORD_DOMAIN, trainingRecordPayload, type TrainingRecord } from '../../src/ledger/training-receipt.js';
import { cosigsOf, fundAndBond, receipt, recordOf, RULES } from '../unit/ledger/receipt-fixture.js';
import { tally } from './tally.js';
import { acct, NET, tempLedger, testKey } from './helpers.js';

const [A, B, C, D] = [testKey(9201), testKey(9202), testKey(9203), testKey(9204)];
const fresh = (): NodeKey => keyFromPrivate(randomBytes(32));

describe('issue 11 §2: training rewards only from co-signed records', () => {
  it('replays, duplicates, non-member and lone co-signatures, forged counts: nothing minted', () => {
    const { ledger, done } = tempLedger({ rewards: RULES });
    try {
      let t = fundAndBond(ledger, [A, B, C, D], [A, B, C, D]);
      const minted = (): bigint => ledger.status().minted;
      const counts = new Map<string, { sent: number; won: number }>();
      const attempt = (attack: string, bytes: Uint8Array): void => {
        const c = counts.get(attack) ?? { sent: 0, won: 0 };
        c.sent++;
        const before = minted();
        const r = ledger.ingest(bytes);
        if (minted() > before || (r.status === 'applied' && !r.duplicate)) c.won++;
        counts.set(attack, c);
      };
      const ROUNDS = 40;
      for (let round = 1; round <= ROUNDS; round++) {
        // the honest round: A, B, C train, D rejected; A submits, co-signed by A, B, C (quorum 3 of 4)
        const rec = recordOf([A, B, C, D], round, { rejected: [D], tokens: 2048n });
        const honest = receipt(A, rec, [A, B, C], (t += 10_000));
        const b0 = minted();
        assert.equal(ledger.ingest(honest).status, 'applied');
        assert.ok(minted() > b0, 'the honest receipt pays');

        // 1. replays
        attempt('training receipt replay', honest);
        attempt('training receipt replay', receipt(B, rec, [A, B, C], (t += 10)));
        attempt('training receipt replay', receipt(C, rec, [A, B, C, D], (t += 10)));
        attempt('training receipt replay', receipt(A, rec, [A, B, C], (t += 10))); // another timestamp: void (equivocation)
        // 2. a second record for the round by the same members: more tokens, another weights hash, D accepted
        const second = { ...recordOf([A, B, C, D], round, { tokens: 4096n }), weightsHash: randomBytes(32) };
        attempt('training receipt duplicate', receipt(B, second, [A, B, C], (t += 10)));
        attempt('training receipt duplicate', receipt(D, second, [B, C, D], (t += 10)));
        attempt('training receipt duplicate', receipt(C, { ...rec, layers: { start: 4, end: 8 } }, [A, B, C, D], (t += 10)));
        // 3. non-members: fresh keys' signatures under members' indices; a record of fresh keys naming A as contributor
        const x = [fresh(), fresh(), fresh()];
        const nm = recordOf([A, B, C, D], round + 1000, { tokens: 2048n });
        const p = trainingRecordPayload(NET, nm);
        const aIdx = nm.members.findIndex((m) => Buffer.from(m).equals(Buffer.from(A.publicKey)));
        const others = [0, 1, 2, 3].filter((i) => i !== aIdx);
        const forged = [...cosigsOf(nm, [A]), ...others.map((member, j) => ({ member, signature: signDomain(x[j]!, TRAINING_RECORD_DOMAIN, p) }))].sort((a, b) => a.member - b.member);
        attempt('training receipt non-member', buildTrainingReceipt(A, { networkId: NET, timestampMs: (t += 10) }, nm, forged).bytes);
        attempt('training receipt non-member', receipt(x[0]!, recordOf([x[0]!, x[1]!, x[2]!], round, { tokens: 2048n }), x, (t += 10)));
        attempt('training receipt non-member', receipt(x[0]!, recordOf([x[0]!, x[1]!, x[2]!, A], round + 2000, { tokens: 2048n, contributors: [A] }), x, (t += 10)));
        // 4. the contributor alone, and with one fresh key as the other member
        const alone = recordOf([A, B], round + 3000, { contributors: [A] });
        attempt('training receipt contributor alone', receipt(A, alone, [A], (t += 10)));
        const pair = recordOf([A, x[0]!], round + 3000, { contributors: [A] });
        attempt('training receipt contributor alone', receipt(A, pair, [A, x[0]!], (t += 10)));
        // 5. forged counts on a fresh round's record signed by a quorum
        const honestNext = recordOf([A, B, C, D], round + 4000, { rejected: [D], tokens: 2048n });
        const sigs = cosigsOf(honestNext, [A, B, C]);
        const raised: TrainingRecord = { ...honestNext, contributions: honestNext.contributions.map((c) => ({ ...c, tokens: c.tokens * 1000n })) };
        attempt('training receipt forged counts', buildTrainingReceipt(A, { networkId: NET, timestampMs: (t += 10) }, raised, sigs).bytes);
        const flipped: TrainingRecord = { ...honestNext, contributions: honestNext.contributions.map((c) => ({ ...c, accepted: true })) };
        attempt('training receipt forged counts', buildTrainingReceipt(B, { networkId: NET, timestampMs: (t += 10) }, flipped, sigs).bytes);
        const over = recordOf([A, B, C, D], round + 5000, { tokens: MAX_RECEIPT_TOKENS + 1n });
        attempt('training receipt forged counts', receipt(A, over, [A, B, C], (t += 10)));
      }
      let total = 0;
      for (const [attack, c] of counts) {
        tally(attack, c.sent, c.won);
        total += c.sent;
        assert.equal(c.won, 0, `${attack}: ${c.won} of ${c.sent} got through`);
      }
      assert.ok(total >= ROUNDS * 14);
      // what was paid: exactly the honest rounds, to A, B and C only
      assert.equal(ledger.supplyGap(), 0n);
      assert.equal(ledger.account(acct(D)).balance, 1000n * NEURO - MIN_REWARD_BOND, 'D (rejected every round) earned nothing');
    } finally {
      done();
    }
  });
});
