#!/usr/bin/env node
// Does main-thread work while a hop's pool computes slow the step by more than its own length? (issue 8,
// chain_ratio_4). The serving bench's 12x768 spans in N compute workers of this process, a decode step passed from
// worker to worker by the main thread alone (as scripts/experiments/poolchain.mjs), and after each post the main
// thread runs for --busy-us µs (a stand-in for the libp2p tail that a hop's main thread runs beside the next hop's
// pool in the one-process chain). Blocks alternate A (no busy work) and B (busy) on the same workers, A B B A ...
// Usage (build first): node scripts/experiments/busychain.mjs [--hops 4] [--tokens 100] [--busy-us 300] [--blocks 8]
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { quantile } from './thread-cpu.mjs';
import { presetConfig } from '../../dist/src/model/index.js';
import { ComputeClient } from '../../dist/src/compute/index.js';
import { evenSpans } from '../../dist/src/node/serving-bench/bench.js';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '4' }, tokens: { type: 'string', default: '100' }, 'busy-us': { type: 'string', default: '300' }, blocks: { type: 'string', default: '8' } } });
const config = presetConfig('12x768');
const prompt = Int32Array.from([1, 5, 9, 13]);
const ws = [];
for (const span of evenSpans(config.num_hidden_layers, Number(args.hops))) {
  const c = await ComputeClient.start({ threads: 2 });
  await c.run({ type: 'initModel', config, seed: 0, span });
  ws.push(c);
}
const spin = (us) => {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
};
let sid = 0;
async function generate(T, busyUs) {
  const id = `s${sid++}`;
  for (const c of ws) await c.run({ type: 'sessionOpen', id, maxLen: prompt.length + T + 1 });
  let ids = prompt.slice();
  let hidden;
  const steps = [];
  const t0 = performance.now();
  for (let t = 0; t < T; t++) {
    const chunks = [t === 0 ? prompt.length : 1];
    for (let k = 0; k < ws.length; k++) {
      const s0 = performance.now();
      const p = ws[k].run({ type: 'sessionStep', id, chunks, ...(k === 0 ? { ids } : { hidden }) });
      if (busyUs > 0) spin(busyUs);
      const r = await p;
      if (t > 0) steps.push(performance.now() - s0);
      hidden = r.hidden;
      if (r.tokens !== undefined) ids = Int32Array.from([r.tokens[0]]);
    }
  }
  const ms = (performance.now() - t0) / T;
  for (const c of ws) await c.run({ type: 'sessionClose', id });
  return { ms, stepP50: quantile(steps, 0.5) };
}
await generate(8, 0);
const busy = Number(args['busy-us']);
const res = { A: [], B: [] };
for (let b = 0; b < Number(args.blocks); b++) {
  const isB = b % 4 === 1 || b % 4 === 2;
  const r = await generate(Number(args.tokens), isB ? busy : 0);
  res[isB ? 'B' : 'A'].push(r);
  console.log(`${isB ? `B (busy ${busy} us)` : 'A (no busy)    '}: ${r.ms.toFixed(2)} ms/token, hop step p50 ${r.stepP50.toFixed(3)} ms, load ${loadavg()[0].toFixed(2)}`);
}
const mean = (xs, f) => xs.reduce((a, x) => a + f(x), 0) / xs.length;
const dStep = mean(res.B, (r) => r.stepP50) - mean(res.A, (r) => r.stepP50);
console.log(`mean ms/token A ${mean(res.A, (r) => r.ms).toFixed(2)}, B ${mean(res.B, (r) => r.ms).toFixed(2)}; hop step p50 A ${mean(res.A, (r) => r.stepP50).toFixed(3)}, B ${mean(res.B, (r) => r.stepP50).toFixed(3)} ms: +${(dStep * 1000).toFixed(0)} us per step for ${busy} us of main-thread work beside the pool`);
for (const c of ws) await c.close();
process.exit(0);
