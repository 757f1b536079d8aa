#!/usr/bin/env node
// Decode speed of two builds A/B in one process, against the read-bandwidth bound (docs/LIMITS.md, "Decode against
// the read-bandwidth bound"): each checkout's dist/ and build/ loaded side by side (each its own addon and pool),
// 12x768 on 2 threads, f32 and int8 batch-1 cached decode; blocks of 48 steps alternate A, B (order swapped every
// round); the bound (the second checkout's measureReadBandwidth, 2 threads) measured before each round; per round
// the share of that round's bound. With `rows` > 1, each step is a decodeBatch of that many sequences (the serving
// worker's continuous batching; the bound's share is then of `rows` tokens per step). Run under `chrt -f 10` (or
// `nice -n -20`) on a shared machine.
//   chrt -f 10 node scripts/experiments/decode-ab.mjs /path/to/main /path/to/branch [rounds] [rows]
import { resolve } from 'node:path';
const roots = { main: resolve(process.argv[2] ?? '.'), branch: resolve(process.argv[3] ?? '.') };
const reps = Number(process.argv[4] ?? 5);
const rows = Number(process.argv[5] ?? 1);
const mods = {};
for (const [k, root] of Object.entries(roots)) {
  const d = (p) => import(`${root}/dist/src/${p}`);
  const m = { ...(await d('tensor/index.js')), ...(await d('model/shard.js')), ...(await d('model/kv-cache.js')), ...(await d('model/presets.js')) };
  const config = m.presetConfig('12x768');
  const { backend } = await m.selectBackend({ backend: 'native', threads: 2 });
  const f32 = new m.LlamaShard({ config, backend, seed: 0 });
  mods[k] = { m, config, sh: { f32, int8: f32.quantized() } };
}
const { measureReadBandwidth } = await import(`${roots.branch}/dist/src/compute/llamacpp/bench.js`);
const config = mods.main.config;
const V = config.vocab_size, C = config.hidden_size, steps = 48, PROMPT = 8;
const bytes = { f32: 324086784, int8: mods.branch.sh.int8.weightBytes - V * C * 4 };
function block(k, w) {
  const { m, sh, config } = mods[k];
  const s = sh[w];
  const caches = Array.from({ length: rows }, () => new m.KVCache(config, { span: s.span, batch: 1, maxLen: PROMPT + steps + 1 }));
  caches.forEach((cache, r) => s.forward(Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + 1 + r) % V), 1, PROMPT, { cache }));
  const toks = Int32Array.from({ length: rows }, (_, r) => 5 + r);
  const t = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const l = rows === 1 ? s.forward(toks, 1, 1, { cache: caches[0] }) : s.decodeBatch(toks, caches);
    t.push(performance.now() - t0);
    for (let r = 0; r < rows; r++) {
      let b = 0; for (let j = 1; j < V; j++) if (l[r * V + j] > l[r * V + b]) b = j; toks[r] = b;
    }
  }
  return t;
}
const pct = (xs, q) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))];
for (const k of ['main', 'branch']) for (const w of ['f32', 'int8']) block(k, w); // warm-up
const all = { main: { f32: [], int8: [] }, branch: { f32: [], int8: [] } };
for (let r = 0; r < reps; r++) {
  const bw = (await measureReadBandwidth(2)).bestBps;
  let line = `round ${r} bound ${(bw / 1e9).toFixed(1)} GB/s`;
  for (const w of ['f32', 'int8']) {
    const order = r % 2 === 0 ? ['main', 'branch'] : ['branch', 'main'];
    const res = {};
    for (const k of order) { res[k] = block(k, w); all[k][w].push(...res[k]); }
    const bms = (1000 * bytes[w] * rows) / bw;
    for (const k of ['main', 'branch']) {
      const med = pct(res[k], 0.5), p10 = pct(res[k], 0.1);
      line += ` | ${w} ${k} p10 ${p10.toFixed(3)} med ${med.toFixed(3)} ms (${((1000 * rows) / med).toFixed(1)} tok/s, ${((100 * bms) / med).toFixed(1)} %)`;
    }
  }
  console.log(line);
}
for (const w of ['f32', 'int8']) console.log(w, 'all rounds: main med', pct(all.main[w], 0.5).toFixed(3), 'p10', pct(all.main[w], 0.1).toFixed(3), '| branch med', pct(all.branch[w], 0.5).toFixed(3), 'p10', pct(all.branch[w], 0.1).toFixed(3));
