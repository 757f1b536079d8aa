/**
 * Serving before training in the compute worker. Pure functions over the queue and three clock readings, so the rule
 * is unit-tested without a worker (test/unit/compute/serving-first.test.ts); worker.ts applies it.
 *
 * Why: a node that trains and serves (`npm start`'s node: it trains by default and answers /api/generate and /v1
 * from the same model) runs both in its one compute worker, one job at a time. In arrival order every token of a
 * reply waited for a whole training step: the trainer posts its next step as soon as the last one answers, so it is
 * always queued before the reply's next decode step. Session 25 measured 9-20 s for a 32-token reply on a training
 * node against 0.04-0.12 s on one that does not train (docs/LIMITS.md "Session 25: a new user's walkthrough"): one
 * token per training step of ~0.3-0.5 s (nano, 2 cores).
 *
 * The rule, for a training step (`trainStep`) at the head of the queue:
 * - the session jobs (open, step, close) queued behind it go first, those that only training steps stand before.
 *   Nothing is moved across any other job (a model load or release, new parameters, a checkpoint): a session step
 *   must meet the model its caller saw. Session jobs keep their order among themselves (batcher.ts batches them as
 *   before). A decode step reads the weights as they are when it runs, as it did whenever it happened to run first.
 * - with none queued, while serving is active (a session job ran within `gapMs`), the training step waits for one to
 *   arrive, when nothing but training steps is queued.
 * - either way for at most `holdMs` from the moment it reached the head; then it runs even though serving goes on. So
 *   under continuous serving training still makes one step per `holdMs` (the reply pauses for that step), and
 *   training resumes `gapMs` after the last session job.
 *
 * Only `trainStep` yields: a pipeline stage (`stage`) has a peer waiting on it across the network, evaluation and
 * checkpoints are rare and short next to a step stream.
 */
import type { Job } from './jobs.js';

/** Serving counts as active while a session job ran at most this long ago (ms): the gap between a reply's steps. */
export const SERVING_GAP_MS = 250;
/** Longest a training step waits for serving once it heads the queue (ms); 0 restores arrival order. */
export const TRAINING_HOLD_MS = 2000;

export function isSessionJob(job: Job): boolean {
  return job.type === 'sessionOpen' || job.type === 'sessionStep' || job.type === 'sessionClose';
}

/**
 * Jobs that pass a training step with the session jobs: those, and the model hash a hop takes just before each
 * session it opens (its transcript's claim, protocols/inference.ts). It reads the weights and changes nothing, and
 * it stood between every remote session's open and the training step (`servingJobsAhead` stops at anything else),
 * so a training hop's opens waited a whole training step (session 27). The claim stays sound: a session's weights
 * are checked again when it is sealed, and a transcript is kept only if they did not move in between.
 */
export function passesTraining(job: Job): boolean {
  return isSessionJob(job) || job.type === 'modelHash';
}

/** Jobs that let serving go first. */
export function yieldsToServing(job: Job): boolean {
  return job.type === 'trainStep';
}

/**
 * The indices (ascending) of the session jobs to run before the queue's head, or none: the head yields to serving,
 * and these are every session job queued before the first job that neither yields nor is a session job. All of
 * them, not only the first (review, session 26): the batcher (batcher.ts pickBatch) ends its scan at a training
 * step, so moving one at a time ran the decode steps of concurrent replies one forward each, and each waited the
 * batch window for the others' steps that sat behind the training step. Their order among themselves is kept.
 */
export function servingJobsAhead(queue: readonly Job[]): number[] {
  if (queue.length < 2 || !yieldsToServing(queue[0]!)) return [];
  const out: number[] = [];
  for (let i = 1; i < queue.length; i++) {
    const j = queue[i]!;
    if (passesTraining(j)) out.push(i);
    else if (!yieldsToServing(j)) break;
  }
  return out;
}

/**
 * What the drain does with a yielding head (worker.ts): `pass` (non-empty) the session jobs to move before it,
 * else `waitMs` > 0 to wait for serving, else run the head now. `headSince`: when the head first reached the head
 * of the queue (kept while session jobs pass it).
 *
 * The hold bounds both (review, session 26): once the head has waited `holdMs` it runs, even with session jobs
 * queued behind it; before, a queue that always held a session job (several replies or a peer's hops, out of
 * phase) passed the training step forever. And the head waits only when nothing but yielding jobs is queued: a
 * model load, new parameters, a checkpoint or a pipeline stage behind it would wait too, as would a session job
 * behind one of those (it cannot pass them), with the worker idle.
 */
export function servingFirstStep(queue: readonly Job[], now: number, lastSessionJobAt: number, headSince: number, o: { gapMs: number; holdMs: number } = { gapMs: SERVING_GAP_MS, holdMs: TRAINING_HOLD_MS }): { pass: number[]; waitMs: number } {
  const none = { pass: [], waitMs: 0 };
  if (o.holdMs <= 0 || queue.length === 0 || !yieldsToServing(queue[0]!) || now - headSince >= o.holdMs) return none;
  const pass = servingJobsAhead(queue);
  if (pass.length > 0) return { pass, waitMs: 0 };
  if (!queue.every(yieldsToServing)) return none;
  return { pass, waitMs: trainingWait(now, lastSessionJobAt, headSince, o) };
}

/**
 * How long (ms) the yielding head should still wait for serving; 0 when it runs now. `lastSessionJobAt`: when the
 * last session job ended; `headSince`: when this job reached the head of the queue.
 */
export function trainingWait(now: number, lastSessionJobAt: number, headSince: number, o: { gapMs: number; holdMs: number } = { gapMs: SERVING_GAP_MS, holdMs: TRAINING_HOLD_MS }): number {
  if (o.holdMs <= 0) return 0;
  const idleFor = now - lastSessionJobAt;
  if (!(idleFor < o.gapMs)) return 0;
  const held = now - headSince;
  if (held >= o.holdMs) return 0;
  return Math.min(o.gapMs - idleFor, o.holdMs - held);
}
