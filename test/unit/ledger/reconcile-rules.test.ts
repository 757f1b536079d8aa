/**
 * The reconciliation rules that moved from node/ledger.ts into src/ledger/reconcile.ts as pure functions: the
 * queue's job precedence, the retry of a peer that is not serving yet, the verdict on a peer's status before and
 * after a tail sync, where a tail sync starts, and when our own proofs may start.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareBytes, orderKey } from '../../../src/ledger/events.js';
import {
  afterTailSync,
  aloneFounder,
  MAX_RECONCILE_ATTEMPTS,
  mergeReconcileJob,
  proofGate,
  raiseReported,
  reconcileAction,
  reconcileRetryMs,
  tailSyncStart,
} from '../../../src/ledger/reconcile.js';

const A = { stateHash: 'aa', events: 10, replayPending: false };

describe('reconciliation rules (ledger/reconcile.ts)', () => {
  it('a full job covers a tail one; a queued job is never replaced by the same or a weaker one', () => {
    const full = { mode: 'full' as const, attempt: 0 };
    const tail = { mode: 'tail' as const, attempt: 0 };
    assert.deepEqual(mergeReconcileJob(undefined, tail), tail);
    assert.deepEqual(mergeReconcileJob(undefined, full), full);
    assert.deepEqual(mergeReconcileJob(tail, full), full, 'full replaces a queued tail');
    assert.equal(mergeReconcileJob(full, tail), undefined, 'a queued full covers a tail');
    assert.equal(mergeReconcileJob(full, { mode: 'full', attempt: 2 }), undefined, 'a queued job keeps its attempt count');
    assert.equal(mergeReconcileJob(tail, { mode: 'tail', attempt: 1 }), undefined);
  });

  it('only a peer that is not serving yet is retried, with a doubling delay, MAX_RECONCILE_ATTEMPTS times in all', () => {
    assert.equal(MAX_RECONCILE_ATTEMPTS, 3);
    assert.equal(reconcileRetryMs(false, 0), undefined);
    assert.equal(reconcileRetryMs(true, 0), 500);
    assert.equal(reconcileRetryMs(true, 1), 1000);
    assert.equal(reconcileRetryMs(true, 2), undefined, 'the third failure is the last');
  });

  it('a peer status: caught up only when equal and final here; equal with a replay pending waits; else sync', () => {
    assert.equal(reconcileAction(A, { stateHash: 'aa', events: 10 }), 'caught-up');
    assert.equal(reconcileAction({ ...A, replayPending: true }, { stateHash: 'aa', events: 10 }), 'wait');
    assert.equal(reconcileAction(A, { stateHash: 'bb', events: 10 }), 'sync');
    assert.equal(reconcileAction({ ...A, replayPending: true }, { stateHash: 'bb', events: 3 }), 'sync');
  });

  it('after a tail sync: caught up when equal or the peer holds no more; a peer that knows more gets a full sync', () => {
    assert.equal(afterTailSync(A, { stateHash: 'aa', events: 10 }), 'caught-up');
    assert.equal(afterTailSync(A, { stateHash: 'bb', events: 10 }), 'caught-up', 'the difference is on its side');
    assert.equal(afterTailSync(A, { stateHash: 'bb', events: 9 }), 'caught-up');
    assert.equal(afterTailSync(A, { stateHash: 'bb', events: 11 }), 'full');
    assert.equal(afterTailSync({ ...A, replayPending: true }, { stateHash: 'aa', events: 11 }), 'full', 'a hash with a replay pending is not final');
  });

  it('a tail sync starts before every event of its window and never before time 0', () => {
    const now = 1_704_067_200_000;
    const start = tailSyncStart(now, 15 * 60_000);
    assert.deepEqual(start, orderKey(now - 15 * 60_000, new Uint8Array(32)));
    const firstInWindow = orderKey(now - 15 * 60_000, new Uint8Array(32).fill(1));
    assert.ok(compareBytes(start, firstInWindow) < 0);
    assert.deepEqual(tailSyncStart(1000, 60_000), orderKey(0, new Uint8Array(32)));
  });

  it('proofs start once caught up and peers were asked about our key, or at once for a founder alone', () => {
    assert.equal(aloneFounder(true, 0, 0), true);
    assert.equal(aloneFounder(true, 1, 0), false);
    assert.equal(aloneFounder(true, 0, 1), false);
    assert.equal(aloneFounder(false, 0, 0), false);
    assert.equal(proofGate({ caughtUp: false, asked: false, alone: false }), 'wait');
    assert.equal(proofGate({ caughtUp: true, asked: false, alone: false }), 'ask', 'an equal hash proves little: ask first');
    assert.equal(proofGate({ caughtUp: true, asked: true, alone: false }), 'prove');
    assert.equal(proofGate({ caughtUp: false, asked: false, alone: true }), 'prove');
    assert.equal(proofGate({ caughtUp: false, asked: true, alone: false }), 'wait');
  });

  it('what peers report of our key only ever rises', () => {
    const r = { nextNonce: 5n, lastEpoch: 7 };
    assert.deepEqual(raiseReported(r, { nextProofNonce: 9n, lastEpoch: 3 }), { nextNonce: 9n, lastEpoch: 7 });
    assert.deepEqual(raiseReported(r, { nextProofNonce: 2n, lastEpoch: 8 }), { nextNonce: 5n, lastEpoch: 8 });
  });
});
