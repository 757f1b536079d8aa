/**
 * NeuroLLM: a decoder-only, pre-norm Llama, run as a shard that holds any contiguous span [start, end) of its layers.
 *
 *   x = embed(ids)                                          (only the span holding layer 0: the driver)
 *   for each layer:  r = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = rmsnorm(x)
 *                    x = r + down_proj(silu(gate_proj(n2)) · up_proj(n2)),                   n2 = rmsnorm(r)
 *   logits = lm_head(rmsnorm(x))                            (only the span holding the last layer: the validator)
 *
 * A shard takes token ids (driver) or hidden states [B, T, C] and returns hidden states [B, T, C] or logits
 * [B, T, V] (validator); backward takes the gradient of its output, accumulates the gradients of its parameters and
 * returns the gradient of its input (null for the driver, whose input is token ids). So a chain of shards computes
 * exactly what one shard holding every layer computes.
 *
 * Memory, llm.c style: parameters in ONE flat Float32Array (`params`, named views via `layout`), gradients in a
 * second one with the same layout (`grads`); activations in buffers sized on first use and reused. Everything is
 * computed by the Backend's kernels; this file only sequences them, so it is deterministic whenever the backend is
 * (the same thread count gives bitwise-identical results).
 *
 * Buffers returned by forward/backward/loss belong to the shard and are overwritten by its next call: copy them
 * (`.slice()`) before keeping or transferring them.
 */
import { DECODE_LAYER_MAX_ROWS, decodeLayerScratch, type Backend, type GemmArgs, type Int8Layout } from '../tensor/backend.js';
import { decodeLayersOf } from '../tensor/decode-layers.js';
import { ShapeError, TokenRangeError } from '../tensor/errors.js';
import { int8BlockFor, int8MatrixBytes, interleaveInt8Matrix, matmulInt8, quantizeMatrix, type Int8Matrix } from '../tensor/ops/quantize.js';
import { spanHash } from './hash.js';
import { type LlamaConfig } from './config.js';
import { ModelConfigError, ModelStateError } from './errors.js';
import { initParams } from './init.js';
import { type KVCache } from './kv-cache.js';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, ParamLayout, type Span } from './layout.js';
import { spanText } from '../util/span-text.js';

/**
 * Most sequences one decodeBatch takes: the native GEMM's small-M path (M ≤ kSmallM = 8 in
 * src/tensor/native/kernels.h) computes each row of the product alone, in the order a single row would; above it the
 * blocked kernel sums in another order, so batched rows would differ from solo ones in their last bits.
 */
export const MAX_DECODE_BATCH = 8;

/** Targets equal to this do not count in the loss (PyTorch's default). */
export const IGNORE_INDEX = -100;

interface LayerViews {
  inNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  /** q, k and v as one [H·D + 2·KV·D, C] matrix, and gate and up as one [2F, C] (views of the same memory; the
   * layout stores them back to back), for the fused decode products; undefined when not adjacent. */
  qkv?: Float32Array;
  gateUp?: Float32Array;
}

/** A layer's projection matrices as int8 blocks (`--weights int8`). */
interface Int8LayerViews {
  q: Int8Matrix;
  k: Int8Matrix;
  v: Int8Matrix;
  o: Int8Matrix;
  gate: Int8Matrix;
  up: Int8Matrix;
  down: Int8Matrix;
  /** q, k, v and gate, up quantized as one matrix each (q/k/v and gate/up are row ranges of them). */
  qkv?: Int8Matrix;
  gateUp?: Int8Matrix;
  /** Block sizes of qkv, o, gateUp and down (for Backend.decodeLayer), made on first use. */
  blocks?: Int32Array;
}

/**
 * Decode products with at most this many rows run q/k/v as one product and gate/up as one (LlamaShard.layerForward):
 * one pool job instead of three or two, so that a step wakes the engine's helper threads 4 times per layer instead
 * of 7 (on 2 threads each wake-up of a helper that went to sleep between small products cost more than the helper
 * gave). Every output element is the same dot product in the same order either way (the native small-M kernels
 * never let the column split change an element's arithmetic; kSmallM = 8 there), so the logits are the same bits.
 */
const FUSED_MAX_ROWS = 8;

/** One view over adjacent matrices of the same buffer (a, then b, then c), or undefined when they are not adjacent. */
function adjacent(...ms: Float32Array[]): Float32Array | undefined {
  for (let i = 1; i < ms.length; i++) {
    if (ms[i].buffer !== ms[0].buffer || ms[i].byteOffset !== ms[i - 1].byteOffset + ms[i - 1].byteLength) return undefined;
  }
  const n = ms.reduce((a, m) => a + m.length, 0);
  return new Float32Array(ms[0].buffer, ms[0].byteOffset, n);
}

/** Splits t [N, Σ widths] by columns into outs[i] [N, widths[i]]. */
function splitColumns(t: Float32Array, N: number, outs: Float32Array[], widths: number[]): void {
  const row = widths.reduce((a, b) => a + b, 0);
  for (let n = 0; n < N; n++) {
    let o = n * row;
    for (let i = 0; i < outs.length; i++) {
      outs[i].set(t.subarray(o, o + widths[i]), n * widths[i]);
      o += widths[i];
    }
  }
}

/**
 * Rows [r0, r1) of an int8 matrix as a matrix of its own (views of the codes and scales). In the 'r16' layout r0 and
 * r1 must be multiples of 16 (or r1 the last row): packInt8 interleaves only when they are.
 */
function int8Rows(m: Int8Matrix, r0: number, r1: number): Int8Matrix {
  const nb = m.cols / m.blockSize;
  if (m.layout === 'r16' && (r0 % 16 !== 0 || (r1 % 16 !== 0 && r1 !== m.rows))) throw new ModelConfigError(`int8Rows: rows [${r0}, ${r1}) cut groups of 16`);
  return { rows: r1 - r0, cols: m.cols, blockSize: m.blockSize, q: m.q.subarray(r0 * m.cols, r1 * m.cols), scales: m.scales.subarray(r0 * nb, r1 * nb), ...(m.layout !== undefined ? { layout: m.layout } : {}) };
}

/**
 * How a shard holds its weights. 'f32': everything float32 (training and inference). 'int8' (inference only): the
 * seven projection matrices of every layer (q, k, v, o, gate, up, down) as int8 with one float32 scale per 32
 * weights along K (GGUF q8_0's block; 16 where 32 does not divide K, as nano's FFN width 688), decoded on the fly by the GEMM kernels; norms, the embedding and the LM head
 * stay float32 (the embedding is a row lookup, not a GEMM, and the head decides the sampled token: keeping it exact
 * keeps greedy output closest to f32). The float32 buffer is dropped after quantizing; the span hash stays that of
 * the float32 weights it was built from.
 */
export type WeightFormat = 'f32' | 'int8';

/** Saved activations of one layer for a batch of N = B·T rows. */
interface LayerActs {
  h1: Float32Array; // [N, C] rmsnorm(x)
  rstd1: Float32Array; // [N]
  q: Float32Array; // [B, T, H, D] after RoPE
  k: Float32Array; // [B, T, KV, D] after RoPE
  v: Float32Array; // [B, T, KV, D]
  att: Float32Array; // [B, T, H, D] attention output (before o_proj)
  lse: Float32Array; // [B, H, T]
  r: Float32Array; // [N, C] residual after attention
  h2: Float32Array; // [N, C] rmsnorm(r)
  rstd2: Float32Array; // [N]
  gate: Float32Array; // [N, F]
  up: Float32Array; // [N, F]
  act: Float32Array; // [N, F] silu(gate)·up
}

export interface ShardOptions {
  config: LlamaConfig;
  backend: Backend;
  /** Layers [start, end); default the whole model. */
  span?: Span;
  /** Adopt this flat buffer as the parameters (length layout.size); default a fresh one, initialised with `seed`. */
  params?: Float32Array;
  /** Seed of the initialisation when `params` is not given (default 0). */
  seed?: number;
  /** Weight format (default 'f32'); 'int8' quantizes `params` (or the initialisation) and keeps no float32 copy. */
  weights?: WeightFormat;
}

export interface ForwardOptions {
  /** Decode incrementally through this cache: positions start at cache.length. No backward after such a forward. */
  cache?: KVCache;
  /** Position of the first token when no cache is used (default 0). */
  posOffset?: number;
}

export interface LossResult {
  /** Mean cross-entropy (natural log) over the counted positions; 0 when none counts. */
  loss: number;
  /** Positions whose target is not IGNORE_INDEX. */
  count: number;
  /** Gradient of loss·gradScale/… with respect to the logits [N, V] (null when not requested). */
  dlogits: Float32Array | null;
}

export class LlamaShard {
  readonly config: LlamaConfig;
  readonly backend: Backend;
  readonly layout: ParamLayout;
  readonly span: Span;
  /** Every parameter of the span, in layout order (empty for an int8 shard: see WeightFormat). */
  readonly params: Float32Array;
  /** Gradients, same layout; accumulated by backward, cleared by zeroGrad (empty for an int8 shard). */
  readonly grads: Float32Array;
  readonly weights: WeightFormat;
  /** int8 only: the span hash of the float32 weights the shard was quantized from. */
  private readonly f32Hash: string | undefined;
  /** int8 only: the quantized matrices of each layer. */
  private readonly qw: Int8LayerViews[] = [];
  /** Output of the fused q/k/v and gate/up decode products (see FUSED_MAX_ROWS). */
  private fused: Float32Array = new Float32Array(0);
  /** Scratch of Backend.decodeLayer (see decodeLayerScratch). */
  private decodeWs: Float32Array = new Float32Array(0);
  /** Positions and cache lengths of a decodeLayer call's rows. */
  private readonly decodePos = new Int32Array(DECODE_LAYER_MAX_ROWS);
  private readonly decodeMaxS = new Int32Array(DECODE_LAYER_MAX_ROWS);
  /**
   * Whether a decode step runs all of the span's layers in one backend call where the backend has it (decodeSpan);
   * false: one call per layer (Backend.decodeLayer), the path before session 23. For A/B runs and the test that
   * the two agree; NEUROSHARD_DECODE_LAYERS=0 sets it off for every shard.
   */
  decodeOneCall = process.env.NEUROSHARD_DECODE_LAYERS !== '0';

  private readonly w: LayerViews[] = [];
  private readonly g: LayerViews[] = [];
  private readonly embedW: Float32Array | null = null;
  private readonly embedG: Float32Array | null = null;
  private readonly normW: Float32Array | null = null;
  private readonly normG: Float32Array | null = null;
  private readonly headW: Float32Array | null = null;
  private readonly headG: Float32Array | null = null;

  // activation buffers, allocated for `cap` rows
  private cap = 0;
  private capB = 0;
  private res: Float32Array[] = []; // res[l]: input of layer l of the span, res[nL]: span output [N, C]
  private acts: LayerActs[] = [];
  private ids: Int32Array = new Int32Array(0);
  private xf: Float32Array = new Float32Array(0); // [N, C] final rmsnorm
  private rstdf: Float32Array = new Float32Array(0); // [N]
  private logits: Float32Array = new Float32Array(0); // [N, V]
  private dlogits: Float32Array = new Float32Array(0); // [N, V]
  // backward scratch
  private dres: Float32Array = new Float32Array(0);
  private dh: Float32Array = new Float32Array(0);
  private dq: Float32Array = new Float32Array(0);
  private dk: Float32Array = new Float32Array(0);
  private dv: Float32Array = new Float32Array(0);
  private datt: Float32Array = new Float32Array(0);
  private dact: Float32Array = new Float32Array(0);
  private dgate: Float32Array = new Float32Array(0);
  private dup: Float32Array = new Float32Array(0);

  /** Shape and position of the training forward that backward() will consume; null when none waits. */
  private pending: { B: number; T: number; pos: number } | null = null;
  /** Rows of the last forward with a head (loss() reads its logits). */
  private lastLogits: { N: number } | null = null;

  constructor(opts: ShardOptions) {
    this.config = opts.config;
    this.backend = opts.backend;
    this.layout = new ParamLayout(opts.config, opts.span);
    this.span = this.layout.span;
    this.weights = opts.weights ?? 'f32';
    if (this.weights !== 'f32' && this.weights !== 'int8') throw new ModelConfigError(`weights must be f32 or int8, got ${String(this.weights)}`);
    let params: Float32Array;
    if (opts.params !== undefined) {
      if (opts.params.length !== this.layout.size) {
        throw new ModelConfigError(`params buffer has ${opts.params.length} elements; span ${spanText(this.span)} needs ${this.layout.size}`);
      }
      params = opts.params;
    } else {
      params = allocate(this.layout.size, 'parameters');
      initParams(this.layout, params, opts.seed ?? 0);
    }
    if (this.weights === 'int8') {
      const c = this.config;
      for (const k of [c.hidden_size, c.num_attention_heads * c.head_dim, c.intermediate_size]) {
        if (int8BlockFor(k) === undefined) throw new ModelConfigError(`int8 weights need every GEMM's K to be a multiple of 16; this config has ${k}`);
      }
      this.f32Hash = spanHash(this.layout, params);
      this.params = new Float32Array(0);
      this.grads = new Float32Array(0);
      this.quantizeFrom(params);
      return;
    }
    this.f32Hash = undefined;
    this.params = params;
    // A decode step streams every weight once per token: 2 MiB pages spare the TLB a miss per 4 KiB (12x768 on 2
    // threads: 6.7 → 6.0 ms per step, docs/LIMITS.md). Best effort, contents unchanged.
    this.backend.adviseHugePages(params);
    this.grads = allocate(this.layout.size, 'gradients');
    const views = (flat: Float32Array): LayerViews[] => {
      const out: LayerViews[] = [];
      for (let i = this.span.start; i < this.span.end; i++) {
        const p = `model.layers.${i}.`;
        const v = (n: string): Float32Array => this.layout.view(flat, p + n);
        out.push({
          inNorm: v('input_layernorm.weight'),
          q: v('self_attn.q_proj.weight'),
          k: v('self_attn.k_proj.weight'),
          v: v('self_attn.v_proj.weight'),
          o: v('self_attn.o_proj.weight'),
          postNorm: v('post_attention_layernorm.weight'),
          gate: v('mlp.gate_proj.weight'),
          up: v('mlp.up_proj.weight'),
          down: v('mlp.down_proj.weight'),
        });
        const l = out[out.length - 1];
        l.qkv = adjacent(l.q, l.k, l.v);
        l.gateUp = adjacent(l.gate, l.up);
      }
      return out;
    };
    this.w = views(this.params);
    this.g = views(this.grads);
    const L = this.layout;
    this.embedW = L.hasEmbed ? L.view(this.params, EMBED_NAME) : null;
    this.embedG = L.hasEmbed ? L.view(this.grads, EMBED_NAME) : null;
    this.normW = L.hasHead ? L.view(this.params, FINAL_NORM_NAME) : null;
    this.normG = L.hasHead ? L.view(this.grads, FINAL_NORM_NAME) : null;
    const tied = this.config.tie_word_embeddings;
    this.headW = L.hasHead ? (tied ? this.embedW : L.view(this.params, LM_HEAD_NAME)) : null;
    this.headG = L.hasHead ? (tied ? this.embedG : L.view(this.grads, LM_HEAD_NAME)) : null;
  }

  /** int8: quantizes the projection matrices of `f32` and copies the rest (the float32 buffer is not kept). */
  private quantizeFrom(f32: Float32Array): void {
    const c = this.config;
    const C = c.hidden_size;
    const HD = c.num_attention_heads * c.head_dim;
    const KVD = c.num_key_value_heads * c.head_dim;
    const F = c.intermediate_size;
    const L = this.layout;
    const be = this.backend;
    const none = new Float32Array(0);
    const w = this.w as LayerViews[];
    for (let i = this.span.start; i < this.span.end; i++) {
      const p = `model.layers.${i}.`;
      const v = (n: string): Float32Array => L.view(f32, p + n);
      // W [rows = outputs, cols = inputs]: blocks run along K, the dimension each GEMM reduces over. q/k/v and
      // gate/up share K, so quantizing them as one matrix gives each the codes and scales it gets alone (a block
      // never straddles two rows); they are then row ranges of the fused matrices.
      const qkvF = adjacent(v('self_attn.q_proj.weight'), v('self_attn.k_proj.weight'), v('self_attn.v_proj.weight'));
      const guF = adjacent(v('mlp.gate_proj.weight'), v('mlp.up_proj.weight'));
      const qkv = qkvF === undefined ? undefined : quantizeMatrix(be, qkvF, HD + 2 * KVD, C);
      const gateUp = guF === undefined ? undefined : quantizeMatrix(be, guF, 2 * F, C);
      this.qw.push({
        q: qkv !== undefined ? int8Rows(qkv, 0, HD) : quantizeMatrix(be, v('self_attn.q_proj.weight'), HD, C),
        k: qkv !== undefined ? int8Rows(qkv, HD, HD + KVD) : quantizeMatrix(be, v('self_attn.k_proj.weight'), KVD, C),
        v: qkv !== undefined ? int8Rows(qkv, HD + KVD, HD + 2 * KVD) : quantizeMatrix(be, v('self_attn.v_proj.weight'), KVD, C),
        o: quantizeMatrix(be, v('self_attn.o_proj.weight'), C, HD),
        gate: gateUp !== undefined ? int8Rows(gateUp, 0, F) : quantizeMatrix(be, v('mlp.gate_proj.weight'), F, C),
        up: gateUp !== undefined ? int8Rows(gateUp, F, 2 * F) : quantizeMatrix(be, v('mlp.up_proj.weight'), F, C),
        down: quantizeMatrix(be, v('mlp.down_proj.weight'), C, F),
        qkv,
        gateUp,
      });
      w.push({
        inNorm: v('input_layernorm.weight').slice(),
        q: none,
        k: none,
        v: none,
        o: none,
        postNorm: v('post_attention_layernorm.weight').slice(),
        gate: none,
        up: none,
        down: none,
      });
    }
    this.packInt8();
    const self = this as unknown as { embedW: Float32Array | null; normW: Float32Array | null; headW: Float32Array | null };
    // The float32 embedding and head are copied onto memory asked for as 2 MiB pages before it is touched (as the
    // float32 shard's params and the int8 layers): the head is streamed every token (12.6 of an int8 12x768 step's
    // 101.7 MB), and a plain slice() left it on 4 KiB pages (session 22: AnonHugePages grew 82 of 100 MB).
    const copy = (x: Float32Array): Float32Array => {
      const y = allocate(x.length, 'int8 shard float32 weights');
      be.adviseHugePages(y);
      y.set(x);
      return y;
    };
    self.embedW = L.hasEmbed ? copy(L.view(f32, EMBED_NAME)) : null;
    self.normW = L.hasHead ? L.view(f32, FINAL_NORM_NAME).slice() : null;
    self.headW = L.hasHead ? (c.tie_word_embeddings ? self.embedW : copy(L.view(f32, LM_HEAD_NAME))) : null;
  }

  /**
   * int8: moves every layer's codes and scales into one buffer, in the order a decode step reads them, and asks for
   * 2 MiB pages on it (as the float32 weights get in the constructor): quantizeMatrix gave each matrix its own 1-3 MB
   * allocation on 4 KiB pages, a TLB miss per 4 KiB streamed. q/k/v and gate/up stay row ranges of their fused
   * matrices. The copy is also where the codes and scales take the 'r16' layout (groups of 16 rows, backend.ts
   * Int8Layout: the AVX-512 VNNI decode kernel then needs no horizontal sums; every other reader takes it too, with
   * the same bits) when the backend reads it fastest (`Backend.int8Layout`: the AVX2 and portable kernels read it a
   * gathered row at a time, several times slower) and every row range starts on a multiple of 16 (every preset:
   * head dims of 64, FFN widths multiples of 16); otherwise the matrices stay row-major. Same bytes either way: no
   * second copy is kept.
   */
  private packInt8(): void {
    const mats: Int8Matrix[] = [];
    for (const l of this.qw) {
      if (l.qkv !== undefined) mats.push(l.qkv);
      else mats.push(l.q, l.k, l.v);
      mats.push(l.o);
      if (l.gateUp !== undefined) mats.push(l.gateUp);
      else mats.push(l.gate, l.up);
      mats.push(l.down);
    }
    const up64 = (n: number): number => Math.ceil(n / 64) * 64;
    let bytes = 0;
    for (const m of mats) bytes += up64(m.q.byteLength) + up64(m.scales.byteLength);
    let buf: ArrayBuffer;
    try {
      buf = new ArrayBuffer(bytes);
    } catch (e) {
      throw new ModelConfigError(`cannot allocate ${bytes} bytes of int8 weights (${(e as Error).message})`, { bytes });
    }
    // Before the copy: the pages are then faulted in as 2 MiB pages, not collapsed afterwards.
    this.backend.adviseHugePages(new Int8Array(buf));
    const l0 = this.qw[0];
    const r16 = (this.backend.int8Layout?.() ?? 'rows') === 'r16' && (l0 === undefined || [l0.q.rows, l0.k.rows, l0.gate.rows].every((r) => r % 16 === 0));
    let off = 0;
    const moved = new Map<Int8Matrix, Int8Matrix>();
    for (const m of mats) {
      const q = new Int8Array(buf, off, m.q.length);
      off += up64(m.q.byteLength);
      const scales = new Float32Array(buf, off, m.scales.length);
      off += up64(m.scales.byteLength);
      if (r16) {
        moved.set(m, interleaveInt8Matrix(m, { q, scales }));
      } else {
        q.set(m.q);
        scales.set(m.scales);
        moved.set(m, { ...m, q, scales });
      }
    }
    for (let i = 0; i < this.qw.length; i++) {
      const l = this.qw[i];
      const qkv = l.qkv !== undefined ? moved.get(l.qkv)! : undefined;
      const gateUp = l.gateUp !== undefined ? moved.get(l.gateUp)! : undefined;
      const HD = l.q.rows;
      const KVD = l.k.rows;
      const F = l.gate.rows;
      this.qw[i] = {
        q: qkv !== undefined ? int8Rows(qkv, 0, HD) : moved.get(l.q)!,
        k: qkv !== undefined ? int8Rows(qkv, HD, HD + KVD) : moved.get(l.k)!,
        v: qkv !== undefined ? int8Rows(qkv, HD + KVD, HD + 2 * KVD) : moved.get(l.v)!,
        o: moved.get(l.o)!,
        gate: gateUp !== undefined ? int8Rows(gateUp, 0, F) : moved.get(l.gate)!,
        up: gateUp !== undefined ? int8Rows(gateUp, F, 2 * F) : moved.get(l.up)!,
        down: moved.get(l.down)!,
        qkv,
        gateUp,
      };
    }
  }

  /**
   * The span hash peers compare (model/hash.ts): of the float32 parameters; for an int8 shard, of the float32
   * weights it was quantized from.
   */
  hash(): string {
    return this.f32Hash ?? spanHash(this.layout, this.params);
  }

  /** Bytes the shard's weights take in memory (int8 codes and scales, or float32). */
  get weightBytes(): number {
    if (this.weights === 'f32') return this.params.byteLength;
    let b = 0;
    for (const l of this.qw) for (const m of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) b += int8MatrixBytes(m.rows, m.cols, m.blockSize);
    for (const l of this.w) b += l.inNorm.byteLength + l.postNorm.byteLength;
    const tiedCopy = this.headW !== null && this.headW === this.embedW;
    return b + (this.embedW?.byteLength ?? 0) + (this.normW?.byteLength ?? 0) + (tiedCopy ? 0 : (this.headW?.byteLength ?? 0));
  }

  /**
   * The weight buffers a batch-1 decode step of this shard reads, each once, in the order it reads them: per layer
   * the input norm, q/k/v (fused when adjacent), o, the post-attention norm, gate/up (fused when adjacent), down
   * (int8: codes then scales of each), then the final norm and the head. Not the embedding (one row a step) nor the
   * KV cache (the session's). Views of the shard's own memory, not copies: the bench's read bound reads exactly
   * these bytes (src/compute/llamacpp/bench.ts, session 22), so that it does not depend on where the host placed some
   * other buffer.
   */
  decodeReadArrays(): (Float32Array | Int8Array)[] {
    const out: (Float32Array | Int8Array)[] = [];
    for (let i = 0; i < this.w.length; i++) {
      const l = this.w[i];
      out.push(l.inNorm);
      if (this.weights === 'int8') {
        const m = this.qw[i];
        const mats = [...(m.qkv !== undefined ? [m.qkv] : [m.q, m.k, m.v]), m.o];
        for (const x of mats) out.push(x.q, x.scales);
        out.push(l.postNorm);
        for (const x of [...(m.gateUp !== undefined ? [m.gateUp] : [m.gate, m.up]), m.down]) out.push(x.q, x.scales);
      } else {
        out.push(...(l.qkv !== undefined ? [l.qkv] : [l.q, l.k, l.v]), l.o, l.postNorm, ...(l.gateUp !== undefined ? [l.gateUp] : [l.gate, l.up]), l.down);
      }
    }
    if (this.normW !== null) out.push(this.normW);
    if (this.headW !== null) out.push(this.headW);
    return out;
  }

  /**
   * decodeReadArrays sorted by buffer and offset and merged where they lie back to back in one buffer (at most `maxGap`
   * bytes apart: the int8 pack's 64-byte padding), as byte views: the same bytes in fewer, longer ranges (12x768: f32
   * 74 arrays → 1 range of 324.1 MB; int8 122 → the 88.9 MB pack, the 12.6 MB head and the small norms), which a
   * reader streams faster than many short ones (each start restarts the hardware prefetcher). The bench's read bound
   * reads these (session 22): the fastest read of the step's bytes.
   */
  decodeReadRanges(maxGap = 64): Uint8Array[] {
    const out: Uint8Array[] = [];
    let cur: { buf: ArrayBufferLike; start: number; end: number } | undefined;
    const flush = (): void => {
      if (cur !== undefined) out.push(new Uint8Array(cur.buf, cur.start, cur.end - cur.start));
      cur = undefined;
    };
    // by buffer, then by offset: the order a step reads them in does not matter to a bound, the ranges' lengths do
    const bufs = new Map<ArrayBufferLike, number>();
    const arrays = this.decodeReadArrays().map((a) => {
      if (!bufs.has(a.buffer)) bufs.set(a.buffer, bufs.size);
      return a;
    });
    arrays.sort((x, y) => bufs.get(x.buffer)! - bufs.get(y.buffer)! || x.byteOffset - y.byteOffset);
    for (const a of arrays) {
      const start = a.byteOffset;
      const end = a.byteOffset + a.byteLength;
      if (cur !== undefined && cur.buf === a.buffer && start >= cur.end && start - cur.end <= maxGap) cur.end = end;
      else {
        flush();
        cur = { buf: a.buffer, start, end };
      }
    }
    flush();
    return out;
  }

  /** An int8 copy of this float32 shard (same config and span); this shard is left as it is. */
  quantized(): LlamaShard {
    if (this.weights === 'int8') return this;
    return new LlamaShard({ config: this.config, backend: this.backend, span: { ...this.span }, params: this.params, weights: 'int8' });
  }

  private requireF32(what: string): void {
    if (this.weights !== 'f32') throw new ModelStateError(`${what}: this shard holds int8 weights (inference only; no float32 parameters or gradients)`);
  }

  get hasEmbed(): boolean {
    return this.layout.hasEmbed;
  }

  get hasHead(): boolean {
    return this.layout.hasHead;
  }

  /** Parameter names with their offsets, sizes and shapes (the layout's entries). */
  get entries(): ParamLayout['entries'] {
    return this.layout.entries;
  }

  /** A named view of the parameters (writes go into the flat buffer). */
  param(name: string): Float32Array {
    this.requireF32('model.param');
    return this.layout.view(this.params, name);
  }

  /** A named view of the gradients. */
  grad(name: string): Float32Array {
    this.requireF32('model.grad');
    return this.layout.view(this.grads, name);
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  /** Elements the output of forward() has per row: V for the validator, C otherwise. */
  get outputWidth(): number {
    return this.hasHead ? this.config.vocab_size : this.config.hidden_size;
  }

  // ---- forward -----------------------------------------------------------------------------------------------

  /**
   * Runs the span on B sequences of T positions. `input` is ids [B, T] (Int32Array) for the driver, hidden states
   * [B, T, C] otherwise. Returns logits [B, T, V] when the span holds the head, hidden states [B, T, C] otherwise.
   */
  forward(input: Int32Array | Float32Array, B: number, T: number, opts: ForwardOptions = {}): Float32Array {
    const c = this.config;
    const C = c.hidden_size;
    if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) throw new ShapeError('model.forward', `B=${B}, T=${T} must be positive integers`);
    const N = B * T;
    const cache = opts.cache;
    let pos = opts.posOffset ?? 0;
    if (cache !== undefined) {
      if (opts.posOffset !== undefined && opts.posOffset !== cache.length) {
        throw new ModelStateError(`model.forward: posOffset ${opts.posOffset} disagrees with the cache length ${cache.length}`);
      }
      if (cache.span.start !== this.span.start || cache.span.end !== this.span.end || cache.config !== this.config) {
        throw new ModelStateError(`model.forward: the KV cache was made for another span or config`);
      }
      if (cache.batch !== B) throw new ShapeError('model.forward', `the KV cache holds batch ${cache.batch}, input has batch ${B}`);
      cache.checkRoom(T);
      pos = cache.length;
    } else if (!Number.isInteger(pos) || pos < 0) {
      throw new ShapeError('model.forward', `posOffset ${pos} is not a non-negative integer`);
    }
    if (pos + T > c.max_position_embeddings) {
      throw new ShapeError('model.forward', `positions ${pos}..${pos + T - 1} exceed max_position_embeddings=${c.max_position_embeddings}`, { input: [B, T] });
    }
    this.ensure(N, B);
    const be = this.backend;

    if (this.hasEmbed) {
      if (!(input instanceof Int32Array)) throw new ModelStateError('model.forward: the span holds the embedding and takes token ids (Int32Array)');
      if (input.length !== N) throw new ShapeError('model.forward', `ids have ${input.length} elements, expected B·T`, { ids: [input.length], expected: [B, T] });
      const V = c.vocab_size;
      for (let i = 0; i < N; i++) {
        const id = input[i];
        if (id < 0 || id >= V) throw new TokenRangeError('model.forward', id, i, V, { ids: [B, T] });
      }
      this.ids.set(input);
      // res0[N, C] = embed[ids]
      be.embeddingForward(this.embedW!, input, this.res[0], N, C);
    } else {
      if (!(input instanceof Float32Array)) throw new ModelStateError('model.forward: a span without the embedding takes hidden states (Float32Array)');
      if (input.length !== N * C) throw new ShapeError('model.forward', `hidden states have ${input.length} elements`, { hidden: [input.length], expected: [B, T, C] });
      this.res[0].set(input);
    }

    const spanRun = B === 1 && T === 1 && cache !== undefined ? this.decodeSpan([cache]) : 0;
    if (spanRun === 0) for (let l = 0; l < this.w.length; l++) this.layerForward(l, B, T, pos, cache);
    if (cache !== undefined) cache.advance(T);
    this.pending = cache === undefined ? { B, T, pos } : null;

    const x = this.res[this.w.length].subarray(0, N * C);
    if (!this.hasHead) {
      this.lastLogits = null;
      return x;
    }
    const V = c.vocab_size;
    // xf[N, C] = rmsnorm(x); logits[N, V] = xf · lm_headᵀ (already done in decodeSpan's job: spanRun 2)
    if (spanRun !== 2) {
      be.rmsnormForward(x, this.normW!, this.xf, this.rstdf, N, C, c.rms_norm_eps);
      be.gemm(this.xf, this.headW!, this.logits, gemmArgs(false, true, N, V, C, 0));
    }
    this.lastLogits = { N };
    return this.logits.subarray(0, N * V);
  }

  /**
   * One decode step for B independent sequences at once (continuous batching): row b is the next token of the
   * sequence cached in `caches[b]` (each its own batch-1 cache, at its own position). `input` is ids [B] on the
   * driver, hidden states [B, C] otherwise; returns logits [B, V] (validator) or hidden states [B, C], and advances
   * every cache by one. Row b computes the bits a batch-1 forward of that sequence alone computes as long as the
   * backend's GEMM treats each row of A alone (the reference backend always; the native one for M ≤ kSmallM = 8:
   * MAX_DECODE_BATCH), since everything else (norms, RoPE, attention, SwiGLU) is per row.
   */
  decodeBatch(input: Int32Array | Float32Array, caches: readonly KVCache[]): Float32Array {
    const c = this.config;
    const C = c.hidden_size;
    const B = caches.length;
    if (B < 1 || B > MAX_DECODE_BATCH) throw new ShapeError('model.decodeBatch', `${B} sequences; 1..${MAX_DECODE_BATCH} per batch`);
    if (new Set(caches).size !== B) throw new ModelStateError('model.decodeBatch: a cache appears twice in one batch');
    for (const cache of caches) {
      if (cache.span.start !== this.span.start || cache.span.end !== this.span.end || cache.config !== this.config) {
        throw new ModelStateError(`model.decodeBatch: a KV cache was made for another span or config`);
      }
      if (cache.batch !== 1) throw new ShapeError('model.decodeBatch', `each sequence's KV cache holds batch 1, not ${cache.batch}`);
      cache.checkRoom(1);
      if (cache.length + 1 > c.max_position_embeddings) throw new ShapeError('model.decodeBatch', `position ${cache.length} exceeds max_position_embeddings=${c.max_position_embeddings}`);
    }
    this.ensure(B, B);
    const be = this.backend;
    if (this.hasEmbed) {
      if (!(input instanceof Int32Array)) throw new ModelStateError('model.decodeBatch: the span holds the embedding and takes token ids (Int32Array)');
      if (input.length !== B) throw new ShapeError('model.decodeBatch', `ids have ${input.length} elements, expected ${B}`, { ids: [input.length], expected: [B] });
      const V = c.vocab_size;
      for (let i = 0; i < B; i++) if (input[i] < 0 || input[i] >= V) throw new TokenRangeError('model.decodeBatch', input[i], i, V, { ids: [B] });
      this.ids.set(input);
      be.embeddingForward(this.embedW!, input, this.res[0], B, C); // res0[B, C] = embed[ids]
    } else {
      if (!(input instanceof Float32Array)) throw new ModelStateError('model.decodeBatch: a span without the embedding takes hidden states (Float32Array)');
      if (input.length !== B * C) throw new ShapeError('model.decodeBatch', `hidden states have ${input.length} elements`, { hidden: [input.length], expected: [B, C] });
      this.res[0].set(input);
    }
    const spanRun = B <= DECODE_LAYER_MAX_ROWS ? this.decodeSpan(caches) : 0;
    if (spanRun === 0) for (let l = 0; l < this.w.length; l++) this.layerForward(l, B, 1, 0, undefined, caches);
    for (const cache of caches) cache.advance(1);
    this.pending = null;
    const x = this.res[this.w.length].subarray(0, B * C);
    if (!this.hasHead) {
      this.lastLogits = null;
      return x;
    }
    const V = c.vocab_size;
    // xf[B, C] = rmsnorm(x); logits[B, V] = xf · lm_headᵀ (already done in decodeSpan's job: spanRun 2)
    if (spanRun !== 2) {
      be.rmsnormForward(x, this.normW!, this.xf, this.rstdf, B, C, c.rms_norm_eps);
      be.gemm(this.xf, this.headW!, this.logits, gemmArgs(false, true, B, V, C, 0));
    }
    this.lastLogits = { N: B };
    return this.logits.subarray(0, B * V);
  }

  /**
   * One layer over N = B·T rows. With `rows` (decodeBatch: T = 1), row b is its own sequence cached in rows[b] at
   * position rows[b].length; otherwise all B sequences share `pos` and `cache`.
   */
  private layerForward(l: number, B: number, T: number, pos: number, cache: KVCache | undefined, rows?: readonly KVCache[]): void {
    const c = this.config;
    const be = this.backend;
    const N = B * T;
    const C = c.hidden_size;
    const H = c.num_attention_heads;
    const KV = c.num_key_value_heads;
    const D = c.head_dim;
    const F = c.intermediate_size;
    const w = this.w[l];
    const q8 = this.qw[l] as Int8LayerViews | undefined;
    const a = this.acts[l];
    const x = this.res[l];
    const out = this.res[l + 1];

    // A decode step (one row per sequence, each with its cache: decodeBatch of up to DECODE_LAYER_MAX_ROWS
    // sequences, or a batch-1 forward with a cache): the whole layer in one backend call where it has one.
    if (be.decodeLayer !== undefined) {
      const seqs = rows !== undefined ? (N <= DECODE_LAYER_MAX_ROWS ? rows : undefined) : N === 1 && T === 1 && cache !== undefined ? [cache] : undefined;
      if (seqs !== undefined && this.decodeRows(l, x, out, seqs)) return;
    }

    // attention block
    be.rmsnormForward(x, w.inNorm, a.h1, a.rstd1, N, C, c.rms_norm_eps);
    const fuse = N <= FUSED_MAX_ROWS;
    if (fuse && (q8 !== undefined ? q8.qkv !== undefined : w.qkv !== undefined)) {
      // [q | k | v][N, H·D + 2·KV·D] = h1 · [Wq; Wk; Wv]ᵀ in one product (FUSED_MAX_ROWS), then split by rows
      const HD = H * D;
      const KVD = KV * D;
      const t = this.fusedOut(N * (HD + 2 * KVD));
      this.linear(a.h1, w.qkv ?? w.q, q8?.qkv, t, N, HD + 2 * KVD, C, 0);
      splitColumns(t, N, [a.q, a.k, a.v], [HD, KVD, KVD]);
    } else {
      this.linear(a.h1, w.q, q8?.q, a.q, N, H * D, C, 0); // q[N, H·D] = h1 · Wqᵀ
      this.linear(a.h1, w.k, q8?.k, a.k, N, KV * D, C, 0); // k[N, KV·D]
      this.linear(a.h1, w.v, q8?.v, a.v, N, KV * D, C, 0); // v[N, KV·D]
    }
    if (rows !== undefined) {
      this.attendRows(l, B, rows); // RoPE, cache writes and attention, row by row
    } else {
      be.rope(a.q, B, T, H, D, pos, c.rope_theta, false);
      be.rope(a.k, B, T, KV, D, pos, c.rope_theta, false);
    }
    if (rows !== undefined) {
      // att[B, H·D] is written
    } else if (cache === undefined) {
      be.attentionForward(a.q, a.k, a.v, a.att, a.lse, B, T, T, H, KV, D);
    } else {
      const li = l;
      const kc = cache.k[li];
      const vc = cache.v[li];
      const maxS = cache.maxLen;
      const row = KV * D;
      // write the new keys/values at positions pos..pos+T-1 of each sequence: cache[b, pos + t] = k[b, t]
      for (let b = 0; b < B; b++) {
        kc.set(a.k.subarray(b * T * row, (b + 1) * T * row), (b * maxS + pos) * row);
        vc.set(a.v.subarray(b * T * row, (b + 1) * T * row), (b * maxS + pos) * row);
      }
      const S = pos + T;
      if (T === 1) {
        be.attentionDecode(a.q, kc, vc, a.att, B, H, KV, D, maxS, S);
      } else {
        // prefill: queries at positions pos..S-1 attend to cached keys 0..S-1, one sequence at a time (the cache
        // rows of a sequence are contiguous, its first S positions are a dense [S, KV, D] block)
        const qs = T * H * D;
        for (let b = 0; b < B; b++) {
          const ks = kc.subarray(b * maxS * row, (b * maxS + S) * row);
          const vs = vc.subarray(b * maxS * row, (b * maxS + S) * row);
          be.attentionForward(
            a.q.subarray(b * qs, (b + 1) * qs),
            ks,
            vs,
            a.att.subarray(b * qs, (b + 1) * qs),
            a.lse.subarray(b * H * T, (b + 1) * H * T),
            1,
            T,
            S,
            H,
            KV,
            D,
          );
        }
      }
    }
    // r[N, C] = x + att · Woᵀ
    a.r.set(x.subarray(0, N * C));
    this.linear(a.att, w.o, q8?.o, a.r, N, C, H * D, 1);

    // MLP block
    be.rmsnormForward(a.r, w.postNorm, a.h2, a.rstd2, N, C, c.rms_norm_eps);
    if (fuse && (q8 !== undefined ? q8.gateUp !== undefined : w.gateUp !== undefined)) {
      const t = this.fusedOut(N * 2 * F); // [gate | up][N, 2F]
      this.linear(a.h2, w.gateUp ?? w.gate, q8?.gateUp, t, N, 2 * F, C, 0);
      splitColumns(t, N, [a.gate, a.up], [F, F]);
    } else {
      this.linear(a.h2, w.gate, q8?.gate, a.gate, N, F, C, 0); // gate[N, F]
      this.linear(a.h2, w.up, q8?.up, a.up, N, F, C, 0); // up[N, F]
    }
    be.swigluForward(a.gate, a.up, a.act, N * F);
    // out[N, C] = r + act · Wdownᵀ
    out.set(a.r.subarray(0, N * C));
    this.linear(a.act, w.down, q8?.down, out, N, C, F, 1);
  }

  /**
   * Layer l for B = caches.length rows, row b at the next position of caches[b], through Backend.decodeLayer:
   * x [B, C] → out [B, C], k/v written into the caches. Same kernels on the same data as the op-by-op path below,
   * so the same bits; the layer's activations (this.acts) are not written (a cached forward has no backward). False,
   * doing nothing, when q/k/v or gate/up are not one matrix (the native call takes them fused).
   */
  private decodeRows(l: number, x: Float32Array, out: Float32Array, caches: readonly KVCache[]): boolean {
    const c = this.config;
    const w = this.w[l];
    const q8 = this.qw[l] as Int8LayerViews | undefined;
    const qkv = q8 !== undefined ? q8.qkv : w.qkv;
    const gateUp = q8 !== undefined ? q8.gateUp : w.gateUp;
    if (qkv === undefined || gateUp === undefined) return false;
    const B = caches.length;
    const H = c.num_attention_heads;
    const KV = c.num_key_value_heads;
    const D = c.head_dim;
    const F = c.intermediate_size;
    const C = c.hidden_size;
    const n = decodeLayerScratch(B, C, H, KV, D, F);
    if (this.decodeWs.length < n) this.decodeWs = allocate(n, 'activations');
    const pos = this.decodePos;
    const maxS = this.decodeMaxS;
    const kc: Float32Array[] = [];
    const vc: Float32Array[] = [];
    for (let b = 0; b < B; b++) {
      pos[b] = caches[b].length;
      maxS[b] = caches[b].maxLen;
      kc.push(caches[b].k[l]);
      vc.push(caches[b].v[l]);
    }
    const mats = q8 !== undefined ? [q8.qkv!, q8.o, q8.gateUp!, q8.down] : null;
    this.backend.decodeLayer!({
      B,
      x,
      out,
      inNorm: w.inNorm,
      postNorm: w.postNorm,
      qkv: mats !== null ? mats[0].q : (qkv as Float32Array),
      o: mats !== null ? mats[1].q : w.o,
      gateUp: mats !== null ? mats[2].q : (gateUp as Float32Array),
      down: mats !== null ? mats[3].q : w.down,
      scales: mats !== null ? [mats[0].scales, mats[1].scales, mats[2].scales, mats[3].scales] : null,
      kCache: kc,
      vCache: vc,
      ws: this.decodeWs,
      C,
      H,
      KV,
      D,
      F,
      pos,
      maxS,
      blockSizes: mats !== null ? (q8!.blocks ??= Int32Array.from(mats, (m) => m.blockSize)) : null,
      ...(mats !== null ? { int8Layout: mats[0].layout ?? 'rows' } : {}),
      eps: c.rms_norm_eps,
      theta: c.rope_theta,
    });
    return true;
  }

  /**
   * All of the span's layers of a decode step (row b at the next position of caches[b]) in one backend call
   * (Backend decodeLayers, tensor/decode-layers.ts): res[0] → res[L], k/v written into the caches. The same tasks in
   * the same order as L decodeRows calls, so the same bits. With the head, the same job ends with the final norm
   * into xf and the logits (the bits of rmsnormForward and gemm for ≤ 8 rows): returns 2. Returns 1 when it ran the
   * layers only (no head), and 0, doing nothing, where the backend lacks the call, `decodeOneCall` is off, or a
   * layer's q/k/v or gate/up are not one matrix (then the per-layer path runs).
   */
  private decodeSpan(caches: readonly KVCache[]): 0 | 1 | 2 {
    const L = this.w.length;
    if (!this.decodeOneCall || L === 0 || this.backend.decodeLayer === undefined) return 0;
    const call = decodeLayersOf(this.backend);
    if (call === undefined) return 0;
    const c = this.config;
    const B = caches.length;
    const H = c.num_attention_heads;
    const KV = c.num_key_value_heads;
    const D = c.head_dim;
    const F = c.intermediate_size;
    const C = c.hidden_size;
    const int8 = this.qw.length > 0;
    const layers: (Float32Array | Int8Array | null)[] = new Array<Float32Array | Int8Array | null>(10 * L);
    const blocks = int8 ? new Int32Array(4 * L) : null;
    let layout: Int8Layout | undefined;
    for (let l = 0; l < L; l++) {
      const w = this.w[l];
      const j = 10 * l;
      layers[j] = w.inNorm;
      layers[j + 1] = w.postNorm;
      if (int8) {
        const q8 = this.qw[l];
        if (q8.qkv === undefined || q8.gateUp === undefined) return 0;
        const mats = [q8.qkv, q8.o, q8.gateUp, q8.down];
        for (let i = 0; i < 4; i++) {
          layers[j + 2 + i] = mats[i].q;
          layers[j + 6 + i] = mats[i].scales;
          blocks![4 * l + i] = mats[i].blockSize;
        }
        const lay = mats[0].layout ?? 'rows';
        // one layout for the whole call (every layer of an int8 shard has the same)
        if (layout !== undefined && lay !== layout) return 0;
        layout = lay;
      } else {
        if (w.qkv === undefined || w.gateUp === undefined) return 0;
        layers[j + 2] = w.qkv;
        layers[j + 3] = w.o;
        layers[j + 4] = w.gateUp;
        layers[j + 5] = w.down;
        layers[j + 6] = layers[j + 7] = layers[j + 8] = layers[j + 9] = null;
      }
    }
    if (blocks !== null) for (let i = 4; i < blocks.length; i++) if (blocks[i] !== blocks[i % 4]) return 0;
    const head = this.hasHead && this.headW !== null && this.normW !== null;
    const n = decodeLayerScratch(B, C, H, KV, D, F);
    if (this.decodeWs.length < n) this.decodeWs = allocate(n, 'activations');
    const pos = this.decodePos;
    const maxS = this.decodeMaxS;
    const kc: Float32Array[] = new Array<Float32Array>(L * B);
    const vc: Float32Array[] = new Array<Float32Array>(L * B);
    for (let b = 0; b < B; b++) {
      pos[b] = caches[b].length;
      maxS[b] = caches[b].maxLen;
      for (let l = 0; l < L; l++) {
        kc[l * B + b] = caches[b].k[l];
        vc[l * B + b] = caches[b].v[l];
      }
    }
    call({
      L,
      B,
      res: this.res.length === L + 1 ? this.res : this.res.slice(0, L + 1),
      layers,
      kCache: kc,
      vCache: vc,
      ws: this.decodeWs,
      C,
      H,
      KV,
      D,
      F,
      pos,
      maxS,
      blockSizes: blocks,
      ...(layout !== undefined ? { int8Layout: layout } : {}),
      eps: c.rms_norm_eps,
      theta: c.rope_theta,
      ...(head ? { head: { norm: this.normW!, w: this.headW!, xf: this.xf, rstd: this.rstdf, logits: this.logits, V: c.vocab_size } } : {}),
    });
    return head ? 2 : 1;
  }

  /** Scratch for the fused products' outputs (at least n floats; reused by every layer). */
  private fusedOut(n: number): Float32Array {
    if (this.fused.length < n) this.fused = allocate(n, 'activations');
    return this.fused;
  }

  /** out[N, outDim] (+)= x[N, inDim] · Wᵀ over the float32 weights or their int8 blocks. */
  private linear(x: Float32Array, w: Float32Array, q8: Int8Matrix | undefined, out: Float32Array, N: number, outDim: number, inDim: number, beta: 0 | 1): void {
    if (q8 !== undefined) matmulInt8(this.backend, x, N, q8, out, beta === 1);
    else this.backend.gemm(x, w, out, gemmArgs(false, true, N, outDim, inDim, beta));
  }

  /**
   * decodeBatch's attention: each row is its own sequence, so RoPE at its position, its k/v into its cache and
   * attention over its cache, one row at a time (the very calls a batch-1 decode of that sequence makes).
   */
  private attendRows(l: number, B: number, rows: readonly KVCache[]): void {
    const c = this.config;
    const be = this.backend;
    const H = c.num_attention_heads;
    const KV = c.num_key_value_heads;
    const D = c.head_dim;
    const a = this.acts[l];
    const row = KV * D;
    for (let b = 0; b < B; b++) {
      const rc = rows[b];
      const p = rc.length;
      const qb = a.q.subarray(b * H * D, (b + 1) * H * D);
      const kb = a.k.subarray(b * row, (b + 1) * row);
      be.rope(qb, 1, 1, H, D, p, c.rope_theta, false);
      be.rope(kb, 1, 1, KV, D, p, c.rope_theta, false);
      rc.k[l].set(kb, p * row);
      rc.v[l].set(a.v.subarray(b * row, (b + 1) * row), p * row);
      be.attentionDecode(qb, rc.k[l], rc.v[l], a.att.subarray(b * H * D, (b + 1) * H * D), 1, H, KV, D, rc.maxLen, p + 1);
    }
  }

  // ---- loss --------------------------------------------------------------------------------------------------

  /**
   * Validator only: softmax cross-entropy of the last forward's logits against targets [B·T] (IGNORE_INDEX rows do
   * not count). With `grad` (default true) writes dlogits = ∂(loss·gradScale)/∂logits, gradScale defaulting to
   * 1 (so dlogits is the gradient of the mean loss); pass it to backward().
   */
  loss(targets: Int32Array, opts: { grad?: boolean; gradScale?: number } = {}): LossResult {
    if (!this.hasHead) throw new ModelStateError('model.loss: this span does not hold the LM head');
    if (this.lastLogits === null) throw new ModelStateError('model.loss: no logits (call forward first)');
    const N = this.lastLogits.N;
    const V = this.config.vocab_size;
    if (targets.length !== N) throw new ShapeError('model.loss', `targets have ${targets.length} elements, logits have ${N} rows`, { targets: [targets.length], logits: [N, V] });
    let count = 0;
    for (let i = 0; i < N; i++) {
      const t = targets[i];
      if (t === IGNORE_INDEX) continue;
      if (t < 0 || t >= V) throw new TokenRangeError('model.loss', t, i, V, { targets: [N] });
      count++;
    }
    const grad = opts.grad ?? true;
    const scale = count === 0 ? 0 : (opts.gradScale ?? 1) / count;
    const dl = grad ? this.dlogits.subarray(0, N * V) : null;
    const r = this.backend.crossEntropy(this.logits, targets, N, V, IGNORE_INDEX, dl, scale);
    return { loss: r.count === 0 ? 0 : r.lossSum / r.count, count: r.count, dlogits: dl };
  }

  // ---- backward ----------------------------------------------------------------------------------------------

  /**
   * Given the gradient of the span's output (dlogits [B, T, V] for the validator, dhidden [B, T, C] otherwise),
   * accumulates the parameter gradients into `grads` and returns the gradient of the input hidden states
   * [B, T, C], or null for the driver (its gradient went into the embedding). Consumes the last training forward.
   */
  backward(dOut: Float32Array): Float32Array | null {
    this.requireF32('model.backward');
    const p = this.pending;
    if (p === null) throw new ModelStateError('model.backward: no training forward waits for a backward (backward before forward, twice, or after a cached forward)');
    const c = this.config;
    const be = this.backend;
    const { B, T } = p;
    const N = B * T;
    const C = c.hidden_size;
    const nL = this.w.length;
    const dres = this.dres.subarray(0, N * C);
    if (this.hasHead) {
      const V = c.vocab_size;
      if (dOut.length !== N * V) throw new ShapeError('model.backward', `dlogits has ${dOut.length} elements`, { dlogits: [dOut.length], expected: [B, T, V] });
      // dlm_head[V, C] += dlogitsᵀ · xf ; dxf[N, C] = dlogits · lm_head
      be.gemm(dOut, this.xf, this.headG!, gemmArgs(true, false, V, C, N, 1));
      be.gemm(dOut, this.headW!, this.dh, gemmArgs(false, false, N, C, V, 0));
      be.rmsnormBackward(this.dh, this.res[nL], this.normW!, this.rstdf, dres, this.normG!, N, C, false);
    } else {
      if (dOut.length !== N * C) throw new ShapeError('model.backward', `dhidden has ${dOut.length} elements`, { dhidden: [dOut.length], expected: [B, T, C] });
      dres.set(dOut);
    }
    for (let l = nL - 1; l >= 0; l--) this.layerBackward(l, B, T, p.pos);
    this.pending = null;
    if (this.hasEmbed) {
      be.embeddingBackward(dres, this.ids, this.embedG!, N, C);
      return null;
    }
    return dres;
  }

  /** dres holds ∂L/∂(output of layer l) on entry and ∂L/∂(input of layer l) on return. */
  private layerBackward(l: number, B: number, T: number, pos: number): void {
    const c = this.config;
    const be = this.backend;
    const N = B * T;
    const C = c.hidden_size;
    const H = c.num_attention_heads;
    const KV = c.num_key_value_heads;
    const D = c.head_dim;
    const F = c.intermediate_size;
    const w = this.w[l];
    const g = this.g[l];
    const a = this.acts[l];
    const dres = this.dres;

    // MLP block: out = r + act · Wdownᵀ
    be.gemm(dres, a.act, g.down, gemmArgs(true, false, C, F, N, 1)); // dWdown[C, F] += dresᵀ · act
    be.gemm(dres, w.down, this.dact, gemmArgs(false, false, N, F, C, 0)); // dact[N, F] = dres · Wdown
    be.swigluBackward(this.dact, a.gate, a.up, this.dgate, this.dup, N * F);
    be.gemm(this.dgate, a.h2, g.gate, gemmArgs(true, false, F, C, N, 1)); // dWgate[F, C] += dgateᵀ · h2
    be.gemm(this.dup, a.h2, g.up, gemmArgs(true, false, F, C, N, 1)); // dWup[F, C] += dupᵀ · h2
    be.gemm(this.dgate, w.gate, this.dh, gemmArgs(false, false, N, C, F, 0)); // dh2[N, C] = dgate · Wgate
    be.gemm(this.dup, w.up, this.dh, gemmArgs(false, false, N, C, F, 1)); //          + dup · Wup
    // dres += rmsnorm backward (the residual path already carries dres): dres = ∂L/∂r
    be.rmsnormBackward(this.dh, a.r, w.postNorm, a.rstd2, dres, g.postNorm, N, C, true);

    // attention block: r = x + att · Woᵀ
    be.gemm(dres, a.att, g.o, gemmArgs(true, false, C, H * D, N, 1)); // dWo[C, H·D] += dresᵀ · att
    be.gemm(dres, w.o, this.datt, gemmArgs(false, false, N, H * D, C, 0)); // datt[N, H·D] = dres · Wo
    be.attentionBackward(this.datt, a.q, a.k, a.v, a.att, a.lse, this.dq, this.dk, this.dv, B, T, T, H, KV, D);
    // RoPE is a rotation: its backward is the inverse rotation, in place
    be.rope(this.dq, B, T, H, D, pos, c.rope_theta, true);
    be.rope(this.dk, B, T, KV, D, pos, c.rope_theta, true);
    be.gemm(this.dq, a.h1, g.q, gemmArgs(true, false, H * D, C, N, 1)); // dWq[H·D, C] += dqᵀ · h1
    be.gemm(this.dk, a.h1, g.k, gemmArgs(true, false, KV * D, C, N, 1));
    be.gemm(this.dv, a.h1, g.v, gemmArgs(true, false, KV * D, C, N, 1));
    be.gemm(this.dq, w.q, this.dh, gemmArgs(false, false, N, C, H * D, 0)); // dh1[N, C] = dq · Wq + dk · Wk + dv · Wv
    be.gemm(this.dk, w.k, this.dh, gemmArgs(false, false, N, C, KV * D, 1));
    be.gemm(this.dv, w.v, this.dh, gemmArgs(false, false, N, C, KV * D, 1));
    be.rmsnormBackward(this.dh, this.res[l], w.inNorm, a.rstd1, dres, g.inNorm, N, C, true);
  }

  // ---- buffers -----------------------------------------------------------------------------------------------

  /** Sizes the activation buffers for N rows (B sequences); grows only, views are cut per call. */
  private ensure(N: number, B: number): void {
    if (N <= this.cap && B <= this.capB) return;
    const cap = Math.max(N, this.cap);
    const capB = Math.max(B, this.capB);
    const c = this.config;
    const C = c.hidden_size;
    const HD = c.num_attention_heads * c.head_dim;
    const KVD = c.num_key_value_heads * c.head_dim;
    const F = c.intermediate_size;
    const H = c.num_attention_heads;
    const f = (n: number): Float32Array => allocate(n, 'activations');
    const nL = this.w.length;
    this.res = [];
    for (let l = 0; l <= nL; l++) this.res.push(f(cap * C));
    this.acts = [];
    for (let l = 0; l < nL; l++) {
      this.acts.push({
        h1: f(cap * C),
        rstd1: f(cap),
        q: f(cap * HD),
        k: f(cap * KVD),
        v: f(cap * KVD),
        att: f(cap * HD),
        lse: f(cap * H),
        r: f(cap * C),
        h2: f(cap * C),
        rstd2: f(cap),
        gate: f(cap * F),
        up: f(cap * F),
        act: f(cap * F),
      });
    }
    this.ids = new Int32Array(cap);
    if (this.hasHead) {
      const V = c.vocab_size;
      this.xf = f(cap * C);
      this.rstdf = f(cap);
      this.logits = f(cap * V);
      this.dlogits = f(cap * V);
    }
    this.dres = f(cap * C);
    this.dh = f(cap * C);
    this.dq = f(cap * HD);
    this.dk = f(cap * KVD);
    this.dv = f(cap * KVD);
    this.datt = f(cap * HD);
    this.dact = f(cap * F);
    this.dgate = f(cap * F);
    this.dup = f(cap * F);
    this.cap = cap;
    this.capB = capB;
    this.pending = null;
    this.lastLogits = null;
  }

  /** Releases the activation buffers (they are re-allocated by the next forward). */
  releaseActivations(): void {
    this.cap = 0;
    this.capB = 0;
    this.res = [];
    this.acts = [];
    this.fused = new Float32Array(0);
    this.pending = null;
    this.lastLogits = null;
  }
}

/**
 * The kernels are given exact-length views everywhere it matters; buffers are larger than N rows only at their
 * tails, which GEMM never reads because M, N and K bound it.
 */
function gemmArgs(transA: boolean, transB: boolean, M: number, N: number, K: number, beta: 0 | 1): GemmArgs {
  return { transA, transB, M, N, K, alpha: 1, beta };
}

function allocate(n: number, what: string): Float32Array {
  try {
    return new Float32Array(n);
  } catch (e) {
    throw new ModelConfigError(`cannot allocate ${n} float32 ${what} (${(e as Error).message})`, { elements: n });
  }
}

/** Convenience: a shard holding the whole model. */
export function createModel(config: LlamaConfig, backend: Backend, opts: { seed?: number; params?: Float32Array } = {}): LlamaShard {
  return new LlamaShard({ config, backend, ...opts });
}
