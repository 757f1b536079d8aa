/**
 * A driver that waits to enter the outer rounds drives its chain meanwhile (issue 9, outer-move on CI: "C round 3
 * abandoned"). A pool move made N the driver of [0,1) while the hop it took over, left by the mover M, stood mid-round
 * in its own layers' rounds; N waited a round for a boundary of [0,1)'s holders without stepping, so its hop never
 * reached its boundary, that hop's layers' rounds waited for its Δ to their deadline and were abandoned (two holders
 * present of three: below the quorum), and their drivers' rounds waited with them (chain partners close together).
 *
 * Over ./sync-net.ts with the real round loop (training/chain-outer.ts) and ./chain-stages.ts's chains: chains d1 → h1
 * and d2 → h2 train [0,1) and [1,3) together; d1 leaves (its layers' holders are told so: the network's `left`), and a
 * new driver d3 of [0,1) takes h1 over and enters as a joiner. h1's and h2's rounds go on without a deadline, none
 * abandoned, and d3 ends its rounds with d2's state.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainOf, DriverStage, runStage, type RunningStage } from './chain-stages.js';
import { H, Net, until } from './sync-net.js';

const S0 = { start: 0, end: 1 };
const S1 = { start: 1, end: 3 };
const STEP_MS = 10;
const SYNC_MS = 3000; // sync-net's syncTimeoutMs

const after = (s: RunningStage, t: number): number[] => s.at.flatMap((at, i) => (at >= t ? [i] : []));

describe('a driver waiting to enter the rounds drives its chain', () => {
  it('the hop it took over keeps closing its rounds: no round of its layers waits for the deadline or is abandoned', async () => {
    const net = new Net();
    const stages: RunningStage[] = [];
    try {
      const c1 = chainOf(net, { id: 'd1', span: S0 }, [{ id: 'h1', span: S1 }], STEP_MS);
      const c2 = chainOf(net, { id: 'd2', span: S0 }, [{ id: 'h2', span: S1 }], STEP_MS);
      const [d1, h1, d2, h2] = [runStage(c1.driver, H, true), runStage(c1.hops[0]!, H, true), runStage(c2.driver, H, true), runStage(c2.hops[0]!, H, true)];
      stages.push(d1, h1, d2, h2);
      await until(() => [d1, h1, d2, h2].every((s) => s.reports.length >= 2), 30_000, 'two rounds on every stage');

      // d1 leaves its layers (a pool move); d3, a new driver of [0,1), takes its hop over and enters as a joiner
      await d1.stop();
      net.left.add('d1');
      const left = Date.now();
      const d3s = new DriverStage(net.create('d3', S0, STEP_MS), STEP_MS);
      d3s.attach(c1.hops[0]!);
      const d3 = runStage(d3s, H, true);
      stages.push(d3);
      await until(() => d3.reports.length >= 3 && after(h2, left).length >= 4 && after(h1, left).length >= 4, 60_000, `d3's rounds (${d3.reports.length}), h1's (${after(h1, left).length}) and h2's (${after(h2, left).length}) after the leave`);

      // the hops' layers' rounds after the leave: every one closed (h1's Δ came: d3 stepped h1 while it entered)
      for (const s of [h1, h2]) {
        for (const i of after(s, left)) {
          const r = s.reports[i]!;
          assert.ok(Object.values(r.outcome).every((o) => o === 'closed'), `${s.node.id} round ${r.round} closed on every layer: ${JSON.stringify(r.outcome)}`);
          assert.ok(r.syncMs < SYNC_MS, `${s.node.id} round ${r.round} did not wait for the deadline (${r.syncMs} ms)`);
        }
      }
      assert.ok(d3s.step > 0 && d3.enteredAt !== undefined, 'd3 drove and entered');
      // d3 entered as a joiner and left its rounds with d2's state
      const rounds = d3.reports.slice(1).map((r) => r.round);
      const shared = rounds.filter((r) => d2.reports.some((x) => x.round === r));
      assert.ok(shared.length >= 1, `d3 and d2 closed a round together (d3 ${rounds.join(',')}; d2 ${d2.reports.map((r) => r.round).join(',')})`);
      for (const r of shared) assert.deepEqual(c2.driver.node.sync.status().closed.find((c) => c.round === r)?.hashes, d3s.node.sync.status().closed.find((c) => c.round === r)?.hashes, `d3 and d2 agree after round ${r}`);
    } finally {
      await Promise.allSettled(stages.map((s) => s.stop()));
    }
  });
});
