/**
 * Training defaults for NeuroLLM (the solo / inner training loop reads them from here):
 *
 *   AdamW       lr 1e-3 peak, β1 0.9, β2 0.95, ε 1e-8, weight decay 0.1 on 2-D weights only (ParamLayout.decay:
 *               embeddings, projections, LM head; RMSNorm scales are not decayed), global-norm clipping at 1.0.
 *   Schedule    linear warm-up over 100 steps from lr/100 to lr, then cosine decay to 10 % of the peak at
 *               `totalSteps`, constant after. nanoGPT/llm.c's recipe; β2 0.95 is what small models train stably with.
 *   Batches     8 sequences × 128 tokens (the benchmark's shape); the context of nano is 256.
 *   Init        N(0, 0.02²) matrices, unit RMSNorm scales (init.ts), seed 0.
 */
import { InvalidArgumentError } from '../util/errors.js';

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clip (0 disables). */
  maxGradNorm: number;
}

export interface LrSchedule {
  /** Peak learning rate. */
  peak: number;
  warmupSteps: number;
  /** Step at which the cosine reaches its floor. */
  totalSteps: number;
  /** Floor as a fraction of the peak. */
  minRatio: number;
}

export const NEUROLLM_ADAMW: Readonly<AdamWHyper> = Object.freeze({
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  maxGradNorm: 1.0,
});

export const NEUROLLM_SCHEDULE: Readonly<Omit<LrSchedule, 'totalSteps'>> = Object.freeze({
  peak: NEUROLLM_ADAMW.lr,
  warmupSteps: 100,
  minRatio: 0.1,
});

export const NEUROLLM_BATCH = Object.freeze({ batchSize: 8, seqLen: 128 });

/**
 * Learning rate of the update that follows `step` completed steps (so step 0 is the first update): linear warm-up
 * (peak·(step+1)/warmupSteps), then cosine from the peak to peak·minRatio at totalSteps, then flat.
 */
export function learningRate(step: number, s: LrSchedule): number {
  if (!Number.isInteger(step) || step < 0) throw new InvalidArgumentError(`learningRate: step ${step} is not a non-negative integer`);
  if (!(s.peak > 0) || !(s.minRatio >= 0 && s.minRatio <= 1) || !Number.isInteger(s.warmupSteps) || s.warmupSteps < 0 || !Number.isInteger(s.totalSteps) || s.totalSteps < 1) {
    throw new InvalidArgumentError('learningRate: schedule needs peak > 0, minRatio in [0, 1], integer warmupSteps ≥ 0 and totalSteps ≥ 1', { ...s });
  }
  const min = s.peak * s.minRatio;
  if (step < s.warmupSteps) return (s.peak * (step + 1)) / s.warmupSteps;
  if (step >= s.totalSteps) return min;
  const span = s.totalSteps - s.warmupSteps;
  if (span <= 0) return min;
  const progress = (step - s.warmupSteps) / span;
  return min + 0.5 * (1 + Math.cos(Math.PI * progress)) * (s.peak - min);
}
