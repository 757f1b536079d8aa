/**
 * The int8-weight GEMM (gemmQ8, matmulInt8): C[M, N] = A[M, K] · dequant(W[N, K])ᵀ + beta·C.
 * - reference: bit-identical to the reference float32 GEMM over dequantizeInt8's matrix (it is the definition);
 * - native vs reference on awkward shapes (M > 8 on the panel path; N not a multiple of any tile; block 32 and 64;
 *   beta 0 and 1) within the classical summation bound |Δ| ≤ 2·K·2^-24·Σ|a·w| + 1e-30, at 1 thread and at 2;
 * - native small M (M ≤ 8, decode): int8 × int8 with A quantized per block (kernels_impl.h), bit for bit the
 *   definition written out here (q8q8Def) on every ISA path this CPU has, at 1 and 2 threads, whatever M, and
 *   within the activation-quantization bound of the reference;
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

const f32 = Math.fround;
/** Round half to even, as the kernels' float → int conversion does in the default rounding mode. */
function rint(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** One activation row quantized as q8_quant_act does (per block: scale max|x|/127, q = rint(x·(127/max|x|))). */
function quantAct(x: Float32Array, K: number, bs: number): { q: Int8Array; s: Float32Array } {
  const q = new Int8Array(K);
  const s = new Float32Array(K / bs);
  for (let b = 0; b < K / bs; b++) {
    let amax = 0;
    let bad = false;
    for (let k = b * bs; k < (b + 1) * bs; k++) {
      const v = Math.abs(x[k]!);
      if (!(v <= 3.4028234663852886e38)) bad = true;
      else amax = Math.max(amax, v);
    }
    const inv = f32(127 / amax);
    if (bad || amax === 0 || !Number.isFinite(inv)) {
      s[b] = bad ? NaN : f32(amax / 127);
      continue;
    }
    s[b] = f32(amax / 127);
    for (let k = b * bs; k < (b + 1) * bs; k++) q[k] = Math.max(-127, Math.min(127, rint(f32(x[k]! * inv))));
  }
  return { q, s };
}

/** The small-M int8 product as kernels_impl.h defines it: exact block sums, eight float64 sums, a fixed tree. */
function q8q8Def(a: Float32Array, m: Int8Matrix, M: number, c: Float32Array, beta: 0 | 1): void {
  const { rows: N, cols: K, blockSize: bs } = m;
  const nb = K / bs;
  for (let i = 0; i < M; i++) {
    const { q: xq, s: xs } = quantAct(a.subarray(i * K, (i + 1) * K), K, bs);
    for (let n = 0; n < N; n++) {
      const acc = [0, 0, 0, 0, 0, 0, 0, 0];
      for (let b = 0; b < nb; b++) {
        let isum = 0;
        for (let k = b * bs; k < (b + 1) * bs; k++) isum += m.q[n * K + k]! * xq[k]!;
        acc[b & 7] += isum * f32(m.scales[n * nb + b]! * xs[b]!);
      }
      const v = f32(acc[0]! + acc[4]! + (acc[2]! + acc[6]!) + (acc[1]! + acc[5]! + (acc[3]! + acc[7]!)));
      c[i * N + n] = beta === 0 ? v : f32(v + c[i * N + n]!);
    }
  }
}

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
    if (M <= 8) {
      // int8 × int8: the definition's bits, and the reference within what quantizing A costs: per block
      // Σ|w|·(As/2), plus the summation bound
      const cd = c0.slice();
      q8q8Def(a, m, M, cd, beta);
      assert.deepEqual(cn, cd, `M=${M} N=${N} K=${K} bs=${bs} beta=${beta}: not the definition's bits`);
      for (let i = 0; i < M; i++) {
        const xs = quantAct(a.subarray(i * K, (i + 1) * K), K, bs).s;
        for (let n = 0; n < N; n++) {
          const j = i * N + n;
          let qb = 0;
          for (let k = 0; k < K; k++) qb += (Math.abs(wd[n * K + k]!) * xs[Math.floor(k / bs)]!) / 2;
          const tol = qb * 1.001 + 2 * K * 2 ** -24 * (absDot(a, wd, i, n, K) + (beta === 1 ? Math.abs(c0[j]!) : 0)) + 1e-30;
          assert.ok(Math.abs(cn[j]! - cr[j]!) <= tol, `M=${M} N=${N} K=${K} bs=${bs} beta=${beta} [${i}, ${n}]: ${cn[j]} vs ${cr[j]} (tol ${tol})`);
        }
      }
      return cn;
    }
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

  it('small M: every ISA path gives the same bits (K of 1-12 chunks of 8 blocks, tails, -128 codes, zero, tiny and non-finite blocks)', () => {
    const info = (be as unknown as { info(): { isa: string; detectedIsa: string } }).info();
    const isas = ['portable', 'avx2', 'avx512'].slice(0, ['portable', 'avx2', 'avx512'].indexOf(info.detectedIsa) + 1);
    const saved = { isa: info.isa, threads: be.threads };
    const setIsa = (x: string): void => (be as unknown as { setIsa(i: string): void }).setIsa(x);
    try {
      let seed = 900;
      for (const [M, N, K] of [
        [1, 19, 32],
        [1, 40, 256],
        [1, 37, 768],
        [2, 33, 288],
        [3, 9, 3072],
        [4, 17, 544],
        [5, 16, 96],
        [8, 24, 800],
      ] as const) {
        const rng = new Rng(seed++);
        const a = rand(rng, M * K, 3);
        // awkward activation blocks: all zero, tiny (127/max|x| overflows), one huge value, one infinity (last row)
        if (K >= 128) {
          a.fill(0, 0, 32);
          a.fill(1e-40, 32, 64);
          a[70] = 1e30;
          if (M > 1) a[(M - 1) * K + 100] = Infinity;
        }
        const m = quantizeMatrix(ref, rand(rng, N * K, 0.1), N, K, 32);
        m.q[3] = -128; // a code dequantizeInt8 accepts though quantizeInt8 never writes it
        m.q[K + 5] = -128;
        const want = new Float32Array(M * N);
        q8q8Def(a, m, M, want, 0);
        for (const isa of isas)
          for (const t of [1, 2]) {
            setIsa(isa);
            be.setThreads(t);
            const got = new Float32Array(M * N).fill(7);
            matmulInt8(be, a, M, m, got);
            assert.deepEqual(got, want, `${isa}, ${t} thread(s), M=${M} N=${N} K=${K}`);
            // each row alone gives its bits in the batch
            const r1 = new Float32Array(N);
            matmulInt8(be, a.subarray((M - 1) * K), 1, m, r1);
            assert.deepEqual(r1, want.subarray((M - 1) * N), `${isa}: the last row alone`);
          }
      }
    } finally {
      setIsa(saved.isa);
      be.setThreads(saved.threads);
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
