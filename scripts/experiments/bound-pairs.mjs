#!/usr/bin/env node
// Session 22 (issue 10): the bench's decode_bound_share pairs without llama.cpp, through the same compute worker
// (ComputeClient, 12x768, greedy, 64 steps after an 8-token prompt): before each run the ReadProbe's sample (the old
// bound: its own 128 MiB a thread, 4 streams, pinned, best of 3) and the worker's `readBound` over the decode's own
// weights (best of 3 passes of each of the arrays/ranges × 1/4-stream readers, pinned), then the run. Prints each pair and the
// medians of both shares; per CPU-second rates beside.
//   nice -n 5 node scripts/experiments/bound-pairs.mjs [--pairs 7] [--threads 2] [--modes f32,int8]
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const pairs = Number(opt('--pairs', '7'));
const threads = Number(opt('--threads', '2'));
const modes = opt('--modes', 'f32,int8').split(',');
const root = resolve(opt('--root', '.'));
const d = (p) => import(`${root}/dist/src/${p}`);
const { ComputeClient } = await d('compute/client.js');
const { presetConfig } = await d('model/presets.js');
const { ReadProbe, decodeReadBytes } = await d('compute/llamacpp/bench.js');
const config = presetConfig('12x768');
const PROMPT = 8;
const STEPS = 64;
const prompt = Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + 1) % config.vocab_size);
const gb = (x) => (x / 1e9).toFixed(1);
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pc = (xs) => `${(100 * med(xs)).toFixed(1)} % (${(100 * Math.min(...xs)).toFixed(1)}–${(100 * Math.max(...xs)).toFixed(1)})`;
const probe = await ReadProbe.start(threads, 128);
try {
  for (const w of modes) {
    const bytes = decodeReadBytes(config, w, PROMPT, STEPS).total;
    const c = await ComputeClient.start({ backend: 'native', threads, weights: w });
    const gen = async () => {
      const g = await c.run({ type: 'generate', prompt: Int32Array.from(prompt), maxTokens: STEPS + 1, temperature: 0, stopIds: [] });
      return (g.tokens.length - 1) / (g.decodeMs / 1000);
    };
    const out = { newShare: [], oldShare: [], streams: [] };
    try {
      await c.run({ type: 'initModel', config, seed: 0 });
      await gen();
      await probe.sample(1);
      await c.run({ type: 'readBound', passes: 1 });
      for (let p = 0; p < pairs; p++) {
        const old = await probe.sample(3);
        const nb = await c.run({ type: 'readBound', passes: 3, streams: [1, 4] });
        const tok = await gen();
        out.newShare.push((tok * bytes) / nb.bps);
        out.oldShare.push((tok * bytes) / old.bps);
        out.streams.push(nb.reader);
        console.log(
          `${w} pair ${p} (load ${loadavg()[0].toFixed(2)}): ${tok.toFixed(1)} tok/s = ${gb(tok * bytes)} GB/s; weights bound ${gb(nb.bps)} (${Object.entries(nb.byReader).map(([k, v]) => `${k} ${gb(v)}`).join(', ')}; per CPU-s ${gb(nb.cpuBps)}) → ${(100 * out.newShare.at(-1)).toFixed(1)} %; probe ${gb(old.bps)} (per CPU-s ${gb(old.cpuBps)}) → ${(100 * out.oldShare.at(-1)).toFixed(1)} %`,
        );
      }
    } finally {
      await c.close();
    }
    console.log(`${w}: ${(bytes / 1e6).toFixed(1)} MB a token; share of the weights bound ${pc(out.newShare)}, of the probe ${pc(out.oldShare)}; best readers ${out.streams.join(',')}`);
  }
} finally {
  await probe.close();
}
