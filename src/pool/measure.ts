/**
 * Measuring a node's capacity at start, through its compute worker: the memory it offers for layers and how long
 * one layer takes for a decode step (1 token) and a prefill chunk (PREFILL_CHUNK tokens) on this machine.
 *
 * The worker's `forward` job runs a whole model from token ids, so one layer's time is the difference between a
 * (1 + EXTRA_LAYERS)-layer and a 1-layer model of the network's shape, divided by EXTRA_LAYERS (vocabulary shrunk to
 * 256: the embedding and head then cost next to nothing and cancel out in the difference). Each time is the
 * minimum of several runs: on a shared machine the minimum is the figure least disturbed by other processes. When
 * the difference drowns in noise (≤ 0), the larger model's time per layer is used: an upper bound. A decode step is
 * measured as a forward of one token without a KV cache, which leaves out attention over earlier tokens: cheap at
 * the short contexts of a decode step, so the figure is slightly optimistic. The worker's model is replaced while
 * measuring, so this runs before the node loads its span.
 */
import { freemem } from 'node:os';
import type { ComputeClient } from '../compute/client.js';
import type { LlamaConfig } from '../model/config.js';
import { layerMb, layersFor, memoryBudgetMb, tokensPerSecond, type WeightsFormat } from './capacity.js';

/** Tokens of the prefill chunk measured. */
export const PREFILL_CHUNK = 128;

export interface MeasuredCapacity {
  /** Memory offered for layers (MiB). */
  memoryMb: number;
  /** Layers that fit. */
  maxLayers: number;
  /** MiB one layer takes (weights and KV budget). */
  layerMb: number;
  /** One layer, one decode step (ms). */
  layerDecodeMs: number;
  /** One layer, a PREFILL_CHUNK-token prefill (ms). */
  layerPrefillMs: number;
  /** Decode tokens/s through one layer (1000 / layerDecodeMs). */
  layerTokensPerSec: number;
}

/** Layers added to the 1-layer model to time one layer by difference. */
const EXTRA_LAYERS = 4;

async function timeForward(compute: ComputeClient, config: LlamaConfig, layers: number, T: number, reps: number): Promise<number> {
  const c: LlamaConfig = { ...config, num_hidden_layers: layers, vocab_size: 256, bos_token_id: 0, eos_token_id: 1, pad_token_id: 0, max_position_embeddings: Math.max(T, 8) };
  await compute.run({ type: 'initModel', config: c, seed: 1 });
  const ids = new Int32Array(T).map((_, i) => (i * 7) % 256);
  await compute.run({ type: 'forward', ids, B: 1, T, lastOnly: true }, { copy: true }); // warm-up
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await compute.run({ type: 'forward', ids, B: 1, T, lastOnly: true }, { copy: true });
    ms.push(performance.now() - t0);
  }
  return Math.min(...ms);
}

export interface MeasureOptions {
  /** `--memory-mb`: cap on the memory offered. */
  memoryMb?: number;
  /** Free memory (MiB); default the OS figure. */
  freeMb?: number;
  /** Runs per figure. Default 7. */
  reps?: number;
  /** How the node holds weights (sizes its layers; the worker's own format is what gets timed). Default f32. */
  weights?: WeightsFormat;
}

export async function measureCapacity(compute: ComputeClient, config: LlamaConfig, opts: MeasureOptions = {}): Promise<MeasuredCapacity> {
  const reps = opts.reps ?? 7;
  const memoryMb = memoryBudgetMb(opts.freeMb ?? freemem() / (1 << 20), opts.memoryMb);
  const n = 1 + EXTRA_LAYERS;
  const d1 = await timeForward(compute, config, 1, 1, reps);
  const dn = await timeForward(compute, config, n, 1, reps);
  const p1 = await timeForward(compute, config, 1, PREFILL_CHUNK, reps);
  const pn = await timeForward(compute, config, n, PREFILL_CHUNK, reps);
  await compute.run({ type: 'releaseModel' });
  const perLayer = (t1: number, tn: number): number => {
    const d = (tn - t1) / EXTRA_LAYERS;
    // never claim more than a million tokens/s per layer
    return Math.max(0.001, d > 0 ? d : tn / n);
  };
  const layerDecodeMs = perLayer(d1, dn);
  const layerPrefillMs = perLayer(p1, pn);
  return {
    memoryMb,
    maxLayers: layersFor(config, memoryMb, opts.weights ?? 'f32'),
    layerMb: layerMb(config, opts.weights ?? 'f32'),
    layerDecodeMs,
    layerPrefillMs,
    layerTokensPerSec: tokensPerSecond(1, layerDecodeMs),
  };
}
