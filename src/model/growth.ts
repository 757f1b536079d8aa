/**
 * Function-preserving growth: a trained NeuroLLM becomes deeper and/or wider and computes the same logits at the
 * moment of growth (up to float rounding), then keeps training from there.
 *
 * Deeper: new layers are appended after the last one (existing layers keep their indices, so the nodes holding
 *   them keep their assignments). A new layer has random input projections (q, k, v, gate, up: N(0, 0.02²)), unit
 *   RMSNorm scales, and ZERO output projections (o_proj, down_proj), so both residual branches add nothing: the layer
 *   is the identity until training moves its output projections.
 * Wider (C → C′, H → H′ heads, KV → KV′, F → F′; head_dim and the GQA group size fixed, so RoPE and the head → KV
 *   head map of existing heads are unchanged):
 *   - new residual channels start at zero: zero embedding columns and zero output-side rows (o_proj, down_proj);
 *   - input-side weights get random entries for the new channels (q/k/v/gate/up columns, lm_head columns), which
 *     multiply zeros at first and give the new channels a gradient;
 *   - new heads (with their new KV heads) and new FFN units get random input rows and zero output columns;
 *   - RMSNorm scales are multiplied by √(C/C′) and ε by C/C′: with zeros in the new channels, mean(x′²) = (C/C′)·mean(x²),
 *     so x′/√(mean(x′²) + ε′)·w′ = x/√(mean(x²) + ε)·w on the old channels; new scale entries are √(C/C′).
 *
 * Both work on any span (growParams maps one span's flat buffer to the grown config's layout), drawing new weights
 * from per-tensor generators seeded by (seed, name): every replica of a layer grows it identically.
 */
import type { Backend } from '../tensor/backend.js';
import { type LlamaConfig, validateConfig } from './config.js';
import { ModelConfigError } from './errors.js';
import { fillNormal, INIT_STD, tensorRng } from './init.js';
import { ParamLayout, type ParamEntry, type Span } from './layout.js';
import { checkGrowth } from './scaler.js';
import { LlamaShard } from './shard.js';
import { spanText } from '../util/span-text.js';

/** What a grown flat buffer is for: parameters (the rules above) or optimizer moments (old values kept, new zero). */
export type GrowMode = 'params' | 'moments';

export interface GrowParamsInput {
  from: { layout: ParamLayout; params: Float32Array };
  to: LlamaConfig;
  /** The span in the grown model; default: the same layers, plus the appended ones if `from` held the last layer. */
  span?: Span;
  seed: number;
  mode?: GrowMode;
}

/** The grown config for a target shape: the epsilon follows the width (ε′ = ε·C/C′). */
export function grownConfig(from: LlamaConfig, shape: Partial<Pick<LlamaConfig, 'hidden_size' | 'num_hidden_layers' | 'num_attention_heads' | 'num_key_value_heads' | 'intermediate_size' | 'max_position_embeddings'>>): LlamaConfig {
  const hidden = shape.hidden_size ?? from.hidden_size;
  const heads = shape.num_attention_heads ?? from.num_attention_heads;
  const group = from.num_attention_heads / from.num_key_value_heads;
  const cfg = validateConfig({
    ...from,
    hidden_size: hidden,
    num_hidden_layers: shape.num_hidden_layers ?? from.num_hidden_layers,
    num_attention_heads: heads,
    num_key_value_heads: shape.num_key_value_heads ?? heads / group,
    intermediate_size: shape.intermediate_size ?? from.intermediate_size,
    max_position_embeddings: shape.max_position_embeddings ?? from.max_position_embeddings,
    rms_norm_eps: (from.rms_norm_eps * from.hidden_size) / hidden,
  });
  const why = checkGrowth(from, cfg);
  if (why !== null) throw new ModelConfigError(`growth ${describe(from)} → ${describe(cfg)} is not function-preserving: ${why}`);
  return cfg;
}

function describe(c: LlamaConfig): string {
  return `${c.num_hidden_layers}×${c.hidden_size} (${c.num_attention_heads}/${c.num_key_value_heads} heads, FFN ${c.intermediate_size})`;
}

/** Default span of the grown model: same layers, extended to the new end when the old span ended the model. */
function defaultSpan(from: ParamLayout, to: LlamaConfig): Span {
  const s = from.span;
  return { start: s.start, end: s.end === from.config.num_hidden_layers ? to.num_hidden_layers : s.end };
}

/**
 * Maps one span's parameters (or optimizer moments) to the grown config. Existing tensors are copied into the top
 * left block of their grown shape and the new parts filled by the rules above; layers at indices ≥ the old layer
 * count are new identity layers. Throws when the new span holds an old layer (or the embedding/head) that the
 * old span did not hold: trained weights cannot be conjured.
 */
export function growParams(input: GrowParamsInput): { layout: ParamLayout; params: Float32Array } {
  const { from, to, seed } = input;
  const mode = input.mode ?? 'params';
  const old = from.layout.config;
  const why = checkGrowth(old, to);
  if (why !== null) throw new ModelConfigError(`growth ${describe(old)} → ${describe(to)} is not function-preserving: ${why}`);
  const layout = new ParamLayout(to, input.span ?? defaultSpan(from.layout, to));
  const out = new Float32Array(layout.size);
  const C0 = old.hidden_size;
  const C1 = to.hidden_size;
  const normScale = Math.sqrt(C0 / C1);
  for (const e of layout.entries) {
    const dst = out.subarray(e.offset, e.offset + e.size);
    const layer = e.layer;
    const isNew = typeof layer === 'number' && layer >= old.num_hidden_layers;
    if (isNew) {
      if (mode === 'params') initIdentityLayerTensor(e, dst, seed);
      continue; // moments of a new layer start at zero
    }
    if (!from.layout.has(e.name)) {
      throw new ModelConfigError(`growth: the grown span holds ${e.name}, which the old span ${spanText(from.layout.span)} did not`, { name: e.name });
    }
    const src = from.layout.view(from.params, e.name);
    const oldShape = from.layout.get(e.name).shape;
    if (e.shape.length === 1) {
      // RMSNorm scale [C] → [C′]
      if (mode === 'params') {
        for (let i = 0; i < C0; i++) dst[i] = src[i] * normScale;
        dst.fill(normScale, C0);
      } else {
        dst.set(src);
      }
      continue;
    }
    const [r0, c0] = oldShape;
    const [r1, c1] = e.shape;
    // old block at the top left
    for (let r = 0; r < r0; r++) dst.set(src.subarray(r * c0, (r + 1) * c0), r * c1);
    if (mode === 'moments' || (r0 === r1 && c0 === c1)) continue;
    if (isInputSide(e.name)) {
      // new columns of old rows, then whole new rows: random (they multiply zeros / feed zero output columns)
      const rng = tensorRng(seed, `grow:${e.name}`);
      for (let r = 0; r < r0; r++) fillNormal(dst.subarray(r * c1 + c0, (r + 1) * c1), rng, INIT_STD);
      fillNormal(dst.subarray(r0 * c1), rng, INIT_STD);
    }
    // embedding columns and output-side rows/columns (o_proj, down_proj): stay zero
  }
  return { layout, params: out };
}

/** Tensors whose new entries are random: they read the residual stream (or feed zeroed output columns). */
function isInputSide(name: string): boolean {
  return /(q_proj|k_proj|v_proj|gate_proj|up_proj)\.weight$/.test(name) || name === 'lm_head.weight';
}

function initIdentityLayerTensor(e: ParamEntry, dst: Float32Array, seed: number): void {
  if (e.shape.length === 1) dst.fill(1);
  else if (/(o_proj|down_proj)\.weight$/.test(e.name)) dst.fill(0);
  else fillNormal(dst, tensorRng(seed, `grow:${e.name}`), INIT_STD);
}

export interface GrowOptions {
  seed?: number;
  backend?: Backend;
}

/** A grown copy of `model` (any span) with `to` as its config. */
export function growModel(model: LlamaShard, to: LlamaConfig, opts: GrowOptions & { span?: Span } = {}): LlamaShard {
  const g = growParams({ from: { layout: model.layout, params: model.params }, to, span: opts.span, seed: opts.seed ?? 0 });
  return new LlamaShard({ config: to, backend: opts.backend ?? model.backend, span: g.layout.span, params: g.params });
}

/** Appends identity layers up to `layers` in total. */
export function growDeeper(model: LlamaShard, layers: number, opts: GrowOptions = {}): LlamaShard {
  return growModel(model, grownConfig(model.config, { num_hidden_layers: layers }), opts);
}

/** Widens residual channels, heads (with their KV heads) and/or FFN units. */
export function growWider(
  model: LlamaShard,
  shape: Partial<Pick<LlamaConfig, 'hidden_size' | 'num_attention_heads' | 'num_key_value_heads' | 'intermediate_size'>>,
  opts: GrowOptions = {},
): LlamaShard {
  return growModel(model, grownConfig(model.config, shape), opts);
}
