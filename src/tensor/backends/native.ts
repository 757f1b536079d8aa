/**
 * The native backend: the `Backend` contract over the C++ addon `build/Release/neuroshard_native.node` (sources in
 * ../native/). Every call is synchronous and works in place on the caller's typed arrays; the addon splits the work
 * over its own thread pool (sized to the machine's physical cores; `setThreads` changes it). This module only loads
 * the addon and flattens arguments: the addon checks array types and lengths itself and throws a RangeError or
 * TypeError (code `ERR_NEUROSHARD_NATIVE_ARG`) rather than touch memory outside an array.
 *
 * Kernel paths: AVX-512, AVX2+FMA or portable, chosen at run time from the CPU. `NEUROSHARD_NATIVE_ISA=avx2|portable`
 * forces a lower path (tests use it to check every path on one machine); `NEUROSHARD_NATIVE_GEMM=auto|own|openblas`
 * chooses the GEMM (auto: our own kernels, except OpenBLAS, when installed, on the portable path).
 *
 * Determinism: at a fixed thread count every kernel gives the same bits on every run. With our own GEMM (the default
 * everywhere but the portable path with OpenBLAS present) the results are also identical across thread counts, for
 * every kernel: the addon splits work so that each output element is computed by the same arithmetic in the same
 * order whatever thread computes it (see src/tensor/native/kernels.h). Results differ between ISA paths.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { AdamWArgs, Backend, DecodeLayerArgs, GemmArgs, Int8Layout, ReadArraysResult } from '../backend.js';
import { findPackageRoot } from '../../util/package-root.js';
import type { DecodeLayersArgs } from '../decode-layers.js';
import { BackendUnavailableError } from '../errors.js';

/** Instruction-set paths of the addon, best first. */
export type NativeIsa = 'avx512' | 'avx2' | 'portable';
export type NativeGemmMode = 'auto' | 'own' | 'openblas';

/** What the addon reports about itself. */
export interface NativeInfo {
  isa: NativeIsa;
  detectedIsa: NativeIsa;
  /** The int8 matrix layout the current path's decode kernels read fastest (Backend.int8Layout). */
  int8Layout?: Int8Layout;
  compiledIsas: NativeIsa[];
  threads: number;
  defaultThreads: number;
  /**
   * Threads of every pool in this process (each thread that loaded the addon, the compute workers included, has its
   * own) and the CPUs it may run on: while the first exceeds the second, idle pool threads sleep at once instead of
   * spinning (pool.cc `g_pool_threads`).
   */
  processPoolThreads: number;
  usableCpus: number;
  gemmMode: NativeGemmMode;
  /** The GEMM in use now: our kernels or OpenBLAS (loaded at run time). */
  gemm: 'own' | 'openblas';
  /** openblas_get_config() when OpenBLAS was loaded, else null. */
  blas: string | null;
  /** Why OpenBLAS is not loaded, when it was wanted and is not. */
  blasReason: string | null;
  /** An environment override that was not honoured, e.g. an ISA this CPU lacks. */
  note: string | null;
  gemmTile: { mr: number; nr: number; kc: number; mc: number; nc: number };
}

/** The addon's exports (positional arguments; see src/tensor/native/addon.cc). */
interface Addon {
  info(): NativeInfo;
  setThreads(n: number): void;
  setIsa(isa: string): void;
  setGemm(mode: string): void;
  setSpinUs(us: number): void;
  poolPrime(): void;
  /** This environment's pool's id in the process (older addons: absent). */
  poolId?(): number;
  /** Primes the live pool with this id from any thread; false when none lives (pool.h Pool::prime_id). */
  poolPrimeId?(id: number): boolean;
  poolRest(): void;
  adviseHugePages(x: Float32Array | Int8Array): number;
  readArrays(arrays: readonly (Float32Array | Int8Array | Uint8Array)[], reps: number, threads: number, streams: number, pin: boolean): ReadArraysResult;
  gemm(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    beta: number,
    batch: number,
    strideA: number,
    strideB: number,
    strideC: number,
    lda: number,
    ldb: number,
    ldc: number,
    offA: number,
    offB: number,
    offC: number,
  ): void;
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;
  scale(x: Float32Array, alpha: number, n: number): void;
  sumSquares(x: Float32Array, n: number): number;
  allFinite(x: Float32Array, n: number): boolean;
  embeddingForward(table: Float32Array, ids: Int32Array, out: Float32Array, N: number, C: number): void;
  embeddingBackward(dout: Float32Array, ids: Int32Array, dtable: Float32Array, N: number, C: number): void;
  rmsnormForward(x: Float32Array, w: Float32Array, out: Float32Array, rstd: Float32Array, N: number, C: number, eps: number): void;
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
  rope(x: Float32Array, B: number, T: number, H: number, D: number, posOffset: number, theta: number, inverse: boolean, positions: Int32Array | null): void;
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, B: number, T: number, S: number, H: number, KV: number, D: number): void;
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
  attentionDecode(q: Float32Array, kCache: Float32Array, vCache: Float32Array, out: Float32Array, B: number, H: number, KV: number, D: number, maxS: number, len: number): void;
  decodeLayer?(
    x: Float32Array,
    out: Float32Array,
    inNorm: Float32Array,
    postNorm: Float32Array,
    wQkv: Float32Array | Int8Array,
    wO: Float32Array | Int8Array,
    wGu: Float32Array | Int8Array,
    wDown: Float32Array | Int8Array,
    sQkv: Float32Array | null,
    sO: Float32Array | null,
    sGu: Float32Array | null,
    sDown: Float32Array | null,
    kCaches: readonly Float32Array[],
    vCaches: readonly Float32Array[],
    ws: Float32Array,
    C: number,
    H: number,
    KV: number,
    D: number,
    F: number,
    pos: Int32Array,
    maxS: Int32Array,
    blockSizes: Int32Array | null,
    eps: number,
    theta: number,
    int8: boolean,
    B: number,
    layout?: number,
  ): void;
  decodeLayers?(
    res: readonly Float32Array[],
    layers: readonly (Float32Array | Int8Array | null)[],
    kCaches: readonly Float32Array[],
    vCaches: readonly Float32Array[],
    ws: Float32Array,
    C: number,
    H: number,
    KV: number,
    D: number,
    F: number,
    pos: Int32Array,
    maxS: Int32Array,
    blockSizes: Int32Array | null,
    eps: number,
    theta: number,
    int8: boolean,
    B: number,
    layout: number,
    L: number,
    headNorm?: Float32Array | null,
    headW?: Float32Array | null,
    xf?: Float32Array | null,
    rstd?: Float32Array | null,
    logits?: Float32Array | null,
    V?: number,
  ): void;
  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  swigluBackward(dout: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, N: number, V: number, ignoreIndex: number, dlogits: Float32Array | null, gradScale: number): { lossSum: number; count: number };
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, P: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, gradScale: number): void;
  toFp16(x: Float32Array, out: Uint16Array, n: number): void;
  fromFp16(x: Uint16Array, out: Float32Array, n: number): void;
  quantizeInt8(x: Float32Array, q: Int8Array, scales: Float32Array, n: number, blockSize: number): void;
  dequantizeInt8(q: Int8Array, scales: Float32Array, out: Float32Array, n: number, blockSize: number): void;
  gemmQ8(a: Float32Array, q: Int8Array, scales: Float32Array, c: Float32Array, M: number, N: number, K: number, blockSize: number, beta: number, layout?: number): void;
}

const ADDON_FILE = join('build', 'Release', 'neuroshard_native.node');
const ISA_LABEL: Record<NativeIsa, string> = { avx512: 'AVX-512', avx2: 'AVX2', portable: 'portable' };

export { findPackageRoot };

/** Path of the addon binary, or the reason it cannot be found. */
export function nativeAddonPath(): { path: string } | { reason: string } {
  const root = findPackageRoot();
  if (root === undefined) return { reason: 'cannot find the neuroshard package root above ' + dirname(fileURLToPath(import.meta.url)) };
  const path = join(root, ADDON_FILE);
  if (!existsSync(path)) return { reason: `${path} does not exist (the addon did not build: run \`node scripts/build-native.mjs --force\` to see why)` };
  return { path };
}

let cached: Addon | undefined;

function loadAddon(): Addon {
  if (cached !== undefined) return cached;
  const where = nativeAddonPath();
  if ('reason' in where) throw new BackendUnavailableError(where.reason);
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(where.path);
  } catch (e) {
    throw new BackendUnavailableError(`${where.path} failed to load: ${e instanceof Error ? e.message : String(e)}`);
  }
  const addon = mod as Partial<Addon>;
  if (typeof addon.info !== 'function' || typeof addon.gemm !== 'function' || typeof addon.attentionForward !== 'function') {
    throw new BackendUnavailableError(`${where.path} is not the neuroshard addon (missing exports): rebuild it`);
  }
  cached = addon as Addon;
  return cached;
}

let primeFn: ((id: number) => boolean) | null | undefined;

/**
 * Primes the kernel pool with this id (a compute worker's, `NativeBackend.poolId`) from any thread of the process:
 * the main thread that posts a decode step to a worker wakes the worker's pool helpers beside the worker itself, so
 * that the helpers' wake-up overlaps the worker's instead of following it (pool.h `prime_id`). Loads the addon on the
 * first call without making an engine (no pool threads on the calling thread). False when the addon is missing, too
 * old, or no pool has the id; never throws.
 */
export function primePoolById(id: number): boolean {
  if (primeFn === undefined) {
    primeFn = null;
    try {
      const a = loadAddon();
      if (typeof a.poolPrimeId === 'function') primeFn = a.poolPrimeId.bind(a);
    } catch {
      // no addon here: nothing to prime (the workers then run the reference backend or fail on their own)
    }
  }
  return primeFn === null ? false : primeFn(id);
}

export class NativeBackend implements Backend {
  readonly name = 'native' as const;
  readonly #a: Addon;
  #threads: number;

  constructor(addon: Addon) {
    this.#a = addon;
    this.#threads = addon.info().threads;
  }

  /** E.g. "native AVX-512 (own GEMM), 2 threads" or "native portable (OpenBLAS GEMM), 2 threads". */
  get description(): string {
    const i = this.#a.info();
    const gemm = i.gemm === 'openblas' ? 'OpenBLAS GEMM' : 'own GEMM';
    const note = i.note === null ? '' : ` [${i.note}]`;
    return `native ${ISA_LABEL[i.isa]} (${gemm}), ${i.threads} thread${i.threads === 1 ? '' : 's'}${note}`;
  }

  get threads(): number {
    return this.#threads;
  }

  /**
   * Resizes the addon's pool (n ≥ 1; 0 restores the default, the machine's physical cores). The pool belongs to
   * the addon instance of this thread, so every NativeBackend of one thread shares it.
   */
  setThreads(n: number): void {
    this.#a.setThreads(n === 0 ? this.#a.info().defaultThreads : n);
    this.#threads = this.#a.info().threads;
  }

  int8Layout(): Int8Layout {
    return this.#a.info().int8Layout ?? 'rows';
  }

  // ---- native-only extras (not in the Backend contract) ---------------------------------------------------------

  info(): NativeInfo {
    return this.#a.info();
  }

  /** Switches the kernel path (throws a RangeError when this CPU lacks it). */
  setIsa(isa: NativeIsa): void {
    this.#a.setIsa(isa);
  }

  setGemmMode(mode: NativeGemmMode): void {
    this.#a.setGemm(mode);
  }

  /** madvise(MADV_HUGEPAGE) then MADV_COLLAPSE on the whole 2 MiB pages inside x (Linux; 0 elsewhere). */
  adviseHugePages(x: Float32Array | Int8Array): number {
    return this.#a.adviseHugePages(x);
  }

  /** The read bound over `arrays` (Backend.readArrays; addon readArrays). */
  readArrays(arrays: readonly (Float32Array | Int8Array | Uint8Array)[], reps: number, threads: number, streams: 1 | 2 | 4, pin: boolean): ReadArraysResult {
    return this.#a.readArrays(arrays, reps, threads, streams, pin);
  }

  /** How long idle pool threads spin before sleeping (default 100 µs). */
  setSpinMicros(us: number): void {
    this.#a.setSpinUs(us);
  }

  /** This backend's kernel pool's id in the process (`primePoolById`), or undefined from an older addon. */
  get poolId(): number | undefined {
    return typeof this.#a.poolId === 'function' ? this.#a.poolId() : undefined;
  }

  /** A burst of kernels is coming: wake the pool's threads now (Backend.primePool). */
  primePool(): void {
    this.#a.poolPrime();
  }

  /** The burst is over: the pool's threads sleep at once (Backend.restPool). */
  restPool(): void {
    this.#a.poolRest();
  }

  // ---- linear algebra -------------------------------------------------------------------------------------------

  gemmQ8(a: Float32Array, q: Int8Array, scales: Float32Array, c: Float32Array, M: number, N: number, K: number, blockSize: number, beta: 0 | 1, layout?: Int8Layout): void {
    this.#a.gemmQ8(a, q, scales, c, M, N, K, blockSize, beta, layout === 'r16' ? 1 : 0);
  }

  gemm(a: Float32Array, b: Float32Array, c: Float32Array, g: GemmArgs): void {
    const { transA, transB, M, N, K } = g;
    const lda = g.lda ?? (transA ? M : K);
    const ldb = g.ldb ?? (transB ? K : N);
    const ldc = g.ldc ?? N;
    this.#a.gemm(
      a,
      b,
      c,
      transA,
      transB,
      M,
      N,
      K,
      g.alpha,
      g.beta,
      g.batch ?? 1,
      g.strideA ?? (transA ? K : M) * lda,
      g.strideB ?? (transB ? N : K) * ldb,
      g.strideC ?? M * ldc,
      lda,
      ldb,
      ldc,
      g.offA ?? 0,
      g.offB ?? 0,
      g.offC ?? 0,
    );
  }

  // ---- elementwise ----------------------------------------------------------------------------------------------

  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    this.#a.add(a, b, out, n);
  }
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void {
    this.#a.axpy(alpha, x, y, n);
  }
  scale(x: Float32Array, alpha: number, n: number): void {
    this.#a.scale(x, alpha, n);
  }
  sumSquares(x: Float32Array, n: number): number {
    return this.#a.sumSquares(x, n);
  }
  allFinite(x: Float32Array, n: number): boolean {
    return this.#a.allFinite(x, n);
  }

  // ---- embedding ------------------------------------------------------------------------------------------------

  embeddingForward(table: Float32Array, ids: Int32Array, out: Float32Array, N: number, C: number): void {
    this.#a.embeddingForward(table, ids, out, N, C);
  }
  embeddingBackward(dout: Float32Array, ids: Int32Array, dtable: Float32Array, N: number, C: number): void {
    this.#a.embeddingBackward(dout, ids, dtable, N, C);
  }

  // ---- RMSNorm --------------------------------------------------------------------------------------------------

  rmsnormForward(x: Float32Array, w: Float32Array, out: Float32Array, rstd: Float32Array, N: number, C: number, eps: number): void {
    this.#a.rmsnormForward(x, w, out, rstd, N, C, eps);
  }
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
  ): void {
    this.#a.rmsnormBackward(dout, x, w, rstd, dx, dw, N, C, accumulateDx);
  }

  // ---- RoPE -----------------------------------------------------------------------------------------------------

  rope(x: Float32Array, B: number, T: number, H: number, D: number, posOffset: number, theta: number, inverse: boolean, positions?: Int32Array): void {
    this.#a.rope(x, B, T, H, D, posOffset, theta, inverse, positions ?? null);
  }

  // ---- attention ------------------------------------------------------------------------------------------------

  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, B: number, T: number, S: number, H: number, KV: number, D: number): void {
    this.#a.attentionForward(q, k, v, out, lse, B, T, S, H, KV, D);
  }
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
  ): void {
    this.#a.attentionBackward(dout, q, k, v, out, lse, dq, dk, dv, B, T, S, H, KV, D);
  }
  attentionDecode(q: Float32Array, kCache: Float32Array, vCache: Float32Array, out: Float32Array, B: number, H: number, KV: number, D: number, maxS: number, len: number): void {
    this.#a.attentionDecode(q, kCache, vCache, out, B, H, KV, D, maxS, len);
  }

  decodeLayer(a: DecodeLayerArgs): void {
    const s = a.scales;
    // An addon built before decodeLayer existed cannot be here: build-native rebuilds on any newer source.
    this.#a.decodeLayer!(
      a.x,
      a.out,
      a.inNorm,
      a.postNorm,
      a.qkv,
      a.o,
      a.gateUp,
      a.down,
      s?.[0] ?? null,
      s?.[1] ?? null,
      s?.[2] ?? null,
      s?.[3] ?? null,
      a.kCache,
      a.vCache,
      a.ws,
      a.C,
      a.H,
      a.KV,
      a.D,
      a.F,
      a.pos,
      a.maxS,
      a.blockSizes,
      a.eps,
      a.theta,
      s !== null,
      a.B,
      a.int8Layout === 'r16' ? 1 : 0,
    );
  }

  /** Whether the addon has decodeLayers (decodeLayersOf checks it). */
  get hasDecodeLayers(): boolean {
    return typeof this.#a.decodeLayers === 'function';
  }

  /** A span's layers of one decode step in one call and one pool job (see tensor/decode-layers.ts). */
  decodeLayers(a: DecodeLayersArgs): void {
    this.#a.decodeLayers!(
      a.res,
      a.layers,
      a.kCache,
      a.vCache,
      a.ws,
      a.C,
      a.H,
      a.KV,
      a.D,
      a.F,
      a.pos,
      a.maxS,
      a.blockSizes,
      a.eps,
      a.theta,
      a.blockSizes !== null,
      a.B,
      a.int8Layout === 'r16' ? 1 : 0,
      a.L,
      a.head?.norm ?? null,
      a.head?.w ?? null,
      a.head?.xf ?? null,
      a.head?.rstd ?? null,
      a.head?.logits ?? null,
      a.head?.V ?? 0,
    );
  }

  // ---- SwiGLU ---------------------------------------------------------------------------------------------------

  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    this.#a.swigluForward(gate, up, out, n);
  }
  swigluBackward(dout: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void {
    this.#a.swigluBackward(dout, gate, up, dgate, dup, n);
  }

  // ---- loss -----------------------------------------------------------------------------------------------------

  crossEntropy(logits: Float32Array, targets: Int32Array, N: number, V: number, ignoreIndex: number, dlogits: Float32Array | null, gradScale: number): { lossSum: number; count: number } {
    return this.#a.crossEntropy(logits, targets, N, V, ignoreIndex, dlogits, gradScale);
  }

  // ---- optimizer ------------------------------------------------------------------------------------------------

  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, P: number, a: AdamWArgs): void {
    this.#a.adamw(param, grad, m, v, P, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step, a.gradScale);
  }

  // ---- compression ----------------------------------------------------------------------------------------------

  toFp16(x: Float32Array, out: Uint16Array, n: number): void {
    this.#a.toFp16(x, out, n);
  }
  fromFp16(x: Uint16Array, out: Float32Array, n: number): void {
    this.#a.fromFp16(x, out, n);
  }
  quantizeInt8(x: Float32Array, q: Int8Array, scales: Float32Array, n: number, blockSize: number): void {
    this.#a.quantizeInt8(x, q, scales, n, blockSize);
  }
  dequantizeInt8(q: Int8Array, scales: Float32Array, out: Float32Array, n: number, blockSize: number): void {
    this.#a.dequantizeInt8(q, scales, out, n, blockSize);
  }
}

/**
 * Loads the addon (once per thread: each worker_thread gets its own engine and pool) and returns the backend.
 * Throws BackendUnavailableError with the reason when the addon is missing or does not load.
 */
export function loadNativeBackend(opts: { threads?: number } = {}): NativeBackend {
  const backend = new NativeBackend(loadAddon());
  if (opts.threads !== undefined) backend.setThreads(opts.threads);
  return backend;
}
