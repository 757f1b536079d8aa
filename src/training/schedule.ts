/**
 * The learning-rate schedule: linear warm-up, then a cosine from lr down to minLr at `decaySteps`, then minLr.
 *
 *   step s (0-based index of the step about to run):
 *     s < W:            lr·(s + 1)/W
 *     W ≤ s < D:        minLr + ½(lr − minLr)(1 + cos(π·(s − W)/(D − W)))
 *     s ≥ D:            minLr
 *   decaySteps D ≤ W means no decay: lr after the warm-up.
 *
 * A pure function of the step, so a resumed run sees exactly the rates an uninterrupted run would.
 */
import type { TrainerOptions } from './options.js';

export function lrAt(step: number, o: Pick<TrainerOptions, 'lr' | 'minLr' | 'warmupSteps' | 'decaySteps'>): number {
  const W = o.warmupSteps;
  if (step < W) return (o.lr * (step + 1)) / W;
  const D = o.decaySteps;
  if (D <= W) return o.lr;
  if (step >= D) return o.minLr;
  const progress = (step - W) / (D - W);
  return o.minLr + 0.5 * (o.lr - o.minLr) * (1 + Math.cos(Math.PI * progress));
}
