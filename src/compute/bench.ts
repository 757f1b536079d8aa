/**
 * The compute sections of `npm run bench` (scripts/bench.mjs runs each section in a child process of its own, so
 * peak RSS is per engine and a crash cannot take the harness down).
 *
 * Section contract (structural; any `src/<area>/bench.ts` may export `benchSections` of this shape and the harness
 * discovers it in dist/): `run` returns the JSON keys it owns; human-readable lines go through `log`.
 */
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { makeConfig, type LlamaConfig } from '../model/config.js';
import type { TrainerOptions } from '../training/index.js';
import { isNeuroShardError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { ComputeClient } from './client.js';

export interface BenchOptions {
  /** A short smoke run (`npm run bench -- --quick`): tiny sizes, one repetition. Same keys, meaningless figures. */
  quick: boolean;
  log: (line: string) => void;
}

export interface BenchSection {
  name: string;
  /** The JSON keys this section fills (set to null by the harness when the section is skipped or fails). */
  keys: readonly string[];
  run(opts: BenchOptions): Promise<Record<string, unknown>>;
}

/** Thrown by a section that cannot run here (not a failure: its keys become null with this reason). */
export class BenchSkip extends Error {
  readonly code = 'BENCH_SKIP';
}

export const GEMM_SHAPES: readonly (readonly [number, number, number])[] = [
  [512, 512, 512],
  [1024, 1024, 1024],
  [2048, 2048, 2048],
  [64, 768, 3072],
];

export function shapeKey([M, K, N]: readonly [number, number, number]): string {
  return `${M}x${K}x${N}`;
}

/**
 * A worker on the native backend. The full bench measures nothing else (the reference backend would take minutes
 * per figure and mean nothing), so its absence skips the section; the quick smoke run takes whatever loads.
 */
async function startEngine(threads: number, quick = false): Promise<ComputeClient> {
  try {
    return await ComputeClient.start({ backend: quick ? 'auto' : 'native', threads });
  } catch (e) {
    if (isNeuroShardError(e, 'BACKEND_UNAVAILABLE')) throw new BenchSkip(e.message);
    throw e;
  }
}

/** GEMM GFLOP/s of the native backend for each benchmark shape on 1 and 2 threads. */
export const gemmSection: BenchSection = {
  name: 'gemm',
  keys: ['gemm_gflops'],
  async run({ quick, log }) {
    const client = await startEngine(2);
    try {
      log(`engine: ${client.info?.description ?? '?'}`);
      const out: Record<string, { t1: number; t2: number }> = {};
      for (const shape of GEMM_SHAPES) {
        const [M, K, N] = shape;
        const r: Record<string, number> = {};
        for (const threads of [1, 2]) {
          const g = await client.run({ type: 'benchGemm', M, K, N, threads, reps: quick ? 1 : 3, minMs: quick ? 20 : 250 });
          r[`t${threads}`] = round1(g.gflops);
        }
        out[shapeKey(shape)] = { t1: r.t1, t2: r.t2 };
        log(`gemm ${shapeKey(shape)}: ${r.t1.toFixed(1)} GFLOP/s on 1 thread, ${r.t2.toFixed(1)} on 2`);
      }
      return { gemm_gflops: out };
    } finally {
      await client.close();
    }
  },
};

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The anchor model of shared/bench/torch_anchor.py, and the batch it trains on. */
export interface AnchorShape {
  config: LlamaConfig;
  batch: number;
  seq: number;
}

export function anchorShape(quick: boolean): AnchorShape {
  if (quick) {
    const config = makeConfig({
      hidden_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      intermediate_size: 128,
      vocab_size: 256,
      max_position_embeddings: 128,
    });
    return { config, batch: 2, seq: 32 };
  }
  const config = makeConfig({
    hidden_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 688,
    vocab_size: 4096,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
  });
  return { config, batch: 8, seq: 128 };
}

/** The anchor's AdamW (lr 1e-3, weight decay 0.1, PyTorch's betas), constant rate; our usual clipping at 1.0. */
const BENCH_TRAINER: Partial<TrainerOptions> = { lr: 1e-3, minLr: 1e-3, warmupSteps: 0, decaySteps: 0, beta1: 0.9, beta2: 0.999, weightDecay: 0.1 };

/** The anchor's protocol: 2 warm-up steps, then the median of 3 repetitions of 5 steps. */
function protocol(quick: boolean): { warmup: number; reps: number; steps: number } {
  return quick ? { warmup: 1, reps: 1, steps: 2 } : { warmup: 2, reps: 3, steps: 5 };
}

function randomIds(rng: Rng, n: number, V: number): Int32Array {
  return new Int32Array(n).map(() => rng.int(V));
}

/** Event-loop delay sampling interval (ms); the histogram's values include it, so it is subtracted. */
const LAG_RESOLUTION_MS = 1;

/**
 * Training tokens/s of the anchor model in the compute worker (fixed random batch, as the anchor), the
 * forward/backward/optimizer split (worker-side, mean per step of the median repetition), the main thread's
 * event-loop lag p99 while the steps run, and this process's peak RSS.
 */
export const trainSection: BenchSection = {
  name: 'train',
  keys: ['train_tok_s', 'train_ms', 'event_loop_lag_p99_ms', 'peak_rss_mb'],
  async run({ quick, log }) {
    const { config, batch: B, seq: T } = anchorShape(quick);
    const p = protocol(quick);
    const client = await startEngine(availableParallelism(), quick);
    try {
      log(`engine: ${client.info?.description ?? '?'}${client.info?.fallbackReason === undefined ? '' : ` (fallback: ${client.info.fallbackReason})`}`);
      const init = await client.run({ type: 'initModel', config, seed: 0, trainer: BENCH_TRAINER });
      log(
        `model: ${(init.paramCount / 1e6).toFixed(2)}M params, dim ${config.hidden_size}, layers ${config.num_hidden_layers}, heads ` +
          `${config.num_attention_heads}/${config.num_key_value_heads}, ffn ${config.intermediate_size}, vocab ${config.vocab_size}, seq ${T}, batch ${B}`,
      );
      const rng = new Rng(0);
      const x = randomIds(rng, B * T, config.vocab_size);
      const y = randomIds(rng, B * T, config.vocab_size);
      const step = () => client.run({ type: 'trainStep', inputs: x, targets: y, B, T }, { copy: true });
      for (let i = 0; i < p.warmup; i++) await step();
      const lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
      const reps: { tokS: number; ms: { forward: number; backward: number; optimizer: number }; loss: number }[] = [];
      for (let r = 0; r < p.reps; r++) {
        const ms = { forward: 0, backward: 0, optimizer: 0 };
        let loss = NaN;
        lag.enable();
        const t0 = performance.now();
        for (let s = 0; s < p.steps; s++) {
          const res = await step();
          ms.forward += res.ms.forward;
          ms.backward += res.ms.backward;
          ms.optimizer += res.ms.optimizer;
          loss = res.loss;
        }
        const dt = (performance.now() - t0) / p.steps;
        lag.disable();
        const tokS = (B * T) / (dt / 1000);
        for (const k of ['forward', 'backward', 'optimizer'] as const) ms[k] /= p.steps;
        reps.push({ tokS, ms, loss });
        log(
          `train rep ${r}: ${dt.toFixed(1)} ms/step (fwd ${ms.forward.toFixed(1)}, bwd ${ms.backward.toFixed(1)}, opt ${ms.optimizer.toFixed(1)}), ` +
            `${tokS.toFixed(0)} tok/s, loss ${loss.toFixed(3)}`,
        );
      }
      reps.sort((a, b) => a.tokS - b.tokS);
      const mid = reps[Math.floor(reps.length / 2)];
      const lagP99 = Math.max(0, lag.percentile(99) / 1e6 - LAG_RESOLUTION_MS);
      const rssMb = process.resourceUsage().maxRSS / 1024;
      log(`event-loop lag while training in the worker: p99 ${lagP99.toFixed(2)} ms, max ${(lag.max / 1e6 - LAG_RESOLUTION_MS).toFixed(2)} ms`);
      log(`peak RSS ${rssMb.toFixed(1)} MB`);
      return {
        train_tok_s: Math.round(mid.tokS),
        train_ms: { forward: round1(mid.ms.forward), backward: round1(mid.ms.backward), optimizer: round1(mid.ms.optimizer) },
        event_loop_lag_p99_ms: Math.round(lagP99 * 100) / 100,
        peak_rss_mb: round1(rssMb),
      };
    } finally {
      await client.close();
    }
  },
};

/** Decode tokens/s at batch 1 with the KV cache: an 8-token prompt, then 64 greedy tokens (median of 3). */
export const decodeSection: BenchSection = {
  name: 'decode',
  keys: ['decode_tok_s'],
  async run({ quick, log }) {
    const { config } = anchorShape(quick);
    const tokens = quick ? 8 : 64;
    const reps = quick ? 1 : 3;
    const client = await startEngine(availableParallelism(), quick);
    try {
      log(`engine: ${client.info?.description ?? '?'}`);
      await client.run({ type: 'initModel', config, seed: 0 });
      const rng = new Rng(1);
      // one untimed run: first-touch of the cache and activation buffers
      await client.run({ type: 'generate', prompt: randomIds(rng, 8, config.vocab_size), maxTokens: 4, temperature: 0, stopIds: [] });
      const rates: number[] = [];
      for (let r = 0; r < reps; r++) {
        // maxTokens = tokens + 1: the first token comes from the prefill, then `tokens` single-token forwards
        // greedy, no stop ids: always the full count, as the anchor
        const g = await client.run({ type: 'generate', prompt: randomIds(rng, 8, config.vocab_size), maxTokens: tokens + 1, temperature: 0, stopIds: [] });
        const rate = (g.tokens.length - 1) / (g.decodeMs / 1000);
        rates.push(rate);
        log(`decode rep ${r}: ${rate.toFixed(1)} tok/s (batch 1, greedy, KV cache; prefill ${g.prefillMs.toFixed(1)} ms)`);
      }
      return { decode_tok_s: round1(median(rates)) };
    } finally {
      await client.close();
    }
  },
};

export const benchSections: BenchSection[] = [gemmSection, trainSection, decodeSection];
