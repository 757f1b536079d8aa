/**
 * A fixed event set and the state hash main (f68b54b) gives for it (issue 11 §4: ingest speed work must not change
 * a verdict): 12 proofs, 24 transfers, an overdraft, and a late transfer that sorts before the tip (a replay), taken
 * by a local caller in two batches and by the sync path in pages of 16 with a deferred replay. Signatures are
 * deterministic (RFC 6979), so the events and the hash are the same on every run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTransfer } from '../../../src/ledger/build.js';
import { acct, env, openTempLedger, T0, testKey, uptimeProof } from './helpers.js';

const MAIN_HASH = 'b627a22fd5b13304cb1a3b7519f950f185b1d148caac7f1e7b9f897344fd6951';

function events(): { evs: Uint8Array[]; late: Uint8Array } {
  const keys = [1, 2, 3, 4].map((i) => testKey(900 + i));
  const evs: Uint8Array[] = [];
  for (let w = 0; w < 3; w++) for (const k of keys) evs.push(uptimeProof(k, T0 + w * 60_000));
  for (let i = 0; i < 24; i++) evs.push(buildTransfer(keys[i % 4]!, env(100 + i, T0 + 200_000 + i * 10), acct(keys[(i + 1) % 4]!), BigInt(i + 1) * 10n ** 12n).bytes);
  evs.push(buildTransfer(keys[0]!, env(500, T0 + 210_000), acct(keys[1]!), 10n ** 22n).bytes); // an overdraft: rejected
  evs.push(buildTransfer(keys[2]!, env(101, T0 + 220_000), acct(keys[3]!), 10n ** 12n).bytes);
  const late = buildTransfer(keys[3]!, env(600, T0 + 150_000), acct(keys[0]!), 3n * 10n ** 12n).bytes; // sorts before the tip
  return { evs, late };
}

describe('state hash of a fixed event set', () => {
  it('is main’s, taken in batches by a local caller', () => {
    const { evs, late } = events();
    const { ledger, cleanup } = openTempLedger();
    try {
      ledger.ingestMany(evs.slice(0, 20));
      ledger.ingestMany(evs.slice(20));
      ledger.ingest(late);
      const s = ledger.status();
      assert.equal(s.applied, 38);
      assert.equal(s.rejected, 1);
      assert.equal(ledger.stateHash(), MAIN_HASH);
    } finally {
      cleanup();
    }
  });

  it('is main’s, taken by the sync path in pages with a deferred replay', () => {
    const { evs, late } = events();
    const { ledger, cleanup } = openTempLedger();
    try {
      const all = [...evs, late];
      for (let i = 0; i < all.length; i += 16) ledger.ingestMany(all.slice(i, i + 16), { ingress: 'sync', nowMs: T0 + 300_000, deferReplay: true });
      ledger.flushReplay();
      assert.equal(ledger.stateHash(), MAIN_HASH);
    } finally {
      cleanup();
    }
  });
});
