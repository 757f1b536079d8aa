#!/usr/bin/env node
// What the int8 decode numerics cost in quality, measured on the decode path itself. The bench's int8_ppl_delta
// scores whole 8×128 batches, whose products take the large-M path (weights dequantized to float32), so it does not
// see the small-M (M ≤ 8) kernel a decode step runs. Here, on the bench's model (nano trained --steps steps of 8×128
// from seed 0 on the genesis stream, src/compute/int8/bench.ts):
// - ppl by forward (as the bench: all validation batches), float32 and int8;
// - ppl by teacher-forced decode: the first --seqs validation sequences fed one token at a time through a KV cache
//   (every product a 1-row one), float32 and int8;
// - greedy agreement int8 vs float32 as the bench counts it (--prompts prompts of 16 tokens, 64 tokens each).
// Usage (build first): node scripts/experiments/int8-decode-ppl.mjs [--steps 200] [--seqs 16] [--prompts 20]
//   [--params FILE] (reuse trained parameters saved there by an earlier run, or save them there)
// Prints one JSON line.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ComputeClient } from '../../dist/src/compute/index.js';
import { valLoss } from '../../dist/src/compute/int8/bench.js';
import { openCorpus } from '../../dist/src/data/index.js';
import { presetConfig } from '../../dist/src/model/index.js';
import { KVCache } from '../../dist/src/model/kv-cache.js';
import { LlamaShard } from '../../dist/src/model/shard.js';
import { selectBackend } from '../../dist/src/tensor/index.js';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '200' }, seqs: { type: 'string', default: '16' }, prompts: { type: 'string', default: '20' }, params: { type: 'string' } } });
const STEPS = Number(args.steps);
const B = 8;
const T = 128;
const config = presetConfig('nano');
const corpus = await openCorpus(undefined);
const val = await corpus.validationBatches({ batchSize: B, seqLen: T, maxBatches: 64 });
let params;
if (args.params !== undefined && existsSync(args.params)) {
  const buf = readFileSync(args.params);
  params = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4).slice();
} else {
  const stream = await corpus.trainStream({ nodeId: 'bench-int8', batchSize: B, seqLen: T, seed: 0 });
  const client = await ComputeClient.start({ backend: 'native', threads: availableParallelism() });
  try {
    await client.run({ type: 'initModel', config, seed: 0, trainer: { decaySteps: STEPS } });
    for (let s = 0; s < STEPS; s++) {
      const b = stream.next();
      await client.run({ type: 'trainStep', inputs: b.inputs.slice(), targets: b.labels.slice(), B, T });
    }
    params = (await client.run({ type: 'getParams' })).params;
  } finally {
    await client.close();
  }
  if (args.params !== undefined) writeFileSync(args.params, Buffer.from(params.buffer, params.byteOffset, params.byteLength));
}
const { backend } = await selectBackend({ backend: 'native', threads: availableParallelism() });
const f32 = new LlamaShard({ config, backend, params });
const q8 = f32.quantized();
const V = config.vocab_size;

function decodeLoss(shard, seqs) {
  let sum = 0;
  let n = 0;
  let done = 0;
  for (const b of val) {
    for (let r = 0; r < b.batchSize && done < seqs; r++, done++) {
      const cache = new KVCache(config, { span: shard.span, batch: 1, maxLen: T });
      for (let t = 0; t < T; t++) {
        const y = shard.forward(Int32Array.of(b.inputs[r * T + t]), 1, 1, { cache });
        const label = b.labels[r * T + t];
        if (label < 0) continue;
        let mx = -Infinity;
        for (let v = 0; v < V; v++) mx = Math.max(mx, y[v]);
        let se = 0;
        for (let v = 0; v < V; v++) se += Math.exp(y[v] - mx);
        sum += mx + Math.log(se) - y[label];
        n++;
      }
    }
    if (done >= seqs) break;
  }
  return sum / n;
}
function greedy(shard, prompt, n) {
  const cache = new KVCache(config, { span: shard.span, batch: 1, maxLen: prompt.length + n });
  const out = [];
  let input = prompt;
  for (let k = 0; k < n; k++) {
    const y = shard.forward(input, 1, input.length, { cache });
    const row = y.subarray((input.length - 1) * V, input.length * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    out.push(best);
    input = Int32Array.of(best);
  }
  return out;
}
const t0 = performance.now();
const pf = Math.exp(valLoss(f32, val));
const pq = Math.exp(valLoss(q8, val));
const seqs = Number(args.seqs);
const df = Math.exp(decodeLoss(f32, seqs));
const dq = Math.exp(decodeLoss(q8, seqs));
const ps = [];
for (const b of val) for (let r = 0; r < b.batchSize && ps.length < Number(args.prompts); r++) ps.push(b.inputs.slice(r * T, r * T + 16));
let differing = 0;
let tokens = 0;
for (const p of ps) {
  const a = greedy(f32, p, 64);
  const c = greedy(q8, p, 64);
  const first = a.findIndex((x, i) => x !== c[i]);
  if (first >= 0) {
    differing++;
    tokens += 64 - first;
  }
}
const r5 = (x) => Math.round(x * 1e5) / 1e5;
console.log(
  JSON.stringify({
    isa: backend.describe?.() ?? '',
    forward: { ppl_f32: r5(pf), ppl_int8: r5(pq), delta: r5((pq - pf) / pf) },
    decode: { seqs, ppl_f32: r5(df), ppl_int8: r5(dq), delta: r5((dq - df) / df) },
    greedy_vs_f32: { prompts_differing: r5(differing / ps.length), tokens_differing: r5(tokens / (64 * ps.length)) },
    load: loadavg()[0].toFixed(2),
    s: Math.round((performance.now() - t0) / 1000),
  }),
);
process.exit(0);
