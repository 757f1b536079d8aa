#!/usr/bin/env node
// Where a hop's compute step goes between threads (issue 8 §5, chain_ratio_4; session 23). The serving bench's
// 12x768 preset in 1 and N compute workers of this process (as poolchain.mjs: the main thread hands a decode step
// from worker to worker, no libp2p), blocks of 1 and N hops alternated (A B B A ...), and per step, with timestamps
// across threads (performance.timeOrigin + now, the workers' NEUROSHARD_BATCH_TRACE lines):
//   in    the main thread's post → the worker's 'message' handler (the hand-off and the worker's wake-up)
//   turn  that handler → the job starts (the worker's setImmediate turn)
//   job   the job itself (the session step: its layers on the worker's native pool) and the answer's post
//   out   the answer's post → the main thread's await resumes (the hand-off back and the main thread's wake-up)
// Per chain also the process's CPU per token (all threads): with a small preset and --threads 1 the difference
// between N hops and 1 is N - 1 hand-offs' CPU (a figure that load moves far less than the wall times).
// Usage (build first): node scripts/experiments/handoff.mjs [--hops 4] [--tokens 64] [--blocks 6] [--threads 2] [--preset 12x768]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { quantile } from './thread-cpu.mjs';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '4' }, tokens: { type: 'string', default: '64' }, blocks: { type: 'string', default: '6' }, threads: { type: 'string', default: '2' }, preset: { type: 'string', default: '12x768' } } });
const dir = mkdtempSync(join(tmpdir(), 'handoff-'));
const traceFile = join(dir, 'trace.jsonl');
process.env.NEUROSHARD_BATCH_TRACE = traceFile; // read by each worker at its start
const { presetConfig } = await import('../../dist/src/model/index.js');
const { ComputeClient } = await import('../../dist/src/compute/index.js');
const { evenSpans } = await import('../../dist/src/node/serving-bench/bench.js');

const clock = () => performance.timeOrigin + performance.now();
const config = presetConfig(args.preset);
const prompt = Int32Array.from([1, 5, 9, 13]);
const T = Number(args.tokens);
const N = Number(args.hops);

/** Per worker (in start order = thread id order), main-side [post, resumed] per job, in the order they ran. */
const mainTimes = new Map();
async function run(c, job) {
  const a = clock();
  const r = await c.run(job);
  const b = clock();
  if (!mainTimes.has(c)) mainTimes.set(c, []);
  mainTimes.get(c).push({ a, b, step: job.type === 'sessionStep' && job.chunks[0] === 1 });
  return r;
}
async function startWorkers(n) {
  const ws = [];
  for (const span of evenSpans(config.num_hidden_layers, n)) {
    const c = await ComputeClient.start({ threads: Number(args.threads) });
    await run(c, { type: 'initModel', config, seed: 0, span });
    ws.push(c);
  }
  return ws;
}
// both chains up together, as the bench's paired blocks
const chains = new Map([[1, await startWorkers(1)], [N, await startWorkers(N)]]);
let sid = 0;
async function generate(ws) {
  const id = `s${sid++}`;
  for (const c of ws) await run(c, { type: 'sessionOpen', id, maxLen: prompt.length + T + 1 });
  let ids = prompt.slice();
  let hidden;
  const out = [];
  const t0 = performance.now();
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < ws.length; k++) {
      const r = await run(ws[k], { type: 'sessionStep', id, chunks: [t === 0 ? prompt.length : 1], ...(k === 0 ? { ids } : { hidden }) });
      hidden = r.hidden;
      if (r.tokens !== undefined) {
        out.push(r.tokens[0]);
        ids = Int32Array.from([r.tokens[0]]);
      }
    }
  }
  const ms = performance.now() - t0;
  for (const c of ws) await run(c, { type: 'sessionClose', id });
  return { ms, out };
}
for (const ws of chains.values()) await generate(ws);
const rates = new Map([[1, []], [N, []]]);
const cpu = new Map([[1, 0], [N, 0]]);
let ref;
const blocks = Number(args.blocks);
for (let b = 0; b < blocks; b++) {
  const order = b % 2 === 0 ? [1, N] : [N, 1];
  for (const n of order) {
    const c0 = process.cpuUsage();
    const { ms, out } = await generate(chains.get(n));
    const c = process.cpuUsage(c0);
    cpu.set(n, cpu.get(n) + (c.user + c.system) / 1000);
    rates.get(n).push((T * 1000) / ms);
    const key = out.join(',');
    ref ??= key;
    if (key !== ref) console.log('TOKENS DIFFER');
  }
}
for (const ws of chains.values()) for (const c of ws) await c.close();
// the workers' lines, grouped per thread id; thread ids ascend in start order
const lines = readFileSync(traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const byTid = new Map();
for (const l of lines) {
  if (!byTid.has(l.tid)) byTid.set(l.tid, []);
  byTid.get(l.tid).push(l);
}
const tids = [...byTid.keys()].sort((a, b) => a - b);
const workers = [...chains.get(1), ...chains.get(N)];
const q = (xs, p) => quantile(xs, p);
const fmt = (xs) => `${q(xs, 0.5).toFixed(3)} (p90 ${q(xs, 0.9).toFixed(3)})`;
for (const [n, ws] of chains) {
  console.log(`${n} hop(s): tok/s per block ${rates.get(n).map((r) => r.toFixed(1)).join(' ')}; process CPU ${((cpu.get(n) * 1000) / (blocks * T)).toFixed(1)} µs a token`);
  const sums = { in: 0, turn: 0, job: 0, out: 0 };
  ws.forEach((c, k) => {
    const mt = mainTimes.get(c);
    const tr = byTid.get(tids[workers.indexOf(c)]);
    const d = { in: [], turn: [], job: [], out: [] };
    let j = 0;
    mt.forEach((m) => {
      // the worker's line for this job: the first whose arrival lies after the post (jobs run one at a time)
      while (j < tr.length && tr[j].firstAt < m.a) j++;
      if (j >= tr.length) return;
      const w = tr[j];
      if (w.end > m.b + 1) return; // not this job's line (a job without one)
      j++;
      if (!m.step) return;
      d.in.push((w.firstAt - m.a) * 1000);
      d.turn.push((w.start - w.firstAt) * 1000);
      d.job.push((w.end - w.start) * 1000);
      d.out.push((m.b - w.end) * 1000);
    });
    for (const key of Object.keys(sums)) sums[key] += q(d[key], 0.5);
    console.log(`  hop ${k} µs: in ${fmt(d.in)}  turn ${fmt(d.turn)}  job ${fmt(d.job)}  out ${fmt(d.out)}`);
  });
  console.log(`  per token (sum of hop medians, µs): in ${sums.in.toFixed(0)} turn ${sums.turn.toFixed(0)} job ${sums.job.toFixed(0)} out ${sums.out.toFixed(0)}`);
}
const r = rates.get(N).map((x, i) => x / rates.get(1)[i]).sort((a, b) => a - b);
console.log(`CPU of a hop step more (N hops − 1 hop, ÷ ${N - 1}): ${(((cpu.get(N) - cpu.get(1)) * 1000) / (blocks * T) / (N - 1)).toFixed(1)} µs`);
console.log(`ratio ${N}/1 per block: median ${q(r, 0.5).toFixed(3)} (${r[0].toFixed(3)}–${r[r.length - 1].toFixed(3)}), load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
