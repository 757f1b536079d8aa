import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend, IntTensor } from '../../../src/tensor/index.js';
import { lrAt, SoloTrainer, trainLoop, trainerOptions, type Batch, type BatchSource, type CheckpointRequest, type TrainerState } from '../../../src/training/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { Rng } from '../../../src/util/rng.js';
import { BigramModel } from './tiny-model.js';

const V = 16;
const B = 2;
const T = 8;

/** A deterministic stream of batches from a repeating token pattern; its position is the batch index. */
class PatternSource implements BatchSource {
  constructor(private index = 0) {}
  next(): Batch {
    const rng = new Rng(1000 + this.index++);
    const ids = new Int32Array(B * (T + 1));
    for (let b = 0; b < B; b++) {
      let t0 = rng.int(V);
      for (let t = 0; t <= T; t++) {
        ids[b * (T + 1) + t] = t0;
        t0 = (t0 * 5 + 3) % V; // a learnable successor rule
      }
    }
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      inputs.set(ids.subarray(b * (T + 1), b * (T + 1) + T), b * T);
      targets.set(ids.subarray(b * (T + 1) + 1, b * (T + 1) + T + 1), b * T);
    }
    return { inputs: new IntTensor(inputs, [B, T]), targets: new IntTensor(targets, [B, T]) };
  }
  position(): number {
    return this.index;
  }
}

const opts = { lr: 0.05, warmupSteps: 2, decaySteps: 20 };

describe('training/schedule', () => {
  it('warms up linearly, decays by cosine to the floor, then stays there', () => {
    const o = { lr: 1, minLr: 0.1, warmupSteps: 4, decaySteps: 14 };
    assert.equal(lrAt(0, o), 0.25);
    assert.equal(lrAt(3, o), 1);
    assert.equal(lrAt(4, o), 1);
    assert.ok(Math.abs(lrAt(9, o) - 0.55) < 1e-12, 'halfway down the cosine');
    assert.equal(lrAt(14, o), 0.1);
    assert.equal(lrAt(1000, o), 0.1);
    assert.ok(lrAt(6, o) > lrAt(7, o), 'monotone decay');
  });

  it('is constant after the warm-up when decaySteps is 0', () => {
    const o = { lr: 0.5, minLr: 0.05, warmupSteps: 0, decaySteps: 0 };
    assert.equal(lrAt(0, o), 0.5);
    assert.equal(lrAt(10_000, o), 0.5);
  });

  it('validates options with typed errors', () => {
    assert.equal(trainerOptions({ lr: 2e-3 }).minLr, 2e-4);
    assert.throws(() => trainerOptions({ lr: -1 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => trainerOptions({ warmupSteps: 1.5 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => trainerOptions({ beta2: 1 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => trainerOptions({ lr: 1e-3, minLr: 1e-2 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});

describe('training/SoloTrainer', () => {
  it('lowers the loss and reports lr, grad norm and phase timings', () => {
    const backend = createReferenceBackend();
    const trainer = new SoloTrainer(backend, new BigramModel(backend, V), { ...opts, lr: 0.3 });
    const data = new PatternSource();
    const first = trainer.trainStep(data.next());
    let last = first;
    for (let i = 0; i < 19; i++) last = trainer.trainStep(data.next());
    assert.equal(first.step, 1);
    assert.equal(last.step, 20);
    assert.equal(first.lr, 0.15);
    assert.ok(first.loss > Math.log(V) - 0.1, `starts near ln V: ${first.loss}`);
    assert.ok(last.loss < first.loss * 0.5, `loss fell from ${first.loss} to ${last.loss}`);
    assert.ok(first.gradNorm > 0 && Number.isFinite(first.gradNorm));
    assert.equal(first.tokens, B * T);
    for (const k of ['forward', 'backward', 'optimizer'] as const) assert.ok(first.ms[k] >= 0);
  });

  it('skips a step with non-finite gradients, reports it, and leaves weights and moments alone', () => {
    const backend = createReferenceBackend();
    const model = new BigramModel(backend, V);
    const trainer = new SoloTrainer(backend, model, opts);
    const data = new PatternSource();
    trainer.trainStep(data.next());
    const before = new Float32Array(model.table.data);
    const stateBefore = trainer.state();
    const seen: { step: number; nonFinite: string[] }[] = [];
    trainer.events.on('step:skipped', (e) => seen.push(e));
    model.poisonNextBackward = true;
    const r = trainer.trainStep(data.next());
    assert.equal(r.applied, false);
    assert.deepEqual(r.nonFinite, ['table']);
    assert.equal(r.step, 2, 'the batch counts as consumed');
    assert.equal(trainer.appliedSteps, 1);
    assert.deepEqual(seen, [{ step: 2, loss: r.loss, gradNorm: r.gradNorm, nonFinite: ['table'] }]);
    assert.deepEqual(model.table.data, before);
    assert.deepEqual(trainer.state().optimizer, stateBefore.optimizer);
    // and training goes on normally afterwards
    const next = trainer.trainStep(data.next());
    assert.equal(next.applied, true);
    assert.equal(trainer.appliedSteps, 2);
  });

  it('resumes exactly: losses after a restore are bitwise equal to an uninterrupted run', () => {
    const backend = createReferenceBackend();
    const steps = 8;
    const cut = 3;
    const full = new SoloTrainer(backend, new BigramModel(backend, V), opts);
    const dataFull = new PatternSource();
    const want: number[] = [];
    for (let i = 0; i < steps; i++) want.push(full.trainStep(dataFull.next()).loss);

    const m1 = new BigramModel(backend, V);
    const t1 = new SoloTrainer(backend, m1, opts);
    const d1 = new PatternSource();
    for (let i = 0; i < cut; i++) t1.trainStep(d1.next());
    // a "checkpoint": weights, trainer state, data position, taken through a structured clone as across threads
    const saved = structuredClone({ weights: m1.table.data, state: t1.state(), position: d1.position() }) as {
      weights: Float32Array;
      state: TrainerState;
      position: number;
    };

    const m2 = new BigramModel(backend, V, 999); // different init: everything must come from the checkpoint
    m2.table.data.set(saved.weights);
    const t2 = new SoloTrainer(backend, m2, opts);
    t2.loadState(saved.state);
    const d2 = new PatternSource(saved.position);
    const got: number[] = [];
    for (let i = cut; i < steps; i++) got.push(t2.trainStep(d2.next()).loss);
    assert.equal(t2.step, steps);
    for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[cut + i]), `step ${cut + i + 1}: ${got[i]} vs ${want[cut + i]}`);
  });
});

describe('training/trainLoop', () => {
  function setup() {
    const backend = createReferenceBackend();
    const trainer = new SoloTrainer(backend, new BigramModel(backend, V), opts);
    const stepper = {
      currentStep: () => trainer.step,
      trainStep: (b: Batch) => trainer.trainStep(b),
      evaluate: (bs: Batch[]) => trainer.evaluate(bs),
    };
    return { trainer, stepper };
  }

  it('runs to the target step with periodic evaluation and checkpoints', async () => {
    const { stepper } = setup();
    const data = new PatternSource();
    const ckpts: CheckpointRequest[] = [];
    const evals: number[] = [];
    const evalData = new PatternSource(10_000);
    const evalSet = [evalData.next(), evalData.next()];
    const r = await trainLoop({
      stepper,
      data,
      targetStep: 7,
      evalEvery: 2,
      evalBatches: () => evalSet,
      checkpointEvery: 3,
      onCheckpoint: (c) => {
        ckpts.push(c);
      },
      onEval: (e) => evals.push(e.step),
    });
    assert.equal(r.step, 7);
    assert.equal(r.stoppedBy, 'target');
    assert.deepEqual(evals, [2, 4, 6]);
    assert.deepEqual(
      ckpts.map((c) => [c.step, c.reason, c.dataPosition]),
      [
        [3, 'periodic', 3],
        [6, 'periodic', 6],
        [7, 'final', 7],
      ],
    );
    assert.ok(r.lastValLoss !== undefined && Number.isFinite(r.lastValLoss));
  });

  it('stops after the current step when aborted and cuts a stopped checkpoint', async () => {
    const { stepper } = setup();
    const ac = new AbortController();
    const ckpts: CheckpointRequest[] = [];
    const r = await trainLoop({
      stepper,
      data: new PatternSource(),
      targetStep: 100,
      signal: ac.signal,
      onStep: (s) => {
        if (s.step === 4) ac.abort();
      },
      onCheckpoint: (c) => {
        ckpts.push(c);
      },
    });
    assert.equal(r.stoppedBy, 'signal');
    assert.equal(r.step, 4);
    assert.deepEqual(
      ckpts.map((c) => [c.step, c.reason]),
      [[4, 'stopped']],
    );
  });

  it('continues from the stepper’s step toward an absolute target', async () => {
    const { trainer, stepper } = setup();
    const data = new PatternSource();
    for (let i = 0; i < 5; i++) trainer.trainStep(data.next());
    const r = await trainLoop({ stepper, data, targetStep: 8 });
    assert.equal(r.step, 8);
    assert.equal(data.position(), 8);
  });
});
