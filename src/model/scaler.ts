/**
 * The architecture scaler: maps the network's total memory to a NeuroLLM shape within a parameter budget.
 *
 * Every shape it emits lies on one ladder of rungs, indexed by the residual width C:
 *
 *   C       256, 384, …, 1024 in steps of 128 (one GQA group: two heads of 64), then 2048, 3072, …, 8192 in steps
 *           of 1024 (16 heads), then steps of 2048 up to 16384 and 4096 up to 32768
 *   heads   C / 64 (head_dim fixed at 64, so RoPE never changes)      KV heads  heads / 2 (nano's grouping)
 *   layers  min(C / 64, 8 + C / 128)      (4 at 256, 16 at 1024, 32 at 3072, 64 at 7168)
 *   FFN     ⌈(8/3)·C / 16⌉·16             (Llama's SwiGLU rule; 688 at 256)
 *
 * Every column is non-decreasing along the ladder and the GQA group size is constant, so each rung is reachable
 * from every smaller one by the function-preserving growth of growth.ts (deeper: identity layers; wider: zero
 * residual channels, whole new heads with their own KV heads, new FFN units). nano is the bottom rung. Above 1024
 * the width grows in coarse steps: each growth step re-shapes every tensor on every node, so it must buy at least
 * ×1.3 parameters (the Python original's upgrade threshold; a test checks every step).
 *
 * Budget: a parameter costs MEMORY_BYTES_PER_PARAM = 160 bytes of network memory: 16 B of training state (fp32
 * weight, gradient, AdamW m and v) × 3 replicas per layer (so a layer survives the loss of a holder and DiLoCo has
 * peers to average with) ÷ 0.3 (the share of a node's memory given to parameters; the rest holds activations, KV
 * caches, the runtime and the slack of packing whole layers onto nodes). The scaler picks the largest rung whose
 * full parameter count (embedding and head included) fits the budget. With NeuroLLM's 4,096-token vocabulary this
 * reproduces the seed's table: 40 GB → 16 × 1024, 800 GB → 32 × 3072, 8 TB → 64 × 7168 (GB = 10⁹ bytes).
 */
import { type LlamaConfig, NANO, swigluWidth, totalParams, validateConfig } from './config.js';
import { ModelConfigError } from './errors.js';

export const SCALER_HEAD_DIM = 64;
/** Query heads per KV head on every rung (nano: 4 heads, 2 KV heads). */
export const SCALER_GQA_GROUP = 2;
export const MEMORY_BYTES_PER_PARAM = 160;
/** The widest rung the scaler considers (C = 32,768: 264 layers, about 3.2 T parameters). */
export const SCALER_MAX_HIDDEN = 32_768;

/** Layer count of the rung of width C. */
export function ladderDepth(hidden: number): number {
  return Math.min(hidden / 64, 8 + hidden / 128);
}

/** The widths of the ladder, ascending. */
export function ladderWidths(maxHidden = SCALER_MAX_HIDDEN): number[] {
  const out: number[] = [];
  for (let c = NANO.hidden_size; c <= Math.min(1024, maxHidden); c += 128) out.push(c);
  // above 1024: steps of 1024 (16 heads) up to 8192, then 2048 up to 16384, then 4096, so every step still buys
  // at least ×1.3 parameters
  for (let c = 2048; c <= maxHidden; c += c < 8192 ? 1024 : c < 16384 ? 2048 : 4096) out.push(c);
  return out;
}

export interface RungOptions {
  /** Network vocabulary (fixed per network); default nano's 4,096. */
  vocab_size?: number;
  /** Context length; default nano's 256. */
  max_position_embeddings?: number;
  /** RMSNorm epsilon of the rung; default nano's 1e-6. A grown model carries its own (growth.ts scales it). */
  rms_norm_eps?: number;
  rope_theta?: number;
}

/** The ladder shape of width `hidden`, as a full config. */
export function rung(hidden: number, opts: RungOptions = {}): LlamaConfig {
  if (!ladderWidths().includes(hidden)) throw new ModelConfigError(`scaler: ${hidden} is not a ladder width`, { hidden });
  const heads = hidden / SCALER_HEAD_DIM;
  return validateConfig({
    ...NANO,
    hidden_size: hidden,
    intermediate_size: swigluWidth(hidden),
    num_hidden_layers: ladderDepth(hidden),
    num_attention_heads: heads,
    num_key_value_heads: heads / SCALER_GQA_GROUP,
    head_dim: SCALER_HEAD_DIM,
    vocab_size: opts.vocab_size ?? NANO.vocab_size,
    max_position_embeddings: opts.max_position_embeddings ?? NANO.max_position_embeddings,
    rms_norm_eps: opts.rms_norm_eps ?? NANO.rms_norm_eps,
    rope_theta: opts.rope_theta ?? NANO.rope_theta,
  });
}

export interface ScaleResult {
  config: LlamaConfig;
  params: number;
  /** The parameter budget the memory bought. */
  budget: number;
}

/**
 * The largest ladder rung within the parameter budget of `memoryBytes` of network memory. When `current` is given
 * the result never shrinks: if the budget does not reach a rung larger than the current model in every dimension,
 * the current shape is returned (memory that leaves the network never un-trains a model).
 * Throws ModelConfigError when even nano does not fit.
 */
export function scaleFor(memoryBytes: number, opts: RungOptions & { current?: LlamaConfig } = {}): ScaleResult {
  if (!Number.isFinite(memoryBytes) || memoryBytes < 0) throw new ModelConfigError(`scaler: memory ${memoryBytes} is not a byte count`);
  const cur = opts.current;
  // a running network keeps its vocabulary, context and theta: they come from the current model
  const ro: RungOptions =
    cur === undefined
      ? opts
      : { vocab_size: cur.vocab_size, max_position_embeddings: cur.max_position_embeddings, rope_theta: cur.rope_theta };
  const budget = Math.floor(memoryBytes / MEMORY_BYTES_PER_PARAM);
  let best: LlamaConfig | null = null;
  for (const c of ladderWidths()) {
    const cfg = rung(c, ro);
    if (totalParams(cfg) > budget) break;
    best = cfg;
  }
  if (cur !== undefined) {
    if (best === null) return { config: cur, params: totalParams(cur), budget };
    // keep the current model's own epsilon lineage (growth scales it with the width)
    best = validateConfig({ ...best, rms_norm_eps: (cur.rms_norm_eps * cur.hidden_size) / best.hidden_size });
    if (checkGrowth(cur, best) !== null) return { config: cur, params: totalParams(cur), budget };
    return { config: best, params: totalParams(best), budget };
  }
  if (best === null) {
    const need = totalParams(rung(NANO.hidden_size, ro)) * MEMORY_BYTES_PER_PARAM;
    throw new ModelConfigError(`scaler: ${memoryBytes} bytes of network memory do not fit the smallest model (needs ${need})`, { memoryBytes, need });
  }
  return { config: best, params: totalParams(best), budget };
}

/**
 * Why `to` is not reachable from `from` by function-preserving growth, or null when it is. Reachable means: same
 * vocabulary, head_dim, RoPE theta, tying and GQA group size; no dimension shrinks; and the epsilon follows the width
 * (eps′ = eps·C/C′, within float rounding).
 */
export function checkGrowth(from: LlamaConfig, to: LlamaConfig): string | null {
  if (to.vocab_size !== from.vocab_size) return `vocab_size changes (${from.vocab_size} → ${to.vocab_size})`;
  if (to.head_dim !== from.head_dim) return `head_dim changes (${from.head_dim} → ${to.head_dim}); RoPE would change`;
  if (to.rope_theta !== from.rope_theta) return 'rope_theta changes';
  if (to.tie_word_embeddings !== from.tie_word_embeddings) return 'tie_word_embeddings changes';
  const g0 = from.num_attention_heads / from.num_key_value_heads;
  const g1 = to.num_attention_heads / to.num_key_value_heads;
  if (g0 !== g1) return `GQA group size changes (${g0} → ${g1}): existing heads would read other KV heads`;
  const dims = ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'max_position_embeddings'] as const;
  for (const d of dims) if (to[d] < from[d]) return `${d} shrinks (${from[d]} → ${to[d]})`;
  const eps = (from.rms_norm_eps * from.hidden_size) / to.hidden_size;
  if (Math.abs(to.rms_norm_eps - eps) > 1e-6 * eps) return `rms_norm_eps must be ${eps} after widening ${from.hidden_size} → ${to.hidden_size}`;
  return null;
}
