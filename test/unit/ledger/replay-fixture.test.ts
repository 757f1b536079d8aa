/**
 * Bit-identical replay (issue 11 §4, the ingest speed work): a fixed, seeded log of 6,000 valid and invalid events
 * is fed to fresh ledgers in three ways (as generated in batches of 256, which rewinds on the generator's jitter;
 * in reverse with deferred replay and one flush; in canonical order one at a time), and the state hash, the
 * totals and a digest of everything the database holds (every event row with its verdict, the state rows, the
 * meta tip) must equal the values recorded from the code BEFORE the ingest path was optimised. A speed change that
 * alters any verdict, amount, stored byte or state row fails here.
 *
 * The log's own digest is checked first, so that a change of the generator reads as "the log changed" (record new
 * fixtures from a commit before the change you test) rather than as a replay difference.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { Ledger } from '../../../src/ledger/ledger.js';
import { compareBytes, decodeEvent, orderKey } from '../../../src/ledger/events.js';
import { tempDir } from '../../utils/paths.js';
import { generateTraffic, GEN_LAYERS } from './generate.js';
import { NET } from './helpers.js';
import { digestDb } from './db-digest.js';

/**
 * Recorded at commit 991778b (before the ingest speed work) with `digestDb(path, 'tip')` (db-digest.ts; then in this file).
 * Session 25 changed one rule on purpose (only applied or void events conflict: ledger.ts hasEarlier): 4 transfers of
 * the log, each reusing the nonce of a rejected overdraft, went from void (EQUIVOCATION) to rejected
 * (INSUFFICIENT_BALANCE), nothing else; the old rule, swapped back into the same build, still gives the old values
 * (state 92021de8…, db b81f57ac…, totals …,667,133,…). A second change (apply.ts applyEvent: a rejected event changes
 * nothing but the rejected counter) changed no verdict; 16 state rows differ at the end of the log: requests that
 * had expired were refunded there by rejected events, and now wait for the next applied or void event (escrowed
 * 527,710,354e9 -> 1,809,236,706e9 base units; the requesters' balances lower by as much). The values below are the
 * new rules'.
 */
const FIXTURE = {
  log: 'f14cb91d6ee05c2a29cc4cc4f26c19e3b60849cab1d00cdebf14bc98f3de26d8',
  stateHash: '6a4f6c116ba4d6657f9a22f140978dd1381e18a24e64c9ea6190dd2eb12a9058',
  db: 'ff861784f65f4975cd8cb6d4efdabdb6f9756788d08ec1d517ae31842a71e31c',
  totals: '5733,4933,671,129,2735524416711151824903,1933205192279524784810,72000000000000000000,1809236706000000000',
};

const SEED = 20_261_202;
const TOTAL = 6000;

function logDigest(events: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const b of events) h.update(Buffer.from(String(b.byteLength) + ':')).update(b);
  return h.digest('hex');
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

function totals(l: Ledger): string {
  const s = l.status();
  return [s.events, s.applied, s.rejected, s.void, s.minted, s.burned, s.staked, s.escrowed].join(',');
}

describe('ledger replay fixture', () => {
  it('three feeds of a fixed 6,000-event log end in the state, verdicts and rows recorded before the speed work', () => {
    const t = tempDir('neuroshard-replay-fixture-');
    try {
      const { events } = generateTraffic(TOTAL, SEED);
      assert.equal(events.length, TOTAL);
      assert.equal(logDigest(events), FIXTURE.log, 'the generated log changed (generate.ts): record the fixtures again from a commit before the change under test');
      const feeds: [string, (l: Ledger) => void][] = [
        [
          'batches',
          (l) => {
            for (let i = 0; i < events.length; i += 256) l.ingestMany(events.slice(i, i + 256));
          },
        ],
        [
          'reverse-deferred',
          (l) => {
            const rev = [...events].reverse();
            for (let i = 0; i < rev.length; i += 500) l.ingestMany(rev.slice(i, i + 500), { deferReplay: true });
            l.flushReplay();
          },
        ],
        [
          'canonical-single',
          (l) => {
            for (const b of canonical(events)) l.ingest(b);
          },
        ],
      ];
      for (const [name, feed] of feeds) {
        const path = join(t.dir, `${name}.db`);
        const l = new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS });
        try {
          feed(l);
          assert.equal(l.status().replayPending, false);
          assert.equal(l.stateHash(), FIXTURE.stateHash, `${name}: state hash`);
          assert.equal(totals(l), FIXTURE.totals, `${name}: totals`);
        } finally {
          l.close();
        }
        assert.equal(digestDb(path, 'tip'), FIXTURE.db, `${name}: database rows`);
        // reopened: the state loaded from the rows is the same
        const again = new Ledger({ path, networkId: NET, modelLayers: GEN_LAYERS });
        try {
          assert.equal(again.stateHash(), FIXTURE.stateHash, `${name}: state hash after reopening`);
        } finally {
          again.close();
        }
      }
    } finally {
      t.cleanup();
    }
  });
});
