/**
 * Finality.settle (src/ledger/finality.ts, commit 059407b): what a node does with a verified checkpoint it cannot
 * finalize at once. A real Ledger on a temp dir, a fake FinalityNetwork (serves the reference ledger's checkpoints
 * and snapshot pages, records what was asked) and a manual monotonic clock:
 *   - a checkpoint that arrives while a replay is pending waits ('not-ready') and is finalized by a later tick;
 *   - a node whose state differs but holds most of the history asks for recent events (`behind`), keeps its events
 *     and retries for `divergeGraceMs`; it finalizes once the missing event arrives, and only takes the snapshot
 *     when the grace is over;
 *   - a node far behind (fewer than half the checkpoint's events) takes the snapshot at once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { signCheckpoint, type SignedCheckpoint } from '../../../src/ledger/checkpoint.js';
import { decodeEvent } from '../../../src/ledger/events.js';
import { Finality, type FinalityNetwork } from '../../../src/ledger/finality.js';
import type { Ledger } from '../../../src/ledger/ledger.js';
import { ManualClock } from '../../../src/util/clock.js';
import { signedBy, stakedHistory, W } from './finality-fixture.js';
import { acct, env, NET, openTempLedger, T0, testKey } from './helpers.js';

const G = testKey(9601); // genesis key: alone it signs checkpoint 1
const K = [testKey(9602), testKey(9603), testKey(9604)];
const CUT = T0 + 5 * W;
const GRACE = 120_000;
const PEER = 'peer-ref';

/** The reference: a ledger with the full history (12 events, staked) and checkpoint 1 final. */
function reference(): { ref: ReturnType<typeof openTempLedger>; events: Uint8Array[]; cp1: SignedCheckpoint } {
  const ref = openTempLedger();
  const events = stakedHistory(K);
  for (const r of ref.ledger.ingestMany(events)) assert.equal(r.status, 'applied', r.reason);
  const cp1 = signedBy(ref.ledger.proposeCheckpoint(CUT)!, [G]);
  assert.equal(cp1.body.height, 12);
  assert.equal(ref.ledger.finalize(cp1), 'finalized');
  return { ref, events, cp1 };
}

/** A FinalityNetwork that serves `ref` as peer PEER and counts what it is asked. */
function fakeNet(ref: Ledger): FinalityNetwork & { snapshotPages: number; checkpointFetches: number; votes: number } {
  const net = {
    snapshotPages: 0,
    checkpointFetches: 0,
    votes: 0,
    publishVote(): Promise<void> {
      net.votes++;
      return Promise.resolve();
    },
    fetchCheckpoints(peer: string, after: number): Promise<SignedCheckpoint[]> {
      assert.equal(peer, PEER);
      net.checkpointFetches++;
      return Promise.resolve(ref.checkpointsAfter(after, 64));
    },
    fetchSnapshotPage(peer: string, seq: number, after: string): Promise<[string, string][]> {
      assert.equal(peer, PEER);
      net.snapshotPages++;
      return Promise.resolve(ref.snapshotPage(seq, after, 4096) ?? []);
    },
  };
  return net;
}

/** A Finality on `ledger` for a node that is no committee member (it never votes itself). */
function finalityOn(ledger: Ledger, net: FinalityNetwork, mono: { t: number }, self: NodeKey = testKey(9610)): { f: Finality; behind: (string | undefined)[] } {
  const behind: (string | undefined)[] = [];
  const f = new Finality({
    ledger,
    net,
    key: self,
    networkId: NET,
    genesisKey: G.publicKey,
    periodMs: W,
    settleMs: 6 * W,
    clock: new ManualClock(CUT + 7 * W),
    peers: () => [PEER],
    divergeGraceMs: GRACE,
    behind: (p) => behind.push(p),
    monotonic: () => mono.t,
  });
  return { f, behind };
}

/** The genesis key's vote for checkpoint 1: on its own a quorum of the genesis committee. */
function genesisVote(cp: SignedCheckpoint): { body: SignedCheckpoint['body']; sig: ReturnType<typeof signCheckpoint> } {
  return { body: cp.body, sig: signCheckpoint(G, cp.body) };
}

/** Lets the snapshot started in the background (snapshotFrom, not awaited by settle) run, up to a bound. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), `timed out waiting: ${what}`);
}

function idOf(b: Uint8Array): Uint8Array {
  return decodeEvent(b).id;
}

describe('finality: settling a checkpoint the node cannot finalize at once', () => {
  it('a checkpoint that arrives while a replay is pending waits, and a later tick finalizes it (no snapshot)', async () => {
    const { ref, events, cp1 } = reference();
    const b = openTempLedger();
    try {
      // b holds the whole history, but its earliest event came last, deferred: the replay is still pending
      for (const r of b.ledger.ingestMany(events.slice(1))) assert.equal(r.status, 'applied', r.reason);
      assert.equal(b.ledger.ingest(events[0]!, { deferReplay: true }).status, 'pending');
      assert.equal(b.ledger.replayPending(), true);
      const net = fakeNet(ref.ledger);
      const mono = { t: 0 };
      const { f, behind } = finalityOn(b.ledger, net, mono);
      f.onVote(genesisVote(cp1));
      assert.equal(b.ledger.status().finalized, null, 'not finalized while the replay is pending');
      assert.equal(f.stats.finalized, 0);
      // still pending at the next tick, however much time passed: it waits, it does not snapshot
      mono.t = 10 * GRACE;
      await f.tick();
      assert.equal(b.ledger.status().finalized, null);
      b.ledger.flushReplay();
      await f.tick();
      assert.equal(b.ledger.status().finalized?.seq, 1, 'finalized once the replay ran');
      assert.equal(f.stats.finalized, 1);
      assert.equal(f.stats.snapshots, 0);
      assert.equal(net.snapshotPages, 0, 'no snapshot was read');
      assert.deepEqual(behind, [], 'no sync was asked for: the state did not differ');
      // its own events stay (a snapshot would have deleted those before the cut)
      for (const e of events) assert.equal(b.ledger.eventStatus(idOf(e))?.status, 'applied');
      assert.equal(b.ledger.stateHash(), ref.ledger.stateHash());
      // and the pending checkpoint is gone: later ticks change nothing
      await f.tick();
      assert.equal(f.stats.finalized, 1);
    } finally {
      b.cleanup();
      ref.cleanup();
    }
  });

  it('a node that holds most of the history but differs asks for recent events and finalizes once it has them (no snapshot before the grace)', async () => {
    const { ref, events, cp1 } = reference();
    const c = openTempLedger();
    try {
      // c lacks one of the 12 events (K2's stake): its state at the cut differs, but it holds 11 of 12
      const missing = events[events.length - 1]!;
      for (const r of c.ledger.ingestMany(events.slice(0, -1))) assert.equal(r.status, 'applied', r.reason);
      const net = fakeNet(ref.ledger);
      const mono = { t: 1000 };
      const { f, behind } = finalityOn(c.ledger, net, mono);
      // the checkpoint comes from a pull (peer named), as on a node that heard a later vote
      await f.pull(PEER);
      assert.equal(net.checkpointFetches > 0, true);
      assert.equal(c.ledger.status().finalized, null, 'not finalized: the state differs');
      assert.deepEqual(behind, [PEER], 'asked the peer that served the checkpoint for recent events, once');
      assert.equal(net.snapshotPages, 0, 'no snapshot at once');
      // retries within the grace: still no snapshot, and no second request
      mono.t = 1000 + GRACE - 1;
      await f.tick();
      assert.equal(net.snapshotPages, 0);
      assert.equal(f.stats.snapshots, 0);
      assert.deepEqual(behind, [PEER]);
      // a vote for the same checkpoint (gossip) does not restart the grace or ask again
      f.onVote(genesisVote(cp1));
      assert.deepEqual(behind, [PEER]);
      // the missing event arrives (the tail sync): the next tick finalizes from its own history
      assert.equal(c.ledger.ingest(missing).status, 'applied');
      await f.tick();
      assert.equal(c.ledger.status().finalized?.seq, 1);
      assert.equal(f.stats.finalized, 1);
      assert.equal(f.stats.snapshots, 0);
      assert.equal(net.snapshotPages, 0);
      for (const e of events) assert.equal(c.ledger.eventStatus(idOf(e))?.status, 'applied', 'its events before the cut are kept');
    } finally {
      c.cleanup();
      ref.cleanup();
    }
  });

  it('a node that holds most of the history but still differs after the grace takes the snapshot', async () => {
    const { ref, events, cp1 } = reference();
    const c = openTempLedger();
    try {
      for (const r of c.ledger.ingestMany(events.slice(0, -1))) assert.equal(r.status, 'applied', r.reason);
      const net = fakeNet(ref.ledger);
      const mono = { t: 0 };
      const { f, behind } = finalityOn(c.ledger, net, mono);
      f.onVote(genesisVote(cp1)); // from gossip: no peer named
      assert.deepEqual(behind, [undefined], 'asked any peer for recent events');
      mono.t = GRACE - 1;
      await f.tick();
      assert.equal(net.snapshotPages, 0, 'no snapshot within the grace');
      assert.equal(c.ledger.status().finalized, null);
      mono.t = GRACE;
      await f.tick();
      await until(() => f.stats.snapshots === 1, 'the snapshot after the grace');
      assert.ok(net.snapshotPages > 0);
      assert.equal(c.ledger.status().finalized?.seq, 1);
      assert.equal(c.ledger.stateHash(), ref.ledger.stateHash(), 'the committee state at the cut');
      assert.equal(behind.length, 1, 'asked once');
    } finally {
      c.cleanup();
      ref.cleanup();
    }
  });

  it('a node far behind takes the snapshot at once, without a grace or a sync request', async () => {
    const { ref, events } = reference();
    const d = openTempLedger();
    try {
      // d holds 2 of the 12 events: fewer than half of the checkpoint's height
      for (const r of d.ledger.ingestMany(events.slice(0, 2))) assert.equal(r.status, 'applied', r.reason);
      const net = fakeNet(ref.ledger);
      const mono = { t: 0 };
      const { f, behind } = finalityOn(d.ledger, net, mono);
      await f.pull(PEER);
      await until(() => f.stats.snapshots === 1, 'the snapshot of a far-behind node');
      assert.deepEqual(behind, [], 'no sync request first');
      assert.equal(mono.t, 0, 'no time had to pass');
      assert.equal(d.ledger.status().finalized?.seq, 1);
      assert.equal(d.ledger.stateHash(), ref.ledger.stateHash());
      // the state carries on from the snapshot: a transfer after the cut applies on both
      const after = buildTransfer(K[0]!, env(1, CUT + 1000), acct(K[1]!), NEURO / 10n);
      assert.equal(ref.ledger.ingest(after.bytes).status, 'applied');
      assert.equal(d.ledger.ingest(after.bytes).status, 'applied');
      assert.equal(d.ledger.stateHash(), ref.ledger.stateHash());
    } finally {
      d.cleanup();
      ref.cleanup();
    }
  });
});
