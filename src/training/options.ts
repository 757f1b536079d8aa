/**
 * Hyper-parameters of the solo inner loop. The defaults are NeuroLLM's (src/model/training-defaults.ts, the one
 * place they are written): AdamW lr 1e-3, β (0.9, 0.95), weight decay 0.1, clipping at 1.0; linear warm-up over
 * 100 steps, cosine decay to 10 % of the peak. decaySteps defaults to 0 (no decay) because only the caller knows
 * the run's length (`neuroshard train --steps N` passes N).
 */
import { NEUROLLM_ADAMW, NEUROLLM_SCHEDULE } from '../model/training-defaults.js';
import { InvalidArgumentError } from '../util/errors.js';

export interface TrainerOptions {
  /** Peak learning rate, reached at the end of the warm-up. */
  lr: number;
  /** Floor the cosine decays to. Default 0.1·lr. */
  minLr: number;
  /** Linear warm-up from lr/warmupSteps to lr over this many steps (0 = none). */
  warmupSteps: number;
  /** Step at which the cosine reaches minLr (counted from step 0, warm-up included); 0 = constant lr after warm-up. */
  decaySteps: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clip (0 disables). */
  maxGradNorm: number;
}

export const TRAINER_DEFAULTS: Readonly<TrainerOptions> = Object.freeze({
  lr: NEUROLLM_ADAMW.lr,
  minLr: NEUROLLM_SCHEDULE.peak * NEUROLLM_SCHEDULE.minRatio,
  warmupSteps: NEUROLLM_SCHEDULE.warmupSteps,
  decaySteps: 0,
  beta1: NEUROLLM_ADAMW.beta1,
  beta2: NEUROLLM_ADAMW.beta2,
  eps: NEUROLLM_ADAMW.eps,
  weightDecay: NEUROLLM_ADAMW.weightDecay,
  maxGradNorm: NEUROLLM_ADAMW.maxGradNorm,
});

/** Merges `partial` over the defaults (minLr follows lr when only lr is given) and validates the result. */
export function trainerOptions(partial: Partial<TrainerOptions> = {}): TrainerOptions {
  const o: TrainerOptions = { ...TRAINER_DEFAULTS, ...partial };
  if (partial.lr !== undefined && partial.minLr === undefined) o.minLr = NEUROLLM_SCHEDULE.minRatio * partial.lr;
  const bad = (field: keyof TrainerOptions, why: string): never => {
    throw new InvalidArgumentError(`trainer option ${field} ${why} (got ${String(o[field])})`, { field, value: o[field] });
  };
  const finiteNonNeg = (f: keyof TrainerOptions): void => {
    if (typeof o[f] !== 'number' || !Number.isFinite(o[f]) || o[f] < 0) bad(f, 'must be a finite number ≥ 0');
  };
  finiteNonNeg('lr');
  finiteNonNeg('minLr');
  finiteNonNeg('weightDecay');
  finiteNonNeg('maxGradNorm');
  if (o.minLr > o.lr) bad('minLr', `must not exceed lr ${o.lr}`);
  for (const f of ['warmupSteps', 'decaySteps'] as const) {
    if (!Number.isInteger(o[f]) || o[f] < 0) bad(f, 'must be an integer ≥ 0');
  }
  if (!(o.beta1 >= 0 && o.beta1 < 1)) bad('beta1', 'must be in [0, 1)');
  if (!(o.beta2 >= 0 && o.beta2 < 1)) bad('beta2', 'must be in [0, 1)');
  if (!(o.eps > 0 && Number.isFinite(o.eps))) bad('eps', 'must be a finite number > 0');
  return o;
}
