#!/usr/bin/env node
// Serving before training on a real worker (session 28): what an honest remote reply pays on a training node.
// Usage (build first): node scripts/experiments/servingfirst-probe.mjs [--B 8] [--T 128] [--tokens 64] [--gap-ms 25]
//   [--replies 6] [--rest-ms 0,3000] [--idle-ms 60000,2000]
// Starts one compute worker with the nano model, a trainer that posts its next step as soon as the last answers (as
// the node's), and replies of --tokens decode steps whose next step is posted --gap-ms after the last answered (a
// remote hop's round trip; a reply decoding every ~30 ms), --rest-ms between replies. For each trainingIdleMs
// (60000: the idle time never runs out, the rule before session 28 for a reply that is decoding) it prints the
// training step's time (alone), the training steps that ended inside a reply (from its open to its last token:
// pauses, the one running when the reply came included), the reply's time and the training steps a minute.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as pause } from 'node:timers/promises';
import { ComputeClient } from '../../dist/src/compute/index.js';
import { presetConfig } from '../../dist/src/model/index.js';

const { values: a } = parseArgs({ options: { B: { type: 'string', default: '8' }, T: { type: 'string', default: '128' }, tokens: { type: 'string', default: '64' }, 'gap-ms': { type: 'string', default: '25' }, replies: { type: 'string', default: '6' }, 'rest-ms': { type: 'string', default: '0,3000' }, 'idle-ms': { type: 'string', default: '60000,2000' } } });
const config = presetConfig('nano');
const B = Number(a.B);
const T = Number(a.T);
const TOKENS = Number(a.tokens);
const GAP = Number(a['gap-ms']);
const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
const inputs = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % config.vocab_size);

for (const rest of a['rest-ms'].split(',').map(Number)) {
  for (const idle of a['idle-ms'].split(',').map(Number)) {
    const c = await ComputeClient.start({ threads: 2, trainingIdleMs: idle });
    try {
      await c.run({ type: 'initModel', config, seed: 0, trainer: { lr: 1e-4, warmupSteps: 1, decaySteps: 100_000 } });
      let steps = 0;
      let trainMs = 0;
      let stop = false;
      const loop = (async () => {
        while (!stop) {
          const t0 = performance.now();
          await c.run({ type: 'trainStep', inputs: inputs.slice(), targets: inputs.slice(), B, T });
          trainMs += performance.now() - t0;
          steps++;
        }
      })();
      while (steps < 5) await pause(50); // the trainer runs alone first: the idle time in hand is full
      const perStep = trainMs / steps; // alone: nothing held these
      const s0 = steps;
      const tStart = performance.now();
      const rows = [];
      for (let r = 0; r < Number(a.replies); r++) {
        const id = `probe-${r}`;
        const before = steps;
        const t0 = performance.now();
        await c.run({ type: 'sessionOpen', id, maxLen: TOKENS + 8, sampling });
        await pause(GAP);
        let tok = (await c.run({ type: 'sessionStep', id, ids: Int32Array.of(1, 2, 3), chunks: [3] })).tokens[0];
        for (let k = 0; k < TOKENS; k++) {
          await pause(GAP);
          tok = (await c.run({ type: 'sessionStep', id, ids: Int32Array.of(tok), chunks: [1] })).tokens[0];
        }
        rows.push({ ms: performance.now() - t0, trains: steps - before });
        await c.run({ type: 'sessionClose', id });
        if (rest > 0) await pause(rest);
      }
      const wall = performance.now() - tStart;
      stop = true;
      await loop;
      const trains = rows.reduce((x, r) => x + r.trains, 0);
      console.log(
        `rest ${rest} ms, trainingIdleMs ${idle}: train step ${perStep.toFixed(0)} ms; ${rows.length} replies of ${TOKENS} tokens every ~${GAP} ms + a step: ` +
          `${trains} training steps ended inside them, from the open to the last token, the one running at the open included ` +
          `(${trains === 0 ? 'none' : ((rows.length * (TOKENS + 1)) / trains).toFixed(1) + ' tokens a step'}), ` +
          `reply ${Math.min(...rows.map((r) => r.ms)).toFixed(0)}-${Math.max(...rows.map((r) => r.ms)).toFixed(0)} ms; ` +
          `training ${(((steps - s0) * 60_000) / wall).toFixed(0)} steps/min (alone ${(60_000 / perStep).toFixed(0)}); load ${loadavg()[0].toFixed(2)}`,
      );
    } finally {
      await c.close();
    }
  }
}
