/**
 * Attack 5 (issue 11): free permanent storage. Events that pass the stateless checks used to be stored forever even
 * when the state rules rejected them, relayed on gossip and served to every new node: 20,001 market claims from a
 * key with no balance took 20 MB everywhere. Now an event from the network that its state rules reject at its
 * place is dropped, not stored (in order at once; sorting before the tip, when the deferred replay reaches its
 * place), the gossip validator does not relay it (Ledger.stateVerdict), and sync never serves a rejected event.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { describe, it } from 'node:test';
import { NEURO } from '../../src/ledger/amount.js';
import { buildMarketClaim, buildMarketRequest, buildStake, buildTransfer, buildUnstake } from '../../src/ledger/build.js';
import { decodeEvent } from '../../src/ledger/events.js';
import { LedgerService } from '../../src/ledger/service.js';
import { waitFor } from '../../src/util/abort.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';
import { acct, env, evilPeer, proofRun, T0, tempLedger, testKey } from './helpers.js';

const M = testKey(9501); // the spammer: no balance, no stake
const H = testKey(9502); // an honest node with history
const R = testKey(9503);

/** Bytes the database keeps in use (pages less free pages), after folding the WAL into it. */
function dbBytes(path: string): number {
  const db = new Database(path);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pages = Number(db.pragma('page_count', { simple: true })) - Number(db.pragma('freelist_count', { simple: true }));
    return pages * Number(db.pragma('page_size', { simple: true }));
  } finally {
    db.close();
  }
}

/** `n` stateless-valid events of M that its state (nothing) rejects, dated from `from` on, 1 ms apart. */
function spam(n: number, from: number, nonce0: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const rid = new Uint8Array(32).fill(7);
  for (let i = 0; i < n; i++) {
    const e = env(nonce0 + i, from + i);
    switch (i % 6) {
      case 0:
      case 1:
        out.push(buildTransfer(M, e, acct(H), NEURO).bytes);
        break;
      case 2:
        out.push(buildStake(M, e, NEURO, 30).bytes);
        break;
      case 3:
        out.push(buildUnstake(M, e, NEURO).bytes);
        break;
      case 4:
        out.push(buildMarketRequest(M, e, { maxTokens: 1000, maxPricePerMillion: 2n * NEURO, expiresAtMs: from + i + 60_000 }).bytes);
        break;
      default:
        out.push(buildMarketClaim(M, e, rid).bytes);
    }
  }
  return out;
}

describe('attack 5: free permanent storage', () => {
  it('12,000 stateless-valid events from a key with nothing, by gossip (in order and late) and by sync: none stored, relayed or served', async () => {
    const { ledger, path, done } = tempLedger();
    try {
      // some honest history, so there is a tip and state
      ledger.ingestMany(proofRun(H, T0, 30));
      const now = T0 + 31 * 60_000;
      const net = evilPeer(() => []);
      const service = new LedgerService({ ledger, network: net, clock: new ManualClock(now) });
      service.start();
      const before = dbBytes(path);
      const eventsBefore = ledger.status().events;

      // 1. in order, by gossip: each would have been stored as rejected
      const live = spam(6000, now - 10_000, 0);
      // what the gossip validator would relay (it asks stateVerdict after the signature check)
      const relayed = live.filter((b) => ledger.stateVerdict(decodeEvent(b)) === null).length;
      for (const b of live) net.gossip(b);
      // 2. late, by gossip: dated before the tip (within the live window), stored pending, judged at their place
      ledger.ingestMany(proofRun(R, now - 60_000, 1)); // moves the tip past them
      const late = spam(3000, now - 4 * 60_000, 10_000);
      for (const b of late) net.gossip(b);
      await waitFor(() => !ledger.replayPending(), { timeoutMs: 60_000, what: 'the late spam is judged' });
      // 3. by sync, from a peer that serves it as history
      const hist = spam(3000, T0 - 3_600_000, 20_000);
      const peer = evilPeer((call) => hist.slice((call - 1) * 512, call * 512));
      const syncer = new LedgerService({ ledger, network: peer, clock: new ManualClock(now) });
      await syncer.syncFrom('evil');

      const all = [...live, ...late, ...hist];
      const stored = all.filter((b) => ledger.eventStatus(decodeEvent(b).id) !== undefined).length;
      const served = ledger.syncHandler().range(null, 100_000).filter((b) => decodeEvent(b).signer.every((x, i) => x === M.publicKey[i])).length;
      const growth = dbBytes(path) - before;
      tally('rejected spam stored', all.length, stored);
      tally('rejected spam relayed', live.length, relayed);
      tally('rejected spam served', all.length, served);
      assert.equal(stored, 0, 'no spam event is stored');
      assert.equal(served, 0, 'sync serves none of it');
      assert.equal(relayed, 0, 'the validator relays none of it');
      assert.equal(ledger.status().events, eventsBefore + 1, 'only the honest proof was added');
      assert.ok(growth < 64 * 1024, `database grew ${growth} bytes for ${all.length} spam events`);
      service.stop();
    } finally {
      done();
    }
  });

  it('an honest event rejected only for want of an earlier one arrives again when that one has: kept then', () => {
    const { ledger, done } = tempLedger();
    try {
      ledger.ingestMany(proofRun(H, T0, 2)); // H earns
      const t = T0 + 3 * 60_000;
      const pay = buildTransfer(H, env(0, t), acct(M), 10n ** 15n);
      const spend = buildTransfer(M, env(0, t + 1000), acct(R), 10n ** 14n);
      // M's spend arrives first: M has nothing yet, so it is dropped (not stored, nonce not taken)
      assert.deepEqual(ledger.ingest(spend.bytes, { ingress: 'gossip', nowMs: t + 2000 }).status, 'dropped');
      assert.equal(ledger.ingest(pay.bytes, { ingress: 'gossip', nowMs: t + 2000 }).status, 'applied');
      // re-sent (the wallet resubmits; a peer that holds it serves it in a tail sync): now it applies
      assert.equal(ledger.ingest(spend.bytes, { ingress: 'gossip', nowMs: t + 2000 }).status, 'applied');
    } finally {
      done();
    }
  });
});
