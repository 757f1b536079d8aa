/**
 * The hash vote after an outer round (training/sync.ts agree, training/vote.ts; issue 9, session 14's leftovers):
 *
 * - "agree() waits syncTimeout + 5 s": the vote waited until every voter had reported or the bound, even when the
 *   outcome was already decided. A holder still closing the round (it waited for a dead member's Δ that the others had
 *   stopped waiting for) held every other holder's vote to its own deadline. Now each voter is asked on its own and
 *   the vote returns once the missing votes cannot change the outcome.
 * - "a hash vote without a majority when holders exclude each other": a holder that released another (it answered
 *   `not_holder`: its view did not list us) left it out of its vote while holders that counted it did not; three
 *   holders aggregating three different sets of Δ took the smallest of the hashes each saw, so they could end with two
 *   states, or take a state only one holder had. Now every holder of a layer that closed the round votes, a strict
 *   majority wins, and a vote without one sends the layer back to its state at the round's start on every holder.
 *
 * Over ./sync-net.ts (real OuterSync nodes on an in-memory network; rounds run at their own pace).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { voteOutcome } from '../../../src/training/vote.js';
import { Net, until, type Node } from './sync-net.js';

const ALL = { start: 0, end: 3 };

/** The state hashes a node reports for `round` (its closed history). */
const hashesAt = (n: Node, round: number): Record<string, string> | undefined => n.sync.status().closed.find((c) => c.round === round)?.hashes;

describe('voteOutcome: the most-held hash wins, a tie is reported as one', () => {
  it('decides early only when the missing votes cannot change the outcome', () => {
    assert.deepEqual(voteOutcome(['x', 'x', 'y'], 0), { kind: 'win', hash: 'x' });
    assert.deepEqual(voteOutcome(['x', 'x', 'y', 'z'], 0), { kind: 'win', hash: 'x' }, 'the largest group, without a strict majority');
    assert.deepEqual(voteOutcome(['y', 'x'], 0), { kind: 'tie', hashes: ['x', 'y'] }, 'two holders, two states');
    assert.deepEqual(voteOutcome(['z', 'x', 'y'], 0), { kind: 'tie', hashes: ['x', 'y', 'z'] });
    assert.deepEqual(voteOutcome(['x', 'y', 'y', 'x', 'z'], 0), { kind: 'tie', hashes: ['x', 'y'] });
    assert.deepEqual(voteOutcome(['x'], 0), { kind: 'win', hash: 'x' }, 'a lone voter keeps its state');
    // missing votes
    assert.deepEqual(voteOutcome(['x', 'x'], 1), { kind: 'win', hash: 'x' }, '2 of 3 whatever the third says');
    assert.deepEqual(voteOutcome(['x'], 1), { kind: 'pending' });
    assert.deepEqual(voteOutcome(['x', 'y'], 1), { kind: 'pending' }, 'the third decides');
    assert.deepEqual(voteOutcome(['x', 'x', 'y'], 1), { kind: 'pending' }, 'the fourth may tie it');
    assert.deepEqual(voteOutcome(['x', 'x', 'x', 'y'], 1), { kind: 'win', hash: 'x' });
    assert.deepEqual(voteOutcome([], 2), { kind: 'pending' });
  });
});

describe('the hash vote over the network', () => {
  it('returns once decided: a holder still closing its round does not hold the others\' votes to the deadline', async () => {
    const SYNC = 10_000;
    const net = new Net({ syncTimeoutMs: SYNC });
    try {
      // a, b hold [0, 2); c the whole model; e [2, 3): c's rounds wait for e's Δ on layers 2 and head
      const a = net.start('a', { start: 0, end: 2 }, 10);
      const b = net.start('b', { start: 0, end: 2 }, 10);
      const c = net.start('c', ALL, 10);
      net.start('e', { start: 2, end: 3 }, 10);
      await until(() => [a, b, c].every((n) => n.closed.length >= 2), 30_000, 'two rounds on a, b and c');
      // e dies mid-round: c, which counted it in its rounds, waits for its Δ to the deadline; a and b never waited for e
      net.kill('e');
      await until(() => c.reports.some((r) => r.syncMs >= SYNC), 4 * SYNC, 'c\'s round that waited for e to the deadline');
      const slow = c.reports.find((r) => r.syncMs >= SYNC)!.round;
      await until(() => [a, b].every((n) => n.reports.some((r) => r.round === slow)), 10_000, `a and b closed round ${slow}`);
      for (const n of [a, b]) {
        const r = n.reports.find((x) => x.round === slow)!;
        // before: the vote waited for c's state of the round, about SYNC (c's deadline), or SYNC + 5 s at most
        assert.ok(r.syncMs < SYNC / 4, `${n.id}'s round ${slow} (c still closing it) took ${r.syncMs} ms, the deadline is ${SYNC} ms`);
        assert.deepEqual(r.repaired, []);
        assert.deepEqual(r.split, []);
      }
      console.log(`# round ${slow}: c closed it in ${c.reports.find((r) => r.round === slow)!.syncMs} ms (its deadline), a in ${a.reports.find((r) => r.round === slow)!.syncMs} ms, b in ${b.reports.find((r) => r.round === slow)!.syncMs} ms`);
      // c voted when it closed, and agreed with them
      await until(() => hashesAt(c, slow) !== undefined, 10_000, `c closed round ${slow}`);
      for (const l of ['embed', 'layers.0', 'layers.1']) {
        assert.equal(hashesAt(a, slow)![l], hashesAt(b, slow)![l], `a and b on ${l} after ${slow}`);
        assert.equal(hashesAt(c, slow)![l], hashesAt(a, slow)![l], `c and a on ${l} after ${slow}`);
      }
    } finally {
      await net.stop();
    }
  });

  it('holders that left each other out end every round with one state, and none takes a state only some hold', async () => {
    const net = new Net();
    try {
      const a = net.start('a', ALL, 10);
      const b = net.start('b', ALL, 12);
      const c = net.start('c', ALL, 11);
      await until(() => [a, b, c].every((n) => n.closed.length >= 2), 30_000, 'two rounds of a, b and c');
      // b's view loses a (a's heartbeats late at b only): b neither sends a its Δ nor counts a's (not_holder), so a
      // releases b; a counts {a, c}, b {b, c}, c {a, b, c}: three states of each layer
      net.hides = (viewer, peer) => viewer === 'b' && peer === 'a';
      const from = Math.max(...[a, b, c].map((n) => n.sync.round)) + 1;
      await until(() => [a, b, c].every((n) => n.closed.filter((r) => r >= from).length >= 3), 60_000, 'three rounds with b\'s view short of a');
      // one state on every holder, on every layer, after every round all three closed with b's view short of a
      const all = a.closed.filter((r) => r >= from && hashesAt(a, r) !== undefined && [b, c].every((n) => hashesAt(n, r) !== undefined));
      assert.ok(all.length > 0, 'rounds all three closed (and keep)');
      for (const r of all) {
        assert.deepEqual(hashesAt(b, r), hashesAt(a, r), `a and b after round ${r}`);
        assert.deepEqual(hashesAt(c, r), hashesAt(a, r), `a and c after round ${r}`);
      }
      const split = [a, b, c].flatMap((n) => n.reports.filter((r) => r.round >= from && r.split.length > 0).map((r) => r.round));
      assert.ok(split.length > 0, 'some round tied (the holders aggregated different sets of Δ)');
      for (const r of [...new Set(split)].sort((x, y) => x - y)) {
        // the split layers went back to the round's start: every holder's state after the round before
        const layers = new Set([a, b, c].flatMap((n) => n.reports.find((x) => x.round === r)?.split ?? []));
        for (const n of [a, b, c]) {
          const before = n.sync.status().closed.filter((x) => x.round < r).at(-1)?.hashes;
          if (before === undefined) continue;
          for (const l of layers) assert.equal(hashesAt(n, r)![l], before[l], `${n.id}: ${l} after round ${r} is its state at the round's start`);
        }
      }
      // the views agree again: rounds with all three counted close with a majority and make progress
      net.hides = () => false;
      const back = Math.max(...[a, b, c].map((n) => n.sync.round)) + 1;
      await until(() => [a, b, c].every((n) => n.reports.filter((r) => r.round >= back).length >= 2), 60_000, 'two rounds after the views agree');
      const common = a.reports.map((r) => r.round).filter((r) => r >= back && [b, c].every((n) => n.reports.some((x) => x.round === r)));
      assert.ok(common.length > 0, 'a round after the views agree closed on all three');
      const r = common.at(-1)!;
      for (const n of [a, b, c]) {
        assert.deepEqual(n.reports.find((x) => x.round === r)!.split, [], `${n.id}: round ${r} had a majority`);
        assert.deepEqual(hashesAt(n, r), hashesAt(a, r), `${n.id} and a after round ${r}`);
      }
    } finally {
      await net.stop();
    }
  });
});
