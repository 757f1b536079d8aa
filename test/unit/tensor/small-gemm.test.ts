/**
 * The native small-M GEMM (M ≤ 8: decode steps, and continuous batching's 2-8 rows) gives each row of A the bits
 * that row gets alone (M = 1), for every M from 2 to 8, on every ISA path this CPU runs, at 1 and 2 threads. This is
 * what lets a batched decode step answer each session exactly as if it ran alone (LlamaShard.decodeBatch). Shapes:
 * K below, at and above the vector width and not a multiple of it, and above the 1024-float K block of the AVX-512
 * 5-8 row kernel (its accumulators are parked between blocks); N with every remainder of that kernel's groups of 3
 * rows of W and of its 24-row sub-ranges; A read in place (aligned rows, also with a row stride) and copied
 * (misaligned start); beta 0 and 1.
 *
 * Skips, with the reason, when the addon did not build.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GemmArgs } from '../../../src/tensor/backend.js';
import type { NativeBackend, NativeIsa } from '../../../src/tensor/backends/native.js';
import { nativeForTest } from '../../utils/native.js';
import { Rng } from '../../../src/util/rng.js';

const { nb, skip } = nativeForTest();
const RANK: Record<NativeIsa, number> = { portable: 0, avx2: 1, avx512: 2 };

function randn(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** Rows of C from an M-row product against the same rows computed one at a time: equal bit for bit. */
function checkRows(b: NativeBackend, rng: Rng, what: string, M: number, N: number, K: number, transB: boolean, beta: number, layout: 'dense' | 'strided' | 'misaligned'): void {
  // A [M, K] at offset offA with row stride lda: dense (64-byte aligned rows when K is a multiple of 16), a stride
  // of K rounded up to 32 (aligned rows with a gap), or starting one float in (the kernel copies A first).
  const lda = layout === 'strided' ? Math.ceil((K + 1) / 32) * 32 : K;
  const offA = layout === 'misaligned' ? 1 : 0;
  const a = randn(rng, offA + M * lda);
  const w = randn(rng, K * N); // [N, K] when transB, else [K, N]
  const c0 = randn(rng, M * N);
  const alpha = beta === 0 ? 1 : 0.5;
  const all = c0.slice();
  const g: GemmArgs = { transA: false, transB, M, N, K, alpha, beta, lda, offA };
  b.gemm(a, w, all, g);
  for (let i = 0; i < M; i++) {
    const row = c0.slice(i * N, (i + 1) * N);
    b.gemm(a, w, row, { ...g, M: 1, offA: offA + i * lda });
    const x = new Uint32Array(all.buffer, i * N * 4, N);
    const y = new Uint32Array(row.buffer);
    for (let j = 0; j < N; j++) {
      if (x[j] !== y[j]) assert.fail(`${what} M=${M} N=${N} K=${K} transB=${transB} beta=${beta} ${layout}: C[${i}, ${j}] is ${all[i * N + j]} in the batch, ${row[j]} alone`);
    }
  }
}

describe('native small-M GEMM: every row of a 2-8 row product equals that row alone', { skip }, () => {
  it('on every ISA path, 1 and 2 threads, awkward K and N, A in place and copied, beta 0 and 1', () => {
    assert.ok(nb !== undefined);
    const b = nb;
    const before = b.info();
    const isas = (['avx512', 'avx2', 'portable'] as NativeIsa[]).filter((i) => RANK[i] <= RANK[before.detectedIsa]);
    const rng = new Rng(8);
    try {
      for (const isa of isas) {
        b.setIsa(isa);
        for (const threads of [1, 2]) {
          b.setThreads(threads);
          for (let M = 2; M <= 8; M++) {
            // K: under one vector, one vector ± 1, odd, a multiple of 16 over the 1024 block, and past two blocks with a tail
            for (const K of [3, 15, 17, 100, 1040, 2063]) {
              // N: 1 and 2 (a lone short group), 26 (a sub-range of 24 and a group of 2), 49 (two sub-ranges and 1), 200
              for (const N of [1, 2, 26, 49, 200]) {
                checkRows(b, rng, `${isa} ${threads}T`, M, N, K, true, 0, 'dense');
                checkRows(b, rng, `${isa} ${threads}T`, M, N, K, true, 1, 'strided');
                checkRows(b, rng, `${isa} ${threads}T`, M, N, K, true, 0, 'misaligned');
              }
            }
            checkRows(b, rng, `${isa} ${threads}T`, M, 70, 33, false, 1, 'dense');
          }
        }
      }
    } finally {
      b.setIsa(before.isa);
      b.setThreads(before.threads);
    }
  });
});
