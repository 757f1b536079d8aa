/**
 * Compression of flat float32 tensors (pseudo-gradients on the wire, later):
 *
 * - fp16: IEEE half precision, round to nearest even; relative error ≤ 2^-11 in the normal range (|x| ≥ 2^-14),
 *   absolute error ≤ 2^-25 below it; |x| ≥ 65520 becomes ±Infinity. 2 bytes per element.
 * - int8, block-wise symmetric: each block of `blockSize` elements has scale = max|x| / 127 and q = round(x / scale)
 *   in [−127, 127]; the error per element is at most scale / 2 (plus float32 rounding). 1 byte per element plus
 *   4 bytes per block. Input must be finite (a NaN has no int8 code).
 */
import type { Backend, Int8Layout } from '../backend.js';
import { deinterleaveInt8, interleaveInt8 } from '../int8-layout.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { ShapeError } from '../errors.js';
import { type Tensor } from '../tensor.js';

/** Elements per int8 block: 64 keeps the scale overhead at 6 % while bounding the damage of one outlier. */
export const DEFAULT_INT8_BLOCK = 64;

/** Int8 codes with one float32 scale per block. */
export interface Int8Blocks {
  q: Int8Array;
  scales: Float32Array;
  /** Element count. */
  n: number;
  blockSize: number;
}

function flat(x: Tensor | Float32Array): Float32Array {
  return x instanceof Float32Array ? x : x.data;
}

export function toFp16(backend: Backend, x: Tensor | Float32Array, out?: Uint16Array): Uint16Array {
  const d = flat(x);
  const o = out ?? new Uint16Array(d.length);
  if (o.length !== d.length) throw new ShapeError('toFp16', `out has ${o.length} elements, input ${d.length}`);
  backend.toFp16(d, o, d.length);
  return o;
}

export function fromFp16(backend: Backend, h: Uint16Array, out?: Float32Array): Float32Array {
  const o = out ?? new Float32Array(h.length);
  if (o.length !== h.length) throw new ShapeError('fromFp16', `out has ${o.length} elements, input ${h.length}`);
  backend.fromFp16(h, o, h.length);
  return o;
}

export function quantizeInt8(backend: Backend, x: Tensor | Float32Array, blockSize = DEFAULT_INT8_BLOCK): Int8Blocks {
  const d = flat(x);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new InvalidArgumentError(`quantizeInt8: blockSize ${blockSize} must be an integer ≥ 1`);
  if (!backend.allFinite(d, d.length)) throw new InvalidArgumentError('quantizeInt8: input holds NaN or ±Infinity', undefined, 'NON_FINITE');
  const n = d.length;
  const q = new Int8Array(n);
  const scales = new Float32Array(Math.ceil(n / blockSize));
  backend.quantizeInt8(d, q, scales, n, blockSize);
  return { q, scales, n, blockSize };
}

export function dequantizeInt8(backend: Backend, b: Int8Blocks, out?: Float32Array): Float32Array {
  if (!Number.isInteger(b.blockSize) || b.blockSize < 1) throw new InvalidArgumentError(`dequantizeInt8: blockSize ${b.blockSize} must be an integer ≥ 1`);
  if (b.q.length !== b.n || b.scales.length !== Math.ceil(b.n / b.blockSize)) {
    throw new ShapeError('dequantizeInt8', `${b.q.length} codes and ${b.scales.length} scales do not describe ${b.n} elements in blocks of ${b.blockSize}`);
  }
  const o = out ?? new Float32Array(b.n);
  if (o.length !== b.n) throw new ShapeError('dequantizeInt8', `out has ${o.length} elements, expected ${b.n}`);
  backend.dequantizeInt8(b.q, b.scales, o, b.n, b.blockSize);
  return o;
}

// ---- int8 weight matrices (inference) ------------------------------------------------------------------------

/** Elements per block of an int8 weight matrix along K: 32, as GGUF's q8_0 (scales cost 12.5 %: 1.125 bytes/weight). */
export const INT8_WEIGHT_BLOCK = 32;

/**
 * A weight matrix W [rows, cols] (row-major, as nn.Linear keeps it: rows = outputs, cols = inputs K) held as int8
 * codes q [rows, cols] with one float32 scale per block of `blockSize` along each row, scales [rows, cols / blockSize].
 */
export interface Int8Matrix {
  rows: number;
  cols: number;
  blockSize: number;
  q: Int8Array;
  scales: Float32Array;
  /** How q and scales are laid out (backend.ts Int8Layout); absent: 'rows'. */
  layout?: Int8Layout;
}

/**
 * The block a weight matrix with `cols` inputs is quantized with: 32 when it divides cols, else 16 (nano's FFN width
 * 688 = 43·16; a block never straddles two rows), undefined when neither does.
 */
export function int8BlockFor(cols: number): number | undefined {
  return cols % INT8_WEIGHT_BLOCK === 0 ? INT8_WEIGHT_BLOCK : cols % 16 === 0 ? 16 : undefined;
}

/** Bytes an Int8Matrix of [rows, cols] takes. */
export function int8MatrixBytes(rows: number, cols: number, blockSize = int8BlockFor(cols) ?? INT8_WEIGHT_BLOCK): number {
  return rows * cols + 4 * rows * Math.ceil(cols / blockSize);
}

/** Quantizes W [rows, cols] (default block: int8BlockFor(cols)); cols must be a multiple of blockSize (blocks never straddle two rows). */
export function quantizeMatrix(backend: Backend, w: Float32Array, rows: number, cols: number, blockSize = int8BlockFor(cols) ?? INT8_WEIGHT_BLOCK): Int8Matrix {
  if (!Number.isInteger(blockSize) || blockSize < 16 || blockSize % 16 !== 0) throw new InvalidArgumentError(`quantizeMatrix: blockSize ${blockSize} must be a multiple of 16`);
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || cols % blockSize !== 0) {
    throw new ShapeError('quantizeMatrix', `[${rows}, ${cols}] needs positive sizes with cols a multiple of ${blockSize}`);
  }
  if (w.length !== rows * cols) throw new ShapeError('quantizeMatrix', `weights have ${w.length} elements, expected ${rows}·${cols}`);
  const b = quantizeInt8(backend, w, blockSize);
  return { rows, cols, blockSize, q: b.q, scales: b.scales };
}

/** The float32 matrix an Int8Matrix stands for (what gemmQ8 multiplies by), row-major [rows, cols]. */
export function dequantizeMatrix(backend: Backend, m: Int8Matrix): Float32Array {
  const r = rowMajor(m);
  return dequantizeInt8(backend, { q: r.q, scales: r.scales, n: m.rows * m.cols, blockSize: m.blockSize });
}

/**
 * m in the 'r16' layout (groups of 16 rows, what the decode kernels read fastest; backend.ts Int8Layout), into
 * `into` (codes and scales of m's lengths, not overlapping m's) or new arrays. m itself is left as it is.
 */
export function interleaveInt8Matrix(m: Int8Matrix, into?: { q: Int8Array; scales: Float32Array }): Int8Matrix {
  const q = into?.q ?? new Int8Array(m.q.length);
  const scales = into?.scales ?? new Float32Array(m.scales.length);
  if (q.length !== m.q.length || scales.length !== m.scales.length) throw new ShapeError('interleaveInt8Matrix', `into has ${q.length} codes and ${scales.length} scales, m ${m.q.length} and ${m.scales.length}`);
  if ((m.layout ?? 'rows') === 'r16') {
    q.set(m.q);
    scales.set(m.scales);
  } else {
    interleaveInt8(m.q, m.scales, m.rows, m.cols, m.blockSize, q, scales);
  }
  return { rows: m.rows, cols: m.cols, blockSize: m.blockSize, q, scales, layout: 'r16' };
}

/** m with row-major codes and scales: m itself when it is, else a row-major copy. */
export function rowMajor(m: Int8Matrix): Int8Matrix {
  if ((m.layout ?? 'rows') === 'rows') return m;
  const q = new Int8Array(m.q.length);
  const scales = new Float32Array(m.scales.length);
  deinterleaveInt8(m.q, m.scales, m.rows, m.cols, m.blockSize, q, scales);
  return { rows: m.rows, cols: m.cols, blockSize: m.blockSize, q, scales };
}

/**
 * out[M, rows] = a[M, cols] · Wᵀ (+ out when accumulate): a linear layer over int8 weights, decoded on the fly.
 * Shapes are checked here once; the kernel trusts them.
 */
export function matmulInt8(backend: Backend, a: Float32Array, M: number, w: Int8Matrix, out: Float32Array, accumulate = false): void {
  if (!Number.isInteger(M) || M < 1) throw new ShapeError('matmulInt8', `M=${M} must be a positive integer`);
  if (a.length < M * w.cols) throw new ShapeError('matmulInt8', `input has ${a.length} elements, needs ${M}·${w.cols}`);
  if (out.length < M * w.rows) throw new ShapeError('matmulInt8', `output has ${out.length} elements, needs ${M}·${w.rows}`);
  if (w.q.length !== w.rows * w.cols || w.scales.length !== w.rows * (w.cols / w.blockSize)) {
    throw new ShapeError('matmulInt8', `${w.q.length} codes and ${w.scales.length} scales do not describe [${w.rows}, ${w.cols}] in blocks of ${w.blockSize}`);
  }
  backend.gemmQ8(a, w.q, w.scales, out, M, w.rows, w.cols, w.blockSize, accumulate ? 1 : 0, w.layout ?? 'rows');
}
