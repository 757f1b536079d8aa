#!/usr/bin/env node
// The synchronous data-parallel baseline of a diloco.mjs run on its own (session 22), so that it can run as a
// second process beside `diloco.mjs … --no-baseline` (the two halves of one run, on two cores):
//
//   node scripts/experiments/diloco-baseline.mjs [the same flags as diloco.mjs] [--json]
//
// It takes diloco.mjs's flags (only those that shape the baseline matter: --replicas, --batch, --seq, --lr,
// --warmup, --inner-steps/--rounds/--round-steps/--final-inner-steps (its step count), --seed, --baseline-data,
// --max-grad-norm, --weight-decay, --beta1, --eval-every, --model, --eval-batches, --threads) and prints
// {"baseline_val_loss", "steps", "tokens", "curve"} as its last line; the value is the one diloco.mjs computes
// for the same flags (one deterministic computation).
import { parseArgs } from 'node:util';
import { applyRoundLists, context, defaults, parseList, runBaseline, totalSteps } from './diloco.mjs';

// every diloco.mjs flag is accepted (so one command line serves both halves); the ones listed in `map` are read
const STRINGS = ['replicas', 'inner-steps', 'rounds', 'byzantine', 'attack', 'aggregator', 'compress', 'seed', 'model', 'batch', 'seq', 'lr', 'warmup', 'eval-batches', 'threads', 'outer-lr', 'outer-momentum', 'ef-beta', 'baseline-data', 'max-grad-norm', 'weight-decay', 'beta1', 'eval-every', 'outer-warmup', 'average-rounds', 'inner-schedule', 'final-inner-steps', 'warm-steps', 'warm-save', 'warm-from', 'round-steps', 'round-outer-lr', 'inner-lr', 'round-inner-lr', 'curve'];
const options = Object.fromEntries(STRINGS.map((k) => [k, { type: 'string' }]));
for (const k of ['no-baseline', 'diag', 'json', 'baseline-round-lr']) options[k] = { type: 'boolean' };
const { values } = parseArgs({ options });
if (values['warm-steps'] !== undefined && Number(values['warm-steps']) > 0) throw new Error('diloco-baseline: --warm-steps is not supported here (run diloco.mjs)');
const o = defaults();
const map = { replicas: 'replicas', 'inner-steps': 'innerSteps', rounds: 'rounds', seed: 'seed', batch: 'batch', seq: 'seq', lr: 'lr', warmup: 'warmup', 'eval-batches': 'evalBatches', threads: 'threads', 'max-grad-norm': 'maxGradNorm', 'weight-decay': 'weightDecay', beta1: 'beta1', 'eval-every': 'evalEvery', 'final-inner-steps': 'finalInnerSteps' };
for (const [k, f] of Object.entries(map)) {
  if (values[k] === undefined) continue;
  const n = Number(values[k]);
  if (!Number.isFinite(n)) throw new Error(`--${k} must be a number`);
  o[f] = n;
}
if (values['round-steps'] !== undefined) o.roundSteps = parseList('round-steps', values['round-steps'], true);
if (values['baseline-data'] !== undefined) o.baselineData = values['baseline-data'];
if (values.model !== undefined) o.model = values.model;
if (values['baseline-round-lr']) {
  // the replicas' per-round peak lr applied to the baseline too (diloco.mjs --baseline-round-lr)
  if (values['round-inner-lr'] === undefined) throw new Error('--baseline-round-lr goes with --round-inner-lr');
  o.roundInnerLr = parseList('round-inner-lr', values['round-inner-lr']);
  o.baselineRoundLr = true;
}
applyRoundLists(o);
const log = (s) => process.stderr.write(`diloco-baseline: ${s}\n`);
const ctx = await context(o);
log(ctx.engine);
const b = await runBaseline(o, ctx, log);
const steps = totalSteps(o);
process.stdout.write(JSON.stringify({ baseline_val_loss: b.val_loss, ...(o.baselineRoundLr ? { baseline_round_lr: o.roundInnerLr } : {}), steps, tokens: o.replicas * steps * o.batch * o.seq, seed: o.seed, batch: o.batch, curve: b.curve.map((p) => [p.step, p.loss]) }) + '\n');
