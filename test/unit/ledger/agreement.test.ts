/**
 * Agreement: ledgers holding the same events reach the same state hash whatever order the events arrived in, and
 * the supply invariant (balances + stakes + escrow + burned = minted) holds after every applied event, re-applied
 * ones included (the ledgers run with checkInvariant).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Ledger } from '../../../src/ledger/ledger.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../utils/paths.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { NET } from './helpers.js';
import { decodeEvent, orderKey, compareBytes } from '../../../src/ledger/events.js';

function feed(l: Ledger, events: Uint8Array[], batchSizes: () => number): void {
  for (let i = 0; i < events.length; ) {
    const n = Math.max(1, batchSizes());
    const batch = events.slice(i, i + n);
    if (batch.length === 1) l.ingest(batch[0]!);
    else l.ingestMany(batch);
    i += n;
  }
}

function canonical(events: Uint8Array[]): Uint8Array[] {
  const keyed = events.map((b) => {
    try {
      const e = decodeEvent(b);
      return { b, k: orderKey(e.timestampMs, e.id) };
    } catch {
      return { b, k: new Uint8Array(0) };
    }
  });
  return keyed.sort((x, y) => compareBytes(x.k, y.k)).map((x) => x.b);
}

describe('ledger agreement', () => {
  it('five ledgers fed the same 10,000 valid and invalid events in different orders agree, invariant throughout', () => {
    const t = tempDir('neuroshard-agree-');
    const ledgers: Ledger[] = [];
    try {
      const { events, counts } = generateTraffic(10_000, 20240101);
      assert.equal(events.length, 10_000);
      for (const k of ['proof', 'transfer', 'double-spend', 'proof-lie', 'slash-equivocation', 'market-complete', 'malleated', 'garbage']) {
        assert.ok((counts[k] ?? 0) > 10, `the generator made too few "${k}" events: ${counts[k]}`);
      }
      const rng = new Rng(7);
      const open = (name: string): Ledger => {
        const l = new Ledger({ path: join(t.dir, name), networkId: NET, modelLayers: GEN_LAYERS, checkInvariant: true });
        ledgers.push(l);
        return l;
      };
      // 1: canonical order, one event at a time (no rewinds)
      const l1 = open('1.db');
      feed(l1, canonical(events), () => 1);
      // 2: reverse order in batches of 700
      feed(open('2.db'), [...events].reverse(), () => 700);
      // 3: a random order in random batches of 1..1000
      feed(open('3.db'), rng.shuffle([...events]), () => 1 + rng.int(1000));
      // 4: generation order (jittered time), the first 300 one at a time (many single rewinds), then batches of 1000
      let fed = 0;
      feed(open('4.db'), events, () => (fed++ < 300 ? 1 : 1000));
      // 5: another random order, in two halves
      feed(open('5.db'), rng.shuffle([...events]), () => 5000);

      const s1 = l1.status();
      assert.ok(s1.applied > 3000, `applied ${s1.applied}`);
      assert.ok(s1.rejected > 100, `rejected ${s1.rejected}`);
      assert.ok(s1.void > 20, `void ${s1.void}`);
      assert.ok(s1.minted > 0n && s1.burned > 0n && s1.staked > 0n);
      for (const l of ledgers) {
        assert.deepEqual(l.status(), s1);
        assert.equal(l.supplyGap(), 0n);
      }
      assert.equal(l1.replayHash(), s1.stateHash);
    } finally {
      for (const l of ledgers) l.close();
      t.cleanup();
    }
  });

  it('property: any arrival order and batching gives the same state hash (small traffic, many orders)', () => {
    const t = tempDir('neuroshard-agree-prop-');
    try {
      const { events } = generateTraffic(400, 99);
      const ref = new Ledger({ path: join(t.dir, 'ref.db'), networkId: NET, modelLayers: GEN_LAYERS, checkInvariant: true });
      ref.ingestMany(events);
      const want = ref.stateHash();
      ref.close();
      let run = 0;
      fc.assert(
        fc.property(fc.array(fc.nat(), { minLength: events.length, maxLength: events.length }), fc.integer({ min: 1, max: 50 }), (perm, batch) => {
          const order = events.map((e, i) => ({ e, k: perm[i]! })).sort((a, b) => a.k - b.k).map((x) => x.e);
          const l = new Ledger({ path: join(t.dir, `p${run++}.db`), networkId: NET, modelLayers: GEN_LAYERS, checkInvariant: true });
          try {
            feed(l, order, () => batch);
            return l.stateHash() === want && l.supplyGap() === 0n;
          } finally {
            l.close();
          }
        }),
        { numRuns: 8, seed: 42 },
      );
    } finally {
      t.cleanup();
    }
  });
});
