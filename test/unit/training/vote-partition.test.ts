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
 * A holder that cannot take the winner's state before the vote's bound (no source serves it) says so in its round's
 * report (`diverged`, GET /api/training) and takes the majority's verified state at the next vote.
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

  it('a holder that cannot take the winner\'s state says so (diverged) and takes the majority\'s at the next vote', async () => {
    const net = new Net({ syncTimeoutMs: 1000 });
    try {
      // neither b's view nor c's lists a: they count {b, c} and one state; a's Δ is refused (not_holder), so a counts
      // its own alone and ends with another. a loses the vote 1 to 2, but neither b nor c serves its state of round 0
      // (a download that fails until the vote's bound)
      net.hides = (viewer, peer) => peer === 'a' && viewer !== 'a';
      const a = net.start('a', ALL, 10);
      const b = net.start('b', ALL, 10);
      const c = net.start('c', ALL, 10);
      const serve = new Map([b, c].map((n) => [n, n.sync.layerState.bind(n.sync)]));
      for (const n of [b, c]) n.sync.layerState = (round, layer) => (round === 0 ? undefined : serve.get(n)!(round, layer));
      await until(() => a.reports.some((r) => r.round === 0), 60_000, 'a closed round 0');
      const r0 = a.reports.find((r) => r.round === 0)!;
      assert.deepEqual([...r0.diverged].sort(), Object.keys(hashesAt(a, 0)!).sort(), 'a says every layer stands apart');
      assert.deepEqual(r0.repaired, []);
      assert.notDeepEqual(hashesAt(a, 0), hashesAt(b, 0), 'a kept its own state of round 0');
      // a later round a closes with b and c: its vote takes their state (the views still exclude a)
      await until(() => a.reports.some((r) => r.round > 0 && r.repaired.length > 0), 60_000, 'a repaired at a later vote');
      const r = a.reports.find((x) => x.round > 0 && x.repaired.length > 0)!;
      assert.deepEqual(r.diverged, []);
      await until(() => [b, c].every((n) => hashesAt(n, r.round) !== undefined), 30_000, `b and c closed round ${r.round}`);
      assert.deepEqual(hashesAt(a, r.round), hashesAt(b, r.round), `a and b after round ${r.round}`);
      assert.deepEqual(hashesAt(c, r.round), hashesAt(b, r.round), `c and b after round ${r.round}`);
    } finally {
      await net.stop();
    }
  });
});
