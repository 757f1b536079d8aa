/**
 * Activation commitments (issue 11 §2; docs/PROTOCOL.md "Activation commitments"), in the spirit of TOPLOC
 * (arXiv 2501.16007): a compact hash of what a hop received and produced. Each row of a step's hidden states
 * contributes its top-k entries by magnitude (index, value rounded to IEEE half); a hop's commitment over a session
 * chains its steps. Hop k's output commitment equals hop k+1's input commitment when k+1 received exactly hop k's
 * outputs, which is what a market completion checks (verify.ts), and a validator re-executing a span from its
 * committed inputs recomputes the output commitment (top-k indices exact, values to half precision on the same
 * engine). Pure; no tensor library.
 */
import { createHash } from 'node:crypto';

export const ACTIVATION_DOMAIN = 'neuroshard/activations/v1';
/** Entries per row. */
export const COMMIT_TOP_K = 8;

/** float32 → IEEE half bits, round to nearest even (NaN stays NaN, overflow to infinity). */
function halfBits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (rem > mid || (rem === mid && (half & 1) === 1) ? half + 1 : half);
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  return sign | (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1) ? half + 1 : half);
}

/** The commitment a session starts from. */
export function initialCommitment(k = COMMIT_TOP_K): Uint8Array {
  return new Uint8Array(createHash('sha256').update(ACTIVATION_DOMAIN + '\0').update(new Uint8Array([k])).digest());
}

/**
 * The commitment after one more step: `prev` chained with the top-k of each row of `values` [rows, cols]
 * (row-major). k is min(COMMIT_TOP_K, cols).
 */
export function extendCommitment(prev: Uint8Array, values: Float32Array, rows: number, cols: number, k = COMMIT_TOP_K): Uint8Array {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 1 || values.length !== rows * cols) throw new RangeError('extendCommitment: values must be rows × cols');
  const kk = Math.min(k, cols);
  const h = createHash('sha256').update(prev);
  const head = new DataView(new ArrayBuffer(8));
  head.setUint32(0, rows);
  head.setUint32(4, cols);
  h.update(new Uint8Array(head.buffer));
  const out = new DataView(new ArrayBuffer(4 * kk));
  const idx: number[] = [];
  for (let r = 0; r < rows; r++) {
    idx.length = 0;
    const base = r * cols;
    // a bounded insertion selection: k is small, so O(cols · k)
    for (let c = 0; c < cols; c++) {
      const m = Math.abs(values[base + c]!);
      if (idx.length === kk && !(m > Math.abs(values[base + idx[kk - 1]!]!))) continue;
      let i = Math.min(idx.length, kk - 1);
      if (idx.length < kk) idx.push(c);
      while (i > 0 && m > Math.abs(values[base + idx[i - 1]!]!)) {
        idx[i] = idx[i - 1]!;
        i--;
      }
      idx[i] = c;
    }
    const sorted = [...idx].sort((a, b) => a - b);
    for (let j = 0; j < kk; j++) {
      out.setUint16(4 * j, sorted[j]!);
      out.setUint16(4 * j + 2, halfBits(values[base + sorted[j]!]!));
    }
    h.update(new Uint8Array(out.buffer));
  }
  return new Uint8Array(h.digest());
}

/** The driver's input commitment step: token ids, each one row of one value. */
export function extendTokenCommitment(prev: Uint8Array, tokens: readonly number[]): Uint8Array {
  return extendCommitment(prev, Float32Array.from(tokens), tokens.length, 1, 1);
}
