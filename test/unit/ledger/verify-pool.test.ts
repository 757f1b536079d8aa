/**
 * Issue 11 §4: a sync page's signatures verified on worker threads (verify-pool.ts) before ingest give exactly the
 * verdicts of the plain ingest: valid events, a flipped signature byte, a high-S copy, a flipped payload byte and
 * garbage, on two ledgers (one with the pool, one without): the same results, stored rows and state hash.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { malleate } from '../../../src/identity/index.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent } from '../../../src/ledger/events.js';
import { clearEventVerdicts } from '../../../src/ledger/verify.js';
import { SignatureVerifyPool } from '../../../src/ledger/verify-pool.js';
import { acct, env, proofRun, T0, tempLedger, testKey } from '../../attacks/helpers.js';

const H = testKey(9621);
const R = testKey(9622);

function tampered(bytes: Uint8Array, f: (b: Uint8Array) => void): Uint8Array {
  const b = bytes.slice();
  f(b);
  return b;
}

describe('signature verify pool: sync pages checked in parallel, verdicts unchanged', () => {
  it('the same ingest results, rows and state hash with and without the pool', async () => {
    const a = tempLedger();
    const b = tempLedger();
    const pool = new SignatureVerifyPool(2);
    try {
      for (const l of [a.ledger, b.ledger]) l.ingestMany(proofRun(H, T0, 2));
      const t = T0 + 3 * 60_000;
      const good = Array.from({ length: 48 }, (_, i) => buildTransfer(H, env(i, t + i * 10), acct(R), 10n ** 12n).bytes);
      for (const g of good) assert.deepEqual(decodeEvent(g).signature, g.subarray(g.byteLength - 64), 'the signature is the last 64 bytes');
      const page = [...good];
      // canonical order is by time: the bad ones are copies of good ones with the same time (sorted in place)
      page[5] = tampered(good[5]!, (x) => (x[x.byteLength - 1]! ^= 1)); // flipped signature byte
      page[9] = tampered(good[9]!, (x) => x.set(malleate(x.subarray(x.byteLength - 64)), x.byteLength - 64)); // high-S
      page[13] = tampered(good[13]!, (x) => (x[30]! ^= 0x40)); // flipped payload byte
      page[17] = new Uint8Array([1, 2, 3]); // garbage
      const opts = { ingress: 'sync' as const, nowMs: t + 60_000, deferReplay: true };

      clearEventVerdicts();
      const plain = a.ledger.ingestMany(page, opts);
      clearEventVerdicts();
      const accepted = await pool.prefill(page);
      const pooled = b.ledger.ingestMany(page, opts);

      assert.equal(accepted, 48 - 4, 'the workers accepted the valid ones and none of the tampered or garbage');
      assert.deepEqual(pooled, plain);
      for (const i of [5, 9, 13, 17]) assert.equal(plain[i]!.status, 'dropped', `event ${i}`);
      assert.ok(plain.filter((r) => r.status === 'applied').length >= 40);
      assert.equal(b.ledger.stateHash(), a.ledger.stateHash());
      assert.deepEqual(b.ledger.status(), a.ledger.status());
    } finally {
      await pool.close();
      a.done();
      b.done();
    }
  });

  it('a started pool posts the page before prefill returns, so the check overlaps the caller\'s synchronous ingest', async () => {
    const pool = new SignatureVerifyPool(1);
    try {
      await pool.started();
      const page = Array.from({ length: 40 }, (_, i) => buildTransfer(H, env(i, T0 + i), acct(R), 1n).bytes);
      const p = pool.prefill(page);
      // no await yet: the caller now runs its synchronous ingest of the previous page; the workers must already
      // hold this page (an await inside prefill would post it only after that ingest, serialising the pipeline)
      assert.equal(pool.pendingJobs, 1, 'the page is with the worker before the caller yields');
      assert.equal(await p, 40);
      assert.equal(pool.pendingJobs, 0);
    } finally {
      await pool.close();
    }
  });

  it('a short page is verified inline; a closed pool prefills nothing and ingest still judges every event', async () => {
    const pool = new SignatureVerifyPool(1);
    const page = Array.from({ length: 4 }, (_, i) => buildTransfer(H, env(i, T0 + i), acct(R), 1n).bytes);
    assert.equal(await pool.prefill(page), 0);
    await pool.close();
    assert.equal(await pool.prefill(Array.from({ length: 64 }, () => page[0]!)), 0);
  });
});
