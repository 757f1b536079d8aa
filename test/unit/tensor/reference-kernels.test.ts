/**
 * Kernel-level checks of the reference backend where the ops layer does not reach: GEMM leading dimensions,
 * offsets, batch strides, alpha/beta; and the beta = 0 rule (NaN in C does not propagate).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend, type GemmArgs } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';
import { assertClose } from './helpers.js';

const be = createReferenceBackend();

function rand(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** Textbook definition, element by element. */
function naive(a: Float32Array, b: Float32Array, c: Float32Array, g: Required<GemmArgs>): Float32Array {
  const out = new Float32Array(c);
  for (let bi = 0; bi < g.batch; bi++) {
    for (let i = 0; i < g.M; i++) {
      for (let j = 0; j < g.N; j++) {
        let s = 0;
        for (let p = 0; p < g.K; p++) {
          const av = g.transA ? a[g.offA + bi * g.strideA + p * g.lda + i] : a[g.offA + bi * g.strideA + i * g.lda + p];
          const bv = g.transB ? b[g.offB + bi * g.strideB + j * g.ldb + p] : b[g.offB + bi * g.strideB + p * g.ldb + j];
          s += av * bv;
        }
        const ci = g.offC + bi * g.strideC + i * g.ldc + j;
        out[ci] = g.alpha * s + (g.beta === 0 ? 0 : g.beta * c[ci]);
      }
    }
  }
  return out;
}

describe('reference gemm', () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`padded leading dimensions, offsets, batch strides, alpha/beta (transA ${transA}, transB ${transB})`, () => {
        const rng = new Rng(Number(transA) * 2 + Number(transB));
        const [M, N, K, batch] = [5, 6, 7, 3];
        const lda = (transA ? M : K) + 2;
        const ldb = (transB ? K : N) + 3;
        const ldc = N + 1;
        const g: Required<GemmArgs> = {
          transA,
          transB,
          M,
          N,
          K,
          alpha: 0.5,
          beta: -1.5,
          batch,
          lda,
          ldb,
          ldc,
          strideA: (transA ? K : M) * lda + 4,
          strideB: (transB ? N : K) * ldb + 1,
          strideC: M * ldc + 2,
          offA: 3,
          offB: 5,
          offC: 1,
        };
        const a = rand(g.offA + batch * g.strideA, rng);
        const b = rand(g.offB + batch * g.strideB, rng);
        const c = rand(g.offC + batch * g.strideC, rng);
        const want = naive(a, b, c, g);
        const got = new Float32Array(c);
        be.gemm(a, b, got, g);
        assertClose(got, want, 1e-5, 1e-5, 'C');
      });
    }
  }

  it('beta = 0 overwrites C, NaN included', () => {
    const c = Float32Array.from([NaN, NaN, NaN, NaN]);
    be.gemm(Float32Array.from([1, 2, 3, 4]), Float32Array.from([1, 0, 0, 1]), c, { transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, beta: 0 });
    assert.deepEqual(Array.from(c), [1, 2, 3, 4]);
  });
});
