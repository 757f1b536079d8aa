/**
 * Compression of a layer's pseudo-gradient Δ (n float32 elements) for the outer sync (`--compress`):
 *
 *   none    n × f32                                                           4 bytes/element
 *   fp16    n × IEEE half, round to nearest even                              2 bytes/element
 *   int8    u32 blockSize ‖ ⌈n/blockSize⌉ × f32 scale ‖ n × i8 (block-wise symmetric, scale = max|x|/127,
 *           q = round-half-away(x/scale); the engine's format, tensor/ops/quantize.ts)     ≈ 1.06 bytes/element
 *   sparse  SparseLoCo-style (arXiv 2508.15706): the tensor is cut into chunks of `chunk` elements (default 4096);
 *           in each chunk the k = max(1, round(fraction·len)) largest |x| are kept (default fraction 1/64 ≈ 1.56 %,
 *           SparseLoCo keeps 1-3 %; ties → lower index), everything else is dropped; the kept values are sent with
 *           2 bits each: a sign bit and a magnitude bit choosing between two levels per chunk, lo = mean |x| of the
 *           kept values below their median |x| and hi = mean |x| of the others.
 *             u32 chunk ‖ f64 fraction ‖ per chunk: f32 lo ‖ f32 hi ‖ k × u16 index (ascending, < len) ‖ ⌈k/4⌉ codes
 *           ≈ 152 bytes per 4096 elements: 108× smaller than fp32.
 * All integers little-endian. The encoder is the sender's business; the decoder is what every receiver runs on
 * bytes from a peer, so it checks everything (exact length, finite scales, ascending in-range indices, finite
 * decoded values) and throws PeerMisbehaviourError TRAINING_DELTA_MALFORMED; it is plain TypeScript with one
 * float32 rounding per element, so every holder decodes the same bytes to the same bits.
 *
 * Error feedback (ErrorFeedback below): what compression dropped this round is added to the next round's Δ, kept
 * per node and layer across rounds, as in SparseLoCo (e ← β·e + Δ; send C(e); e ← e − D(C(e))).
 */
import { InvalidArgumentError, PeerMisbehaviourError } from '../../util/errors.js';
import { floatToHalf as f32ToF16, halfToFloat as f16ToF32 } from '../../tensor/half.js';

export const COMPRESSIONS = ['none', 'fp16', 'int8', 'sparse'] as const;
export type CompressionKind = (typeof COMPRESSIONS)[number];

export function isCompressionKind(s: string): s is CompressionKind {
  return (COMPRESSIONS as readonly string[]).includes(s);
}

export interface CompressionOptions {
  /** int8: elements per block (default 64, the engine's). */
  int8Block?: number;
  /** sparse: elements per chunk (≤ 65536 so indices fit u16; default 4096). */
  sparseChunk?: number;
  /** sparse: fraction of each chunk kept (default 1/64). */
  sparseFraction?: number;
}

export const SPARSE_DEFAULTS = Object.freeze({ chunk: 4096, fraction: 1 / 64 });
export const INT8_BLOCK = 64;

export class DeltaFormatError extends PeerMisbehaviourError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TRAINING_DELTA_MALFORMED', message, meta);
  }
}

// ---- fp16 -----------------------------------------------------------------------------------------------------




// ---- encode ---------------------------------------------------------------------------------------------------

function checkFinite(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new InvalidArgumentError(`compress: Δ holds a non-finite value at ${i}`, { index: i }, 'NON_FINITE');
}

function sparseParams(o: CompressionOptions): { chunk: number; fraction: number } {
  const chunk = o.sparseChunk ?? SPARSE_DEFAULTS.chunk;
  const fraction = o.sparseFraction ?? SPARSE_DEFAULTS.fraction;
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > 65536) throw new InvalidArgumentError(`sparse chunk ${chunk} must be an integer in 1..65536`);
  if (!(fraction > 0 && fraction <= 1)) throw new InvalidArgumentError(`sparse fraction ${fraction} must be in (0, 1]`);
  return { chunk, fraction };
}

/** Values kept per chunk of `len` elements. */
export function sparseK(len: number, fraction: number): number {
  return Math.max(1, Math.min(len, Math.round(fraction * len)));
}

/** Encoded size in bytes of a Δ of n elements (sparse: exact, the layout is fixed by n and the options). */
export function encodedBytes(kind: CompressionKind, n: number, o: CompressionOptions = {}): number {
  switch (kind) {
    case 'none':
      return 4 * n;
    case 'fp16':
      return 2 * n;
    case 'int8': {
      const bs = o.int8Block ?? INT8_BLOCK;
      return 4 + 4 * Math.ceil(n / bs) + n;
    }
    case 'sparse': {
      const { chunk, fraction } = sparseParams(o);
      let bytes = 12;
      for (let s = 0; s < n; s += chunk) {
        const k = sparseK(Math.min(chunk, n - s), fraction);
        bytes += 8 + 2 * k + Math.ceil(k / 4);
      }
      return bytes;
    }
  }
}

/** Encodes Δ (must be finite). */
export function encodeDelta(kind: CompressionKind, x: Float32Array, o: CompressionOptions = {}): Uint8Array {
  checkFinite(x);
  const n = x.length;
  const out = new Uint8Array(encodedBytes(kind, n, o));
  const dv = new DataView(out.buffer);
  switch (kind) {
    case 'none':
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, x[i]!, true);
      return out;
    case 'fp16':
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToF16(x[i]!), true);
      return out;
    case 'int8': {
      const bs = o.int8Block ?? INT8_BLOCK;
      if (!Number.isInteger(bs) || bs < 1 || bs > 1 << 20) throw new InvalidArgumentError(`int8 block ${bs} must be an integer in 1..2^20`);
      dv.setUint32(0, bs, true);
      const nb = Math.ceil(n / bs);
      const qOff = 4 + 4 * nb;
      for (let b = 0; b < nb; b++) {
        let max = 0;
        const end = Math.min(n, (b + 1) * bs);
        for (let i = b * bs; i < end; i++) max = Math.max(max, Math.abs(x[i]!));
        const scale = Math.fround(max / 127);
        dv.setFloat32(4 + 4 * b, scale, true);
        for (let i = b * bs; i < end; i++) {
          const q = scale === 0 ? 0 : Math.max(-127, Math.min(127, Math.sign(x[i]!) * Math.round(Math.abs(x[i]!) / scale)));
          dv.setInt8(qOff + i, q);
        }
      }
      return out;
    }
    case 'sparse':
      return encodeSparse(x, sparseParams(o), out, dv);
  }
}

function encodeSparse(x: Float32Array, p: { chunk: number; fraction: number }, out: Uint8Array, dv: DataView): Uint8Array {
  const n = x.length;
  dv.setUint32(0, p.chunk, true);
  dv.setFloat64(4, p.fraction, true);
  let off = 12;
  const abs = new Float32Array(Math.min(p.chunk, n));
  for (let s = 0; s < n; s += p.chunk) {
    const len = Math.min(p.chunk, n - s);
    const k = sparseK(len, p.fraction);
    // threshold = the k-th largest |x| in the chunk (native typed-array sort, ascending)
    const a = abs.subarray(0, len);
    for (let i = 0; i < len; i++) a[i] = Math.abs(x[s + i]!);
    a.sort();
    const t = a[len - k]!;
    let above = 0;
    for (let i = 0; i < len; i++) if (Math.abs(x[s + i]!) > t) above++;
    let ties = k - above; // values equal to t taken in index order
    const idx = new Uint16Array(k);
    let j = 0;
    for (let i = 0; i < len && j < k; i++) {
      const v = Math.abs(x[s + i]!);
      if (v > t || (v === t && ties-- > 0)) idx[j++] = i;
    }
    // two magnitude levels split at the median of the kept |x|
    const mags = Float64Array.from(idx, (i) => Math.abs(x[s + i]!)).sort();
    const med = mags[Math.floor((k - 1) / 2)]!;
    let loSum = 0;
    let loN = 0;
    let hiSum = 0;
    let hiN = 0;
    for (const m of mags) {
      if (m <= med) {
        loSum += m;
        loN++;
      } else {
        hiSum += m;
        hiN++;
      }
    }
    const lo = Math.fround(loN === 0 ? 0 : loSum / loN);
    const hi = Math.fround(hiN === 0 ? lo : hiSum / hiN);
    dv.setFloat32(off, lo, true);
    dv.setFloat32(off + 4, hi, true);
    off += 8;
    for (let q = 0; q < k; q++) dv.setUint16(off + 2 * q, idx[q]!, true);
    off += 2 * k;
    for (let q = 0; q < k; q++) {
      const v = x[s + idx[q]!]!;
      const code = (v < 0 ? 2 : 0) | (Math.abs(v) > med ? 1 : 0);
      out[off + (q >> 2)]! |= code << (2 * (q & 3));
    }
    off += Math.ceil(k / 4);
  }
  return out;
}

// ---- decode ---------------------------------------------------------------------------------------------------

/**
 * Decodes a peer's bytes into Δ of `n` elements; checks the layout and that every value is finite. `o` must match
 * what the network agreed on (a payload announcing another block size, chunk or fraction is refused).
 */
export function decodeDelta(kind: CompressionKind, n: number, payload: Uint8Array, o: CompressionOptions = {}): Float32Array {
  if (!isCompressionKind(kind)) throw new DeltaFormatError(`unknown compression ${String(kind)}`);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`decodeDelta: n ${n} must be an integer ≥ 0`);
  const want = encodedBytes(kind, n, o);
  if (payload.byteLength !== want) throw new DeltaFormatError(`${kind} Δ of ${n} elements must be ${want} bytes, got ${payload.byteLength}`, { kind, n, bytes: payload.byteLength });
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out = new Float32Array(n);
  switch (kind) {
    case 'none':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case 'fp16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(2 * i, true));
      break;
    case 'int8': {
      const bs = o.int8Block ?? INT8_BLOCK;
      if (dv.getUint32(0, true) !== bs) throw new DeltaFormatError(`int8 block size ${dv.getUint32(0, true)} is not the agreed ${bs}`);
      const nb = Math.ceil(n / bs);
      const qOff = 4 + 4 * nb;
      for (let b = 0; b < nb; b++) {
        const scale = dv.getFloat32(4 + 4 * b, true);
        if (!Number.isFinite(scale) || scale < 0) throw new DeltaFormatError(`int8 block ${b} has scale ${scale}`);
        const end = Math.min(n, (b + 1) * bs);
        for (let i = b * bs; i < end; i++) {
          const q = dv.getInt8(qOff + i);
          if (q === -128) throw new DeltaFormatError(`int8 code −128 at ${i} (codes are in [−127, 127])`);
          out[i] = q * scale;
        }
      }
      break;
    }
    case 'sparse':
      decodeSparse(n, dv, sparseParams(o), out);
      break;
  }
  for (let i = 0; i < n; i++) if (!Number.isFinite(out[i])) throw new DeltaFormatError(`${kind} Δ decodes to a non-finite value at ${i}`, { index: i });
  return out;
}

function decodeSparse(n: number, dv: DataView, p: { chunk: number; fraction: number }, out: Float32Array): void {
  if (dv.getUint32(0, true) !== p.chunk || dv.getFloat64(4, true) !== p.fraction) {
    throw new DeltaFormatError(`sparse chunk ${dv.getUint32(0, true)} / fraction ${dv.getFloat64(4, true)} is not the agreed ${p.chunk} / ${p.fraction}`);
  }
  let off = 12;
  for (let s = 0; s < n; s += p.chunk) {
    const len = Math.min(p.chunk, n - s);
    const k = sparseK(len, p.fraction);
    const lo = dv.getFloat32(off, true);
    const hi = dv.getFloat32(off + 4, true);
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo < 0 || hi < lo) throw new DeltaFormatError(`sparse chunk at ${s}: levels ${lo}, ${hi} must be finite with 0 ≤ lo ≤ hi`);
    off += 8;
    const codeOff = off + 2 * k;
    let prev = -1;
    for (let q = 0; q < k; q++) {
      const i = dv.getUint16(off + 2 * q, true);
      if (i <= prev || i >= len) throw new DeltaFormatError(`sparse chunk at ${s}: index ${i} is out of order or ≥ ${len}`);
      prev = i;
      const code = (dv.getUint8(codeOff + (q >> 2)) >> (2 * (q & 3))) & 3;
      const m = code & 1 ? hi : lo;
      out[s + i] = code & 2 ? -m : m;
    }
    off = codeOff + Math.ceil(k / 4);
  }
}

// ---- error feedback -------------------------------------------------------------------------------------------

/**
 * Per-node, per-layer error feedback across rounds: compress(Δ) sends C(β·e + Δ) and keeps e ← β·e + Δ − D(C(·)).
 * β = 1 keeps every dropped bit until it is sent (SparseLoCo uses a decay slightly below 1; default 1 here because
 * the outer Nesterov momentum already smooths across rounds). Returns the payload and the decoded Δ actually sent
 * (what the aggregate will see of this node).
 */
export class ErrorFeedback {
  private readonly residual = new Map<string, Float32Array>();

  constructor(
    readonly kind: CompressionKind,
    readonly options: CompressionOptions = {},
    readonly beta = 1,
  ) {
    if (!(beta >= 0 && beta <= 1)) throw new InvalidArgumentError(`error feedback β ${beta} must be in [0, 1]`);
  }

  compress(layer: string, delta: Float32Array): { payload: Uint8Array; sent: Float32Array } {
    let e = this.residual.get(layer);
    if (e === undefined || e.length !== delta.length) {
      e = new Float32Array(delta.length);
      this.residual.set(layer, e);
    }
    for (let i = 0; i < e.length; i++) e[i] = this.beta * e[i]! + delta[i]!;
    const payload = encodeDelta(this.kind, e, this.options);
    const sent = decodeDelta(this.kind, e.length, payload, this.options);
    for (let i = 0; i < e.length; i++) e[i] = e[i]! - sent[i]!;
    return { payload, sent };
  }

  /** The residual still owed for a layer (a copy), or undefined. */
  residualOf(layer: string): Float32Array | undefined {
    const e = this.residual.get(layer);
    return e === undefined ? undefined : new Float32Array(e);
  }

  state(): Record<string, Float32Array> {
    const o: Record<string, Float32Array> = {};
    for (const [k, v] of this.residual) o[k] = new Float32Array(v);
    return o;
  }

  loadState(s: Record<string, Float32Array>): void {
    this.residual.clear();
    for (const [k, v] of Object.entries(s)) this.residual.set(k, new Float32Array(v));
  }
}

export { f32ToF16, f16ToF32 };
