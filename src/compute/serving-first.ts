/**
 * Serving before training in the compute worker. Pure functions over the queue, clock readings and the idle time in
 * hand, so the rule is unit-tested without a worker (test/unit/compute/serving-first.test.ts, and over simulated
 * minutes with src/sim/serving-first.ts); worker.ts applies it.
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
 * - with none queued, while a reply is mid-answer (a session still open was opened or stepped within `gapMs`), the
 *   training step waits, idle, for its next step, when nothing but training steps is queued; for at most the idle
 *   time in hand (`idleAfter`): the worker starts with `idleCapMs` of it, each wait spends it, and each training step
 *   earns `idleShare` of its own run time back, up to `idleCapMs`.
 * - either way for at most `holdMs` from the moment it reached the head; then it runs even though serving goes on. So
 *   under continuous serving training still makes one step per `holdMs` (the reply pauses for that step), and
 *   training resumes `gapMs` after the last step of a session still open.
 *
 * Bounded (session 28; the attack pass of session 27 found that anyone could buy the waiting): a session job that
 * is queued is real work and passes for the whole hold, but the worker sits idle on serving's behalf for at most
 * `idleCapMs` plus `idleShare` of the time it trains, whoever sends the steps. A stranger's empty session opens
 * and closes buy no wait once closed (a closed session has no next step: 25 → 149 training steps a minute against an
 * empty open every 240 ms, 400 ms steps, simulated; still 149 with each close a 25 ms round trip after its open, 47
 * with each kept open until the next: an open counts, as a stepping session does); a session kept open that steps a token every 30-240 ms keeps
 * training at ≥ 1/3 of what the worker has left after computing those steps (25 → ~46). An honest remote reply (a
 * step every ~30 ms) on a node that trained a few seconds since its last reply passes training as before (a 64-token
 * reply, no pause; one every second too); replies back to back pause for a training step every ~35 tokens (~67
 * before).
 *
 * Only `trainStep` yields: a pipeline stage (`stage`) has a peer waiting on it across the network, evaluation and
 * checkpoints are rare and short next to a step stream.
 */
import type { Job } from './jobs.js';

/** The rule's knobs (worker.ts takes holdMs and idleCapMs from WorkerConfig where set; SERVING_FIRST_DEFAULTS otherwise). */
export interface ServingFirstOptions {
  /** A reply counts as mid-answer while a session still open was opened or stepped at most this long ago (ms). */
  gapMs: number;
  /** Longest a training step is held once it heads the queue (ms), passed and waiting together; 0 restores arrival order. */
  holdMs: number;
  /** The most idle time (ms) the worker keeps in hand to wait for replies' next steps (WorkerConfig `trainingIdleMs`). */
  idleCapMs: number;
  /** What a training step earns of idle time: this share of its own run time. */
  idleShare: number;
}

/**
 * Every default of the rule, in one place (docs/LIMITS.md "Session 28: serving before training, bounded" has the
 * figures behind them: ~400 ms training steps of nano on 2 cores, a remote reply decoding every ~30 ms):
 * - gapMs 250: a remote reply's next step comes 25-50 ms after its last answer, a local one's within a millisecond.
 * - holdMs 2,000: a reply passes a training step for up to ~65 remote tokens, then pauses for one step.
 * - idleCapMs 4,000: the idle time kept in hand, twice what a reply can wait between its tokens in one hold; 8 s of
 *   training alone refill it. A default 64-token reply (GENERATE_API_DEFAULTS) waits ~25-30 ms a token, 1.6-1.9 s:
 *   one that comes after a few seconds of training passes it as before, with room for a slow link or a loaded host.
 *   The cap bounds a burst only: over any longer stretch the share below bounds the idle time.
 * - idleShare 2: idle time earned at twice a training step's run time, so steps sent without a pause (a stranger's,
 *   or replies back to back) keep training at ≥ 1/3 of what the worker has left (150 → ~46 steps a minute at 400 ms
 *   steps against a stranger's step every 240 ms; 25 before), and such replies pause for a training step every ~35
 *   tokens (800 ms earned a step, ~25 ms spent a token; ~67 before). The share is what serving latency and a
 *   stranger's hold on training trade (simulated, 60 s, 400 ms steps, 64-token replies a step every ~30 ms):
 *   0.5 keeps training at 2/3 under the stranger (91/min) but makes a reply every second 62 % slower (2.14 → 3.46 s)
 *   and replies back to back pause every ~11 tokens; 1 gives 68/min, +12 % and every ~19; 2 gives 46/min, a reply
 *   every second unchanged (2.14 s) and back to back every ~35 tokens (+13 %, 2.33 → 2.64 s). Serving first is the
 *   rule's point (a prompt's sender waits on every token; training's loss is bounded and needs a stranger to keep
 *   a session stepping), so 2.
 */
export const SERVING_FIRST_DEFAULTS: Readonly<ServingFirstOptions> = Object.freeze({ gapMs: 250, holdMs: 2000, idleCapMs: 4000, idleShare: 2 });

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
 *
 * `from`: the index of the yielding job to pass, when it is not the head. The drain passes a held training step
 * wherever it stands (worker.ts): once session jobs have passed it, it is no longer the head, and a decode step that
 * arrives behind it while those run must pass it too (session 29: on a loaded host the second of two concurrent
 * replies' steps arrived a moment after the first had passed; the batcher's scan stopped at the training step and
 * each ran alone, the CI failure of stop 33).
 */
export function servingJobsAhead(queue: readonly Job[], from = 0): number[] {
  if (queue.length < from + 2 || !yieldsToServing(queue[from]!)) return [];
  const out: number[] = [];
  for (let i = from + 1; i < queue.length; i++) {
    const j = queue[i]!;
    if (passesTraining(j)) out.push(i);
    else if (!yieldsToServing(j)) break;
  }
  return out;
}

/**
 * What the drain does with a yielding head (worker.ts): `pass` (non-empty) the session jobs to move before it,
 * else `waitMs` > 0 to wait for serving, else run the head now. `lastStepAt`: when a step of a session still open
 * last ended (-Infinity: none); `headSince`: when the head first reached the head of the queue (kept while session
 * jobs pass it); `idleMs`: the idle time in hand (`idleAfter`).
 *
 * The hold bounds both (review, session 26): once the head has waited `holdMs` it runs, even with session jobs
 * queued behind it; before, a queue that always held a session job (several replies or a peer's hops, out of
 * phase) passed the training step forever. And the head waits only when nothing but yielding jobs is queued: a
 * model load, new parameters, a checkpoint or a pipeline stage behind it would wait too, as would a session job
 * behind one of those (it cannot pass them), with the worker idle.
 */
export function servingFirstStep(queue: readonly Job[], now: number, lastStepAt: number, headSince: number, idleMs: number, o: ServingFirstOptions = SERVING_FIRST_DEFAULTS): { pass: number[]; waitMs: number } {
  const none = { pass: [], waitMs: 0 };
  if (o.holdMs <= 0 || queue.length === 0 || !yieldsToServing(queue[0]!) || now - headSince >= o.holdMs) return none;
  const pass = servingJobsAhead(queue);
  if (pass.length > 0) return { pass, waitMs: 0 };
  if (!queue.every(yieldsToServing)) return none;
  return { pass, waitMs: trainingWait(now, lastStepAt, headSince, idleMs, o) };
}

/**
 * How long (ms) the yielding head should still wait, idle, for a reply's next step; 0 when it runs now. Only for a
 * reply mid-answer: a session still open that stepped within `gapMs` (`lastStepAt`), and never longer than the idle
 * time in hand (`idleMs`), nor past `holdMs` from when the head reached the head of the queue (`headSince`).
 *
 * Why a step, not any session job (attack pass, session 27): with every session job counting, a stranger's empty
 * session open every 240 ms (nothing to compute) kept the trainer idle up to the whole hold per step, 150 → 25
 * training steps a minute at 400 ms steps. An open or a close promises no next step; a step of an open session is
 * a reply that is mid-answer.
 */
export function trainingWait(now: number, lastStepAt: number, headSince: number, idleMs: number, o: ServingFirstOptions = SERVING_FIRST_DEFAULTS): number {
  if (o.holdMs <= 0 || !(idleMs > 0)) return 0;
  const idleFor = now - lastStepAt;
  if (!(idleFor < o.gapMs)) return 0;
  const held = now - headSince;
  if (held >= o.holdMs) return 0;
  return Math.min(o.gapMs - idleFor, o.holdMs - held, idleMs);
}

/**
 * The idle time in hand after the worker waited `waitedMs` for serving and ran training steps for `trainedMs`:
 * the wait spends it, training earns `idleShare` of its run time, up to `idleCapMs`.
 *
 * Why (attack pass, session 27): the hold alone let a reply's steps, or a stranger's, keep every training step
 * waiting idle for up to the whole hold. Now the worker idles on serving's behalf at most `idleShare` of the time it
 * trains, over any stretch longer than `idleCapMs / idleShare` (worker time: what the session jobs themselves compute
 * is not idle and is not counted): training keeps at least 1 / (1 + idleShare) of its steps, whoever sends the
 * steps. Held as a balance rather than a per-step allowance so that a reply after a while of training alone gets the
 * whole hold, as before: honest replies come in bursts, a stream that never stops drains the balance.
 */
export function idleAfter(idleMs: number, waitedMs: number, trainedMs: number, o: ServingFirstOptions = SERVING_FIRST_DEFAULTS): number {
  return Math.min(o.idleCapMs, idleMs - Math.max(0, waitedMs) + o.idleShare * Math.max(0, trainedMs));
}
