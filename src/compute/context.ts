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

/** A context over an optional shared cancel flag (Int32Array(1) on a SharedArrayBuffer; 1 = cancelled). */
export function createJobContext(jobType: string, cancel: SharedArrayBuffer | undefined, emit: (e: JobEvent) => void): JobContext {
  const flag = cancel === undefined ? undefined : new Int32Array(cancel);
  const cancelled = (): boolean => flag !== undefined && Atomics.load(flag, 0) !== 0;
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
