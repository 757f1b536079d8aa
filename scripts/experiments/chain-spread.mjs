#!/usr/bin/env node
// How steady is a 1-hop chain's tokens/s from one run to the next (issue 8 §5 chain_ratio_4; session 22, helper
// chainq)? The serving bench's 1-hop chain (12x768, seeded init, entry + one hop on loopback, deployed pace), then
// `--runs` greedy generations of `--tokens` tokens back to back, each right after a read of the host's memory
// bandwidth (the decode bench's ReadProbe: 2 pinned threads, 64 MiB each, one pass). Prints each run's tokens/s
// beside the GB/s read just before it, then their spread and correlation: a batch-1 decode is memory-bound, so a
// ratio of two chains timed at different moments carries the memory's drift between them.
//   node scripts/experiments/chain-spread.mjs [--runs 16] [--tokens 48] [--hops 1] [--no-probe]
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ReadProbe } from '../../dist/src/compute/llamacpp/bench.js';
import { presetConfig } from '../../dist/src/model/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { decode, evenSpans, startChain } from '../../dist/src/node/serving-bench/bench.js';

const { values: a } = parseArgs({ options: { runs: { type: 'string', default: '16' }, tokens: { type: 'string', default: '48' }, hops: { type: 'string', default: '1' }, 'no-probe': { type: 'boolean', default: false } } });
const runs = Number(a.runs);
const tokens = Number(a.tokens);
const hops = Number(a.hops);
const config = presetConfig('12x768');
const chain = await startChain(bundledGenesis().networkId, config, evenSpans(config.num_hidden_layers, hops), availableParallelism(), 'deployed');
const probe = a['no-probe'] ? undefined : await ReadProbe.start(2, 64);
const rows = [];
try {
  await decode(chain, config, 4);
  for (let i = 0; i < runs; i++) {
    const gbs = probe === undefined ? NaN : (await probe.pass(1)).bps / 1e9;
    const r = await decode(chain, config, tokens);
    rows.push({ gbs, tokS: r.tokS });
    console.log(`run ${i + 1}: ${r.tokS.toFixed(1)} tok/s, memory read ${gbs.toFixed(1)} GB/s just before (load ${loadavg()[0].toFixed(2)})`);
  }
} finally {
  await probe?.close();
  await chain.close();
}
const xs = rows.map((r) => r.tokS);
const s = [...xs].sort((p, q) => p - q);
const mean = (v) => v.reduce((p, q) => p + q, 0) / v.length;
const consecutive = xs.slice(1).map((x, i) => x / xs[i]);
console.log(`${hops} hop(s), ${runs} runs of ${tokens} tokens: tok/s min ${s[0].toFixed(1)} median ${s[s.length >> 1].toFixed(1)} max ${s.at(-1).toFixed(1)} (max/min ${(s.at(-1) / s[0]).toFixed(2)}); ` + `ratio of consecutive runs ${Math.min(...consecutive).toFixed(3)}–${Math.max(...consecutive).toFixed(3)}`);
if (probe !== undefined) {
  const g = rows.map((r) => r.gbs);
  const mx = mean(xs);
  const mg = mean(g);
  const cov = mean(rows.map((r) => (r.tokS - mx) * (r.gbs - mg)));
  const sd = (v, m) => Math.sqrt(mean(v.map((x) => (x - m) ** 2)));
  console.log(`memory read min ${Math.min(...g).toFixed(1)} max ${Math.max(...g).toFixed(1)} GB/s; correlation of tok/s with it ${(cov / (sd(xs, mx) * sd(g, mg))).toFixed(2)}`);
}
process.exit(0);
