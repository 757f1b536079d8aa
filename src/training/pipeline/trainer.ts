/**
 * The pipeline driver: one training step of a chain of stages covering every layer, micro-batched under a
 * schedule, with SoloTrainer's semantics (src/training/trainer.ts):
 *
 *   lr = schedule(step) → beginStep on every stage → the schedule's forwards and backwards, each stage working
 *   through its own op list as soon as the op's input is there → Σ g² from every stage → global norm →
 *   non-finite loss or norm: abortStep everywhere (a skipped step: weights, moments and AdamW's count unchanged,
 *   the step counter moves on) → else clip = min(1, maxGradNorm / (norm + 1e-6)) and applyStep everywhere.
 *
 * Any stage call that fails aborts the step on every stage and rethrows: no stage applies a half step. The driver
 * talks to stages only through PipelineStage, so a network transport can replace the in-process calls.
 *
 * Timings of every op are recorded so that `lastUtilisation` reports what the schedule achieves when each stage
 * runs on its own device (schedule.ts simulateSchedule).
 */
import { IntTensor } from '../../tensor/index.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { TypedEmitter } from '../../util/events.js';
import { TrainingModelError } from '../errors.js';
import { trainerOptions, type TrainerOptions } from '../options.js';
import { lrAt } from '../schedule.js';
import type { TrainerEvents, TrainStepResult } from '../trainer.js';
import type { Batch } from '../types.js';
import { pipelineSchedule, simulateSchedule, type PipelineScheduleName, type Utilisation } from './schedule.js';
import type { PipelineStage } from './stage.js';

const CLIP_EPS = 1e-6;
const IGNORE = -100;

export interface PipelineOptions {
  /** Micro-batches per step (must divide the batch size B). */
  microBatches: number;
  schedule: PipelineScheduleName;
  trainer?: Partial<TrainerOptions>;
}

export class PipelineTrainer {
  readonly events = new TypedEmitter<TrainerEvents>();
  readonly options: TrainerOptions;
  private stepCount = 0;
  /** Utilisation of the last step's schedule with its measured op times. */
  lastUtilisation: Utilisation | null = null;

  private chain: readonly PipelineStage[];

  constructor(
    stages: readonly PipelineStage[],
    readonly pipe: PipelineOptions,
  ) {
    checkChain(stages);
    this.chain = stages;
    if (!Number.isInteger(pipe.microBatches) || pipe.microBatches < 1) throw new InvalidArgumentError(`micro-batches ${pipe.microBatches} must be an integer ≥ 1`);
    this.options = trainerOptions(pipe.trainer);
  }

  get stages(): readonly PipelineStage[] {
    return this.chain;
  }

  /** A re-formed chain (another replica of a hop that died) takes over between steps; the step counter stays. */
  setStages(stages: readonly PipelineStage[]): void {
    checkChain(stages);
    this.chain = stages;
  }

  get step(): number {
    return this.stepCount;
  }

  /**
   * One step on `batch`. `scheduleStep`: the lr schedule's position for this step (default: the step counter). A chain
   * driver passes the steps that count (ChainTrainer): steps it discarded while it waited to enter the outer rounds
   * must not move its schedule on, or a driver that waited would train at a later point of the cosine than one that
   * did not.
   */
  async trainStep(batch: Batch, scheduleStep = this.stepCount): Promise<TrainStepResult> {
    const step = this.stepCount;
    if (!(Number.isInteger(scheduleStep) && scheduleStep >= 0)) throw new InvalidArgumentError(`schedule step ${scheduleStep} must be an integer ≥ 0`);
    const lr = lrAt(scheduleStep, this.options);
    const [B, T] = batch.inputs.shape as [number, number];
    const M = this.pipe.microBatches;
    if (B % M !== 0) throw new InvalidArgumentError(`batch size ${B} is not divisible by ${M} micro-batches`);
    const b = B / M;
    const S = this.stages.length;
    let total = 0;
    for (const t of batch.targets.data) if (t !== IGNORE) total++;
    const mbIds = (m: number): Int32Array => batch.inputs.data.slice(m * b * T, (m + 1) * b * T);
    const mbTargets = (m: number): Int32Array => batch.targets.data.slice(m * b * T, (m + 1) * b * T);
    const counts = Array.from({ length: M }, (_, m) => mbTargets(m).reduce((a, t) => a + (t !== IGNORE ? 1 : 0), 0));

    const ops = pipelineSchedule(this.pipe.schedule, S, M);
    const acts = new Map<string, Float32Array | null>(); // `F${s}:${m}` → output of stage s; `B${s}:${m}` → dInput
    const waiters = new Map<string, ((v: void) => void)[]>();
    const durations = new Map<string, number>();
    let lossSum = 0;
    let failed: unknown = null;
    const signal = (key: string): void => {
      for (const w of waiters.get(key) ?? []) w();
      waiters.delete(key);
    };
    const ready = (key: string): Promise<void> =>
      acts.has(key) || failed !== null
        ? Promise.resolve()
        : new Promise((res) => {
            const l = waiters.get(key) ?? [];
            l.push(res);
            waiters.set(key, l);
          });
    const t0 = performance.now();
    try {
      await Promise.all(this.stages.map((st) => st.beginStep(step)));
      await Promise.all(
        this.stages.map(async (st, s) => {
          for (const op of ops[s]!) {
            if (failed !== null) return;
            const m = op.mb;
            if (op.kind === 'F') {
              const dep = `F${s - 1}:${m}`;
              if (s > 0) await ready(dep);
              if (failed !== null) return;
              const input = s === 0 ? mbIds(m) : acts.get(dep)!;
              const a = performance.now();
              const r = await st.forward(step, m, input, b, T, st.isLast ? mbTargets(m) : undefined, total === 0 ? 0 : counts[m]! / total);
              durations.set(`F${s}:${m}`, performance.now() - a);
              if (st.isLast) lossSum += (r.loss ?? 0) * (r.count ?? 0);
              acts.set(`F${s}:${m}`, r.output);
              signal(`F${s}:${m}`);
            } else {
              const dep = `B${s + 1}:${m}`;
              if (s < S - 1) await ready(dep);
              if (failed !== null) return;
              const a = performance.now();
              const dIn = await st.backward(step, m, s < S - 1 ? acts.get(dep)! : null);
              durations.set(`B${s}:${m}`, performance.now() - a);
              acts.delete(`F${s - 1}:${m}`); // the input activation is no longer needed
              acts.set(`B${s}:${m}`, dIn);
              if (s < S - 1) acts.delete(dep);
              signal(`B${s}:${m}`);
            }
          }
        }).map((p) =>
          p.catch((e: unknown) => {
            failed ??= e;
            for (const k of [...waiters.keys()]) signal(k); // wake everyone so they see the failure
          }),
        ),
      );
      if (failed !== null) throw failed;
      const t1 = performance.now();
      const sq = await Promise.all(this.stages.map((st) => st.gradSumSquares(step)));
      const loss = total === 0 ? 0 : lossSum / total;
      let ss = 0;
      for (const x of sq) ss += x;
      const gradNorm = Math.sqrt(ss);
      this.stepCount++;
      this.lastUtilisation = simulateSchedule(ops, (k, s, m) => durations.get(`${k}${s}:${m}`) ?? 0);
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        await Promise.all(this.stages.map((st) => st.abortStep(step)));
        const nonFinite = !Number.isFinite(loss) ? ['loss'] : sq.map((x, i) => (Number.isFinite(x) ? '' : `stage${i}`)).filter((x) => x !== '');
        const r = this.result(loss, total, lr, Number.isFinite(loss) ? gradNorm : NaN, 1, false, nonFinite, t0, t1, performance.now());
        this.events.emit('step:skipped', { step: r.step, loss, gradNorm: r.gradNorm, nonFinite });
        return r;
      }
      const max = this.options.maxGradNorm;
      const clipScale = max > 0 && Number.isFinite(max) ? Math.min(1, max / (gradNorm + CLIP_EPS)) : 1;
      await Promise.all(this.stages.map((st) => st.applyStep(step, { lr, clipScale })));
      return this.result(loss, total, lr, gradNorm, clipScale, true, [], t0, t1, performance.now());
    } catch (e) {
      await Promise.allSettled(this.stages.map((st) => st.abortStep(step)));
      throw e;
    }
  }

  /** Mean loss over the batches, weighted by counted positions (no gradients). */
  async evaluate(batches: Iterable<Batch>): Promise<{ loss: number; tokens: number }> {
    let sum = 0;
    let tokens = 0;
    for (const batch of batches) {
      const [B, T] = batch.inputs.shape as [number, number];
      let x: Int32Array | Float32Array = batch.inputs.data;
      for (const st of this.stages) {
        const r = await st.evalForward(x, B, T, st.isLast ? batch.targets.data : undefined);
        if (st.isLast) {
          sum += (r.loss ?? 0) * (r.count ?? 0);
          tokens += r.count ?? 0;
        } else x = r.output!;
      }
    }
    return { loss: tokens === 0 ? NaN : sum / tokens, tokens };
  }

  private result(loss: number, tokens: number, lr: number, gradNorm: number, clipScale: number, applied: boolean, nonFinite: string[], t0: number, t1: number, t2: number): TrainStepResult {
    return { step: this.stepCount, loss, tokens, lr, gradNorm, clipScale, applied, nonFinite, ms: { forward: t1 - t0, backward: 0, optimizer: t2 - t1 } };
  }
}

function checkChain(stages: readonly PipelineStage[]): void {
  if (stages.length === 0 || !stages[0]!.isFirst || !stages.at(-1)!.isLast) throw new TrainingModelError('a pipeline needs stages from the embedding through the head');
  for (let i = 1; i < stages.length; i++) {
    if (stages[i]!.span.start !== stages[i - 1]!.span.end) throw new TrainingModelError(`stage ${i} starts at layer ${stages[i]!.span.start}, the previous one ends at ${stages[i - 1]!.span.end}`);
  }
}

/** A batch from flat arrays (tests and the experiment script). */
export function batchOf(inputs: Int32Array, targets: Int32Array, B: number, T: number): Batch {
  return { inputs: new IntTensor(inputs, [B, T]), targets: new IntTensor(targets, [B, T]) };
}
