/**
 * The hash vote when holders' views of the pool exclude each other (issue 9, session 17's leftover "a holder whose
 * view never lists another can only count what it sees"): b's view never lists a, so b neither asked a for its vote
 * nor knew a voted. The tie rule made that harmless when every holder began the round from one state (all go back to
 * it), not when they did not: a holder that began elsewhere made a and c take the smallest tied hash while b, which
 * saw only the holders that began alike, went back to its start: two states of every layer after the round.
 *
 * Now a holder also asks the voters that the holders it does see name as round members (their status's `members`),
 * when a majority of those holders name them: b learns of a from c, asks a, counts a's vote and a's start, and ends
 * the round with a's and c's state.
 *
 * Over ./sync-net.ts (real OuterSync nodes on an in-memory network; rounds run at their own pace).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParamLayout } from '../../../src/model/layout.js';
import { cfg, Net, until, type Node } from './sync-net.js';

const ALL = { start: 0, end: 3 };

/** The state hashes a node reports for `round` (its closed history). */
const hashesAt = (n: Node, round: number): Record<string, string> | undefined => n.sync.status().closed.find((c) => c.round === round)?.hashes;

describe('the hash vote between holders whose views exclude each other', () => {
  it('holders that began the round from different states, one of them unseen by another, end it with one state', async () => {
    const net = new Net();
    try {
      // b's view never lists a (a's heartbeats late at b only), from the start: a counts {a, c} (b refuses a's Δ),
      // b {b, c}, c all three: three states of every layer. a also began from other weights than b and c (a
      // restarted holder's, a late repair's): the tie is between holders that began apart, so the smallest hash wins
      net.hides = (viewer, peer) => viewer === 'b' && peer === 'a';
      const cold = new Float32Array(new ParamLayout(cfg).size).map((_, i) => Math.sin(i) + 0.01 * Math.cos(3 * i));
      const a = net.start('a', ALL, 10, cold);
      const b = net.start('b', ALL, 12);
      const c = net.start('c', ALL, 11);
      await until(() => [a, b, c].every((n) => n.closed.length >= 3), 60_000, 'three rounds of a, b and c');
      const rounds = a.closed.filter((r) => [b, c].every((n) => n.closed.includes(r) && hashesAt(n, r) !== undefined) && hashesAt(a, r) !== undefined);
      assert.ok(rounds.includes(0), `round 0 closed on all three and kept (${rounds.join(',')})`);
      for (const r of rounds) {
        assert.deepEqual(hashesAt(b, r), hashesAt(a, r), `a and b after round ${r}`);
        assert.deepEqual(hashesAt(c, r), hashesAt(a, r), `a and c after round ${r}`);
      }
      // b counted a's vote although its view never listed a
      const r0 = b.reports.find((r) => r.round === 0)!;
      assert.deepEqual(r0.split, [], 'b did not go back to its start while a and c took the smallest hash');
    } finally {
      await net.stop();
    }
  });
});
