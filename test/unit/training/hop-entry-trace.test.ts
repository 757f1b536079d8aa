/**
 * A joining hop's optimizer (issue 9, session 21's leftover "a joining passive hop still carries optimizer traces of
 * the steps it applied while waiting to enter"). A hop that joins a layer's outer rounds lets its driver step it while
 * it waits for the holders' boundary (the rounds of the driver's layers count those steps; its own do not), and the
 * entry then installs the holders' weights over its span. AdamW's moments and step count (the bias correction) are
 * not in what the entry installs: before, they still carried the steps of the wait, so the hop's first counted steps
 * differed from a hop's that entered cleanly with the same weights, and the layer's holders drifted apart until the
 * next aggregation evened the weights (the moments never). Now runOuterRounds keeps the hop's state when it lets the
 * steps through and puts it back inside the install's pause (HopInnerLoop.discardSteps, the stage's saveState /
 * restoreState), as for a waiting driver (entry-discard.test.ts).
 *
 * The real ChainTrainer, HopInnerLoop and LocalStages on the reference backend, the real runOuterRounds and OuterSync
 * over the in-memory network of ./sync-net.ts (whose holder `a` steps its own weights).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChainTrainer, HopInnerLoop, type Batch, type BatchSource, type LocalSpanStage } from '../../../src/training/index.js';
import { runOuterRounds } from '../../../src/training/chain-outer.js';
import { LocalStage, OpStage, batchOf, runStageOp, type PipelineStage, type StageForwardResult, type StepApply } from '../../../src/training/pipeline/index.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { randomIds, reference } from '../model/helpers.js';
import { probeStep } from './chain-stages.js';
import { cfg, H, Net, until, type Node } from './sync-net.js';

const S0 = { start: 0, end: 1 };
const S1 = { start: 1, end: 3 };

/**
 * The hop's side of the train-stage server over its LocalStage, in process: a paused hop refuses a step's begin
 * (STAGE_PAUSED: the driver keeps its chain and tries again), a pause waits for the step in flight, and every applied
 * step is announced (the server's 'step:applied'). `closeAt`, asked at every pause: true closes the hop for good
 * (every later step refused), so that the test reads the state an install left, with no step after it.
 */
class ServedHop implements PipelineStage {
  paused = false;
  closed = false;
  applied = 0;
  closeAt: () => boolean = () => false;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private listeners: ((e: { step: number; peer: string }) => void)[] = [];

  constructor(readonly stage: LocalStage) {}

  get span(): { start: number; end: number } {
    return this.stage.span;
  }
  get isFirst(): boolean {
    return this.stage.isFirst;
  }
  get isLast(): boolean {
    return this.stage.isLast;
  }

  onApplied(fn: (e: { step: number; peer: string }) => void): () => void {
    this.listeners.push(fn);
    return () => (this.listeners = this.listeners.filter((f) => f !== fn));
  }

  async pause(): Promise<void> {
    this.paused = true;
    if (this.closeAt()) this.closed = true;
    while (this.inFlight > 0) await new Promise<void>((res) => this.waiters.push(res));
  }

  resume(): void {
    this.paused = false;
  }

  private end(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  beginStep(step: number): Promise<void> {
    if (this.paused || this.closed) return Promise.reject(new NeuroShardError('STAGE_PAUSED', 'this hop is between inner steps (outer sync); retry later'));
    this.inFlight++;
    return this.stage.beginStep(step);
  }
  forward(step: number, mb: number, input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array, gradScale?: number): Promise<StageForwardResult> {
    return this.stage.forward(step, mb, input, B, T, targets, gradScale);
  }
  backward(step: number, mb: number, dOut: Float32Array | null): Promise<Float32Array | null> {
    return this.stage.backward(step, mb, dOut);
  }
  gradSumSquares(step: number): Promise<number> {
    return this.stage.gradSumSquares(step);
  }
  async applyStep(step: number, a: StepApply): Promise<void> {
    // LocalStage applies at the call: counted with it, so that `applied` and the stage's step count move together
    const done = this.stage.applyStep(step, a);
    this.applied++;
    await done;
    this.end();
    for (const f of this.listeners) f({ step, peer: 'd' });
  }
  async abortStep(step: number): Promise<void> {
    await this.stage.abortStep(step);
    this.end();
  }
  evalForward(input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array): Promise<StageForwardResult> {
    return this.stage.evalForward(input, B, T, targets);
  }
}

/** A driver 'd' on [0, 1) whose chain is d → `hop`, stepping until `signal` aborts (refused steps are retried). */
function drive(hop: ServedHop, signal: AbortSignal, errors: unknown[]): Promise<void> {
  const B = 2;
  const T = 4;
  let i = 0;
  const data: BatchSource = {
    next: (): Batch => {
      const ids = randomIds(B * T * 2, cfg.vocab_size, 11 + i++);
      return batchOf(ids.subarray(0, B * T), ids.subarray(B * T), B, T);
    },
    position: () => i,
  };
  const local = new LocalStage(cfg, reference, S0, { seed: 1 }) as unknown as LocalSpanStage;
  const trainer = new ChainTrainer({
    self: 'd',
    local,
    data,
    pipeline: { microBatches: 1, schedule: 'gpipe', trainer: { decaySteps: 100 } },
    retryMs: 5,
    formChain: () => Promise.resolve([{ peer: 'd', span: S0, stage: local }, { peer: 'j', span: S1, stage: hop, release: () => Promise.resolve() }]),
  });
  return (async () => {
    while (!signal.aborted) {
      try {
        await trainer.innerSteps(1, signal);
      } catch (e) {
        // a step that failed on the driver's own span: not expected; the test reports it
        if (!signal.aborted) errors.push(e);
      }
      // in-process stages answer in microtasks: a step apart, as the chain's transport would be (the rounds' timers run)
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
}

/**
 * A joining hop `j` on [1, 3): its LocalStage holds the node's params (the outer sync installs into it). `again`: a new
 * session over the same stage (a new OuterSync and inner loop, as node/chain.ts starts after a move that failed).
 */
function joiningHop(net: Net, again?: { stage: LocalStage; served: ServedHop }): { node: Node; stage: LocalStage; served: ServedHop; inner: HopInnerLoop } {
  const stage = again?.stage ?? new LocalStage(cfg, reference, S1, { seed: 2 });
  const node = net.create('j', S1, 20, stage.params);
  const served = again?.served ?? new ServedHop(stage);
  const inner = new HopInnerLoop({
    // the compute worker's transport in production (node/chain.ts hopInnerLoop: an OpStage over `stage` jobs)
    local: new OpStage(S1, cfg.num_hidden_layers, (o) => runStageOp(stage, o)),
    onApplied: (fn) => served.onApplied(fn),
    pause: () => served.pause(),
    resume: () => served.resume(),
  });
  return { node, stage, served, inner };
}

const moments = (s: LocalStage): { m: Float32Array; v: Float32Array } => s as unknown as { m: Float32Array; v: Float32Array };
const zero = (a: Float32Array): boolean => a.every((x) => x === 0);

describe('a joining hop\'s optimizer', () => {
  it('the steps a hop applied while it waited to enter leave no trace: after the install it steps as a hop that entered cleanly', async () => {
    const net = new Net();
    const stop = new AbortController();
    let driving: Promise<void> | undefined;
    let rounds: Promise<void> | undefined;
    const errors: unknown[] = [];
    try {
      // a holder of [1, 3) in its rounds, frozen in the inner steps of a round it began before j existed: j waits
      // for its next boundary (the first that counts j), and j's driver steps j meanwhile
      const a = net.start('a', S1, 20);
      await until(() => a.closed.length >= 2, 30_000, 'two rounds on a');
      net.frozen.add('a');
      await until(() => a.sync.status().phase === 'inner', 30_000, 'a in the inner steps of a round');
      const j = joiningHop(net);
      // the hold's pause comes before any step; the next pause is the install's
      j.served.closeAt = () => j.served.applied > 0;
      rounds = runOuterRounds({ inner: j.inner, sync: j.node.sync, innerSteps: H, signal: stop.signal }).catch((e: unknown) => {
        if (!stop.signal.aborted) throw e;
      });
      driving = drive(j.served, stop.signal, errors);
      const K = 4;
      await until(() => j.inner.appliedSteps() >= K || errors.length > 0, 60_000, `j applied ${K} steps while it waits`);
      assert.deepEqual(errors, [], 'the driver\'s steps do not fail');
      assert.equal(j.node.sync.status().phase, 'entering', 'j is still entering');
      net.frozen.delete('a');
      await until(() => j.node.sync.status().phase !== 'entering', 30_000, 'j entered');
      stop.abort();
      await driving;
      await rounds;
      const k = j.served.applied;
      assert.ok(k >= K, `j applied ${k} steps before its entry`);
      assert.equal(j.served.closed, true, 'no step after the install');
      // the install took the holders' state: j's state after the round before its entry is a's
      const entered = j.node.sync.status().entered!;
      const mine = j.node.sync.status().closed.find((c) => c.round === entered - 1)?.hashes;
      const theirs = a.sync.status().closed.find((c) => c.round === entered - 1)?.hashes;
      assert.ok(mine !== undefined && theirs !== undefined);
      assert.deepEqual(mine, theirs, 'j holds the weights a closed the round before its entry with');
      // AdamW: a fresh joiner's state (step count 0, zero moments). Before, step count k and the wait's moments
      assert.equal(j.stage.appliedSteps, 0, `AdamW's step count after the install (j applied ${k} steps while it waited)`);
      assert.ok(zero(moments(j.stage).m) && zero(moments(j.stage).v), 'AdamW\'s moments after the install are zero');
      // one counted step: bit-identical to a hop that entered cleanly (a fresh stage given the same weights)
      const clean = new LocalStage(cfg, reference, S1, { params: j.stage.params.slice() });
      assert.deepEqual(await probeStep(j.stage), await probeStep(clean), 'the first counted step is a cleanly entered hop\'s');
      assert.equal(j.stage.appliedSteps, 1);
      assert.deepEqual(moments(j.stage).m, moments(clean).m);
      assert.deepEqual(moments(j.stage).v, moments(clean).v);
    } finally {
      stop.abort();
      await Promise.allSettled([driving, rounds]);
      await net.stop();
    }
  });

  it('a hop whose entry stopped after its driver stepped it enters later with the state from before those steps', async () => {
    const net = new Net();
    const stopDrive = new AbortController();
    const stop1 = new AbortController();
    const stop2 = new AbortController();
    const errors: unknown[] = [];
    let driving: Promise<void> | undefined;
    let rounds1: Promise<void> | undefined;
    let rounds2: Promise<void> | undefined;
    try {
      const a = net.start('a', S1, 20);
      await until(() => a.closed.length >= 2, 30_000, 'two rounds on a');
      net.frozen.add('a');
      await until(() => a.sync.status().phase === 'inner', 30_000, 'a in the inner steps of a round');
      const j1 = joiningHop(net);
      rounds1 = runOuterRounds({ inner: j1.inner, sync: j1.node.sync, innerSteps: H, signal: stop1.signal }).catch((e: unknown) => {
        if (!stop1.signal.aborted) throw e;
      });
      driving = drive(j1.served, stopDrive.signal, errors);
      await until(() => j1.served.applied >= 3 || errors.length > 0, 60_000, 'j applied 3 steps while it waits');
      // the entry stops (a leave: the pool moves j's span): the state kept at its hold's end stays in the stage
      stop1.abort();
      await rounds1;
      j1.inner.close();
      // the move fails; meanwhile the driver steps j on (counted by nobody on j's side)
      const left = j1.served.applied;
      await until(() => j1.served.applied >= left + 2 || errors.length > 0, 60_000, 'two more steps after the leave');
      assert.equal(j1.node.sync.status().phase, 'entering');
      // a new session over the same stage enters j's span's rounds again
      let pauses = 0;
      j1.served.closeAt = () => ++pauses === 2; // the new hold's pause, then the install's
      const j2 = joiningHop(net, j1);
      rounds2 = runOuterRounds({ inner: j2.inner, sync: j2.node.sync, innerSteps: H, signal: stop2.signal }).catch((e: unknown) => {
        if (!stop2.signal.aborted) throw e;
      });
      const second = j1.served.applied;
      await until(() => j1.served.applied > second || errors.length > 0, 60_000, 'the driver steps j while its second entry waits');
      net.frozen.delete('a');
      await until(() => j2.node.sync.status().phase !== 'entering', 30_000, 'j entered');
      stopDrive.abort();
      stop2.abort();
      await driving;
      await rounds2;
      assert.deepEqual(errors, [], 'the driver\'s steps do not fail');
      assert.equal(j1.served.closed, true, 'no step after the install');
      const k = j1.served.applied;
      assert.ok(k >= 6, `j applied ${k} steps before its entry, over two entries and the gap between them`);
      // the state of the first entry's hold end: a fresh stage's. Before (a second save replaced the first), the
      // second entry put back a state with the first entry's steps and the gap's in it
      assert.equal(j1.stage.appliedSteps, 0, `AdamW's step count after the install (j applied ${k} steps before it)`);
      assert.ok(zero(moments(j1.stage).m) && zero(moments(j1.stage).v), 'AdamW\'s moments after the install are zero');
      const clean = new LocalStage(cfg, reference, S1, { params: j1.stage.params.slice() });
      assert.deepEqual(await probeStep(j1.stage), await probeStep(clean), 'the first counted step is a cleanly entered hop\'s');
    } finally {
      stopDrive.abort();
      stop1.abort();
      stop2.abort();
      await Promise.allSettled([driving, rounds1, rounds2]);
      await net.stop();
    }
  });

  it('left (documented): a hop that leaves its rounds keeps the steps its driver applies until its next entry\'s hold', async () => {
    // a move that failed: leave() ends the session while the hop is in its rounds, its server keeps serving its
    // driver through the move's download, and the next session over the same stage keeps the state its own hold
    // ended with (keeping a copy at every leave would cost three copies of the span during every move)
    const net = new Net();
    const stopDrive = new AbortController();
    const stop1 = new AbortController();
    const stop2 = new AbortController();
    const errors: unknown[] = [];
    let driving: Promise<void> | undefined;
    let rounds1: Promise<void> | undefined;
    let rounds2: Promise<void> | undefined;
    try {
      const a = net.start('a', S1, 20);
      await until(() => a.closed.length >= 2, 30_000, 'two rounds on a');
      const j1 = joiningHop(net);
      rounds1 = runOuterRounds({ inner: j1.inner, sync: j1.node.sync, innerSteps: H, signal: stop1.signal }).catch((e: unknown) => {
        if (!stop1.signal.aborted) throw e;
      });
      driving = drive(j1.served, stopDrive.signal, errors);
      await until(() => j1.node.sync.status().phase !== 'entering' || errors.length > 0, 30_000, 'j entered');
      // in its rounds: it counts a step (a clean entry: step count 0 at the install, one step since)
      await until(() => j1.stage.appliedSteps >= 1 || errors.length > 0, 30_000, 'a counted step on j');
      stop1.abort();
      await rounds1;
      j1.inner.close();
      const atLeave = j1.stage.appliedSteps;
      const appliedAtLeave = j1.served.applied;
      await until(() => j1.served.applied >= appliedAtLeave + 2 || errors.length > 0, 30_000, 'two steps after the leave');
      // the new session holds the steps off from its start (its hold) and lets none through again
      j1.served.closeAt = () => true;
      const j2 = joiningHop(net, j1);
      rounds2 = runOuterRounds({ inner: j2.inner, sync: j2.node.sync, innerSteps: H, signal: stop2.signal }).catch((e: unknown) => {
        if (!stop2.signal.aborted) throw e;
      });
      await until(() => j2.node.sync.status().phase !== 'entering', 30_000, 'j entered again');
      stopDrive.abort();
      stop2.abort();
      await driving;
      await rounds2;
      assert.deepEqual(errors, [], 'the driver\'s steps do not fail');
      const gap = j1.served.applied - appliedAtLeave;
      assert.ok(gap >= 2, `the driver applied ${gap} steps between the leave and the new hold`);
      assert.equal(j1.stage.appliedSteps, atLeave + gap, `the re-entered hop keeps them (step count ${atLeave} at the leave)`);
    } finally {
      stopDrive.abort();
      stop1.abort();
      stop2.abort();
      await Promise.allSettled([driving, rounds1, rounds2]);
      await net.stop();
    }
  });

  it('a stage keeps its first copy until it is put back (saveState while one is kept)', async () => {
    const stage = new LocalStage(cfg, reference, S1, { seed: 2 });
    const twin = new LocalStage(cfg, reference, S1, { seed: 2 });
    const op = new OpStage(S1, cfg.num_hidden_layers, (o) => runStageOp(stage, o));
    await op.saveState();
    await probeStep(stage);
    await op.saveState();
    await probeStep(stage);
    assert.equal(await op.restoreState(), true);
    assert.equal(stage.appliedSteps, 0, 'the first copy came back');
    assert.deepEqual(stage.params, twin.params);
    assert.deepEqual(await probeStep(stage), await probeStep(twin));
    assert.equal(await op.restoreState(), false, 'put back once');
  });
});
