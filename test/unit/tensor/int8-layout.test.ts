/**
 * The 'r16' int8 matrix layout (backend.ts Int8Layout; what an int8 shard holds): the conversion round-trips, and
 * every product over it is the same bits as over the row-major matrix, which int8-gemm.test.ts checks against the
 * definition: the reference, the native small-M kernels on every ISA path this CPU has (the AVX-512 VNNI group
 * kernel, and the row kernels over gathered rows) at 1 and 2 threads, block sizes 16, 32 and 64 (nano's FFN takes
 * 16), N with and without a row-major tail, and the panel path (M > 8).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend, dequantizeMatrix, interleaveInt8Matrix, matmulInt8, quantizeMatrix, rowMajor, tryLoadNativeBackend, type Backend } from '../../../src/tensor/index.js';
import { int8MatrixRow } from '../../../src/tensor/int8-layout.js';
import { Rng } from '../../../src/util/rng.js';

const ref = createReferenceBackend();
const native = await tryLoadNativeBackend();

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng.next() * 2 - 1) * scale;
  return x;
}

describe('int8 layout r16', () => {
  it('round-trips, keeps every code and scale, and reads rows back as they were', () => {
    const rng = new Rng(5);
    for (const [N, K, bs] of [
      [16, 32, 32],
      [37, 64, 16],
      [5, 96, 32],
      [48, 128, 64],
    ] as const) {
      const m = quantizeMatrix(ref, rand(rng, N * K), N, K, bs);
      m.q[1] = -128;
      const r = interleaveInt8Matrix(m);
      assert.equal(r.layout, 'r16');
      assert.equal(r.q.length, m.q.length);
      assert.notDeepEqual(N >= 16 ? r.q : m.q.slice(0, 0).fill(1), m.q);
      const back = rowMajor(r);
      assert.deepEqual(back.q, m.q);
      assert.deepEqual(back.scales, m.scales);
      assert.deepEqual(dequantizeMatrix(ref, r), dequantizeMatrix(ref, m));
      const q = new Int8Array(K);
      const s = new Float32Array(K / bs);
      for (let n = 0; n < N; n++) {
        int8MatrixRow(r.q, r.scales, N, K, bs, 'r16', n, q, s);
        assert.deepEqual(q, m.q.subarray(n * K, (n + 1) * K));
        assert.deepEqual(s, m.scales.subarray((n * K) / bs, ((n + 1) * K) / bs));
      }
      // group 0, row 1, codes 4..7 sit at bytes 64 + 4..7
      if (N >= 16) assert.deepEqual(r.q.subarray(68, 72), m.q.subarray(K + 4, K + 8));
    }
  });

  it('reference: the same bits as the row-major matrix', () => {
    const rng = new Rng(6);
    for (const [M, N, K, bs] of [
      [1, 17, 64, 32],
      [9, 40, 96, 16],
    ] as const) {
      const a = rand(rng, M * K);
      const m = quantizeMatrix(ref, rand(rng, N * K, 0.2), N, K, bs);
      const r = interleaveInt8Matrix(m);
      for (const acc of [false, true]) {
        const c0 = rand(rng, M * N);
        const c1 = c0.slice();
        matmulInt8(ref, a, M, m, c0, acc);
        matmulInt8(ref, a, M, r, c1, acc);
        assert.deepEqual(c1, c0);
      }
    }
  });

  it('native: the same bits as the row-major matrix on every ISA path, 1 and 2 threads, small M and panels', { skip: native.ok ? false : 'native backend not loaded' }, () => {
    const be = (native as { backend: Backend }).backend;
    const info = (be as unknown as { info(): { isa: string; detectedIsa: string } }).info();
    const isas = ['portable', 'avx2', 'avx512'].slice(0, ['portable', 'avx2', 'avx512'].indexOf(info.detectedIsa) + 1);
    const setIsa = (x: string): void => (be as unknown as { setIsa(i: string): void }).setIsa(x);
    const saved = { isa: info.isa, threads: be.threads };
    try {
      let seed = 300;
      for (const [M, N, K, bs] of [
        [1, 16, 32, 32],
        [1, 37, 256, 32],
        [1, 160, 768, 32],
        [1, 64, 688, 16],
        [2, 33, 288, 32],
        [3, 48, 3072, 32],
        [4, 17, 544, 32],
        [5, 130, 128, 64],
        [8, 24, 800, 32],
        [8, 40, 96, 16],
        [9, 70, 256, 32],
        [17, 130, 128, 64],
      ] as const) {
        const rng = new Rng(seed++);
        const a = rand(rng, M * K, 3);
        if (K >= 128) {
          a.fill(0, 0, 32);
          a.fill(1e-40, 32, 64);
          a[70] = 1e30;
          if (M > 1) a[(M - 1) * K + 100] = Infinity;
        }
        const m = quantizeMatrix(ref, rand(rng, N * K, 0.1), N, K, bs);
        m.q[3] = -128;
        m.q[K + 5] = -128;
        const r = interleaveInt8Matrix(m);
        for (const isa of isas)
          for (const t of [1, 2])
            for (const acc of [false, true]) {
              setIsa(isa);
              be.setThreads(t);
              const c0 = rand(rng, M * N);
              const c1 = c0.slice();
              matmulInt8(be, a, M, m, c0, acc);
              matmulInt8(be, a, M, r, c1, acc);
              assert.deepEqual(c1, c0, `${isa}, ${t} thread(s), M=${M} N=${N} K=${K} bs=${bs} acc=${acc}`);
            }
      }
    } finally {
      setIsa(saved.isa);
      be.setThreads(saved.threads);
    }
  });
});
