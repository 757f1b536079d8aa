/**
 * Causal grouped-query attention, in the projection layout (no transposes between kernels):
 *
 *   q: [B, T, H, D]   k, v: [B, S, KV, D]   →   out: [B, T, H, D]
 *
 * Query head h reads KV head h / (H / KV). Query t sits at key position t + (S − T) and sees keys up to there:
 * S = T is training over whole sequences; S > T is a prompt chunk after a cache. Scale 1/sqrt(D).
 * Forward saves lse [B, H, T] (log-sum-exp of each softmax row) so backward recomputes the probabilities instead of
 * storing a [B, H, T, S] matrix.
 *
 * Decode path: a KVCache holds k and v for positions already seen; `attentionWithCache` appends the new positions
 * and attends over everything cached (no backward: inference only).
 */
import { InvalidArgumentError } from '../../util/errors.js';
import type { Backend } from '../backend.js';
import { KVCacheFullError, ShapeError } from '../errors.js';
import { Tensor, type Shape } from '../tensor.js';
import { expectSameShape, expectShape, outputTensor, requireSaved } from './check.js';

interface AttnDims {
  B: number;
  T: number;
  S: number;
  H: number;
  KV: number;
  D: number;
}

function attnDims(op: string, q: Shape, k: Shape, v: Shape): AttnDims {
  const shapes = { q, k, v };
  if (q.length !== 4 || k.length !== 4 || v.length !== 4) throw new ShapeError(op, 'q must be [B, T, H, D], k and v [B, S, KV, D]', shapes);
  const [B, T, H, D] = q;
  const [Bk, S, KV, Dk] = k;
  for (let i = 0; i < 4; i++) if (k[i] !== v[i]) throw new ShapeError(op, 'k and v must have the same shape', shapes);
  if (Bk !== B) throw new ShapeError(op, `batch ${B} of q ≠ batch ${Bk} of k`, shapes);
  if (Dk !== D) throw new ShapeError(op, `head_dim ${D} of q ≠ head_dim ${Dk} of k`, shapes);
  if (KV === 0 || H % KV !== 0) throw new ShapeError(op, `query heads ${H} must be a multiple of KV heads ${KV}`, shapes);
  if (S < T) throw new ShapeError(op, `key positions S = ${S} must be ≥ query positions T = ${T}`, shapes);
  if (T === 0 || D === 0) throw new ShapeError(op, 'T and D must be ≥ 1', shapes);
  return { B, T, S, H, KV, D };
}

export class CausalAttention {
  private saved: { q: Tensor; k: Tensor; v: Tensor; out: Tensor; d: AttnDims } | null = null;
  private lse = new Float32Array(0);

  constructor(private readonly backend: Backend) {}

  /** Caches q, k, v and out by reference: leave them unchanged until backward. */
  forward(q: Tensor, k: Tensor, v: Tensor, out?: Tensor): Tensor {
    const d = attnDims('attention', q.shape, k.shape, v.shape);
    const o = outputTensor('attention', 'out', q.shape, out);
    const nLse = d.B * d.H * d.T;
    if (this.lse.length !== nLse) this.lse = new Float32Array(nLse);
    this.backend.attentionForward(q.data, k.data, v.data, o.data, this.lse, d.B, d.T, d.S, d.H, d.KV, d.D);
    this.saved = { q, k, v, out: o, d };
    return o;
  }

  /** dout: [B, T, H, D] → dq [B, T, H, D], dk and dv [B, S, KV, D] (overwritten when given, allocated otherwise). */
  backward(dout: Tensor, opts: { dq?: Tensor; dk?: Tensor; dv?: Tensor } = {}): { dq: Tensor; dk: Tensor; dv: Tensor } {
    const { q, k, v, out, d } = requireSaved('attention', this.saved);
    const op = 'attention.backward';
    expectShape(op, 'dout', dout, q.shape, { q: q.shape });
    const dq = outputTensor(op, 'dq', q.shape, opts.dq);
    const dk = outputTensor(op, 'dk', k.shape, opts.dk);
    const dv = outputTensor(op, 'dv', v.shape, opts.dv);
    this.backend.attentionBackward(dout.data, q.data, k.data, v.data, out.data, this.lse, dq.data, dk.data, dv.data, d.B, d.T, d.S, d.H, d.KV, d.D);
    this.saved = null;
    return { dq, dk, dv };
  }
}

/** Causal attention without caching anything for backward (inference over whole sequences). */
export function attention(backend: Backend, q: Tensor, k: Tensor, v: Tensor, out?: Tensor): Tensor {
  const d = attnDims('attention', q.shape, k.shape, v.shape);
  const o = outputTensor('attention', 'out', q.shape, out);
  backend.attentionForward(q.data, k.data, v.data, o.data, new Float32Array(d.B * d.H * d.T), d.B, d.T, d.S, d.H, d.KV, d.D);
  return o;
}

export interface KVCacheOptions {
  batch: number;
  maxSeq: number;
  nKvHeads: number;
  headDim: number;
}

/**
 * Keys and values of the positions seen so far, for one attention layer: k, v [B, maxSeq, KV, D], the first
 * `length` positions valid. The length is also the RoPE offset of the next token.
 */
export class KVCache {
  readonly batch: number;
  readonly maxSeq: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly k: Float32Array;
  readonly v: Float32Array;
  private len = 0;

  constructor(opts: KVCacheOptions) {
    for (const [name, val] of Object.entries(opts)) {
      if (!Number.isInteger(val) || (val as number) < 1) throw new InvalidArgumentError(`KVCache: ${name} = ${String(val)} must be an integer ≥ 1`);
    }
    this.batch = opts.batch;
    this.maxSeq = opts.maxSeq;
    this.nKvHeads = opts.nKvHeads;
    this.headDim = opts.headDim;
    const n = opts.batch * opts.maxSeq * opts.nKvHeads * opts.headDim;
    this.k = new Float32Array(n);
    this.v = new Float32Array(n);
  }

  /** Valid positions. */
  get length(): number {
    return this.len;
  }

  /** Appends k, v [B, T, KV, D] at positions length .. length + T − 1. */
  append(k: Tensor, v: Tensor): void {
    const { batch: B, nKvHeads: KV, headDim: D, maxSeq } = this;
    expectSameShape('KVCache.append', ['k', 'v'], k, v);
    expectShape('KVCache.append', 'k', k, [B, null, KV, D]);
    const T = k.shape[1];
    if (this.len + T > maxSeq) throw new KVCacheFullError(this.len, T, maxSeq);
    const row = KV * D;
    for (let b = 0; b < B; b++) {
      const src = b * T * row;
      const dst = (b * maxSeq + this.len) * row;
      this.k.set(k.data.subarray(src, src + T * row), dst);
      this.v.set(v.data.subarray(src, src + T * row), dst);
    }
    this.len += T;
  }

  /** Forgets positions from `length` on (0 empties the cache; data is overwritten by later appends). */
  truncate(length = 0): void {
    if (!Number.isInteger(length) || length < 0 || length > this.len) {
      throw new ShapeError('KVCache.truncate', `length ${length} must be an integer in [0, ${this.len}]`);
    }
    this.len = length;
  }

  reset(): void {
    this.len = 0;
  }

  /** The valid keys and values as [B, length, KV, D] tensors: views when B = 1, copies otherwise. */
  contents(): { k: Tensor; v: Tensor } {
    const { batch: B, nKvHeads: KV, headDim: D, maxSeq, len } = this;
    const row = KV * D;
    const shape = [B, len, KV, D];
    if (B === 1) return { k: new Tensor(this.k.subarray(0, len * row), shape), v: new Tensor(this.v.subarray(0, len * row), shape) };
    const k = Tensor.zeros(shape);
    const v = Tensor.zeros(shape);
    for (let b = 0; b < B; b++) {
      const src = b * maxSeq * row;
      k.data.set(this.k.subarray(src, src + len * row), b * len * row);
      v.data.set(this.v.subarray(src, src + len * row), b * len * row);
    }
    return { k, v };
  }
}

/**
 * Decode/prefill step under a KV cache: appends k, v [B, T, KV, D] (already rotated with posOffset = the cache
 * length before this call), then q [B, T, H, D] attends causally over every cached position → out [B, T, H, D].
 * T = 1 runs the decode kernel straight off the cache.
 */
export function attentionWithCache(backend: Backend, q: Tensor, k: Tensor, v: Tensor, cache: KVCache, out?: Tensor): Tensor {
  const op = 'attentionWithCache';
  attnDims(op, q.shape, k.shape, v.shape);
  const [B, T, H, D] = q.shape;
  if (k.shape[1] !== T) throw new ShapeError(op, 'q, k and v must cover the same new positions', { q: q.shape, k: k.shape });
  expectShape(op, 'k', k, [cache.batch, T, cache.nKvHeads, cache.headDim], { q: q.shape });
  const o = outputTensor(op, 'out', q.shape, out);
  cache.append(k, v);
  const KV = cache.nKvHeads;
  if (T === 1) {
    backend.attentionDecode(q.data, cache.k, cache.v, o.data, B, H, KV, D, cache.maxSeq, cache.length);
  } else {
    const c = cache.contents();
    backend.attentionForward(q.data, c.k.data, c.v.data, o.data, new Float32Array(B * H * T), B, T, cache.length, H, KV, D);
  }
  return o;
}
