#!/usr/bin/env node
// The entry's driver alone (router/driver.ts runGeneration): 4 in-memory hops of the 12x768 shape (3 layers each,
// C = 768) that answer at once (a fresh [1, 768] output per step, one sampled token from the last), so that what is
// timed is the driver's own work per hop step: deadline timer, abort wiring, the race, the commitments.
// Session 22 (helper chainq). Prints µs per hop step (wall and process CPU) per block, blocks alternating nothing
// (one build per run: run it on two builds back to back to compare).
//   node scripts/experiments/driver-step.mjs [dist] [--tokens 2000] [--blocks 5]
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const { values: a, positionals } = parseArgs({ allowPositionals: true, options: { tokens: { type: 'string', default: '2000' }, blocks: { type: 'string', default: '5' }, hops: { type: 'string', default: '4' } } });
const dist = resolve(positionals[0] ?? 'dist');
const { BanList, DRIVER_DEFAULTS, runGeneration } = await import(pathToFileURL(`${dist}/src/router/index.js`).href);
const C = 768;
const H = Number(a.hops);
const L = 12;
const holders = Array.from({ length: H }, (_, i) => ({ peerId: `p${i}`, span: { start: (i * L) / H, end: ((i + 1) * L) / H }, alive: true, rttMs: 0 }));
const model = { numLayers: L, hiddenSize: C, contextLength: 1 << 20, eosId: -1, encode: () => [1, 2, 3, 4], decode: () => '' };
const hop = (last) => ({
  step: async (input) => (last ? { tokens: Int32Array.from(input.chunks.map(() => 7)) } : { hidden: new Float32Array(input.chunks.reduce((x, y) => x + y, 0) * C).fill(0.25) }),
  close: () => {},
});
const tokens = Number(a.tokens);
for (let b = 0; b < Number(a.blocks); b++) {
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await runGeneration(
    { prompt: 'x', maxTokens: tokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    { model, holders: () => holders, opener: { open: (h) => hop(h.span.end === L) }, bans: new BanList(), now: () => performance.now(), random: () => 0, newSessionId: () => `s${++n}`, options: { ...DRIVER_DEFAULTS } },
    {},
    new AbortController().signal,
  );
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  console.log(`block ${b}: ${((ms * 1000) / (tokens * H)).toFixed(2)} µs wall, ${((c.user + c.system) / (tokens * H)).toFixed(2)} µs CPU per hop step`);
}
