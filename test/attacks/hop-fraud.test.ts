/**
 * Issue 11 §2 (validators re-execute sampled hop spans and slash): attacks on hop-fraud evidence (slash evidence
 * type 3, ledger/fraud.ts). A slash needs the completion event (the hop's signed commitment inside it), the hop's
 * signed transcript claim, and statements of HOP_FRAUD_QUORUM distinct bonded validators that re-executed and got
 * another output. Forged evidence, evidence against a matching output, a lone or unbonded accuser, a hop reporting
 * itself and replays of a slashed offence must all fail; only the one valid slash applies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { buildServedCompletion, buildStake } from '../../src/ledger/build.js';
import { MIN_REWARD_BOND, SLASH_AMOUNT } from '../../src/ledger/economics.js';
import { decodeEvent, type LedgerEvent, type MarketCompleteBody } from '../../src/ledger/events.js';
import { buildSlashHopFraud, encodeFraudRecord, signFraudStatement, signTranscriptClaim, type FraudStatement, type HopFraudRecord } from '../../src/ledger/fraud.js';
import type { NodeKey } from '../../src/identity/index.js';
import { tally } from './tally.js';
import { acct, env, NET, proofRun, T0, tempLedger, testKey } from './helpers.js';

const R = testKey(9801); // requester
const D = testKey(9802); // driver
const H = testKey(9803); // the accused hop (index 1)
const V1 = testKey(9804); // bonded validators
const V2 = testKey(9805);
const U1 = testKey(9806); // unbonded
const U2 = testKey(9807);
const M = testKey(9808); // a third party submitting

const live = (now: number) => ({ ingress: 'gossip' as const, nowMs: now });
const claim = { span: { start: 2, end: 4 }, modelHash: 'ab'.repeat(32), engine: 'neuroshard-cpu/test' };

describe('hop fraud evidence: forged, against a matching output, under quorum, self-reported, replayed', () => {
  it('only a quorum of bonded validators with valid statements slashes, once; every forged or replayed slash fails', () => {
    const x = tempLedger();
    const { ledger } = x;
    try {
      // funds (self-claimed proofs on the bare ledger, 0.9 NEURO each) and bonds for V1, V2 and the hop
      for (const k of [R, D, H, V1, V2]) for (const r of ledger.ingestMany(proofRun(k, T0, 115))) assert.equal(r.status, 'applied');
      let t = T0 + 120 * 60_000;
      for (const k of [H, V1, V2]) assert.equal(ledger.ingest(buildStake(k, env(500, (t += 1000)), MIN_REWARD_BOND, 30).bytes, live(t)).status, 'applied');
      const requestId = new Uint8Array(randomBytes(32));
      const completion = buildServedCompletion(env(501, (t += 1000)), { requestId, tokensUsed: 12, requester: R, hops: [D, H] }) as LedgerEvent<MarketCompleteBody>;
      const hop = completion.body.hops[1]!;
      const claimSignature = signTranscriptClaim(H, NET, requestId, 1, 2, hop.inCommit, hop.outCommit, claim);
      const wrong = new Uint8Array(randomBytes(32));
      const st = (k: NodeKey, o: { completionId?: Uint8Array; index?: number; modelHash?: string; recomputed?: Uint8Array } = {}): FraudStatement =>
        signFraudStatement(k, NET, o.completionId ?? completion.id, o.index ?? 1, o.modelHash ?? claim.modelHash, hop.outCommit, o.recomputed ?? wrong);
      const record = (r: Partial<HopFraudRecord> = {}): Uint8Array => encodeFraudRecord({ index: 1, claim, claimSignature, statements: [st(V1), st(V2)], ...r });
      let nonce = 1000;
      const submit = (reporter: NodeKey, c: Uint8Array, rec: Uint8Array): { status: string; reason?: string } => {
        t += 1000;
        return ledger.ingest(buildSlashHopFraud(reporter, env(++nonce, t), c, rec).bytes, live(t));
      };
      const hBefore = ledger.account(acct(H));

      // 1. forged evidence: signatures that are not the signers', statements for another completion, hop, weights
      const forged: { name: string; c: Uint8Array; rec: Uint8Array }[] = [];
      for (let i = 0; i < 20; i++) {
        const badSig = (s: FraudStatement): FraudStatement => ({ ...s, signature: new Uint8Array(randomBytes(64)) });
        forged.push({ name: 'statement signature', c: completion.bytes, rec: record({ statements: [badSig(st(V1)), st(V2)] }) });
        forged.push({ name: 'claim signature', c: completion.bytes, rec: record({ claimSignature: new Uint8Array(randomBytes(64)) }) });
        forged.push({ name: 'claim other weights', c: completion.bytes, rec: record({ claim: { ...claim, modelHash: 'cd'.repeat(32) } }) });
        forged.push({ name: 'claim other span', c: completion.bytes, rec: record({ claim: { ...claim, span: { start: 0, end: 2 } } }) });
        forged.push({ name: 'statement for another completion', c: completion.bytes, rec: record({ statements: [st(V1, { completionId: new Uint8Array(randomBytes(32)) }), st(V2)] }) });
        forged.push({ name: 'statement for another hop', c: completion.bytes, rec: record({ statements: [st(V1, { index: 0 }), st(V2)] }) });
        forged.push({ name: 'statement for other weights', c: completion.bytes, rec: record({ statements: [st(V1, { modelHash: 'ee'.repeat(32) }), st(V2)] }) });
        forged.push({ name: 'one validator twice', c: completion.bytes, rec: record({ statements: [st(V1), st(V1, { recomputed: new Uint8Array(randomBytes(32)) })] }) });
        forged.push({ name: 'the hop as its own validator', c: completion.bytes, rec: record({ statements: [st(V1), st(H)] }) });
        forged.push({ name: 'hop index out of range', c: completion.bytes, rec: record({ index: 2 }) });
        const tampered = new Uint8Array(completion.bytes);
        tampered[tampered.length - 1] ^= 1; // the driver's event signature
        forged.push({ name: 'completion not signed', c: tampered, rec: record() });
        const truncated = record().subarray(0, 100 + 2 * i);
        forged.push({ name: 'truncated record', c: completion.bytes, rec: truncated });
      }
      let forgedOk = 0;
      for (const f of forged) {
        const r = submit(M, f.c, f.rec);
        if (r.status === 'applied') forgedOk++;
        else assert.ok(r.reason === 'EVIDENCE_INVALID' || r.reason === 'MALFORMED', `${f.name}: ${r.status} ${r.reason}`);
      }
      tally('hop-fraud: forged evidence', forged.length, forgedOk);
      assert.equal(forgedOk, 0);

      // 2. evidence against a matching output: validators who "recomputed" the hop's own commitment accuse nothing
      let matchOk = 0;
      const matching = 40;
      for (let i = 0; i < matching; i++) {
        const r = submit(M, completion.bytes, record({ statements: [st(V1, { recomputed: hop.outCommit }), st(V2, { recomputed: i % 2 === 0 ? hop.outCommit : wrong })] }));
        if (r.status === 'applied') matchOk++;
        else assert.equal(r.reason, 'EVIDENCE_INVALID');
      }
      tally('hop-fraud: evidence against a matching output', matching, matchOk);
      assert.equal(matchOk, 0);

      // 3. a lone accuser, unbonded accusers (a fresh key's quorum), the hop reporting itself
      let lone = 0;
      const r1 = submit(V1, completion.bytes, record({ statements: [st(V1)] }));
      if (r1.status === 'applied') lone++;
      assert.equal(r1.reason, 'EVIDENCE_INVALID');
      const r2 = submit(U1, completion.bytes, record({ statements: [st(U1), st(U2)] }));
      if (r2.status === 'applied') lone++;
      assert.equal(r2.reason, 'HOP_FRAUD_QUORUM');
      const r3 = submit(M, completion.bytes, record({ statements: [st(V1), st(U2)] }));
      if (r3.status === 'applied') lone++;
      assert.equal(r3.reason, 'HOP_FRAUD_QUORUM');
      const r4 = submit(H, completion.bytes, record());
      if (r4.status === 'applied') lone++;
      assert.equal(r4.reason, 'SELF_REPORT');
      tally('hop-fraud: under quorum, unbonded, self-report', 4, lone);
      assert.equal(lone, 0);
      assert.deepEqual(ledger.account(acct(H)), hBefore, 'nothing was taken from the hop so far');

      // 4. the valid slash applies once; the requester receives half of the take, the reporter nothing
      const reqBefore = ledger.account(acct(R)).balance;
      const mBefore = ledger.account(acct(M)).balance;
      const good = buildSlashHopFraud(M, env(++nonce, (t += 1000)), completion.bytes, record());
      assert.equal(ledger.ingest(good.bytes, live(t)).status, 'applied');
      const hAfter = ledger.account(acct(H));
      const taken = hBefore.staked + hBefore.balance - hAfter.staked - hAfter.balance;
      assert.equal(taken, SLASH_AMOUNT < hBefore.staked + hBefore.balance ? SLASH_AMOUNT : hBefore.staked + hBefore.balance);
      assert.equal(ledger.account(acct(R)).balance, reqBefore + taken / 2n);
      assert.equal(ledger.account(acct(M)).balance, mBefore);

      // 5. replays: the same event again, the same offence from other reporters, other statement orders or sets
      let replayOk = 0;
      const replays = 60;
      for (let i = 0; i < replays; i++) {
        const reporter = [M, V1, V2, R][i % 4]!;
        const rec = i % 3 === 0 ? record({ statements: [st(V2), st(V1)] }) : i % 3 === 1 ? record({ statements: [st(V1), st(V2, { recomputed: new Uint8Array(randomBytes(32)) })] }) : record();
        const r = i % 10 === 0 ? ledger.ingest(good.bytes, live(t)) : submit(reporter, completion.bytes, rec);
        if (r.status === 'applied' && !(i % 10 === 0 && (r as { duplicate?: boolean }).duplicate === true)) replayOk++;
      }
      tally('hop-fraud: replayed evidence', replays, replayOk);
      assert.equal(replayOk, 0);
      assert.deepEqual(ledger.account(acct(H)), hAfter, 'a slashed offence takes nothing more');
      assert.equal(decodeEvent(good.bytes).id.length, 32);
    } finally {
      x.done();
    }
  });
});
