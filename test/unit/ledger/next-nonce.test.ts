/**
 * Ledger.nextNonce's cache (issue 11 §4): every answer equals the database's (a ledger opened afresh on the same
 * file, which has no cache), after inserts in and out of order, and after a replay removes a rejected network event
 * (the highest nonce goes down then).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { EventKind } from '../../../src/ledger/events.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { tempDir } from '../../utils/paths.js';
import { join } from 'node:path';
import { acct, env, LAYERS, NET, T0, testKey } from './helpers.js';

const A = testKey(4101);
const B = testKey(4102);

describe('Ledger.nextNonce cache', () => {
  it('answers what the database holds after inserts, late events and a removal at replay', () => {
    const t = tempDir('neuroshard-nonce-');
    const path = join(t.dir, 'ledger.db');
    const ledger = new Ledger({ path, networkId: NET, modelLayers: LAYERS });
    const fresh = (signer: Uint8Array): bigint => {
      const l = new Ledger({ path, networkId: NET, modelLayers: LAYERS, readonly: true });
      try {
        return l.nextNonce(signer, EventKind.Transfer);
      } finally {
        l.close();
      }
    };
    const check = (what: string, a: bigint, b: bigint): void => {
      assert.equal(ledger.nextNonce(A.publicKey, EventKind.Transfer), a, `${what}: A`);
      assert.equal(ledger.nextNonce(B.publicKey, EventKind.Transfer), b, `${what}: B`);
      assert.equal(fresh(A.publicKey), a, `${what}: A in the database`);
      assert.equal(fresh(B.publicKey), b, `${what}: B in the database`);
    };
    try {
      check('empty', 0n, 0n); // cached: zero
      // local events from an unfunded key are stored (rejected) and raise the cached answer
      for (const n of [1, 2, 5]) ledger.ingest(buildTransfer(A, env(n, T0 + n * 1000), acct(B), NEURO).bytes);
      check('after A 1, 2, 5', 6n, 0n);
      ledger.ingest(buildTransfer(A, env(3, T0 + 10_000), acct(B), NEURO).bytes);
      check('a lower nonce later', 6n, 0n);
      assert.equal(ledger.nextNonce(A.publicKey, EventKind.Stake), 0n, 'another kind');
      // a synced event from B dated before the tip: stored pending (raising B's answer), then rejected at its place by
      // the replay (B has nothing) and removed: the answer goes back down
      const r = ledger.ingest(buildTransfer(B, env(9, T0 + 500), acct(A), NEURO).bytes, { ingress: 'sync', nowMs: T0 + 60_000, deferReplay: true });
      assert.equal(r.status, 'pending');
      check('B pending', 6n, 10n);
      ledger.flushReplay();
      assert.equal(ledger.eventStatus(buildTransfer(B, env(9, T0 + 500), acct(A), NEURO).id), undefined, 'removed at replay');
      check('B removed', 6n, 0n);
    } finally {
      ledger.close();
      t.cleanup();
    }
  });
});
