/**
 * A fresh start's round 0 begins from the initial weights on every holder (issue 9: chain-diloco failed under load,
 * "D round 0 repaired [layers.1, head]"). Two chains d1 → h1 and d2 → h2 start together with nobody ahead; h1's entry
 * is slow (its first status calls fail, as a status call times out under load: it asks again). d1 entered at once and
 * stepped h1 meanwhile, so h1 began round 0 from weights some steps on: its round-0 state differed from h2's and the
 * hash vote replaced one of them. A hop now holds steps off from the start of its entry until it knows whether anyone
 * is ahead (training/chain-outer.ts runOuterRounds); a joiner resumes at once when it finds holders ahead.
 *
 * Over ./sync-net.ts with the real round loop and ./chain-stages.ts's chains.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainOf, runStage, type RunningStage } from './chain-stages.js';
import { H, Net, until } from './sync-net.js';

const S0 = { start: 0, end: 1 };
const S1 = { start: 1, end: 3 };
const STEP_MS = 10;

describe('a fresh start: round 0 from the initial weights on every holder', () => {
  it('a hop whose entry is slow is not stepped before it begins round 0: the replicas close round 0 with equal states, nothing repaired', async () => {
    const net = new Net();
    const stages: RunningStage[] = [];
    try {
      const t0 = Date.now();
      // h1's status calls fail for its first 400 ms (d1 steps every 10 ms meanwhile)
      net.statusFails = (from) => from === 'h1' && Date.now() - t0 < 400;
      const c1 = chainOf(net, { id: 'd1', span: S0 }, [{ id: 'h1', span: S1 }], STEP_MS);
      const c2 = chainOf(net, { id: 'd2', span: S0 }, [{ id: 'h2', span: S1 }], STEP_MS);
      const [d1, h1, d2, h2] = [runStage(c1.driver, H, true), runStage(c1.hops[0]!, H, true), runStage(c2.driver, H, true), runStage(c2.hops[0]!, H, true)];
      stages.push(d1, h1, d2, h2);
      await until(() => [d1, h1, d2, h2].every((s) => s.reports.length >= 2), 30_000, 'two rounds on every stage');
      assert.ok(h1.enteredAt! - t0 >= 350, `h1's entry was slow (${h1.enteredAt! - t0} ms)`);
      for (const [x, y] of [
        [d1, d2],
        [h1, h2],
      ] as const) {
        for (const s of [x, y]) {
          const r0 = s.reports.find((r) => r.round === 0);
          assert.ok(r0 !== undefined, `${s.node.id} closed round 0`);
          assert.deepEqual(r0.repaired, [], `${s.node.id}: round 0 needed no repair`);
        }
        const hx = x.node.sync.status().closed.find((c) => c.round === 0)?.hashes;
        assert.deepEqual(hx, y.node.sync.status().closed.find((c) => c.round === 0)?.hashes, `${x.node.id} and ${y.node.id} agree after round 0`);
      }
    } finally {
      for (const s of stages) await s.stop();
      await net.stop();
    }
  });
});
