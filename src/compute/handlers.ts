/**
 * The job handlers: one function per job type, run inside the compute worker against its ComputeState. The table
 * is an exhaustive Record over JobType, so a job declared in jobs.ts without a handler fails to compile.
 */
import { runStageOp } from '../training/pipeline/index.js';
import { loadCheckpoint, loadCheckpointOptimizer, saveCheckpoint } from '../model/checkpoint.js';
import { callerTrainingState, isSavedTrainingState, type SavedTrainingState } from './training-state.js';
import { generate } from '../model/generate.js';
import { adamwStateFromFlat, flatOptimizerState } from '../model/optimizer.js';
import { IntTensor, ShapeError, type GemmArgs } from '../tensor/index.js';
import type { Batch } from '../training/index.js';
import { sha256Hex } from '../util/bytes.js';
import { InvalidArgumentError, NeuroShardError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { ComputeStateError } from './errors.js';
import type { JobContext } from './context.js';
import type { JobDefs, JobOf, JobType, ResultOf } from './jobs.js';
import { CHANGES_WEIGHTS } from './served-params.js';
import type { ComputeState } from './state.js';

export type Handler<T extends JobType> = (job: JobOf<T>, ctx: JobContext) => ResultOf<T> | Promise<ResultOf<T>>;
export type HandlerTable = { [K in JobType]: Handler<K> };

/** Largest GEMM operand a job may send, in elements (1 GiB of float32): anything bigger is a caller bug. */
const MAX_GEMM_ELEMENTS = 2 ** 28;

function posInt(name: string, v: unknown, max = 1 << 20): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer in 1..${max}, got ${String(v)}`, { [name]: v });
  }
  return v;
}

/** Elements an operand of `rows`×`cols` (row stride ld, batch stride, offset) spans. */
function span(rows: number, cols: number, ld: number, batch: number, stride: number, off: number): number {
  return off + (batch - 1) * stride + (rows - 1) * ld + cols;
}

function checkGemm(a: Float32Array, b: Float32Array, c: Float32Array, g: GemmArgs): void {
  const M = posInt('M', g.M);
  const N = posInt('N', g.N);
  const K = posInt('K', g.K);
  const batch = g.batch === undefined ? 1 : posInt('batch', g.batch);
  const [ar, ac] = g.transA ? [K, M] : [M, K];
  const [br, bc] = g.transB ? [N, K] : [K, N];
  const needA = span(ar, ac, g.lda ?? ac, batch, g.strideA ?? ar * ac, g.offA ?? 0);
  const needB = span(br, bc, g.ldb ?? bc, batch, g.strideB ?? br * bc, g.offB ?? 0);
  const needC = span(M, N, g.ldc ?? N, batch, g.strideC ?? M * N, g.offC ?? 0);
  if (a.length < needA || b.length < needB || c.length < needC || needA > MAX_GEMM_ELEMENTS || needC > MAX_GEMM_ELEMENTS) {
    throw new InvalidArgumentError(`gemm: operands too short for M=${M} N=${N} K=${K} batch=${batch}`, {
      a: a.length,
      b: b.length,
      c: c.length,
      needA,
      needB,
      needC,
    });
  }
}

/** Checks that an int32 token array holds exactly `n` elements. */
function expectLength(op: string, name: string, a: Int32Array | Float32Array, n: number, shape: number[]): void {
  if (!(a instanceof Int32Array || a instanceof Float32Array) || a.length !== n) {
    throw new ShapeError(op, `${name} must hold ${n} elements`, { [name]: [a?.length ?? 0], expected: shape });
  }
}

function batchDims(op: string, B: unknown, T: unknown): { B: number; T: number } {
  const b = posInt(`${op}: B`, B, 1 << 16);
  const t = posInt(`${op}: T`, T, 1 << 20);
  return { B: b, T: t };
}

function hashParams(p: Float32Array): string {
  return sha256Hex(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
}

function pathArg(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096 || v.includes('\0')) {
    throw new InvalidArgumentError(`${name} must be a non-empty path of at most 4096 characters`, { [name]: typeof v === 'string' ? v.slice(0, 200) : v });
  }
  return v;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

export function createHandlers(state: ComputeState): HandlerTable {
  const table: HandlerTable = {
    ping: (job) => {
      const r: ResultOf<'ping'> = { ...state.info() };
      if (job.echo !== undefined) r.echo = job.echo;
      return r;
    },

    setThreads: (job) => {
      state.backend.setThreads(posInt('threads', job.threads, 256));
      return { threads: state.backend.threads };
    },

    gemm: (job) => {
      const g = job.args;
      const M = posInt('M', g.M);
      const N = posInt('N', g.N);
      const c = job.c ?? new Float32Array(M * N * (g.batch ?? 1));
      if (job.c === undefined && g.beta !== 0) throw new InvalidArgumentError('gemm: beta ≠ 0 needs an input c', { beta: g.beta });
      checkGemm(job.a, job.b, c, g);
      state.backend.gemm(job.a, job.b, c, g);
      return { c };
    },

    benchGemm: (job, ctx) => {
      const M = posInt('M', job.M, 1 << 14);
      const K = posInt('K', job.K, 1 << 14);
      const N = posInt('N', job.N, 1 << 14);
      const reps = job.reps === undefined ? 3 : posInt('reps', job.reps, 100);
      const minMs = job.minMs ?? 250;
      const before = state.backend.threads;
      if (job.threads !== undefined) state.backend.setThreads(posInt('threads', job.threads, 256));
      try {
        const rng = new Rng(1234);
        const a = new Float32Array(M * K).map(() => rng.normal());
        const b = new Float32Array(K * N).map(() => rng.normal());
        const c = new Float32Array(M * N);
        const args: GemmArgs = { transA: false, transB: false, M, N, K, alpha: 1, beta: 0 };
        state.backend.gemm(a, b, c, args); // warm-up: page faults, packing buffers, pool start
        const samples: number[] = [];
        for (let r = 0; r < reps; r++) {
          let calls = 0;
          const t0 = performance.now();
          let dt = 0;
          do {
            state.backend.gemm(a, b, c, args);
            calls++;
            dt = performance.now() - t0;
            ctx.throwIfCancelled();
          } while (dt < minMs);
          samples.push((2 * M * K * N * calls) / (dt / 1000) / 1e9);
        }
        return { gflops: median(samples), samples, threads: state.backend.threads, backend: state.backend.name };
      } finally {
        state.backend.setThreads(before);
      }
    },

    spin: (job, ctx) => {
      const ms = job.ms;
      if (typeof ms !== 'number' || !(ms >= 0) || ms > 600_000) throw new InvalidArgumentError('spin: ms must be in 0..600000', { ms });
      const t0 = performance.now();
      let now = t0;
      while (now - t0 < ms) {
        ctx.throwIfCancelled();
        now = performance.now();
      }
      return { ms: now - t0 };
    },

    crash: (job) => {
      switch (job.mode) {
        case 'exit':
          process.exit(3);
          break;
        case 'uncaught':
          // Outside the job's try/catch: nothing in the worker catches it, so the thread dies.
          setImmediate(() => {
            throw new Error('deliberate uncaught exception (crash test job)');
          });
          return new Promise<never>(() => undefined);
        case 'throw':
          throw new NeuroShardError('COMPUTE_TEST_ERROR', 'deliberate job error (crash test job, mode throw)', { fault: 'local' });
      }
      throw new InvalidArgumentError(`crash: unknown mode ${String((job as { mode: unknown }).mode)}`);
    },

    // ---- model ----------------------------------------------------------------------------------------------

    initModel: (job) => {
      const m = state.initModel(job);
      // an int8 model keeps no float32 buffer: its hash is the span hash of the weights it was quantized from
      const hash = m.shard.weights === 'int8' ? m.shard.hash() : hashParams(m.shard.params);
      return { paramCount: m.shard.layout.size, span: { ...m.shard.span }, hash, backend: state.backend.description };
    },

    releaseModel: () => ({ released: state.releaseModel() }),

    trainStep: (job, ctx) => {
      const trainer = state.trainer();
      const { B, T } = batchDims('trainStep', job.B, job.T);
      expectLength('trainStep', 'inputs', job.inputs, B * T, [B, T]);
      expectLength('trainStep', 'targets', job.targets, B * T, [B, T]);
      const r = trainer.trainStep({ inputs: new IntTensor(job.inputs, [B, T]), targets: new IntTensor(job.targets, [B, T]) });
      if (!r.applied) ctx.emit({ type: 'step:skipped', step: r.step, loss: r.loss, gradNorm: r.gradNorm, nonFinite: r.nonFinite });
      return r;
    },

    evalLoss: (job, ctx) => {
      const trainer = state.trainer();
      const { B, T } = batchDims('evalLoss', job.B, job.T);
      const n = job.inputs.length / (B * T);
      if (!Number.isInteger(n) || n < 1) throw new ShapeError('evalLoss', `inputs hold ${job.inputs.length} ids, not a whole number of [${B}, ${T}] batches`);
      expectLength('evalLoss', 'targets', job.targets, job.inputs.length, [n, B, T]);
      const batches: Batch[] = [];
      for (let i = 0; i < n; i++) {
        const s = i * B * T;
        batches.push({ inputs: new IntTensor(job.inputs.subarray(s, s + B * T), [B, T]), targets: new IntTensor(job.targets.subarray(s, s + B * T), [B, T]) });
      }
      ctx.throwIfCancelled();
      return trainer.evaluate(batches);
    },

    forward: (job) => {
      const { shard } = state.model();
      if (!shard.hasEmbed || !shard.hasHead) throw new ComputeStateError('forward job needs the whole model (span jobs come with pipeline training)');
      const { B, T } = batchDims('forward', job.B, job.T);
      expectLength('forward', 'ids', job.ids, B * T, [B, T]);
      const out = shard.forward(job.ids, B, T, job.posOffset === undefined ? {} : { posOffset: job.posOffset });
      const V = shard.config.vocab_size;
      if (job.lastOnly !== true) return { logits: out.slice(0, B * T * V) };
      const last = new Float32Array(B * V);
      for (let b = 0; b < B; b++) last.set(out.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
      return { logits: last };
    },

    generate: (job, ctx) => {
      const { shard } = state.model();
      if (!(job.prompt instanceof Int32Array)) throw new InvalidArgumentError('generate: prompt must be an Int32Array of token ids');
      const t0 = performance.now();
      let tFirst = NaN;
      const r = generate(shard, job.prompt, {
        maxTokens: job.maxTokens,
        ...(job.temperature === undefined ? {} : { temperature: job.temperature }),
        ...(job.topK === undefined ? {} : { topK: job.topK }),
        ...(job.topP === undefined ? {} : { topP: job.topP }),
        ...(job.seed === undefined ? {} : { seed: job.seed }),
        ...(job.stopIds === undefined ? {} : { stopIds: job.stopIds }),
        onToken: () => {
          if (Number.isNaN(tFirst)) tFirst = performance.now();
          ctx.throwIfCancelled();
        },
      });
      const t1 = performance.now();
      if (Number.isNaN(tFirst)) tFirst = t1; // stopped at once by a stop id
      return { tokens: Int32Array.from(r.tokens), finishReason: r.finishReason, prefillMs: tFirst - t0, decodeMs: t1 - tFirst };
    },

    readBound: (job) => {
      const { shard } = state.model();
      const be = state.backend;
      if (be.readArrays === undefined) throw new ComputeStateError('readBound needs the native backend (no native reader here)');
      const passes = job.passes === undefined ? 3 : posInt('passes', job.passes, 100);
      const kinds = job.streams ?? [1, 4];
      if (kinds.length === 0 || kinds.some((k) => k !== 1 && k !== 2 && k !== 4)) throw new InvalidArgumentError('readBound: streams must be 1, 2 or 4');
      // the same bytes two ways: as the step's arrays, and merged into back-to-back ranges; which reads faster
      // depends on the layout (12x768: int8 faster as ranges, f32 as arrays), so both are tried
      const layouts = { arrays: shard.decodeReadArrays(), ranges: shard.decodeReadRanges() };
      const threads = be.threads;
      const byReader: Record<string, number> = {};
      let best = { bps: 0, cpuBps: 0, reader: '', bytes: 0 };
      const readers = (Object.keys(layouts) as (keyof typeof layouts)[]).flatMap((l) => kinds.map((k) => [l, k] as const));
      for (const [l, k] of readers) be.readArrays(layouts[l], 1, threads, k, true); // untimed: caches, TLB, the threads' start
      for (let p = 0; p < passes; p++)
        for (const [l, k] of readers) {
          const r = be.readArrays(layouts[l], 1, threads, k, true);
          const bps = r.bytes / (Math.max(r.t1 - r.t0, 1e-6) / 1000);
          const key = `${l}/${k}`;
          byReader[key] = Math.max(byReader[key] ?? 0, bps);
          if (bps > best.bps) best = { ...best, bps, reader: key, bytes: r.bytes };
          best.cpuBps = Math.max(best.cpuBps, r.bytes / (Math.max(r.cpuMs, 1e-6) / 1000));
        }
      return { ...best, byReader, threads };
    },

    getParams: () => {
      const { shard } = state.model();
      if (shard.weights === 'int8') throw new ComputeStateError('the worker holds int8 weights and keeps no float32 copy to give');
      return { params: shard.params.slice() };
    },

    paramsDigest: (job) => state.served.digest(state.model().shard, job.span),

    paramsRange: (job) => state.served.range(state.model().shard, job.span, job.offset, job.length, job.worker === undefined && job.version === undefined ? undefined : { worker: job.worker, version: job.version }),

    modelHash: () => state.served.heldHash(state.model().shard),

    setParams: (job) => {
      const { shard } = state.model();
      if (shard.weights === 'int8') throw new ComputeStateError('the worker holds int8 weights: float32 parameters cannot be set');
      if (!(job.params instanceof Float32Array) || job.params.length !== shard.params.length) {
        throw new ShapeError('setParams', `params must be a Float32Array of ${shard.params.length} elements`, { params: [job.params?.length ?? 0] });
      }
      shard.params.set(job.params);
      return { paramCount: shard.params.length };
    },

    trainerInfo: () => {
      const t = state.trainer();
      return { step: t.step, appliedSteps: t.appliedSteps, nextLr: t.nextLr };
    },

    getTrainerState: () => state.trainer().state(),

    setTrainerState: (job) => {
      const t = state.trainer();
      t.loadState(job.state);
      return { step: t.step };
    },

    saveCheckpoint: (job, ctx) => {
      const m = state.model();
      if (m.shard.weights === 'int8') throw new ComputeStateError('the worker holds int8 weights: checkpoints are written from float32 models only');
      const root = pathArg('root', job.root);
      const step = job.step ?? m.trainer?.step ?? 0;
      let lastPct = -1;
      const saved: SavedTrainingState = { format: 'neuroshard-solo-trainer', version: 1, trainerStep: m.trainer?.step ?? step, extra: job.trainingState ?? null };
      const r = saveCheckpoint({
        root,
        step,
        model: m.shard,
        ...(m.trainer === undefined ? {} : { optimizer: flatOptimizerState(m.shard.layout, m.trainer.state().optimizer) }),
        trainingState: saved,
        ...(job.tokenizerPath === undefined ? {} : { tokenizerPath: pathArg('tokenizerPath', job.tokenizerPath) }),
        ...(job.keepLast === undefined ? {} : { keepLast: job.keepLast }),
        // progress for a bar on the main thread: at most one event per percent (a chunk is one tensor)
        onProgress: (done, total) => {
          const pct = total === 0 ? 100 : Math.floor((done * 100) / total);
          if (pct === lastPct && done !== total) return;
          lastPct = pct;
          ctx.emit({ type: 'save:progress', done, total });
        },
      });
      return { dir: r.dir, step: r.step, modelHash: r.modelHash };
    },

    sessionOpen: (job) => state.sessions.open(state.model().shard, job),
    sessionStep: (job, ctx) => state.sessions.step(state.model().shard, job, () => ctx.throwIfCancelled()),
    sessionClose: (job) => state.sessions.close(job.id),
    sessionList: () => state.sessions.list(),

    stage: (job) => runStageOp(state.stage(), job.o),

    resumeTrainer: (job) => {
      const m = state.model();
      const t = state.trainer();
      const step = job.step;
      if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) throw new InvalidArgumentError(`resumeTrainer: step must be a non-negative integer, got ${String(step)}`, { step });
      // the moments of the checkpoint (verified, of this very shape and span), or zeros: a fresh optimizer whose own
      // bias-correction count starts at 0 while the step count (the schedule's position) is the run's
      const optimizer =
        job.dir === undefined
          ? { step: 0, m: new Float32Array(m.shard.layout.size), v: new Float32Array(m.shard.layout.size) }
          : loadCheckpointOptimizer(pathArg('dir', job.dir), m.shard.config, m.shard.span);
      t.loadState({ step, options: t.options, optimizer: adamwStateFromFlat(m.shard.layout, optimizer) });
      return { step: t.step, appliedSteps: t.appliedSteps };
    },

    loadCheckpoint: (job) => {
      const dir = pathArg('dir', job.dir);
      if (job.moments !== undefined && typeof job.moments !== 'boolean') throw new InvalidArgumentError(`loadCheckpoint: moments must be a boolean, got ${typeof job.moments}`);
      state.clearModel();
      const ck = loadCheckpoint(dir, { backend: state.backend, ...(job.span === undefined ? {} : { span: job.span }), ...(job.moments === undefined ? {} : { moments: job.moments }) });
      const m = state.install(ck.model, job.trainer ?? {});
      const ts = ck.trainingState;
      const ours = isSavedTrainingState(ts);
      let optimizerRestored = false;
      if (m.trainer !== undefined && ck.optimizer !== null) {
        const step = ours ? ts.trainerStep : ck.manifest.step;
        m.trainer.loadState({ step, options: m.trainer.options, optimizer: adamwStateFromFlat(ck.model.layout, ck.optimizer) });
        optimizerRestored = true;
      }
      return {
        step: ck.manifest.step,
        config: ck.config,
        span: { ...ck.model.span },
        paramCount: ck.model.layout.size,
        modelHash: ck.manifest.model_hash,
        trainingState: callerTrainingState(ts),
        tokenizerPath: ck.tokenizerPath,
        optimizerRestored,
      };
    },
  };
  // every job that may write the weights moves their version (served-params.ts), whether it succeeded or not: a
  // training step that failed half-way may have written some of them
  for (const type of Object.keys(table) as JobType[]) {
    if (!CHANGES_WEIGHTS[type]) continue;
    const h = table[type] as Handler<JobType>;
    (table as Record<JobType, Handler<JobType>>)[type] = (job, ctx) => {
      let r: ReturnType<Handler<JobType>>;
      try {
        r = h(job, ctx);
      } catch (e) {
        state.served.changed();
        throw e;
      }
      if (!(r instanceof Promise)) {
        state.served.changed();
        return r;
      }
      return r.finally(() => state.served.changed());
    };
  }
  return table;
}

/** Runs one job against a handler table (used by the worker loop and by in-process callers). */
export function runHandler<T extends JobType>(table: HandlerTable, job: JobOf<T>, ctx: JobContext): ResultOf<T> | Promise<ResultOf<T>> {
  const h = table[job.type] as Handler<T> | undefined;
  if (h === undefined) throw new InvalidArgumentError(`unknown compute job type ${String(job.type)}`, { type: job.type });
  return h(job, ctx);
}

export type { JobDefs };
