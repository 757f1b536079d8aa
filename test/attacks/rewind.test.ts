/**
 * Attacks 4 and 6 (issue 11): nonce reuse. An event reusing an old (signer, kind, nonce) used to void both events
 * and rewind the ledger to the old one: one cheap gossip message replayed the whole history on the event loop, and
 * a node restored from its mnemonic with a lost ledger.db (which also believed itself caught up on the public
 * empty-ledger hash) voided its own past proofs and the payments that depended on them. Now the first event in
 * canonical order wins: the reuse is void at its own place, rewinds nothing and voids nothing earlier, and the
 * signer is still slashable; and a hash with a replay pending never counts as caught up.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEURO } from '../../src/ledger/amount.js';
import { buildSlashEquivocation, buildTransfer } from '../../src/ledger/build.js';
import { decodeEvent } from '../../src/ledger/events.js';
import { caughtUpWith } from '../../src/ledger/reconcile.js';
import { LedgerService } from '../../src/ledger/service.js';
import { waitFor } from '../../src/util/abort.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';
import { acct, env, evilPeer, proofRun, T0, tempLedger, testKey } from './helpers.js';

const M = testKey(9301);
const H = testKey(9302);
const R = testKey(9303);

describe('attacks 4 and 6: nonce reuse', () => {
  it('a reused old nonce by gossip is void at its place and replays nothing (1,000 attempts against 3,000 events of history)', async () => {
    const { ledger, done } = tempLedger();
    try {
      // history: M's 1,000 proofs (nonces 0..999) and H's 2,000, from T0
      const mine = proofRun(M, T0, 1000);
      ledger.ingestMany(mine);
      ledger.ingestMany(proofRun(H, T0, 2000));
      const balance = ledger.account(acct(M)).balance;
      const now = T0 + 2010 * 60_000 + 30_000;
      const net = evilPeer(() => []);
      const service = new LedgerService({ ledger, network: net, clock: new ManualClock(now) });
      service.start();
      const replayedBefore = ledger.work.replayedEvents;
      // 1,000 new events, each reusing one of M's old proof nonces, dated now (inside the live window)
      // 3 proofs reusing proof nonces 0..2, then 1,000 transfers all with transfer nonce 0 (the first wins)
      const proofs = proofRun(M, now - 3 * 60_000, 3, 0);
      const reuse: Uint8Array[] = [];
      for (let i = 0; i < 1000; i++) reuse.push(buildTransfer(M, env(0, now - 1000 + i), acct(H), NEURO / 1_000_000n).bytes);
      for (const b of [...proofs, ...reuse]) net.gossip(b);
      await waitFor(() => !ledger.replayPending(), { timeoutMs: 30_000, what: 'no replay pending' });
      const replayed = ledger.work.replayedEvents - replayedBefore;
      const voided = mine.filter((b) => ledger.eventStatus(decodeEvent(b).id)?.status !== 'applied').length;
      tally('nonce reuse rewind', proofs.length + reuse.length, voided + (replayed > 0 ? 1 : 0));
      assert.equal(voided, 0, 'no old proof lost its verdict');
      for (const b of proofs) assert.deepEqual(ledger.eventStatus(decodeEvent(b).id), { status: 'void', reason: 'EQUIVOCATION' });
      assert.equal(replayed, 0, 'no rewind: each reuse sorts after the tip and is void at its place');
      assert.equal(ledger.eventStatus(decodeEvent(reuse[0]!).id)?.status, 'applied', 'transfer nonce 0 was unused: the first one applies');
      assert.ok(reuse.slice(1).every((b) => ledger.eventStatus(decodeEvent(b).id)?.status === 'void'));
      assert.ok(ledger.account(acct(M)).balance >= balance - NEURO, 'M kept its minted balance');
      service.stop();
    } finally {
      done();
    }
  });

  it('a restored node re-signing a used nonce voids only its new event: past proofs and the payment they funded stand', () => {
    const { ledger, done } = tempLedger();
    try {
      const past = proofRun(R, T0, 10);
      ledger.ingestMany(past);
      const pay = buildTransfer(R, env(0, T0 + 11 * 60_000), acct(H), ledger.account(acct(R)).balance / 2n);
      assert.equal(ledger.ingest(pay.bytes).status, 'applied');
      // restored with an empty ledger.db: it signs proof nonce 0 and transfer nonce 0 again
      const again = proofRun(R, T0 + 20 * 60_000, 1, 0)[0]!;
      const pay2 = buildTransfer(R, env(0, T0 + 21 * 60_000), acct(M), 1n);
      const results = ledger.ingestMany([again, pay2.bytes]);
      tally('restored-node nonce reuse', 2, results.filter((r) => r.status === 'applied').length);
      assert.deepEqual(results.map((r) => r.status), ['void', 'void']);
      assert.ok(past.every((b) => ledger.eventStatus(decodeEvent(b).id)?.status === 'applied'));
      assert.equal(ledger.eventStatus(pay.id)?.status, 'applied');
      // still slashable with both signed transfers
      const slash = buildSlashEquivocation(H, env(0, T0 + 22 * 60_000), pay.bytes, pay2.bytes);
      assert.equal(ledger.ingest(slash.bytes).status, 'applied');
    } finally {
      done();
    }
  });

  it('a hash with a replay pending never counts as caught up', () => {
    const { ledger, done } = tempLedger();
    try {
      const s = ledger.status();
      let wrong = 0;
      for (let i = 0; i < 100; i++) if (caughtUpWith({ stateHash: s.stateHash, events: i, replayPending: true }, { stateHash: s.stateHash, events: i })) wrong++;
      tally('pending-hash caught-up', 100, wrong);
      assert.equal(wrong, 0);
      assert.equal(caughtUpWith({ stateHash: s.stateHash, events: 3, replayPending: false }, { stateHash: s.stateHash, events: 3 }), true);
    } finally {
      done();
    }
  });
});
