/**
 * The tensor engine's public API. Everything outside src/tensor/ imports from here.
 *
 * - Tensor / IntTensor: float32 and int32 data with a shape (row-major, no strides); reshape never copies.
 * - Ops as explicit forward/backward pairs (llm.c style): an op object caches what its backward needs, backward
 *   accumulates parameter gradients with += and returns input gradients; backward without a forward throws
 *   BackwardBeforeForwardError. Stateless forward functions serve inference.
 * - Backends compute (kernels over raw arrays); selectBackend() picks native or reference and gives the line to print.
 * - AdamW.step() detects NaN/Inf gradients: it skips the step (nothing changes), returns { applied: false, nonFinite }
 *   and emits `step:skipped` on `AdamW.events` with the same report.
 */
export type { AdamWArgs, Backend, GemmArgs, NativeBackendModule } from './backend.js';
export { ReferenceBackend, createReferenceBackend } from './backends/reference.js';
export { selectBackend, tryLoadNativeBackend, type BackendChoice, type EngineSelection, type SelectBackendOptions } from './engine.js';
export { BackendUnavailableError, BackwardBeforeForwardError, KVCacheFullError, ShapeError, TokenRangeError, shapeStr } from './errors.js';
export { IntTensor, Tensor, numelOf, sameShape, type Shape } from './tensor.js';

export { MatMul, matmul, type MatMulOptions } from './ops/matmul.js';
export { Linear, linear } from './ops/linear.js';
export { Embedding, embedding } from './ops/embedding.js';
export { DEFAULT_RMSNORM_EPS, RMSNorm, rmsnorm } from './ops/rmsnorm.js';
export { DEFAULT_ROPE_THETA, RoPE, type RopePositions } from './ops/rope.js';
export { CausalAttention, KVCache, attention, attentionWithCache, type KVCacheOptions } from './ops/attention.js';
export { SwiGLU, swiglu } from './ops/swiglu.js';
export { residualBackward, residualForward } from './ops/residual.js';
export { CrossEntropy, IGNORE_INDEX, crossEntropyLoss, type CrossEntropyResult } from './ops/cross-entropy.js';
export {
  ADAMW_DEFAULTS,
  AdamW,
  globalGradNorm,
  type AdamWConfig,
  type AdamWEvents,
  type AdamWState,
  type ParamSpec,
  type StepResult,
} from './ops/adamw.js';
export {
  DEFAULT_INT8_BLOCK,
  INT8_WEIGHT_BLOCK,
  int8BlockFor,
  dequantizeInt8,
  dequantizeMatrix,
  interleaveInt8Matrix,
  fromFp16,
  int8MatrixBytes,
  matmulInt8,
  quantizeInt8,
  quantizeMatrix,
  rowMajor,
  toFp16,
  type Int8Blocks,
  type Int8Matrix,
} from './ops/quantize.js';
