/**
 * The steps a driver drives while it waits to enter the outer rounds (issue 9, session 17's leftover "a driver waiting
 * to enter steps from weights the vote may replace"). It drives them for its hops, whose layers' rounds count their
 * updates (driver-entry.test.ts), but the entry installs the holders' verified state over its own span: their
 * updates to it are gone. They counted as its training all the same: toward --train-steps (a joining driver with a
 * limit of 6 that waited 20 steps trained none that stood), and in its tokens, loss and work tally.
 *
 * Now runOuterRounds marks that drive (InnerLoop.discardSteps): ChainTrainer counts those steps apart (their own
 * budget of --train-steps steps, so a driver that never enters stops too), its 'step' events say `discarded`, and the
 * node leaves them out of GET /api/training's steps and tokens/s and of its work tally.
 *
 * Over ./sync-net.ts and ./chain-stages.ts (the real round loop over in-memory chains), and the real ChainTrainer on
 * the reference backend.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TrainStepsReachedError } from '../../../src/training/index.js';
import type { InnerStepsResult } from '../../../src/training/inner.js';
import { OpStage, runStageOp } from '../../../src/training/pipeline/index.js';
import { chainOf, DriverStage, endsWithin, probeStep, runStage, twoStageChain, twoStageChainTrainer, type RunningStage } from './chain-stages.js';
import { H, Net, until, type Node } from './sync-net.js';

const S0 = { start: 0, end: 1 };
const S1 = { start: 1, end: 3 };
const STEP_MS = 10;

/**
 * chain-stages' DriverStage with ChainTrainer's accounting: a step abandoned on the chain (a paused hop refused it)
 * moves no counter (ChainTrainer's pipeline step does not move for it); steps applied while discarding count apart,
 * with a budget of `limit` of their own. runStage reads `stepLimit − step` as the steps left: kept so between calls.
 */
class DiscardingDriver extends DriverStage {
  discarded = 0;
  /** Step ids abandoned on the chain (not counted anywhere). */
  skipped = 0;
  private discarding = false;

  constructor(
    node: Node,
    stepMs: number,
    readonly limit: number,
  ) {
    super(node, stepMs);
    this.sync();
  }

  counted(): number {
    return this.step - this.discarded - this.skipped;
  }

  private budget(): number {
    return Math.max(0, this.limit - (this.discarding ? this.discarded : this.counted()));
  }

  private sync(): void {
    this.stepLimit = this.step + this.budget();
  }

  discardSteps(on: boolean): void {
    this.discarding = on;
    this.sync();
  }

  override async innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult> {
    let applied = 0;
    let abandoned = 0;
    while (applied < n) {
      if (this.budget() <= 0) throw new Error(`the driver has run its ${this.limit} steps`);
      const before = this.step;
      let done = false;
      this.stepLimit = Infinity;
      try {
        await super.innerSteps(1, signal);
        done = true;
      } finally {
        // one applied step when it returned; every other id it issued was abandoned
        const ids = this.step - before;
        const ok = done ? 1 : 0;
        if (ok === 1 && this.discarding) this.discarded++;
        this.skipped += ids - ok;
        abandoned += ids - ok;
        applied += ok;
        this.sync();
      }
    }
    return { applied, abandoned, meanLoss: NaN, tokens: 0 };
  }
}

describe('the steps a driver drives while it waits to enter the rounds are discarded', () => {
  it('they do not count toward its --train-steps: it trains its limit inside the rounds', async () => {
    const net = new Net();
    const stages: RunningStage[] = [];
    try {
      const c1 = chainOf(net, { id: 'd1', span: S0 }, [{ id: 'h1', span: S1 }], STEP_MS);
      const c2 = chainOf(net, { id: 'd2', span: S0 }, [{ id: 'h2', span: S1 }], STEP_MS);
      const [d1, h1, d2, h2] = [runStage(c1.driver, H, true), runStage(c1.hops[0]!, H, true), runStage(c2.driver, H, true), runStage(c2.hops[0]!, H, true)];
      stages.push(d1, h1, d2, h2);
      await until(() => [d1, h1, d2, h2].every((s) => s.reports.length >= 2), 30_000, 'two rounds on every stage');
      // d1 leaves (a pool move); d3 takes its hop over and enters as a joiner, with a limit of 4 rounds' steps
      await d1.stop();
      net.left.add('d1');
      const LIMIT = 4 * H;
      const d3s = new DiscardingDriver(net.create('d3', S0, STEP_MS), STEP_MS, LIMIT);
      d3s.attach(c1.hops[0]!);
      const d3 = runStage(d3s, H, true, { limit: LIMIT });
      stages.push(d3);
      await until(() => d3.enteredAt !== undefined, 30_000, 'd3 entered');
      const atEntry = d3s.step;
      assert.equal(await endsWithin(d3, 30_000), 'ended', `d3's round loop ended (step ${d3s.step}, discarded ${d3s.discarded})`);
      assert.ok(d3s.discarded > 0, 'd3 drove its chain while it waited, and those steps were marked discarded');
      assert.ok(d3s.discarded <= atEntry, `the discarded steps (${d3s.discarded}) are ones run before the entry (${atEntry})`);
      assert.ok(d3s.discarded <= LIMIT, 'the discarded steps have a budget of the limit');
      // the steps that count are its whole limit inside the rounds, four rounds of H from its entry: the discarded
      // ones did not eat it (before, d3 stopped at its limit counting them)
      assert.equal(d3s.counted(), LIMIT, `d3 counted ${d3s.counted()} steps (discarded ${d3s.discarded}, abandoned ${d3s.skipped}), its limit is ${LIMIT}`);
      assert.equal(d3.reports.length, LIMIT / H, 'four rounds from its entry');
      assert.ok(d3.reports.every((r) => Object.values(r.outcome).every((x) => x !== 'abandoned')), 'none of d3\'s rounds abandoned');
    } finally {
      await Promise.allSettled(stages.map((s) => s.stop()));
    }
  });

  it('ChainTrainer counts discarded steps apart: their own budget, and its events say so', async () => {
    const trainer = twoStageChainTrainer(3);
    const events: { discarded: boolean; counted: number; tokens: number }[] = [];
    trainer.events.on('step', (e) => events.push({ discarded: e.discarded, counted: e.counted, tokens: e.tokens }));
    await trainer.discardSteps(true);
    assert.equal((await trainer.innerSteps(2)).applied, 2);
    assert.equal(trainer.discardedSteps(), 2);
    assert.equal(trainer.countedSteps(), 0);
    assert.equal(trainer.stepsLeft(), 1, 'while discarding: the discarded steps\' budget');
    await assert.rejects(trainer.innerSteps(5), TrainStepsReachedError, 'a driver that never enters stops at its budget');
    assert.equal(trainer.discardedSteps(), 3);
    await trainer.discardSteps(false);
    assert.equal(trainer.stepsLeft(), 3, 'none of the discarded steps counts toward the limit');
    assert.equal((await trainer.innerSteps(3)).applied, 3);
    assert.equal(trainer.step, 6);
    assert.equal(trainer.countedSteps(), 3);
    assert.equal(trainer.stepsLeft(), 0);
    await assert.rejects(trainer.innerSteps(1), TrainStepsReachedError);
    assert.deepEqual(
      events.map((e) => [e.discarded, e.counted]),
      [
        [true, 0],
        [true, 0],
        [true, 0],
        [false, 1],
        [false, 2],
        [false, 3],
      ],
    );
    assert.ok(events.every((e) => e.tokens > 0));
  });

  it('discarded steps do not move the lr schedule on: a driver that waited trains at the rates of one that did not', async () => {
    // twoStageChainTrainer: warm-up then a cosine to step 10, so every step's lr differs from the next one's
    const lrs = (t: ReturnType<typeof twoStageChainTrainer>): { lr: number; discarded: boolean }[] => {
      const out: { lr: number; discarded: boolean }[] = [];
      t.events.on('step', (e) => out.push({ lr: e.lr, discarded: e.discarded }));
      return out;
    };
    const fresh = twoStageChainTrainer(20);
    const freshLrs = lrs(fresh);
    await fresh.innerSteps(6);
    const waited = twoStageChainTrainer(20);
    const waitedLrs = lrs(waited);
    await waited.discardSteps(true);
    await waited.innerSteps(4);
    await waited.discardSteps(false);
    await waited.innerSteps(3);
    // a second wait (a driver that fell out of the rounds and enters again) after 3 counted steps
    await waited.discardSteps(true);
    await waited.innerSteps(2);
    await waited.discardSteps(false);
    await waited.innerSteps(3);
    const f = freshLrs.map((e) => e.lr);
    assert.equal(new Set(f).size, 6, 'the schedule gives every one of the first 6 steps its own lr');
    assert.deepEqual(
      waitedLrs.filter((e) => !e.discarded).map((e) => e.lr),
      f,
      'the counted steps run at the fresh driver\'s rates, step for step',
    );
    // the discarded steps keep the rates they had: the first wait from the schedule's start, the second from the
    // counted steps' position (their updates stand on the hops)
    assert.deepEqual(
      waitedLrs.filter((e) => e.discarded).map((e) => e.lr),
      [f[0], f[1], f[2], f[3], f[3], f[4]],
    );
    assert.equal(waited.scheduleStep(), 6);
    assert.equal(waited.step, 12);
  });

  it('discarded steps leave no trace in the optimizer of the driver\'s span: weights, moments and step count put back', async () => {
    // a fresh driver, and one that discarded 4 steps while it waited (same initial weights and data)
    const fresh = twoStageChain(20);
    const waited = twoStageChain(20);
    assert.deepEqual(waited.local.params, fresh.local.params, 'the two drivers start from the same weights');
    await waited.trainer.discardSteps(true);
    assert.equal((await waited.trainer.innerSteps(4)).applied, 4);
    assert.equal(waited.local.appliedSteps, 4, 'the discarded steps ran on our span (their update stands on the hop)');
    assert.equal(waited.hop.appliedSteps, 4);
    await waited.trainer.discardSteps(false);
    assert.equal(waited.local.appliedSteps, 0, 'AdamW\'s step count is put back (on main it stays at 4)');
    assert.equal(waited.hop.appliedSteps, 4, 'the hop keeps its steps: its rounds count them');
    assert.deepEqual(waited.local.params, fresh.local.params, 'the weights are those before the wait');
    // the entry installs the holders' weights (the same here); the next step then runs on a fresh optimizer: the
    // same moments and bias correction as the fresh driver's first step (on main: step 5 with the wait's moments)
    assert.deepEqual(await probeStep(waited.local), await probeStep(fresh.local), 'the first counted step is a fresh driver\'s');
    assert.equal(waited.local.appliedSteps, 1);
    // the schedule and the accounting are unchanged
    assert.equal(waited.trainer.discardedSteps(), 4);
    assert.equal(waited.trainer.countedSteps(), 0);
  });

  it('a second wait puts back the state of the counted steps before it (a driver that fell out and enters again)', async () => {
    const twin = twoStageChain(20);
    const waited = twoStageChain(20);
    // the same 3 counted steps on both: bit-identical states (reference backend, same data)
    await twin.trainer.innerSteps(3);
    await waited.trainer.innerSteps(3);
    assert.deepEqual(waited.local.params, twin.local.params);
    await waited.trainer.discardSteps(true);
    await waited.trainer.innerSteps(2);
    assert.notDeepEqual(waited.local.params, twin.local.params, 'the discarded steps moved the weights');
    await waited.trainer.discardSteps(false);
    assert.equal(waited.local.appliedSteps, 3);
    assert.deepEqual(waited.local.params, twin.local.params);
    assert.deepEqual(await probeStep(waited.local), await probeStep(twin.local), 'moments and step count are the counted steps\' (nonzero moments put back)');
    // discardSteps(false) twice, or without a wait, changes nothing
    await waited.trainer.discardSteps(false);
    assert.equal(waited.local.appliedSteps, 4);
  });

  it('saveState / restoreState as stage ops (the compute worker\'s transport): the state comes back, once', async () => {
    const { local } = twoStageChain(20);
    const twin = twoStageChain(20).local;
    const op = new OpStage(local.span, 2, (o) => runStageOp(local, o));
    assert.equal(await op.restoreState(), false, 'nothing saved: nothing put back');
    await probeStep(local);
    await probeStep(twin);
    await op.saveState();
    await probeStep(local);
    await probeStep(local);
    assert.equal(local.appliedSteps, 3);
    assert.equal(await op.restoreState(), true);
    assert.equal(op.appliedSteps, 1, 'the answer carries the step count put back');
    assert.deepEqual(local.params, twin.params);
    assert.deepEqual(await probeStep(local), await probeStep(twin));
    assert.equal(await op.restoreState(), false, 'a saved state is put back once');
  });
});
