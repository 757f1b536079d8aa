/**
 * `--train-steps` holds for every step a chain's driver runs (issue 9, session 14's leftover "a driver that enters
 * ignores --train-steps while it waits"). A driver's round loop (training/chain-outer.ts runOuterRounds) stopped only
 * at a boundary once the limit was passed, so a round begun below it ran its H steps past it (limit 10, H = 3: 12
 * steps), and the steps a joining driver drives while it waits to enter (`drives`, session 14) moved its boundaries off
 * multiples of H, so the overshoot came after any entry. Now ChainTrainer issues no step past its `stepLimit` (checked
 * per step: innerSteps counts applied steps, a skipped one would pass it), and runOuterRounds begins no round whose
 * steps would pass `stepsLeft()`: the driver stops at the last boundary within the limit.
 *
 * Over ./sync-net.ts and ./chain-stages.ts (the real round loop over in-memory chains), and the real ChainTrainer on
 * the reference backend.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TrainStepsReachedError } from '../../../src/training/index.js';
import { chainOf, DriverStage, endsWithin, runStage, twoStageChainTrainer, type RunningStage } from './chain-stages.js';
import { H, Net, until } from './sync-net.js';

const S0 = { start: 0, end: 1 };
const S1 = { start: 1, end: 3 };
const STEP_MS = 10;

describe('--train-steps holds for every step a driver runs', () => {
  it('a driver in the outer rounds stops at the last boundary within its limit (limit 10, H = 3: 9 steps, not 12)', async () => {
    const net = new Net();
    const stages: RunningStage[] = [];
    try {
      const c = chainOf(net, { id: 'd', span: S0 }, [{ id: 'h', span: S1 }], STEP_MS);
      const d = runStage(c.driver, H, true, { limit: 10 });
      const h = runStage(c.hops[0]!, H, true);
      stages.push(d, h);
      assert.equal(await endsWithin(d, 20_000), 'ended', `the driver's round loop ended (step ${c.driver.step})`);
      assert.equal(c.driver.step, 9, 'three rounds of 3 steps; the fourth would pass the limit and was not begun');
      assert.equal(d.reports.length, 3, 'the driver closed three rounds');
      // its hop closed the same rounds (the driver stopped at a boundary, not mid-round)
      await until(() => h.reports.length >= 3, 10_000, 'the hop\'s three rounds');
      assert.equal(c.hops[0]!.applied, 9);
    } finally {
      await Promise.allSettled(stages.map((s) => s.stop()));
    }
  });

  it('a driver that drives its chain while it waits to enter never passes its limit (this harness counts the waiting steps against it; ChainTrainer gives them a budget of their own: entry-discard.test)', async () => {
    const net = new Net();
    const stages: RunningStage[] = [];
    try {
      const c1 = chainOf(net, { id: 'd1', span: S0 }, [{ id: 'h1', span: S1 }], STEP_MS);
      const c2 = chainOf(net, { id: 'd2', span: S0 }, [{ id: 'h2', span: S1 }], STEP_MS);
      const [d1, h1, d2, h2] = [runStage(c1.driver, H, true), runStage(c1.hops[0]!, H, true), runStage(c2.driver, H, true), runStage(c2.hops[0]!, H, true)];
      stages.push(d1, h1, d2, h2);
      await until(() => [d1, h1, d2, h2].every((s) => s.reports.length >= 2), 30_000, 'two rounds on every stage');
      // d1 leaves (a pool move); d3 takes its hop over and enters as a joiner, with a limit of 5 steps in all
      await d1.stop();
      net.left.add('d1');
      const d3s = new DriverStage(net.create('d3', S0, STEP_MS), STEP_MS);
      d3s.attach(c1.hops[0]!);
      const d3 = runStage(d3s, H, true, { limit: 5 });
      stages.push(d3);
      await until(() => d3s.step >= 5 || d3.enteredAt !== undefined, 30_000, 'd3 drove or entered');
      assert.equal(await endsWithin(d3, 30_000), 'ended', `d3's round loop ended (step ${d3s.step})`);
      assert.ok(d3s.step <= 5, `d3 ran ${d3s.step} steps, its limit is 5`);
      assert.ok(d3s.step > 0, 'd3 drove its chain while it waited');
      // what it ran inside the rounds ended at a boundary: whole rounds of H steps after its entry
      assert.ok(d3.reports.every((r) => Object.values(r.outcome).every((x) => x !== 'abandoned')), 'none of d3\'s rounds abandoned');
    } finally {
      await Promise.allSettled(stages.map((s) => s.stop()));
    }
  });

  it('ChainTrainer issues no step past its stepLimit (innerSteps rejects with TrainStepsReachedError)', async () => {
    const trainer = twoStageChainTrainer(3);
    assert.equal(trainer.stepsLeft(), 3);
    assert.equal((await trainer.innerSteps(2)).applied, 2);
    await assert.rejects(trainer.innerSteps(5), TrainStepsReachedError);
    assert.equal(trainer.step, 3);
    assert.equal(trainer.appliedSteps(), 3);
    assert.equal(trainer.stepsLeft(), 0);
    await assert.rejects(trainer.innerSteps(1), TrainStepsReachedError);
    assert.equal(trainer.step, 3, 'no step issued at the limit');
  });
});
