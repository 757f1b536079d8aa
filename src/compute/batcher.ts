/**
 * Continuous batching in the compute worker: which queued jobs run together. Pure functions over the queue, so the
 * rule is unit-tested without a worker (test/unit/compute/batcher.test.ts); worker.ts applies it.
 *
 * The rule: when the job at the head of the queue is a decode step (one position of one session, see
 * sessions.ts `isDecodeStep`), every later decode step of another session joins it, up to MAX_DECODE_BATCH rows,
 * in queue order. Jobs of different sessions commute (each session has its own KV cache and sampler), so the scan
 * may pass over other session jobs (opens, closes, prefills) of sessions not taken, but a session seen once is not
 * taken again (its jobs keep their order), and any other job (a model load or release, training, a GEMM) ends the
 * scan: nothing is moved across it.
 *
 * Waiting: a batch smaller than the number of sessions that decoded recently waits once, up to the batch window,
 * for the others' steps to arrive; steps that arrive while a batch runs join the next one anyway. The window is the
 * larger of `batchWindowMs` (default 2 ms) and half the last batched forward's time capped at 50 ms: a row more
 * costs little next to a forward (the weights are read once for the whole batch), so a straggler that runs in a
 * forward of its own costs nearly a whole forward more, and waiting up to half of one for it pays; on a slow or
 * loaded machine, where the streams' steps arrive further apart, the window grows with the step. (Session 18: with
 * a tenth, 8 streams through one hop on the bench's 2 cores ran in forwards of 7.1-7.7 rows on average at load 4-5,
 * as the hop's 8 answers take the main thread 1-7 ms to turn into the next 8 steps; with half, 7.9-8.0.) The wait
 * ends when the last recently active session's step arrives, so a larger cap costs only while a session that
 * decoded within ACTIVE_DECODER_MS sends no step (one left open without stepping: a cap per batch, for at most
 * that long).
 */
import { MAX_DECODE_BATCH } from '../model/shard.js';
import type { Job, JobOf } from './jobs.js';
import { isDecodeStep } from './sessions.js';

/** How long a batch smaller than the active sessions waits for their steps (ms). */
export const DEFAULT_BATCH_WINDOW_MS = 2;
/** The adaptive part of the window never exceeds this (ms). */
export const MAX_BATCH_WINDOW_MS = 50;
/** Share of the last batched forward's time the window may take. */
export const BATCH_WINDOW_SHARE = 0.5;

/** How long a short batch waits (ms): see the file comment. */
export function batchWindow(baseMs: number, lastForwardMs: number): number {
  if (baseMs <= 0) return 0;
  return Math.max(baseMs, Math.min(MAX_BATCH_WINDOW_MS, BATCH_WINDOW_SHARE * (Number.isFinite(lastForwardMs) ? lastForwardMs : 0)));
}

/** A session counts as decoding when its last decode step is at most this old (ms). */
export const ACTIVE_DECODER_MS = 1000;

function sessionIdOf(job: Job): string | undefined {
  switch (job.type) {
    case 'sessionOpen':
    case 'sessionStep':
    case 'sessionClose':
      return typeof job.id === 'string' ? job.id : undefined;
    default:
      return undefined;
  }
}

export function isBatchable(job: Job): job is JobOf<'sessionStep'> {
  return job.type === 'sessionStep' && typeof job.id === 'string' && isDecodeStep(job);
}

/**
 * Indices (ascending, the head first) of the queued jobs to run as one decode batch with the head; [0] alone when
 * the head is not a decode step. `skip(i)` drops a job from consideration (a cancelled one) without ending the scan.
 */
export function pickBatch(queue: readonly Job[], max = MAX_DECODE_BATCH, skip: (i: number) => boolean = () => false): number[] {
  if (queue.length === 0) return [];
  const head = queue[0];
  if (!isBatchable(head)) return [0];
  const picked = [0];
  const seen = new Set<string>([head.id]);
  for (let i = 1; i < queue.length && picked.length < max; i++) {
    const job = queue[i];
    const id = sessionIdOf(job);
    if (id === undefined) break; // not a session job: a barrier
    if (seen.has(id)) continue;
    seen.add(id);
    if (isBatchable(job) && !skip(i)) picked.push(i);
  }
  return picked;
}

/** Whether a batch of `size` should wait (once) for more steps: fewer rows than recently active sessions. */
export function shouldWait(size: number, activeDecoders: number, windowMs: number, max = MAX_DECODE_BATCH): boolean {
  return windowMs > 0 && size < Math.min(max, activeDecoders);
}
