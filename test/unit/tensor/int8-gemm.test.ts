/**
 * The int8-weight GEMM (gemmQ8, matmulInt8): C[M, N] = A[M, K] · dequant(W[N, K])ᵀ + beta·C.
 * - reference: bit-identical to the reference float32 GEMM over dequantizeInt8's matrix (it is the definition);
 * - native vs reference on awkward shapes (M = 1..4 groups of the small-M path, M > 8 on the panel path; N not a
 *   multiple of any tile; block 32 and 64; beta 0 and 1) within the classical summation bound
 *   |Δ| ≤ 2·K·2^-24·Σ|a·w| + 1e-30, at 1 thread and at 2;
 * - determinism: the same bits at 1 and 2 threads;
 * - the quantization error against the float32 weights stays within Σ_k |a_k|·scale_k/2 (plus float32 rounding);
 * - shape errors are typed and the addon refuses sizes that would read out of bounds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ShapeError,
  createReferenceBackend,
  dequantizeMatrix,
  matmulInt8,
  quantizeMatrix,
  tryLoadNativeBackend,
  type Backend,
  type Int8Matrix,
} from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';

const ref = createReferenceBackend();
const native = await tryLoadNativeBackend();

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng.next() * 2 - 1) * scale;
  return x;
}

function refGemm(a: Float32Array, w: Float32Array, c: Float32Array, M: number, N: number, K: number, beta: 0 | 1): void {
  ref.gemm(a, w, c, { transA: false, transB: true, M, N, K, alpha: 1, beta });
}

/** Σ_k |a[i, k]·w[n, k]| for the error bound. */
function absDot(a: Float32Array, w: Float32Array, i: number, n: number, K: number): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += Math.abs(a[i * K + k] * w[n * K + k]);
  return s;
}

describe('int8-weight GEMM: reference', () => {
  it('equals the float32 GEMM over the dequantized weights, bit for bit (beta 0 and 1)', () => {
    const rng = new Rng(11);
    for (const [M, N, K, bs] of [
      [1, 5, 32, 32],
      [3, 17, 64, 32],
      [9, 8, 128, 64],
    ] as const) {
      const a = rand(rng, M * K);
      const m = quantizeMatrix(ref, rand(rng, N * K, 0.2), N, K, bs);
      const wd = dequantizeMatrix(ref, m);
      for (const beta of [0, 1] as const) {
        const c0 = rand(rng, M * N);
        const c1 = c0.slice();
        matmulInt8(ref, a, M, m, c0, beta === 1);
        refGemm(a, wd, c1, M, N, K, beta);
        assert.deepEqual(c0, c1);
      }
    }
  });

  it('stays within the quantization bound of the float32 weights', () => {
    const rng = new Rng(12);
    const M = 4;
    const N = 33;
    const K = 256;
    const bs = 32;
    const a = rand(rng, M * K);
    const w = rand(rng, N * K, 0.05);
    const m = quantizeMatrix(ref, w, N, K, bs);
    const cq = new Float32Array(M * N);
    const cf = new Float32Array(M * N);
    matmulInt8(ref, a, M, m, cq);
    refGemm(a, w, cf, M, N, K, 0);
    for (let i = 0; i < M; i++)
      for (let n = 0; n < N; n++) {
        let bound = 0;
        for (let k = 0; k < K; k++) bound += (Math.abs(a[i * K + k]) * m.scales[n * (K / bs) + Math.floor(k / bs)]) / 2;
        bound += 1e-6 * absDot(a, w, i, n, K);
        assert.ok(Math.abs(cq[i * N + n] - cf[i * N + n]) <= bound, `[${i}, ${n}]: ${cq[i * N + n]} vs ${cf[i * N + n]} (bound ${bound})`);
      }
  });

  it('refuses inconsistent shapes with typed errors', () => {
    const m = quantizeMatrix(ref, new Float32Array(4 * 64), 4, 64);
    assert.throws(() => matmulInt8(ref, new Float32Array(63), 1, m, new Float32Array(4)), ShapeError);
    assert.throws(() => matmulInt8(ref, new Float32Array(64), 1, m, new Float32Array(3)), ShapeError);
    assert.throws(() => matmulInt8(ref, new Float32Array(64), 1, { ...m, scales: new Float32Array(3) }, new Float32Array(4)), ShapeError);
    assert.throws(() => quantizeMatrix(ref, new Float32Array(4 * 40), 4, 40), ShapeError); // 40 is not a multiple of 32
    assert.throws(() => quantizeMatrix(ref, new Float32Array(4 * 64), 4, 64, 24), /multiple of 16/);
  });
});

describe('int8-weight GEMM: native vs reference', { skip: native.ok ? false : `native backend not loaded (${(native as { reason: string }).reason})` }, () => {
  const be = (native as { backend: Backend }).backend;

  function check(M: number, N: number, K: number, bs: number, beta: 0 | 1, seed: number): Float32Array {
    const rng = new Rng(seed);
    const a = rand(rng, M * K);
    const w = rand(rng, N * K, 0.1);
    const m: Int8Matrix = quantizeMatrix(ref, w, N, K, bs);
    const wd = dequantizeMatrix(ref, m);
    const c0 = rand(rng, M * N);
    const cn = c0.slice();
    const cr = c0.slice();
    matmulInt8(be, a, M, m, cn, beta === 1);
    matmulInt8(ref, a, M, m, cr, beta === 1);
    for (let i = 0; i < M; i++)
      for (let n = 0; n < N; n++) {
        const j = i * N + n;
        assert.ok(Number.isFinite(cn[j]), `non-finite at [${i}, ${n}]`);
        const tol = 2 * K * 2 ** -24 * (absDot(a, wd, i, n, K) + (beta === 1 ? Math.abs(c0[j]) : 0)) + 1e-30;
        assert.ok(Math.abs(cn[j] - cr[j]) <= tol, `M=${M} N=${N} K=${K} bs=${bs} beta=${beta} [${i}, ${n}]: ${cn[j]} vs ${cr[j]} (tol ${tol})`);
      }
    return cn;
  }

  it('matches on the small-M and panel paths, awkward sizes, blocks of 32 and 64, beta 0 and 1', () => {
    const saved = be.threads;
    try {
      for (const t of [1, 2]) {
        be.setThreads(t);
        let seed = 100;
        for (const M of [1, 2, 3, 4, 5, 8, 9, 17])
          for (const [N, K, bs] of [
            [1, 32, 32],
            [7, 64, 32],
            [65, 96, 32],
            [130, 128, 64],
          ] as const)
            for (const beta of [0, 1] as const) check(M, N, K, bs, beta, seed++);
      }
    } finally {
      be.setThreads(saved);
    }
  });

  it('gives the same bits at 1 and 2 threads (decode and prefill shapes of a 768-wide layer)', () => {
    const saved = be.threads;
    try {
      for (const M of [1, 64]) {
        be.setThreads(1);
        const one = check(M, 3072, 768, 32, 0, 7);
        be.setThreads(2);
        const two = check(M, 3072, 768, 32, 0, 7);
        assert.deepEqual(one, two);
      }
    } finally {
      be.setThreads(saved);
    }
  });

  it('the addon refuses sizes that would read out of bounds or break the block layout', () => {
    const a = new Float32Array(64);
    const c = new Float32Array(4);
    be.gemmQ8(a, new Int8Array(64), new Float32Array(2), c, 1, 2, 32, 32, 0); // the valid call
    assert.throws(() => be.gemmQ8(a, new Int8Array(63), new Float32Array(2), c, 1, 2, 32, 32, 0), /q has 63 elements/);
    assert.throws(() => be.gemmQ8(a, new Int8Array(64), new Float32Array(1), c, 1, 2, 32, 32, 0), /scales has 1 elements/);
    assert.throws(() => be.gemmQ8(a, new Int8Array(96), new Float32Array(4), c, 1, 2, 48, 32, 0), /multiple of blockSize/);
    assert.throws(() => be.gemmQ8(a, new Int8Array(64), new Float32Array(4), c, 1, 2, 32, 24, 0), /multiple of 16/);
    assert.throws(() => be.gemmQ8(a, new Int8Array(64), new Float32Array(2), c, 1, 2, 32, 32, 0.5 as 0), /beta/);
  });
});
