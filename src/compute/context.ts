/**
 * What a job handler sees of the job it runs: a cancellation check (the caller aborted) and an event channel back
 * to the main thread. Handlers are mostly synchronous native calls, so cancellation is cooperative: long jobs
 * (training loops, generation, benchmarks) call `throwIfCancelled()` between units of work.
 */
import { AbortedError } from '../util/errors.js';
import type { JobEvent } from './jobs.js';

export interface JobContext {
  /** True once the caller has aborted this job. */
  cancelled(): boolean;
  /** Throws AbortedError when the caller has aborted this job. */
  throwIfCancelled(): void;
  /** Sends an event to the client's `job:event` listeners while the job runs. */
  emit(event: JobEvent): void;
}

/** Where a job's shared cancel flag lives: flags[index] (1 = cancelled). */
export interface CancelFlag {
  flags: Int32Array;
  index: number;
}

/**
 * The cancel flag of a job message: its own buffer (Int32Array(1) on a SharedArrayBuffer) or its slot in the
 * worker's shared flags (jobs.ts ToWorker `cancelSlot`); undefined when it has none.
 */
export function cancelFlagOf(msg: { cancel?: SharedArrayBuffer; cancelSlot?: number }, shared: Int32Array | undefined): CancelFlag | undefined {
  if (msg.cancel !== undefined) return { flags: new Int32Array(msg.cancel), index: 0 };
  if (msg.cancelSlot !== undefined && shared !== undefined && msg.cancelSlot >= 0 && msg.cancelSlot < shared.length) return { flags: shared, index: msg.cancelSlot };
  return undefined;
}

/** A context over an optional shared cancel flag (1 = cancelled). */
export function createJobContext(jobType: string, cancel: CancelFlag | undefined, emit: (e: JobEvent) => void): JobContext {
  const cancelled = (): boolean => cancel !== undefined && Atomics.load(cancel.flags, cancel.index) !== 0;
  return {
    cancelled,
    throwIfCancelled() {
      if (cancelled()) throw new AbortedError(`compute job ${jobType} aborted`);
    },
    emit,
  };
}

/** A context that is never cancelled and drops events (for running handlers in-process). */
export const NULL_CONTEXT: JobContext = {
  cancelled: () => false,
  throwIfCancelled: () => undefined,
  emit: () => undefined,
};
