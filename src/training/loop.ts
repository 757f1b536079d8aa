/**
 * The solo training loop: pulls batches from a BatchSource, runs steps until the target step, evaluates every
 * `evalEvery` steps, checkpoints every `checkpointEvery` steps and once more when stopped early. It drives a
 * `TrainStepper`, which is a SoloTrainer in the same thread or a proxy to one in the compute worker (the event
 * loop then never blocks on math).
 *
 * `targetStep` is absolute: a run resumed at step 300 with target 1000 takes 700 steps.
 */
import { InvalidArgumentError } from '../util/errors.js';
import type { TrainStepResult } from './trainer.js';
import type { Batch, BatchSource } from './types.js';

/** What the loop needs of a trainer; every call may cross a thread boundary. */
export interface TrainStepper {
  /** Steps already taken (the resume point). */
  currentStep(): number | Promise<number>;
  trainStep(batch: Batch): TrainStepResult | Promise<TrainStepResult>;
  evaluate(batches: Batch[]): { loss: number; tokens: number } | Promise<{ loss: number; tokens: number }>;
}

export interface CheckpointRequest {
  /** Steps taken when the checkpoint is cut. */
  step: number;
  /** The data source's position after the last consumed batch. */
  dataPosition: unknown;
  /** Why: 'periodic', 'final' (target reached) or 'stopped' (aborted). */
  reason: 'periodic' | 'final' | 'stopped';
}

export interface TrainLoopOptions {
  stepper: TrainStepper;
  data: BatchSource;
  /** Absolute step to stop at. */
  targetStep: number;
  /** Evaluate every K steps (0 = never). Needs `evalBatches`. */
  evalEvery?: number;
  /** The validation batches (the same ones each time, so the curve is comparable). */
  evalBatches?: () => Batch[] | Promise<Batch[]>;
  /** Checkpoint every K steps (0 = only at the end and when stopped). */
  checkpointEvery?: number;
  onCheckpoint?: (req: CheckpointRequest) => void | Promise<void>;
  onStep?: (r: TrainStepResult) => void;
  onEval?: (e: { step: number; loss: number; tokens: number }) => void;
  /** Stops the loop after the current step (then a 'stopped' checkpoint is cut). */
  signal?: AbortSignal;
}

export interface TrainLoopResult {
  step: number;
  stoppedBy: 'target' | 'signal';
  lastLoss: number;
  lastValLoss: number | undefined;
  /** Tokens per second over the steps this call ran (0 when it ran none). */
  tokensPerSecond: number;
}

export async function trainLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  const evalEvery = o.evalEvery ?? 0;
  const ckptEvery = o.checkpointEvery ?? 0;
  if (!Number.isInteger(o.targetStep) || o.targetStep < 0) throw new InvalidArgumentError(`trainLoop: targetStep ${o.targetStep} must be an integer ≥ 0`);
  if (!Number.isInteger(evalEvery) || evalEvery < 0) throw new InvalidArgumentError(`trainLoop: evalEvery ${evalEvery} must be an integer ≥ 0`);
  if (!Number.isInteger(ckptEvery) || ckptEvery < 0) throw new InvalidArgumentError(`trainLoop: checkpointEvery ${ckptEvery} must be an integer ≥ 0`);
  if (evalEvery > 0 && o.evalBatches === undefined) throw new InvalidArgumentError('trainLoop: evalEvery needs evalBatches');

  let step = await o.stepper.currentStep();
  let lastLoss = NaN;
  let lastValLoss: number | undefined;
  let tokens = 0;
  const t0 = performance.now();
  let evalSet: Batch[] | undefined;
  let lastCheckpointStep = -1;

  const checkpoint = async (reason: CheckpointRequest['reason']): Promise<void> => {
    if (o.onCheckpoint === undefined || lastCheckpointStep === step) return;
    lastCheckpointStep = step;
    await o.onCheckpoint({ step, dataPosition: o.data.position(), reason });
  };

  while (step < o.targetStep) {
    if (o.signal?.aborted === true) {
      await checkpoint('stopped');
      return { step, stoppedBy: 'signal', lastLoss, lastValLoss, tokensPerSecond: rate(tokens, t0) };
    }
    const batch = await o.data.next(o.signal);
    const batchTokens = batch.inputs.numel; // read first: a stepper in another thread may take (detach) the arrays
    const r = await o.stepper.trainStep(batch);
    step = r.step;
    lastLoss = r.loss;
    tokens += batchTokens;
    o.onStep?.(r);
    if (evalEvery > 0 && step % evalEvery === 0) {
      evalSet ??= await o.evalBatches!();
      const e = await o.stepper.evaluate(evalSet);
      lastValLoss = e.loss;
      o.onEval?.({ step, loss: e.loss, tokens: e.tokens });
    }
    if (ckptEvery > 0 && step % ckptEvery === 0 && step < o.targetStep) await checkpoint('periodic');
  }
  await checkpoint('final');
  return { step, stoppedBy: 'target', lastLoss, lastValLoss, tokensPerSecond: rate(tokens, t0) };
}

function rate(tokens: number, t0: number): number {
  const s = (performance.now() - t0) / 1000;
  return tokens === 0 || s <= 0 ? 0 : tokens / s;
}
