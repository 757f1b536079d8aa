/**
 * NeuroLLM: config and presets, the scaler and growth, the shard (any contiguous span of layers, forward and
 * backward), KV-cache generation and sampling, checkpoints (safetensors, Hugging Face layout) and model hashes.
 * The tokenizer lives in ./tokenizer/ (its own index).
 */
export {
  type LlamaConfig,
  NANO,
  CONFIG_LIMITS,
  validateConfig,
  makeConfig,
  swigluWidth,
  parseHfConfig,
  toHfConfigJson,
  totalParams,
  configsEqual,
} from './config.js';
export { presetConfig, presetNames } from './presets.js';
export {
  MEMORY_BYTES_PER_PARAM,
  SCALER_HEAD_DIM,
  SCALER_GQA_GROUP,
  ladderDepth,
  ladderWidths,
  rung,
  scaleFor,
  checkGrowth,
  type RungOptions,
  type ScaleResult,
} from './scaler.js';
export { ModelConfigError, UnsupportedModelOptionError, CheckpointError, ModelStateError, type CheckpointErrorCode } from './errors.js';
export {
  ParamLayout,
  paramCount,
  checkSpan,
  layerTensors,
  EMBED_NAME,
  FINAL_NORM_NAME,
  LM_HEAD_NAME,
  type Span,
  type LayerKey,
  type ParamEntry,
} from './layout.js';
export { INIT_STD, initParams, tensorRng } from './init.js';
export { LlamaShard, createModel, IGNORE_INDEX, MAX_DECODE_BATCH, type ShardOptions, type ForwardOptions, type LossResult, type WeightFormat } from './shard.js';
export { KVCache } from './kv-cache.js';
export { growParams, growModel, growDeeper, growWider, grownConfig, type GrowMode, type GrowOptions } from './growth.js';
export { sampleToken, Sampler, checkSamplingOptions, type SamplingOptions } from './sampling.js';
export { generate, type GenerateOptions, type GenerateResult, type FinishReason } from './generate.js';
export { layerHash, layerHashes, spanHash, spanHashOf, layerHashesToJson, type LayerHashes } from './hash.js';
export { SafetensorsFile, writeSafetensors, parseHeader, f16ToF32, bf16ToF32, type TensorInfo, type DType } from './safetensors.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  loadCheckpointOptimizer,
  readCheckpointInfo,
  readCheckpointConfig,
  readVerifiedCheckpointConfig,
  moveCheckpointAside,
  listCheckpointsAside,
  removeCheckpointAside,
  loadHfModel,
  loadAnyCheckpoint,
  verifyCheckpoint,
  readManifest,
  listCheckpoints,
  latestCheckpoint,
  pruneCheckpoints,
  checkpointDirName,
  CHECKPOINT_FILES,
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  DEFAULT_KEEP_LAST,
  type CheckpointAside,
  type CheckpointInfo,
  type CheckpointManifest,
  type OptimizerState,
  type SaveCheckpointOptions,
  type SavedCheckpoint,
  type LoadedCheckpoint,
  type LoadOptions,
} from './checkpoint.js';
export { atomicWriteFile, sha256File } from './fsutil.js';
export {
  NEUROLLM_ADAMW,
  NEUROLLM_SCHEDULE,
  NEUROLLM_BATCH,
  learningRate,
  type AdamWHyper,
  type LrSchedule,
} from './training-defaults.js';
export { adamwParamSpecs, createAdamW, flatOptimizerState, adamwStateFromFlat, type OptimizableModel } from './optimizer.js';
