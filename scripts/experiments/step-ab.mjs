#!/usr/bin/env node
// Session 23 (issue 10, the decode step's serial parts): a 12x768 batch-1 decode step with the span's layers in one
// native call (LlamaShard.decodeOneCall, Backend decodeLayers) against one call a layer (decodeLayer, the path
// before), A/B in alternation in ONE process: per round and mode, a block of `--steps` steps each way, the order
// flipped every round. Per step: wall time (performance.now) and the process's CPU time (process.cpuUsage: every
// thread, the pool's helpers and their spinning included). Prints per mode and path the minimum and median wall,
// the 10th percentile (the steps that had both CPUs: a loaded machine's best estimate of a quiet step), the median
// CPU, and the ratios new ÷ old; the load (loadavg) before and after.
//   nice -n 5 node scripts/experiments/step-ab.mjs [--threads 2] [--modes f32,int8] [--steps 32] [--rounds 6] [--preset 12x768] [--root DIR]
import { loadavg } from 'node:os';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const threads = Number(opt('--threads', '2'));
const modes = opt('--modes', 'f32,int8').split(',');
const steps = Number(opt('--steps', '32'));
const rounds = Number(opt('--rounds', '6'));
const preset = opt('--preset', '12x768');
// --root DIR: another checkout's dist/ and build/ (an older build has no decodeOneCall: both halves then run its path)
const root = opt('--root', new URL('../..', import.meta.url).pathname);
const d = (p) => import(`${root}/dist/src/${p}`);
const { LlamaShard } = await d('model/shard.js');
const { KVCache } = await d('model/kv-cache.js');
const { presetConfig } = await d('model/presets.js');
const { selectBackend } = await d('tensor/index.js');

const config = presetConfig(preset);
const { backend } = await selectBackend({ backend: 'native', threads });
backend.setThreads(threads);
const f32 = new LlamaShard({ config, backend, seed: 0 });
const shards = { f32, int8: modes.includes('int8') ? f32.quantized() : undefined };
const V = config.vocab_size;
const PROMPT = 8;
const q = (xs, f) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * f)];
const med = (xs) => q(xs, 0.5);

function block(sh, one) {
  sh.decodeOneCall = one;
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
  return { wall, cpu, toks };
}

const load0 = loadavg().map((x) => +x.toFixed(2));
const res = {};
for (const w of modes) res[w] = { old: { wall: [], cpu: [] }, new: { wall: [], cpu: [] }, same: true };
for (const w of modes) {
  block(shards[w], true);
  block(shards[w], false);
}
for (let r = 0; r < rounds; r++) {
  for (const w of modes) {
    const order = r % 2 === 0 ? [false, true] : [true, false];
    const got = {};
    for (const one of order) {
      const b = block(shards[w], one);
      const k = one ? 'new' : 'old';
      res[w][k].wall.push(...b.wall);
      res[w][k].cpu.push(...b.cpu);
      got[k] = b.toks.join(',');
    }
    if (got.old !== got.new) res[w].same = false;
  }
}
const load1 = loadavg().map((x) => +x.toFixed(2));
for (const w of modes) {
  const o = res[w].old, n = res[w].new;
  const f = (x) => +x.toFixed(3);
  console.log(
    JSON.stringify({
      mode: w,
      threads,
      steps_each: o.wall.length,
      same_tokens: res[w].same,
      old_ms: { min: f(Math.min(...o.wall)), p10: f(q(o.wall, 0.1)), med: f(med(o.wall)), cpu_med: f(med(o.cpu)) },
      new_ms: { min: f(Math.min(...n.wall)), p10: f(q(n.wall, 0.1)), med: f(med(n.wall)), cpu_med: f(med(n.cpu)) },
      new_over_old: { min: f(Math.min(...n.wall) / Math.min(...o.wall)), p10: f(q(n.wall, 0.1) / q(o.wall, 0.1)), med: f(med(n.wall) / med(o.wall)), cpu_med: f(med(n.cpu) / med(o.cpu)) },
      load: [load0, load1],
    }),
  );
}
