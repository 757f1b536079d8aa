/**
 * Round numbers that drifted apart (issue 9, the chaos run's stuck `train0`), over the in-memory network of
 * ./sync-net.ts with the real OuterSync logic:
 *
 *   - two groups of layers that share no holder (a on [0,1), b on [1,3)) number their rounds apart while the
 *     whole-model holder w, the only node in both, is away: b runs ahead. The restarted w targets b's newest round;
 *     before, it needed one closed round of that number on every layer's holders, found none for a's layers and
 *     stayed entering for good. Now it takes each layer's newest agreed state (training/keep.ts layerEntryState),
 *     enters, and a skips its numbering forward to w's (training/rounds.ts nextRoundNumber): the three stand at one
 *     number again and every layer's holders end each round with equal hashes.
 *   - two holders of the same layers started at different numbers: before, every round waited for a Δ of a round
 *     the other was never in and was abandoned at its deadline; now the one behind skips forward and they close
 *     rounds together.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Net, until, type Node } from './sync-net.js';

/** The state hashes `n` keeps for round `r` (undefined when it did not close it or no longer keeps it). */
const hashesOf = (n: Node, r: number): Record<string, string> | undefined => n.sync.status().closed.find((c) => c.round === r)?.hashes;

describe('round numbers that drifted apart between layer groups', () => {
  it('a whole-model holder restarted after the half holders drifted apart re-enters; the numbers tie; all agree', async () => {
    const net = new Net();
    try {
      const a = net.start('a-half0', { start: 0, end: 1 }, 25);
      const b = net.start('b-half1', { start: 1, end: 3 }, 25);
      let w = net.start('w-whole', { start: 0, end: 3 }, 30);
      await until(() => [a, b, w].every((n) => n.closed.length >= 2), 30_000, 'two rounds on every node');
      assert.equal(a.sync.round, b.sync.round, 'w ties the half holders\' numbers while it is in the rounds');
      const killed = net.kill('w-whole');
      await killed.running;
      // without w nothing ties a's numbers to b's: b steps faster and pulls ahead
      b.stepMs = 4;
      await until(() => b.sync.round - a.sync.round >= 3, 60_000, 'b three rounds ahead of a');
      b.stepMs = 25;
      const drift = { a: a.sync.round, b: b.sync.round };
      const restartedAt = { a: a.closed.length, b: b.closed.length };
      w = net.start('w-whole', { start: 0, end: 3 }, 30, killed.params.map((x) => x + 0.5));
      // before: entering (round −1) for good ("no round-(target−1) hash for a's layers")
      await until(() => w.sync.round >= 0 && w.sync.status().phase !== 'entering', 30_000, `w entered (a at ${drift.a}, b at ${drift.b})`);
      const entered = w.sync.round;
      const roundsWaited = Math.max(a.closed.length - restartedAt.a, b.closed.length - restartedAt.b);
      assert.ok(roundsWaited <= 3, `w entered round ${entered} after ${roundsWaited} rounds of the half holders (at most 3)`);
      // a round two or more after w's entry that a, b and w all closed (one number again)
      let last = -1;
      await until(
        () => {
          last = w.closed.findLast((r) => r >= entered + 2 && a.closed.includes(r) && b.closed.includes(r)) ?? -1;
          return last >= 0;
        },
        60_000,
        `a round after w's entry + 1 that a, b and w all closed (w ${w.closed.join(',')}; a ${a.closed.slice(-6).join(',')}; b ${b.closed.slice(-6).join(',')})`,
      );
      const mine = hashesOf(w, last)!;
      for (const h of [a, b]) {
        const theirs = hashesOf(h, last);
        assert.ok(theirs !== undefined, `${h.id} keeps round ${last}`);
        for (const [layer, hash] of Object.entries(theirs)) assert.equal(mine[layer], hash, `${h.id} and w agree on ${layer} after round ${last}`);
      }
      assert.equal(Object.keys(mine).length, 5, 'w holds every layer (embed, 3 blocks, head)');
      assert.ok(a.infos.some((x) => x.startsWith('round numbers skip forward')), 'a skipped its numbering forward to w\'s');
      assert.deepEqual(w.warnings.filter((x) => x.includes('download failed')), [], 'every download of w verified at once');
      const lastW = w.sync.stats().lastRound!;
      assert.ok(lastW.members.includes(a.id) && lastW.members.includes(b.id), 'a and b are members of w\'s rounds');
      for (const h of [a, b]) assert.ok(h.sync.stats().lastRound!.members.includes(w.id), `${h.id} counts w`);
    } finally {
      await net.stop();
    }
  });

  it('two holders of the same layers started at different numbers: the one behind skips forward, they close rounds together', async () => {
    const net = new Net();
    try {
      // x starts the rounds at 0; y, whose view does not list x yet (a partition), starts them alone at 10; then
      // each view lists the other
      const x = net.start('x-whole', { start: 0, end: 3 }, 20, undefined, 0);
      await until(() => x.closed.length >= 1, 30_000, 'x closes a round');
      net.listed.delete(x.id);
      const y = net.start('y-whole', { start: 0, end: 3 }, 20, undefined, 10);
      await until(() => y.sync.round >= 10, 30_000, 'y in its rounds');
      net.listed.set(x.id, x.span);
      // a round both contributed to, at one number, with equal hashes on both
      let both: number | undefined;
      await until(
        () => {
          const r = x.sync.stats().lastRound;
          // both contributions on every layer (accepted counts them per layer: one holder alone on 5 layers is 5)
          if (r === null || r.accepted < 2 * Object.keys(r.outcome).length || r.outcome['layers.0'] !== 'closed') return false;
          both = r.round;
          return y.closed.includes(r.round);
        },
        30_000,
        'a round closed with both holders\' contributions',
      );
      const hx = hashesOf(x, both!)!;
      const hy = hashesOf(y, both!)!;
      assert.ok(both! >= 10, `they met at y's numbers (round ${both})`);
      assert.deepEqual(hx, hy, `x and y agree after round ${both}`);
      assert.ok(x.infos.some((l) => l.startsWith('round numbers skip forward')), 'x skipped forward');
    } finally {
      await net.stop();
    }
  });
});
