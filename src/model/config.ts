/**
 * NeuroLLM's configuration: the fields of a Hugging Face `LlamaConfig`, spelled as in its `config.json`, so a
 * checkpoint's config.json is this object serialised, and a config.json written by other tools parses into it.
 *
 * Every field is honoured by the model code; nothing about the architecture is hard-coded elsewhere. Options of
 * LlamaConfig that this engine does not implement (rope_scaling, attention_bias, mlp_bias, a hidden_act other than
 * silu, …) are refused with an UnsupportedModelOptionError that names them, never silently ignored.
 *
 * Missing fields take Hugging Face's LlamaConfig defaults when parsing a foreign config.json (that is what
 * `transformers` would do with the same file); our own checkpoints always write every field.
 */
import { ModelConfigError, UnsupportedModelOptionError } from './errors.js';

export interface LlamaConfig {
  /** Residual width C. */
  hidden_size: number;
  /** SwiGLU width F. */
  intermediate_size: number;
  /** Decoder layers L. */
  num_hidden_layers: number;
  /** Query heads H. */
  num_attention_heads: number;
  /** Key/value heads KV (grouped-query attention); H must be a multiple of KV. */
  num_key_value_heads: number;
  /** Per-head width D; hidden_size / num_attention_heads unless given explicitly. Even (RoPE rotates halves). */
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** V: rows of the embedding and of the LM head. */
  vocab_size: number;
  /** The longest sequence (context) the model is used with: bounds KV caches and training windows. */
  max_position_embeddings: number;
  /** When true the LM head shares the embedding matrix (lm_head.weight is absent). NeuroLLM trains untied. */
  tie_word_embeddings: boolean;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
}

/** Hugging Face LlamaConfig defaults, used for fields a foreign config.json leaves out. */
const HF_DEFAULTS = {
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
} as const;

/** Sanity bounds: a config outside them is a typo or a hostile file, not a model we could hold. */
export const CONFIG_LIMITS = {
  maxHidden: 65_536,
  maxIntermediate: 262_144,
  maxLayers: 1024,
  maxHeads: 1024,
  maxHeadDim: 1024,
  maxVocab: 1 << 24,
  maxPositions: 1 << 20,
} as const;

/**
 * The nano preset: the genesis model and the benchmark's anchor shape (shared/bench/torch_anchor.py). 5.0 M
 * parameters with its 4,096-token vocabulary. Its rung is the bottom of the scaler's ladder (scaler.ts).
 */
export const NANO: LlamaConfig = Object.freeze({
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  vocab_size: 4096,
  max_position_embeddings: 256,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
});

function isPosInt(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max;
}

function isPosFinite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

/**
 * Checks a complete config: every field present, in range and consistent. Returns a frozen copy holding only the
 * LlamaConfig fields. Throws ModelConfigError naming the first bad field.
 */
export function validateConfig(c: LlamaConfig): LlamaConfig {
  const L = CONFIG_LIMITS;
  const bad = (field: string, why: string): never => {
    throw new ModelConfigError(`model config: ${field} ${why} (got ${JSON.stringify((c as unknown as Record<string, unknown>)[field])})`, { field });
  };
  if (!isPosInt(c.hidden_size, L.maxHidden)) bad('hidden_size', `must be an integer in 1..${L.maxHidden}`);
  if (!isPosInt(c.intermediate_size, L.maxIntermediate)) bad('intermediate_size', `must be an integer in 1..${L.maxIntermediate}`);
  if (!isPosInt(c.num_hidden_layers, L.maxLayers)) bad('num_hidden_layers', `must be an integer in 1..${L.maxLayers}`);
  if (!isPosInt(c.num_attention_heads, L.maxHeads)) bad('num_attention_heads', `must be an integer in 1..${L.maxHeads}`);
  if (!isPosInt(c.num_key_value_heads, L.maxHeads)) bad('num_key_value_heads', `must be an integer in 1..${L.maxHeads}`);
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    bad('num_key_value_heads', `must divide num_attention_heads=${c.num_attention_heads}`);
  }
  if (!isPosInt(c.head_dim, L.maxHeadDim) || c.head_dim % 2 !== 0) bad('head_dim', `must be an even integer in 2..${L.maxHeadDim}`);
  if (!isPosFinite(c.rms_norm_eps) || c.rms_norm_eps >= 1) bad('rms_norm_eps', 'must be a number in (0, 1)');
  if (!isPosFinite(c.rope_theta)) bad('rope_theta', 'must be a positive number');
  if (!isPosInt(c.vocab_size, L.maxVocab)) bad('vocab_size', `must be an integer in 1..${L.maxVocab}`);
  if (!isPosInt(c.max_position_embeddings, L.maxPositions)) bad('max_position_embeddings', `must be an integer in 1..${L.maxPositions}`);
  if (typeof c.tie_word_embeddings !== 'boolean') bad('tie_word_embeddings', 'must be a boolean');
  for (const f of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const v = c[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= c.vocab_size) bad(f, `must be an id in [0, vocab_size=${c.vocab_size})`);
  }
  return Object.freeze({
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.head_dim,
    rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_theta,
    vocab_size: c.vocab_size,
    max_position_embeddings: c.max_position_embeddings,
    tie_word_embeddings: c.tie_word_embeddings,
    bos_token_id: c.bos_token_id,
    eos_token_id: c.eos_token_id,
    pad_token_id: c.pad_token_id,
  });
}

/** Builds a validated config from a partial one: head_dim defaults to hidden/heads, KV heads to heads. */
export function makeConfig(fields: Partial<LlamaConfig> & Pick<LlamaConfig, 'hidden_size' | 'num_hidden_layers' | 'num_attention_heads'>): LlamaConfig {
  const heads = fields.num_attention_heads;
  const c: LlamaConfig = {
    ...NANO,
    num_key_value_heads: heads,
    ...fields,
    head_dim: fields.head_dim ?? fields.hidden_size / heads,
  } as LlamaConfig;
  if (fields.intermediate_size === undefined) c.intermediate_size = swigluWidth(fields.hidden_size);
  return validateConfig(c);
}

/** Llama's SwiGLU width rule: ⌈(8/3)·C / 16⌉·16 (688 for 256; nano's anchor value). */
export function swigluWidth(hidden: number): number {
  return Math.ceil((8 * hidden) / 3 / 16) * 16;
}

/**
 * Options of a Hugging Face config.json that change the math and that this engine does not implement. Each entry
 * says which values are harmless (equal to what we compute anyway).
 */
const UNSUPPORTED: Record<string, { ok: (v: unknown) => boolean; why: string }> = {
  rope_scaling: {
    ok: (v) => v === null || v === undefined || (typeof v === 'object' && (v as Record<string, unknown>).rope_type === 'default' && Object.keys(v).length === 1),
    why: 'RoPE scaling (linear, dynamic, yarn, llama3, …) is not implemented; only plain RoPE',
  },
  attention_bias: { ok: (v) => v === false || v === undefined || v === null, why: 'attention projections have no biases here' },
  mlp_bias: { ok: (v) => v === false || v === undefined || v === null, why: 'MLP projections have no biases here' },
  hidden_act: { ok: (v) => v === 'silu' || v === undefined, why: 'only the SiLU gate (SwiGLU) is implemented' },
  attention_dropout: { ok: (v) => v === 0 || v === undefined || v === null, why: 'dropout is not implemented' },
  sliding_window: { ok: (v) => v === null || v === undefined, why: 'sliding-window attention is not implemented' },
  model_type: { ok: (v) => v === 'llama' || v === undefined, why: 'only the Llama architecture is implemented' },
  pretraining_tp: {
    // pretraining_tp only slices the same products differently in transformers; the math is identical.
    ok: (v) => v === undefined || v === null || (typeof v === 'number' && Number.isInteger(v) && v >= 1),
    why: 'must be a positive integer',
  },
};

const KNOWN_ARCHITECTURES = new Set(['LlamaForCausalLM', 'LlamaModel']);

/** Largest config.json we parse. Real ones are a few KB. */
export const MAX_CONFIG_JSON_BYTES = 1 << 20;

/**
 * Parses a Hugging Face config.json (text or parsed object). Fields left out take LlamaConfig's defaults; options
 * we cannot honour fail with UnsupportedModelOptionError; bad values with ModelConfigError. `source` names the file
 * in messages.
 */
export function parseHfConfig(input: string | unknown, source = 'config.json'): LlamaConfig {
  let o: unknown = input;
  if (typeof input === 'string') {
    if (input.length > MAX_CONFIG_JSON_BYTES) throw new ModelConfigError(`${source}: larger than ${MAX_CONFIG_JSON_BYTES} bytes`, { file: source });
    try {
      o = JSON.parse(input);
    } catch (e) {
      throw new ModelConfigError(`${source}: not valid JSON (${(e as Error).message})`, { file: source });
    }
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ModelConfigError(`${source}: must hold a JSON object`, { file: source });
  const r = o as Record<string, unknown>;
  for (const [k, rule] of Object.entries(UNSUPPORTED)) {
    if (!rule.ok(r[k])) throw new UnsupportedModelOptionError(k, r[k], `${rule.why} (${source})`);
  }
  if (r.architectures !== undefined) {
    if (!Array.isArray(r.architectures) || !r.architectures.every((a) => typeof a === 'string' && KNOWN_ARCHITECTURES.has(a))) {
      throw new UnsupportedModelOptionError('architectures', r.architectures, `only ${[...KNOWN_ARCHITECTURES].join(', ')} (${source})`);
    }
  }
  const pick = <K extends keyof typeof HF_DEFAULTS>(k: K): unknown => (r[k] === undefined || r[k] === null ? HF_DEFAULTS[k] : r[k]);
  const heads = pick('num_attention_heads');
  const hidden = pick('hidden_size');
  const kv = r.num_key_value_heads === undefined || r.num_key_value_heads === null ? heads : r.num_key_value_heads;
  const headDim =
    r.head_dim === undefined || r.head_dim === null
      ? typeof hidden === 'number' && typeof heads === 'number' && heads > 0
        ? hidden / heads
        : NaN
      : r.head_dim;
  // eos_token_id may be a list in newer configs (several stop ids); we keep the first and generation takes others
  // as stop ids from its caller.
  const eos = Array.isArray(r.eos_token_id) ? (r.eos_token_id[0] as unknown) : pick('eos_token_id');
  const c = {
    hidden_size: hidden,
    intermediate_size: pick('intermediate_size'),
    num_hidden_layers: pick('num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: kv,
    head_dim: headDim,
    rms_norm_eps: pick('rms_norm_eps'),
    rope_theta: pick('rope_theta'),
    vocab_size: pick('vocab_size'),
    max_position_embeddings: pick('max_position_embeddings'),
    tie_word_embeddings: pick('tie_word_embeddings'),
    bos_token_id: pick('bos_token_id'),
    eos_token_id: eos,
    pad_token_id: pick('pad_token_id'),
  } as LlamaConfig;
  try {
    return validateConfig(c);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ModelConfigError(`${source}: ${e.message}`, { ...e.meta, file: source });
    throw e;
  }
}

/** The config.json we write: LlamaConfig fields plus the keys transformers needs to recognise the model. */
export function toHfConfigJson(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    attention_dropout: 0,
    rope_scaling: null,
    torch_dtype: 'float32',
    initializer_range: 0.02,
    use_cache: true,
    ...validateConfig(c),
  };
}

/** Number of parameters of a full model (Llama formula; see paramCount in layout.ts for spans). */
export function totalParams(c: LlamaConfig): number {
  const C = c.hidden_size;
  const D = c.head_dim;
  const perLayer = C * c.num_attention_heads * D * 2 + C * c.num_key_value_heads * D * 2 + 3 * C * c.intermediate_size + 2 * C;
  return c.vocab_size * C * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * perLayer + C;
}

export function configsEqual(a: LlamaConfig, b: LlamaConfig): boolean {
  const x = validateConfig(a) as unknown as Record<string, unknown>;
  const y = validateConfig(b) as unknown as Record<string, unknown>;
  return Object.keys(x).every((k) => x[k] === y[k]);
}
