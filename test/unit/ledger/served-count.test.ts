/**
 * Issue 11 §2, the validator-node divergence: two validators slashed the same fraud 20 ms apart. Each ledger applied
 * its own slash first; the other's, dated earlier, rewound it and rejected it. The rejected slash stayed in its
 * author's ledger (a node keeps its own events, with their verdict) while every other ledger dropped it at admission
 * (attack 5: the network's rejected events are not stored). The state hashes were equal (they leave the rejected
 * counter out), but `applied + rejected + void` differed, and the count that nodes compared (the test's agreement
 * check, and the ledger-status RPC a reconciliation uses to decide "the peer knows more than we do") never met.
 *
 * Here over plain data: the same two conflicting spends reach two ledgers in two orders, one as its author's own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTransfer } from '../../../src/ledger/build.js';
import { servedEvents } from '../../../src/ledger/reconcile.js';
import { acct, env, proofRun, T0, tempLedger, testKey } from '../../attacks/helpers.js';

const H = testKey(9611); // the author of both spends
const R = testKey(9612);
const M = testKey(9613);

describe('served event count: equal on ledgers with equal state, whatever they kept of their own', () => {
  it('an own event rejected by a rewind is kept by its author only; the state hash and the served count agree', () => {
    const a = tempLedger();
    const b = tempLedger();
    try {
      for (const l of [a.ledger, b.ledger]) l.ingestMany(proofRun(H, T0, 2)); // H earns
      const bal = a.ledger.account(acct(H)).balance;
      assert.ok(bal > 0n);
      const t = T0 + 3 * 60_000;
      // two spends of 3/5 of the balance each: only the first in canonical order fits
      const first = buildTransfer(H, env(0, t), acct(R), (bal * 3n) / 5n);
      const second = buildTransfer(H, env(1, t + 20), acct(M), (bal * 3n) / 5n);
      const now = { ingress: 'gossip' as const, nowMs: t + 1000 };
      // a: its own (later-dated) spend first, applied; the earlier one arrives by gossip and rewinds it: rejected, kept
      assert.equal(a.ledger.ingest(second.bytes).status, 'applied');
      assert.equal(a.ledger.ingest(first.bytes, now).status, 'applied');
      assert.equal(a.ledger.eventStatus(second.id)?.status, 'rejected');
      // b: the earlier one first; the later one, from the network and rejected at its place, is not stored
      assert.equal(b.ledger.ingest(first.bytes, now).status, 'applied');
      assert.equal(b.ledger.ingest(second.bytes, now).status, 'dropped');
      assert.equal(b.ledger.eventStatus(second.id), undefined);

      const sa = a.ledger.status();
      const sb = b.ledger.status();
      assert.equal(sa.replayPending || sb.replayPending, false);
      assert.equal(sa.stateHash, sb.stateHash, 'the same state');
      // the arrival-dependent count (what the validator-node test and the ledger-status RPC compared) differs...
      assert.equal(sa.events, sb.events + 1);
      // ...the served one does not
      assert.equal(servedEvents(sa), servedEvents(sb));
      assert.equal(servedEvents(sa), sa.applied + sa.void);
      assert.equal(a.ledger.supplyGap(), 0n);
      assert.equal(b.ledger.supplyGap(), 0n);
    } finally {
      a.done();
      b.done();
    }
  });
});
