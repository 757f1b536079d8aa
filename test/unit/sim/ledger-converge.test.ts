/**
 * The offline convergence check of stopped nodes' ledgers (src/sim/ledger-converge.ts, scripts/chaos.mjs stage 8):
 * what it reports for events in flight at the stop, for an event an admission rule keeps from one node, and that it
 * leaves equal ledgers equal.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeEvent } from '../../../src/ledger/events.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { convergeLedgers, copyLedgerFiles, latestDate } from '../../../src/sim/ledger-converge.js';
import { tempDir } from '../../utils/paths.js';
import { LAYERS, NET } from '../ledger/helpers.js';
import { networkHistory, RULES } from '../ledger/network-fixture.js';

const OPTS = { networkId: NET, modelLayers: LAYERS, rewards: RULES };

/** Three ledgers fed `events` by a trusted caller, but `lacking[i]` (indexes into events) left out of ledger i. */
function build(dir: string, events: readonly Uint8Array[], lacking: number[][], opts: { watch?: number[] } = {}): { name: string; path: string }[] {
  return lacking.map((skip, i) => {
    const path = join(dir, `n${i}`, 'ledger.db');
    const l = new Ledger({ ...OPTS, path });
    try {
      events.forEach((b, k) => {
        if (!skip.includes(k)) l.ingest(b);
      });
      if (opts.watch !== undefined) for (const w of opts.watch) l.markWatched(w);
    } finally {
      l.close();
    }
    return { name: `n${i}`, path };
  });
}

describe('ledger convergence check (offline)', () => {
  const h = networkHistory();
  const ts = h.events.map((b) => decodeEvent(b).timestampMs);
  const last = h.events.length - 1;

  it('equal ledgers: nothing missing, nothing delivered, hashes equal before and after', () => {
    const t = tempDir('neuroshard-conv-');
    try {
      const copies = build(t.dir, h.events, [[], [], []]);
      const r = convergeLedgers(copies, OPTS);
      assert.equal(r.rawEqual, true);
      assert.equal(r.missing.pairs, 0);
      assert.equal(r.rounds, 0);
      assert.equal(r.convergedEqual, true);
      assert.deepEqual(r.refusals, []);
      assert.deepEqual(r.verdictDiffs, []);
    } finally {
      t.cleanup();
    }
  });

  it('events in flight at the stop: reported (count, kinds, age before the stop), delivered, then equal', () => {
    const t = tempDir('neuroshard-conv-');
    try {
      // n1 lacks the last transfer, n2 the last two events (the unstake and the transfer after it)
      const copies = build(t.dir, h.events, [[], [last], [last - 1, last]]);
      const stopMs = ts[last]! + 2000;
      const r = convergeLedgers(copies, { ...OPTS, stopMs });
      assert.equal(r.rawEqual, false);
      assert.equal(r.missing.pairs, 3);
      assert.equal(r.missing.events, 2);
      assert.deepEqual(r.missing.kinds, { transfer: 2, unstake: 1 });
      assert.equal(r.missing.oldestAgeMs, stopMs - ts[last - 1]!);
      assert.deepEqual(r.missing.list.map((m) => m.lackedBy), [['n2'], ['n1', 'n2']]);
      assert.deepEqual(r.missing.list[1]!.heldBy, ['n0']);
      assert.deepEqual(r.delivered, { gossip: 3, sync: 0 });
      assert.equal(r.convergedEqual, true, JSON.stringify(r));
      assert.equal(r.convergedHashes.n1, r.rawHashes.n0);
      assert.deepEqual(r.refusals, []);
    } finally {
      t.cleanup();
    }
  });

  it('a missing event older than the live window goes by the sync path; a dependent comes after what it spends', () => {
    const t = tempDir('neuroshard-conv-');
    try {
      // n1 lacks A→D and D→C (which spends it), both dated more than 5 min before the stop
      const ad = h.labels.indexOf('A to D');
      const dc = h.labels.indexOf('D to C (spends A to D)');
      const copies = build(t.dir, h.events, [[], [ad, dc], []]);
      const r = convergeLedgers(copies, { ...OPTS, stopMs: ts[last]! + 1000 });
      assert.equal(r.missing.pairs, 2);
      assert.deepEqual(r.delivered, { gossip: 0, sync: 2 });
      assert.equal(r.convergedEqual, true, JSON.stringify(r));
      assert.deepEqual(r.refusals, []);
    } finally {
      t.cleanup();
    }
  });

  it('an event an admission rule keeps from one node is reported as a refusal with its reason, and the hashes stay different', () => {
    const t = tempDir('neuroshard-conv-');
    try {
      // n1 watched the network through the last transfer's date and its horizon is 1 min: that transfer, dated
      // 10 min before the stop, is older than the live window and inside watched time, so sync refuses it (STALE)
      const stopMs = ts[last]! + 10 * 60_000;
      const copies = build(t.dir, h.events, [[], [last], []], { watch: [ts[last]! - 60_000, ts[last]! + 60_000, ts[last]! + 120_000, stopMs] });
      const r = convergeLedgers(copies, { ...OPTS, stopMs, syncHorizonMs: 60_000 });
      assert.equal(r.convergedEqual, false);
      assert.equal(r.refusals.length, 1);
      const f = r.refusals[0]!;
      assert.equal(f.node, 'n1');
      assert.equal(f.reason, 'STALE');
      assert.equal(f.path, 'sync');
      assert.match(f.explanation, /watched time for sync/);
      assert.equal(f.ageMs, 10 * 60_000);
      assert.deepEqual(f.heldBy, { n0: 'applied', n2: 'applied' });
    } finally {
      t.cleanup();
    }
  });

  it('copyLedgerFiles copies the database with its WAL', () => {
    const t = tempDir('neuroshard-conv-');
    try {
      const [c] = build(t.dir, h.events.slice(0, 3), [[]]);
      const l = new Ledger({ ...OPTS, path: c!.path }); // held open: its WAL is on disk
      try {
        const p = copyLedgerFiles(join(t.dir, 'n0'), join(t.dir, 'copy'));
        assert.ok(existsSync(p));
        const r = convergeLedgers([{ name: 'a', path: c!.path }, { name: 'b', path: p }], OPTS);
        assert.equal(r.rawEqual, true);
      } finally {
        l.close();
      }
    } finally {
      t.cleanup();
    }
  });
});

describe('ledger convergence check: the default stop time', () => {
  it('is the latest event date, for as many events as a long-lived network holds (review, session 26)', () => {
    // Math.max(0, ...dates) threw RangeError from ~150,000 events on Node 20
    const held = Array.from({ length: 300_000 }, (_, i) => ({ e: { timestampMs: 1_000_000 + ((i * 7919) % 300_000) } }));
    assert.equal(latestDate(held), 1_000_000 + 299_999);
    assert.equal(latestDate([]), 0);
  });
});
