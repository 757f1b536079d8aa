/**
 * SoloTrainer: the inner loop's single step, run where the model lives (inside the compute worker in a node):
 *
 *   lr = schedule(step) → zero grads → forward (loss) → backward → AdamW with global-norm clipping
 *
 * A step whose loss or gradients are not finite is skipped (weights, moments and the optimizer's step count stay
 * as they were) and reported through `step:skipped`; the batch still counts as consumed, so the schedule and the
 * data position move on exactly as in a run without the bad batch being retried.
 *
 * state()/loadState() carry everything a resume needs besides the weights and the data position: the step count
 * and the optimizer's moments. Together they make a resumed run bitwise equal to an uninterrupted one (same thread
 * count: the native kernels' reduction order depends on it).
 */
import { AdamW, type AdamWState, type Backend } from '../tensor/index.js';
import { InvalidArgumentError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { trainerOptions, type TrainerOptions } from './options.js';
import { lrAt } from './schedule.js';
import type { Batch, TrainableModel } from './types.js';

export interface StepTimings {
  forward: number;
  backward: number;
  optimizer: number;
}

export interface TrainStepResult {
  /** Steps taken so far, this one included (skipped steps count: they consumed a batch). */
  step: number;
  loss: number;
  /** Target positions counted in the loss. */
  tokens: number;
  lr: number;
  /** Global gradient norm before clipping (NaN/Infinity on a skipped step; NaN when the loss was not finite). */
  gradNorm: number;
  clipScale: number;
  /** False when the step was skipped. */
  applied: boolean;
  /** What was not finite on a skipped step: 'loss' or parameter names. */
  nonFinite: string[];
  /** Milliseconds spent in each phase. */
  ms: StepTimings;
}

export interface TrainerEvents {
  'step:skipped': { step: number; loss: number; gradNorm: number; nonFinite: string[] };
}

/** What a checkpoint keeps of the trainer (the weights are saved with the model). */
export interface TrainerState {
  step: number;
  options: TrainerOptions;
  optimizer: AdamWState;
}

export class SoloTrainer {
  readonly events = new TypedEmitter<TrainerEvents>();
  readonly options: TrainerOptions;
  private readonly optimizer: AdamW;
  private stepCount = 0;

  constructor(
    backend: Backend,
    private readonly model: TrainableModel,
    opts: Partial<TrainerOptions> = {},
  ) {
    this.options = trainerOptions(opts);
    const o = this.options;
    this.optimizer = new AdamW(backend, model.parameters(), {
      lr: o.lr,
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      weightDecay: o.weightDecay,
      maxGradNorm: o.maxGradNorm,
    });
  }

  /** Steps taken (batches consumed). */
  get step(): number {
    return this.stepCount;
  }

  /** Steps the optimizer applied (skipped ones excluded). */
  get appliedSteps(): number {
    return this.optimizer.stepCount;
  }

  /** The learning rate the next step will use. */
  get nextLr(): number {
    return lrAt(this.stepCount, this.options);
  }

  trainStep(batch: Batch): TrainStepResult {
    const lr = lrAt(this.stepCount, this.options);
    const t0 = performance.now();
    this.optimizer.zeroGrad();
    const { loss, count } = this.model.forwardLoss(batch.inputs, batch.targets);
    const t1 = performance.now();
    if (!Number.isFinite(loss)) {
      // The gradients of a non-finite loss are garbage: skip without even running backward.
      this.stepCount++;
      const r = this.result(loss, count, lr, NaN, 1, false, ['loss'], { forward: t1 - t0, backward: 0, optimizer: 0 });
      this.events.emit('step:skipped', { step: r.step, loss, gradNorm: NaN, nonFinite: r.nonFinite });
      return r;
    }
    this.model.backward();
    const t2 = performance.now();
    const s = this.optimizer.step({ lr });
    const t3 = performance.now();
    this.stepCount++;
    const nonFinite = s.applied ? [] : (this.model.describeNonFinite?.() ?? s.nonFinite);
    const r = this.result(loss, count, lr, s.gradNorm, s.clipScale, s.applied, nonFinite, { forward: t1 - t0, backward: t2 - t1, optimizer: t3 - t2 });
    if (!s.applied) this.events.emit('step:skipped', { step: r.step, loss, gradNorm: s.gradNorm, nonFinite });
    return r;
  }

  /** Mean loss over the batches, weighted by counted positions. */
  evaluate(batches: Iterable<Batch>): { loss: number; tokens: number } {
    let sum = 0;
    let tokens = 0;
    for (const b of batches) {
      const { loss, count } = this.model.evalLoss(b.inputs, b.targets);
      sum += loss * count;
      tokens += count;
    }
    return { loss: tokens === 0 ? NaN : sum / tokens, tokens };
  }

  state(): TrainerState {
    return { step: this.stepCount, options: { ...this.options }, optimizer: this.optimizer.state() };
  }

  /** Restores a state() taken from a trainer over the same model shape. The options of the state are not applied:
   * a resumed run may change them deliberately (for example a longer decay); the step count and moments are. */
  loadState(s: TrainerState): void {
    if (!Number.isInteger(s.step) || s.step < 0) throw new InvalidArgumentError(`trainer state: step ${s.step} must be an integer ≥ 0`);
    this.optimizer.loadState(s.optimizer);
    this.stepCount = s.step;
  }

  private result(
    loss: number,
    tokens: number,
    lr: number,
    gradNorm: number,
    clipScale: number,
    applied: boolean,
    nonFinite: string[],
    ms: StepTimings,
  ): TrainStepResult {
    return { step: this.stepCount, loss, tokens, lr, gradNorm, clipScale, applied, nonFinite, ms };
  }
}
