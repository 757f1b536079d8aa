/**
 * Finality, the pure parts and the ledger's side (issue 11 §3): quorum math in bigint, the events root, building
 * and verifying checkpoints against the committee of the previous one, finalizing on a ledger that computed the
 * same state, admission behind a checkpoint, and a new ledger started from a verified snapshot.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import {
  checkpointFromJson,
  checkpointHash,
  checkpointToJson,
  committeeAfter,
  dueCut,
  genesisCommittee,
  merkleRoot,
  nextEventsRoot,
  quorumReached,
  verifyChain,
  verifyCheckpoint,
  ZERO_HASH,
} from '../../../src/ledger/checkpoint.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { sha256, toHex } from '../../../src/util/bytes.js';
import { acct, env, NET, openTempLedger, T0, testKey } from './helpers.js';
import { signedBy, stakedHistory, W } from './finality-fixture.js';

const G = testKey(90); // genesis key
const K = [testKey(91), testKey(92), testKey(93)];
const GEN = genesisCommittee(G.publicKey);

describe('quorum math (bigint)', () => {
  it('needs strictly more than two thirds', () => {
    assert.equal(quorumReached(2n, 3n), false);
    assert.equal(quorumReached(3n, 3n), true);
    assert.equal(quorumReached(201n, 300n), true);
    assert.equal(quorumReached(200n, 300n), false);
    assert.equal(quorumReached(0n, 0n), false, 'no stake, no quorum');
    // amounts beyond 2^53 (18 decimals): exact, no rounding
    const total = 3n * 10n ** 30n;
    assert.equal(quorumReached(2n * 10n ** 30n, total), false);
    assert.equal(quorumReached(2n * 10n ** 30n + 1n, total), true);
  });

  it('dueCut gives period boundaries at least settle old, after the last cut', () => {
    assert.equal(dueCut(10 * W + 500, W, 1000, 0), 9 * W);
    assert.equal(dueCut(10 * W + 1500, W, 1000, 0), 10 * W);
    assert.equal(dueCut(10 * W + 1500, W, 1000, 10 * W), undefined);
  });
});

describe('events root', () => {
  it('is deterministic, order-sensitive and chained', () => {
    const ids = [1, 2, 3].map((i) => sha256(`id ${i}`));
    assert.deepEqual(merkleRoot(ids), merkleRoot(ids.map((x) => x.slice())));
    assert.notDeepEqual(merkleRoot(ids), merkleRoot([ids[1]!, ids[0]!, ids[2]!]));
    assert.notDeepEqual(merkleRoot(ids), merkleRoot(ids.slice(0, 2)));
    const r1 = nextEventsRoot(ZERO_HASH, ids);
    assert.notEqual(nextEventsRoot(r1, []), nextEventsRoot(ZERO_HASH, []));
  });
});

describe('checkpoints on a ledger', () => {
  function history(): { ledger: ReturnType<typeof openTempLedger>; events: Uint8Array[] } {
    const l = openTempLedger();
    const events = stakedHistory(K);
    for (const r of l.ledger.ingestMany(events)) assert.equal(r.status, 'applied', r.reason);
    return { ledger: l, events };
  }

  it('builds, verifies against the previous committee, and refuses forgeries', () => {
    const { ledger: l } = history();
    try {
      const cut1 = T0 + 5 * W;
      const b1 = l.ledger.proposeCheckpoint(cut1)!;
      assert.equal(b1.seq, 1);
      assert.equal(b1.height, 12);
      assert.equal(b1.prev, ZERO_HASH);
      assert.deepEqual(new Set(b1.committee.map((m) => m.account)), new Set(K.map((k) => toHex(acct(k)))));
      assert.ok(b1.committee.every((m) => m.stake === NEURO));
      const cp1 = signedBy(b1, [G]);
      assert.equal(verifyCheckpoint(cp1, undefined, GEN, NET), null);
      assert.equal(verifyCheckpoint(signedBy(b1, [K[0]!]), undefined, GEN, NET), 'CHECKPOINT_NOT_COMMITTEE');
      assert.equal(verifyCheckpoint({ body: b1, sigs: [] }, undefined, GEN, NET), 'CHECKPOINT_NO_QUORUM');
      assert.equal(verifyCheckpoint({ body: { ...b1, height: 13 }, sigs: cp1.sigs }, undefined, GEN, NET), 'CHECKPOINT_BAD_SIGNATURE');
      assert.equal(verifyCheckpoint(cp1, undefined, GEN, 'other-net'), 'CHECKPOINT_NETWORK');
      // round trip through the wire form
      assert.deepEqual(checkpointFromJson(JSON.parse(JSON.stringify(checkpointToJson(cp1)))), cp1);
      assert.throws(() => checkpointFromJson({ body: { ...(checkpointToJson(cp1) as { body: object }).body, seq: -1 }, sigs: [] }));

      assert.equal(l.ledger.finalize(cp1), 'finalized');
      assert.equal(l.ledger.status().finalized?.height, 12);
      assert.equal(l.ledger.status().finalized?.hash, checkpointHash(b1));
      // the next one is signed by the stakers, more than 2/3 of their stake
      const t = buildTransfer(K[0]!, env(1, cut1 + 1000), acct(K[1]!), NEURO / 10n);
      assert.equal(l.ledger.ingest(t.bytes).status, 'applied');
      const b2 = l.ledger.proposeCheckpoint(cut1 + W)!;
      assert.equal(b2.seq, 2);
      assert.equal(b2.prev, checkpointHash(b1));
      assert.deepEqual(committeeAfter(b1, GEN), b1.committee);
      assert.equal(verifyCheckpoint(signedBy(b2, [K[0]!, K[1]!]), b1, GEN, NET), 'CHECKPOINT_NO_QUORUM', '2 of 3 equal stakes is not > 2/3');
      assert.equal(verifyCheckpoint(signedBy(b2, [G]), b1, GEN, NET), 'CHECKPOINT_NOT_COMMITTEE', 'the genesis key has no say once stake exists');
      const cp2 = signedBy(b2, K);
      assert.equal(verifyCheckpoint(cp2, b1, GEN, NET), null);
      assert.deepEqual(verifyChain([cp1, cp2], undefined, GEN, NET), { ok: 2 });
      assert.equal(verifyChain([cp2], undefined, GEN, NET).reason, 'CHECKPOINT_CHAIN');
      assert.equal(l.ledger.finalize(cp2), 'finalized');
      assert.equal(l.ledger.isFinal(t.id), true, 'the transfer is final once a checkpoint covers it');
      assert.equal(l.ledger.history(acct(K[0]!)).find((h) => h.kind === 'transfer')?.final, true, 'history says so too');
    } finally {
      l.cleanup();
    }
  });

  it('admits nothing dated before the latest checkpoint, on any path', () => {
    const { ledger: l } = history();
    try {
      const cut = T0 + 5 * W;
      assert.equal(l.ledger.finalize(signedBy(l.ledger.proposeCheckpoint(cut)!, [G])), 'finalized');
      const late = buildTransfer(K[0]!, env(7, cut - 1), acct(K[1]!), 1n);
      for (const opts of [{}, { ingress: 'sync' as const, nowMs: cut + 1000 }, { ingress: 'gossip' as const, nowMs: cut + 1000 }]) {
        const r = l.ledger.ingest(late.bytes, opts);
        assert.equal(r.status, 'dropped');
        assert.equal(r.reason, 'FINALIZED');
      }
      assert.equal(l.ledger.eventStatus(late.id), undefined);
      const onTime = buildTransfer(K[0]!, env(7, cut), acct(K[1]!), 1n);
      assert.equal(l.ledger.ingest(onTime.bytes).status, 'applied');
      assert.equal(l.ledger.isFinal(onTime.id), false);
    } finally {
      l.cleanup();
    }
  });

  it('a ledger that computed another state at the cut is told it diverged; a new one starts from the snapshot', () => {
    const { ledger: a, events } = history();
    const b = openTempLedger(); // holds nothing
    const c = openTempLedger(); // holds less than a
    try {
      const cut = T0 + 5 * W;
      const cp = signedBy(a.ledger.proposeCheckpoint(cut)!, [G]);
      assert.equal(a.ledger.finalize(cp), 'finalized');
      c.ledger.ingestMany(events.slice(0, 5));
      assert.equal(c.ledger.finalize(cp), 'diverged');
      const after = buildTransfer(K[2]!, env(1, cut + 5000), acct(K[0]!), NEURO / 4n);
      assert.equal(a.ledger.ingest(after.bytes).status, 'applied');
      const rows = a.ledger.snapshotPage(1, '', 4096)!;
      assert.ok(rows.length > 3);
      // a tampered row is refused before anything changes
      const bad = rows.map(([k, v]) => [k, v.replace(/"balance":"(\d+)"/, '"balance":"$11"')] as [string, string]);
      assert.equal(b.ledger.installSnapshot(cp, bad), 'SNAPSHOT_HASH');
      assert.equal(b.ledger.status().finalized, null);
      for (const l of [b, c]) {
        assert.equal(l.ledger.installSnapshot(cp, rows), 'installed');
        l.ledger.ingest(after.bytes);
        assert.equal(l.ledger.stateHash(), a.ledger.stateHash());
        assert.equal(l.ledger.replayHash(), a.ledger.stateHash(), 'the stored state follows from the snapshot and the events after it');
        assert.equal(l.ledger.status().finalized?.seq, 1);
      }
      // and both survive a restart from the base
      c.ledger.close();
      const again = new Ledger({ path: c.path, networkId: NET, modelLayers: 8 });
      assert.equal(again.stateHash(), a.ledger.stateHash());
      assert.equal(again.status().finalized?.seq, 1);
      again.close();
    } finally {
      a.cleanup();
      b.cleanup();
      c.cleanup();
    }
  });
});
