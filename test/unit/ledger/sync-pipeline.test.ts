/**
 * Issue 11 §4 (ledger_events_per_s on a node's real sync path): LedgerService.syncFrom fetches the next pages and has
 * their signatures checked on the service's own verify pool (verify-pool.ts) while it ingests the pages before them. The verdicts,
 * stored rows and state hash are those of the plain path (signatures on the event loop), also for tampered,
 * malleated and garbage events; the pipeline holds at most LEDGER_SYNC_LIMITS.aheadPages pages ahead (one with
 * syncAheadPages 1), within the page budget and the held-bytes bound; the pool's workers start with the first
 * full page (a short sync never starts them) and exit on stop (no leak over restarts) and after an idle time.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compareBytes, decodeEvent, orderKey } from '../../../src/ledger/events.js';
import { LEDGER_SYNC_LIMITS } from '../../../src/ledger/interfaces.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { LedgerService, startNodeLedger } from '../../../src/ledger/service.js';
import { clearEventVerdicts } from '../../../src/ledger/verify.js';
import { liveVerifyWorkers } from '../../../src/ledger/verify-pool.js';
import { waitFor } from '../../../src/util/abort.js';
import { ManualClock } from '../../../src/util/clock.js';
import { tempDir } from '../../utils/paths.js';
import { evilPeer, proofRun, T0, tempLedger, testKey } from '../../attacks/helpers.js';
import { digestDb } from './db-digest.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { NET } from './helpers.js';

const PAGE = 512;

/** Generated traffic (valid and invalid) as a peer would page it: decodable events in canonical order, garbage inside pages. */
function pagedTraffic(total: number, seed: number): { pages: Uint8Array[][]; lastMs: number } {
  const { events } = generateTraffic(total, seed);
  const ok: { key: Uint8Array; bytes: Uint8Array; ts: number }[] = [];
  const bad: Uint8Array[] = [];
  for (const b of events) {
    try {
      const e = decodeEvent(b);
      ok.push({ key: orderKey(e.timestampMs, e.id), bytes: b, ts: e.timestampMs });
    } catch {
      bad.push(b);
    }
  }
  ok.sort((x, y) => compareBytes(x.key, y.key));
  // undecodable events inside pages, never last (a page's last event is the cursor of the next one)
  const pages: Uint8Array[][] = [];
  let gi = 0;
  let oi = 0;
  while (oi < ok.length) {
    const page: Uint8Array[] = [];
    while (page.length < PAGE - 1 && oi < ok.length - 1) page.push(gi < bad.length && page.length % 37 === 5 ? bad[gi++]! : ok[oi++]!.bytes);
    page.push(ok[oi++]!.bytes);
    pages.push(page);
  }
  assert.equal(gi, bad.length, 'every undecodable event is served');
  return { pages, lastMs: ok[ok.length - 1]!.ts };
}

/** A peer serving `events` (in canonical order) by cursor, as an honest one does. */
function cursorPeer(events: Uint8Array[], onCall?: (call: number, after: Uint8Array | null) => void) {
  const ends = new Map<string, number>();
  events.forEach((b, i) => {
    const e = decodeEvent(b);
    ends.set(Buffer.from(orderKey(e.timestampMs, e.id)).toString('hex'), i + 1);
  });
  return evilPeer((call, after) => {
    onCall?.(call, after);
    const from = after === null ? 0 : ends.get(Buffer.from(after).toString('hex'))!;
    return events.slice(from, from + PAGE);
  });
}

describe('sync pipeline: pages fetched ahead, signatures on the verify pool', () => {
  it('gives the verdicts, rows and state hash of the plain path on valid and invalid traffic', async () => {
    const t = tempDir('neuroshard-syncpool-');
    const { pages, lastMs } = pagedTraffic(1800, 20_261_203);
    assert.ok(pages.length >= 3 && pages[pages.length - 1]!.length < PAGE);
    const run = async (name: string, threads: number) => {
      const path = join(t.dir, `${name}.db`);
      const ledger = new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS, checkInvariant: true });
      const peer = evilPeer((call) => pages[call - 1] ?? []);
      const service = new LedgerService({ ledger, network: peer, clock: new ManualClock(lastMs + 60_000), verifyThreads: threads });
      const results: unknown[] = [];
      service.on('ledger:ingested', ({ result }) => results.push(result));
      await service.startVerifyPool(); // every page on the pool (a sync otherwise checks pages at ingest until it is up)
      clearEventVerdicts(); // each path verifies from cold
      const r = await service.syncFrom('peer');
      const workers = service.verifyWorkers;
      const hash = ledger.stateHash();
      service.stop();
      await service.closed();
      ledger.close();
      return { r, results, workers, hash, digest: digestDb(path, 'meta'), calls: peer.calls, pooledPages: service.pooledPages };
    };
    try {
      const plain = await run('plain', 0);
      const pooled = await run('pooled', 2);
      assert.equal(plain.workers, 0);
      assert.equal(pooled.workers, 2, 'the sync ran on the verify pool');
      assert.equal(pooled.pooledPages, pages.length, 'every page went to the pool');
      assert.equal(plain.pooledPages, 0);
      assert.deepEqual(pooled.r, plain.r);
      assert.equal(plain.r.complete, true);
      assert.deepEqual(pooled.results, plain.results, 'every event judged alike, in the same order');
      const dropped = plain.results.filter((x) => (x as { status: string }).status === 'dropped').length;
      assert.ok(dropped > 20 && plain.r.added > 1000, `valid and invalid traffic (${plain.r.added} added, ${dropped} dropped)`);
      assert.equal(pooled.hash, plain.hash);
      assert.equal(pooled.digest, plain.digest, 'identical ledger.db rows');
      assert.equal(pooled.calls, plain.calls);
      assert.equal(liveVerifyWorkers(), 0, 'stop ended the workers');
    } finally {
      t.cleanup();
    }
  });

  it('with one page ahead (syncAheadPages 1): fetches page n + 1 before ingesting page n, never two pages ahead', async () => {
    const { ledger, done } = tempLedger();
    const M = testKey(9731);
    const now = T0 + 86_400_000;
    const events = proofRun(M, now - 3_600_000 - 1800 * 60_000, 1800);
    const log: string[] = [];
    let ingestedPages = 0;
    let maxAhead = 0;
    const peer = evilPeer((call) => {
      log.push(`fetch ${call}`);
      maxAhead = Math.max(maxAhead, call - ingestedPages - 1);
      return events.slice((call - 1) * PAGE, call * PAGE);
    });
    // one transaction per page, so that each page's ingest is seen on its own
    const service = new LedgerService({ ledger, network: peer, clock: new ManualClock(now), verifyThreads: 1, syncCommitPages: 1, syncAheadPages: 1 });
    let inPage = 0;
    service.on('ledger:ingested', () => {
      if (inPage === 0) log.push(`ingest ${ingestedPages + 1}`);
      if (++inPage === Math.min(PAGE, events.length - ingestedPages * PAGE)) {
        inPage = 0;
        ingestedPages++;
      }
    });
    try {
      const r = await service.syncFrom('peer');
      assert.deepEqual(r, { received: 1800, added: 1800, complete: true });
      assert.deepEqual(log, ['fetch 1', 'fetch 2', 'ingest 1', 'fetch 3', 'ingest 2', 'fetch 4', 'ingest 3', 'ingest 4']);
      assert.equal(maxAhead, 1, 'at most one page fetched ahead of the one being ingested');
    } finally {
      service.stop();
      await service.closed();
      done();
    }
  });

  it('keeps the page budget (no page fetched past it), and an abort resumes after the last ingested page', async () => {
    const { ledger, done } = tempLedger();
    const M = testKey(9732);
    const now = T0 + 86_400_000;
    const events = proofRun(M, now - 3_600_000 - 5 * PAGE * 60_000, 5 * PAGE);
    const afters: (string | null)[] = [];
    const ac = new AbortController();
    const peer = cursorPeer(events, (call, after) => {
      afters.push(after === null ? null : Buffer.from(after).toString('hex'));
      if (call === 3) ac.abort(); // page 3 is fetched ahead while page 2 waits for its ingest
    });
    const service = new LedgerService({ ledger, network: peer, clock: new ManualClock(now), verifyThreads: 1, syncBudget: { maxPages: 3 }, syncCommitPages: 1, syncAheadPages: 1 });
    try {
      await assert.rejects(service.syncFrom('peer', { signal: ac.signal }), /abort/i);
      assert.equal(ledger.status().events, 2 * PAGE, 'the pages fetched before the abort were taken; the one fetched ahead was not');
      const r = await service.syncFrom('peer');
      assert.equal(afters[3], afters[2], 'the next sync asked again for the page fetched ahead and dropped');
      assert.deepEqual(r, { received: 3 * PAGE, added: 3 * PAGE, complete: false }, 'three pages is the budget');
      assert.equal(peer.calls, 6, 'no page fetched ahead past the budget');
    } finally {
      service.stop();
      await service.closed();
      done();
    }
  });

  it('fetches up to aheadPages pages ahead of the store (the next batch is on the workers during a commit), within the page budget and the held-bytes bound', async () => {
    const M = testKey(9734);
    const now = T0 + 86_400_000;
    const N = 9 * PAGE + 100;
    const events = proofRun(M, now - 3_600_000 - N * 60_000, N);
    const sync = async (opts: { maxPages?: number; maxHeldBytes?: number }) => {
      const { ledger, done } = tempLedger();
      let ingested = 0;
      let maxAhead = 0;
      const peer = evilPeer((call) => {
        // pages fetched beyond the last fully stored one, this request's page included
        maxAhead = Math.max(maxAhead, call - Math.floor(ingested / PAGE) - 1);
        return events.slice((call - 1) * PAGE, call * PAGE);
      });
      const service = new LedgerService({
        ledger,
        network: peer,
        clock: new ManualClock(now),
        verifyThreads: 1,
        ...(opts.maxPages !== undefined ? { syncBudget: { maxPages: opts.maxPages } } : {}),
        ...(opts.maxHeldBytes !== undefined ? { syncMaxHeldBytes: opts.maxHeldBytes } : {}),
      });
      service.on('ledger:ingested', () => ingested++);
      try {
        const r = await service.syncFrom('peer');
        return { r, maxAhead, calls: peer.calls, events: ledger.status().events };
      } finally {
        service.stop();
        await service.closed();
        done();
      }
    };
    const AHEAD = LEDGER_SYNC_LIMITS.aheadPages;
    const BATCH = LEDGER_SYNC_LIMITS.commitPages;
    const all = await sync({});
    assert.deepEqual(all.r, { received: N, added: N, complete: true });
    assert.equal(all.calls, 10, 'each page fetched once');
    assert.ok(all.maxAhead > 1 && all.maxAhead <= BATCH + AHEAD, `pages ahead of the store: ${all.maxAhead} (held ${BATCH} + ahead ${AHEAD} at most)`);
    const budget = await sync({ maxPages: 3 });
    assert.deepEqual(budget.r, { received: 3 * PAGE, added: 3 * PAGE, complete: false });
    assert.equal(budget.calls, 3, 'no page fetched ahead past the budget');
    // a bound below one page: a page is stored as soon as it is held, and none is fetched while one is held or ahead
    const tight = await sync({ maxHeldBytes: 1 });
    assert.deepEqual(tight.r, { received: N, added: N, complete: true });
    assert.equal(tight.maxAhead, 1, 'the held-bytes bound counts the pages ahead');
  });

  it('the pool starts with the first full page and its workers exit on stop, restart after restart, and when idle', async () => {
    const t = tempDir('neuroshard-syncpool-');
    const M = testKey(9733);
    const now = T0 + 86_400_000;
    const events = proofRun(M, now - 3_600_000 - 700 * 60_000, 700);
    try {
      const before = liveVerifyWorkers();
      for (let i = 0; i < 3; i++) {
        const peer = evilPeer((call) => events.slice((call - 1) * PAGE, call * PAGE));
        const n = await startNodeLedger({ dataDir: join(t.dir, `n${i}`), networkId: NET, modelLayers: 8, network: peer, clock: new ManualClock(now), verifyThreads: 2 });
        assert.equal(n.ledger.status().events, 700);
        assert.equal(n.service.verifyWorkers, 2, 'the start sync ran the pool');
        assert.equal(liveVerifyWorkers(), before + 2);
        n.stop();
        await n.service.closed();
        assert.equal(liveVerifyWorkers(), before, `start ${i + 1}: no worker left after stop`);
      }
      const { ledger, done } = tempLedger();
      const service = new LedgerService({ ledger, network: evilPeer((call) => events.slice((call - 1) * PAGE, call * PAGE)), clock: new ManualClock(now), verifyThreads: 1, verifyIdleMs: 50 });
      const short = tempLedger();
      try {
        // a short sync (one page of 100, as a tail sync) is checked at ingest: starting workers would cost more
        const tail = new LedgerService({ ledger: short.ledger, network: evilPeer((call) => (call === 1 ? events.slice(0, 100) : [])), clock: new ManualClock(now), verifyThreads: 1 });
        assert.deepEqual(await tail.syncFrom('peer'), { received: 100, added: 100, complete: true });
        assert.equal(tail.verifyWorkers, 0, 'a short sync starts no worker');
        tail.stop();
        assert.equal(service.verifyWorkers, 0, 'no worker before the first sync');
        await service.syncFrom('peer');
        assert.equal(service.verifyWorkers, 1);
        await waitFor(() => service.verifyWorkers === 0, { timeoutMs: 5000, what: 'the idle pool closed' });
        await service.closed();
        assert.equal(liveVerifyWorkers(), before);
      } finally {
        service.stop();
        done();
        short.done();
      }
    } finally {
      t.cleanup();
    }
  });
});
