/**
 * `npm run bench -- --only int8`: what `--weights int8` and `--wire f16|bf16` cost and give.
 *
 * Section `int8`:
 * - int8_decode_ratio: decode tok/s with int8 weights ÷ with float32, the 12x768 preset (seed 0), batch 1, KV cache,
 *   greedy, on the native backend at 1 thread (NEUROSHARD_BENCH_THREADS overrides); see decodeRates for the
 *   estimator (10th percentile of per-step times, 3 runs of 64 steps, formats alternating). Speed does not depend
 *   on the weights' values, so the seeded initialisation is used.
 * - int8_ppl_delta: (ppl_int8 − ppl_f32) ÷ ppl_f32 on the genesis validation set (its first VAL_BATCHES batches of 8 × 128 tokens),
 *   for the nano model trained here first: STEPS steps of the solo trainer from seed 0 on the genesis training
 *   stream (a random model's near-uniform logits would hide what quantization does to a trained one).
 * - int8_detail: the figures behind both, the load average, and how often int8 changes greedy output.
 *
 * Also in section `int8` (key wire_greedy_diff): how often activations rounded to f16 or bf16 between hops change greedy output, against float32
 * activations, on the same trained nano cut into one layer per hop (3 hop boundaries, the most nano has): PROMPTS
 * prompts (16 tokens from the validation set, each from its own window) decoded greedily for 64 tokens. The
 * rounding is tensor/half.ts, the functions the wire format uses (protocols/tensor-wire.ts).
 * - wire_greedy_diff: {f16, bf16}: {prompts_differing (share), tokens_differing (share of the 64·PROMPTS positions
 *   whose token differs), first_diff_median (position of the first differing token among differing prompts)}.
 */
import { availableParallelism, loadavg } from 'node:os';
import { openCorpus, type Batch } from '../../data/index.js';
import { KVCache } from '../../model/kv-cache.js';
import { LlamaShard } from '../../model/shard.js';
import { presetConfig } from '../../model/presets.js';
import type { LlamaConfig } from '../../model/config.js';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from '../../tensor/half.js';
import { selectBackend, type Backend } from '../../tensor/index.js';
import { isNeuroShardError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { BenchSkip, round1, type BenchSection } from '../bench.js';
import { ComputeClient } from '../client.js';

const PROMPT = 16;
/** Training steps of the nano model the quality figures use, and validation batches scored (8 × 128 tokens each). */
const STEPS = 200;
const VAL_BATCHES = 64;
const GEN = 64;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function benchThreads(): number {
  const env = Number(process.env.NEUROSHARD_BENCH_THREADS);
  return Number.isInteger(env) && env >= 1 && env <= 256 ? env : 1;
}

async function nativeBackend(threads: number): Promise<Backend> {
  const sel = await selectBackend({ backend: 'native', threads }).catch((e: unknown) => {
    if (isNeuroShardError(e, 'BACKEND_UNAVAILABLE')) throw new BenchSkip(e.message);
    throw e;
  });
  return sel.backend;
}

/**
 * Decode tok/s per format, in this process on the native backend: the same seeded model as float32 and as int8,
 * `reps` runs of `steps` greedy decode steps each (batch 1, KV cache, after an 8-token prompt), formats alternating.
 * Every step is timed on its own, and the rate is taken at the 10th percentile of step times: on a machine shared
 * far past its cores (load 25–45 on 2 cores here) whole runs are stretched by descheduling, and a low percentile is
 * the figure least disturbed by other processes (the median is reported beside it).
 */
export async function decodeRates(config: LlamaConfig, threads: number, reps: number, steps: number): Promise<{ f32: number; int8: number; f32Median: number; int8Median: number }> {
  const backend = await nativeBackend(threads);
  backend.setThreads(threads);
  const f32 = new LlamaShard({ config, backend, seed: 0 });
  const shards = { f32, int8: f32.quantized() };
  const rng = new Rng(1);
  const prompt = Int32Array.from({ length: 8 }, () => rng.int(config.vocab_size));
  const times: Record<'f32' | 'int8', number[]> = { f32: [], int8: [] };
  for (let r = 0; r < reps + 1; r++) {
    for (const w of ['f32', 'int8'] as const) {
      const sh = shards[w];
      const cache = new KVCache(config, { span: sh.span, batch: 1, maxLen: prompt.length + steps + 1 });
      let logits = sh.forward(prompt, 1, prompt.length, { cache });
      let tok = argmax(logits.subarray((prompt.length - 1) * config.vocab_size));
      for (let k = 0; k < steps; k++) {
        const t0 = performance.now();
        logits = sh.forward(Int32Array.of(tok), 1, 1, { cache });
        tok = argmax(logits);
        if (r > 0) times[w].push(performance.now() - t0); // run 0 warms up
      }
    }
  }
  const pct = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;
  return {
    f32: 1000 / pct(times.f32, 0.1),
    int8: 1000 / pct(times.int8, 0.1),
    f32Median: 1000 / pct(times.f32, 0.5),
    int8Median: 1000 / pct(times.int8, 0.5),
  };
}

/** Trains nano from seed 0 for `steps` steps on the genesis stream (solo trainer in a worker); returns its weights. */
async function trainedNano(steps: number, threads: number, log: (l: string) => void): Promise<{ config: LlamaConfig; params: Float32Array; val: Batch[]; loss: number }> {
  const config = presetConfig('nano');
  const corpus = await openCorpus(undefined);
  const B = 8;
  const T = 128;
  const stream = await corpus.trainStream({ nodeId: 'bench-int8', batchSize: B, seqLen: T, seed: 0 });
  const val = await corpus.validationBatches({ batchSize: B, seqLen: T, maxBatches: VAL_BATCHES });
  const client = await ComputeClient.start({ backend: 'native', threads: Math.max(threads, availableParallelism()) });
  try {
    await client.run({ type: 'initModel', config, seed: 0, trainer: { decaySteps: steps } });
    const t0 = performance.now();
    let loss = NaN;
    for (let s = 0; s < steps; s++) {
      const b = stream.next();
      loss = (await client.run({ type: 'trainStep', inputs: b.inputs.slice(), targets: b.labels.slice(), B, T })).loss;
    }
    log(`trained nano ${steps} steps of ${B}×${T} in ${((performance.now() - t0) / 1000).toFixed(1)} s, last train loss ${loss.toFixed(3)}`);
    const { params } = await client.run({ type: 'getParams' });
    return { config, params, val, loss };
  } finally {
    await client.close();
  }
}

/** Mean validation cross-entropy (nats/token) of a shard over batches (also scripts/experiments/int8-decode-ppl.mjs). */
export function valLoss(shard: LlamaShard, val: Batch[]): number {
  let sum = 0;
  let n = 0;
  for (const b of val) {
    shard.forward(b.inputs, b.batchSize, b.seqLen);
    const r = shard.loss(b.labels, { grad: false });
    sum += r.loss * r.count;
    n += r.count;
  }
  return sum / n;
}

type Wire = 'f32' | 'f16' | 'bf16';

function roundTrip(x: Float32Array, wire: Wire): void {
  if (wire === 'f16') for (let i = 0; i < x.length; i++) x[i] = halfToFloat(floatToHalf(x[i]!));
  else if (wire === 'bf16') for (let i = 0; i < x.length; i++) x[i] = bf16ToFloat(floatToBf16(x[i]!));
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** Greedy decode through a chain of shards, activations rounded to `wire` at every hop boundary. */
function greedyChain(hops: LlamaShard[], prompt: Int32Array, n: number, wire: Wire): number[] {
  const caches = hops.map((h) => new KVCache(h.config, { span: h.span, batch: 1, maxLen: prompt.length + n }));
  const out: number[] = [];
  let input: Int32Array = prompt;
  for (let k = 0; k < n; k++) {
    const T = input.length;
    let x: Int32Array | Float32Array = input;
    let y: Float32Array = new Float32Array(0);
    for (let h = 0; h < hops.length; h++) {
      y = hops[h]!.forward(x, 1, T, { cache: caches[h] });
      if (h < hops.length - 1) {
        const send = y.slice();
        roundTrip(send, wire);
        x = send;
      }
    }
    const V = hops[0]!.config.vocab_size;
    const tok = argmax(y.subarray((T - 1) * V, T * V));
    out.push(tok);
    input = Int32Array.of(tok);
  }
  return out;
}

function prompts(val: Batch[], count: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (const b of val) {
    for (let r = 0; r < b.batchSize && out.length < count; r++) out.push(b.inputs.slice(r * b.seqLen, r * b.seqLen + PROMPT));
    if (out.length >= count) break;
  }
  return out;
}

interface Diff {
  prompts_differing: number;
  tokens_differing: number;
  first_diff_median: number | null;
}

function compare(ref: number[][], other: number[][]): Diff {
  let differing = 0;
  let tokens = 0;
  const firsts: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    const a = ref[i]!;
    const b = other[i]!;
    let first = -1;
    for (let t = 0; t < a.length; t++) {
      if (a[t] !== b[t]) {
        tokens++;
        if (first < 0) first = t;
      }
    }
    if (first >= 0) {
      differing++;
      firsts.push(first);
    }
  }
  const total = ref.length * (ref[0]?.length ?? 0);
  return {
    prompts_differing: Math.round((differing / ref.length) * 1000) / 1000,
    tokens_differing: Math.round((tokens / Math.max(1, total)) * 1000) / 1000,
    first_diff_median: firsts.length > 0 ? median(firsts) : null,
  };
}


const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export const int8Section: BenchSection = {
  name: 'int8',
  keys: ['int8_decode_ratio', 'int8_ppl_delta', 'int8_detail', 'wire_greedy_diff'],
  async run({ quick, log }) {
    const threads = benchThreads();
    const load0 = loadavg()[0]!;
    log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} on ${availableParallelism()} cores; decode on ${threads} thread(s)`);
    const shape = quick ? 'nano' : '12x768';
    const rates = await decodeRates(presetConfig(shape), threads, quick ? 1 : 3, quick ? 8 : GEN);
    log(
      `${shape} decode (p10 of step times): f32 ${rates.f32.toFixed(1)} tok/s, int8 ${rates.int8.toFixed(1)} tok/s (${(rates.int8 / rates.f32).toFixed(2)}×); ` +
        `medians ${rates.f32Median.toFixed(1)} / ${rates.int8Median.toFixed(1)} (${(rates.int8Median / rates.f32Median).toFixed(2)}×)`,
    );

    const steps = quick ? 2 : STEPS;
    const t = await trainedNano(steps, threads, log);
    const backend = await nativeBackend(availableParallelism());
    const val = quick ? t.val.slice(0, 2) : t.val;
    const f32 = new LlamaShard({ config: t.config, backend, params: t.params });
    const q = f32.quantized();
    const lf = valLoss(f32, val);
    const lq = valLoss(q, val);
    const pf = Math.exp(lf);
    const pq = Math.exp(lq);
    const delta = (pq - pf) / pf;
    log(`nano validation (${val.length} batches of 8×128): ppl f32 ${pf.toFixed(3)}, int8 ${pq.toFixed(3)} (${(100 * delta).toFixed(3)} %); weights ${(f32.weightBytes / 1e6).toFixed(2)} MB f32, ${(q.weightBytes / 1e6).toFixed(2)} MB int8`);
    // greedy agreement int8 vs f32 on the same prompts as the wire section
    const ps = prompts(t.val, quick ? 2 : 20);
    const gen = quick ? 8 : GEN;
    const diff = compare(
      ps.map((p) => greedyChain([f32], p, gen, 'f32')),
      ps.map((p) => greedyChain([q], p, gen, 'f32')),
    );
    log(`int8 vs f32 greedy (${ps.length} prompts × ${gen} tokens): ${JSON.stringify(diff)}`);
    const wire = wireGreedyDiff(t, backend, quick, log);
    return {
      wire_greedy_diff: { ...wire, model: `nano trained ${steps} steps` },
      int8_decode_ratio: round3(rates.int8 / rates.f32),
      int8_ppl_delta: Math.round(delta * 1e5) / 1e5,
      int8_detail: {
        shape,
        threads,
        load_avg_1m: round1(load0),
        f32_decode_tok_s: round1(rates.f32),
        int8_decode_tok_s: round1(rates.int8),
        decode_ratio_median: round3(rates.int8Median / rates.f32Median),
        ppl_model: `nano trained ${steps} steps (8×128, seed 0)`,
        ppl_f32: round3(pf),
        ppl_int8: round3(pq),
        val_tokens: val.reduce((s, b) => s + b.batchSize * b.seqLen, 0),
        weights_mb: { f32: round1(f32.weightBytes / 1e6), int8: round1(q.weightBytes / 1e6) },
        greedy_vs_f32: diff,
      },
    };
  },
};

/** The wire part, on the same trained model (sections run in child processes of their own: one training run). */
function wireGreedyDiff(t: Awaited<ReturnType<typeof trainedNano>>, backend: Backend, quick: boolean, log: (l: string) => void): Record<string, unknown> {
  {
    const L = t.config.num_hidden_layers;
    const whole = new LlamaShard({ config: t.config, backend, params: t.params });
    // one layer per hop: hop l holds layer l (the first also the embedding, the last the head)
    const hops = Array.from({ length: L }, (_, l) => {
      const s = new LlamaShard({ config: t.config, backend, span: { start: l, end: l + 1 }, seed: 0 });
      for (const e of s.entries) s.params.set(whole.param(e.name), e.offset);
      return s;
    });
    const ps = prompts(t.val, quick ? 2 : 50);
    const gen = quick ? 8 : GEN;
    const ref = ps.map((p) => greedyChain(hops, p, gen, 'f32'));
    const out: Record<string, Diff> = {};
    for (const w of ['f16', 'bf16'] as const) {
      out[w] = compare(
        ref,
        ps.map((p) => greedyChain(hops, p, gen, w)),
      );
      log(`wire ${w} vs f32 (${ps.length} prompts × ${gen} greedy tokens, ${L - 1} hop boundaries): ${JSON.stringify(out[w])}`);
    }
    return { ...out, prompts: ps.length, tokens: gen, hop_boundaries: L - 1 };
  }
}

export const benchSections: BenchSection[] = [int8Section];
