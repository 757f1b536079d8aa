#!/usr/bin/env node
// Session 23 (issue 10, helper prefetch): the int8 (or f32) 12x768 batch-1 decode step, one native call a step,
// with the products' chunking chosen per block by NEUROSHARD_DECODE_SPLIT (read by Engine::decode_layers on every
// call): A/B/... in alternation in ONE process, the order rotated every round. Per split: wall min / p10 / median
// and the process's CPU per step (both threads, spinning included), and whether every split gave the same greedy
// tokens (the split must not change a bit).
//   nice -n 5 node scripts/experiments/split-ab.mjs [--splits guided16,default,halves] [--mode int8] [--threads 2]
//       [--steps 32] [--rounds 8] [--preset 12x768]
// ("default": the variable unset, the build's own split). --env NAME: another variable the engine reads per call,
// e.g. --env NEUROSHARD_DECODE_PREFETCH --splits 0,default.
import { loadavg } from 'node:os';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const threads = Number(opt('--threads', '2'));
const mode = opt('--mode', 'int8');
const splits = opt('--splits', 'guided16,default,halves').split(',');
const steps = Number(opt('--steps', '32'));
const rounds = Number(opt('--rounds', '8'));
const preset = opt('--preset', '12x768');
const envName = opt('--env', 'NEUROSHARD_DECODE_SPLIT');
const root = new URL('../..', import.meta.url).pathname;
const d = (p) => import(`${root}/dist/src/${p}`);
const { LlamaShard } = await d('model/shard.js');
const { KVCache } = await d('model/kv-cache.js');
const { presetConfig } = await d('model/presets.js');
const { selectBackend } = await d('tensor/index.js');

const config = presetConfig(preset);
const { backend } = await selectBackend({ backend: 'native', threads });
backend.setThreads(threads);
const f32 = new LlamaShard({ config, backend, seed: 0 });
const sh = mode === 'int8' ? f32.quantized() : f32;
sh.decodeOneCall = true;
const V = config.vocab_size;
const PROMPT = 8;
const q = (xs, f) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * f)];

function block(split) {
  if (split === 'default') delete process.env[envName];
  else process.env[envName] = split;
  const cache = new KVCache(config, { span: sh.span, batch: 1, maxLen: PROMPT + steps + 1 });
  let l = sh.forward(Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + 1) % V), 1, PROMPT, { cache });
  let tok = 0;
  for (let j = 1; j < V; j++) if (l[(PROMPT - 1) * V + j] > l[(PROMPT - 1) * V + tok]) tok = j;
  const wall = [], cpu = [], toks = [];
  backend.primePool?.();
  for (let s = 0; s < steps; s++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    l = sh.forward(Int32Array.of(tok), 1, 1, { cache });
    tok = 0;
    for (let j = 1; j < V; j++) if (l[j] > l[tok]) tok = j;
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    toks.push(tok);
  }
  backend.restPool?.();
  return { wall, cpu, toks: toks.join(',') };
}

const load0 = loadavg().map((x) => +x.toFixed(2));
const res = Object.fromEntries(splits.map((s) => [s, { wall: [], cpu: [], toks: new Set() }]));
for (const s of splits) block(s);
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < splits.length; k++) {
    const s = splits[(k + r) % splits.length];
    const b = block(s);
    res[s].wall.push(...b.wall);
    res[s].cpu.push(...b.cpu);
    res[s].toks.add(b.toks);
  }
}
const load1 = loadavg().map((x) => +x.toFixed(2));
const f = (x) => +x.toFixed(3);
const all = new Set(splits.flatMap((s) => [...res[s].toks]));
const base = res[splits[0]];
for (const s of splits) {
  const o = res[s];
  console.log(
    JSON.stringify({
      mode,
      threads,
      [envName]: s,
      steps: o.wall.length,
      ms: { min: f(Math.min(...o.wall)), p10: f(q(o.wall, 0.1)), med: f(q(o.wall, 0.5)), cpu_med: f(q(o.cpu, 0.5)) },
      over_first: { min: f(Math.min(...o.wall) / Math.min(...base.wall)), p10: f(q(o.wall, 0.1) / q(base.wall, 0.1)), med: f(q(o.wall, 0.5) / q(base.wall, 0.5)) },
    }),
  );
}
console.log(JSON.stringify({ same_tokens: all.size === 1, load: [load0, load1] }));
