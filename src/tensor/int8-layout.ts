/**
 * The two layouts of an int8 weight matrix [N, K] (codes q, one float32 scale per `bs` codes along K), as pure
 * functions over plain arrays. Backend.ts `Int8Layout` defines them:
 * - 'rows': q[N, K] and scales[N, K / bs] row-major;
 * - 'r16': rows [0, N16) (N16 = N − N mod 16) in groups of 16 rows, a 64-byte vector holding the same 4 codes of
 *   the group's 16 rows (row 16g + r's codes k = 4t..4t+3 at 16·g·K + 64·t + 4·r), the group's scales block by
 *   block (row 16g + r's block b at 16·g·nb + 16·b + r); the last N mod 16 rows row-major after them.
 * 'r16' is what the AVX-512 VNNI decode kernel reads: one vpdpbusd of a vector against A's 4 codes broadcast adds
 * 16 rows' products into 16 lanes, so a block's sums come out per row with no horizontal reduction (kernels_impl.h
 * q8q8_vnni16). Both layouts take the same bytes; a row range [r0, r1) with r0 and r1 multiples of 16 (or r1 = N)
 * of an 'r16' matrix is an 'r16' matrix of its own at offsets r0·K and r0·nb.
 */
import type { Int8Layout } from './backend.js';

/** Rows that sit in groups of 16 in the 'r16' layout of an N-row matrix. */
export function r16Rows(N: number): number {
  return N - (N % 16);
}

/** Row n of a matrix in `layout` as row-major codes qOut[K] and scales sOut[K / bs]. */
export function int8MatrixRow(q: Int8Array, scales: Float32Array, N: number, K: number, bs: number, layout: Int8Layout, n: number, qOut: Int8Array, sOut: Float32Array): void {
  const nb = K / bs;
  if (layout === 'rows' || n >= r16Rows(N)) {
    qOut.set(q.subarray(n * K, (n + 1) * K));
    sOut.set(scales.subarray(n * nb, (n + 1) * nb));
    return;
  }
  const g = n - (n % 16);
  const r = n % 16;
  const qb = g * K + 4 * r;
  for (let t = 0; t < K / 4; t++) {
    const o = qb + 64 * t;
    qOut[4 * t] = q[o];
    qOut[4 * t + 1] = q[o + 1];
    qOut[4 * t + 2] = q[o + 2];
    qOut[4 * t + 3] = q[o + 3];
  }
  const sb = g * nb + r;
  for (let b = 0; b < nb; b++) sOut[b] = scales[sb + 16 * b];
}

/**
 * A row-major matrix's codes and scales rewritten in 'r16' into qOut / sOut (same lengths; they must not overlap
 * the input). K must be a multiple of 4 (it is of 16 for every int8 matrix). Dwords are moved as whole 32-bit words
 * when the arrays allow it.
 */
export function interleaveInt8(q: Int8Array, scales: Float32Array, N: number, K: number, bs: number, qOut: Int8Array, sOut: Float32Array): void {
  const nb = K / bs;
  const N16 = r16Rows(N);
  const kd = K / 4;
  const aligned = q.byteOffset % 4 === 0 && qOut.byteOffset % 4 === 0;
  if (aligned) {
    const src = new Int32Array(q.buffer, q.byteOffset, (N * K) / 4);
    const dst = new Int32Array(qOut.buffer, qOut.byteOffset, (N * K) / 4);
    for (let g = 0; g < N16; g += 16) {
      const base = g * kd;
      for (let r = 0; r < 16; r++) {
        const s = (g + r) * kd;
        for (let t = 0; t < kd; t++) dst[base + 16 * t + r] = src[s + t];
      }
    }
  } else {
    for (let g = 0; g < N16; g += 16)
      for (let r = 0; r < 16; r++)
        for (let t = 0; t < kd; t++)
          for (let j = 0; j < 4; j++) qOut[g * K + 64 * t + 4 * r + j] = q[(g + r) * K + 4 * t + j];
  }
  for (let g = 0; g < N16; g += 16)
    for (let r = 0; r < 16; r++)
      for (let b = 0; b < nb; b++) sOut[g * nb + 16 * b + r] = scales[(g + r) * nb + b];
  qOut.set(q.subarray(N16 * K, N * K), N16 * K);
  sOut.set(scales.subarray(N16 * nb, N * nb), N16 * nb);
}

/** The inverse of interleaveInt8: an 'r16' matrix's codes and scales back to row-major, into qOut / sOut. */
export function deinterleaveInt8(q: Int8Array, scales: Float32Array, N: number, K: number, bs: number, qOut: Int8Array, sOut: Float32Array): void {
  const nb = K / bs;
  for (let n = 0; n < N; n++) int8MatrixRow(q, scales, N, K, bs, 'r16', n, qOut.subarray(n * K, (n + 1) * K), sOut.subarray(n * nb, (n + 1) * nb));
}
