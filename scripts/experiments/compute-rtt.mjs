#!/usr/bin/env node
// One compute worker's hand-off both ways with no work in between (session 23): sequential `ping` jobs through
// ComputeClient with an AbortSignal (as a hop step has one). Per job: wall p50/p90 and the process's CPU (all
// threads). NEUROSHARD_HANDOFF_LEGACY=1 for the worker's path before session 23. Usage (build first):
//   node scripts/experiments/compute-rtt.mjs [--jobs 5000] [--rounds 3]
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { quantile } from './thread-cpu.mjs';
import { ComputeClient } from '../../dist/src/compute/index.js';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' } } });
const c = await ComputeClient.start({ threads: 1 });
const ac = new AbortController();
const J = Number(args.jobs);
for (let r = 0; r < Number(args.rounds); r++) {
  const ts = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < J; i++) {
    const t = performance.now();
    await c.run({ type: 'ping', echo: 'x' }, { signal: ac.signal });
    ts.push(performance.now() - t);
  }
  const cu = process.cpuUsage(c0);
  console.log(`round ${r}: p50 ${(quantile(ts, 0.5) * 1000).toFixed(1)} µs, p90 ${(quantile(ts, 0.9) * 1000).toFixed(1)} µs, CPU ${((cu.user + cu.system) / J).toFixed(1)} µs a job (sys ${(cu.system / J).toFixed(1)}), load ${loadavg()[0].toFixed(2)}`);
}
await c.close();
