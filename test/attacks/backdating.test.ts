/**
 * Attack 1 (issue 11): backdating. A fresh key signs proofs dated long ago (one per 60 s window, so every per-window
 * and daily cap is fresh) and feeds them through every way into a node: sync pages, by-id fetches, gossip, a local
 * submission and the wallet outbox. Before, sync admitted any date in the past, and one key minted 300,000 NEURO
 * in 14 s of ingest. Now every path applies admission (src/ledger/admission.ts): live paths the 5-minute window,
 * sync and fetch refuse history from time this node watched. Success for the attacker = any of its events stored,
 * or any NEURO minted to it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { toHex } from '../../src/util/bytes.js';
import { WATCH_GAP_MS } from '../../src/ledger/admission.js';
import { decodeEvent } from '../../src/ledger/events.js';
import { outboxPath } from '../../src/ledger/outbox.js';
import { LedgerService } from '../../src/ledger/service.js';
import { waitFor } from '../../src/util/abort.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';
import { acct, evilPeer, proofRun, T0, tempLedger, testKey } from './helpers.js';

const DAY = 86_400_000;
const NOW = T0 + 30 * DAY;
/** 2001-09-09: long before the network. */
const Y2001 = 1_000_000_000_000;

describe('attack 1: backdating through every ingress path', () => {
  it('refuses backdated proofs by sync, fetch, gossip, submit and outbox; admits honest history of a gap it did not watch', async () => {
    const { ledger, dir, done } = tempLedger();
    const M = testKey(9001);
    const H = testKey(9002);
    // The victim watched the network for the last two days, except six hours yesterday (it was down).
    const down = { from: NOW - DAY, to: NOW - DAY + 6 * 3_600_000 };
    for (let t = NOW - 2 * DAY; t <= NOW; t += WATCH_GAP_MS) if (t < down.from || t > down.to) ledger.markWatched(t);
    assert.equal(ledger.watched().length, 2);

    const ancient = proofRun(M, Y2001, 2048);
    const watched = proofRun(M, NOW - 2 * DAY + 3_600_000, 1024, 5000);
    const pages = [...chunks(ancient, 512), ...chunks(watched, 512)];
    const net = evilPeer((call) => pages[call - 1] ?? []);
    const clock = new ManualClock(NOW);
    const service = new LedgerService({ ledger, network: net, clock, dataDir: dir, outboxPollMs: 10 });
    service.start();
    try {
      // sync: 3,072 events in 6 pages
      const r = await service.syncFrom('evil', { fromStart: true });
      assert.equal(r.received, 3072);
      assert.equal(r.added, 0);
      // fetch by id, gossip, submit, outbox: 100 each of the backdated proofs
      net.byIds = watched.slice(0, 100);
      const fetched = await service.fetchByIds('evil', net.byIds.map((b) => decodeEvent(b).id));
      assert.ok(fetched.every((x) => x.status === 'dropped' && x.reason === 'STALE'));
      for (const b of watched.slice(100, 200)) net.gossip(b);
      for (const b of watched.slice(200, 300)) assert.equal((await service.submit(b)).reason, 'STALE');
      mkdirSync(join(outboxPath(dir), 'done'), { recursive: true });
      const viaOutbox = watched.slice(300, 400);
      for (const b of viaOutbox) writeFileSync(join(outboxPath(dir), `${toHex(decodeEvent(b).id)}.event`), b);
      await service.drainOutbox();

      let stored = 0;
      for (const b of [...ancient, ...watched]) if (ledger.eventStatus(decodeEvent(b).id) !== undefined) stored++;
      const minted = ledger.account(acct(M)).balance;
      tally('backdating', 3072 + 400, stored + (minted > 0n ? 1 : 0));
      assert.equal(stored, 0);
      assert.equal(minted, 0n);
      assert.equal(ledger.status().minted, 0n);

      // Positive control: an honest node's proofs from the six hours the victim was down arrive by sync and count.
      const honest = proofRun(H, down.from + 60_000, 300);
      const net2 = evilPeer((call) => (call === 1 ? honest : []));
      const s2 = new LedgerService({ ledger, network: net2, clock });
      const r2 = await s2.syncFrom('evil', { fromStart: true });
      assert.equal(r2.added, 300);
      assert.ok(ledger.account(acct(H)).balance > 0n);
    } finally {
      service.stop();
      done();
    }
  });

  it('a node that never watched (fresh) takes history from sync: the gap checkpoints close (documented)', async () => {
    const { ledger, done } = tempLedger();
    const H = testKey(9003);
    try {
      const service = new LedgerService({ ledger, network: evilPeer((call) => (call === 1 ? proofRun(H, T0, 10) : [])), clock: new ManualClock(NOW) });
      assert.equal((await service.syncFrom('evil')).added, 10);
      await waitFor(() => !ledger.replayPending(), { timeoutMs: 5000, what: 'replay' });
    } finally {
      done();
    }
  });
});

function chunks<T>(a: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
  return out;
}
