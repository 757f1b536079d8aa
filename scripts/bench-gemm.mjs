#!/usr/bin/env node
// Quick benchmark of the native addon: GEMM GFLOP/s against torch.mm in the same run, and the per-kernel time of
// one training step of the anchor model (dim 256, 4 layers, 4/2 heads, FFN 688, vocab 4096, batch 8 × seq 128).
//
//   node scripts/bench-gemm.mjs [--rounds 3] [--kernels] [--no-torch] [--isa avx2] [--gemm own|openblas] [--json]
//
// GEMM protocol (the PyTorch anchor's): one warm-up call, then 3 repetitions of at least 0.25 s, median. The
// machine is shared, so each round measures ours (1 and 2 threads) and torch (OMP_NUM_THREADS=1,
// OPENBLAS_NUM_THREADS=1 or 2) back to back, and the report gives the median over rounds.
// Kernel timings: each kernel call of a training step at its real shape, median of 15 calls, at 1 and 2 threads.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const has = (name) => args.includes(name);
const addon = createRequire(import.meta.url)(`${root}build/Release/neuroshard_native.node`);
if (opt('--isa')) addon.setIsa(opt('--isa'));
if (opt('--gemm')) addon.setGemm(opt('--gemm'));
const rounds = Number(opt('--rounds', '3'));
const info = addon.info();
const cores = info.defaultThreads;

const SHAPES = [
  [512, 512, 512],
  [1024, 1024, 1024],
  [2048, 2048, 2048],
  [64, 768, 3072],
];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rand = (n) => {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
};

function gemmGflops(M, K, N, threads) {
  addon.setThreads(threads);
  const A = rand(M * K);
  const B = rand(K * N);
  const C = new Float32Array(M * N);
  const run = () => addon.gemm(A, B, C, false, false, M, N, K, 1, 0, 1, 0, 0, 0, K, N, N, 0, 0, 0);
  run();
  const reps = [];
  for (let r = 0; r < 3; r++) {
    let n = 0;
    const t0 = performance.now();
    let dt;
    do {
      run();
      n++;
      dt = performance.now() - t0;
    } while (dt < 250);
    reps.push((2 * M * N * K * n) / dt / 1e6);
  }
  return median(reps);
}

const TORCH = `
import time, torch, json
torch.set_num_threads(1)
out = {}
for (m, k, n) in ((512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (64, 768, 3072)):
    A, B = torch.randn(m, k), torch.randn(k, n)
    torch.mm(A, B)
    best = []
    for r in range(3):
        reps, t0 = 0, time.perf_counter()
        while True:
            torch.mm(A, B)
            reps += 1
            dt = time.perf_counter() - t0
            if dt > 0.25:
                break
        best.append(2 * m * k * n * reps / dt / 1e9)
    best.sort()
    out[f"{m}x{k}x{n}"] = best[1]
print(json.dumps(out))
`;

function torchGflops(threads) {
  const r = spawnSync('/usr/bin/python3', ['-c', TORCH], {
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: String(threads) },
    encoding: 'utf8',
  });
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function benchGemm() {
  const withTorch = !has('--no-torch') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const samples = {};
  for (const [M, K, N] of SHAPES) samples[`${M}x${K}x${N}`] = { t1: [], t2: [], torch1: [], torch2: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [M, K, N] of SHAPES) {
      const s = samples[`${M}x${K}x${N}`];
      s.t1.push(gemmGflops(M, K, N, 1));
      s.t2.push(gemmGflops(M, K, N, Math.max(2, Math.min(2, cores))));
    }
    if (withTorch) {
      for (const [t, key] of [
        [1, 'torch1'],
        [2, 'torch2'],
      ]) {
        const res = torchGflops(t);
        if (res) for (const k of Object.keys(samples)) samples[k][key].push(res[k]);
      }
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  addon.setThreads(cores);
  const i = addon.info();
  console.log(`native ${i.isa} (${i.gemm} GEMM, tile ${i.gemmTile.mr}x${i.gemmTile.nr}); median of ${rounds} rounds, GFLOP/s`);
  console.log('shape              ours 1T   ours 2T   torch 1T  torch 2T  ours2T/torch2T');
  const out = {};
  for (const [k, s] of Object.entries(samples)) {
    const m = (xs) => (xs.length ? median(xs) : null);
    const row = { t1: m(s.t1), t2: m(s.t2), torch_t1: m(s.torch1), torch_t2: m(s.torch2) };
    out[k] = row;
    const f = (x) => (x === null ? '     -' : x.toFixed(1).padStart(8));
    console.log(`${k.padEnd(16)} ${f(row.t1)}  ${f(row.t2)}  ${f(row.torch_t1)}  ${f(row.torch_t2)}  ${row.torch_t2 ? (row.t2 / row.torch_t2).toFixed(2).padStart(8) : '     -'}`);
  }
  return out;
}

// ---- one training step's kernels ------------------------------------------------------------------------------

function benchKernels() {
  const [B, T, C, L, H, KV, D, F, V] = [8, 128, 256, 4, 4, 2, 64, 688, 4096];
  const N = B * T;
  const P = 4_999_424;
  const linears = [
    ['q', C, H * D],
    ['k', C, KV * D],
    ['v', C, KV * D],
    ['o', H * D, C],
    ['gate', C, F],
    ['up', C, F],
    ['down', F, C],
  ];
  const buf = new Map();
  const get = (name, n) => {
    if (!buf.has(name)) buf.set(name, rand(n));
    return buf.get(name);
  };
  const kernels = [];
  // forward and backward of every linear layer (W is [O, I]): y = x·Wᵀ, dW += dyᵀ·x, dx = dy·W
  for (const [name, I, O] of [...linears.map((l) => [...l, L]), ['lm_head', C, V, 1]].map((x) => (x.length === 4 ? x : [...x, L]))) {
    const per = name === 'lm_head' ? 1 : L;
    const x = get(`x${I}`, N * I);
    const w = get(`w${name}`, O * I);
    const y = get(`y${O}`, N * O);
    kernels.push([`fwd gemm ${name} NT ${N}x${O}x${I}`, per, 'fwd', () => addon.gemm(x, w, y, false, true, N, O, I, 1, 0, 1, 0, 0, 0, I, I, O, 0, 0, 0)]);
    const dw = get(`dw${name}`, O * I);
    kernels.push([`bwd gemm ${name} dW TN ${O}x${I}x${N}`, per, 'bwd', () => addon.gemm(y, x, dw, true, false, O, I, N, 1, 1, 1, 0, 0, 0, O, I, I, 0, 0, 0)]);
    const dx = get(`dx${I}`, N * I);
    kernels.push([`bwd gemm ${name} dX NN ${N}x${I}x${O}`, per, 'bwd', () => addon.gemm(y, w, dx, false, false, N, I, O, 1, 0, 1, 0, 0, 0, O, I, I, 0, 0, 0)]);
  }
  const x = get('x256', N * C);
  const w = get('wn', C);
  const out = get('rn', N * C);
  const rstd = get('rstd', N);
  kernels.push(['fwd rmsnorm', 2 * L + 1, 'fwd', () => addon.rmsnormForward(x, w, out, rstd, N, C, 1e-6)]);
  kernels.push(['bwd rmsnorm', 2 * L + 1, 'bwd', () => addon.rmsnormBackward(out, x, w, rstd, get('dxr', N * C), get('dwr', C), N, C, true)]);
  const q = get('q', N * H * D);
  const k = get('k', N * KV * D);
  const v = get('v', N * KV * D);
  kernels.push(['fwd rope q+k', L, 'fwd', () => (addon.rope(q, B, T, H, D, 0, 10000, false, null), addon.rope(k, B, T, KV, D, 0, 10000, false, null))]);
  kernels.push(['bwd rope q+k', L, 'bwd', () => (addon.rope(q, B, T, H, D, 0, 10000, true, null), addon.rope(k, B, T, KV, D, 0, 10000, true, null))]);
  const att = get('att', N * H * D);
  const lse = get('lse', B * H * T);
  kernels.push(['fwd attention', L, 'fwd', () => addon.attentionForward(q, k, v, att, lse, B, T, T, H, KV, D)]);
  addon.attentionForward(q, k, v, att, lse, B, T, T, H, KV, D);
  const [dq, dk, dv] = [get('dq', N * H * D), get('dk', N * KV * D), get('dv', N * KV * D)];
  kernels.push(['bwd attention', L, 'bwd', () => addon.attentionBackward(get('dout', N * H * D), q, k, v, att, lse, dq, dk, dv, B, T, T, H, KV, D)]);
  const g = get('g', N * F);
  const u = get('u', N * F);
  kernels.push(['fwd swiglu', L, 'fwd', () => addon.swigluForward(g, u, get('sw', N * F), N * F)]);
  kernels.push(['bwd swiglu', L, 'bwd', () => addon.swigluBackward(get('dsw', N * F), g, u, get('dg', N * F), get('du', N * F), N * F)]);
  kernels.push(['fwd residual add', 2 * L, 'fwd', () => addon.add(x, out, get('res', N * C), N * C)]);
  kernels.push(['bwd residual add', 2 * L, 'bwd', () => addon.add(x, out, get('res', N * C), N * C)]);
  const table = get('emb', V * C);
  const ids = new Int32Array(N).map((_, i) => (i * 2654435761) % V);
  kernels.push(['fwd embedding', 1, 'fwd', () => addon.embeddingForward(table, ids, get('e', N * C), N, C)]);
  kernels.push(['bwd embedding', 1, 'bwd', () => addon.embeddingBackward(get('e', N * C), ids, get('demb', V * C), N, C)]);
  const logits = get('logits', N * V);
  kernels.push(['fwd+bwd cross-entropy', 1, 'fwd', () => addon.crossEntropy(logits, ids, N, V, -100, get('dlogits', N * V), 1 / N)]);
  const [pp, pg, pm, pv] = [get('pp', P), get('pg', P), new Float32Array(P), new Float32Array(P)];
  kernels.push(['opt grad norm (sumSquares)', 1, 'opt', () => addon.sumSquares(pg, P)]);
  kernels.push(['opt adamw', 1, 'opt', () => addon.adamw(pp, pg, pm, pv, P, 1e-3, 0.9, 0.999, 1e-8, 0.1, 3, 1)]);

  const results = {};
  for (const threads of [1, Math.min(2, cores)]) {
    addon.setThreads(threads);
    const tot = { fwd: 0, bwd: 0, opt: 0 };
    const rows = [];
    for (const [name, count, phase, fn] of kernels) {
      fn();
      fn();
      const ts = [];
      const cpu = [];
      for (let r = 0; r < 15; r++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        fn();
        ts.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
      }
      const ms = median(ts);
      tot[phase] += ms * count;
      rows.push([name, count, ms, median(cpu)]);
    }
    results[threads] = { rows, tot };
  }
  addon.setThreads(cores);
  const t2 = Math.min(2, cores);
  console.log(`\nkernels of one training step (median of 15 calls; ms per call; × calls per step)`);
  // On a shared machine wall time includes time the scheduler gave to others; 1T CPU time does not.
  console.log(`${'kernel'.padEnd(40)} calls   1T ms  1T cpu ms  ${t2}T ms`);
  results[1].rows.forEach(([name, count, ms, cpu], i) => {
    console.log(`${name.padEnd(40)} ${String(count).padStart(4)} ${ms.toFixed(3).padStart(8)} ${cpu.toFixed(3).padStart(8)} ${results[t2].rows[i][2].toFixed(3).padStart(8)}`);
  });
  const cpu1 = results[1].rows.reduce((acc, [, count, , cpu]) => acc + count * cpu, 0);
  console.log(`1T CPU time per step: ${cpu1.toFixed(1)} ms`);
  for (const t of [1, t2]) {
    const s = results[t].tot;
    console.log(`${t}T kernel time per step: forward ${s.fwd.toFixed(1)} ms, backward ${s.bwd.toFixed(1)} ms, optimizer ${s.opt.toFixed(1)} ms, total ${(s.fwd + s.bwd + s.opt).toFixed(1)} ms`);
  }
  return { t1: results[1].tot, [`t${t2}`]: results[t2].tot };
}

const report = { info };
if (!has('--kernels-only')) report.gemm = benchGemm();
if (has('--kernels') || has('--kernels-only')) report.kernels = benchKernels();
if (has('--json')) console.log(JSON.stringify(report));
