/**
 * Micro-batch schedules for pipeline training, as per-stage op lists, and the utilisation they achieve.
 *
 *   gpipe  every stage runs F0 … F(M−1), then B(M−1) … B0 (Huang et al. 2019): activations of all M micro-batches
 *          are alive at once on every stage.
 *   1f1b   PipeDream-flush (Narayanan et al. 2021): stage s runs min(S−1−s, M) warm-up forwards, then alternates one
 *          forward and one backward, then drains the remaining backwards; at most S−s micro-batches alive on stage s.
 * Both have the same bubble, (S−1)/(M+S−1) of the time with equal op costs; 1F1B needs less activation memory.
 *
 * Dependencies: F(s, m) needs F(s−1, m); B(s, m) needs B(s+1, m) (and F(s, m), earlier in the stage's own list).
 */
import { InvalidArgumentError } from '../../util/errors.js';

export type PipelineScheduleName = 'gpipe' | '1f1b';
export const PIPELINE_SCHEDULES: readonly PipelineScheduleName[] = ['gpipe', '1f1b'];

export interface PipelineOp {
  kind: 'F' | 'B';
  /** Micro-batch index. */
  mb: number;
}

/** ops[s] = stage s's ops in execution order. */
export function pipelineSchedule(name: PipelineScheduleName, stages: number, microBatches: number): PipelineOp[][] {
  if (!Number.isInteger(stages) || stages < 1 || !Number.isInteger(microBatches) || microBatches < 1) {
    throw new InvalidArgumentError(`pipeline schedule: stages ${stages} and micro-batches ${microBatches} must be integers ≥ 1`);
  }
  const S = stages;
  const M = microBatches;
  const out: PipelineOp[][] = [];
  for (let s = 0; s < S; s++) {
    const ops: PipelineOp[] = [];
    if (name === 'gpipe') {
      for (let m = 0; m < M; m++) ops.push({ kind: 'F', mb: m });
      for (let m = M - 1; m >= 0; m--) ops.push({ kind: 'B', mb: m });
    } else if (name === '1f1b') {
      const warm = Math.min(S - 1 - s, M);
      let f = 0;
      let b = 0;
      for (; f < warm; f++) ops.push({ kind: 'F', mb: f });
      while (f < M) {
        ops.push({ kind: 'F', mb: f++ });
        ops.push({ kind: 'B', mb: b++ });
      }
      while (b < M) ops.push({ kind: 'B', mb: b++ });
    } else {
      throw new InvalidArgumentError(`unknown pipeline schedule ${String(name)} (known: ${PIPELINE_SCHEDULES.join(', ')})`);
    }
    out.push(ops);
  }
  return out;
}

export interface Utilisation {
  /** Time from the first op's start to the last op's end, with every stage on its own device. */
  makespanMs: number;
  /** Σ op durations per stage. */
  busyMs: number[];
  /** Σ busy / (S × makespan): the share of stage time spent computing (1 − bubble). */
  utilisation: number;
  /** The textbook bubble-free share with equal op costs: M / (M + S − 1). */
  ideal: number;
}

/**
 * Replays a schedule with measured op durations (ms, keyed `${kind}${stage}:${mb}`) on S independent devices with
 * free transfers (loopback), honouring the dependencies: the utilisation the chain reaches when each stage runs on
 * its own machine. In-process the stages share one thread, so the wall clock cannot show the bubble; this does.
 */
export function simulateSchedule(ops: PipelineOp[][], durationMs: (kind: 'F' | 'B', stage: number, mb: number) => number): Utilisation {
  const S = ops.length;
  const M = ops[0]?.filter((o) => o.kind === 'F').length ?? 0;
  const done = new Map<string, number>();
  const free = new Array<number>(S).fill(0);
  const next = new Array<number>(S).fill(0);
  const busy = new Array<number>(S).fill(0);
  let remaining = ops.reduce((a, o) => a + o.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let s = 0; s < S; s++) {
      const op = ops[s]![next[s]!];
      if (op === undefined) continue;
      const dep = op.kind === 'F' ? (s === 0 ? 0 : done.get(`F${s - 1}:${op.mb}`)) : s === S - 1 ? done.get(`F${s}:${op.mb}`) : done.get(`B${s + 1}:${op.mb}`);
      if (dep === undefined) continue;
      const d = durationMs(op.kind, s, op.mb);
      const start = Math.max(free[s]!, dep);
      free[s] = start + d;
      busy[s] += d;
      done.set(`${op.kind}${s}:${op.mb}`, start + d);
      next[s]!++;
      remaining--;
      progressed = true;
    }
    if (!progressed) throw new InvalidArgumentError('pipeline schedule deadlocks (an op waits for one that never runs)');
  }
  const makespanMs = Math.max(...free);
  const total = busy.reduce((a, b) => a + b, 0);
  return { makespanMs, busyMs: busy, utilisation: makespanMs > 0 ? total / (S * makespanMs) : 1, ideal: M / (M + S - 1) };
}
