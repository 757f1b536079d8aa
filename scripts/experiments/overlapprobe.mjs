#!/usr/bin/env node
// What the main thread does while a hop's compute worker runs its step (issue 8, chain_ratio_4). Usage (build first):
//   node scripts/experiments/overlapprobe.mjs [--hops 4] [--tokens 100] [--out FILE.json] [--no-prof]
// A chain of the bench (src/node/serving-bench/bench.ts) decodes greedily while the main thread is profiled; every
// `sessionStep` job posted to a compute worker is timed (CLOCK_MONOTONIC, the profiler's clock). The main thread's
// samples that fall inside a step's window compete with that hop's kernel pool for the two cores (a 2-thread pool
// on 2 cores waits at each barrier for a preempted helper): printed per token and by the frames they ran.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { presetConfig } from '../../dist/src/model/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { ComputeClient } from '../../dist/src/compute/client.js';
import { startChain, decode, evenSpans } from '../../dist/src/node/serving-bench/bench.js';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '4' }, tokens: { type: 'string', default: '100' }, out: { type: 'string' }, 'no-prof': { type: 'boolean', default: false } } });
const us = () => Number(process.hrtime.bigint() / 1000n);
// this thread's CPU time (ns) from the scheduler's account: exact, unlike a wall-clock profile on a loaded machine
const cpuNs = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
let overlapNs = 0;
const windows = [];
const run0 = ComputeClient.prototype.run;
ComputeClient.prototype.run = function (job, opts) {
  if (job.type !== 'sessionStep') return run0.call(this, job, opts);
  const p = run0.call(this, job, opts);
  // from the end of the post (the post, and the main thread's preemption by the worker it woke, are not competition)
  const w = [us(), NaN];
  const c0 = cpuNs();
  windows.push(w);
  return p.finally(() => {
    w[1] = us();
    overlapNs += cpuNs() - c0;
  });
};
const config = presetConfig('12x768');
const n = Number(args.hops);
const chain = await startChain(bundledGenesis().networkId, config, evenSpans(config.num_hidden_layers, n), 2, 'deployed');
try {
  await decode(chain, config, 8);
  {
    // a pass without the profiler: the main thread's CPU while a worker runs a step, against all of its CPU
    overlapNs = 0;
    const c0 = cpuNs();
    const r = await decode(chain, config, Number(args.tokens));
    const all = cpuNs() - c0;
    const T = r.times.length;
    console.log(`== ${n} hop(s), no profiler: ${r.tokS.toFixed(1)} tok/s, load ${loadavg()[0].toFixed(2)}; main thread CPU ${(all / 1e6 / T).toFixed(3)} ms/token, of which ${(overlapNs / 1e6 / T).toFixed(3)} while a worker ran a step (schedstat; the CPU of reading it included)`);
  }
  if (args['no-prof']) process.exit(0);
  windows.length = 0;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const r = await decode(chain, config, Number(args.tokens));
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  if (args.out !== undefined) writeFileSync(args.out, JSON.stringify({ profile, windows }));
  const nodes = new Map(profile.nodes.map((x) => [x.id, x]));
  const parent = new Map();
  for (const x of profile.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const label = (x) => `${x.callFrame.functionName || '(anon)'} ${x.callFrame.url.replace(/.*\/(dist\/src|node_modules)\//, '').replace(/^node:internal\//, '')}:${x.callFrame.lineNumber}`;
  const ws = windows.filter((w) => Number.isFinite(w[1])).sort((a, b) => a[0] - b[0]);
  let t = profile.startTime;
  let wi = 0;
  let inside = 0;
  let outside = 0;
  const by = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    const x = nodes.get(profile.samples[i]);
    const dt = profile.timeDeltas[i + 1] ?? 0;
    if (x.callFrame.functionName === '(idle)') continue;
    while (wi < ws.length && ws[wi][1] < t) wi++;
    const inWin = wi < ws.length && ws[wi][0] <= t && t <= ws[wi][1];
    if (!inWin) {
      outside += dt;
      continue;
    }
    inside += dt;
    // the innermost frame and the nearest frame of ours (dist/src) above it
    let ours = '';
    for (let y = x.id; y !== undefined; y = parent.get(y)) {
      const f = nodes.get(y);
      if (f.callFrame.url.includes('/dist/src/') && !f.callFrame.url.includes('node_modules')) {
        ours = label(f);
        break;
      }
    }
    const k = `${label(x)}  <= ${ours}`;
    by.set(k, (by.get(k) ?? 0) + dt);
  }
  const T = r.times.length;
  const comp = ws.reduce((a, w) => a + (w[1] - w[0]), 0);
  console.log(`== ${n} hop(s): ${r.tokS.toFixed(1)} tok/s, load ${loadavg()[0].toFixed(2)}; compute windows ${(comp / 1000 / T).toFixed(2)} ms/token; main thread busy inside them ${(inside / 1000 / T).toFixed(3)} ms/token, outside ${(outside / 1000 / T).toFixed(3)} ms/token`);
  for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`   ${(v / 1000 / T).toFixed(3)} ms/token  ${k}`);
} finally {
  await chain.close();
}
process.exit(0);
