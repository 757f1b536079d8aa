#!/usr/bin/env node
// The decode kernels in one process, no network: what the `serving-batch` and `int8`/`llamacpp` bench sections
// measure through nodes and workers, reduced to the model's forward on the native backend, so that a kernel change
// can be measured A/B on a shared machine (per-step times, their 10th percentile, and process CPU per step).
//
//   node scripts/experiments/decode-kernels.mjs [--threads 1] [--preset 12x768] [--steps 48] [--reps 3]
//        [--modes f32:1,f32:8,int8:1,int8:8] [--hash] [--ops] [--gemm]
//
// Modes: <weights>:<rows>: rows = 1 is a batch-1 cached forward, rows > 1 is decodeBatch over that many batch-1
// caches (continuous batching, as the serving worker runs it). Prints, per mode: p10 and median step time,
// tok/s at p10 (rows ÷ p10), CPU ms per step, and with several row counts the ratio rows-tok/s ÷ 1-row tok/s.
// --hash: sha256 of the logits of every step of every mode (the first rep), to check kernels bit for bit.
// --ops: per-op time split of the steps of each mode (native backend calls timed from JS; each includes the call).
// --gemm: the step's GEMVs alone, each on its own weights, minimum CPU per pass (see below).
// Run it with `nice -n -20` on a loaded machine, and alternate old and new builds (a copy of dist/, build/ and
// package.json elsewhere runs the old one).
import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const threads = Number(opt('--threads', '1'));
const preset = opt('--preset', '12x768');
const steps = Number(opt('--steps', '48'));
const reps = Number(opt('--reps', '3'));
const modes = opt('--modes', 'f32:1,f32:8,int8:1,int8:8')
  .split(',')
  .map((m) => {
    const [w, r] = m.split(':');
    return { w, rows: Number(r) };
  });

const dist = new URL('../../dist/src/', import.meta.url);
const { LlamaShard } = await import(new URL('model/shard.js', dist));
const { KVCache } = await import(new URL('model/kv-cache.js', dist));
const { presetConfig } = await import(new URL('model/presets.js', dist));
const { selectBackend } = await import(new URL('tensor/index.js', dist));

const config = presetConfig(preset);
const { backend } = await selectBackend({ backend: 'native', threads });
backend.setThreads(threads);
const f32 = new LlamaShard({ config, backend, seed: 0 });
const shards = { f32, int8: f32.quantized() };
const PROMPT = 8;
const pct = (xs, q) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))];

const argmax = (x) => {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
};

function run(mode, hash) {
  const sh = shards[mode.w];
  const V = config.vocab_size;
  const caches = [];
  const toks = [];
  for (let r = 0; r < mode.rows; r++) {
    const cache = new KVCache(config, { span: sh.span, batch: 1, maxLen: PROMPT + steps + 1 });
    const prompt = Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + r * 17 + 1) % V);
    const logits = sh.forward(prompt, 1, PROMPT, { cache });
    toks.push(argmax(logits.subarray((PROMPT - 1) * V)));
    caches.push(cache);
  }
  const times = [];
  const cpu0 = process.cpuUsage();
  for (let k = 0; k < steps; k++) {
    const ids = Int32Array.from(toks);
    const t0 = performance.now();
    const logits = mode.rows === 1 ? sh.forward(ids, 1, 1, { cache: caches[0] }) : sh.decodeBatch(ids, caches);
    times.push(performance.now() - t0);
    if (hash) hash.update(new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    for (let r = 0; r < mode.rows; r++) toks[r] = argmax(logits.subarray(r * V, (r + 1) * V));
  }
  const c = process.cpuUsage(cpu0);
  return { times, cpuMs: (c.user + c.system) / 1000 / steps };
}

// --ops: wrap every backend method to add its wall time (and the step's) into a table keyed by method (gemm by
// its shape), over `steps` f32 batch-1 steps after the runs above; printed per step, largest first.
function opsSplit(w, rows) {
  const table = new Map();
  const orig = {};
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(backend)).concat(Object.keys(backend))) {
    const f = backend[name];
    if (typeof f !== 'function' || name === 'constructor' || orig[name] !== undefined) continue;
    orig[name] = f;
    backend[name] = function (...a) {
      const t0 = performance.now();
      const r = f.apply(this, a);
      const dt = performance.now() - t0;
      let key = name;
      if (name === 'gemm') key = `gemm ${a[3].M}x${a[3].N}x${a[3].K}`;
      else if (name === 'gemmQ8') key = `gemmQ8 ${a[4]}x${a[5]}x${a[6]}`;
      const e = table.get(key) ?? { ms: 0, calls: 0 };
      e.ms += dt;
      e.calls++;
      table.set(key, e);
      return r;
    };
  }
  const cpu0 = process.cpuUsage();
  const r = run({ w, rows }, null);
  const c = process.cpuUsage(cpu0);
  for (const [name, f] of Object.entries(orig)) backend[name] = f;
  const stepMs = r.times.reduce((a, b) => a + b, 0) / steps;
  const rowsOut = [...table.entries()].map(([k, e]) => ({ op: k, ms_step: +(e.ms / steps).toFixed(3), calls_step: e.calls / steps })).sort((a, b) => b.ms_step - a.ms_step);
  const inOps = rowsOut.reduce((a, e) => a + e.ms_step, 0);
  console.log(JSON.stringify({ ops: `${w}:${rows}`, step_ms: +stepMs.toFixed(3), cpu_ms_step: +((c.user + c.system) / 1000 / steps).toFixed(3), in_ops_ms: +inOps.toFixed(3), js_ms: +(stepMs - inOps).toFixed(3) }));
  for (const e of rowsOut) console.log(JSON.stringify(e));
}
// --gemm: the step's GEMVs alone (every layer's q, k, v, o, gate, up, down and the head, each on its own weights),
// M rows per product for each rows count of --modes; per pass: wall and CPU; prints the minimum CPU ms per pass
// and per-row weight read rate (weight bytes ÷ minimum wall), over --reps × 8 passes.
if (args.includes('--gemm')) {
  const C = config.hidden_size, F = config.intermediate_size, D = config.head_dim;
  const shapes = [];
  for (let l = 0; l < config.num_hidden_layers; l++)
    shapes.push([config.num_attention_heads * D, C], [config.num_key_value_heads * D, C], [config.num_key_value_heads * D, C], [C, config.num_attention_heads * D], [F, C], [F, C], [C, F]);
  shapes.push([config.vocab_size, C]);
  const ws = shapes.map(([n, k]) => Float32Array.from({ length: n * k }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5));
  const int8 = modes.some((m) => m.w === 'int8');
  const { quantizeMatrix } = await import(new URL('tensor/ops/quantize.js', dist));
  // --modes int8:R: the same products over int8 blocks of the same weights (gemmQ8)
  const qs = int8 ? shapes.map(([n, k], i) => quantizeMatrix(backend, ws[i], n, k)) : [];
  const bytes = shapes.reduce((a, [n, k]) => a + (int8 ? n * k + (4 * n * k) / qs[0].blockSize : 4 * n * k), 0);
  const res = {};
  for (const rows of [...new Set(modes.map((m) => m.rows))]) {
    const a = Float32Array.from({ length: rows * F }, (_, i) => ((i * 31) % 100) / 100);
    const c = new Float32Array(rows * 4096 * 2);
    const wall = [];
    const cpu = [];
    for (let p = 0; p < reps * 8 + 2; p++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      if (int8) shapes.forEach(([n, k], i) => backend.gemmQ8(a, qs[i].q, qs[i].scales, c, rows, n, k, qs[i].blockSize, 0));
      else shapes.forEach(([n, k], i) => backend.gemm(a, ws[i], c, { transA: false, transB: true, M: rows, N: n, K: k, alpha: 1, beta: 0 }));
      const t = performance.now() - t0;
      const cc = process.cpuUsage(c0);
      if (p < 2) continue;
      wall.push(t);
      cpu.push((cc.user + cc.system) / 1000);
    }
    res[`${int8 ? 'gemmQ8' : 'gemm'}:${rows}`] = { min_ms: +Math.min(...wall).toFixed(3), p10_ms: +pct(wall, 0.1).toFixed(3), min_cpu_ms: +Math.min(...cpu).toFixed(3), p10_cpu_ms: +pct(cpu, 0.1).toFixed(3), gb_s_at_min: +(bytes / Math.min(...wall) / 1e6).toFixed(2) };
  }
  console.log(JSON.stringify({ preset, threads, weight_mb: +(bytes / 1e6).toFixed(1), load: +loadavg()[0].toFixed(2), ...res }));
  process.exit(0);
}
if (args.includes('--ops')) {
  for (const m of modes) opsSplit(m.w, m.rows);
  process.exit(0);
}

const acc = modes.map(() => ({ times: [], cpu: [] }));
const hashes = modes.map(() => createHash('sha256'));
const load0 = loadavg()[0];
for (let rep = 0; rep <= reps; rep++) {
  modes.forEach((m, i) => {
    const r = run(m, rep === 0 && args.includes('--hash') ? hashes[i] : null);
    if (rep === 0) return; // warm-up
    acc[i].times.push(...r.times);
    acc[i].cpu.push(r.cpuMs);
  });
}
const out = {};
modes.forEach((m, i) => {
  const p10 = pct(acc[i].times, 0.1);
  const key = `${m.w}:${m.rows}`;
  out[key] = {
    min_ms: +Math.min(...acc[i].times).toFixed(3),
    p10_ms: +p10.toFixed(3),
    med_ms: +pct(acc[i].times, 0.5).toFixed(3),
    tok_s_p10: +((1000 * m.rows) / p10).toFixed(1),
    cpu_ms_step: +Math.min(...acc[i].cpu).toFixed(3),
  };
  if (args.includes('--hash')) out[key].sha = hashes[i].digest('hex').slice(0, 16);
});
for (const w of ['f32', 'int8']) {
  const one = out[`${w}:1`];
  for (const m of modes)
    if (m.w === w && m.rows > 1 && one) {
      out[`${w}:${m.rows}`].ratio = +(out[`${w}:${m.rows}`].tok_s_p10 / one.tok_s_p10).toFixed(2);
      out[`${w}:${m.rows}`].cpu_ratio = +((m.rows * one.cpu_ms_step) / out[`${w}:${m.rows}`].cpu_ms_step).toFixed(2);
    }
}
console.log(JSON.stringify({ preset, threads, steps, reps, load: [+load0.toFixed(2), +loadavg()[0].toFixed(2)], ...out }));
