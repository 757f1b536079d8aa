/**
 * `npm run bench -- --only llamacpp`: llama.cpp as a second anchor for decoding. The same weights (the nano and
 * 12x768 shapes, seed 0) are decoded at batch 1 by our engine (native backend, KV cache, greedy) and by llama.cpp
 * (node-llama-cpp's prebuilt CPU build, from a GGUF file we export: f32, and q8_0), with the same thread count, in
 * the same process run, after one untimed warm-up each; the median of 3 repetitions of 64 decode steps.
 *
 * Against the memory-bandwidth bound: a decode step at batch 1 reads every weight once (the embedding only one row),
 * so tok/s ≤ read bandwidth ÷ weight bytes per token. The read bandwidth is measured here (measureReadBandwidth):
 * `threads` workers each memcmp two 64 MiB buffers (Buffer.compare, libc's vectorised memcmp; 256 MiB in all at 2
 * threads, 8× this machine's L3), the best of 15 passes after a warm-up, with the median and slowest pass beside it.
 *
 * Threads: the machine's cores (as the decode section), or NEUROSHARD_BENCH_THREADS; both engines use the same count.
 *
 * Keys (objects keyed by shape, then by weight type):
 * - llamacpp_decode_tok_s: llama.cpp's decode tok/s, {f32, q8_0};
 * - llamacpp_decode_ratio: ours ÷ llama.cpp: f32 (our f32 vs its f32) and int8 (our `--weights int8`, blocks of 32
 *   int8 with a float32 scale, vs its q8_0, blocks of 32 int8 with an f16 scale);
 * - llamacpp_ours_decode_tok_s: our f32 and int8 decode tok/s in this same run;
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

interface ShapeResult {
  ours: number;
  oursInt8: number;
  llama: { f32: number; q8_0: number };
  bytes: { f32: number; q8_0: number };
}

async function benchShape(name: string, config: LlamaConfig, threads: number, reps: number, steps: number, dir: string, log: (l: string) => void): Promise<ShapeResult> {
  const rng = new Rng(1);
  const prompt = Array.from({ length: PROMPT }, () => rng.int(config.vocab_size));
  let client: ComputeClient;
  try {
    client = await ComputeClient.start({ backend: 'native', threads });
  } catch (e) {
    if (isNeuroShardError(e, 'BACKEND_UNAVAILABLE')) throw new BenchSkip(e.message);
    throw e;
  }
  let params: Float32Array;
  let ours: number;
  try {
    await client.run({ type: 'initModel', config, seed: 0 });
    await client.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: 4, temperature: 0, stopIds: [] });
    const rates: number[] = [];
    for (let r = 0; r < reps; r++) {
      const g = await client.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: steps + 1, temperature: 0, stopIds: [] });
      rates.push((g.tokens.length - 1) / (g.decodeMs / 1000));
    }
    ours = median(rates);
    log(`${name}: ours f32 ${ours.toFixed(1)} tok/s (${client.info?.description ?? '?'})`);
    params = (await client.run({ type: 'getParams' })).params;
  } finally {
    await client.close();
  }
  // our int8 weights: the same seeded model, quantized on load by a worker started with weights: 'int8'
  let oursInt8: number;
  const q = await ComputeClient.start({ backend: 'native', threads, weights: 'int8' });
  try {
    await q.run({ type: 'initModel', config, seed: 0 });
    await q.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: 4, temperature: 0, stopIds: [] });
    const rates: number[] = [];
    for (let r = 0; r < reps; r++) {
      const g = await q.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: steps + 1, temperature: 0, stopIds: [] });
      rates.push((g.tokens.length - 1) / (g.decodeMs / 1000));
    }
    oursInt8 = median(rates);
    log(`${name}: ours int8 ${oursInt8.toFixed(1)} tok/s`);
  } finally {
    await q.close();
  }
  const layout = new ParamLayout(config);
  const tokenizer = loadGenesisTokenizer();
  const llama = { f32: 0, q8_0: 0 };
  for (const dtype of ['f32', 'q8_0'] as const) {
    const path = join(dir, `${name}-${dtype}.gguf`);
    writeGguf(path, llamaGguf({ config, layout, params, tokenizer, dtype, name }));
    const m = await openLlamaCppModel(path, { threads, contextSize: Math.min(config.max_position_embeddings, 256), log });
    try {
      await m.greedy(prompt, 4);
      const rates: number[] = [];
      for (let r = 0; r < reps; r++) {
        const g = await m.greedy(prompt, steps + 1);
        rates.push((g.tokens.length - 1) / (g.decodeMs / 1000));
      }
      llama[dtype] = median(rates);
    } finally {
      await m.close();
      rmSync(path, { force: true });
    }
    log(`${name}: llama.cpp ${dtype} ${llama[dtype].toFixed(1)} tok/s`);
  }
  return { ours, oursInt8, llama, bytes: { f32: decodeWeightBytes(config, layout, 'f32'), q8_0: decodeWeightBytes(config, layout, 'q8_0') } };
}

export const llamacppSection: BenchSection = {
  name: 'llamacpp',
  keys: ['llamacpp_decode_tok_s', 'llamacpp_decode_ratio', 'llamacpp_ours_decode_tok_s', 'decode_bandwidth'],
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
    const reps = quick ? 1 : 3;
    const steps = quick ? 8 : 64;
    log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} on ${availableParallelism()} cores; both engines on ${threads} thread(s)`);
    const read = await measureReadBandwidth(threads, quick ? 16 : 64, quick ? 1 : 4, quick ? 3 : 15);
    const readBps = read.bestBps;
    const gb = (x: number): number => Math.round(x / 1e7) / 100;
    log(`read bandwidth ${gb(read.bestBps)} GB/s (median ${gb(read.medianBps)}, slowest ${gb(read.minBps)}): ${read.method}`);
    const dir = mkdtempSync(join(tmpdir(), 'neuroshard-llamacpp-bench-'));
    const tok: Record<string, unknown> = {};
    const ratio: Record<string, unknown> = {};
    const oursOut: Record<string, unknown> = {};
    const bw: Record<string, unknown> = { read_gb_s: gb(read.bestBps), read_gb_s_median: gb(read.medianBps), read_gb_s_min: gb(read.minBps), read_method: read.method };
    try {
      for (const [name, config] of shapes) {
        const r = await benchShape(name, config, threads, reps, steps, dir, log);
        tok[name] = { f32: round1(r.llama.f32), q8_0: round1(r.llama.q8_0) };
        oursOut[name] = { f32: round1(r.ours), int8: round1(r.oursInt8) };
        ratio[name] = {
          f32: Math.round((r.ours / r.llama.f32) * 1000) / 1000,
          int8: Math.round((r.oursInt8 / r.llama.q8_0) * 1000) / 1000,
          f32_vs_q8_0: Math.round((r.ours / r.llama.q8_0) * 1000) / 1000,
        };
        const bound = (bytes: number): number => readBps / bytes;
        const frac = (x: number, bytes: number): number => Math.round((x / bound(bytes)) * 1000) / 1000;
        bw[name] = {
          f32: { weight_mb: round1(r.bytes.f32 / 1e6), bound_tok_s: round1(bound(r.bytes.f32)), ours: frac(r.ours, r.bytes.f32), llamacpp: frac(r.llama.f32, r.bytes.f32) },
          // our int8 reads 1.125 bytes a weight (q8_0: 1.0625) and keeps the embedding/head f32: the q8_0 bound is a
          // little above what our int8 can reach
          q8_0: { weight_mb: round1(r.bytes.q8_0 / 1e6), bound_tok_s: round1(bound(r.bytes.q8_0)), ours: frac(r.oursInt8, r.bytes.q8_0), llamacpp: frac(r.llama.q8_0, r.bytes.q8_0) },
        };
        log(
          `${name}: ours/llama.cpp f32 ${(r.ours / r.llama.f32).toFixed(2)}×, int8/q8_0 ${(r.oursInt8 / r.llama.q8_0).toFixed(2)}×; of the bandwidth bound: ours f32 ${(100 * frac(r.ours, r.bytes.f32)).toFixed(0)} %, ` +
            `llama.cpp f32 ${(100 * frac(r.llama.f32, r.bytes.f32)).toFixed(0)} %, llama.cpp q8_0 ${(100 * frac(r.llama.q8_0, r.bytes.q8_0)).toFixed(0)} %`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return { llamacpp_decode_tok_s: tok, llamacpp_decode_ratio: ratio, llamacpp_ours_decode_tok_s: oursOut, decode_bandwidth: bw };
  },
};

export const benchSections: BenchSection[] = [llamacppSection];
