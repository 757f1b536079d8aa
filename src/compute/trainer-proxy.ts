/**
 * Glue for running the solo training loop (training/loop.ts) on the main thread while the steps run in the compute
 * worker: a TrainStepper that sends jobs, and a BatchSource over the data package's BatchStream.
 *
 *   const client = await ComputeClient.start();
 *   await client.run({ type: 'initModel', config, seed, trainer: { decaySteps: steps } });
 *   await trainLoop({ stepper: new WorkerTrainStepper(client), data: batchSource(stream), targetStep: steps, … });
 */
import type { Batch as DataBatch, BatchStream } from '../data/batcher.js';
import { IntTensor } from '../tensor/index.js';
import type { Batch, BatchSource, TrainStepper, TrainStepResult } from '../training/index.js';
import type { ComputeClient } from './client.js';

/** Runs each step in the worker. A batch's arrays are transferred (moved) to the worker. */
export class WorkerTrainStepper implements TrainStepper {
  constructor(private readonly client: ComputeClient) {}

  async currentStep(): Promise<number> {
    return (await this.client.run({ type: 'trainerInfo' })).step;
  }

  trainStep(batch: Batch): Promise<TrainStepResult> {
    const [B, T] = batch.inputs.shape;
    return this.client.run({ type: 'trainStep', inputs: batch.inputs.data, targets: batch.targets.data, B, T });
  }

  /** All batches must share one [B, T]; they go to the worker in one job (copied: the caller reuses them). */
  evaluate(batches: Batch[]): Promise<{ loss: number; tokens: number }> {
    if (batches.length === 0) return Promise.resolve({ loss: NaN, tokens: 0 });
    const [B, T] = batches[0].inputs.shape;
    const n = B * T;
    const inputs = new Int32Array(n * batches.length);
    const targets = new Int32Array(n * batches.length);
    batches.forEach((b, i) => {
      inputs.set(b.inputs.data, i * n);
      targets.set(b.targets.data, i * n);
    });
    return this.client.run({ type: 'evalLoss', inputs, targets, B, T });
  }
}

/** The trainer's view of a data batch: inputs/targets [B, T] as IntTensors over the same arrays. */
export function toTrainBatch(b: DataBatch): Batch {
  return { inputs: new IntTensor(b.inputs, [b.batchSize, b.seqLen]), targets: new IntTensor(b.labels, [b.batchSize, b.seqLen]) };
}

/** A BatchSource over the data package's stream; its position is the stream's DataPosition. */
export function batchSource(stream: BatchStream): BatchSource {
  return {
    next: () => toTrainBatch(stream.next()),
    position: () => stream.position(),
  };
}
