/**
 * Solo training (`neuroshard train`, and the genesis node's training): NeuroLLM trained on a genesis corpus in the
 * compute worker, checkpointed into `<data-dir>/checkpoints`.
 *
 *   corpus (main thread: verified shards, batches) ──batches──▶ compute worker (forward, backward, AdamW)
 *                                                  ◀──losses───
 *
 * - `targetStep` is absolute: when the checkpoints folder holds a checkpoint, the run resumes from the newest one
 *   (weights, AdamW moments, step count, data position) and continues to `targetStep`; the cosine decay is
 *   stretched to the new target. A checkpoint without moments resumes all the same, at its step (the step numbers
 *   and the schedule go on), with fresh moments, said in the log (training/resume.ts). The run's settings (model,
 *   batch shape, seed, corpus) come from the checkpoint; a setting given explicitly that contradicts it is an
 *   error, never silently ignored.
 * - A whole-model replica (a node that took the model from peers: `adopted`) trains the network's weights and shape:
 *   a fresh run is sized by the adopted config, and a checkpoint of its own goes on over the adopted weights (its
 *   optimizer moments only when they are of the same closed outer round: training/replica-resume.ts). The
 *   checkpoint's weights are never loaded (its small files are read, and its moments alone when kept), so the
 *   worker holds the adopted weights throughout. Its checkpoints of another shape are moved into
 *   `<checkpoints>/other-shape/` (kept, not resumed), so a restart resumes the new run's own newest, and those a
 *   newer version wrote (CHECKPOINT_UNSUPPORTED) into `<checkpoints>/unsupported-version/`, so it resumes the newest
 *   one this build reads. Kept moments that cannot be read (a damaged optimizer.safetensors) give way to fresh ones,
 *   with a warning naming the file, as for a checkpoint without moments. The two folders are bounded (`aside`: the
 *   newest N each, and bytes; the oldest removed at the run's start with a warning naming each; session 29).
 * - A solo run whose checkpoint's optimizer.safetensors cannot be read loads the checkpoint again without it and goes
 *   on from its step with fresh moments and a warning naming the file, as a replica does (session 29; before, the
 *   run failed). Damage to any other file of it still fails the run.
 * - Validation: the corpus's held-out shard, cut into batches of the training shape (the same batches every time,
 *   so the curve is comparable), before the first step of a fresh run, every `evalEvery` steps and at the target
 *   (also when a rerun finds the target already reached: it then reports the checkpoint's validation loss).
 * - Checkpoints every `checkpointEvery` steps, at the target, and when `signal` fires (then the loop stops after
 *   the step in flight and the run ends normally with `stoppedBy: 'signal'`). The model's keep-last rule prunes.
 * - One training run per data dir at a time (`<data-dir>/train.lock`), and none while a node runs on it.
 */
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ComputeClient, WorkerTrainStepper, batchSource, callerTrainingState, toTrainBatch, type ResultOf } from '../compute/index.js';
import { genesisDir, openCorpus, type Corpus, type DataPosition } from '../data/index.js';
import { assertNoNodeRunning } from '../identity/node-lock.js';
import {
  atomicWriteFile,
  configsEqual,
  latestCheckpoint,
  listCheckpoints,
  listCheckpointsAside,
  makeConfig,
  moveCheckpointAside,
  NEUROLLM_BATCH,
  presetConfig,
  readCheckpointInfo,
  readVerifiedCheckpointConfig,
  removeCheckpointAside,
  type LlamaConfig,
} from '../model/index.js';
import { TOKENIZER_FILE_NAME } from '../model/tokenizer/index.js';
import {
  asideToRemove,
  momentsUnreadable,
  OTHER_SHAPE_DIR,
  otherShapeCheckpoints,
  replicaResume,
  soloMomentsDamaged,
  trainerResume,
  trainLoop,
  type AsideBound,
  type Batch,
  type ReplicaResume,
  type TrainerResume,
  type TrainStepper,
  type TrainStepResult,
  UNSUPPORTED_DIR,
  unsupportedCheckpoints,
} from '../training/index.js';
import { AbortedError, ConfigError, InvalidArgumentError, isNeuroShardError, NeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { CHECKPOINTS_DIR } from './model-limits.js';
import { DEFAULTS } from './options.js';
import { spanText } from '../util/span-text.js';

/** The data stream's node id of a solo run: every training shard, in one fixed order. */
export const SOLO_NODE_ID = 'solo';

/**
 * `tiny`: a test-sized model (1 layer × 32 wide, context 64) with the genesis vocabulary, so that the commands can
 * be exercised end to end in seconds. Not a network shape: the scaler never produces it.
 */
export const TINY_CONFIG: LlamaConfig = makeConfig({
  hidden_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 64,
  vocab_size: 4096,
  max_position_embeddings: 64,
});

/** A named shape: 'nano', a ladder rung such as '6x384' (model/presets.ts), or 'tiny' (tests). */
export function trainPreset(name: string): LlamaConfig {
  return name === 'tiny' ? TINY_CONFIG : presetConfig(name);
}

export interface SoloTrainOptions {
  dataDir: string;
  /** Absolute step to stop at. */
  targetStep: number;
  /** Model shape of a fresh run (default 'nano'); on resume it must match the checkpoint's. */
  preset?: string;
  /** Genesis manifest: folder, manifest file or http(s) URL; default the bundled corpus (or the checkpoint's). */
  corpus?: string;
  /** Validation every K steps (0 = no validation at all). */
  evalEvery: number;
  /** Checkpoint every K steps (0 = only at the target and when stopped). */
  checkpointEvery: number;
  /** Weight-initialisation and data-order seed (default 0). */
  seed?: number;
  /** Sequences per batch (default 8) and tokens per sequence (default min(128, context)). */
  batchSize?: number;
  seqLen?: number;
  /** Most validation batches (default: the whole held-out shard). */
  valBatches?: number;
  /** Compute threads (default: the worker's, all cores). Ignored with `client`. */
  threads?: number;
  /**
   * A compute worker to train in (a node's own); its model is replaced. Default: a worker started for this run
   * and closed at its end.
   */
  client?: ComputeClient;
  /** Stops the run cleanly: a checkpoint is cut after the step in flight. */
  signal?: AbortSignal;
  logger?: Logger;
  onEvent?: (e: TrainEvent) => void;
  /** Wraps the worker's stepper (a node's DiLoCo outer rounds, node/diloco.ts). */
  wrapStepper?: (s: TrainStepper) => TrainStepper;
  /** The data stream's node id (default SOLO_NODE_ID: every shard); a replica passes its peer id for its own shards. */
  dataNodeId?: string;
  /**
   * The model this node took from peers (a whole-model replica, node/node.ts), which it trains instead of a seeded
   * initialisation or the weights of its own checkpoint: the network's current weights win (training/replica-resume.ts).
   * A fresh run is sized by `config` (not by `preset`); a checkpoint of this node's in `dataDir` of the same shape goes
   * on (step, data position, settings) over these weights, with its optimizer moments only when they were accumulated
   * on them (the same closed outer `round`), else a fresh optimizer; those of another shape are moved aside into
   * `<checkpoints>/other-shape/` (session 28), and those of a newer version into `<checkpoints>/unsupported-version/`;
   * kept moments that cannot be read start fresh (a warning). Before
   * session 27 a replica re-initialised the weights from seed 0 (no checkpoint), loaded its checkpoint's stale ones
   * over them, or failed with a typed error at `initModel` on a network of another shape than `preset`.
   */
  adopted?: {
    config: LlamaConfig;
    /** The weights (read from the worker before anything here replaces its model). */
    params: () => Promise<Float32Array>;
    /** The closed outer round they are the state after (the pool's adoption); undefined when nobody trains them. */
    round?: number;
  };
  /**
   * The bound of each folder of checkpoints moved aside (`other-shape/`, `unsupported-version/`: a replica's; the
   * oldest beyond it are removed at the run's start, training/resume.ts `asideToRemove`). Default the node options'
   * (node/options.ts DEFAULTS `checkpointsAsideKeep`, `checkpointsAsideMaxMb`).
   */
  aside?: AsideBound;
  /**
   * The closed outer round the weights being trained descend from (a replica's outer sync), or undefined: stored in
   * each checkpoint, so that a restart that adopts that round's weights again keeps the moments (`adopted`).
   */
  outerRound?: () => number | undefined;
}

export type TrainEvent =
  | {
      type: 'start';
      step: number;
      targetStep: number;
      resumedFrom: string | null;
      config: LlamaConfig;
      paramCount: number;
      batchSize: number;
      seqLen: number;
      corpus: string;
      backend: string;
      unigramBaseline: number;
      valTokens: number;
    }
  | ({ type: 'step' } & TrainStepResult)
  | { type: 'eval'; step: number; loss: number; tokens: number }
  | { type: 'checkpoint'; step: number; dir: string; reason: 'periodic' | 'final' | 'stopped' }
  /** A checkpoint's weight files being written: bytes so far of all (a progress bar; `checkpoint` follows). */
  | { type: 'checkpoint:progress'; step: number; done: number; total: number };

export interface SoloTrainResult {
  step: number;
  /** Loss of the last step this run took (null when it took none). */
  trainLoss: number | null;
  /** Validation loss at `step` or at the last evaluation (null without validation). */
  valLoss: number | null;
  /** Training tokens per second of this run, wall time (evaluations and checkpoints included). */
  tokensPerSecond: number;
  /** The newest checkpoint directory (null when none was ever written). */
  checkpoint: string | null;
  stoppedBy: 'target' | 'signal';
  /** The corpus's unigram baseline (null when the run was stopped before the corpus was open). */
  unigramBaseline: number | null;
}

/** The `preset` a replica's run records: its shape is the network's (SoloTrainOptions.adopted), not a named one. */
export const NETWORK_PRESET = 'network';

function roundField(round: number | undefined): { round?: number } {
  return round === undefined || !Number.isInteger(round) || round < -1 ? {} : { round };
}

/** What this module stores in a checkpoint's training state (validated when read back: it is a file). */
interface SoloRunState {
  format: 'neuroshard-solo-run';
  version: 1;
  preset: string;
  seed: number;
  batchSize: number;
  seqLen: number;
  corpus: { spec: string | null; name: string; manifestSha256: string };
  dataPosition: DataPosition;
  /** The closed outer round the weights descend from (a replica's; SoloTrainOptions.outerRound); absent otherwise. */
  round?: number;
}

function parseRunState(x: unknown, dir: string): SoloRunState {
  const o = x as Partial<SoloRunState> | null;
  const bad = (why: string): never => {
    throw new ConfigError(`${dir}: training state ${why}; it was not written by neuroshard train`, { dir }, 'CHECKPOINT_STATE_INVALID');
  };
  if (typeof o !== 'object' || o === null || o.format !== 'neuroshard-solo-run' || o.version !== 1) bad('is missing or of another format');
  const r = o as SoloRunState;
  const uint = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
  if (typeof r.preset !== 'string' || r.preset.length > 64) bad('has no preset');
  if (!uint(r.seed) || !uint(r.batchSize) || !uint(r.seqLen) || r.batchSize < 1 || r.seqLen < 1) bad('has bad seed or batch sizes');
  const c = r.corpus as Partial<SoloRunState['corpus']> | undefined;
  if (typeof c !== 'object' || c === null || (c.spec !== null && typeof c.spec !== 'string') || typeof c.name !== 'string' || typeof c.manifestSha256 !== 'string') bad('has no corpus');
  if (typeof r.dataPosition !== 'object' || r.dataPosition === null) bad('has no data position');
  if (r.round !== undefined && !(typeof r.round === 'number' && Number.isInteger(r.round) && r.round >= -1 && r.round <= 0xffffffff)) bad('has a bad outer round');
  return r;
}

/** `<data-dir>/train.lock`: one training run per data dir. A lock whose pid is gone is stale and replaced. */
function acquireTrainLock(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 }); // the data dir also holds the node's key
  const path = join(dataDir, 'train.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }) + '\n');
      } finally {
        closeSync(fd);
      }
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let pid: number | undefined;
    try {
      const o = JSON.parse(readFileSync(path, 'utf8').slice(0, 4096)) as { pid?: unknown };
      if (typeof o.pid === 'number' && Number.isInteger(o.pid) && o.pid > 0) pid = o.pid;
    } catch {
      pid = undefined;
    }
    if (pid !== undefined && pidAlive(pid)) {
      throw new NeuroShardError('TRAINING_RUNNING', `another training run (pid ${pid}) is using ${dataDir}; stop it or pass another --data-dir`, { fault: 'caller', meta: { pid, lock: path } });
    }
    rmSync(path, { force: true }); // stale: its process is gone
  }
  throw new NeuroShardError('TRAINING_RUNNING', `cannot take ${path}`, { fault: 'local' });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A checkpoint's model config, or undefined when its config.json cannot be read or does not match its manifest (it
 * is then left where it is: resuming it fails with its typed error, as loading it did); `unsupported` when its
 * checkpoint.json is of a version this build cannot read (a newer one's: CHECKPOINT_UNSUPPORTED, and the error).
 */
function shapeOf(dir: string): { config: LlamaConfig | undefined; unsupported: boolean; why?: string } {
  try {
    return { config: readVerifiedCheckpointConfig(dir), unsupported: false };
  } catch (e) {
    return { config: undefined, unsupported: isNeuroShardError(e, 'CHECKPOINT_UNSUPPORTED'), why: (e as Error).message };
  }
}

/**
 * Bounds the folders of checkpoints moved aside (training/resume.ts `asideToRemove`): the oldest beyond `bound` are
 * removed, a warning naming each. Nothing outside the folders is reached: only the names moveCheckpointAside gives,
 * links unlinked and never followed, a folder that is itself a link left alone (model/checkpoint.ts). A removal that
 * fails is a warning: the run does not depend on it.
 */
function pruneAside(root: string, bound: AsideBound, log: Logger): void {
  for (const folder of [OTHER_SHAPE_DIR, UNSUPPORTED_DIR]) {
    let all;
    try {
      all = listCheckpointsAside(root, folder);
    } catch (e) {
      log.warn('the folder of checkpoints moved aside cannot be read: not pruned', { folder: join(root, folder), why: (e as Error).message });
      continue;
    }
    if (all === null) {
      let link = false;
      try {
        link = lstatSync(join(root, folder)).isSymbolicLink();
      } catch {
        link = false; // none: nothing to bound
      }
      if (link) log.warn('the folder of checkpoints moved aside is a symlink: not pruned (its checkpoints are elsewhere)', { folder: join(root, folder) });
      continue;
    }
    for (const c of asideToRemove(all, bound)) {
      try {
        const removed = removeCheckpointAside(root, folder, c.name);
        if (removed === null) continue;
        log.warn(
          removed === 'link'
            ? 'a checkpoint moved aside earlier was removed (a symlink: the link only, its target is untouched), beyond the newest kept there'
            : 'a checkpoint moved aside earlier was removed, beyond the newest kept there',
          { removed: c.path, step: c.step, bytes: c.bytes, keep: bound.keep, maxBytes: bound.maxBytes },
        );
      } catch (e) {
        log.warn('a checkpoint moved aside earlier could not be removed', { path: c.path, why: (e as Error).message });
      }
    }
  }
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, got ${v}`, { [name]: v });
}

/** The tokenizer file checkpoints carry: the bundled one, or the corpus's written into the data dir. */
function tokenizerFileFor(corpus: Corpus, dataDir: string): string {
  if (corpus.bundled) return join(genesisDir(), TOKENIZER_FILE_NAME);
  const dir = join(dataDir, 'corpus', `${corpus.manifest.name}-${corpus.manifestSha256.slice(0, 16)}`);
  const path = join(dir, TOKENIZER_FILE_NAME);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    atomicWriteFile(path, [Buffer.from(corpus.tokenizer.toJSON())]);
  }
  return path;
}

export async function trainSolo(o: SoloTrainOptions): Promise<SoloTrainResult> {
  const log = (o.logger ?? silentLogger).child('train');
  const emit = o.onEvent ?? ((): void => undefined);
  checkInt('targetStep', o.targetStep, 0, Number.MAX_SAFE_INTEGER);
  checkInt('evalEvery', o.evalEvery, 0, 1e9);
  checkInt('checkpointEvery', o.checkpointEvery, 0, 1e9);
  if (o.seed !== undefined) checkInt('seed', o.seed, 0, 0xffffffff);
  if (o.batchSize !== undefined) checkInt('batchSize', o.batchSize, 1, 1024);
  if (o.valBatches !== undefined) checkInt('valBatches', o.valBatches, 1, 1e6);
  const aside: AsideBound = o.aside ?? { keep: DEFAULTS.checkpointsAsideKeep, maxBytes: DEFAULTS.checkpointsAsideMaxMb * 2 ** 20 };
  checkInt('aside.keep', aside.keep, 1, 10_000);
  checkInt('aside.maxBytes', aside.maxBytes, 0, Number.MAX_SAFE_INTEGER);

  assertNoNodeRunning(o.dataDir);
  const release = acquireTrainLock(o.dataDir);
  let client: ComputeClient | undefined;
  const root = join(o.dataDir, CHECKPOINTS_DIR);
  let resumeDir = latestCheckpoint(root);
  try {
    // ---- settings: the checkpoint's, or the flags' (explicit flags must agree with a checkpoint) -------------
    client = o.client ?? (await ComputeClient.start({ ...(o.threads === undefined ? {} : { threads: o.threads }), logger: log }));
    let config: LlamaConfig;
    let preset: string;
    let seed: number;
    let batchSize: number;
    let seqLen: number;
    let corpusSpec: string | undefined;
    let position: DataPosition | undefined;
    let state: SoloRunState | undefined;
    let step: number;
    let paramCount = 0;
    // NeuroLLM's AdamW and schedule (model/training-defaults.ts), the cosine ending at this run's target
    const trainer = { decaySteps: Math.max(1, o.targetStep) };
    // a replica's weights (the worker's model: nothing here replaces them with a checkpoint's, see below)
    const adoptedParams = o.adopted === undefined ? undefined : await o.adopted.params();
    let loaded: ResultOf<'loadCheckpoint'> | undefined;
    // what a resumed checkpoint is, whichever way it was read
    let ck: { config: LlamaConfig; span: { start: number; end: number }; step: number; hasOptimizer: boolean; momentsUnreadable?: string } | undefined;
    let replica: ReplicaResume | undefined;
    if (o.adopted !== undefined) {
      // A replica trains the network's shape: its checkpoints of another shape are moved aside, never resumed nor
      // deleted; left in place, the newest of them stayed the newest (by step), so each restart discarded it again
      // and started at step 0, and keep-last pruned the new run's own checkpoints first (training/resume.ts)
      const adoptedConfig = o.adopted.config;
      const all = listCheckpoints(root).map((c) => ({ ...c, ...shapeOf(c.dir) }));
      for (const c of otherShapeCheckpoints(all, adoptedConfig)) {
        const to = moveCheckpointAside(root, c.dir, OTHER_SHAPE_DIR);
        log.warn("a checkpoint of another model shape than the network's was moved aside (kept, not resumed)", { from: c.dir, to, step: c.step });
      }
      // a newer version's checkpoints (the node downgraded since): aside too, and the newest one this build reads is
      // resumed (training/resume.ts UNSUPPORTED_DIR: left in place they stopped the run, or counted toward keep-last)
      for (const c of unsupportedCheckpoints(all)) {
        const to = moveCheckpointAside(root, c.dir, UNSUPPORTED_DIR);
        log.warn('a checkpoint this version of neuroshard cannot read (a newer version wrote it) was moved aside (kept, not resumed)', { from: c.dir, to, step: c.step, why: c.why });
      }
      pruneAside(root, aside, log);
      resumeDir = latestCheckpoint(root);
      if (resumeDir !== null) {
        // Only its small files: the network's weights win, so the checkpoint's are never loaded into the worker,
        // which goes on holding (serving, hashing, streaming) the adopted ones; its moments are read alone below
        // when they are kept. Before session 28 the whole checkpoint was loaded and the adopted weights written back
        // after it: a hash read or checkpoint stream in between saw the checkpoint's weights.
        const info = readCheckpointInfo(resumeDir);
        state = parseRunState(callerTrainingState(info.trainingState), resumeDir);
        replica = replicaResume({ config: info.config, optimizerRestored: info.hasOptimizer, ...(state.round === undefined ? {} : { round: state.round }) }, o.adopted);
        if (replica.keep === 'nothing') {
          // of another shape after all (its config.json was unreadable a moment ago): aside with the others
          const to = moveCheckpointAside(root, resumeDir, OTHER_SHAPE_DIR);
          log.warn("a checkpoint of another model shape than the network's was moved aside (kept, not resumed)", { from: resumeDir, to, why: replica.why });
          pruneAside(root, aside, log);
          resumeDir = null;
          state = undefined;
        } else {
          ck = { config: info.config, span: info.manifest.span, step: info.manifest.step, hasOptimizer: info.hasOptimizer };
          log.info("resuming the checkpoint's run over the weights taken from peers", { checkpoint: resumeDir, optimizer: replica.keep === 'run' ? `fresh (${replica.why})` : 'kept' });
        }
      }
    } else if (resumeDir !== null) {
      let momentsLost: string | undefined;
      try {
        loaded = await client.run({ type: 'loadCheckpoint', dir: resumeDir, trainer });
      } catch (e) {
        // its moments' file alone damaged (truncated, corrupt, missing): loaded again without it, fresh moments as
        // for a checkpoint without them, as a replica does (training/resume.ts soloMomentsDamaged; before session
        // 29 the run failed). The weights are verified on their own, so a damaged weights file still fails below.
        if (!isNeuroShardError(e) || !soloMomentsDamaged(resumeDir, { code: e.code, file: e.meta?.file })) throw e;
        loaded = await client.run({ type: 'loadCheckpoint', dir: resumeDir, trainer, moments: false });
        momentsLost = `its optimizer moments cannot be read: ${e.message}`;
        log.warn("the checkpoint's optimizer moments cannot be read: AdamW starts fresh; the run goes on from its step", { checkpoint: resumeDir, file: e.meta?.file, step: loaded.step, why: e.message });
      }
      state = parseRunState(loaded.trainingState, resumeDir);
      ck = { config: loaded.config, span: loaded.span, step: loaded.step, hasOptimizer: loaded.optimizerRestored, ...(momentsLost === undefined ? {} : { momentsUnreadable: momentsLost }) };
      paramCount = loaded.paramCount;
    }
    let moments: TrainerResume | undefined;
    if (resumeDir !== null && ck !== undefined && state !== undefined) {
      const conflict = (what: string, given: unknown, saved: unknown): never => {
        throw new ConfigError(
          `${what} ${JSON.stringify(given)} contradicts the checkpoint being resumed (${resumeDir}: ${JSON.stringify(saved)}); drop the flag or pass another --data-dir`,
          { checkpoint: resumeDir },
          'RESUME_MISMATCH',
        );
      };
      if (o.preset !== undefined && (o.preset !== state.preset || !configsEqual(trainPreset(o.preset), ck.config))) conflict('--preset', o.preset, state.preset);
      if (o.seed !== undefined && o.seed !== state.seed) conflict('--seed', o.seed, state.seed);
      if (o.batchSize !== undefined && o.batchSize !== state.batchSize) conflict('--batch-size', o.batchSize, state.batchSize);
      if (o.seqLen !== undefined && o.seqLen !== state.seqLen) conflict('--seq-len', o.seqLen, state.seqLen);
      if (ck.span.start !== 0 || ck.span.end !== ck.config.num_hidden_layers) {
        throw new ConfigError(`${resumeDir} holds only layers ${spanText(ck.span)}; solo training needs the whole model`, { checkpoint: resumeDir }, 'RESUME_MISMATCH');
      }
      config = ck.config;
      preset = state.preset;
      seed = state.seed;
      batchSize = state.batchSize;
      seqLen = state.seqLen;
      corpusSpec = o.corpus ?? state.corpus.spec ?? undefined;
      position = state.dataPosition;
      step = ck.step;
      moments = trainerResume(ck, replica);
      if (o.adopted === undefined && moments.moments === 'fresh' && ck.momentsUnreadable === undefined) log.warn('checkpoint has no optimizer state: AdamW starts fresh; the run goes on from its step', { checkpoint: resumeDir, step });
    } else {
      // a replica's run is the network's shape, whatever `preset` says (it has no preset name: 'network')
      preset = o.adopted === undefined ? (o.preset ?? 'nano') : NETWORK_PRESET;
      config = o.adopted?.config ?? trainPreset(preset);
      seed = o.seed ?? 0;
      batchSize = o.batchSize ?? NEUROLLM_BATCH.batchSize;
      seqLen = o.seqLen ?? Math.min(NEUROLLM_BATCH.seqLen, config.max_position_embeddings);
      corpusSpec = o.corpus;
      step = 0;
    }
    // the adopted weights (the ones the worker holds) with this run's trainer (its schedule's decay length); every
    // check above came first, so a failed one leaves the worker's model untouched
    if (adoptedParams !== undefined) paramCount = (await client.run({ type: 'initModel', config, trainer, params: adoptedParams })).paramCount;
    // the trainer goes on from the checkpoint's step (the loop counts from the trainer's, and the schedule too), with
    // the checkpoint's moments (a replica's read alone: its weights are not loaded) or fresh ones; loadCheckpoint
    // already restored both when the checkpoint had moments
    if (moments !== undefined && (loaded === undefined || moments.moments === 'fresh')) {
      try {
        await client.run({ type: 'resumeTrainer', step: moments.step, ...(moments.moments === 'checkpoint' && resumeDir !== null ? { dir: resumeDir } : {}) });
      } catch (e) {
        // a replica's kept moments that cannot be read (damaged, truncated, missing): fresh ones, as for a checkpoint
        // without moments; the weights are the adopted ones and the step and data position were read already, so the
        // run goes on from its step (before: the run failed). A failed resumeTrainer changed nothing in the worker.
        if (o.adopted === undefined || moments.moments !== 'checkpoint' || !isNeuroShardError(e) || !momentsUnreadable(e.code)) throw e;
        const file = typeof e.meta?.file === 'string' ? e.meta.file : resumeDir;
        log.warn("the checkpoint's optimizer moments cannot be read: AdamW starts fresh; the run goes on from its step", { checkpoint: resumeDir, file, step: moments.step, why: e.message });
        await client.run({ type: 'resumeTrainer', step: moments.step });
      }
    }
    checkInt('seqLen', seqLen, 1, config.max_position_embeddings);

    const corpus = await openCorpus(corpusSpec, { cacheDir: join(o.dataDir, 'corpus'), signal: o.signal, logger: log });
    if (state !== undefined && state.corpus.manifestSha256 !== corpus.manifestSha256) {
      throw new ConfigError(
        `the corpus ${corpus.location} (manifest ${corpus.manifestSha256.slice(0, 16)}…) is not the one the checkpoint was trained on (${state.corpus.name}, manifest ${state.corpus.manifestSha256.slice(0, 16)}…)`,
        { checkpoint: resumeDir },
        'RESUME_MISMATCH',
      );
    }
    if (corpus.tokenizer.vocabSize !== config.vocab_size) {
      throw new ConfigError(`the corpus's tokenizer has ${corpus.tokenizer.vocabSize} ids, the model's vocab_size is ${config.vocab_size}`, { corpus: corpus.location }, 'VOCAB_MISMATCH');
    }
    const tokenizerPath = tokenizerFileFor(corpus, o.dataDir);
    const stream = await corpus.trainStream({ nodeId: o.dataNodeId ?? SOLO_NODE_ID, batchSize, seqLen, seed, ...(position === undefined ? {} : { position }), signal: o.signal });
    const unigramBaseline = await corpus.unigramBaseline({ signal: o.signal });
    const valBatches: Batch[] =
      o.evalEvery > 0 ? (await corpus.validationBatches({ batchSize, seqLen, ...(o.valBatches === undefined ? {} : { maxBatches: o.valBatches }) })).map(toTrainBatch) : [];
    if (o.evalEvery > 0 && valBatches.length === 0) throw new ConfigError(`the validation split of ${corpus.location} holds less than one batch of ${batchSize}×${seqLen}`, undefined, 'CORPUS_TOO_SMALL');

    if (resumeDir === null && adoptedParams === undefined) paramCount = (await client.run({ type: 'initModel', config, seed, trainer })).paramCount;
    const worker = new WorkerTrainStepper(client);
    const stepper = o.wrapStepper?.(worker) ?? worker;
    emit({
      type: 'start',
      step,
      targetStep: o.targetStep,
      resumedFrom: resumeDir,
      config,
      paramCount,
      batchSize,
      seqLen,
      corpus: corpus.location,
      backend: client.info?.description ?? '?',
      unigramBaseline,
      valTokens: valBatches.length * batchSize * seqLen,
    });

    let valLoss: number | null = null;
    let lastEvalStep = -1;
    const evaluate = async (at: number): Promise<void> => {
      const e = await stepper.evaluate(valBatches);
      valLoss = e.loss;
      lastEvalStep = at;
      emit({ type: 'eval', step: at, loss: e.loss, tokens: e.tokens });
    };
    if (o.evalEvery > 0 && step === 0 && o.targetStep > 0 && o.signal?.aborted !== true) await evaluate(0);

    let checkpoint: string | null = resumeDir;
    const savedState = (dataPosition: unknown): SoloRunState => ({
      format: 'neuroshard-solo-run',
      version: 1,
      preset,
      seed,
      batchSize,
      seqLen,
      corpus: { spec: corpusSpec ?? null, name: corpus.manifest.name, manifestSha256: corpus.manifestSha256 },
      dataPosition: dataPosition as DataPosition,
      ...roundField(o.outerRound?.()),
    });
    const startStep = step;
    const r = await trainLoop({
      stepper,
      data: batchSource(stream),
      targetStep: o.targetStep,
      evalEvery: o.evalEvery,
      evalBatches: () => valBatches,
      checkpointEvery: o.checkpointEvery,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      onStep: (s) => emit({ type: 'step', ...s }),
      onEval: (e) => {
        valLoss = e.loss;
        lastEvalStep = e.step;
        emit({ type: 'eval', ...e });
      },
      onCheckpoint: async (c) => {
        // nothing new since the checkpoint this run started from (or a fresh run stopped before its first step)
        if (c.step === startStep) return;
        // the worker reports the bytes it has written (compute/handlers.ts); they become a progress bar
        const off = client!.on('job:event', (j) => {
          if (j.jobType === 'saveCheckpoint' && j.event.type === 'save:progress') emit({ type: 'checkpoint:progress', step: c.step, done: j.event.done, total: j.event.total });
        });
        let saved;
        try {
          saved = await client!.run({ type: 'saveCheckpoint', root, trainingState: savedState(c.dataPosition), tokenizerPath });
        } finally {
          off();
        }
        checkpoint = saved.dir;
        emit({ type: 'checkpoint', step: saved.step, dir: saved.dir, reason: c.reason });
      },
    });
    // at the target, the loss of the final weights; a rerun that finds the target reached reports the checkpoint's
    if (r.stoppedBy === 'target' && o.evalEvery > 0 && lastEvalStep !== r.step) await evaluate(r.step);
    return {
      step: r.step,
      trainLoss: Number.isFinite(r.lastLoss) ? r.lastLoss : null,
      valLoss,
      tokensPerSecond: r.tokensPerSecond,
      checkpoint,
      stoppedBy: r.stoppedBy,
      unigramBaseline,
    };
  } catch (e) {
    // stopped while setting up (opening the corpus, loading shards): nothing new to save, a clean stop
    if (o.signal?.aborted === true && e instanceof AbortedError) {
      const step = resumeDir === null ? 0 : (listCheckpoints(root).at(-1)?.step ?? 0);
      return { step, trainLoss: null, valLoss: null, tokensPerSecond: 0, checkpoint: resumeDir, stoppedBy: 'signal', unigramBaseline: null };
    }
    throw e;
  } finally {
    if (o.client === undefined) await client?.close();
    release();
  }
}
