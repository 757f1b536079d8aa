/**
 * `npm run bench -- --only llamacpp`: llama.cpp as a second anchor for decoding. The same weights (the nano and
 * 12x768 shapes, seed 0) are decoded at batch 1 by our engine (native backend, KV cache, greedy) and by llama.cpp
 * (node-llama-cpp's prebuilt CPU build, from a GGUF file we export: f32, and q8_0), with the same thread count, in
 * the same process run, after one untimed warm-up each; the median of 7 repetitions of 64 decode steps (3 before
 * session 18).
 *
 * Against the memory-bandwidth bound: a decode step at batch 1 reads every weight once (the embedding only one row),
 * so tok/s ≤ read bandwidth ÷ bytes read per token. Since session 18 (`decode_bound_share`, the primary figure) the
 * read bandwidth is sampled right before every timed run (ReadProbe: bound, run, bound, run, … in this process; on
 * this shared host the bound moved 2× between quiet runs an hour apart, so a share must divide by the bound of the
 * same minutes), and the bytes are what the step reads (decodeReadBytes: matrices in the engine's own format, the
 * float32 head, norms, one embedding row, the KV at the timed steps' mean context). Since session 22 the bound for
 * our engine is read over the decode's own weight buffers (the compute worker's `readBound` job: every layer matrix,
 * norm and the head of the shard that decodes, LlamaShard.decodeReadArrays, on the decode's thread count, each thread
 * pinned and reading its part of every buffer; best of 3 passes of each of four readers: those arrays or the same
 * bytes merged into back-to-back ranges (decodeReadRanges), 1 or 4 streams a thread): the fastest
 * this host reads those very bytes, so a share no longer depends on where the VM placed another buffer, nor on
 * which reader suits its pages that day (a 4-stream reader over its own buffer gave int8 shares up to 108 %). The
 * ReadProbe's sample (its own 128 MiB a thread, 4 streams) is still taken before every run and reported beside
 * (`probe_share`, `probe_bound_gb_s`), and stays llama.cpp's bound (its buffers are not ours to read). The older key
 * `decode_bandwidth` stays as it was: one memcmp bound before everything (measureReadBandwidth: `threads` workers
 * each memcmp two 64 MiB buffers, the best of 15 passes) over GGUF's weight bytes (q8_0 for our int8).
 *
 * Threads: the machine's cores (as the decode section), or NEUROSHARD_BENCH_THREADS; both engines use the same count.
 *
 * Keys (objects keyed by shape, then by weight type):
 * - llamacpp_decode_tok_s: llama.cpp's decode tok/s, {f32, q8_0};
 * - llamacpp_decode_ratio: ours ÷ llama.cpp: f32 (our f32 vs its f32) and int8 (our `--weights int8`, blocks of 32
 *   int8 with a float32 scale, vs its q8_0, blocks of 32 int8 with an f16 scale);
 * - llamacpp_ours_decode_tok_s: our f32 and int8 decode tok/s in this same run;
 * - decode_bound_share: {method, probe_method, <shape>: {f32 | int8: {read_mb: {matrices, head, small, kv, total},
 *   pairs, share: {median, min, max} over the runs of each run's tok/s × bytes ÷ the bound sampled before it (the
 *   read of the decode's own weights, session 22), bound_gb_s: {median, min, max}, bound_cpu_gb_s (the same samples
 *   per CPU-second of the reader's threads: the memory's speed with the CPU sharing taken out; not used in the
 *   share), bound_reader (the winning reader per run: 'arrays' or 'ranges' / streams a thread), probe_share, probe_bound_gb_s,
 *   probe_bound_cpu_gb_s (the same against the ReadProbe: the key's meaning before session 22), tok_s},
 *   llamacpp_f32 | llamacpp_q8_0: {read_mb (GGUF weights + its float16 KV), share, bound_gb_s (the ReadProbe's)}}};
 * - decode_bandwidth: {read_gb_s (the best pass), read_gb_s_median, read_gb_s_min, read_method, <shape>: {f32: {weight_mb, bound_tok_s, ours, llamacpp}, q8_0: {…}}} where ours and
 *   llamacpp are fractions of the bound.
 */
import { availableParallelism, loadavg } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadGenesisTokenizer } from '../../data/index.js';
import { makeConfig, type LlamaConfig } from '../../model/config.js';
import { writeGguf } from '../../model/gguf.js';
import { decodeWeightBytes, llamaGguf } from '../../model/gguf-llama.js';
import { ParamLayout } from '../../model/layout.js';
import { presetConfig } from '../../model/presets.js';
import { int8MatrixBytes } from '../../tensor/ops/quantize.js';
import { nativeAddonPath } from '../../tensor/backends/native.js';
import { isNeuroShardError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { BenchSkip, round1, type BenchSection } from '../bench.js';
import { ComputeClient } from '../client.js';
import { openLlamaCppModel } from './anchor.js';

const PROMPT = 8;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** What measureReadBandwidth found: the best pass (the bound), and the median and slowest as its spread. */
export interface ReadBandwidth {
  bestBps: number;
  medianBps: number;
  minBps: number;
  passes: number;
  /** One line on how it was measured (printed by the bench). */
  method: string;
}

/**
 * Read bandwidth: `threads` workers (the decode's thread count) each memcmp two `mib`-MiB buffers `reps` times per
 * pass, all workers at once; bandwidth of a pass = bytes compared ÷ its wall time. The buffers are filled (every
 * page touched) before any pass and one untimed pass runs first, so no pass pays page faults or a cold TLB. The
 * bound is the best of `passes` passes; the median and the slowest pass are its spread. Before the tenth session
 * this was the best of 3 short passes with no warm-up, and it moved from 30.9 to 44.4 GB/s between two quiet runs.
 */
export async function measureReadBandwidth(threads: number, mib = 64, reps = 4, passes = 15): Promise<ReadBandwidth> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const n = workerData.mib * 1048576;
    const a = Buffer.alloc(n, 7), b = Buffer.alloc(n, 7);
    // the decode's weights sit on 2 MiB pages (LlamaShard, adviseHugePages): so do these, or the bound would be
    // that of 4 KiB pages (2-10 % lower here)
    let huge = 0;
    if (workerData.addon) try { const m = require(workerData.addon); huge = m.adviseHugePages(a) + m.adviseHugePages(b); } catch {}
    parentPort.on('message', () => {
      let s = 0;
      for (let r = 0; r < workerData.reps; r++) s += Buffer.compare(a, b);
      parentPort.postMessage(s);
    });
    parentPort.postMessage({ huge });
  `;
  const where = nativeAddonPath();
  const addon = 'path' in where ? where.path : undefined;
  const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true, workerData: { mib, reps, addon } }));
  const pass = async (): Promise<number> => {
    const t0 = performance.now();
    await Promise.all(
      workers.map((w) => {
        const p = new Promise((res) => w.once('message', res));
        w.postMessage('go');
        return p;
      }),
    );
    return (threads * 2 * mib * 1048576 * reps) / ((performance.now() - t0) / 1000);
  };
  try {
    const ready = (await Promise.all(workers.map((w) => new Promise((res) => w.once('message', res))))) as { huge: number }[];
    const hugeMiB = Math.round(ready.reduce((x, r) => x + r.huge, 0) / 1048576);
    await pass(); // warm-up: caches, TLB, the workers' JIT
    const bps: number[] = [];
    for (let i = 0; i < passes; i++) bps.push(await pass());
    bps.sort((x, y) => x - y);
    return {
      bestBps: bps[bps.length - 1],
      medianBps: bps[Math.floor(bps.length / 2)],
      minBps: bps[0],
      passes,
      method: `best of ${passes} passes after a warm-up; ${threads} worker thread(s) at once, each memcmp of 2 × ${mib} MiB (pages touched first; ${hugeMiB} MiB of them on 2 MiB pages) ${reps} times per pass`,
    };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** What one batch-1 decode step reads from memory, in bytes, split by what it is (decodeReadBytes). */
export interface DecodeReadBytes {
  /** The seven projection matrices of every layer: float32, or int8 codes + one float32 scale per block. */
  matrices: number;
  /** The LM head [V, C] (float32 in both formats: an int8 shard keeps it float32; tied: the embedding matrix). */
  head: number;
  /** 2 RMSNorm weight vectors per layer, the final norm, and the one embedding row looked up. */
  small: number;
  /** K and V of every layer at the step's context (float32), averaged over the steps timed. */
  kv: number;
  total: number;
}

/**
 * Bytes a batch-1 decode step of `config` reads, averaged over the bench's timed steps: step d (1..steps) feeds the
 * token sampled from the previous one at position prompt + d − 1 and attends over prompt + d positions, so the KV
 * reads average prompt + (steps + 1) / 2 positions. Every matrix is read once a step (q/k/v and gate/up are one
 * fused matrix each, read once); int8 matrices count their codes and float32 scales at the shard's block size
 * (int8BlockFor: 32, or 16 where 32 does not divide K), not GGUF q8_0's 1.0625 bytes a weight. Not counted: the
 * activations (a few rows of C or F floats, cache-resident), the KV row written (2·KVD floats a layer), the logits
 * written (V floats).
 */
export function decodeReadBytes(config: LlamaConfig, weights: 'f32' | 'int8', prompt: number, steps: number): DecodeReadBytes {
  const C = config.hidden_size;
  const HD = config.num_attention_heads * config.head_dim;
  const KVD = config.num_key_value_heads * config.head_dim;
  const F = config.intermediate_size;
  const L = config.num_hidden_layers;
  // [rows = outputs, cols = K]: q, k, v, o, gate, up, down
  const mats: [number, number][] = [
    [HD, C],
    [KVD, C],
    [KVD, C],
    [C, HD],
    [F, C],
    [F, C],
    [C, F],
  ];
  let matrices = 0;
  for (const [r, k] of mats) matrices += weights === 'f32' ? 4 * r * k : int8MatrixBytes(r, k);
  matrices *= L;
  const head = 4 * config.vocab_size * C;
  const small = 4 * (2 * L * C + C + C);
  const positions = prompt + (steps + 1) / 2;
  const kv = 4 * L * 2 * KVD * positions;
  return { matrices, head, small, kv, total: matrices + head + small + kv };
}

/** One pass of a ReadProbe: every worker's reads at once. */
export interface ReadPass {
  /** Bytes read by all workers ÷ (latest end − earliest start), bytes/s. */
  bps: number;
  /** Bytes read ÷ the workers' summed CPU time × workers: what the pass would read with no descheduling. */
  cpuBps: number;
}

/**
 * The read bound, measured where and when the decode runs (session 18): `threads` worker threads, each with its own
 * `mib`-MiB buffer (2 MiB pages asked for before the pages are touched, as LlamaShard's weights; filled, so every page
 * exists), each reading it with the native addon's `readStream` (AVX-512 64-byte loads summed in 4 chains where the
 * CPU has them; timed inside the addon with CLOCK_MONOTONIC, so the JS messaging is not in the figure), worker i
 * pinned to CPU i for the call. A pass: every worker reads its buffer `reps` times at once; bandwidth = all bytes ÷
 * (latest end − earliest start). `sample(k)` is the best of k passes (a pass a worker spends descheduled reads low;
 * the best is the machine's memory at that moment). The bench takes a sample before each decode run (bound, ours,
 * bound, ours, …) so that each share divides by the bound of the same minutes.
 */
export class ReadProbe {
  private constructor(
    private readonly workers: Worker[],
    readonly mib: number,
    readonly hugeMiB: number,
    readonly avx512: boolean,
  ) {}

  static async start(threads: number, mib: number): Promise<ReadProbe> {
    const where = nativeAddonPath();
    if (!('path' in where)) throw new BenchSkip('the native addon is not built: no read probe');
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const m = require(workerData.addon);
      const n = workerData.mib * 1048576;
      const a = new Uint8Array(new ArrayBuffer(n + 4096));
      const huge = m.adviseHugePages(a); // before the first touch: the pages fault in as 2 MiB pages
      a.fill(7); // every page touched; equal halves, so that memcmp reads them to the end
      // the pre-session-18 reader, for comparison (scripts/experiments/read-bound.mjs): memcmp of the two halves
      const h = Buffer.from(a.buffer, 0, n / 2), g = Buffer.from(a.buffer, n / 2, n / 2);
      const cmp = (reps) => {
        const t0 = performance.timeOrigin + performance.now();
        let s = 0;
        for (let r = 0; r < reps; r++) s += h.compare(g);
        const t1 = performance.timeOrigin + performance.now();
        return { t0, t1, cpuMs: t1 - t0, bytes: n * reps, sum: s };
      };
      parentPort.on('message', (x) => parentPort.postMessage(x.memcmp ? cmp(x.reps) : m.readStream(a, x.reps, x.pin ? workerData.cpu : -1, x.streams)));
      parentPort.postMessage({ huge, probe: m.readStream(a, 1, workerData.cpu) });
    `;
    const cpus = availableParallelism();
    const workers = Array.from({ length: threads }, (_, i) => new Worker(code, { eval: true, workerData: { mib, addon: where.path, cpu: i % cpus } }));
    try {
      const ready = (await Promise.all(workers.map((w) => new Promise((res, rej) => (w.once('message', res), w.once('error', rej)))))) as { huge: number; probe: { avx512: boolean } }[];
      return new ReadProbe(workers, mib, Math.round(ready.reduce((x, r) => x + r.huge, 0) / 1048576), ready.every((r) => r.probe.avx512));
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
  }

  /** One pass; `streams` (1, 2 or 4) parts of each buffer read side by side, or `'memcmp'` (the old reader). */
  async pass(reps = 1, streams: 1 | 2 | 4 | 'memcmp' = ReadProbe.STREAMS, pin = ReadProbe.PIN): Promise<ReadPass> {
    const rs = (await Promise.all(
      this.workers.map((w) => {
        const p = new Promise((res) => w.once('message', res));
        w.postMessage(streams === 'memcmp' ? { reps, memcmp: true } : { reps, streams, pin });
        return p;
      }),
    )) as { t0: number; t1: number; cpuMs: number; bytes: number }[];
    const bytes = rs.reduce((x, r) => x + r.bytes, 0);
    const ms = Math.max(...rs.map((r) => r.t1)) - Math.min(...rs.map((r) => r.t0));
    const cpuMs = rs.reduce((x, r) => x + r.cpuMs, 0) / rs.length;
    return { bps: bytes / (ms / 1000), cpuBps: bytes / (Math.max(cpuMs, 1e-6) / 1000) };
  }

  /** The reader the bench uses, pinned or not (scripts/experiments/read-bound.mjs compares them). */
  static readonly STREAMS: 1 | 2 | 4 = 4;
  static readonly PIN: boolean = true;

  /** Best of k passes (bytes/s), and the best per CPU-second (what the memory gave the threads while they ran). */
  async sample(k = 3, reps = 1): Promise<ReadPass> {
    const best = { bps: 0, cpuBps: 0 };
    for (let i = 0; i < k; i++) {
      const r = await this.pass(reps);
      best.bps = Math.max(best.bps, r.bps);
      best.cpuBps = Math.max(best.cpuBps, r.cpuBps);
    }
    return best;
  }

  get method(): string {
    return `best of 3 passes before each decode run; ${this.workers.length} worker thread(s) at once, each pinned to its own CPU, reading its own ${this.mib} MiB (${this.hugeMiB} MiB of them on 2 MiB pages in all) with ${this.avx512 ? `AVX-512 64-byte loads, ${ReadProbe.STREAMS} streams a thread` : 'portable 64-bit loads'} (native readStream)`;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Decode runs paired with the read bound sampled just before each (bound, run, bound, run, …). */
interface Paired {
  /** tok/s of each run. */
  rates: number[];
  /**
   * The bound (bytes/s) taken just before each run: for our engine the read of the decode's own weight buffers
   * (weightsBound, since session 22), for llama.cpp (whose buffers we cannot read) the ReadProbe's.
   */
  bounds: number[];
  /** The same samples per CPU-second of the reader's threads (not descheduling-bound; beside the bound, not used). */
  cpuBounds: number[];
  /** The ReadProbe's sample before each run (the pre-session-22 bound, kept for comparison). */
  probeBounds: number[];
  probeCpuBounds: number[];
  /** The weights reader of the best pass, per run ('arrays/4', 'ranges/1', …; 'probe': the ReadProbe's bound). */
  boundReaders: string[];
}

/** One sample of the read bound over the decode's own weights (the compute worker's `readBound` job). */
interface WeightsBound {
  bps: number;
  cpuBps: number;
  reader: string;
}

interface ShapeResult {
  ours: Paired;
  oursInt8: Paired;
  llama: { f32: Paired; q8_0: Paired };
  /** Weight bytes a token in GGUF's formats (the pre-session-18 `decode_bandwidth` key's count). */
  bytes: { f32: number; q8_0: number };
}

async function benchShape(name: string, config: LlamaConfig, threads: number, reps: number, steps: number, dir: string, probe: ReadProbe, log: (l: string) => void): Promise<ShapeResult> {
  const rng = new Rng(1);
  const prompt = Array.from({ length: PROMPT }, () => rng.int(config.vocab_size));
  // `reps` timed runs, each right after a sample of the read bound (the first sample is a warm-up): the ReadProbe's
  // sample (the old bound, kept beside), then the read of the decode's own weights (the bound: readBound, best of 3
  // passes of each of its four readers), then the run
  const paired = async (run: () => Promise<number>, weights?: () => Promise<WeightsBound>): Promise<Paired> => {
    await probe.sample(1);
    if (weights !== undefined) await weights();
    const out: Paired = { rates: [], bounds: [], cpuBounds: [], probeBounds: [], probeCpuBounds: [], boundReaders: [] };
    for (let r = 0; r < reps; r++) {
      const b = await probe.sample(3);
      out.probeBounds.push(b.bps);
      out.probeCpuBounds.push(b.cpuBps);
      const w = weights !== undefined ? await weights() : { ...b, reader: 'probe' };
      out.bounds.push(w.bps);
      out.cpuBounds.push(w.cpuBps);
      out.boundReaders.push(w.reader);
      out.rates.push(await run());
    }
    return out;
  };
  const weightsOf = (c: ComputeClient) => async (): Promise<WeightsBound> => {
    const w = await c.run({ type: 'readBound', passes: 3, streams: [1, 4] });
    return { bps: w.bps, cpuBps: w.cpuBps, reader: w.reader };
  };
  let client: ComputeClient;
  try {
    client = await ComputeClient.start({ backend: 'native', threads });
  } catch (e) {
    if (isNeuroShardError(e, 'BACKEND_UNAVAILABLE')) throw new BenchSkip(e.message);
    throw e;
  }
  let params: Float32Array;
  let ours: Paired;
  const gen = async (c: ComputeClient): Promise<number> => {
    const g = await c.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: steps + 1, temperature: 0, stopIds: [] });
    return (g.tokens.length - 1) / (g.decodeMs / 1000);
  };
  try {
    await client.run({ type: 'initModel', config, seed: 0 });
    await client.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: 4, temperature: 0, stopIds: [] });
    ours = await paired(() => gen(client), weightsOf(client));
    log(`${name}: ours f32 ${median(ours.rates).toFixed(1)} tok/s (${client.info?.description ?? '?'})`);
    params = (await client.run({ type: 'getParams' })).params;
  } finally {
    await client.close();
  }
  // our int8 weights: the same seeded model, quantized on load by a worker started with weights: 'int8'
  let oursInt8: Paired;
  const q = await ComputeClient.start({ backend: 'native', threads, weights: 'int8' });
  try {
    await q.run({ type: 'initModel', config, seed: 0 });
    await q.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: 4, temperature: 0, stopIds: [] });
    oursInt8 = await paired(() => gen(q), weightsOf(q));
    log(`${name}: ours int8 ${median(oursInt8.rates).toFixed(1)} tok/s`);
  } finally {
    await q.close();
  }
  const layout = new ParamLayout(config);
  const tokenizer = loadGenesisTokenizer();
  const none = (): Paired => ({ rates: [0], bounds: [0], cpuBounds: [0], probeBounds: [0], probeCpuBounds: [0], boundReaders: ['probe'] });
  const llama: { f32: Paired; q8_0: Paired } = { f32: none(), q8_0: none() };
  for (const dtype of ['f32', 'q8_0'] as const) {
    const path = join(dir, `${name}-${dtype}.gguf`);
    writeGguf(path, llamaGguf({ config, layout, params, tokenizer, dtype, name }));
    const m = await openLlamaCppModel(path, { threads, contextSize: Math.min(config.max_position_embeddings, 256), log });
    try {
      await m.greedy(prompt, 4);
      llama[dtype] = await paired(async () => {
        const g = await m.greedy(prompt, steps + 1);
        return (g.tokens.length - 1) / (g.decodeMs / 1000);
      });
    } finally {
      await m.close();
      rmSync(path, { force: true });
    }
    log(`${name}: llama.cpp ${dtype} ${median(llama[dtype].rates).toFixed(1)} tok/s`);
  }
  return { ours, oursInt8, llama, bytes: { f32: decodeWeightBytes(config, layout, 'f32'), q8_0: decodeWeightBytes(config, layout, 'q8_0') } };
}

/** Median, slowest and fastest of xs, rounded to 3 decimals (4 significant digits for large values). */
function spread(xs: number[], digits = 3): { median: number; min: number; max: number } {
  const r = (x: number): number => Math.round(x * 10 ** digits) / 10 ** digits;
  return { median: r(median(xs)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

/** The session-18 share: each run's bytes read per second ÷ the bound sampled just before it. */
function pairedShare(p: Paired, bytesPerToken: number, bounds = p.bounds): { median: number; min: number; max: number } {
  return spread(p.rates.map((r, i) => (r * bytesPerToken) / bounds[i]));
}

/** How decode_bound_share's bound is taken for our engine (session 22). */
const WEIGHTS_BOUND_METHOD =
  "before each decode run, the decode's own weight buffers (LlamaShard.decodeReadArrays: every layer matrix, norm and the head, in the compute worker that decodes) read by the native reader on the decode's thread count, each thread pinned to its own CPU and reading its part of every buffer with AVX-512 64-byte loads; best of 3 passes of each of four readers: the arrays or the same bytes merged into back-to-back ranges (decodeReadRanges), 1 or 4 streams a thread (compute job readBound)";

export const llamacppSection: BenchSection = {
  name: 'llamacpp',
  keys: ['llamacpp_decode_tok_s', 'llamacpp_decode_ratio', 'llamacpp_ours_decode_tok_s', 'decode_bound_share', 'decode_bandwidth'],
  async run({ quick, log }) {
    // NEUROSHARD_BENCH_THREADS overrides (llama.cpp's threads spin-wait at barriers: on a machine loaded past its
    // cores, 2 threads can be 50× slower than 1, so a loaded machine is measured at 1)
    const env = Number(process.env.NEUROSHARD_BENCH_THREADS);
    const threads = Number.isInteger(env) && env >= 1 && env <= 256 ? env : availableParallelism();
    const shapes: [string, LlamaConfig][] = quick
      ? [['tiny', makeConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, vocab_size: 4096, max_position_embeddings: 128 })]]
      : [
          ['nano', presetConfig('nano')],
          ['12x768', presetConfig('12x768')],
        ];
    const reps = quick ? 1 : 7;
    const steps = quick ? 8 : 64;
    log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} on ${availableParallelism()} cores; both engines on ${threads} thread(s)`);
    const read = await measureReadBandwidth(threads, quick ? 16 : 64, quick ? 1 : 4, quick ? 3 : 15);
    const readBps = read.bestBps;
    const gb = (x: number): number => Math.round(x / 1e7) / 100;
    log(`read bandwidth ${gb(read.bestBps)} GB/s (median ${gb(read.medianBps)}, slowest ${gb(read.minBps)}): ${read.method}`);
    // 128 MiB a thread (256 MiB at 2 threads): past what this host's caches hold (scripts/experiments/read-bound.mjs:
    // the reads slow from 16 MiB in all and are flat from 64 MiB)
    const probe = await ReadProbe.start(threads, quick ? 16 : 128);
    log(`read bound, paired with every decode run of ours: ${WEIGHTS_BOUND_METHOD}`);
    log(`beside it (llama.cpp's bound, and ours before session 22): ${probe.method}`);
    const share: Record<string, unknown> = { method: WEIGHTS_BOUND_METHOD, probe_method: probe.method };
    const dir = mkdtempSync(join(tmpdir(), 'neuroshard-llamacpp-bench-'));
    const tok: Record<string, unknown> = {};
    const ratio: Record<string, unknown> = {};
    const oursOut: Record<string, unknown> = {};
    const bw: Record<string, unknown> = { read_gb_s: gb(read.bestBps), read_gb_s_median: gb(read.medianBps), read_gb_s_min: gb(read.minBps), read_method: read.method };
    try {
      for (const [name, config] of shapes) {
        const r = await benchShape(name, config, threads, reps, steps, dir, probe, log);
        const med = { ours: median(r.ours.rates), int8: median(r.oursInt8.rates), f32: median(r.llama.f32.rates), q8_0: median(r.llama.q8_0.rates) };
        tok[name] = { f32: round1(med.f32), q8_0: round1(med.q8_0) };
        oursOut[name] = { f32: round1(med.ours), int8: round1(med.int8) };
        ratio[name] = {
          f32: Math.round((med.ours / med.f32) * 1000) / 1000,
          int8: Math.round((med.int8 / med.q8_0) * 1000) / 1000,
          f32_vs_q8_0: Math.round((med.ours / med.q8_0) * 1000) / 1000,
        };
        const bound = (bytes: number): number => readBps / bytes;
        const frac = (x: number, bytes: number): number => Math.round((x / bound(bytes)) * 1000) / 1000;
        // the pre-session-18 figure: weight bytes in GGUF's formats ÷ one memcmp bound taken before everything
        bw[name] = {
          f32: { weight_mb: round1(r.bytes.f32 / 1e6), bound_tok_s: round1(bound(r.bytes.f32)), ours: frac(med.ours, r.bytes.f32), llamacpp: frac(med.f32, r.bytes.f32) },
          // our int8 reads 1.125 bytes a weight (q8_0: 1.0625) and keeps the head f32: decode_bound_share counts
          // what it reads
          q8_0: { weight_mb: round1(r.bytes.q8_0 / 1e6), bound_tok_s: round1(bound(r.bytes.q8_0)), ours: frac(med.int8, r.bytes.q8_0), llamacpp: frac(med.q8_0, r.bytes.q8_0) },
        };
        const mb = (b: DecodeReadBytes): Record<string, number> => ({ matrices: round1(b.matrices / 1e6), head: round1(b.head / 1e6), small: Math.round(b.small / 1e3) / 1e3, kv: Math.round(b.kv / 1e4) / 100, total: round1(b.total / 1e6) });
        const f32b = decodeReadBytes(config, 'f32', PROMPT, steps);
        const i8b = decodeReadBytes(config, 'int8', PROMPT, steps);
        const gbs = (p: Paired): { median: number; min: number; max: number } => spread(p.bounds.map((x) => x / 1e9), 2);
        const cgbs = (p: Paired): { median: number; min: number; max: number } => spread(p.cpuBounds.map((x) => x / 1e9), 2);
        // llama.cpp: its GGUF weights (q8_0: the head too) and its float16 KV cache (its default)
        const llamaKv = decodeReadBytes(config, 'f32', PROMPT, steps).kv / 2;
        const pgbs = (p: Paired): { median: number; min: number; max: number } => spread(p.probeBounds.map((x) => x / 1e9), 2);
        const ours = (p: Paired, b: DecodeReadBytes): Record<string, unknown> => ({
          read_mb: mb(b),
          pairs: p.rates.length,
          share: pairedShare(p, b.total),
          bound_gb_s: gbs(p),
          bound_cpu_gb_s: cgbs(p),
          bound_reader: p.boundReaders,
          probe_share: pairedShare(p, b.total, p.probeBounds),
          probe_bound_gb_s: pgbs(p),
          probe_bound_cpu_gb_s: spread(p.probeCpuBounds.map((x) => x / 1e9), 2),
          tok_s: spread(p.rates, 1),
        });
        share[name] = {
          f32: ours(r.ours, f32b),
          int8: ours(r.oursInt8, i8b),
          llamacpp_f32: { read_mb: round1((r.bytes.f32 + llamaKv) / 1e6), share: pairedShare(r.llama.f32, r.bytes.f32 + llamaKv), bound_gb_s: gbs(r.llama.f32) },
          llamacpp_q8_0: { read_mb: round1((r.bytes.q8_0 + llamaKv) / 1e6), share: pairedShare(r.llama.q8_0, r.bytes.q8_0 + llamaKv), bound_gb_s: gbs(r.llama.q8_0) },
        };
        const pc = (x: { median: number; min: number; max: number }): string => `${(100 * x.median).toFixed(1)} % (${(100 * x.min).toFixed(1)}–${(100 * x.max).toFixed(1)})`;
        const bd = (p: Paired): string => { const x = gbs(p); return `${x.min}/${x.median}/${x.max}`; };
        const pbd = (p: Paired): string => { const x = spread(p.probeBounds.map((y) => y / 1e9), 2); return `${x.min}/${x.median}/${x.max}`; };
        log(
          `${name}: ours/llama.cpp f32 ${(med.ours / med.f32).toFixed(2)}×, int8/q8_0 ${(med.int8 / med.q8_0).toFixed(2)}×; of the paired read bound over the decode's own weights: ours f32 ${pc(pairedShare(r.ours, f32b.total))} of ${(f32b.total / 1e6).toFixed(1)} MB a token (bound min/median/max ${bd(r.ours)} GB/s), ` +
            `int8 ${pc(pairedShare(r.oursInt8, i8b.total))} of ${(i8b.total / 1e6).toFixed(1)} MB (${bd(r.oursInt8)} GB/s); of the ReadProbe's bound (pre-session-22): f32 ${pc(pairedShare(r.ours, f32b.total, r.ours.probeBounds))} (${pbd(r.ours)} GB/s), int8 ${pc(pairedShare(r.oursInt8, i8b.total, r.oursInt8.probeBounds))} (${pbd(r.oursInt8)} GB/s); llama.cpp (ReadProbe's bound) f32 ${pc(pairedShare(r.llama.f32, r.bytes.f32 + llamaKv))}, q8_0 ${pc(pairedShare(r.llama.q8_0, r.bytes.q8_0 + llamaKv))}`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await probe.close();
    }
    return { llamacpp_decode_tok_s: tok, llamacpp_decode_ratio: ratio, llamacpp_ours_decode_tok_s: oursOut, decode_bound_share: share, decode_bandwidth: bw };
  },
};

export const benchSections: BenchSection[] = [llamacppSection];
