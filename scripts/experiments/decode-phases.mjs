#!/usr/bin/env node
// Session 21 (issue 10, the read bound): where a 12x768 batch-1 decode step's time goes, phase by phase, against the
// bytes each phase reads. Runs with NEUROSHARD_DECODE_TRACE=1 (set here before the addon loads), so that the native
// decode_layer records per phase of each layer job the first task's start, the last task's end, the tasks' summed
// wall time and their count (Engine::take_decode_trace; two CLOCK_MONOTONIC reads a task, ~60 ns each here); the head's product, the final norm and the embedding are
// timed from JS around the backend calls. Per step the phases are summed over the 12 layers; the script prints, per
// phase, the minimum and median over the steps of that sum (µs), the bytes it reads and the rate at the minimum
// (GB/s), and the tasks' summed wall ÷ the phase's wall (≈ threads busy). "wait" rows are the gaps between one phase's last task and the next
// phase's first (the pool's phase barrier), "between" the gap from one layer job's close to the next call's entry
// into the engine (JS and the N-API call with its argument checks), "prep" from that entry to the job's open. The read bound (ReadProbe, 2 threads, as the bench) is sampled before each block.
// Since session 23 a step runs its layers as one job (decodeLayers): "between" is then 0 (a layer's record opens where
// the previous one closed), and the final norm and the head's product are inside the job, after the last layer's
// phases ("after last phase"), not among the "js" rows. NEUROSHARD_DECODE_LAYERS=0 gives the per-layer path.
//   nice -n 5 node scripts/experiments/decode-phases.mjs [--threads 2] [--modes f32,int8] [--steps 64] [--blocks 4]
//        [--root DIR]   (another checkout's dist/ and build/)
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

process.env.NEUROSHARD_DECODE_TRACE = '1';
const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const threads = Number(opt('--threads', '2'));
const modes = opt('--modes', 'f32,int8').split(',');
const steps = Number(opt('--steps', '64'));
const blocks = Number(opt('--blocks', '4'));
const root = resolve(opt('--root', '.'));
const d = (p) => import(`${root}/dist/src/${p}`);
const { LlamaShard } = await d('model/shard.js');
const { KVCache } = await d('model/kv-cache.js');
const { presetConfig } = await d('model/presets.js');
const { selectBackend } = await d('tensor/index.js');
const { nativeAddonPath } = await d('tensor/backends/native.js');
const { ReadProbe, decodeReadBytes } = await d('compute/llamacpp/bench.js');

const config = presetConfig('12x768');
const { backend } = await selectBackend({ backend: 'native', threads });
backend.setThreads(threads);
const addon = createRequire(import.meta.url)(nativeAddonPath().path);
if (typeof addon.decodeTrace !== 'function') throw new Error(`${root}: this build has no decodeTrace`);
const f32 = new LlamaShard({ config, backend, seed: 0 });
const shards = { f32, int8: modes.includes('int8') ? f32.quantized() : undefined };
const PROMPT = 8;
const L = config.num_hidden_layers;
const C = config.hidden_size, HD = config.num_attention_heads * config.head_dim, KVD = config.num_key_value_heads * config.head_dim, F = config.intermediate_size;
const V = config.vocab_size;
const PH = ['norm1', 'qkv', 'rope', 'attn', 'q_att', 'o', 'norm2', 'gate_up', 'swiglu', 'down'];
const FIELDS = 3 + 4 * PH.length;
const mats = { qkv: [HD + 2 * KVD, C], o: [C, HD], gate_up: [2 * F, C], down: [C, F] };
const matBytes = (w, [n, k]) => (w === 'f32' ? 4 * n * k : n * k + (4 * n * k) / 32);

// JS-side timing of the non-layer backend calls of a step
const jsOps = new Map();
for (const name of ['gemm', 'rmsnormForward', 'embeddingForward', 'primePool', 'restPool']) {
  const f = backend[name];
  if (typeof f !== 'function') continue;
  backend[name] = function (...a) {
    const t0 = performance.now();
    const r = f.apply(this, a);
    const key = name === 'gemm' ? `gemm ${a[3].M}x${a[3].N}x${a[3].K}` : name;
    jsOps.set(key, (jsOps.get(key) ?? 0) + (performance.now() - t0));
    return r;
  };
}

const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function block(w) {
  const sh = shards[w];
  const cache = new KVCache(config, { span: sh.span, batch: 1, maxLen: PROMPT + steps + 1 });
  let l = sh.forward(Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + 1) % V), 1, PROMPT, { cache });
  let tok = 0;
  for (let j = 1; j < V; j++) if (l[(PROMPT - 1) * V + j] > l[(PROMPT - 1) * V + tok]) tok = j;
  addon.decodeTrace();
  const out = [];
  for (let s = 0; s < steps; s++) {
    jsOps.clear();
    const t0 = performance.now();
    l = sh.forward(Int32Array.of(tok), 1, 1, { cache });
    const stepMs = performance.now() - t0;
    tok = 0;
    for (let j = 1; j < V; j++) if (l[j] > l[tok]) tok = j;
    const tr = addon.decodeTrace();
    if (tr.length !== L * FIELDS) throw new Error(`trace of ${tr.length} numbers, expected ${L * FIELDS}`);
    const r = { step: stepMs * 1000, layers: 0, between: 0, prep: 0, after: 0, phase: PH.map(() => 0), wait: PH.map(() => 0), cpu: PH.map(() => 0), busy: PH.map(() => 0), js: Object.fromEntries([...jsOps].map(([k, v]) => [k, v * 1000])) };
    for (let li = 0; li < L; li++) {
      const o0 = li * FIELDS;
      const o = o0 + 1; // [entry, open, close, phases…]
      r.layers += (tr[o + 1] - tr[o]) / 1000;
      r.prep += (tr[o] - tr[o0]) / 1000;
      if (li > 0) r.between += (tr[o0] - tr[o - FIELDS + 1]) / 1000;
      let prevEnd = 0;
      PH.forEach((_, p) => {
        const f0 = tr[o + 2 + 4 * p], f1 = tr[o + 3 + 4 * p];
        if (f0 < 0) return;
        r.phase[p] += (f1 - f0) / 1000;
        r.wait[p] += (f0 - prevEnd) / 1000;
        r.busy[p] += tr[o + 4 + 4 * p] / 1000;
        r.cpu[p] += tr[o + 5 + 4 * p];
        prevEnd = f1;
      });
      r.after += (tr[o + 1] - tr[o] - prevEnd) / 1000; // the last task's end → the job's close
    }
    out.push(r);
  }
  return out;
}

const probe = await ReadProbe.start(threads, 128);
try {
  for (const w of modes) block(w); // warm-up
  const all = Object.fromEntries(modes.map((w) => [w, []]));
  const bounds = Object.fromEntries(modes.map((w) => [w, { bps: [], cpu: [] }]));
  for (let b = 0; b < blocks; b++)
    for (const w of b % 2 === 0 ? modes : [...modes].reverse()) {
      const s = await probe.sample(3);
      bounds[w].bps.push(s.bps / 1e9);
      bounds[w].cpu.push(s.cpuBps / 1e9);
      all[w].push(...block(w));
    }
  for (const w of modes) {
    const rs = all[w];
    const bytes = decodeReadBytes(config, w, PROMPT, steps);
    const row = (name, xs, by, cpu) => {
      const mn = Math.min(...xs), md = med(xs);
      const o = { [w]: name, min_us: +mn.toFixed(1), med_us: +md.toFixed(1) };
      if (by !== undefined) Object.assign(o, { mb: +(by / 1e6).toFixed(2), gb_s_min: +(by / mn / 1e3).toFixed(1), gb_s_med: +(by / md / 1e3).toFixed(1) });
      if (cpu !== undefined) o.busy_per_wall = +cpu.toFixed(2);
      console.log(JSON.stringify(o));
    };
    const minStep = Math.min(...rs.map((r) => r.step));
    console.log(
      JSON.stringify({
        mode: w,
        threads,
        steps: rs.length,
        load: loadavg().map((x) => +x.toFixed(2)),
        bound_gb_s: { min: +Math.min(...bounds[w].bps).toFixed(1), med: +med(bounds[w].bps).toFixed(1), max: +Math.max(...bounds[w].bps).toFixed(1) },
        bound_cpu_gb_s: +med(bounds[w].cpu).toFixed(1),
        read_mb: +(bytes.total / 1e6).toFixed(1),
        step_us_min: +(1000 * minStep).toFixed(0) / 1000,
        gb_s_at_min_step: +(bytes.total / minStep / 1e3).toFixed(1),
      }),
    );
    row('step', rs.map((r) => r.step), bytes.total);
    row('layer jobs', rs.map((r) => r.layers), bytes.matrices + bytes.kv + bytes.small);
    row('between layers (JS, N-API call)', rs.map((r) => r.between));
    row('engine prep before each job', rs.map((r) => r.prep));
    PH.forEach((p, i) => {
      const by = mats[p] !== undefined ? L * matBytes(w, mats[p]) : p === 'attn' ? bytes.kv : undefined;
      const cpuRatio = rs.reduce((a, r) => a + r.busy[i], 0) / Math.max(1e-9, rs.reduce((a, r) => a + r.phase[i], 0));
      if (rs.some((r) => r.phase[i] > 0)) row(p, rs.map((r) => r.phase[i]), by, cpuRatio);
      if (i > 0 && rs.some((r) => r.phase[i] > 0)) row(`  wait before ${p}`, rs.map((r) => r.wait[i]));
    });
    row('  after last phase', rs.map((r) => r.after));
    const keys = new Set(rs.flatMap((r) => Object.keys(r.js)));
    for (const k of keys) row(`js ${k}`, rs.map((r) => r.js[k] ?? 0), k.startsWith('gemm') ? bytes.head : undefined);
    console.log(JSON.stringify({ [w]: 'tasks a step', tasks: PH.map((p, i) => `${p} ${(rs.reduce((a, r) => a + r.cpu[i], 0) / rs.length).toFixed(0)}`).join(', ') }));
  }
} finally {
  await probe.close();
}
