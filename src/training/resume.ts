/**
 * How a resumed run starts (node/train.ts `trainSolo` asks these and acts on the answers; pure):
 *
 *   - the trainer's step is the checkpoint's, always: the loop counts from it (trainLoop reads the stepper's
 *     `currentStep`) and the learning-rate schedule is a function of it (training/schedule.ts; its decay length is
 *     the run's target). Only the AdamW moments may start fresh, when the checkpoint has none or they are not of the
 *     weights being trained (training/replica-resume.ts); fresh moments count their own bias-correction steps from 0.
 *     Before session 28 a checkpoint without moments left the trainer's step at 0: the run trained from step 0 again
 *     over the resumed weights (the warm-up again, new checkpoints at lower steps than the one resumed);
 *   - a whole-model replica trains the network's shape, so its checkpoints of another shape are never resumed: they
 *     are moved aside (`<checkpoints>/other-shape/`, never deleted), else the newest of them stays the newest
 *     checkpoint (by step) until the new run passes its step, each restart before then discards it again and starts
 *     at step 0, and the new run's own checkpoints, at lower steps, are the ones keep-last pruning removes first.
 */
import { configsEqual, type LlamaConfig } from '../model/config.js';
import type { ReplicaResume } from './replica-resume.js';

/** The folder of the checkpoints dir that a replica's checkpoints of another model shape are moved into. */
export const OTHER_SHAPE_DIR = 'other-shape';

export type TrainerResume =
  /** The checkpoint's step and its AdamW moments (loaded with its weights, or alone over other weights). */
  | { step: number; moments: 'checkpoint' }
  /** The checkpoint's step, fresh AdamW moments. */
  | { step: number; moments: 'fresh'; why: string };

/**
 * The trainer of a run resumed from a checkpoint cut at `step` that holds moments or not (`hasOptimizer`); a replica
 * passes replicaResume's answer for a checkpoint it resumes ('run' or 'run+optimizer').
 */
export function trainerResume(ck: { step: number; hasOptimizer: boolean }, replica?: ReplicaResume): TrainerResume {
  if (!ck.hasOptimizer) return { step: ck.step, moments: 'fresh', why: 'the checkpoint has no optimizer state' };
  if (replica !== undefined && replica.keep !== 'run+optimizer') return { step: ck.step, moments: 'fresh', why: replica.why };
  return { step: ck.step, moments: 'checkpoint' };
}

/**
 * The checkpoints a replica of a network of `config` moves aside: those of another model shape. `config` undefined:
 * unreadable (left where they are: resuming the newest of them fails with its typed error, as loading it did).
 */
export function otherShapeCheckpoints<T extends { dir: string; config: LlamaConfig | undefined }>(all: readonly T[], config: LlamaConfig): T[] {
  return all.filter((c) => c.config !== undefined && !configsEqual(c.config, config));
}
