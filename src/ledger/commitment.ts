/**
 * Activation commitments (issue 11 §2; docs/PROTOCOL.md "Activation commitments"), in the spirit of TOPLOC
 * (arXiv 2501.16007): a compact hash of what a hop received and produced. Each row of a step's hidden states
 * contributes its top-k entries by magnitude (index, value rounded to IEEE half); a hop's commitment over a session
 * chains its steps (one step per forward chunk, so a failover's replay of the same chunks commits alike). Hop k's
 * output commitment equals hop k+1's input commitment when k+1 received exactly hop k's outputs, which is what a
 * market completion checks (verify.ts).
 *
 * Verification. The hash is exact: on the same engine (deterministic kernels, same weights, same chunks) a
 * re-execution recomputes it bit for bit, and `extendCommitment` equality is the whole check. Across engines (another
 * CPU backend, a GPU, another thread count) floats differ in the last bits, so a validator also needs the hop's
 * *opening*: the per-step top-k records (`TopKStep`, what the hash was computed over). `openingCommitment` checks an
 * opening against the signed commitment, and `verifyStep` compares one committed step with recomputed hidden states
 * within a documented tolerance (`CROSS_ENGINE_TOLERANCE`), as TOPLOC does.
 * Pure; no tensor library.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * v2 (issue 11 §2, validator re-execution): a hidden-state step also chains the SHA-256 of the step's full fp32
 * values, so a signed commitment binds the exact tensor a validator fetches and re-executes from (`full`).
 */
export const ACTIVATION_DOMAIN = 'neuroshard/activations/v2';
/** Entries per row. */
export const COMMIT_TOP_K = 8;

/** float32 → IEEE half bits, round to nearest even (NaN stays NaN, overflow to infinity). */
const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

export function halfBits(x: number): number {
  scratchF[0] = x;
  return halfFromBits(scratchU[0]!);
}

/** float32 bits (as u32) → IEEE half bits; halfBits without the float → bits step (topKRows reads the bits in place). */
function halfFromBits(u: number): number {
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

/** IEEE half bits → number. */
export function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * One step's top-k records (the opening of one chained step): rows × kk entries, each row's entries in index
 * order. `kk` = min(k, cols).
 */
export interface TopKStep {
  rows: number;
  cols: number;
  kk: number;
  /** [rows, kk] column indices, ascending per row. */
  idx: Uint16Array;
  /** [rows, kk] the values at those indices as IEEE half bits. */
  half: Uint16Array;
  /**
   * SHA-256 of every value [rows, cols] rounded to IEEE half, as u16 little-endian bits (v2): binds the whole tensor
   * at the precision every wire carries (fp32, or fp16 with `--wire f16`: the sender's fp32 and the receiver's fp16
   * round alike), so a validator can check a fetched input against a signed commitment
   * (protocols/hop-transcript.ts). Float noise changes it, so across engines only the top-k records are compared
   * (verifyStep); it is opaque in an opening.
   */
  full: Uint8Array;
}

/** The `full` of a step: SHA-256 of its values' half bits, u16 little-endian, row-major. */
export function fullHash(values: Float32Array): Uint8Array {
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = halfBits(values[i]!);
  return hashHalfBits(bits);
}

/**
 * SHA-256 as a plain Uint8Array. One-shot `crypto.hash` where Node has it (20.12+), read back as a 'binary' (latin1) string (one
 * char per byte): 0.5 µs per short preimage against 2.0 µs through a Hash object (createHash, update, digest) and
 * 1.2 µs for `hash(…, 'buffer')`, whose Buffer costs more than the hash (CPU, medians of 7 × 100,000, load 12).
 */
function sha256(data: Uint8Array): Uint8Array {
  if (typeof oneShotHash !== 'function') return new Uint8Array(createHash('sha256').update(data).digest());
  const s = oneShotHash('sha256', data, 'binary');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = s.charCodeAt(i);
  return out;
}

function hashHalfBits(bits: Uint16Array): Uint8Array {
  if (LITTLE_ENDIAN) return sha256(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
  const le = new Uint8Array(bits.length * 2);
  const dv = new DataView(le.buffer);
  for (let i = 0; i < bits.length; i++) dv.setUint16(2 * i, bits[i]!, true);
  return sha256(le);
}

/** Scratch half bits for topKRows (64 Ki values: a 85-position prefill chunk of 768, every decode step). */
const SCRATCH_HALVES = 1 << 16;
const scratchHalves = new Uint16Array(SCRATCH_HALVES);
/** Scratch preimage for extendCommitmentTopK (the rows of one decode step and more fit). */
const scratchPre = new Uint8Array(4096);

/** Largest commit-able width: indices are u16. */
export const MAX_COMMIT_COLS = 0xffff;

/**
 * The top-k entries of each row of `values` [rows, cols] (row-major) by the magnitude of their IEEE-half rounding;
 * ties go to the lower index. Selecting on the rounded value makes the records the same whether a tensor travelled
 * in fp32 or fp16 (`--wire f16`): both round to the same half bits, so the hop that produced a tensor and the hop
 * that received it commit alike.
 */
export function topKRows(values: Float32Array, rows: number, cols: number, k = COMMIT_TOP_K): TopKStep {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 1 || cols > MAX_COMMIT_COLS || values.length !== rows * cols) throw new RangeError('topKRows: values must be rows × cols');
  const kk = Math.min(k, cols);
  const outIdx = new Uint16Array(rows * kk);
  const outHalf = new Uint16Array(rows * kk);
  // every value's half bits, for the full hash (v2): a scratch buffer reused across calls when the step is not
  // large (allocating ~1.5 KiB per [1, 768] step cost a fifth of the call); nothing keeps it past this function
  const all = rows * cols <= SCRATCH_HALVES ? scratchHalves.subarray(0, rows * cols) : new Uint16Array(rows * cols);
  // the values' bits in place (a Float32Array's offset is a multiple of 4): no float → bits round trip per value
  const u32 = new Uint32Array(values.buffer, values.byteOffset, values.length);
  // the row's current top entries, largest magnitude first: column and magnitude
  const top = new Int32Array(kk);
  const topMag = new Int32Array(kk);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    // One pass: each value's half bits, then a bounded insertion selection (k is small, so O(cols · k) at worst).
    // Magnitude order of halves = order of their bits without the sign (NaN, 0x7c01.., sorts above infinity); ties
    // keep the lower index (strict >). `floor` is the magnitude a value must exceed to enter: the k-th largest once k
    // are held (so most values cost one compare), above any half when k is 0.
    let n = 0;
    let floor = kk === 0 ? 0x10000 : -1;
    for (let c = 0; c < cols; c++) {
      const u = u32[base + c]!;
      const a = u & 0x7fffffff;
      // a half's normal range (float exponents 113..142) inline, round to nearest even: the float's bits less the
      // exponent bias difference, plus 0xfff and the kept mantissa's lowest bit, shifted (a carry into the exponent
      // is the correct rounding up, to infinity at the top); everything else through halfFromBits. Session 20: the
      // call per value was half the commitment's time on the serving hop.
      const h = a >= 0x38800000 && a < 0x47800000 ? ((u >>> 16) & 0x8000) | ((a - 0x37fff001 + ((a >>> 13) & 1)) >>> 13) : halfFromBits(u);
      all[base + c] = h;
      const m = h & 0x7fff;
      if (m <= floor) continue;
      let i = n < kk ? n++ : kk - 1;
      while (i > 0 && m > topMag[i - 1]!) {
        top[i] = top[i - 1]!;
        topMag[i] = topMag[i - 1]!;
        i--;
      }
      top[i] = c;
      topMag[i] = m;
      if (n === kk) floor = topMag[kk - 1]!;
    }
    // the row's records in index order (insertion sort of kk columns)
    const o = r * kk;
    for (let j = 0; j < kk; j++) {
      const c = top[j]!;
      let i = j;
      while (i > 0 && outIdx[o + i - 1]! > c) {
        outIdx[o + i] = outIdx[o + i - 1]!;
        i--;
      }
      outIdx[o + i] = c;
    }
    for (let j = 0; j < kk; j++) outHalf[o + j] = all[base + outIdx[o + j]!]!;
  }
  return { rows, cols, kk, idx: outIdx, half: outHalf, full: hashHalfBits(all) };
}

/** The commitment a session starts from. */
export function initialCommitment(k = COMMIT_TOP_K): Uint8Array {
  return new Uint8Array(createHash('sha256').update(ACTIVATION_DOMAIN + '\0').update(new Uint8Array([k])).digest());
}

/** c_s = SHA-256(c_{s−1} ‖ u32 rows ‖ u32 cols ‖ (u16 index ‖ u16 half bits) × kk per row ‖ 32-byte full hash). */
export function extendCommitmentTopK(prev: Uint8Array, step: TopKStep): Uint8Array {
  if (step.full.length !== 32) throw new RangeError('extendCommitmentTopK: full must be a 32-byte hash');
  // the whole preimage in one buffer and one hash call (big-endian fields)
  const n = step.rows * step.kk;
  const len = prev.length + 8 + 4 * n + 32;
  const buf = len <= scratchPre.length ? scratchPre.subarray(0, len) : new Uint8Array(len);
  buf.set(prev, 0);
  let o = prev.length;
  const { rows, cols, idx, half } = step;
  buf[o] = rows >>> 24;
  buf[o + 1] = rows >>> 16;
  buf[o + 2] = rows >>> 8;
  buf[o + 3] = rows;
  buf[o + 4] = cols >>> 24;
  buf[o + 5] = cols >>> 16;
  buf[o + 6] = cols >>> 8;
  buf[o + 7] = cols;
  o += 8;
  for (let j = 0; j < n; j++, o += 4) {
    const x = idx[j]!;
    const y = half[j]!;
    buf[o] = x >>> 8;
    buf[o + 1] = x;
    buf[o + 2] = y >>> 8;
    buf[o + 3] = y;
  }
  buf.set(step.full, o);
  return sha256(buf);
}

/**
 * The commitment after one more step: `prev` chained with the top-k of each row of `values` [rows, cols]
 * (row-major). k is min(COMMIT_TOP_K, cols).
 */
export function extendCommitment(prev: Uint8Array, values: Float32Array, rows: number, cols: number, k = COMMIT_TOP_K): Uint8Array {
  return extendCommitmentTopK(prev, topKRows(values, rows, cols, k));
}

/**
 * A step of token ids (the driver's input, the validator's sampled tokens), committed exactly:
 * c_s = SHA-256(c_{s−1} ‖ u32 T ‖ u32 0 ‖ u32 id × T). cols = 0 marks ids (a hidden-state step has cols ≥ 1), so
 * the two kinds of step never collide; ids are not rounded (ids above 2,048 do not fit IEEE half exactly).
 */
export function extendTokenCommitment(prev: Uint8Array, tokens: ArrayLike<number>): Uint8Array {
  const buf = new DataView(new ArrayBuffer(8 + 4 * tokens.length));
  buf.setUint32(0, tokens.length);
  buf.setUint32(4, 0);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new RangeError('extendTokenCommitment: ids must be u32');
    buf.setUint32(8 + 4 * i, t);
  }
  const pre = new Uint8Array(prev.length + buf.byteLength);
  pre.set(prev, 0);
  pre.set(new Uint8Array(buf.buffer), prev.length);
  return sha256(pre);
}

/**
 * A session's running commitment, one step per forward chunk: what a hop keeps for its inputs and for its outputs,
 * and what the entry keeps for every hop (it sees both sides). `keepOpening` retains the top-k records (the
 * opening a validator checks across engines), bounded by the session's positions × k × 4 bytes.
 */
export class RunningCommitment {
  private c: Uint8Array;
  readonly opening: (TopKStep | { tokens: Uint32Array })[] | undefined;
  steps = 0;

  constructor(keepOpening = false) {
    this.c = initialCommitment();
    this.opening = keepOpening ? [] : undefined;
  }

  get value(): Uint8Array {
    return this.c;
  }

  /**
   * Hidden states [T, cols] cut into `chunks` (positions per forward, sum T): one step per chunk. Returns the steps'
   * records, which another commitment over the same values and chunks can take as they are (`addSteps`).
   */
  hidden(values: Float32Array, cols: number, chunks: readonly number[]): TopKStep[] {
    let at = 0;
    const steps: TopKStep[] = [];
    for (const n of chunks) {
      steps.push(topKRows(values.subarray(at * cols, (at + n) * cols), n, cols));
      at += n;
    }
    if (at * cols !== values.length) throw new RangeError('RunningCommitment.hidden: chunks do not cover the values');
    this.addSteps(steps);
    return steps;
  }

  /**
   * Steps already computed by `hidden` over the values this commitment is to take: the entry commits each tensor it
   * forwards twice (the output of hop k and the input of hop k+1), and computes its records once.
   */
  addSteps(steps: readonly TopKStep[]): void {
    for (const step of steps) {
      this.c = extendCommitmentTopK(this.c, step);
      this.opening?.push(step);
      this.steps++;
    }
  }

  /** Token ids [T] cut into `chunks` (the driver's input), or one id per chunk (`chunks` all 1: the validator's output). */
  tokens(ids: ArrayLike<number>, chunks: readonly number[]): void {
    let at = 0;
    for (const n of chunks) {
      const part = Uint32Array.from(Array.prototype.slice.call(ids, at, at + n) as number[]);
      this.c = extendTokenCommitment(this.c, part);
      this.opening?.push({ tokens: part });
      this.steps++;
      at += n;
    }
    if (at !== ids.length) throw new RangeError('RunningCommitment.tokens: chunks do not cover the ids');
  }
}

/** Recomputes a commitment from an opening (steps in order): equal to the signed one iff the opening is the one committed. */
export function openingCommitment(opening: readonly (TopKStep | { tokens: ArrayLike<number> })[]): Uint8Array {
  let c = initialCommitment();
  for (const s of opening) c = 'tokens' in s ? extendTokenCommitment(c, s.tokens) : extendCommitmentTopK(c, s);
  return c;
}

/**
 * How far a recomputed step may be from a committed one and still match.
 * - `rtol`, `atol`: |committed − recomputed| ≤ atol + rtol · |recomputed| for every committed entry (the committed
 *   value is already rounded to half, 2^-11 relative, so rtol must exceed that);
 * - `maxIndexMisses`: per row, committed indices that may be missing from the recomputed top-k (near-ties swap
 *   places under float noise).
 */
export interface CommitTolerance {
  rtol: number;
  atol: number;
  maxIndexMisses: number;
}

/** The same engine: deterministic kernels give bit-equal outputs, so nothing is tolerated. */
export const EXACT_TOLERANCE: CommitTolerance = Object.freeze({ rtol: 0, atol: 0, maxIndexMisses: 0 });

/**
 * Across engines (another CPU backend or thread count, a GPU): the entries TOPLOC bounds for bf16 (exponent equal,
 * mantissa within 2^-7 relative), plus half rounding, and one near-tie swap per row of 8. A forged output row
 * (another token's hidden state, a perturbed layer, skipped layers) moves most top-k entries by far more: see
 * test/unit/ledger/commitment.test.ts and docs/ECONOMICS.md "Inference: what is signed, checked and slashed".
 */
export const CROSS_ENGINE_TOLERANCE: CommitTolerance = Object.freeze({ rtol: 1 / 128, atol: 1 / 1024, maxIndexMisses: 1 });

export interface StepCheck {
  ok: boolean;
  /** Bit-equal (the recomputed top-k records are the committed ones). */
  exact: boolean;
  /** Rows out of tolerance, the worst relative value error seen, the most index misses in a row. */
  badRows: number;
  worstRel: number;
  worstMisses: number;
}

/** Compares one committed step with recomputed hidden states [rows, cols] of the same step. */
export function verifyStep(committed: TopKStep, recomputed: Float32Array, tol: CommitTolerance = CROSS_ENGINE_TOLERANCE): StepCheck {
  const { rows, cols, kk } = committed;
  if (recomputed.length !== rows * cols) return { ok: false, exact: false, badRows: rows, worstRel: Infinity, worstMisses: kk };
  const mine = topKRows(recomputed, rows, cols, kk);
  let exact = true;
  for (let j = 0; j < rows * kk && exact; j++) if (mine.idx[j] !== committed.idx[j] || mine.half[j] !== committed.half[j]) exact = false;
  if (exact) return { ok: true, exact: true, badRows: 0, worstRel: 0, worstMisses: 0 };
  let badRows = 0;
  let worstRel = 0;
  let worstMisses = 0;
  for (let r = 0; r < rows; r++) {
    const have = new Set<number>();
    for (let j = 0; j < kk; j++) have.add(mine.idx[r * kk + j]!);
    let misses = 0;
    let bad = false;
    for (let j = 0; j < kk; j++) {
      const c = committed.idx[r * kk + j]!;
      if (c >= cols) {
        bad = true;
        continue;
      }
      if (!have.has(c)) misses++;
      const want = recomputed[r * cols + c]!;
      const got = halfValue(committed.half[r * kk + j]!);
      const err = Math.abs(got - want);
      if (!(err <= tol.atol + tol.rtol * Math.abs(want))) bad = true; // NaN fails
      const rel = err / Math.max(Math.abs(want), tol.atol > 0 ? tol.atol : Number.MIN_VALUE);
      if (rel > worstRel || Number.isNaN(rel)) worstRel = Number.isNaN(rel) ? Infinity : rel;
    }
    if (misses > tol.maxIndexMisses) bad = true;
    worstMisses = Math.max(worstMisses, misses);
    if (bad) badRows++;
  }
  return { ok: badRows === 0, exact: false, badRows, worstRel, worstMisses };
}
