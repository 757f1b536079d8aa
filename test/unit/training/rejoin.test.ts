/**
 * A restarted whole-model holder re-entering the rounds of two half holders (issue 9; the chaos run's train0 beside
 * train1 on [0,1) and train2 on [1,3)), over an in-memory transport: OuterSync's round logic without a network.
 *
 * The half holders and the whole-model holder run their rounds concurrently (each closes a round every H inner steps
 * at its own pace). The whole-model holder is killed mid-round and restarted with the same id (the same data dir)
 * before the view marks it dead, so the half holders' view lists it throughout. It must enter within a couple of the
 * half holders' rounds, and its first download after the boundary must verify (no "does not match the agreed hash").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Net, until } from './sync-net.js';

describe('a restarted whole-model holder re-enters the half holders\' rounds', () => {
  for (const [name, killAt] of [
    ['killed in its inner steps', 'inner'],
    ['killed while collecting', 'collecting'],
  ] as const) {
    it(`${name}: it enters within two of the half holders' rounds, its first download verifies, and all agree after`, async () => {
      const net = new Net();
      // the outer sync must not pile abort listeners on the node-lifetime signal (one per send and retry before)
      const leaks: string[] = [];
      const onWarning = (w: Error): void => {
        if (w.name === 'MaxListenersExceededWarning') leaks.push(w.message);
      };
      process.on('warning', onWarning);
      try {
        // inner steps of tens of ms: a round must outlast an entry poll and a download (in a real network a round is H
        // steps of seconds; at 4 ms a step the half holders, which no longer wait for a listener, closed rounds faster
        // than the 4 kept rounds let a joiner download one: a test artefact, seen at load 17)
        const a = net.start('a-half0', { start: 0, end: 1 }, 25);
        const b = net.start('b-half1', { start: 1, end: 3 }, 25);
        let w = net.start('w-whole', { start: 0, end: 3 }, 30);
        await until(() => [a, b, w].every((n) => n.closed.length >= 2), 30_000, 'two rounds on every node');
        await until(() => w.sync.status().phase === killAt, 30_000, `w ${killAt}`);
        const killed = net.kill('w-whole');
        await killed.running;
        // the half holders close a round without it; then it restarts with stale weights (same id)
        const ra = a.closed.length;
        await until(() => a.closed.length >= ra + 1 && b.closed.length >= ra + 1, 30_000, 'a round without w');
        const stale = killed.params.map((x) => x + 0.5);
        const restartedAt = { a: a.closed.length, b: b.closed.length };
        w = net.start('w-whole', { start: 0, end: 3 }, 30, stale);
        await until(() => w.sync.round >= 0 && w.sync.status().phase !== 'entering', 60_000, 'w entered');
        const entered = w.sync.round;
        const roundsWaited = Math.max(a.closed.length - restartedAt.a, b.closed.length - restartedAt.b);
        assert.ok(roundsWaited <= 2, `w entered round ${entered} after ${roundsWaited} rounds of the half holders (at most 2)`);
        // two rounds as a full member after its entry round, then every layer's holders agree
        await until(() => w.closed.filter((r) => r >= entered + 2).length >= 1, 60_000, 'w closes two rounds after its entry');
        const last = w.closed.at(-1)!;
        await until(() => a.closed.includes(last) && b.closed.includes(last), 30_000, 'a and b close w\'s last round');
        const mine = w.sync.status().closed.find((c) => c.round === last)!.hashes;
        for (const h of [a, b]) {
          const theirs = h.sync.status().closed.find((c) => c.round === last)!.hashes;
          for (const [layer, hash] of Object.entries(theirs)) assert.equal(mine[layer], hash, `${h.id} and w agree on ${layer} after round ${last}`);
        }
        const failed = w.warnings.filter((x) => x.includes('download failed'));
        assert.deepEqual(failed, [], 'every download of w verified at once');
        const lastW = w.sync.stats().lastRound!;
        assert.ok(lastW.members.includes(a.id) && lastW.members.includes(b.id));
        for (const h of [a, b]) assert.ok(h.sync.stats().lastRound!.members.includes(w.id), `${h.id} counts w`);
        await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
        assert.deepEqual(leaks, [], 'no abort-listener pile-up on a long-lived signal');
      } finally {
        process.off('warning', onWarning);
        await net.stop();
      }
    });
  }
});
