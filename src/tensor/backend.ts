/**
 * ## Changes (owner: tensor TS side; native teammate, please read)
 * - Added `NativeBackendModule`: what `src/tensor/backends/native.ts` must export for `selectBackend()` and the
 *   parity test to find it: `loadNativeBackend(opts?: { threads?: number }): Backend` (sync or async), throwing an
 *   Error whose message says why when the addon cannot load. (`createNativeBackend` is accepted as an alias.)
 *   `description` of the native backend is printed after "engine: ", e.g. "native AVX-512, 2 threads".
 * - GemmArgs: default batch strides are the dense matrix sizes rows·ld (A: (transA ? K : M)·lda, B: (transB ? N : K)·ldb,
 *   C: M·ldc). Unchanged semantics otherwise.
 * - rope: angles are computed as Hugging Face Llama does, in float32: inv_freq[i] = f32(1 / f32(theta ^ f32(2i / D))),
 *   angle = f32(p · inv_freq[i]); cos/sin of that float32 angle (so our logits match PyTorch at long positions).
 * - quantizeInt8: scale is stored as float32(max|x| / 127) and q = round-half-away-from-zero(x / scale) (C `roundf`),
 *   clamped to [−127, 127]; dequantize is q·scale. Parity allows |Δq| ≤ 1 where x / scale sits on a tie.
 * - toFp16: NaN maps to a NaN (any payload), ±overflow to ±Infinity, subnormals are produced (no flush to zero).
 * - crossEntropy: when every row is ignored, lossSum = 0 and count = 0 (the op reports a loss of 0, not NaN).
 * No signature changed.
 */

/**
 * The kernel contract. A Backend is a flat set of numerical kernels over raw typed arrays with explicit sizes:
 * no shapes, no allocation policy, no autograd. Ops (src/tensor/ops/) check shapes, allocate outputs and pair
 * forward with backward; backends only compute. Two implementations:
 *
 * - `reference` (src/tensor/backends/reference.ts): plain TypeScript loops, simple and obviously right; the oracle
 *   of the parity tests and the fallback when the native addon does not load.
 * - `native` (src/tensor/backends/native.ts over src/tensor/native/*.cc): SIMD C++ with a thread pool sized to the
 *   machine's cores.
 *
 * Conventions every kernel follows:
 * - All float data is float32, row-major, dense unless a stride says otherwise. Token ids are Int32Array.
 * - Shape letters: B batch, T time (query positions), S key/value positions, C channels (hidden size),
 *   H query heads, KV key/value heads, D head_dim, F FFN width, V vocabulary, N rows (B·T), P parameter count.
 * - Attention activations keep the projection layout [B, T, H, D] (no transposes between kernels).
 * - `accumulate` flags mean "add into the output" (gradients are accumulated, llm.c style); otherwise the output
 *   is overwritten.
 * - Kernels never allocate outputs and never validate shapes: the ops layer does that once, with typed errors.
 *   Kernels may assume non-aliased inputs and outputs unless a comment says in-place is allowed.
 */

export interface GemmArgs {
  /** op(A) is [M, K]: A is [M, K] when transA is false, [K, M] when true. */
  transA: boolean;
  /** op(B) is [K, N]: B is [K, N] when transB is false, [N, K] when true. */
  transB: boolean;
  M: number;
  N: number;
  K: number;
  /** C = alpha·op(A)·op(B) + beta·C. beta = 0 overwrites C (NaN in C does not propagate). */
  alpha: number;
  beta: number;
  /**
   * Batched GEMM: `batch` independent products. Offsets between consecutive matrices, in elements; each defaults
   * to the dense size rows·ld of its operand.
   */
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Leading dimensions (row strides in elements); default to the dense values. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** Element offsets into the arrays where matrix 0 starts (default 0). */
  offA?: number;
  offB?: number;
  offC?: number;
}

export interface AdamWArgs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
  /** Multiply the gradient by this before the update (global-norm clipping folds in here). */
  gradScale: number;
}

/** Most rows (sequences) one decodeLayer call takes: the decode batch a hop's batcher forms at most. */
export const DECODE_LAYER_MAX_ROWS = 8;

/**
 * One decoder layer of a decode step of B ≤ DECODE_LAYER_MAX_ROWS sequences, one row each, every row at its own
 * position in its own KV cache (see LlamaShard.layerForward; B = 1 is a batch-1 decode step), for backends that run
 * it as one job. Row b:
 *   h1 = rmsnorm(x); [q | k | v] = h1 · qkvᵀ; RoPE(q, k) at pos[b]; k, v → kCache[b]/vCache[b] at pos[b];
 *   att = attention(q, cache b [0..pos[b]]); r = x + att · oᵀ; h2 = rmsnorm(r); [g | u] = h2 · gateUpᵀ;
 *   out = r + (silu(g) · u) · downᵀ
 * Matrices are row-major [outputs, inputs]: qkv [H·D + 2·KV·D, C], o [C, H·D], gateUp [2F, C], down [C, F], float32,
 * or int8 codes with `scales` (one float32 per blockSizes[i] weights along the inputs, as gemmQ8 takes them).
 */
/**
 * How an int8 weight matrix [N, K] holds its codes and scales (same bytes either way). 'rows': q[N, K] and
 * scales[N, K / blockSize] row-major. 'r16' (what an int8 shard holds, for the decode kernels: kernels.h kQ8R16):
 * rows [0, N16), N16 = N − N mod 16, in groups of 16: group g's codes at 16·g·K, row 16g + r's codes k = 4t..4t+3 at
 * offset 64·t + 4·r in it; its scales at 16·g·(K / blockSize), row 16g + r's block b at 16·b + r; the last N mod 16
 * rows row-major after them (at n·K and n·(K / blockSize), as in 'rows'). See interleaveInt8Matrix.
 */
export type Int8Layout = 'rows' | 'r16';

/** One pass of Backend.readArrays: CLOCK_MONOTONIC ms of the earliest start and latest end, bytes read in all. */
export interface ReadArraysResult {
  t0: number;
  t1: number;
  cpuMs: number;
  bytes: number;
  /** Each thread's own read time (ms). */
  threadMs: number[];
}

export interface DecodeLayerArgs {
  /** Rows (sequences), 1..DECODE_LAYER_MAX_ROWS. */
  B: number;
  x: Float32Array; // [B, C]
  out: Float32Array; // [B, C]
  inNorm: Float32Array;
  postNorm: Float32Array;
  qkv: Float32Array | Int8Array;
  o: Float32Array | Int8Array;
  gateUp: Float32Array | Int8Array;
  down: Float32Array | Int8Array;
  /** int8 only: the scales of qkv, o, gateUp and down. */
  scales: readonly [Float32Array, Float32Array, Float32Array, Float32Array] | null;
  /** Row b's cache of this layer, [maxS[b], KV, D] each; one cache per row (no two rows share one). */
  kCache: readonly Float32Array[];
  vCache: readonly Float32Array[];
  /** Scratch of decodeLayerScratch(B, C, H, KV, D, F) floats. */
  ws: Float32Array;
  C: number;
  H: number;
  KV: number;
  D: number;
  F: number;
  /** Row b's position (its cache's length before this step) and its cache's capacity, [B] each. */
  pos: Int32Array;
  maxS: Int32Array;
  /** int8 only: weights per scale of qkv, o, gateUp and down (null for float32). */
  blockSizes: Int32Array | null;
  /** int8 only: the four matrices' layout (Int8Layout; default 'rows'). */
  int8Layout?: Int8Layout;
  eps: number;
  theta: number;
}

/**
 * Floats of scratch a decodeLayer call of B rows needs: per row h1, r, h2 [C], q/k/v, attention [H·D + 2·KV·D +
 * H·D], gate/up, act [3F], 2; each part rounded up to 16 floats (the native backend starts each on a 64-byte line),
 * and 16 more to move the start onto one.
 */
export function decodeLayerScratch(B: number, C: number, H: number, KV: number, D: number, F: number): number {
  const part = (n: number): number => Math.ceil(n / 16) * 16;
  return 16 + 3 * part(B * C) + part(B * (H * D + 2 * KV * D)) + part(B * H * D) + part(B * 2 * F) + part(B * F) + part(2 * B);
}

export interface Backend {
  readonly name: 'reference' | 'native';
  /** A one-line description: kernel family chosen (e.g. "AVX-512"), threads, BLAS if any. */
  readonly description: string;
  /** Threads the backend's pool uses (1 for reference). */
  readonly threads: number;
  setThreads(n: number): void;
  /**
   * Optional hints to the backend's thread pool from the code that knows when a burst of kernels (a decode step:
   * one pool job per layer, JS between them) begins and ends: `primePool` wakes the pool's sleeping threads so that
   * their wake-up overlaps the caller's preparation, `restPool` lets them sleep at once instead of spinning beside
   * the threads that carry the result on (native pool.h `prime`/`rest`). They never change a result.
   */
  primePool?(): void;
  restPool?(): void;
  /**
   * Asks the OS to back `x` (weights streamed once per decoded token) with 2 MiB pages instead of 4 KiB ones: fewer
   * TLB misses while streaming. Best effort and content-preserving; returns the bytes advised (0: not done here).
   */
  adviseHugePages(x: Float32Array | Int8Array): number;
  /**
   * The memory-read bound over given buffers (the bench's decode bound, session 22): `threads` threads, each pinned
   * to its own CPU when `pin`, each reading its part (1/threads) of every array `reps` times with plain 64-byte loads
   * in `streams` (1, 2 or 4) sequential streams a thread. bytes ÷ (t1 − t0) is the pass's rate; cpuMs is the
   * threads' mean CPU time. Absent where the backend has no native reader.
   */
  readArrays?(arrays: readonly (Float32Array | Int8Array | Uint8Array)[], reps: number, threads: number, streams: 1 | 2 | 4, pin: boolean): ReadArraysResult;
  /**
   * The int8 matrix layout this backend's decode products read fastest (an int8 shard takes it at load); every
   * layout gives the same bits on every backend. Absent: 'rows'.
   */
  int8Layout?(): Int8Layout;

  // ---- linear algebra ---------------------------------------------------------------------------------------
  /** C[M,N] = alpha·op(A)[M,K]·op(B)[K,N] + beta·C, optionally batched. */
  gemm(a: Float32Array, b: Float32Array, c: Float32Array, args: GemmArgs): void;
  /**
   * Int8 weights (inference): C[M, N] = A[M, K] · Wᵀ + beta·C, where W [N, K] is held as q[N, K] (Int8Array) with one
   * float32 scale per block of `blockSize` elements along K, scales[N, K / blockSize] (the layout quantizeInt8 writes
   * for a row-major [N, K] matrix when blockSize divides K): W[n, k] = q[n, k] · scales[n, ⌊k / blockSize⌋], the
   * float32 product dequantizeInt8 gives. A is dense. Requires K % blockSize = 0 and blockSize % 16 = 0; beta is 0
   * (overwrite) or 1 (add). `layout` 'r16': q and scales hold the same values in groups of 16 rows (Int8Layout);
   * the products are the same bits either way.
   */
  gemmQ8(a: Float32Array, q: Int8Array, scales: Float32Array, c: Float32Array, M: number, N: number, K: number, blockSize: number, beta: 0 | 1, layout?: Int8Layout): void;

  // ---- elementwise --------------------------------------------------------------------------------------------
  /** out[i] = a[i] + b[i], n elements; out may alias a or b. */
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  /** y[i] += alpha·x[i]. */
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;
  /** x[i] *= alpha, in place. */
  scale(x: Float32Array, alpha: number, n: number): void;
  /** Σ x[i]² in float64 accumulation (returned as a JS number). */
  sumSquares(x: Float32Array, n: number): number;
  /** True when every element is finite. */
  allFinite(x: Float32Array, n: number): boolean;

  // ---- embedding ----------------------------------------------------------------------------------------------
  /** out[N, C] = table[ids[n], :]. ids are pre-validated to be in [0, V). */
  embeddingForward(table: Float32Array, ids: Int32Array, out: Float32Array, N: number, C: number): void;
  /** dtable[ids[n], :] += dout[n, :] (scatter-add; repeated ids accumulate). */
  embeddingBackward(dout: Float32Array, ids: Int32Array, dtable: Float32Array, N: number, C: number): void;

  // ---- RMSNorm ------------------------------------------------------------------------------------------------
  /**
   * out[N, C] = x / sqrt(mean(x²) + eps) · w[C]; saves rstd[N] = 1/sqrt(mean(x²) + eps) for backward.
   */
  rmsnormForward(x: Float32Array, w: Float32Array, out: Float32Array, rstd: Float32Array, N: number, C: number, eps: number): void;
  /**
   * Given dout[N, C], writes dx[N, C] (overwrite, or add when accumulateDx) and accumulates dw[C] += Σ_n dout·x·rstd.
   */
  rmsnormBackward(
    dout: Float32Array,
    x: Float32Array,
    w: Float32Array,
    rstd: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    N: number,
    C: number,
    accumulateDx: boolean,
  ): void;

  // ---- RoPE (rotate-half layout, as Hugging Face Llama) -------------------------------------------------------
  /**
   * In place on x[B, T, H, D]: for position p = posOffset + t and i < D/2, with f = p · theta^(-2i/D):
   *   x1' = x1·cos f − x2·sin f,  x2' = x2·cos f + x1·sin f,  where x1 = x[..., i], x2 = x[..., i + D/2].
   * `positions` (Int32Array of length T, optional) overrides posOffset + t per position.
   * inverse = true rotates by −f (the backward pass: RoPE is orthogonal, so its gradient is the inverse rotation).
   * Angles in float32 as Hugging Face computes them (see Changes above).
   */
  rope(x: Float32Array, B: number, T: number, H: number, D: number, posOffset: number, theta: number, inverse: boolean, positions?: Int32Array): void;

  // ---- attention ----------------------------------------------------------------------------------------------
  /**
   * Causal grouped-query attention over whole sequences (training and prefill).
   * q[B, T, H, D], k[B, S, KV, D], v[B, S, KV, D] → out[B, T, H, D]; query head h uses KV head h / (H / KV).
   * Query t sits at key position t + (S − T) (so S = T for training, S > T for a prefill after a cache) and
   * attends to keys 0..t+(S−T). scale = 1/sqrt(D). Saves lse[B, H, T] (log-sum-exp of each softmax row) for backward.
   */
  attentionForward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    B: number,
    T: number,
    S: number,
    H: number,
    KV: number,
    D: number,
  ): void;
  /**
   * Backward of attentionForward: given dout[B, T, H, D] and the saved out and lse, writes (overwrites)
   * dq[B, T, H, D], dk[B, S, KV, D], dv[B, S, KV, D].
   */
  attentionBackward(
    dout: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    B: number,
    T: number,
    S: number,
    H: number,
    KV: number,
    D: number,
  ): void;
  /**
   * Decode with a KV cache: q[B, 1, H, D] against cached keys/values kCache/vCache[B, maxS, KV, D] of which the first
   * `len` positions are valid (the new token's k/v already written at position len − 1) → out[B, 1, H, D].
   */
  /**
   * Optional: one layer of a decode step of 1-8 sequences as one call (DecodeLayerArgs), bit-identical to the
   * op-by-op calls.
   * The native backend runs it as one pool job (a step then wakes the pool's helpers once per layer, not 5 times,
   * and the small ops between products never leave them idle in JS); absent elsewhere.
   */
  decodeLayer?(a: DecodeLayerArgs): void;
  attentionDecode(
    q: Float32Array,
    kCache: Float32Array,
    vCache: Float32Array,
    out: Float32Array,
    B: number,
    H: number,
    KV: number,
    D: number,
    maxS: number,
    len: number,
  ): void;

  // ---- SwiGLU -------------------------------------------------------------------------------------------------
  /** out[n] = silu(gate[n]) · up[n], n elements, silu(x) = x·sigmoid(x). */
  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /** dgate[n] = dout·up·silu'(gate), dup[n] = dout·silu(gate) (both overwritten). */
  swigluBackward(dout: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;

  // ---- loss ---------------------------------------------------------------------------------------------------
  /**
   * Softmax cross-entropy over logits[N, V] with targets[N] (ignoreIndex rows contribute nothing).
   * Returns the sum of the losses of the counted rows and their count; writes probs-based gradients into dlogits
   * when given: dlogits[n, :] = (softmax(logits[n]) − onehot(target)) · gradScale, zero for ignored rows.
   * (The op divides by the count through gradScale.) Targets outside [0, V) other than ignoreIndex are
   * pre-validated by the op.
   */
  crossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    N: number,
    V: number,
    ignoreIndex: number,
    dlogits: Float32Array | null,
    gradScale: number,
  ): { lossSum: number; count: number };

  // ---- optimizer ----------------------------------------------------------------------------------------------
  /**
   * One AdamW step over P parameters, decoupled weight decay (param −= lr·wd·param before the Adam update), bias
   * correction with `step`; g is read as grad·gradScale. Updates param, m and v in place.
   */
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, P: number, args: AdamWArgs): void;

  // ---- compression --------------------------------------------------------------------------------------------
  /** IEEE half precision, round to nearest even; out is a Uint16Array of n elements. */
  toFp16(x: Float32Array, out: Uint16Array, n: number): void;
  fromFp16(x: Uint16Array, out: Float32Array, n: number): void;
  /**
   * Block-wise symmetric int8: for each block of `blockSize` elements, scale = max|x| / 127 (0 for an all-zero
   * block), q = round(x / scale) clamped to [−127, 127], rounding half away from zero. scales has ceil(n / blockSize)
   * entries.
   */
  quantizeInt8(x: Float32Array, q: Int8Array, scales: Float32Array, n: number, blockSize: number): void;
  dequantizeInt8(q: Int8Array, scales: Float32Array, out: Float32Array, n: number, blockSize: number): void;
}

/**
 * What `src/tensor/backends/native.ts` exports. `selectBackend()` imports it dynamically, so a missing or unbuildable
 * addon only drops the engine to the reference backend; the thrown Error's message becomes the printed reason.
 */
export interface NativeBackendModule {
  loadNativeBackend(opts?: { threads?: number }): Backend | Promise<Backend>;
}
