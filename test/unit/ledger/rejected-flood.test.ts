/**
 * Review, session 26: a rejected event's settlements are rolled back (session 25, apply.ts), so an expired market
 * request stays unsettled after a rejected event, until an event is applied. precheckEvent admitted every network
 * event while one was ("a request expiring before ts refunds its requester first: rare, so just admit then"), so
 * every event the rules reject in that time was stored and relayed (issue 11 attack 5), where before session 25 the
 * first one settled the expiry and the next were dropped. Now the precheck takes the verdict by applying and undoing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildGenesis, buildMarketRequest, buildTransfer } from '../../../src/ledger/build.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, LAYERS, NET, T0, testKey } from './helpers.js';
import { RULES, G } from './network-fixture.js';

describe('ledger: rejected network events while an expired request waits to be settled', () => {
  it('are dropped and not relayed, and leave the state as it was', () => {
    const tmp = tempDir('rejected-flood');
    const l = new Ledger({ path: join(tmp.dir, 'ledger.db'), networkId: NET, modelLayers: LAYERS, rewards: RULES, checkInvariant: true });
    try {
      const A = testKey(9601);
      const D = testKey(9602);
      let t = T0 + 1000;
      const live = (b: Uint8Array, ts: number): string => l.ingest(b, { ingress: 'gossip', nowMs: ts + 500, deferReplay: true }).status;
      live(buildGenesis(G, { networkId: NET, timestampMs: t }).bytes, t);
      live(buildTransfer(G, env(1, (t += 1000)), acct(A), 1000n * NEURO).bytes, t);
      const expires = (t += 1000) + 60_000;
      live(buildMarketRequest(A, env(1, t), { maxTokens: 1000, maxPricePerMillion: 4n * NEURO, expiresAtMs: expires }).bytes, t);
      l.flushReplay();
      // past the expiry: D, with nothing, overdraws again and again
      t = expires + 10_000;
      const before = l.stateHash();
      const overdrafts = Array.from({ length: 20 }, (_, i) => buildTransfer(D, env(i + 1, (t += 100)), acct(A), 5n * NEURO));
      // not relayed (the gossip validator's question)
      assert.equal(l.stateVerdict(overdrafts[0]!), 'INSUFFICIENT_BALANCE');
      const results = overdrafts.map((e) => l.ingest(e.bytes, { ingress: 'gossip', nowMs: e.timestampMs + 500, deferReplay: true }));
      l.flushReplay();
      assert.deepEqual(
        results.map((r) => `${r.status}:${r.reason ?? ''}`),
        overdrafts.map(() => 'dropped:INSUFFICIENT_BALANCE'),
      );
      assert.equal(l.status().rejected, 0, 'none stored');
      assert.equal(l.stateHash(), before, 'the state as it was');
      // the next event that applies settles the expiry: A's escrow comes back
      const escrowed = l.status().escrowed;
      assert.ok(escrowed > 0n);
      assert.equal(live(buildTransfer(A, env(2, (t += 100)), acct(D), 1n * NEURO).bytes, t), 'applied');
      assert.equal(l.status().escrowed, 0n);
    } finally {
      l.close();
      tmp.cleanup();
    }
  });
});
