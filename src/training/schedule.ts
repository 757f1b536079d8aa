/**
 * The learning-rate schedule: linear warm-up, then a cosine from lr down to minLr at `decaySteps`, then minLr.
 *
 *   step s (0-based index of the step about to run):
 *     s < W:            lr·(s + 1)/W
 *     W ≤ s < D:        minLr + ½(lr − minLr)(1 + cos(π·(s − W)/(D − W)))
 *     s ≥ D:            minLr
 *   decaySteps D ≤ W means no decay: lr after the warm-up.
 *
 * The curve is NeuroLLM's (model/training-defaults.ts warmupCosine, also behind learningRate); this adds only the
 * constant rate after the warm-up. A pure function of the step, so a resumed run sees exactly the rates an
 * uninterrupted run would.
 */
import { warmupCosine } from '../model/training-defaults.js';
import type { TrainerOptions } from './options.js';

export function lrAt(step: number, o: Pick<TrainerOptions, 'lr' | 'minLr' | 'warmupSteps' | 'decaySteps'>): number {
  // no decay configured: the peak for good (warmupCosine would drop to its floor here)
  if (o.decaySteps <= o.warmupSteps && step >= o.warmupSteps) return o.lr;
  return warmupCosine(step, o.lr, o.minLr, o.warmupSteps, o.decaySteps);
}
