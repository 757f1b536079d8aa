/**
 * fp16 and block-wise int8 round trips with their error bounds:
 * - fp16: bit-exact on known values (ties to even, subnormals, overflow), every half value round-trips exactly, and
 *   |x − fp16(x)| ≤ 2^-11·|x| in the normal range, ≤ 2^-25 below it.
 * - int8: |x − deq(q(x))| ≤ scale/2 + 1e-7·|x| per element, where scale = max|block| / 127.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Tensor, createReferenceBackend, dequantizeInt8, fromFp16, quantizeInt8, quantizeMatrix, toFp16 } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';

const be = createReferenceBackend();

describe('fp16', () => {
  it('known bit patterns: ties to even, subnormals, overflow, signed zero, NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest half
      [65519, 0x7bff], // just below the rounding midpoint to Infinity
      [65520, 0x7c00], // the midpoint rounds to even: Infinity
      [1e9, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it: tie to even → 0
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 subnormal units: tie to even → 2
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1 + 2^-10: even mantissa wins
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1 + 2^-10 and 1 + 2^-9: even wins
      [-0, 0x8000],
      [0, 0x0000],
    ];
    const h = toFp16(be, Float32Array.from(cases.map((c) => c[0])));
    cases.forEach(([x, bits], i) => assert.equal(h[i], bits, `fp16(${x}) = 0x${h[i].toString(16)}, expected 0x${bits.toString(16)}`));
    const nan = toFp16(be, Float32Array.from([NaN]));
    assert.ok(Number.isNaN(fromFp16(be, nan)[0]));
  });

  it('every half value survives fp16 → fp32 → fp16 exactly', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const f = fromFp16(be, all);
    const back = toFp16(be, f);
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNaN) assert.ok(Number.isNaN(f[i]));
      else assert.equal(back[i], i, `0x${i.toString(16)} → ${f[i]} → 0x${back[i].toString(16)}`);
    }
  });

  it('round-trip error bound on random values across magnitudes', () => {
    const rng = new Rng(7);
    const x = new Float32Array(20000);
    for (let i = 0; i < x.length; i++) x[i] = (rng.next() - 0.5) * 2 ** (rng.int(40) - 26);
    const rt = fromFp16(be, toFp16(be, x));
    for (let i = 0; i < x.length; i++) {
      const err = Math.abs(x[i] - rt[i]);
      const bound = Math.abs(x[i]) >= 2 ** -14 ? 2 ** -11 * Math.abs(x[i]) : 2 ** -25;
      assert.ok(err <= bound, `x = ${x[i]}: error ${err} > ${bound}`);
    }
  });

  it('accepts a Tensor and checks the output size', () => {
    const t = Tensor.fromArray([1, 2, 3]);
    assert.deepEqual(Array.from(fromFp16(be, toFp16(be, t))), [1, 2, 3]);
    assert.throws(() => toFp16(be, t, new Uint16Array(2)), { code: 'SHAPE_MISMATCH' });
  });
});

describe('int8 block-wise', () => {
  for (const [n, blockSize] of [
    [4096, 64],
    [257, 7],
    [33, 64],
    [1, 1],
  ] as const) {
    it(`n = ${n}, block ${blockSize}: error ≤ scale/2 per element, block max maps to ±127`, () => {
      const rng = new Rng(n);
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = rng.normal() * (1 + 10 * Math.floor(i / blockSize) ** 2);
      const qb = quantizeInt8(be, x, blockSize);
      assert.equal(qb.scales.length, Math.ceil(n / blockSize));
      const y = dequantizeInt8(be, qb);
      for (let b = 0; b < qb.scales.length; b++) {
        const lo = b * blockSize;
        const hi = Math.min(n, lo + blockSize);
        let max = 0;
        let argmax = lo;
        for (let i = lo; i < hi; i++) if (Math.abs(x[i]) > max) [max, argmax] = [Math.abs(x[i]), i];
        assert.equal(qb.scales[b], Math.fround(max / 127));
        assert.equal(Math.abs(qb.q[argmax]), 127);
        for (let i = lo; i < hi; i++) {
          const err = Math.abs(x[i] - y[i]);
          assert.ok(err <= qb.scales[b] / 2 + 1e-7 * Math.abs(x[i]), `x[${i}] = ${x[i]} → ${y[i]} (scale ${qb.scales[b]})`);
        }
      }
    });
  }

  it('an all-zero block has scale 0 and decodes to zeros; rounding is half away from zero', () => {
    const x = Float32Array.from([0, 0, 0, 0, 127, -0.5, 0.5, 1.5]);
    const qb = quantizeInt8(be, x, 4);
    assert.deepEqual(Array.from(qb.scales), [0, 1]);
    assert.deepEqual(Array.from(qb.q), [0, 0, 0, 0, 127, -1, 1, 2]);
    assert.deepEqual(Array.from(dequantizeInt8(be, qb)), [0, 0, 0, 0, 127, -1, 1, 2]);
  });

  it('refuses non-finite input and inconsistent blocks', () => {
    assert.throws(() => quantizeInt8(be, Float32Array.from([1, NaN])), { code: 'NON_FINITE' });
    assert.throws(() => quantizeInt8(be, Float32Array.from([1, Infinity])), { code: 'NON_FINITE' });
    assert.throws(() => quantizeInt8(be, Float32Array.from([1]), 0), { code: 'INVALID_ARGUMENT' });
    const qb = quantizeInt8(be, new Float32Array(10), 4);
    assert.throws(() => dequantizeInt8(be, { ...qb, n: 13 }), { code: 'SHAPE_MISMATCH' });
    assert.throws(() => dequantizeInt8(be, { ...qb, scales: new Float32Array(2) }), { code: 'SHAPE_MISMATCH' });
  });
});

describe('quantizeMatrix of adjacent matrices', () => {
  // LlamaShard quantizes q/k/v and gate/up as one matrix each for its fused decode products, and uses row ranges of
  // them as the separate matrices: that is only the int8 shard it was before when every row's codes and scales are
  // those the row gets in its own matrix (a block never straddles two rows).
  it('gives each row range the codes and scales of its own matrix', () => {
    const be = createReferenceBackend();
    const rng = new Rng(7);
    const K = 96;
    const rows = [40, 8, 8];
    const parts = rows.map((r) => Float32Array.from({ length: r * K }, () => rng.normal() * (1 + rng.int(4))));
    const joined = new Float32Array(rows.reduce((a, r) => a + r, 0) * K);
    let o = 0;
    for (const p of parts) {
      joined.set(p, o);
      o += p.length;
    }
    const all = quantizeMatrix(be, joined, joined.length / K, K, 32);
    let r0 = 0;
    parts.forEach((p, i) => {
      const own = quantizeMatrix(be, p, rows[i], K, 32);
      assert.deepEqual(all.q.subarray(r0 * K, (r0 + rows[i]) * K), own.q);
      assert.deepEqual(all.scales.subarray((r0 * K) / 32, ((r0 + rows[i]) * K) / 32), own.scales);
      r0 += rows[i];
    });
  });
});
