#!/usr/bin/env node
// Session 22 (issue 10): a load-robust stand-in for decode_bound_share on a busy machine. The fastest 12x768 batch-1
// decode step (minimum over the steps: a step that ran undisturbed) against the fastest read of the very bytes a step
// reads (the bench's readBound: the shard's decodeReadArrays or decodeReadRanges, 1 or 4 streams, best pass), same
// thread count, alternating, in one process. share = decodeReadBytes ÷ step minimum ÷ the best read. Beside it the
// same per CPU-second (the step's process CPU time, meaningful at 1 thread; the read's threads' CPU time).
//   nice -n 5 node scripts/experiments/step-vs-read.mjs [--threads 1] [--rounds 4] [--steps 48] [--modes f32,int8]
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const threads = Number(opt('--threads', '1'));
const rounds = Number(opt('--rounds', '4'));
const steps = Number(opt('--steps', '48'));
const modes = opt('--modes', 'f32,int8').split(',');
const root = resolve(opt('--root', '.'));
const d = (p) => import(`${root}/dist/src/${p}`);
const { LlamaShard } = await d('model/shard.js');
const { KVCache } = await d('model/kv-cache.js');
const { presetConfig } = await d('model/presets.js');
const { selectBackend } = await d('tensor/index.js');
const { decodeReadBytes } = await d('compute/llamacpp/bench.js');
const config = presetConfig('12x768');
const { backend } = await selectBackend({ backend: 'native', threads });
backend.setThreads(threads);
const f32 = new LlamaShard({ config, backend, seed: 0 });
const sh = { f32, int8: modes.includes('int8') ? f32.quantized() : undefined };
const PROMPT = 8;
const V = config.vocab_size;
// at 1 thread the step runs on this thread alone: its CPU time (process.cpuUsage, µs) is the step with the
// descheduling of a loaded machine taken out; kept beside the wall minimum
let cpuBest = Infinity;
let readCpu = 0;
const stepMin = (s) => {
  const cache = new KVCache(config, { span: s.span, batch: 1, maxLen: PROMPT + steps + 1 });
  let l = s.forward(Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + 1) % V), 1, PROMPT, { cache });
  let tok = 0;
  let best = Infinity;
  cpuBest = Infinity;
  for (let i = 0; i < steps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    l = s.forward(Int32Array.of(tok), 1, 1, { cache });
    best = Math.min(best, performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpuBest = Math.min(cpuBest, (c.user + c.system) / 1000);
    tok = 0;
    for (let j = 1; j < V; j++) if (l[j] > l[tok]) tok = j;
  }
  return best;
};
const readBest = (s) => {
  let best = 0;
  readCpu = 0;
  for (let p = 0; p < 5; p++)
    for (const [arrays, k] of [s.decodeReadArrays(), s.decodeReadRanges()].flatMap((a) => [[a, 1], [a, 4]])) {
      const r = backend.readArrays(arrays, 1, threads, k, true);
      best = Math.max(best, r.bytes / ((r.t1 - r.t0) / 1000));
      readCpu = Math.max(readCpu, r.bytes / (r.cpuMs / 1000));
    }
  return best;
};
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = Object.fromEntries(modes.map((w) => [w, []]));
const outCpu = Object.fromEntries(modes.map((w) => [w, []]));
for (let r = 0; r < rounds; r++) {
  for (const w of r % 2 ? [...modes].reverse() : modes) {
    const s = sh[w];
    const bytes = decodeReadBytes(config, w, PROMPT, steps).total;
    const read = readBest(s);
    const ms = stepMin(s);
    const share = bytes / (ms / 1000) / read;
    out[w].push(share);
    const cshare = bytes / (cpuBest / 1000) / readCpu;
    outCpu[w].push(cshare);
    console.log(
      `${w} round ${r} (load ${loadavg()[0].toFixed(2)}): step min ${ms.toFixed(3)} ms = ${(bytes / (ms / 1000) / 1e9).toFixed(1)} GB/s; read of its weights ${(read / 1e9).toFixed(1)} GB/s → ${(100 * share).toFixed(1)} %; ` +
        `per CPU: step ${cpuBest.toFixed(3)} ms = ${(bytes / (cpuBest / 1000) / 1e9).toFixed(1)} GB/s, read ${(readCpu / 1e9).toFixed(1)} GB/s → ${(100 * cshare).toFixed(1)} %`,
    );
  }
}
for (const w of modes) {
  console.log(`${w}, ${threads} thread(s): share median ${(100 * med(out[w])).toFixed(1)} % [${out[w].map((x) => (100 * x).toFixed(1)).join(' ')}]; per CPU ${(100 * med(outCpu[w])).toFixed(1)} % [${outCpu[w].map((x) => (100 * x).toFixed(1)).join(' ')}]`);
}
