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
 *     at step 0, and the new run's own checkpoints, at lower steps, are the ones keep-last pruning removes first;
 *   - for the same reasons a replica's checkpoints that a newer version wrote (CHECKPOINT_UNSUPPORTED) are moved
 *     aside too (`<checkpoints>/unsupported-version/`), and the run resumes the newest one this build reads;
 *   - a replica whose kept moments cannot be read (optimizer.safetensors damaged) goes on with fresh ones, as when
 *     the checkpoint has none (`momentsUnreadable`): the step, data position and weights do not depend on them. So
 *     does a solo run (session 29, `solo moments`): its weights are the checkpoint's, but they are verified on their
 *     own (their SHA-256 and layer hashes), so damage to the moments' file says nothing about them;
 *   - the folders checkpoints are moved aside into are bounded (`asideToRemove`, session 29): each restart after a
 *     change of the network's shape added up to keep-last whole checkpoints to `other-shape/`, without end.
 */
import { join } from 'node:path';
import { CHECKPOINT_FILES } from '../model/checkpoint.js';
import { configsEqual, type LlamaConfig } from '../model/config.js';
import type { ReplicaResume } from './replica-resume.js';

/** The folder of the checkpoints dir that a replica's checkpoints of another model shape are moved into. */
export const OTHER_SHAPE_DIR = 'other-shape';

/**
 * The folder of the checkpoints dir that a replica's checkpoints this build cannot read (CHECKPOINT_UNSUPPORTED:
 * written by a newer version, the node since downgraded) are moved into. Left in place, the newest of them stopped
 * every start of the replica's run with that error (session 28 review); skipped but left in place, they would still
 * count toward keep-last pruning (three newer ones: each checkpoint the run cut was pruned at once, and each restart
 * began at step 0 again) and a save at one's step would replace it.
 */
export const UNSUPPORTED_DIR = 'unsupported-version';

export type TrainerResume =
  /** The checkpoint's step and its AdamW moments (loaded with its weights, or alone over other weights). */
  | { step: number; moments: 'checkpoint' }
  /** The checkpoint's step, fresh AdamW moments. */
  | { step: number; moments: 'fresh'; why: string };

/**
 * The trainer of a run resumed from a checkpoint cut at `step` that holds moments or not (`hasOptimizer`); a replica
 * passes replicaResume's answer for a checkpoint it resumes ('run' or 'run+optimizer').
 */
export function trainerResume(ck: { step: number; hasOptimizer: boolean; momentsUnreadable?: string }, replica?: ReplicaResume): TrainerResume {
  // a solo run whose checkpoint's moments could not be read (soloMomentsDamaged) loaded it without them
  if (ck.momentsUnreadable !== undefined) return { step: ck.step, moments: 'fresh', why: ck.momentsUnreadable };
  if (!ck.hasOptimizer) return { step: ck.step, moments: 'fresh', why: 'the checkpoint has no optimizer state' };
  if (replica !== undefined && replica.keep !== 'run+optimizer') return { step: ck.step, moments: 'fresh', why: replica.why };
  return { step: ck.step, moments: 'checkpoint' };
}

/**
 * The checkpoints a replica moves into UNSUPPORTED_DIR: those whose checkpoint.json this build cannot read (a newer
 * version's). Kept whole, never resumed nor pruned; the run resumes the newest checkpoint it can read.
 */
export function unsupportedCheckpoints<T extends { dir: string; unsupported: boolean }>(all: readonly T[]): T[] {
  return all.filter((c) => c.unsupported);
}

/**
 * The checkpoints a replica of a network of `config` moves aside: those of another model shape. `config` undefined:
 * unreadable (left where they are: resuming the newest of them fails with its typed error, as loading it did).
 */
export function otherShapeCheckpoints<T extends { dir: string; config: LlamaConfig | undefined }>(all: readonly T[], config: LlamaConfig): T[] {
  return all.filter((c) => c.config !== undefined && !configsEqual(c.config, config));
}

/**
 * Whether a failure to read a checkpoint's moments alone (the worker's resumeTrainer with a checkpoint: its
 * config.json and optimizer.safetensors verified against checkpoint.json, then read) is the moments' file being
 * unusable, so that a replica goes on with fresh moments (a warning naming the file) rather than failing its run:
 * the file missing, truncated, corrupt, or not holding the model's tensors. Anything else (no trainer in the worker,
 * a bad argument, the worker gone) is no damage and still fails the run.
 */
export function momentsUnreadable(code: string): boolean {
  return code === 'CHECKPOINT_MISSING' || code === 'CHECKPOINT_TRUNCATED' || code === 'CHECKPOINT_CORRUPT' || code === 'CHECKPOINT_MISMATCH';
}

/**
 * Whether a solo run's failure to load the checkpoint `dir` (the worker's loadCheckpoint: every listed file verified,
 * then the weights and the moments read) is its moments' file alone being unusable (`momentsUnreadable`'s codes,
 * naming `<dir>/optimizer.safetensors`), so that the run loads it again without them and goes on with fresh ones (a
 * warning naming the file), as a replica does. Damage to any other file (the weights, config.json, the training
 * state) still fails the run: the weights are the checkpoint's, and a second load finds damage to them either way.
 */
export function soloMomentsDamaged(dir: string, e: { code: string; file?: unknown }): boolean {
  return momentsUnreadable(e.code) && typeof e.file === 'string' && e.file === join(dir, CHECKPOINT_FILES.optimizer);
}

/** How many checkpoints one folder of those moved aside keeps, and how many bytes (0: no cap on bytes). */
export interface AsideBound {
  keep: number;
  maxBytes: number;
}

/**
 * Which checkpoints of one folder of those moved aside (`other-shape/`, `unsupported-version/`) go: all but the
 * newest `keep` (by the time they were moved aside; the step in their name, then the `.N` suffix, for equal times),
 * and beyond `maxBytes` together (when > 0) the older ones that do not fit. The newest one always stays, whatever
 * its size: it was just moved aside, and removing it at once would make the move a deletion. Without a bound each
 * restart after a change of the network's shape added up to keep-last whole checkpoints, and the disk filled.
 */
export function asideToRemove<T extends { mtimeMs: number; step: number; suffix: number; bytes: number }>(all: readonly T[], bound: AsideBound): T[] {
  const newestFirst = [...all].sort((a, b) => b.mtimeMs - a.mtimeMs || b.step - a.step || b.suffix - a.suffix);
  const out: T[] = [];
  let bytes = 0;
  newestFirst.forEach((c, i) => {
    const fits = i === 0 || (i < bound.keep && (bound.maxBytes <= 0 || bytes + c.bytes <= bound.maxBytes));
    if (fits) bytes += c.bytes;
    else out.push(c);
  });
  return out;
}
