/**
 * Parameter layout: which tensors a span of NeuroLLM holds, their Hugging Face names and shapes, and where each one
 * lives in the span's ONE flat Float32Array (llm.c's habit). Gradients, AdamW moments and pseudo-gradients use the
 * same layout, so averaging, hashing, checkpointing and optimizer steps are single loops over one array, and a
 * tensor is `flat.subarray(entry.offset, entry.offset + entry.size)`.
 *
 * Order in the flat buffer (the model's natural order, not alphabetical):
 *   model.embed_tokens.weight                                  [V, C]       (span holds layer 0: the driver)
 *   per layer i in [start, end):
 *     model.layers.i.input_layernorm.weight                    [C]
 *     model.layers.i.self_attn.{q,k,v}_proj.weight             [H·D, C], [KV·D, C], [KV·D, C]
 *     model.layers.i.self_attn.o_proj.weight                   [C, H·D]
 *     model.layers.i.post_attention_layernorm.weight           [C]
 *     model.layers.i.mlp.{gate,up}_proj.weight                 [F, C], [F, C]
 *     model.layers.i.mlp.down_proj.weight                      [C, F]
 *   model.norm.weight                                          [C]          (span holds the last layer: the validator)
 *   lm_head.weight                                             [V, C]       (absent when tie_word_embeddings)
 */
import { type LlamaConfig } from './config.js';
import { ModelConfigError } from './errors.js';
import { InvalidArgumentError } from '../util/errors.js';
import { spanText } from '../util/span-text.js';

/** A contiguous span of decoder layers [start, end). */
export interface Span {
  start: number;
  end: number;
}

/** What a parameter belongs to, for per-layer hashing: the embedding, a decoder layer, or the head (norm + LM head). */
export type LayerKey = 'embed' | number | 'head';

export interface ParamEntry {
  /** Hugging Face name, e.g. `model.layers.3.self_attn.q_proj.weight`. */
  name: string;
  shape: readonly number[];
  /** Element offset in the flat buffer. */
  offset: number;
  /** Element count. */
  size: number;
  layer: LayerKey;
  /** Two-dimensional weights take weight decay; RMSNorm scales do not (nanoGPT / llm.c convention). */
  decay: boolean;
}

export const EMBED_NAME = 'model.embed_tokens.weight';
export const FINAL_NORM_NAME = 'model.norm.weight';
export const LM_HEAD_NAME = 'lm_head.weight';

/** The per-layer tensor names in flat-buffer order, with their shapes. */
export function layerTensors(c: LlamaConfig, i: number): { name: string; shape: number[] }[] {
  const C = c.hidden_size;
  const qd = c.num_attention_heads * c.head_dim;
  const kvd = c.num_key_value_heads * c.head_dim;
  const F = c.intermediate_size;
  const p = `model.layers.${i}.`;
  return [
    { name: `${p}input_layernorm.weight`, shape: [C] },
    { name: `${p}self_attn.q_proj.weight`, shape: [qd, C] },
    { name: `${p}self_attn.k_proj.weight`, shape: [kvd, C] },
    { name: `${p}self_attn.v_proj.weight`, shape: [kvd, C] },
    { name: `${p}self_attn.o_proj.weight`, shape: [C, qd] },
    { name: `${p}post_attention_layernorm.weight`, shape: [C] },
    { name: `${p}mlp.gate_proj.weight`, shape: [F, C] },
    { name: `${p}mlp.up_proj.weight`, shape: [F, C] },
    { name: `${p}mlp.down_proj.weight`, shape: [C, F] },
  ];
}

/** Checks a span against a config (and the tying rule) and returns it normalised. */
export function checkSpan(c: LlamaConfig, span: Span = { start: 0, end: c.num_hidden_layers }): Span {
  const L = c.num_hidden_layers;
  const { start, end } = span;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > L || start >= end) {
    throw new ModelConfigError(`span ${spanText(span)} is not a non-empty layer range within 0:${L}`, { start, end, layers: L });
  }
  if (c.tie_word_embeddings && (start !== 0) !== (end !== L)) {
    throw new ModelConfigError(`span ${spanText(span)}: a model with tied embeddings runs only as a span holding both layer 0 and layer ${L - 1}`, {
      start,
      end,
    });
  }
  return { start, end };
}

export class ParamLayout {
  readonly config: LlamaConfig;
  readonly span: Span;
  readonly entries: readonly ParamEntry[];
  /** Total elements. */
  readonly size: number;
  /** The span holds layer 0, hence the embedding (the driver). */
  readonly hasEmbed: boolean;
  /** The span holds the last layer, hence the final norm and the LM head (the validator). */
  readonly hasHead: boolean;
  private readonly byName: Map<string, ParamEntry>;

  constructor(config: LlamaConfig, span?: Span) {
    this.config = config;
    this.span = checkSpan(config, span);
    this.hasEmbed = this.span.start === 0;
    this.hasHead = this.span.end === config.num_hidden_layers;
    const C = config.hidden_size;
    const V = config.vocab_size;
    const entries: ParamEntry[] = [];
    let off = 0;
    const add = (name: string, shape: number[], layer: LayerKey): void => {
      const size = shape.reduce((a, b) => a * b, 1);
      entries.push({ name, shape: Object.freeze(shape), offset: off, size, layer, decay: shape.length >= 2 });
      off += size;
    };
    if (this.hasEmbed) add(EMBED_NAME, [V, C], 'embed');
    for (let i = this.span.start; i < this.span.end; i++) for (const t of layerTensors(config, i)) add(t.name, t.shape, i);
    if (this.hasHead) {
      add(FINAL_NORM_NAME, [C], 'head');
      if (!config.tie_word_embeddings) add(LM_HEAD_NAME, [V, C], 'head');
    }
    this.entries = Object.freeze(entries);
    this.size = off;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): ParamEntry {
    const e = this.byName.get(name);
    if (e === undefined) throw new ModelConfigError(`no parameter ${name} in span ${spanText(this.span)}`, { name });
    return e;
  }

  /** The layers this span holds, in order: 'embed'?, start..end-1, 'head'?. */
  layerKeys(): LayerKey[] {
    const out: LayerKey[] = [];
    if (this.hasEmbed) out.push('embed');
    for (let i = this.span.start; i < this.span.end; i++) out.push(i);
    if (this.hasHead) out.push('head');
    return out;
  }

  entriesOf(layer: LayerKey): ParamEntry[] {
    return this.entries.filter((e) => e.layer === layer);
  }

  /** A named view into a flat buffer of this layout. */
  view(flat: Float32Array, name: string): Float32Array {
    const e = this.get(name);
    return flat.subarray(e.offset, e.offset + e.size);
  }

  /**
   * Maximal runs of consecutive entries with the same decay flag, as [offset, size, decay]: an optimizer applies
   * AdamW with weight decay to some runs and without to others, a handful of kernel calls per step.
   */
  decayRuns(): { offset: number; size: number; decay: boolean }[] {
    const runs: { offset: number; size: number; decay: boolean }[] = [];
    for (const e of this.entries) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last.decay === e.decay) last.size += e.size;
      else runs.push({ offset: e.offset, size: e.size, decay: e.decay });
    }
    return runs;
  }
}

/** Parameters held by a span (the whole model without one). */
/**
 * Element range of `want`'s parameters inside the flat buffer of `held` (want ⊆ held). ParamLayout puts the
 * embedding first, the layers in order, then the head, so a sub-span's parameters are one contiguous run of the
 * held buffer, laid out exactly as ParamLayout(want) lays them out.
 */
export function subSpanRange(config: LlamaConfig, held: Span, want: Span): { offset: number; size: number } {
  if (!(want.start >= held.start && want.end <= held.end && want.start < want.end)) {
    throw new InvalidArgumentError(`span ${spanText(want)} is not inside the held ${spanText(held)}`);
  }
  const layout = new ParamLayout(config, held);
  let first = -1;
  let last = -1;
  for (const e of layout.entries) {
    const inside = e.layer === 'embed' ? want.start === 0 : e.layer === 'head' ? want.end === config.num_hidden_layers : e.layer >= want.start && e.layer < want.end;
    if (!inside) continue;
    if (first < 0) first = e.offset;
    last = e.offset + e.size;
  }
  const size = last - first;
  if (first < 0 || size !== new ParamLayout(config, want).size) throw new InvalidArgumentError(`span ${spanText(want)} is not contiguous in the held layout`);
  return { offset: first, size };
}

export function paramCount(c: LlamaConfig, span?: Span): number {
  return new ParamLayout(c, span).size;
}
