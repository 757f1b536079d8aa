/**
 * Capacity arithmetic (pure): how many MiB a layer takes, how much memory a node offers for layers, how many layers
 * that is, and tokens/s from a measured step time. The measurement itself (a decode step and a prefill chunk of
 * one layer, run in the compute worker) is `measureCapacity` in ./measure.ts.
 */
import type { LlamaConfig } from '../model/config.js';

/**
 * Bytes of an int8 [rows, cols] matrix with blocks along cols: 32 weights per float32 scale (GGUF q8_0), 16 where
 * 32 does not divide cols (as tensor/ops/quantize.ts int8BlockFor and int8MatrixBytes).
 */
const int8MatrixBytes = (rows: number, cols: number): number => rows * cols + 4 * rows * Math.ceil(cols / (cols % 32 === 0 ? 32 : 16));

/** How a node holds its weights (`--weights`): float32, or int8 blocks of 32 with a float32 scale each. */
export type WeightsFormat = 'f32' | 'int8';

const MiB = 1 << 20;

/** Memory kept back from the free memory measured at start (OS, Node heap, activations, libp2p buffers). */
export const MEMORY_RESERVE_MB = 512;
/** KV-cache tokens budgeted per layer held (one session at the model's full context, f32 K and V). */
export function kvBytesPerLayer(c: LlamaConfig, tokens = c.max_position_embeddings): number {
  return 2 * tokens * c.num_key_value_heads * c.head_dim * 4;
}

/**
 * Bytes of one transformer layer's weights (Llama block: q, k, v, o, gate, up, down, two norms): float32, or with
 * `int8` the seven matrices as int8 plus a float32 scale per 32 weights along K (1.125 bytes a weight), norms f32.
 */
export function layerWeightBytes(c: LlamaConfig, weights: WeightsFormat = 'f32'): number {
  const C = c.hidden_size;
  const HD = c.num_attention_heads * c.head_dim;
  const KVD = c.num_key_value_heads * c.head_dim;
  const F = c.intermediate_size;
  if (weights === 'int8') {
    // rows × cols as the shard quantizes them: blocks run along each GEMM's K (model/shard.ts)
    const m = int8MatrixBytes(HD, C) + int8MatrixBytes(C, HD) + 2 * int8MatrixBytes(KVD, C) + 2 * int8MatrixBytes(F, C) + int8MatrixBytes(C, F);
    return m + 4 * 2 * C;
  }
  const qo = 2 * C * HD;
  const kv = 2 * C * KVD;
  return 4 * (qo + kv + 3 * C * F + 2 * C);
}

/** f32 bytes of the embedding plus the final norm and LM head (a driver or validator holds them besides its layers). */
export function extraWeightBytes(c: LlamaConfig): number {
  const emb = c.vocab_size * c.hidden_size;
  return 4 * (emb + c.hidden_size + (c.tie_word_embeddings ? 0 : emb));
}

/** MiB the pool charges per layer held: weights (as held) plus the KV-cache budget, rounded up. */
export function layerMb(c: LlamaConfig, weights: WeightsFormat = 'f32'): number {
  return Math.ceil((layerWeightBytes(c, weights) + kvBytesPerLayer(c)) / MiB);
}

/** Memory offered for layers: free memory minus the reserve, capped by `--memory-mb` when given. */
export function memoryBudgetMb(freeMb: number, capMb: number | undefined, reserveMb = MEMORY_RESERVE_MB): number {
  const free = Math.max(0, Math.floor(freeMb) - reserveMb);
  return Math.max(0, capMb === undefined ? free : Math.min(free, Math.floor(capMb)));
}

/**
 * Layers that fit in `memoryMb` after the embedding and head (counted once, whether or not the span needs them;
 * they stay float32 in both formats).
 */
export function layersFor(c: LlamaConfig, memoryMb: number, weights: WeightsFormat = 'f32'): number {
  const usable = memoryMb * MiB - extraWeightBytes(c);
  if (usable <= 0) return 0;
  return Math.min(c.num_hidden_layers, Math.floor(usable / (layerMb(c, weights) * MiB)));
}

/** Tokens per second of a step that processes `tokens` tokens in `ms`. */
export function tokensPerSecond(tokens: number, ms: number): number {
  return ms > 0 && Number.isFinite(ms) ? tokens / (ms / 1000) : 0;
}

/** The least memory (MiB) that holds one layer of `c`: the embedding and head plus one layer's weights and KV cache. */
export function minMemoryForOneLayerMb(c: LlamaConfig, weights: WeightsFormat = 'f32'): number {
  return Math.ceil((extraWeightBytes(c) + layerMb(c, weights) * MiB) / MiB);
}

/**
 * What a node whose offered memory holds no layer is told once at start (with `--span auto`, the default): the pool
 * then never finds it a span, and before session 29 it only logged "found no span for this node yet" every 10 s.
 * Undefined when the memory holds a layer (`maxLayers`, as measured). `capMb` is `--memory-mb` when given.
 */
export function noLayerMessage(c: LlamaConfig, maxLayers: number, memoryMb: number, capMb: number | undefined, weights: WeightsFormat = 'f32'): string | undefined {
  if (maxLayers > 0) return undefined;
  const need = minMemoryForOneLayerMb(c, weights);
  const what = capMb !== undefined && capMb <= memoryMb ? `--memory-mb ${capMb}` : `the free memory less the ${MEMORY_RESERVE_MB} MiB reserve (${memoryMb} MiB)`;
  return `${what} holds no layer of this model: one takes ${need} MiB (the embedding and head once, then ${layerMb(c, weights)} MiB a layer with its KV cache), so this node holds no layers (its API still answers through the holders of others); give it --memory-mb ${need} or more, or pass --span none to run an entry node on purpose`;
}
