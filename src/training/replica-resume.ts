/**
 * What a whole-model replica keeps of its own checkpoint when it took the model from peers (node/train.ts
 * `SoloTrainOptions.adopted`): the network's current weights always win over the checkpoint's (they were just
 * downloaded and verified, and the checkpoint's are the ones this node had when it stopped, however long ago). The
 * rest of the checkpoint is kept where it still fits those weights:
 *
 *   - another model shape (the network's config is not the checkpoint's): nothing of it. The run starts fresh from
 *     the adopted weights (step 0, its data from the start, a fresh optimizer);
 *   - the same shape: the run goes on (its step, its data position, its batch shape and corpus), on the adopted
 *     weights. Its AdamW moments are kept only when they were accumulated on these very weights: the checkpoint
 *     records the closed outer round its weights came from (`round`), and the adopted weights are the state after
 *     one (`round` of the pool's adoption). Anything else (another round, a round unknown on either side: a network
 *     nobody trains, an older checkpoint, a solo run) starts the optimizer fresh, as a checkpoint without moments
 *     does: moments of other weights point the first steps where those weights wanted to go.
 *
 * Pure: node/train.ts asks it after loading the checkpoint and acts on the answer.
 */
import { configsEqual, type LlamaConfig } from '../model/config.js';

export interface ReplicaCheckpoint {
  config: LlamaConfig;
  /** The checkpoint held optimizer moments (and they were restored). */
  optimizerRestored: boolean;
  /** The closed outer round its weights descend from, when it recorded one. */
  round?: number;
}

export interface AdoptedModel {
  config: LlamaConfig;
  /** The closed outer round the adopted weights are the state after; undefined when nobody trains them. */
  round?: number;
}

export type ReplicaResume =
  /** The checkpoint is not resumed: a fresh run over the adopted weights. */
  | { keep: 'nothing'; why: string }
  /** The checkpoint's run goes on over the adopted weights, with a fresh optimizer. */
  | { keep: 'run'; why: string }
  /** The checkpoint's run and optimizer moments go on over the adopted weights. */
  | { keep: 'run+optimizer' };

export function replicaResume(ck: ReplicaCheckpoint, adopted: AdoptedModel): ReplicaResume {
  if (!configsEqual(ck.config, adopted.config)) return { keep: 'nothing', why: 'the checkpoint is of another model shape than the network' };
  if (!ck.optimizerRestored) return { keep: 'run', why: 'the checkpoint has no optimizer state' };
  if (adopted.round === undefined) return { keep: 'run', why: 'the adopted weights are of no closed outer round' };
  if (ck.round === undefined) return { keep: 'run', why: 'the checkpoint records no outer round' };
  if (ck.round !== adopted.round) return { keep: 'run', why: `the checkpoint's moments are of round ${ck.round}'s weights, the adopted ones of round ${adopted.round}` };
  return { keep: 'run+optimizer' };
}
