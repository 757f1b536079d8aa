/**
 * Attack 3 (issue 11): endless sync. A peer answers every range call with a full page whose cursor moves forward,
 * forever. Before, syncFrom had no bound on pages, events or time, node start awaited it, and every
 * reconciliation queued behind it; a peer streaming valid events also filled the disk. Now one syncFrom takes at
 * most a budget of pages and time and resumes later, the start sync has its own deadline, and the database has a
 * disk quota past which events from the network are dropped (QUOTA). Success = a sync that did not return within
 * its budget, or storage past the quota.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EventKind } from '../../src/ledger/events.js';
import { LedgerService, startNodeLedger } from '../../src/ledger/service.js';
import { ManualClock } from '../../src/util/clock.js';
import { tempDir } from '../utils/paths.js';
import { tally } from './tally.js';
import { acct, evilPeer, forge, LAYERS, NET, proofRun, T0, tempLedger, testKey } from './helpers.js';

const NOW = T0 + 86_400_000;
const M = testKey(9201);

/** A full page of well-formed events dated after our clock (dropped FUTURE), starting `call` pages in. */
function futurePage(call: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < 512; i++) {
    const ts = NOW + 3_600_000 + (call * 512 + i) * 10;
    out.push(forge({ networkId: NET, signer: M.publicKey, nonce: BigInt(call * 512 + i), timestampMs: ts, body: { kind: EventKind.Transfer, to: acct(testKey(1)), amount: 1n, fee: 1n } }));
  }
  return out;
}

describe('attack 3: endless sync', () => {
  it('stops a sync at its page budget and resumes it where it stopped', async () => {
    const { ledger, done } = tempLedger();
    const afters: (Uint8Array | null)[] = [];
    const net = evilPeer((call, after) => {
      afters.push(after);
      return futurePage(call);
    });
    try {
      const service = new LedgerService({ ledger, network: net, clock: new ManualClock(NOW), syncBudget: { maxPages: 20 } });
      const r1 = await service.syncFrom('evil');
      const r2 = await service.syncFrom('evil');
      tally('endless sync (pages)', r1.received + r2.received, (r1.complete ? 1 : 0) + (r2.complete ? 1 : 0) + ledger.status().events);
      assert.deepEqual([r1.received, r1.complete, r2.received, r2.complete], [20 * 512, false, 20 * 512, false]);
      assert.equal(net.calls, 40);
      assert.notEqual(afters[20], null, 'the second sync resumed after the first one stopped');
      assert.equal(ledger.status().events, 0);
    } finally {
      done();
    }
  });

  it('stops a slow endless sync at its time budget, and node start returns within its start budget', async () => {
    const t = tempDir('neuroshard-endless-');
    const net = evilPeer((call) => futurePage(call));
    const slow = { ...net, fetchRange: async (p: string, a: Uint8Array | null) => {
      await new Promise((r) => setTimeout(r, 20));
      return net.fetchRange(p, a, 512, {});
    } };
    const { ledger, done } = tempLedger();
    try {
      const service = new LedgerService({ ledger, network: slow, clock: new ManualClock(NOW), syncBudget: { maxMs: 300 } });
      const r = await service.syncFrom('evil');
      assert.equal(r.complete, false);
      const started = await startNodeLedger({ dataDir: join(t.dir, 'n'), networkId: NET, modelLayers: LAYERS, network: slow, clock: new ManualClock(NOW), startSyncMs: 300 });
      started.stop();
      tally('endless sync (time)', net.calls * 512, 0);
    } finally {
      done();
      t.cleanup();
    }
  });

  it('stores valid spam from sync only up to the disk quota, then drops it (QUOTA)', async () => {
    const quota = 256 * 1024;
    const { ledger, path, done } = tempLedger({ maxBytes: quota });
    // valid history a peer may serve: one proof a window (what is rejected at its place is no longer stored at
    // all, attack 5; what is valid still counts against the quota)
    const spam = proofRun(M, NOW - 3_600_000 - 2048 * 60_000, 2048);
    const net = evilPeer((call) => spam.slice((call - 1) * 512, call * 512));
    try {
      const service = new LedgerService({ ledger, network: net, clock: new ManualClock(NOW) });
      await service.syncFrom('evil');
      const s = ledger.status();
      const size = statSync(path).size + (statSync(path + '-wal', { throwIfNoEntry: false })?.size ?? 0);
      tally('sync disk fill', spam.length, 0);
      assert.ok(s.events < spam.length, `the quota stopped the spam (${s.events} stored)`);
      assert.ok(ledger.work.refused > 0);
      // one batch may land after the check that found room: at most one page over the quota
      assert.ok(size <= quota + 512 * 1024, `database ${size} bytes for a quota of ${quota}`);
    } finally {
      done();
    }
  });
});
