/**
 * Errors of the compute worker and its client. Jobs that fail inside the worker come back as NeuroShardErrors with
 * the worker-side code (SHAPE_MISMATCH, TOKEN_OUT_OF_RANGE, …) and fault intact; the errors here are about the
 * worker itself.
 */
import { NeuroShardError } from '../util/errors.js';

/**
 * The compute worker died (an uncaught exception, process.exit inside it, a crash test job) while this job was
 * pending. The client has already started a fresh worker; the state the old one held (weights, optimizer state,
 * KV caches) is gone, so the owner must load it again (the client emits `worker:ready` with a new generation).
 */
export class WorkerCrashedError extends NeuroShardError {
  constructor(reason: string, meta: { generation: number; exitCode?: number; jobType?: string }) {
    super('COMPUTE_WORKER_CRASHED', `compute worker crashed: ${reason}`, { fault: 'local', meta });
  }
}

/** A job sent to a client that was closed, or pending when it closed. */
export class ComputeClosedError extends NeuroShardError {
  constructor(what = 'compute client is closed') {
    super('COMPUTE_CLOSED', what, { fault: 'local' });
  }
}

/** The worker did not report ready within its start deadline. */
export class WorkerStartError extends NeuroShardError {
  constructor(reason: string, meta?: Record<string, unknown>) {
    super('COMPUTE_WORKER_START_FAILED', `compute worker failed to start: ${reason}`, { fault: 'local', meta });
  }
}

/** A job needs state the worker does not hold (no model initialised, unknown session id, …). */
export class ComputeStateError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('COMPUTE_STATE', message, { fault: 'caller', meta });
  }
}

/** An unexpected (untyped) exception thrown by a job handler, wrapped so that it crosses the thread boundary. */
export class JobFailedError extends NeuroShardError {
  constructor(jobType: string, message: string, stack?: string) {
    super('COMPUTE_JOB_FAILED', `compute job ${jobType} failed: ${message}`, { fault: 'local', meta: stack === undefined ? { jobType } : { jobType, stack } });
  }
}
