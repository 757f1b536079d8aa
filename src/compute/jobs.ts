/**
 * The jobs the compute worker runs: one discriminated union keyed by `type`, each with a typed result. A job's
 * typed arrays cross the thread boundary as transferred ArrayBuffers (see transfer.ts): after `client.run(job)` the
 * caller's arrays in `job` are detached unless it passed `{ copy: true }`.
 *
 * Shape letters as in src/tensor/backend.ts (M, N, K for GEMM; B batch, T time, V vocabulary).
 */
import type { LlamaConfig } from '../model/config.js';
import type { Span } from '../model/layout.js';
import type { GemmArgs } from '../tensor/backend.js';
import type { TrainerOptions, TrainerState, TrainStepResult } from '../training/index.js';
import type { StageOp, StageOpResult } from '../training/pipeline/index.js';
import type { ErrorObject } from '../util/errors.js';
import type { ParamsDigest } from './served-params.js';

/** What the worker is configured with; the same config is used again for a restarted worker. */
export interface WorkerConfig {
  /** Threads of the native pool (the one level of threading). Default: the backend's own default (all cores). */
  threads?: number;
  /** 'auto' uses the native backend when it loads and falls back to the reference backend; default 'auto'. */
  backend?: 'auto' | 'native' | 'reference';
  /**
   * Continuous batching: how long (ms) a decode batch smaller than the sessions decoding recently waits for their
   * steps (batcher.ts). 0 batches only what is already queued. Default DEFAULT_BATCH_WINDOW_MS (2).
   */
  batchWindowMs?: number;
  /**
   * Serving before training (serving-first.ts): how long (ms) a training step at the head of the queue is held for
   * the session jobs of replies in progress. 0 runs jobs in arrival order. Default SERVING_FIRST_DEFAULTS.holdMs (2,000).
   */
  trainingHoldMs?: number;
  /**
   * Serving before training: the most idle time (ms) the worker keeps in hand to wait for a reply's next step
   * before a training step; training earns it back at twice its run time (idleShare). 0 never idles for serving.
   * Default SERVING_FIRST_DEFAULTS.idleCapMs (4,000).
   */
  trainingIdleMs?: number;
  /** How models are held: 'f32' (default) or 'int8' (inference only; every model the worker builds or loads is quantized). */
  weights?: 'f32' | 'int8';
}

/** The worker's description of itself, sent when it is ready and in reply to `ping`. */
export interface WorkerInfo {
  threadId: number;
  backend: 'native' | 'reference';
  /** One line: kernel family, threads, BLAS (the backend's own description). */
  description: string;
  threads: number;
  /**
   * The worker's native kernel pool's id in this process (native backend only): the client primes it when it posts
   * a decode step (ComputeClient.run, tensor/backends/native.ts `primePoolById`).
   */
  poolId?: number;
  /** Why the native backend is not used, when it is not. */
  fallbackReason?: string;
}

/**
 * The compute worker thread's own memory (bytes): its V8 isolate's JS heap (used / committed) and the memory its
 * ArrayBuffers hold (model weights, KV caches, activations), from `process.memoryUsage()` inside the worker, which
 * reports the calling isolate. RSS is the process's and is left out. `at` is the worker's Date.now().
 */
export interface WorkerMemory {
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  at: number;
}

/** How often the worker pushes a WorkerMemory report (ms). */
export const WORKER_MEMORY_REPORT_MS = 10_000;

/** A job that takes no arguments besides its type. */
export type NoArgs = Record<never, never>;

/** Modes of the `crash` test job. */
export type CrashMode =
  /** process.exit() inside the worker: the thread ends, the process stays. */
  | 'exit'
  /** an exception thrown outside any job's try/catch (from a timer): the worker dies with an 'error' event. */
  | 'uncaught'
  /** a typed error thrown by the job itself: the job fails, the worker lives on. */
  | 'throw';

/**
 * Job definitions: `req` is what the caller sends (without `type`), `res` what comes back. Adding a job here
 * without a handler in handlers.ts fails to compile (the handler table is an exhaustive Record).
 */
export interface JobDefs {
  /** Round trip and worker description. */
  ping: { req: { echo?: string }; res: WorkerInfo & { echo?: string } };
  /** Resizes the native pool. */
  setThreads: { req: { threads: number }; res: { threads: number } };
  /**
   * One GEMM: c[M,N] = alpha·op(a)·op(b) + beta·c. `c` may be omitted when beta = 0 (a fresh output is returned).
   * a, b (and c) are transferred; the result's c is a new array owned by the caller.
   */
  gemm: { req: { a: Float32Array; b: Float32Array; c?: Float32Array; args: GemmArgs }; res: { c: Float32Array } };
  /**
   * Benchmark helper: GFLOP/s of a dense [M,K]·[K,N] product on `threads` threads, as the PyTorch anchor measures
   * it: one warm-up call, then `reps` (default 3) samples of at least `minMs` (default 250 ms) each; median reported.
   */
  benchGemm: {
    req: { M: number; K: number; N: number; threads?: number; reps?: number; minMs?: number };
    res: { gflops: number; samples: number[]; threads: number; backend: string };
  };
  /** Test/bench helper: keeps the worker busy for `ms` (checking for cancellation every millisecond or so). */
  spin: { req: { ms: number }; res: { ms: number } };
  /** Test only: kills the worker in the given way. Never resolves except for mode 'throw' (which rejects). */
  crash: { req: { mode: CrashMode }; res: never };

  // ---- model ------------------------------------------------------------------------------------------------
  /**
   * Builds the model (or the span of it this node holds) in the worker, replacing any previous one. Weights come
   * from `params` (transferred) or from the seeded initialisation: the same config, span and seed give the same
   * bytes every time (`hash` = SHA-256 of the flat parameters, little-endian float32). A whole model also gets a
   * SoloTrainer with `trainer` options.
   */
  initModel: {
    req: { config: LlamaConfig; seed?: number; span?: Span; params?: Float32Array; trainer?: Partial<TrainerOptions> };
    res: { paramCount: number; span: Span; hash: string; backend: string };
  };
  /** Drops the model, its trainer and their memory. */
  releaseModel: { req: NoArgs; res: { released: boolean } };
  /** One training step on inputs/targets [B, T] (−100 targets are ignored): loss, timings, skip report. */
  trainStep: { req: { inputs: Int32Array; targets: Int32Array; B: number; T: number }; res: TrainStepResult };
  /** Mean loss over n batches of [B, T] packed in inputs/targets (n·B·T each), no gradients. */
  evalLoss: { req: { inputs: Int32Array; targets: Int32Array; B: number; T: number }; res: { loss: number; tokens: number } };
  /**
   * Logits of ids [B, T] at positions posOffset.. (no cache): [B, T, V], or [B, V] for the last position of each
   * sequence with `lastOnly`.
   */
  forward: { req: { ids: Int32Array; B: number; T: number; posOffset?: number; lastOnly?: boolean }; res: { logits: Float32Array } };
  /**
   * Generation at batch 1 with a KV cache (model/generate.ts): the prompt is prefilled in one forward, then up to
   * `maxTokens` tokens are decoded one at a time. Sampling as model/sampling.ts (temperature 0 = greedy; its default
   * is 1), seeded; `stopIds` default to the config's eos id and are not included in `tokens`. `prefillMs` runs to
   * the first token, `decodeMs` over the tokens after it. Aborting stops between tokens.
   */
  generate: {
    req: { prompt: Int32Array; maxTokens: number; temperature?: number; topK?: number; topP?: number; seed?: number; stopIds?: number[] };
    res: { tokens: Int32Array; finishReason: 'length' | 'stop'; prefillMs: number; decodeMs: number };
  };
  /**
   * Bench helper (session 22, issue 10's decode bound): reads the model's own decode weights with the native reader
   * (Backend.readArrays) on the pool's thread count, each thread pinned and reading its part of every buffer: as the
   * step's arrays (LlamaShard.decodeReadArrays) and merged into back-to-back ranges (decodeReadRanges), each with 1
   * and 4 streams a thread (`streams`), one untimed pass each, then `passes` passes of each reader interleaved.
   * `bps`: the best pass of all (bytes ÷ wall, bytes/s), `reader` its kind ('arrays/4', 'ranges/1', …); `cpuBps`: the
   * best per CPU-second; `byReader`: each reader's best wall rate.
   */
  readBound: {
    req: { passes?: number; streams?: (1 | 2 | 4)[] };
    res: { bytes: number; bps: number; cpuBps: number; reader: string; byReader: Record<string, number>; threads: number };
  };
  /** A copy of the flat parameters (layout order). */
  getParams: { req: NoArgs; res: { params: Float32Array } };
  /**
   * The figures of a sub-span of the held weights (served-params.ts): its span hash and payload SHA-256, computed in
   * the worker over the weights in place, tagged with the weights version. No copy of the weights leaves the worker.
   */
  paramsDigest: { req: { span: Span }; res: ParamsDigest };
  /**
   * A copy of bytes [offset, offset+length) (at most MAX_RANGE_BYTES) of a sub-span's payload, tagged with the
   * weights version; with `worker`/`version`, refused (WEIGHTS_CHANGED) unless the weights are still that version.
   */
  paramsRange: { req: { span: Span; offset: number; length: number; worker?: number; version?: number }; res: { data: Uint8Array<ArrayBuffer>; worker: number; version: number } };
  /**
   * The model hash of the weights held (model/hash.ts: SHA-256 over the per-layer hashes of the span, hex), with the
   * weights version it is of (served-params.ts); computed once per version.
   */
  modelHash: { req: NoArgs; res: { hash: string; worker: number; version: number } };
  /** Replaces the flat parameters (same length; transferred). */
  setParams: { req: { params: Float32Array }; res: { paramCount: number } };
  /** The trainer's counters and next learning rate (cheap: no moments copied). */
  trainerInfo: { req: NoArgs; res: { step: number; appliedSteps: number; nextLr: number } };
  /** The trainer's step count and AdamW moments (for checkpoints). */
  getTrainerState: { req: NoArgs; res: TrainerState };
  /** Restores getTrainerState's output (for resume). */
  setTrainerState: { req: { state: TrainerState }; res: { step: number } };
  /**
   * Resumes the trainer of the model held, whose weights it leaves as they are: its step count (the schedule's
   * position) becomes `step`, and its AdamW moments those of the checkpoint `dir` (verified: optimizer.safetensors and
   * config.json against checkpoint.json; of the model's very shape and span) or, without `dir`, fresh ones (zeros,
   * their own bias-correction count from 0). A run that resumes a checkpoint without moments, or over weights that
   * are not the checkpoint's (a replica's: node/train.ts), uses it instead of `loadCheckpoint`'s weights.
   */
  resumeTrainer: { req: { step: number; dir?: string }; res: { step: number; appliedSteps: number } };
  /**
   * Writes a checkpoint of the worker's model (model/checkpoint.ts: safetensors + config.json + optimizer state +
   * training-state.json, atomically; old ones pruned to `keepLast`) from inside the worker, so the event loop never
   * serialises weights. `trainingState` is the caller's JSON (the data position, …), stored and given back by
   * loadCheckpoint; the trainer's own step count is stored beside it. `step` defaults to the trainer's.
   */
  saveCheckpoint: {
    req: { root: string; step?: number; trainingState?: unknown; tokenizerPath?: string; keepLast?: number };
    res: { dir: string; step: number; modelHash: string };
  };
  /**
   * Loads a checkpoint directory (verified: sizes, SHA-256, layer hashes) into the worker, replacing its model, and
   * restores the trainer (optimizer moments and step count) when the checkpoint has them: training then continues
   * exactly where the checkpoint was cut.
   */
  // ---- inference sessions (a hop of a chain, or the whole model for the local generator; sessions.ts) --------
  /**
   * Opens a decoding session over the worker's span: a KV cache of `maxLen` positions (batch 1), and, when the span
   * holds the LM head, a seeded sampler (model/sampling.ts, the code `neuroshard generate` uses). Replacing the model
   * drops every session. Fails with SESSION_EXISTS when `id` is open.
   */
  sessionOpen: { req: { id: string; maxLen: number; sampling?: SessionSampling }; res: { span: Span; kvBytes: number; maxLen: number } };
  /**
   * Runs the session's next positions through the span, in chunks (`chunks` sum to T; one forward per chunk, so a
   * replay of the steps [P, 1, 1, …] computes the bits the original steps computed). Input: token ids [T] on the
   * driver span, hidden states [T, C] otherwise. Output: hidden states [T, C] of every position (not the validator),
   * or on the validator one sampled token per chunk (from that chunk's last position). Decode steps (one position)
   * of different sessions queued together run as one batched forward (batcher.ts) with the same bits.
   */
  sessionStep: {
    req: { id: string; ids?: Int32Array; hidden?: Float32Array; chunks: number[] };
    /** `batch`: rows of the forward that computed this step (1 alone; >1 when decoded with other sessions). */
    res: { hidden?: Float32Array; tokens?: Int32Array; length: number; tokensProcessed: number; batch: number };
  };
  /** Drops a session and its KV cache (false when it was not open). */
  sessionClose: { req: { id: string }; res: { closed: boolean; tokensProcessed: number } };
  /** The open sessions (tests and accounting): ids and the bytes their KV caches hold. */
  sessionList: { req: NoArgs; res: { ids: string[]; kvBytes: number } };
  /**
   * One pipeline-stage op (training/pipeline/ops.ts) on the loaded span as a LocalStage that adopts the model's
   * weights: chain training (training/chain.ts) drives a node's own span and its peers' through these.
   */
  stage: { req: { o: StageOp }; res: StageOpResult };
  loadCheckpoint: {
    /** `moments: false`: the optimizer moments are neither verified nor read (a fresh trainer; node/train.ts). */
    req: { dir: string; span?: Span; trainer?: Partial<TrainerOptions>; moments?: boolean };
    res: {
      step: number;
      config: LlamaConfig;
      span: Span;
      paramCount: number;
      modelHash: string;
      /** The caller's trainingState given to saveCheckpoint (null when none). */
      trainingState: unknown;
      tokenizerPath: string | null;
      /** True when optimizer moments were restored (false: a fresh optimizer, e.g. a foreign checkpoint). */
      optimizerRestored: boolean;
    };
  };
}

export type JobType = keyof JobDefs;

/** A job message: `{ type, ...req }`. */
export type JobOf<T extends JobType> = { type: T } & JobDefs[T]['req'];
export type Job = { [K in JobType]: JobOf<K> }[JobType];
export type ResultOf<T extends JobType> = JobDefs[T]['res'];

/** Sampling of a session whose span holds the LM head (temperature 0 is greedy). */
export interface SessionSampling {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** Main thread → worker. */
export type ToWorker = {
  kind: 'job';
  id: number;
  job: Job;
  /** Int32Array(1) over a SharedArrayBuffer: the client stores 1 when the caller aborts. */
  cancel?: SharedArrayBuffer;
};

/** Worker → main thread. */
export type FromWorker =
  | { kind: 'ready'; info: WorkerInfo }
  /** The worker's own isolate's memory, pushed every WORKER_MEMORY_REPORT_MS (issue 12: where a node's RSS goes). */
  | { kind: 'memory'; memory: WorkerMemory }
  /** The worker could not set itself up (for example backend 'native' required and absent); it exits next. */
  | { kind: 'startFailed'; error: ErrorObject }
  | { kind: 'result'; id: number; result: unknown; ms: number }
  | { kind: 'error'; id: number; error: ErrorObject }
  /**
   * A decode batch's replies in one message (worker.ts runBatch): one wake-up of the main thread and one message
   * dispatch for the batch instead of one per row; each entry settles its job as a 'result' or 'error' would.
   */
  | { kind: 'batch'; replies: ({ id: number; result: unknown; ms: number } | { id: number; error: ErrorObject })[] }
  /** A progress or notice event from inside a running job (for example a skipped training step). */
  | { kind: 'event'; id: number; event: JobEvent };

/** Events a job may emit while it runs; forwarded to the client's `job:event`. */
export type JobEvent =
  | { type: 'log'; level: 'info' | 'warn'; message: string; data?: Record<string, unknown> }
  /** A training step was skipped because its loss or gradients were not finite. */
  | { type: 'step:skipped'; step: number; loss: number; gradNorm: number; nonFinite: string[] }
  /** Bytes of a checkpoint's weight files written so far (saveCheckpoint; at most one event per percent). */
  | { type: 'save:progress'; done: number; total: number };

export const JOB_TYPES: readonly JobType[] = [
  'ping',
  'setThreads',
  'gemm',
  'benchGemm',
  'spin',
  'crash',
  'initModel',
  'releaseModel',
  'trainStep',
  'evalLoss',
  'forward',
  'generate',
  'readBound',
  'getParams',
  'paramsDigest',
  'paramsRange',
  'setParams',
  'trainerInfo',
  'getTrainerState',
  'setTrainerState',
  'resumeTrainer',
  'saveCheckpoint',
  'loadCheckpoint',
  'sessionOpen',
  'sessionStep',
  'sessionClose',
  'sessionList',
  'stage',
];
