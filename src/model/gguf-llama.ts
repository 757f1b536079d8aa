/**
 * A NeuroLLM (or any Llama we load) as a GGUF file of llama.cpp's `llama` architecture, tokenizer included.
 *
 * **Weights.** Hugging Face names map to llama.cpp's (`model.layers.i.self_attn.q_proj.weight` →
 * `blk.i.attn_q.weight`, …; see TENSOR_NAMES). A tied model (tie_word_embeddings) has no `output.weight`: llama.cpp
 * then uses `token_embd.weight` for the head, as it does for converted tied checkpoints.
 *
 * **RoPE convention.** Our attention rotates halves (pairs (j, j + D/2) of each head, as Hugging Face); llama.cpp's
 * `llama` architecture rotates adjacent pairs (2j, 2j + 1), as Meta's original weights. llama.cpp's
 * convert_hf_to_gguf.py therefore permutes the rows of q_proj and k_proj of every HF checkpoint, and so do we:
 * within each head, new row 2j + t = old row t·D/2 + j (t ∈ {0, 1}); q over H heads, k over KV heads. The dot
 * products q·k are unchanged, so the model computes the same function. (The integration test shows it with tokens.)
 *
 * **Types.** `f32`: every tensor F32. `f16`: 2-D weights F16, norms F32. `q8_0`: 2-D weights Q8_0 when their rows
 * (ne[0]) are a multiple of 32, otherwise F16 (what convert_hf_to_gguf.py falls back to), norms F32.
 *
 * **Tokenizer.** Our byte-level BPE is written as a `gpt2`-type vocabulary: token texts in GPT-2's byte-to-unicode
 * alphabet, merges as "left right" in learning order (= priority, as llama.cpp ranks them), specials as control
 * tokens. `tokenizer.ggml.pre` is `dbrx`: llama.cpp's pre-tokenizer with exactly our cl100k-style pattern (the
 * `llama-bpe` name has the same pattern but makes llama.cpp take whole words found in the vocabulary without
 * merging, which is not what our BPE does). Two ids with the same bytes cannot be told apart by llama.cpp, so such a
 * vocabulary is refused.
 */
import { type LlamaConfig } from './config.js';
import { EMBED_NAME, FINAL_NORM_NAME, LM_HEAD_NAME, type ParamLayout } from './layout.js';
import { NeuroShardError } from '../util/errors.js';
import { gguf, type GgmlTypeName, type GgufFileOut, type GgufTensorOut, type GgufValue, encodeTensor, QK8_0 } from './gguf.js';
import { BOS_ID, BYTE_OFFSET, EOS_ID, PAD_ID, UNK_ID, type Tokenizer } from './tokenizer/index.js';
import { spanText } from '../util/span-text.js';

export type GgufDtype = 'f32' | 'f16' | 'q8_0';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'q8_0'];

/** llama.cpp's `tokenizer.ggml.pre` for our pre-tokenizer (see the file comment). */
export const GGUF_PRE_TOKENIZER = 'dbrx';

/** llama_token_type values. */
export const GGUF_TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** general.file_type (llama_ftype) per dtype. */
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7 };

/** Our tokenizer cannot be written as a llama.cpp vocabulary. */
export class GgufVocabError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('GGUF_VOCAB_UNSUPPORTED', message, { fault: 'config', meta });
  }
}

/** Per-layer Hugging Face suffix → llama.cpp name. */
const LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

/** The llama.cpp name of a Hugging Face Llama tensor. */
export function ggufTensorName(hfName: string): string {
  if (hfName === EMBED_NAME) return 'token_embd.weight';
  if (hfName === FINAL_NORM_NAME) return 'output_norm.weight';
  if (hfName === LM_HEAD_NAME) return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const suffix = m === null ? undefined : LAYER_NAMES[m[2]];
  if (m === null || suffix === undefined) throw new GgufVocabError(`no llama.cpp name for tensor ${hfName}`, { tensor: hfName });
  return `blk.${m[1]}.${suffix}`;
}

/**
 * Rows of a [heads·D, C] projection reordered from rotate-half to interleaved RoPE pairs (llama.cpp's
 * LlamaModel.permute): within each head, out row 2j + t = in row t·D/2 + j.
 */
export function permuteRopeRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let t = 0; t < 2; t++) {
        const src = (h * headDim + t * half + j) * cols;
        const dst = (h * headDim + 2 * j + t) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** The inverse of permuteRopeRows (interleaved → rotate-half), for reading a GGUF back. */
export function unpermuteRopeRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let t = 0; t < 2; t++) {
        const dst = (h * headDim + t * half + j) * cols;
        const src = (h * headDim + 2 * j + t) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** GPT-2's byte → printable code point table (bytes_to_unicode): byte-level BPE token texts are written in it. */
export function gpt2ByteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const map = new Array<string>(256);
  for (const b of bs) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (map[b] === undefined) map[b] = String.fromCodePoint(256 + n++);
  }
  return map;
}

/** Text of each special or reserved id. */
function specialText(id: number): string {
  switch (id) {
    case PAD_ID:
      return '<|pad|>';
    case BOS_ID:
      return '<|bos|>';
    case EOS_ID:
      return '<|eos|>';
    case UNK_ID:
      return '<|unk|>';
    default:
      return `<|reserved_${id}|>`;
  }
}

/** The tokenizer.ggml.* metadata for our tokenizer, padded with unused tokens up to the model's `vocabSize`. */
export function ggufTokenizerMetadata(tok: Tokenizer, vocabSize: number): [string, GgufValue][] {
  if (tok.vocabSize > vocabSize) throw new GgufVocabError(`the tokenizer has ${tok.vocabSize} ids, more than the model's vocab_size ${vocabSize}`);
  const b2u = gpt2ByteToUnicode();
  const tokens: string[] = [];
  const types: number[] = [];
  const seen = new Map<string, number>();
  for (let id = 0; id < vocabSize; id++) {
    let text: string;
    let type: number;
    if (id < BYTE_OFFSET) {
      text = specialText(id);
      type = id === UNK_ID ? GGUF_TOKEN_TYPE.UNKNOWN : GGUF_TOKEN_TYPE.CONTROL;
    } else if (id < tok.vocabSize) {
      text = Array.from(tok.tokenBytes(id), (b) => b2u[b]).join('');
      type = GGUF_TOKEN_TYPE.NORMAL;
    } else {
      text = `<|unused_${id}|>`;
      type = GGUF_TOKEN_TYPE.UNUSED;
    }
    const prev = seen.get(text);
    if (prev !== undefined) {
      throw new GgufVocabError(`ids ${prev} and ${id} stand for the same bytes; llama.cpp maps token texts to one id, so this vocabulary cannot be exported`, { ids: [prev, id] });
    }
    seen.set(text, id);
    tokens.push(text);
    types.push(type);
  }
  const merges = tok.merges.map(([a, b]) => `${tokens[a]} ${tokens[b]}`);
  return [
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str(GGUF_PRE_TOKENIZER)],
    ['tokenizer.ggml.tokens', gguf.strs(tokens)],
    ['tokenizer.ggml.token_type', gguf.i32s(types)],
    ['tokenizer.ggml.merges', gguf.strs(merges)],
    ['tokenizer.ggml.bos_token_id', gguf.u32(BOS_ID)],
    ['tokenizer.ggml.eos_token_id', gguf.u32(EOS_ID)],
    ['tokenizer.ggml.unknown_token_id', gguf.u32(UNK_ID)],
    ['tokenizer.ggml.padding_token_id', gguf.u32(PAD_ID)],
    // our prompts start with BOS (training documents do); llama.cpp adds it when it tokenizes a prompt
    ['tokenizer.ggml.add_bos_token', gguf.bool(true)],
    ['tokenizer.ggml.add_eos_token', gguf.bool(false)],
  ];
}

export interface LlamaGgufOptions {
  config: LlamaConfig;
  /** The layout of the whole model (span [0, L)). */
  layout: ParamLayout;
  /** The flat parameters of that layout. */
  params: Float32Array;
  tokenizer: Tokenizer;
  dtype: GgufDtype;
  /** general.name. */
  name: string;
  /**
   * Reorder q/k rows for llama.cpp's interleaved RoPE (default true). false writes them as they are: a wrong file,
   * kept only so a test can show that the permutation is what makes llama.cpp compute our function.
   */
  ropePermute?: boolean;
}

/** The type a tensor is written in for `dtype` (see the file comment). */
export function ggufTensorType(dtype: GgufDtype, shape: readonly number[]): GgmlTypeName {
  if (shape.length < 2 || dtype === 'f32') return 'F32';
  if (dtype === 'f16') return 'F16';
  return shape[shape.length - 1] % QK8_0 === 0 ? 'Q8_0' : 'F16';
}

/** The GGUF file (metadata and lazily encoded tensors) of a whole Llama model. */
export function llamaGguf(o: LlamaGgufOptions): GgufFileOut {
  const c = o.config;
  if (o.layout.span.start !== 0 || o.layout.span.end !== c.num_hidden_layers) {
    throw new GgufVocabError(`a GGUF file holds the whole model; this one holds layers ${spanText(o.layout.span)} of ${c.num_hidden_layers}`);
  }
  const D = c.head_dim;
  const metadata: [string, GgufValue][] = [
    ['general.architecture', gguf.str('llama')],
    ['general.type', gguf.str('model')],
    ['general.name', gguf.str(o.name)],
    ['general.file_type', gguf.u32(FILE_TYPE[o.dtype])],
    ['general.quantization_version', gguf.u32(2)],
    ['general.alignment', gguf.u32(32)],
    ['llama.vocab_size', gguf.u32(c.vocab_size)],
    ['llama.context_length', gguf.u32(c.max_position_embeddings)],
    ['llama.embedding_length', gguf.u32(c.hidden_size)],
    ['llama.block_count', gguf.u32(c.num_hidden_layers)],
    ['llama.feed_forward_length', gguf.u32(c.intermediate_size)],
    ['llama.rope.dimension_count', gguf.u32(D)],
    ['llama.attention.head_count', gguf.u32(c.num_attention_heads)],
    ['llama.attention.head_count_kv', gguf.u32(c.num_key_value_heads)],
    ['llama.attention.key_length', gguf.u32(D)],
    ['llama.attention.value_length', gguf.u32(D)],
    ['llama.attention.layer_norm_rms_epsilon', gguf.f32(c.rms_norm_eps)],
    ['llama.rope.freq_base', gguf.f32(c.rope_theta)],
    ...ggufTokenizerMetadata(o.tokenizer, c.vocab_size),
  ];
  // llama.cpp's own order: embedding, blocks, final norm, head
  const entries = [...o.layout.entries].sort((a, b) => rank(a.name) - rank(b.name));
  const tensors: GgufTensorOut[] = entries.map((e) => {
    const type = ggufTensorType(o.dtype, e.shape);
    const ne = [...e.shape].reverse();
    return {
      name: ggufTensorName(e.name),
      ne,
      type,
      data: () => {
        let w = o.params.subarray(e.offset, e.offset + e.size);
        if (o.ropePermute === false) return encodeTensor(type, w);
        if (e.name.endsWith('.self_attn.q_proj.weight')) w = permuteRopeRows(w, c.num_attention_heads, D, c.hidden_size);
        else if (e.name.endsWith('.self_attn.k_proj.weight')) w = permuteRopeRows(w, c.num_key_value_heads, D, c.hidden_size);
        return encodeTensor(type, w);
      },
    };
  });
  return { metadata, tensors };
}

function rank(name: string): number {
  if (name === EMBED_NAME) return -1;
  if (name === FINAL_NORM_NAME) return 1e9;
  if (name === LM_HEAD_NAME) return 1e9 + 1;
  return 0; // stable sort keeps the layers in layout order
}

/** Bytes of weights a decode step reads for `dtype`: every tensor except the embedding (one row of it is read). */
export function decodeWeightBytes(config: LlamaConfig, layout: ParamLayout, dtype: GgufDtype | 'f32'): number {
  let bytes = 0;
  for (const e of layout.entries) {
    if (e.name === EMBED_NAME) continue;
    const t = ggufTensorType(dtype, e.shape);
    bytes += t === 'F32' ? 4 * e.size : t === 'F16' ? 2 * e.size : (e.size / QK8_0) * (2 + QK8_0);
  }
  // a tied model reads the embedding matrix as its head
  if (config.tie_word_embeddings) {
    const e = layout.entries.find((x) => x.name === EMBED_NAME);
    if (e !== undefined) {
      const t = ggufTensorType(dtype, e.shape);
      bytes += t === 'F32' ? 4 * e.size : t === 'F16' ? 2 * e.size : (e.size / QK8_0) * (2 + QK8_0);
    }
  }
  return bytes;
}

