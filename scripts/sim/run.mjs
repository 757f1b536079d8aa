#!/usr/bin/env node
// Swarm simulation (issue 12 §1): runs the project's pool placement, route choice, liveness and DHT record rules
// on a virtual clock. Usage:
//   node scripts/sim/run.mjs --nodes 1000 --minutes 60 --scenario churn|mass-failure|partition|sybil|steady --seed S [--explore SHARE]
//   [--sybil-serve] [--claimed-weight] [--sybil-blocks B] [--sybil-signed K] [--no-block-quota] [--no-stakes] [--json] [--series FILE]
// Build first (npx tsc -p tsconfig.json); it runs from dist/. The last stdout line is the result JSON.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    minutes: { type: 'string', default: '60' },
    scenario: { type: 'string', default: 'churn' },
    seed: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    series: { type: 'string' },
    // route choice's exploration share (src/router/route.ts ROUTE_DEFAULTS.explore when not given; 0 turns it off)
    explore: { type: 'string' },
    // sybil scenario: the flood's keys serve the spans they claim (src/sim/sim.ts SimOptions.sybilServe)
    'sybil-serve': { type: 'boolean', default: false },
    // route choice without the measured step time: the capacity weight is the claimed tokens/s (the rule before)
    'claimed-weight': { type: 'boolean', default: false },
    // the flood's address blocks and its keys signed and put in the DHT (SIM.sybilBlocks 16, SIM.sybilSignedKeys 200)
    'sybil-blocks': { type: 'string' },
    'sybil-signed': { type: 'string' },
    // storing nodes without the per-block quota on holder records (the figure without it)
    'no-block-quota': { type: 'boolean', default: false },
    // route choice without the holders' bonds (src/sim/sim.ts SimOptions.stakes; the rule before)
    'no-stakes': { type: 'boolean', default: false },
  },
});
const num = (name, raw, lo, hi) => {
  const x = Number(raw);
  if (!Number.isFinite(x) || x < lo || x > hi) {
    process.stderr.write(`--${name}: must be a number in [${lo}, ${hi}]\n`);
    process.exit(2);
  }
  return x;
};
const opts = {
  nodes: num('nodes', values.nodes, 2, 5000),
  minutes: num('minutes', values.minutes, 0.1, 1440),
  scenario: values.scenario,
  seed: num('seed', values.seed, 0, 2 ** 32 - 1),
  series: values.series !== undefined,
  ...(values.explore === undefined ? {} : { explore: num('explore', values.explore, 0, 1) }),
  ...(values['sybil-serve'] ? { sybilServe: true } : {}),
  ...(values['claimed-weight'] ? { measuredWeight: false } : {}),
  ...(values['sybil-blocks'] === undefined ? {} : { sybilBlocks: Math.floor(num('sybil-blocks', values['sybil-blocks'], 1, 65536)) }),
  ...(values['no-block-quota'] ? { dhtBlockQuota: false } : {}),
  ...(values['no-stakes'] ? { stakes: false } : {}),
  ...(values['sybil-signed'] === undefined ? {} : { sybilSignedKeys: Math.floor(num('sybil-signed', values['sybil-signed'], 0, 100000)) }),
};
if (!['steady', 'churn', 'mass-failure', 'partition', 'sybil'].includes(opts.scenario)) {
  process.stderr.write('--scenario: one of churn, mass-failure, partition, sybil, steady\n');
  process.exit(2);
}
const { runSim } = await import('../../dist/src/sim/sim.js');
const { result, series } = runSim(opts, values.json ? undefined : (m) => process.stderr.write(`sim minute ${m}\r`));
if (values.series !== undefined) writeFileSync(values.series, JSON.stringify({ result, series }));
if (!values.json) process.stderr.write('\n');
process.stdout.write(`${JSON.stringify(result)}\n`);
