/**
 * Everything the compute worker owns: the backend (kernels + its thread pool), the model (weights and gradients
 * in flat buffers), its trainer (AdamW moments, step count). One ComputeState lives in each worker; tests may also
 * build one in-process to call the handlers directly.
 */
import { threadId } from 'node:worker_threads';
import { validateConfig } from '../model/config.js';
import { ModelConfigError } from '../model/errors.js';
import { ParamLayout } from '../model/layout.js';
import { LlamaShard, type WeightFormat } from '../model/shard.js';
import { selectBackend, type Backend } from '../tensor/index.js';
import { ShardTrainable, SoloTrainer, type TrainerOptions } from '../training/index.js';
import { LocalStage } from '../training/pipeline/index.js';
import { InvalidArgumentError } from '../util/errors.js';
import { ComputeStateError } from './errors.js';
import type { JobOf, WorkerConfig, WorkerInfo } from './jobs.js';
import { ServedParams } from './served-params.js';
import { SessionTable } from './sessions.js';
import { spanText } from '../util/span-text.js';

export interface LoadedModel {
  shard: LlamaShard;
  /** Present when the worker holds the whole model (solo training). */
  trainer: SoloTrainer | undefined;
  seed: number;
}

export class ComputeState {
  readonly backend: Backend;
  private readonly fallbackReason: string | undefined;
  private loaded: LoadedModel | undefined;
  /** The pipeline stage over the loaded span (chain training): adopts the model's weights, so steps change what is served. */
  private stageOf: { model: LoadedModel; stage: LocalStage } | undefined;
  /** Inference sessions over the loaded model; dropped whenever the model is replaced or released. */
  readonly sessions = new SessionTable();
  /** The weights as the checkpoint stream reads them, and their version (bumped on every change). */
  readonly served = new ServedParams();

  /** How models are held (WorkerConfig.weights): every model built or loaded is quantized when 'int8'. */
  readonly weights: WeightFormat;

  private constructor(backend: Backend, fallbackReason: string | undefined, weights: WeightFormat) {
    this.backend = backend;
    this.fallbackReason = fallbackReason;
    this.weights = weights;
  }

  static async create(config: WorkerConfig = {}): Promise<ComputeState> {
    checkWorkerConfig(config);
    const { backend, fallbackReason } = await loadBackend(config);
    if (config.threads !== undefined) backend.setThreads(config.threads);
    return new ComputeState(backend, fallbackReason, config.weights ?? 'f32');
  }

  info(): WorkerInfo {
    const info: WorkerInfo = {
      threadId,
      backend: this.backend.name,
      // the weights format is part of the engine: a hop's claim (node/validator.ts workerClaim) is its model hash and
      // this description, and an int8 worker's model hash is the float32 weights' it quantized. Without it an int8
      // hop claimed exactly what a float32 validator of its span claims, and honest int8 outputs were judged fraud
      description: this.weights === 'int8' ? `${this.backend.description}, int8 weights` : this.backend.description,
      threads: this.backend.threads,
    };
    if (this.fallbackReason !== undefined) info.fallbackReason = this.fallbackReason;
    const poolId = (this.backend as { readonly poolId?: number }).poolId;
    if (typeof poolId === 'number' && poolId > 0) info.poolId = poolId;
    return info;
  }

  /** Builds the model (replacing any previous one) from a config, a seed or given parameters. */
  initModel(job: JobOf<'initModel'>): LoadedModel {
    const config = validateConfig(job.config);
    const seed = job.seed ?? 0;
    // refused before the old model is dropped: a request that cannot build leaves the worker serving what it held
    // (a whole-model replica whose trainer asked for a model of the wrong size emptied it, and went on announcing it)
    const layout = new ParamLayout(config, job.span);
    if (job.params !== undefined && job.params.length !== layout.size) {
      throw new ModelConfigError(`params buffer has ${job.params.length} elements; span ${spanText(layout.span)} needs ${layout.size}`, { span: layout.span });
    }
    this.served.changed();
    this.loaded = undefined; // free the old buffers before allocating new ones
    this.sessions.clear();
    const shard = new LlamaShard({
      config,
      backend: this.backend,
      seed,
      ...(job.span === undefined ? {} : { span: job.span }),
      ...(job.params === undefined ? {} : { params: job.params }),
    });
    return this.install(shard, job.trainer ?? {}, seed);
  }

  /** Makes `shard` the worker's model, with a fresh trainer when it holds every layer. */
  install(f32: LlamaShard, trainer: Partial<TrainerOptions>, seed = 0): LoadedModel {
    this.sessions.clear();
    this.loaded = undefined;
    // int8: quantized here, once, whatever the source (seeded init, peers' float32 weights, a checkpoint); the
    // float32 buffer is garbage once this returns. An int8 model never gets a trainer (inference only).
    this.served.changed();
    const shard = this.weights === 'int8' ? f32.quantized() : f32;
    const whole = shard.hasEmbed && shard.hasHead && shard.weights === 'f32';
    this.loaded = { shard, trainer: whole ? new SoloTrainer(this.backend, new ShardTrainable(shard), trainer) : undefined, seed };
    return this.loaded;
  }

  /** Drops the model first, so that loading a checkpoint never holds two models' buffers at once. */
  clearModel(): void {
    this.served.changed();
    this.loaded = undefined;
    this.sessions.clear();
  }

  releaseModel(): boolean {
    this.served.changed();
    const had = this.loaded !== undefined;
    this.loaded = undefined;
    this.sessions.clear();
    return had;
  }

  /** The loaded model, or a typed error saying there is none (for example after a worker restart). */
  model(): LoadedModel {
    if (this.loaded === undefined) throw new ComputeStateError('no model is loaded in the compute worker (initModel first; a restarted worker holds none)');
    return this.loaded;
  }

  /** The loaded span as a pipeline stage (created on first use; a new model gets a new stage, fresh AdamW moments). */
  stage(): LocalStage {
    const m = this.model();
    if (this.stageOf?.model !== m) {
      this.stageOf = { model: m, stage: new LocalStage(m.shard.config, this.backend, m.shard.span, { params: m.shard.params, trainer: m.trainer?.options ?? {} }) };
    }
    return this.stageOf.stage;
  }

  trainer(): SoloTrainer {
    const m = this.model();
    if (m.trainer === undefined && m.shard.weights === 'int8') throw new ComputeStateError('the worker holds int8 weights (inference only): it cannot train');
    if (m.trainer === undefined) {
      throw new ComputeStateError(`the worker holds layers ${spanText(m.shard.span)} only; solo training needs the whole model`);
    }
    return m.trainer;
  }
}

/** The worker validates its own configuration: a bad one fails ComputeClient.start with this typed error. */
function checkWorkerConfig(c: WorkerConfig): void {
  if (c.backend !== undefined && !['auto', 'native', 'reference'].includes(c.backend)) {
    throw new InvalidArgumentError(`compute worker: backend must be auto, native or reference, got ${String(c.backend)}`);
  }
  if (c.weights !== undefined && c.weights !== 'f32' && c.weights !== 'int8') {
    throw new InvalidArgumentError(`compute worker: weights must be f32 or int8, got ${String(c.weights)}`);
  }
  if (c.threads !== undefined && (!Number.isInteger(c.threads) || c.threads < 1 || c.threads > 256)) {
    throw new InvalidArgumentError(`compute worker: threads must be an integer in 1..256, got ${String(c.threads)}`);
  }
  if (c.batchWindowMs !== undefined && !(typeof c.batchWindowMs === 'number' && c.batchWindowMs >= 0 && c.batchWindowMs <= 1000)) {
    throw new InvalidArgumentError(`compute worker: batchWindowMs must be a number in 0..1000, got ${String(c.batchWindowMs)}`);
  }
  if (c.trainingHoldMs !== undefined && !(typeof c.trainingHoldMs === 'number' && c.trainingHoldMs >= 0 && c.trainingHoldMs <= 60_000)) {
    throw new InvalidArgumentError(`compute worker: trainingHoldMs must be a number in 0..60000, got ${String(c.trainingHoldMs)}`);
  }
  if (c.trainingIdleMs !== undefined && !(typeof c.trainingIdleMs === 'number' && c.trainingIdleMs >= 0 && c.trainingIdleMs <= 60_000)) {
    throw new InvalidArgumentError(`compute worker: trainingIdleMs must be a number in 0..60000, got ${String(c.trainingIdleMs)}`);
  }
}

async function loadBackend(config: WorkerConfig): Promise<{ backend: Backend; fallbackReason?: string }> {
  const sel = await selectBackend({ backend: config.backend ?? 'auto', ...(config.threads === undefined ? {} : { threads: config.threads }) });
  return sel.fallbackReason === undefined ? { backend: sel.backend } : { backend: sel.backend, fallbackReason: sel.fallbackReason };
}
