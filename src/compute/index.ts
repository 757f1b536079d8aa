/** The compute worker's public surface: the client, its jobs and errors. */
export { ComputeClient, type ComputeClientOptions, type ComputeEvents, type JobOptions } from './client.js';
export { ComputeClosedError, ComputeStateError, JobFailedError, WorkerCrashedError, WorkerStartError } from './errors.js';
export type { CrashMode, Job, JobDefs, JobEvent, JobOf, JobType, ResultOf, WorkerConfig, WorkerInfo } from './jobs.js';
export { prepareTransfer } from './transfer.js';
export { callerTrainingState } from './training-state.js';
export { WorkerTrainStepper, batchSource, toTrainBatch } from './trainer-proxy.js';
export { workerStage, workerStageTransport } from './stage-proxy.js';
