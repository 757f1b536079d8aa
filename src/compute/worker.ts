/**
 * The compute worker's entry point (run by ComputeClient in a worker_threads Worker; never imported elsewhere).
 * It builds the ComputeState (backend + thread pool), reports `ready`, then runs jobs strictly one at a time in
 * arrival order: the native pool already uses every core, so running two jobs at once would only stack threads.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NeuroShardError, errorMessage, type ErrorObject } from '../util/errors.js';
import { createJobContext } from './context.js';
import { JobFailedError } from './errors.js';
import { createHandlers, runHandler } from './handlers.js';
import type { FromWorker, ToWorker, WorkerConfig } from './jobs.js';
import { ComputeState } from './state.js';
import { prepareTransfer } from './transfer.js';

if (parentPort === null) throw new Error('src/compute/worker.ts must run inside a worker thread');
const port = parentPort;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function toErrorObject(jobType: string, e: unknown): ErrorObject {
  if (e instanceof NeuroShardError) return e.toObject();
  return new JobFailedError(jobType, errorMessage(e), e instanceof Error ? e.stack : undefined).toObject();
}

let state: ComputeState;
try {
  state = await ComputeState.create((workerData ?? {}) as WorkerConfig);
} catch (e) {
  // A configuration that cannot work (a required backend missing) is permanent: report it typed and stop, so
  // the client fails start() with it instead of restarting in a loop.
  post({ kind: 'startFailed', error: toErrorObject('start', e) });
  process.exit(78);
}
const handlers = createHandlers(state);

let queue: Promise<void> = Promise.resolve();

async function run(msg: ToWorker): Promise<void> {
  const { id, job } = msg;
  const ctx = createJobContext(job.type, msg.cancel, (event) => post({ kind: 'event', id, event }));
  const t0 = performance.now();
  try {
    ctx.throwIfCancelled(); // aborted while it waited in the queue
    const result: unknown = await runHandler(handlers, job, ctx);
    const { value, transfer } = prepareTransfer(result);
    post({ kind: 'result', id, result: value, ms: performance.now() - t0 }, transfer);
  } catch (e) {
    post({ kind: 'error', id, error: toErrorObject(job.type, e) });
  }
}

port.on('message', (msg: ToWorker) => {
  if (msg.kind !== 'job') return;
  queue = queue.then(() => run(msg));
});

post({ kind: 'ready', info: state.info() });
