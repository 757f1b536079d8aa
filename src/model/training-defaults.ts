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
import type { AdamWConfig } from '../tensor/index.js';
import { InvalidArgumentError } from '../util/errors.js';

/** The optimizer's own hyper-parameter record (tensor/ops/adamw.ts); NEUROLLM_ADAMW fills it. */
export type AdamWHyper = AdamWConfig;

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
  return warmupCosine(step, s.peak, s.peak * s.minRatio, s.warmupSteps, s.totalSteps);
}

/**
 * The one warm-up + cosine curve, unchecked (learningRate and trainerOptions validate what reaches it):
 * peak·(step+1)/warmupSteps during the warm-up, then min + ½(1 + cos(π·progress))·(peak − min) until decaySteps,
 * then min (so decaySteps ≤ warmupSteps gives the floor right after the warm-up). A pure function of the step,
 * so a resumed run sees exactly the rates an uninterrupted run would; lrAt's resume tests compare bitwise, so keep
 * the float operations in this order.
 */
export function warmupCosine(step: number, peak: number, min: number, warmupSteps: number, decaySteps: number): number {
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  if (step >= decaySteps) return min;
  const progress = (step - warmupSteps) / (decaySteps - warmupSteps);
  return min + 0.5 * (1 + Math.cos(Math.PI * progress)) * (peak - min);
}
