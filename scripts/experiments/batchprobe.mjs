#!/usr/bin/env node
// Where an 8-stream batch step's time goes (issue 8 §5, batch8_ratio). Usage (build first):
//   NEUROSHARD_BATCH_TRACE=1 node scripts/experiments/batchprobe.mjs [--streams 1,8] [--tokens 64] [--prof DIR]
// The bench's serving-batch setup (src/node/serving-bench/bench.ts: one hop holding the whole 12x768 model, an entry
// node, both in this process) and, per decoded token, the CPU time of each thread of the process (/proc/self/task):
// the main thread carries the entry, the driver and the hop's libp2p/RPC/commitments; the compute worker thread its
// JavaScript between kernels; the pool helpers the kernels. With NEUROSHARD_BATCH_TRACE=1 the worker also reports
// its own timeline (worker.ts): per batch, the time it waited for steps, ran the forward, posted the answers, and
// was idle between batches.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { quantile, threadCpu } from './thread-cpu.mjs';
import { presetConfig } from '../../dist/src/model/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { startChain, decode } from '../../dist/src/node/serving-bench/bench.js';

const { values: args } = parseArgs({ options: { streams: { type: 'string', default: '1,8' }, tokens: { type: 'string', default: '64' }, threads: { type: 'string', default: '2' }, prof: { type: 'string' } } });
const q = quantile;
const f2 = (x) => Math.round(x * 100) / 100;
// per batch: rows; spread = last arrival - first arrival; wait = start - last arrival; fwd; post = end - start - fwd;
// gap = this batch's first arrival - the previous batch's end (the answers' trip out and the next steps' trip in)
function summarize(recs) {
  const b = recs.filter((r) => r.fwdMs > 0); // decode batches (opens, prefills and closes run alone)
  const gaps = [];
  for (let i = 1; i < b.length; i++) gaps.push(b[i].firstAt - b[i - 1].end);
  const cycle = [];
  for (let i = 1; i < b.length; i++) cycle.push(b[i].start - b[i - 1].start);
  const med = (f) => f2(q(b.map(f), 0.5));
  return { batches: b.length, rows: f2(b.reduce((a, r) => a + r.rows, 0) / b.length), cycleMs: f2(q(cycle, 0.5)), fwdMs: med((r) => r.fwdMs), endMinusStart: med((r) => r.end - r.start), postMs: med((r) => r.end - r.start - r.fwdMs), spreadMs: med((r) => r.lastAt - r.firstAt), waitAfterLastMs: med((r) => r.start - r.lastAt), gapMs: f2(q(gaps, 0.5)), gapP90: f2(q(gaps, 0.9)) };
}
const config = presetConfig('12x768');
const networkId = bundledGenesis().networkId;
const tokens = Number(args.tokens);
const chain = await startChain(networkId, config, [{ start: 0, end: config.num_hidden_layers }], Number(args.threads), 'deployed');
const compute = chain.hops[0].compute;
try {
  await decode(chain, config, 4);
  const i0 = threadCpu().get(String(process.pid))?.ms ?? 0;
  const iw = performance.now();
  await new Promise((r) => setTimeout(r, 2000));
  const idleMain = ((threadCpu().get(String(process.pid))?.ms ?? 0) - i0) / ((performance.now() - iw) / 1000);
  for (const n of args.streams.split(',').map(Number)) {
    let session;
    if (args.prof !== undefined) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
    }
    const TF = process.env.NEUROSHARD_BATCH_TRACE;
    if (TF) writeFileSync(TF, '');
    const t0 = threadCpu();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const m0 = process.hrtime.bigint();
    const all = await Promise.all(Array.from({ length: n }, (_, i) => decode(chain, config, tokens, { prompt: [1, 5 + i, 9, 13 + i] })));
    const wall = performance.now() - w0;
    const m1 = process.hrtime.bigint();
    // for `perf record -k CLOCK_MONOTONIC` then `perf report --time START,END`
    const sec = (t) => `${t / 1000000000n}.${String(t % 1000000000n).padStart(9, '0')}`;
    console.log(`   monotonic window ${sec(m0)},${sec(m1)}`);
    const c = process.cpuUsage(c0);
    const t1 = threadCpu();
    const trace = TF ? summarize(readFileSync(TF, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))) : undefined;
    if (session !== undefined) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(`${args.prof}/batch-${n}.cpuprofile`, JSON.stringify(profile));
      session.disconnect();
    }
    const T = all.reduce((a, r) => a + r.times.length, 0);
    const first = Math.min(...all.map((r) => r.times[0]));
    const last = Math.max(...all.map((r) => r.times.at(-1)));
    const agg = ((T - n) * 1000) / (last - first);
    const per = [];
    for (const [tid, a] of t1) {
      const d = a.ms - (t0.get(tid)?.ms ?? 0);
      if (d > 0) per.push({ tid, comm: a.comm, ms: d });
    }
    per.sort((x, y) => y.ms - x.ms);
    const main = per.find((x) => x.tid === String(process.pid))?.ms ?? 0;
    const allMs = per.reduce((a, x) => a + x.ms, 0);
    console.log(`== ${n} stream(s): ${agg.toFixed(1)} tok/s in all, ${T} tokens, wall ${wall.toFixed(0)} ms, load ${loadavg()[0].toFixed(2)}`);
    console.log(`   process CPU ${((c.user + c.system) / 1000 / T).toFixed(2)} ms/token; main ${(main / T).toFixed(2)} (${((main - (idleMain * wall) / 1000) / T).toFixed(2)} less idle ${idleMain.toFixed(1)} ms/s); others ${((allMs - main) / T).toFixed(2)}`);
    console.log(`   threads (ms/token): ${per.slice(0, 10).map((x) => `${x.comm}${x.tid === String(process.pid) ? '*' : ''} ${(x.ms / T).toFixed(2)}`).join(', ')}`);
    if (trace !== undefined) console.log(`   worker: ${JSON.stringify(trace)}`);
  }
} finally {
  await chain.close();
}
process.exit(0);
