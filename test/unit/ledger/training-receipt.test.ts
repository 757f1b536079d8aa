/**
 * Training receipts (issue 11 §2, src/ledger/training-receipt.ts): the canonical encoding, the stateless checks, the
 * quorum, and what applying one does to balances under the witnessed rules. The attacks on them are in
 * test/attacks/training-receipt.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildProof, buildTrainingReceipt } from '../../../src/ledger/build.js';
import { decodeEvent, encodePayload, EventKind, signEvent, type TrainingReceiptBody } from '../../../src/ledger/events.js';
import { signDomain } from '../../../src/identity/index.js';
import { MAX_REWARD_PER_PROOF, MIN_REWARD_BOND, proofReward, roleMultiplier, stakeMultiplier } from '../../../src/ledger/economics.js';
import { Writer } from '../../../src/ledger/codec.js';
import {
  decodeTrainingRecordPayload,
  MAX_RECEIPT_TOKENS,
  receiptQuorum,
  TRAINING_RECORD_DOMAIN,
  trainingRecordPayload,
  verifyCosignature,
  writeRecordFields,
} from '../../../src/ledger/training-receipt.js';
import { verifyEventBytes } from '../../../src/ledger/verify.js';
import { localHolderRecordVerifier } from '../../../src/ledger/holder.js';
import { acct, env, holderRecord, LAYERS, NET, T0, testKey } from './helpers.js';
import { cosigsOf, fundAndBond, receipt, recordOf, RULES } from './receipt-fixture.js';
import { tempLedger } from '../../attacks/helpers.js';

const [A, B, C, D] = [testKey(9101), testKey(9102), testKey(9103), testKey(9104)];
const CFG = { networkId: NET, modelLayers: LAYERS, holderVerifier: localHolderRecordVerifier };

describe('training receipts: encoding and stateless checks', () => {
  it('quorum is a strict majority of the members and never fewer than 2', () => {
    assert.deepEqual([2, 3, 4, 5, 6, 7, 16].map(receiptQuorum), [2, 2, 3, 3, 4, 4, 9]);
  });

  it('round-trips the record and the event canonically; the payload decodes to the same record', () => {
    const rec = { ...recordOf([A, B, C], 7, { rejected: [C] }), lossChangeMicro: -12_345n };
    const p = trainingRecordPayload(NET, rec);
    assert.deepEqual(decodeTrainingRecordPayload(p), { networkId: NET, record: rec });
    const ev = buildTrainingReceipt(A, { networkId: NET, timestampMs: T0 }, rec, cosigsOf(rec, [A, B]));
    const d = decodeEvent(ev.bytes);
    assert.equal(d.body.kind, EventKind.TrainingReceipt);
    assert.deepEqual((d.body as TrainingReceiptBody).record, rec);
    assert.deepEqual(encodePayload(d), ev.payload, 're-encoding gives the same bytes');
    assert.equal(d.nonce, 7n, 'nonce = round');
    for (const c of (d.body as TrainingReceiptBody).cosigs) assert.ok(verifyCosignature(NET, rec, c));
    // another network's signature does not verify here
    assert.equal(verifyCosignature('othernet', rec, cosigsOf(rec, [A])[0]!), false);
    // trailing bytes, unknown flags: malformed
    assert.throws(() => decodeTrainingRecordPayload(new Uint8Array([...p, 0])));
    const w = new Writer().u8(1).str(NET, 128);
    writeRecordFields(w, rec);
    const bad = w.finish();
    bad[bad.length - 9] = 2; // the loss flag
    assert.throws(() => decodeTrainingRecordPayload(bad));
  });

  it('stateless rules: quorum of valid co-signatures, submitter among them, canonical order, token range, nonce', () => {
    const rec = recordOf([A, B, C], 3);
    const v = (b: Uint8Array): string | null => {
      const r = verifyEventBytes(b, CFG);
      return r.ok ? null : r.reason;
    };
    assert.equal(v(receipt(A, rec, [A, B], T0)), null);
    assert.equal(v(receipt(A, rec, [A], T0)), 'TRAINING_RECEIPT_INVALID', 'one co-signer of three');
    assert.equal(v(receipt(C, rec, [A, B], T0)), 'TRAINING_RECEIPT_INVALID', 'the submitter did not co-sign');
    // a signature by a non-member under a member's index
    const forged = cosigsOf(rec, [A, B]);
    forged[1] = { member: forged[1]!.member, signature: signDomain(D, TRAINING_RECORD_DOMAIN, trainingRecordPayload(NET, rec)) };
    assert.equal(v(buildTrainingReceipt(A, { networkId: NET, timestampMs: T0 }, rec, forged).bytes), 'TRAINING_RECEIPT_BAD_SIGNATURE');
    // a changed count after signing
    const sigs = cosigsOf(rec, [A, B]);
    const more = { ...rec, contributions: rec.contributions.map((c) => ({ ...c, tokens: c.tokens * 10n })) };
    assert.equal(v(buildTrainingReceipt(A, { networkId: NET, timestampMs: T0 }, more, sigs).bytes), 'TRAINING_RECEIPT_BAD_SIGNATURE');
    // tokens out of range, members out of order, a span beyond the model, a nonce that is not the round
    assert.equal(v(receipt(A, recordOf([A, B, C], 3, { tokens: MAX_RECEIPT_TOKENS + 1n }), [A, B], T0)), 'TRAINING_RECEIPT_INVALID');
    const swapped = { ...rec, members: [rec.members[1]!, rec.members[0]!, rec.members[2]!] };
    assert.equal(v(receipt(A, swapped, [A, B], T0)), 'TRAINING_RECEIPT_INVALID');
    assert.equal(v(receipt(A, recordOf([A, B], 3, { layers: { start: 0, end: LAYERS + 1 } }), [A, B], T0)), 'TRAINING_RECEIPT_INVALID');
    const wrongNonce = signEvent(A, { networkId: NET, nonce: 4n, timestampMs: T0, body: { kind: EventKind.TrainingReceipt, record: rec, cosigs: cosigsOf(rec, [A, B]) } });
    assert.equal(v(wrongNonce.bytes), 'TRAINING_RECEIPT_INVALID');
  });
});

describe('training receipts: applied under the witnessed rules', () => {
  it('pays each accepted bonded contributor the training reward of its tokens over the span, nothing to rejected or unbonded ones', () => {
    const { ledger, done } = tempLedger({ rewards: RULES });
    try {
      let t = fundAndBond(ledger, [A, B, C, D], [A, B, C]); // D is funded, not bonded
      const before = [A, B, C, D].map((k) => ledger.account(acct(k)).balance);
      const minted0 = ledger.status().minted;
      const rec = recordOf([A, B, C, D], 1, { rejected: [C], tokens: 4096n, layers: { start: 0, end: 4 } });
      const r = ledger.ingest(receipt(A, rec, [A, B, C], (t += 1000)));
      assert.equal(r.status, 'applied', r.reason);
      const want = (k: typeof A): bigint => {
        const a = ledger.account(acct(k));
        return proofReward({ uptimeMs: 0, trainingTokens: 4096n, dataSamples: 0n, layersHeld: 4 }, roleMultiplier({ start: 0, end: 4 }, LAYERS), stakeMultiplier(a.staked));
      };
      const gained = [A, B, C, D].map((k, i) => ledger.account(acct(k)).balance - before[i]!);
      assert.ok(want(A) > 0n && want(A) < MAX_REWARD_PER_PROOF);
      assert.deepEqual(gained, [want(A), want(B), 0n, 0n], 'A and B paid; C rejected; D not bonded');
      assert.equal(ledger.status().minted - minted0, 2n * want(A));
      // the same record again under another submitter: its co-signers already co-signed this round
      assert.equal(ledger.ingest(receipt(B, rec, [A, B, C], (t += 1000))).reason, 'TRAINING_RECEIPT_DUPLICATE');
      // the next round pays again
      assert.equal(ledger.ingest(receipt(B, recordOf([A, B, C, D], 2, { tokens: 4096n }), [A, B, C], (t += 1000))).status, 'applied');
      // … but not with an unbonded co-signer making up the quorum
      assert.equal(ledger.ingest(receipt(B, recordOf([A, B, C, D], 3, { tokens: 4096n }), [B, C, D], (t += 1000))).reason, 'TRAINING_RECEIPT_QUORUM');
      assert.equal(ledger.supplyGap(), 0n);
    } finally {
      done();
    }
  });

  it('counts only bonded co-signers toward the quorum; pays nothing under the self-claimed rules', () => {
    const { ledger, done } = tempLedger({ rewards: RULES });
    try {
      let t = fundAndBond(ledger, [A, B, C], [A]);
      const rec = recordOf([A, B, C], 1);
      // the gossip precheck says so before it is stored (not relayed), and applying it rejects it
      assert.equal(ledger.stateVerdict(decodeEvent(receipt(A, rec, [A, B], (t += 1000)))), 'TRAINING_RECEIPT_QUORUM');
      assert.equal(ledger.ingest(receipt(A, rec, [A, B], (t += 1000))).reason, 'TRAINING_RECEIPT_QUORUM', 'B is not bonded');
    } finally {
      done();
    }
    const off = tempLedger({ rewards: { ...RULES, witnessed: false } });
    try {
      let t = fundAndBond(off.ledger, [A, B], [A, B]);
      assert.equal(off.ledger.ingest(receipt(A, recordOf([A, B], 1), [A, B], (t += 1000))).reason, 'WITNESS_RULES_OFF');
    } finally {
      off.done();
    }
  });

  it('the self-signed training stopgap is gone: a bonded node\'s proof with training tokens mints nothing under the witnessed rules', () => {
    const { ledger, done } = tempLedger({ rewards: RULES });
    try {
      const t = fundAndBond(ledger, [A], [A]);
      assert.ok(ledger.account(acct(A)).staked >= MIN_REWARD_BOND);
      const b0 = ledger.account(acct(A)).balance;
      const ts = t + 60_000;
      const r = ledger.ingest(
        buildProof(A, env(5, ts), {
          uptimeMs: 60_000,
          trainingTokens: 600_000n,
          modelHashBefore: new Uint8Array(32).fill(1),
          modelHashAfter: new Uint8Array(32).fill(2),
          gradientCommitment: new Uint8Array(32).fill(3),
          lossMicro: 2_000_000n,
          gradNormMicro: 1_000_000n,
          holderRecord: holderRecord(A, { start: 0, end: LAYERS }, ts),
        }).bytes,
      );
      assert.equal(r.status, 'applied');
      assert.equal(ledger.account(acct(A)).balance, b0);
    } finally {
      done();
    }
  });
});
