/**
 * What the worker stores in a checkpoint's training-state.json (compute/handlers.ts `saveCheckpoint`): the trainer's
 * step beside the caller's own state. Read back by `loadCheckpoint` in the worker and, for a run that keeps other
 * weights than the checkpoint's (a replica, node/train.ts), from the file on the main thread.
 */
export interface SavedTrainingState {
  format: 'neuroshard-solo-trainer';
  version: 1;
  trainerStep: number;
  extra: unknown;
}

export function isSavedTrainingState(x: unknown): x is SavedTrainingState {
  const o = x as Partial<SavedTrainingState> | null;
  return typeof o === 'object' && o !== null && o.format === 'neuroshard-solo-trainer' && o.version === 1 && Number.isSafeInteger(o.trainerStep);
}

/** The caller's own state in a training-state.json as read (another tool's JSON is given back as it is). */
export function callerTrainingState(x: unknown): unknown {
  return isSavedTrainingState(x) ? x.extra : x;
}
