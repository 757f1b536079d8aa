#!/usr/bin/env node
// The chain's compute hand-offs without libp2p (issue 8 §5 chain_ratio_4): the serving bench's 12x768 preset split
// over N compute workers in this process, a decode step passed from worker to worker by the main thread alone
// (ComputeClient.run, as a hop server does, with no RPC between), so that what a split span costs in the workers
// and their pools shows apart from the transport. Usage (build first):
//   node scripts/experiments/poolchain.mjs [--hops 1,4] [--tokens 200] [--threads 2] [--reps 1]
// Per N: tok/s, each hop's step time as the main thread sees it (compute.run's wall: messages + the worker's job),
// and the process CPU per token. With NEUROSHARD_BATCH_TRACE=FILE the workers' own job times are in FILE.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { quantile, threadCpu } from './thread-cpu.mjs';
import { presetConfig } from '../../dist/src/model/index.js';
import { ComputeClient } from '../../dist/src/compute/index.js';
import { evenSpans } from '../../dist/src/node/serving-bench/bench.js';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '1,4' }, tokens: { type: 'string', default: '200' }, threads: { type: 'string', default: '2' }, reps: { type: 'string', default: '1' } } });
const q = quantile;
const config = presetConfig('12x768');
const tokens = Number(args.tokens);
const prompt = Int32Array.from([1, 5, 9, 13]);
const hopsList = args.hops.split(',').map(Number);
async function startWorkers(n) {
  const ws = [];
  for (const span of evenSpans(config.num_hidden_layers, n)) {
    const c = await ComputeClient.start({ threads: Number(args.threads) });
    await c.run({ type: 'initModel', config, seed: 0, span });
    ws.push({ c, span });
  }
  return ws;
}
let sid = 0;
async function generate(ws, T, onStep) {
  const id = `s${sid++}`;
  for (const w of ws) await w.c.run({ type: 'sessionOpen', id, maxLen: prompt.length + T + 1 });
  let ids = prompt.slice();
  const out = [];
  for (let t = 0; t < T; t++) {
    let hidden;
    const chunks = [t === 0 ? prompt.length : 1];
    for (let k = 0; k < ws.length; k++) {
      const t0 = performance.now();
      const r = await ws[k].c.run({ type: 'sessionStep', id, chunks, ...(k === 0 ? { ids } : { hidden }) });
      if (t > 0) onStep?.(k, performance.now() - t0);
      hidden = r.hidden;
      if (r.tokens !== undefined) {
        out.push(r.tokens[0]);
        ids = Int32Array.from([r.tokens[0]]);
      }
    }
  }
  for (const w of ws) await w.c.run({ type: 'sessionClose', id });
  return out;
}
const ref = new Map();
for (let rep = 0; rep < Number(args.reps); rep++) {
  for (const n of hopsList) {
    // one chain's workers at a time, as the bench runs them: a lone pool is not oversubscribed
    const ws = await startWorkers(n);
    await generate(ws, 4);
    const steps = ws.map(() => []);
    const th0 = threadCpu();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const toks = await generate(ws, tokens, (k, ms) => steps[k].push(ms));
    const wall = performance.now() - w0;
    const c = process.cpuUsage(c0);
    const th1 = threadCpu();
    const per = [];
    for (const [tid, a] of th1) {
      const d = a.ms - (th0.get(tid)?.ms ?? 0);
      if (d > 0) per.push(`${a.comm}${tid === String(process.pid) ? '*' : ''} ${(d / tokens).toFixed(2)}`);
    }
    const key = toks.join(',');
    if (!ref.has('t')) ref.set('t', key);
    const same = ref.get('t') === key;
    const perStep = steps.map((s) => q(s, 0.5));
    console.log(`${n} hop(s): ${((tokens * 1000) / wall).toFixed(1)} tok/s, ${(wall / tokens).toFixed(2)} ms/token, hop steps p50 ${perStep.map((x) => x.toFixed(3)).join(' / ')} (sum ${perStep.reduce((a, b) => a + b, 0).toFixed(2)}), CPU ${((c.user + c.system) / 1000 / tokens).toFixed(2)} ms/token, load ${loadavg()[0].toFixed(2)}${same ? '' : ' TOKENS DIFFER'}`);
    console.log(`   threads ms/token: ${per.join(', ')}`);
    for (const w of ws) await w.c.close();
  }
}
process.exit(0);
