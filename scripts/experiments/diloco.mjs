#!/usr/bin/env node
// DiLoCo between replicas, against synchronous data-parallel training at equal tokens (issue 9 §3).
//
//   node scripts/experiments/diloco.mjs [--replicas 4] [--inner-steps 300] [--rounds 2] [--byzantine 0]
//        [--attack none|sign-flip|scale|noise|alie|stale] [--aggregator trimmed-mean] [--compress int8] [--seed 0]
//        [--model tiny|nano] [--batch 8] [--seq 32] [--lr 3e-3] [--warmup 50] [--eval-batches 8] [--threads 1]
//        [--outer-lr 1] [--outer-momentum 0] [--ef-beta 1] [--no-baseline] [--curve FILE.json] [--json]
//        [--baseline-data same|own] [--max-grad-norm G] [--weight-decay W] [--beta1 B] [--eval-every S] [--diag]
//        [--outer-warmup N] [--average-rounds K] [--inner-schedule run|round] [--final-inner-steps F]
//        [--warm-steps W] [--warm-save FILE] [--warm-from FILE] [--round-steps H1,H2,…] [--round-outer-lr η1,η2,…]
//        [--inner-lr L] [--round-inner-lr L1,L2,…]
//
// All replicas run in this one process, one after the other (the machine has 2 shared cores; the math is the
// same as on separate machines). Each replica is a whole model (LlamaShard over every layer) with its own
// SoloTrainer (AdamW, warm-up + cosine over the run's H·N inner steps, clipping, NaN skip) and its own data
// stream from the genesis corpus (`trainStream` with nodeId replica-<i>: every replica sees the training shards in
// its own order). Each round: H inner steps on every replica → per layer ('embed', 'layers.<i>', 'head') Δ =
// θ_start − θ, compressed with error feedback (DiLoCoNode), signed and encoded as the wire's TrainingContribution
// and decoded/validated again as a receiver would → per layer the aggregator → the Nesterov outer step
// (--outer-lr, --outer-momentum) on every replica, whose layer hashes must then agree (checked every round).
//
// Byzantine replicas (the last K) train honestly and then send, instead of their Δ:
//   sign-flip  −4·Δ (enough to reverse a plain mean with 1 of 4)      scale  100·Δ
//   noise      Δ + N(0, (10·rms Δ)²)                                  stale  their round-1 Δ, replayed every round
//   alie       "A little is enough" (Baruch et al. 2019): per coordinate mean − z·std over all replicas' honest Δ,
//              z = max(1, Φ⁻¹((n − s)/n)) with s = ⌊n/2 + 1⌋ − K
// They follow the protocol otherwise (apply the aggregate). Val loss is measured on the common weights.
//
// Baseline: one model trained synchronously on batches of R·batch sequences for H·N steps, the same schedule. With
// --baseline-data same (default) its batch at step s is the R replicas' batches of their step s put together, so
// both sides train on exactly the same tokens; `own` draws them from a stream of its own (the earlier definition).
// --diag logs every replica's own validation loss before each outer step (what averaging gains or loses).
// Schedules (experiment-only, session 17): --outer-warmup N ramps the outer lr linearly over the first N rounds
// (η·(r+1)/N); --average-rounds K uses plain averaging (lr 1, momentum 0) for the first K rounds and then
// --outer-lr/--outer-momentum (the momentum buffer starts from the last averaged Δ); --inner-schedule round
// restarts the inner cosine every round (warm-up in round 1 only, AdamW moments kept) instead of one cosine over
// the run; --final-inner-steps F makes the last round F inner steps long (the cosine still ends with the run).
// Warm start (experiment-only, session 18): --warm-steps W first trains one model synchronously for W steps on the
// baseline's batches (R·batch sequences: the R replicas' streams put together; lr warm-up over --warmup, then the
// peak lr held, no decay), and both arms continue from that checkpoint (weights and AdamW moments; every replica
// gets its own copy): DiLoCo for H·N inner steps per replica, whose streams skip the W batches the warm phase used,
// and the baseline for H·N steps on the same continued stream. The continuation's schedule is a cosine from the peak
// lr over its H·N steps without a second warm-up (both arms). The warm checkpoint does not depend on H·N, so
// --warm-save FILE writes it and --warm-from FILE reads it back (its settings are checked against this run's).
// Per-round schedules (experiment-only, session 19): --round-steps H1,H2,… gives every round its own number of inner
// steps (the number of rounds is the list's length; the cosine still runs over their sum); --round-outer-lr η1,η2,…
// gives every round its own outer lr (momentum stays --outer-momentum; not with --outer-warmup or --average-rounds);
// --inner-lr L gives the DiLoCo replicas their own peak lr (the baseline and the warm phase keep --lr).
// Session 22 (experiment-only): --round-inner-lr L1,L2,… gives the replicas a peak lr per round: the run's one
// warm-up + cosine keeps its shape and is scaled by L_r/--lr during round r (floor 10 % of L_r, as for --lr), so a run
// can keep the baseline's lr early and raise the replicas' late (not with --inner-lr or --inner-schedule round).
// --baseline-round-lr (with --round-inner-lr; lead, session 22) gives the synchronous baseline the same per-round
// peak lr at the same step boundaries, so that a gap measured with a raised late lr is not a lever the baseline was
// denied.
// `tokens`, `ddp_bytes` and `bytes_ratio` count the continuation only; `warm_tokens` the warm phase (equal on both
// sides), `warm_ddp_bytes` what the warm phase would upload if R workers trained it data-parallel, and
// `bytes_ratio_with_warm` the ratio when both sides pay that.
// `ddp_bytes` is what data-parallel replicas would upload: R·H·N fp32 gradients of every parameter.
// `bytes_sent` is what the DiLoCo replicas uploaded: R·N encoded contributions (payload + envelope, every layer).
//
// Last stdout line: {"val_loss","baseline_val_loss","gap","bytes_sent","ddp_bytes","bytes_ratio","rounds","tokens",…}
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';

const dist = new URL('../../dist/src/', import.meta.url);
if (!existsSync(new URL('training/diloco.js', dist))) {
  process.stderr.write('diloco: dist/ is missing; run npx tsc -p tsconfig.json first\n');
  process.exit(1);
}
const imp = (p) => import(new URL(p, dist).href);
const { makeConfig, LlamaShard, NANO } = await imp('model/index.js');
const { selectBackend, IntTensor } = await imp('tensor/index.js');
const { SoloTrainer, ShardTrainable, DiLoCoNode } = await imp('training/index.js');
const { aggregate, AGGREGATORS } = await imp('training/aggregation/index.js');
const { decodeDelta, COMPRESSIONS } = await imp('training/compression/index.js');
const { encodeContribution, decodeContribution } = await imp('protocols/training-contribution.js');
const { keyFromPrivate } = await imp('identity/index.js');
const { openCorpus } = await imp('data/index.js');
const { Rng } = await imp('util/rng.js');

export const ATTACKS = ['none', 'sign-flip', 'scale', 'noise', 'alie', 'stale'];

export function defaults() {
  return {
    // the closest to the issue's targets measured here (docs/TRAINING.md, tenth session): int8 at H = 300 sends
    // 1,128× fewer bytes than data-parallel training; 600 inner steps per replica keep a run under 10 minutes at
    // load ~25 (about 30 s of CPU)
    replicas: 4,
    innerSteps: 300,
    rounds: 2,
    byzantine: 0,
    attack: 'none',
    aggregator: 'trimmed-mean',
    compress: 'int8',
    seed: 0,
    model: 'tiny',
    batch: 8,
    seq: 32,
    lr: 3e-3,
    warmup: 50,
    evalBatches: 8,
    threads: 1,
    baseline: true,
    // plain averaging: DiLoCo's Nesterov 0.7/0.9 doubled the gap at this scale (12.9 % against 5.9 % at H = 50)
    outerLr: 1,
    outerMomentum: 0,
    efBeta: 1,
    baselineData: 'same',
    maxGradNorm: undefined,
    weightDecay: undefined,
    beta1: undefined,
    outerWarmup: 0,
    averageRounds: 0,
    innerSchedule: 'run',
    finalInnerSteps: undefined,
    warmSteps: 0,
    warmSave: undefined,
    warmFrom: undefined,
    roundSteps: undefined,
    roundOuterLr: undefined,
    innerLr: undefined,
    roundInnerLr: undefined,
  };
}

/** Parses a comma-separated list of positive numbers (--round-steps, --round-outer-lr); integers when asked. */
export function parseList(flag, text, integer = false) {
  const xs = String(text).split(',').map((t) => Number(t.trim()));
  if (xs.length === 0 || xs.length > 10_000) throw new Error(`--${flag}: 1 to 10,000 values`);
  for (const x of xs) {
    if (!(Number.isFinite(x) && x > 0) || (integer && !Number.isInteger(x))) throw new Error(`--${flag}: ${text} has a value that is not a positive ${integer ? 'integer' : 'number'}`);
  }
  return xs;
}

/** Checks the per-round schedules against each other and sets o.rounds from --round-steps. */
export function applyRoundLists(o) {
  if (o.roundSteps !== undefined) {
    if (o.finalInnerSteps !== undefined || o.innerSchedule !== 'run') throw new Error('--round-steps goes without --final-inner-steps and with --inner-schedule run');
    o.rounds = o.roundSteps.length;
  }
  if (o.roundOuterLr !== undefined) {
    if (o.outerWarmup > 0 || o.averageRounds > 0) throw new Error('--round-outer-lr goes without --outer-warmup and --average-rounds');
    if (o.roundOuterLr.length !== o.rounds) throw new Error(`--round-outer-lr has ${o.roundOuterLr.length} values for ${o.rounds} rounds`);
  }
  if (o.roundInnerLr !== undefined) {
    if (o.innerLr !== undefined || o.innerSchedule !== 'run') throw new Error('--round-inner-lr goes without --inner-lr and with --inner-schedule run');
    if (o.roundInnerLr.length !== o.rounds) throw new Error(`--round-inner-lr has ${o.roundInnerLr.length} values for ${o.rounds} rounds`);
  }
  return o;
}

/** Inner steps of round r (0-based): H, except a shorter or longer last round with --final-inner-steps. */
export function roundSteps(o, r) {
  if (o.roundSteps !== undefined) return o.roundSteps[r];
  return r === o.rounds - 1 && o.finalInnerSteps !== undefined ? o.finalInnerSteps : o.innerSteps;
}

/** Inner steps per replica over the whole run. */
export function totalSteps(o) {
  let s = 0;
  for (let r = 0; r < o.rounds; r++) s += roundSteps(o, r);
  return s;
}

/** The outer step's options for round r (0-based) under --average-rounds and --outer-warmup. */
export function outerAt(o, r) {
  if (o.roundOuterLr !== undefined) return { lr: o.roundOuterLr[r], momentum: o.outerMomentum };
  if (r < o.averageRounds) return { lr: 1, momentum: 0 };
  const k = r - o.averageRounds;
  const lr = o.outerWarmup > 0 && k < o.outerWarmup ? (o.outerLr * (k + 1)) / o.outerWarmup : o.outerLr;
  return { lr, momentum: o.outerMomentum };
}

function modelConfig(name) {
  if (name === 'nano') return NANO;
  if (name === 'tiny') {
    // 2 × 64, 2 heads of 32 / 1 KV head, FFN 176, the genesis vocabulary: 0.62 M parameters (84 % embedding + head)
    return makeConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, intermediate_size: 176, vocab_size: 4096, max_position_embeddings: 64 });
  }
  throw new Error(`unknown --model ${name} (tiny, nano)`);
}

const toBatch = (b) => ({ inputs: new IntTensor(b.inputs, [b.batchSize, b.seqLen]), targets: new IntTensor(b.labels, [b.batchSize, b.seqLen]) });

/** Φ⁻¹ by bisection on the error function's complement (enough for ALIE's z). */
function normInv(p) {
  const cdf = (x) => 0.5 * (1 + erf(x / Math.SQRT2));
  let lo = -10;
  let hi = 10;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
function erf(x) {
  // Abramowitz–Stegun 7.1.26
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

/** Shared resources for several runs in one process (corpus, backend, validation batches). */
export async function context(o) {
  const { backend, line } = await selectBackend({ threads: o.threads });
  const corpus = await openCorpus(undefined);
  const val = (await corpus.validationBatches({ batchSize: o.batch, seqLen: o.seq, maxBatches: o.evalBatches })).map(toBatch);
  const held = (await corpus.trainStream({ nodeId: 'gauntlet-held-out', batchSize: o.batch, seqLen: o.seq, seed: o.seed + 7 })).next();
  return { backend, engine: line, corpus, val, held: toBatch(held) };
}

function evalLoss(shard, batches) {
  let sum = 0;
  let n = 0;
  for (const b of batches) {
    const [B, T] = b.inputs.shape;
    shard.forward(b.inputs.data, B, T);
    const r = shard.loss(b.targets.data, { grad: false });
    sum += r.loss * r.count;
    n += r.count;
  }
  return sum / n;
}

function trainerOpts(o, steps, warmed = false) {
  // after a warm start the continuation runs its cosine from the peak lr (the warm phase did the warm-up)
  const t = { lr: o.lr, warmupSteps: warmed ? 0 : o.warmup, decaySteps: steps };
  if (o.maxGradNorm !== undefined) t.maxGradNorm = o.maxGradNorm;
  if (o.weightDecay !== undefined) t.weightDecay = o.weightDecay;
  if (o.beta1 !== undefined) t.beta1 = o.beta1;
  return t;
}

/** The baseline's batch at each step: 'same' concatenates the R replicas' own batches of that step (exactly the
 * tokens DiLoCo trains on, in the same order); 'own' draws R·batch sequences from a stream of its own. */
async function baselineStream(o, ctx) {
  if (o.baselineData === 'own') return ctx.corpus.trainStream({ nodeId: 'ddp', batchSize: o.batch * o.replicas, seqLen: o.seq, seed: o.seed });
  if (o.baselineData !== 'same') throw new Error(`unknown --baseline-data ${o.baselineData} (same, own)`);
  const streams = [];
  for (let r = 0; r < o.replicas; r++) streams.push(await ctx.corpus.trainStream({ nodeId: `replica-${r}`, batchSize: o.batch, seqLen: o.seq, seed: o.seed }));
  return {
    next() {
      const parts = streams.map((s) => s.next());
      const n = o.batch * o.seq;
      const inputs = new Int32Array(n * o.replicas);
      const labels = new Int32Array(n * o.replicas);
      parts.forEach((b, i) => {
        inputs.set(b.inputs, i * n);
        labels.set(b.labels, i * n);
      });
      return { batchSize: o.batch * o.replicas, seqLen: o.seq, inputs, labels };
    },
  };
}

/** The settings a warm checkpoint depends on (checked when one is read back). */
function warmKey(o, P) {
  return {
    warm_steps: o.warmSteps,
    model: o.model,
    params: P,
    seed: o.seed,
    replicas: o.replicas,
    batch: o.batch,
    seq: o.seq,
    lr: o.lr,
    warmup: o.warmup,
    baseline_data: o.baselineData,
    max_grad_norm: o.maxGradNorm ?? null,
    weight_decay: o.weightDecay ?? null,
    beta1: o.beta1 ?? null,
    threads: o.threads,
  };
}

const WARM_MAGIC = 'diloco-warm-1';
const WARM_MAX_HEADER = 1 << 16;

/** Writes a warm checkpoint: one JSON header line, then the weights and the AdamW moments as float32 (LE). */
function saveWarm(file, o, w) {
  const arrays = [w.params, ...w.state.optimizer.m, ...w.state.optimizer.v];
  const header = { format: WARM_MAGIC, ...warmKey(o, w.params.length), optimizer_step: w.state.optimizer.step, trainer_step: w.state.step, sizes: w.state.optimizer.m.map((a) => a.length), val_loss: w.loss };
  const body = Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  header.sha256 = createHash('sha256').update(body).digest('hex');
  writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]));
}

/** Reads a warm checkpoint back; refuses one made with other settings, of another size or with a wrong hash. */
function loadWarm(file, o, P) {
  const buf = readFileSync(file);
  const nl = buf.indexOf(10);
  if (nl < 0 || nl > WARM_MAX_HEADER) throw new Error(`--warm-from ${file}: no header line`);
  const h = JSON.parse(buf.subarray(0, nl).toString('utf8'));
  if (h.format !== WARM_MAGIC) throw new Error(`--warm-from ${file}: format ${h.format}, expected ${WARM_MAGIC}`);
  const want = warmKey(o, P);
  for (const [k, v] of Object.entries(want)) if (h[k] !== v) throw new Error(`--warm-from ${file}: ${k} is ${h[k]}, this run has ${v}`);
  const body = buf.subarray(nl + 1);
  const sizes = h.sizes;
  if (!Array.isArray(sizes) || sizes.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`--warm-from ${file}: bad sizes`);
  const total = P + 2 * sizes.reduce((a, b) => a + b, 0);
  if (body.byteLength !== total * 4) throw new Error(`--warm-from ${file}: ${body.byteLength} bytes, expected ${total * 4}`);
  if (createHash('sha256').update(body).digest('hex') !== h.sha256) throw new Error(`--warm-from ${file}: sha256 mismatch`);
  const f = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  let at = 0;
  const take = (n) => f.slice(at, (at += n));
  const params = take(P);
  const m = sizes.map(take);
  const v = sizes.map(take);
  return { params, state: { step: h.trainer_step, options: {}, optimizer: { step: h.optimizer_step, m, v } }, loss: h.val_loss };
}

/** The warm phase (--warm-steps W): one model, W synchronous steps on the baseline's batches, lr warm-up then the
 * peak held. Returns the weights, the trainer state and the validation loss, or null without a warm start. */
export async function warmStart(o, ctx, log = () => {}) {
  if (!(Number.isInteger(o.warmSteps) && o.warmSteps >= 0)) throw new Error('--warm-steps must be an integer ≥ 0');
  if (o.warmSteps === 0) {
    if (o.warmFrom !== undefined || o.warmSave !== undefined) throw new Error('--warm-from/--warm-save need --warm-steps W > 0');
    return null;
  }
  if (o.innerSchedule !== 'run') throw new Error('--warm-steps goes with --inner-schedule run');
  const cfg = modelConfig(o.model);
  const shard = new LlamaShard({ config: cfg, backend: ctx.backend, seed: o.seed });
  if (o.warmFrom !== undefined) {
    const w = loadWarm(o.warmFrom, o, shard.params.length);
    log(`warm start read from ${o.warmFrom}: ${o.warmSteps} steps, val ${w.loss.toFixed(4)}`);
    return w;
  }
  const trainer = new SoloTrainer(ctx.backend, new ShardTrainable(shard), trainerOpts(o, 0));
  const stream = await baselineStream(o, ctx);
  for (let s = 1; s <= o.warmSteps; s++) trainer.trainStep(toBatch(stream.next()));
  const w = { params: shard.params.slice(), state: trainer.state(), loss: evalLoss(shard, ctx.val) };
  log(`warm start: ${o.warmSteps} synchronous steps, val ${w.loss.toFixed(4)}`);
  if (o.warmSave !== undefined) saveWarm(o.warmSave, o, w);
  return w;
}

/** Continues a trainer from the warm checkpoint: its weights, its moments, a fresh schedule step count. */
function continueFrom(warm, shard, trainer) {
  shard.params.set(warm.params);
  trainer.loadState({ ...warm.state, step: 0 });
}

/** Synchronous data parallel at equal tokens: one model, batches of R·batch, H·N steps. */
export async function runBaseline(o, ctx, log = () => {}, warm = null) {
  const cfg = modelConfig(o.model);
  const steps = totalSteps(o);
  const shard = new LlamaShard({ config: cfg, backend: ctx.backend, seed: o.seed });
  const trainer = new SoloTrainer(ctx.backend, new ShardTrainable(shard), trainerOpts(o, steps, warm !== null));
  const stream = await baselineStream(o, ctx);
  if (warm !== null) {
    continueFrom(warm, shard, trainer);
    for (let s = 0; s < o.warmSteps; s++) stream.next(); // the warm phase's batches
  }
  const every = o.evalEvery ?? o.innerSteps;
  const curve = [{ step: 0, loss: evalLoss(shard, ctx.val) }];
  // --baseline-round-lr: round r's peak lr from --round-inner-lr from the step where the replicas' round r begins
  const base = { lr: trainer.options.lr, minLr: trainer.options.minLr };
  const roundAt = (s) => {
    let end = 0;
    for (let r = 0; r < o.rounds; r++) if (s <= (end += roundSteps(o, r))) return r;
    return o.rounds - 1;
  };
  for (let s = 1; s <= steps; s++) {
    if (o.baselineRoundLr && o.roundInnerLr !== undefined) {
      const L = o.roundInnerLr[roundAt(s)];
      trainer.options.lr = L;
      trainer.options.minLr = (base.minLr / base.lr) * L;
    }
    trainer.trainStep(toBatch(stream.next()));
    if (s % every === 0 || s === steps) {
      curve.push({ step: s, loss: evalLoss(shard, ctx.val) });
      log(`ddp step ${s}/${steps} val ${curve.at(-1).loss.toFixed(4)}`);
    }
  }
  return { val_loss: curve.at(-1).loss, curve, params: shard.params.length };
}

export async function runDiLoCo(o, ctx, log = () => {}, warm = null) {
  if (!AGGREGATORS.includes(o.aggregator)) throw new Error(`unknown --aggregator ${o.aggregator} (${AGGREGATORS.join(', ')})`);
  if (!COMPRESSIONS.includes(o.compress)) throw new Error(`unknown --compress ${o.compress} (${COMPRESSIONS.join(', ')})`);
  if (!ATTACKS.includes(o.attack)) throw new Error(`unknown --attack ${o.attack} (${ATTACKS.join(', ')})`);
  if (!(o.byzantine >= 0 && o.byzantine < o.replicas)) throw new Error('--byzantine must be in 0..replicas-1');
  if (!['run', 'round'].includes(o.innerSchedule)) throw new Error(`unknown --inner-schedule ${o.innerSchedule} (run, round)`);
  if (o.innerSchedule === 'round' && o.finalInnerSteps !== undefined) throw new Error('--final-inner-steps goes with --inner-schedule run');
  const cfg = modelConfig(o.model);
  const steps = totalSteps(o);
  const R = o.replicas;
  const K = o.attack === 'none' ? 0 : o.byzantine;
  const networkId = 'ns1-experiment';
  const replicas = [];
  for (let r = 0; r < R; r++) {
    const shard = new LlamaShard({ config: cfg, backend: ctx.backend, seed: o.seed });
    const key = keyFromPrivate(createHash('sha256').update(`replica-${o.seed}-${r}`).digest());
    const inner = trainerOpts(o, o.innerSchedule === 'round' ? o.innerSteps : steps, warm !== null);
    if (o.innerLr !== undefined) inner.lr = o.innerLr; // the replicas' own peak lr (the baseline keeps --lr)
    const trainer = new SoloTrainer(ctx.backend, new ShardTrainable(shard), inner);
    const stream = await ctx.corpus.trainStream({ nodeId: `replica-${r}`, batchSize: o.batch, seqLen: o.seq, seed: o.seed });
    if (warm !== null) {
      continueFrom(warm, shard, trainer);
      for (let s = 0; s < o.warmSteps; s++) stream.next(); // the batches the warm phase trained on
    }
    replicas.push({
      id: `replica-${r}`,
      key,
      shard,
      trainer,
      // the outer options object is changed in place per round (outerAt); OuterOptimizer reads it at every step
      node: new DiLoCoNode(shard.layout, shard.params, { outer: { ...outerAt(o, 0) }, compress: o.compress, errorFeedbackBeta: o.efBeta }),
      stream,
      byzantine: r >= R - K,
      firstDelta: null,
    });
  }
  const scratch = new LlamaShard({ config: cfg, backend: ctx.backend, seed: o.seed }); // Gauntlet's evaluation copy
  const rng = new Rng(o.seed + 99);
  const curve = o.curveEvery === 0 ? [] : [{ step: 0, loss: evalLoss(replicas[0].shard, ctx.val) }];
  let bytesSent = 0;
  let payloadBytes = 0;
  const records = [];
  const t0 = performance.now();
  let done = 0; // inner steps per replica so far
  for (let round = 0; round < o.rounds; round++) {
    for (const r of replicas) {
      Object.assign(r.node.outer.options, outerAt(o, round));
      if (o.innerSchedule === 'round' && round > 0) {
        // a fresh cosine over this round (no warm-up), the step count restarted, the AdamW moments kept
        r.trainer.options.warmupSteps = 0;
        r.trainer.options.decaySteps = o.innerSteps;
        r.trainer.loadState({ ...r.trainer.state(), step: 0 });
      }
      if (o.roundInnerLr !== undefined) {
        // this round's peak: the same schedule shape, scaled (lrAt is linear in lr and minLr together)
        const L = o.roundInnerLr[round];
        r.trainer.options.minLr = (r.trainer.options.minLr / r.trainer.options.lr) * L;
        r.trainer.options.lr = L;
      }
    }
    const H = roundSteps(o, round);
    const startHashes = replicas.map((r) => JSON.stringify(r.node.startRound()));
    if (new Set(startHashes).size !== 1) throw new Error(`round ${round}: replicas start from different weights`);
    let skipped = 0;
    for (const r of replicas) {
      for (let h = 0; h < H; h++) if (!r.trainer.trainStep(toBatch(r.stream.next())).applied) skipped++;
    }
    if (o.diag) log(`round ${round + 1} local val (before the outer step): ${replicas.map((r) => evalLoss(r.shard, ctx.val).toFixed(4)).join(' ')}`);
    // contributions: honest Δ (compressed with error feedback), or the attack's
    const contribs = replicas.map((r) => r.node.contributions());
    const layers = replicas[0].node.layers;
    const byLayer = new Map();
    for (const [li, l] of layers.entries()) {
      const honest = contribs.map((c) => c[li].delta);
      let alie = null;
      if (o.attack === 'alie' && K > 0) {
        const n = R;
        const s = Math.floor(n / 2 + 1) - K;
        const z = Math.max(1, normInv((n - s) / n));
        alie = new Float32Array(l.size);
        for (let i = 0; i < l.size; i++) {
          let m = 0;
          for (const d of honest) m += d[i];
          m /= n;
          let v = 0;
          for (const d of honest) v += (d[i] - m) ** 2;
          alie[i] = m - z * Math.sqrt(v / n);
        }
      }
      const received = [];
      for (const [ri, r] of replicas.entries()) {
        const c = contribs[ri][li];
        let payload = c.payload;
        if (r.byzantine) {
          const d = c.delta;
          let bad;
          if (o.attack === 'sign-flip') bad = d.map((x) => -4 * x);
          else if (o.attack === 'scale') bad = d.map((x) => 100 * x);
          else if (o.attack === 'noise') {
            let ss = 0;
            for (const x of d) ss += x * x;
            const sd = 10 * Math.sqrt(ss / d.length);
            bad = d.map((x) => x + sd * rng.normal());
          } else if (o.attack === 'alie') bad = alie;
          else if (o.attack === 'stale') {
            r.firstDelta ??= new Map();
            if (!r.firstDelta.has(l.id)) r.firstDelta.set(l.id, d.slice());
            bad = r.firstDelta.get(l.id);
          }
          const { encodeDelta } = await imp('training/compression/index.js');
          payload = encodeDelta(o.compress, Float32Array.from(bad));
        }
        // the wire: signed, bound to the round, layer and sender; validated as a receiver does
        const bytes = encodeContribution(r.key, { networkId, round, layer: l.id, compression: o.compress, n: l.size, payload });
        bytesSent += bytes.byteLength;
        payloadBytes += payload.byteLength;
        const got = decodeContribution(bytes, {
          networkId,
          round,
          layer: l.id,
          n: l.size,
          compression: o.compress,
          sender: r.key.publicKey,
          validatePayload: (k, n, p) => void decodeDelta(k, n, p),
        });
        received.push({ id: r.id, delta: decodeDelta(got.compression, got.n, got.payload) });
      }
      let opts = {};
      if (o.aggregator === 'gauntlet') {
        // held-out loss with only this layer moved to θ_start − Δ_i (the contributor's own end point)
        scratch.params.set(replicas[0].node.startOf({ offset: 0, size: scratch.params.length }));
        const baseLoss = evalLoss(scratch, [ctx.held]);
        const view = scratch.params.subarray(l.offset, l.offset + l.size);
        const start = replicas[0].node.startOf(l);
        opts = {
          baseLoss,
          lossAfter: (d) => {
            for (let i = 0; i < d.length; i++) view[i] = start[i] - d[i];
            const loss = evalLoss(scratch, [ctx.held]);
            view.set(start);
            return loss;
          },
        };
      }
      const res = aggregate(o.aggregator, received, l.size, opts);
      byLayer.set(l.id, res.delta);
      records.push({ round, layer: l.id, used: res.record.used, rejected: res.record.contributions.filter((c) => !c.used).map((c) => `${c.id}:${c.reason}`) });
    }
    const endHashes = replicas.map((r) => JSON.stringify(r.node.finishRound(byLayer)));
    done += H;
    if (new Set(endHashes).size !== 1) throw new Error(`round ${round}: replicas disagree on the layer hashes after the outer step`);
    const last = round === o.rounds - 1;
    if (!last && o.curveEvery === 0) continue; // sweeps: only the final loss
    const loss = evalLoss(replicas[0].shard, ctx.val);
    curve.push({ step: done, loss });
    log(`round ${round + 1}/${o.rounds} val ${loss.toFixed(4)}${skipped > 0 ? ` (${skipped} inner steps skipped)` : ''} ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const P = replicas[0].shard.params.length;
  const tokens = R * steps * o.batch * o.seq;
  const ddpBytes = R * steps * 4 * P;
  return {
    val_loss: curve.at(-1).loss,
    curve,
    bytes_sent: bytesSent,
    payload_bytes: payloadBytes,
    ddp_bytes: ddpBytes,
    bytes_ratio: ddpBytes / bytesSent,
    rounds: o.rounds,
    tokens,
    params: P,
    records,
  };
}

export async function runOne(o, ctx, log) {
  const warm = await warmStart(o, ctx, log);
  const d = await runDiLoCo(o, ctx, log, warm);
  const b = o.baseline ? await runBaseline(o, ctx, log, warm) : null;
  const warmFields = {};
  if (warm !== null) {
    // the warm phase, equal on both sides: its tokens, and its bytes if R workers trained it data-parallel
    const warmBytes = o.replicas * o.warmSteps * 4 * d.params;
    Object.assign(warmFields, {
      warm_steps: o.warmSteps,
      warm_val_loss: warm.loss,
      warm_tokens: o.replicas * o.warmSteps * o.batch * o.seq,
      warm_ddp_bytes: warmBytes,
      bytes_ratio_with_warm: (d.ddp_bytes + warmBytes) / (d.bytes_sent + warmBytes),
    });
  }
  return {
    val_loss: d.val_loss,
    baseline_val_loss: b?.val_loss ?? null,
    gap: b === null ? null : (d.val_loss - b.val_loss) / b.val_loss,
    bytes_sent: d.bytes_sent,
    ddp_bytes: d.ddp_bytes,
    bytes_ratio: d.bytes_ratio,
    rounds: d.rounds,
    tokens: d.tokens,
    replicas: o.replicas,
    inner_steps: o.innerSteps,
    final_inner_steps: o.finalInnerSteps ?? null,
    outer_warmup: o.outerWarmup,
    average_rounds: o.averageRounds,
    inner_schedule: o.innerSchedule,
    byzantine: o.attack === 'none' ? 0 : o.byzantine,
    attack: o.attack,
    aggregator: o.aggregator,
    compress: o.compress,
    outer_lr: o.outerLr,
    outer_momentum: o.outerMomentum,
    ef_beta: o.efBeta,
    baseline_data: o.baselineData,
    inner_lr: o.lr,
    model: o.model,
    params: d.params,
    seed: o.seed,
    curve: d.curve,
    baseline_curve: b?.curve ?? null,
    rejected_last_round: d.records.filter((r) => r.round === o.rounds - 1).flatMap((r) => r.rejected),
    ...warmFields,
    ...(o.roundSteps !== undefined ? { round_steps: o.roundSteps } : {}),
    ...(o.roundOuterLr !== undefined ? { round_outer_lr: o.roundOuterLr } : {}),
    ...(o.innerLr !== undefined ? { replica_lr: o.innerLr } : {}),
    ...(o.roundInnerLr !== undefined ? { round_inner_lr: o.roundInnerLr } : {}),
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      replicas: { type: 'string' },
      'inner-steps': { type: 'string' },
      rounds: { type: 'string' },
      byzantine: { type: 'string' },
      attack: { type: 'string' },
      aggregator: { type: 'string' },
      compress: { type: 'string' },
      seed: { type: 'string' },
      model: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      lr: { type: 'string' },
      warmup: { type: 'string' },
      'eval-batches': { type: 'string' },
      threads: { type: 'string' },
      'outer-lr': { type: 'string' },
      'outer-momentum': { type: 'string' },
      'ef-beta': { type: 'string' },
      'no-baseline': { type: 'boolean' },
      'baseline-round-lr': { type: 'boolean' },
      'baseline-data': { type: 'string' },
      'max-grad-norm': { type: 'string' },
      'weight-decay': { type: 'string' },
      beta1: { type: 'string' },
      'eval-every': { type: 'string' },
      diag: { type: 'boolean' },
      'outer-warmup': { type: 'string' },
      'average-rounds': { type: 'string' },
      'inner-schedule': { type: 'string' },
      'final-inner-steps': { type: 'string' },
      'warm-steps': { type: 'string' },
      'warm-save': { type: 'string' },
      'warm-from': { type: 'string' },
      'round-steps': { type: 'string' },
      'round-outer-lr': { type: 'string' },
      'inner-lr': { type: 'string' },
      'round-inner-lr': { type: 'string' },
      curve: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const o = defaults();
  const num = (k, f) => {
    if (values[k] === undefined) return;
    const n = Number(values[k]);
    if (!Number.isFinite(n)) throw new Error(`--${k} must be a number`);
    o[f] = n;
  };
  num('replicas', 'replicas');
  num('inner-steps', 'innerSteps');
  num('rounds', 'rounds');
  num('byzantine', 'byzantine');
  num('seed', 'seed');
  num('batch', 'batch');
  num('seq', 'seq');
  num('lr', 'lr');
  num('warmup', 'warmup');
  num('eval-batches', 'evalBatches');
  num('threads', 'threads');
  num('outer-lr', 'outerLr');
  num('outer-momentum', 'outerMomentum');
  num('ef-beta', 'efBeta');
  num('max-grad-norm', 'maxGradNorm');
  num('weight-decay', 'weightDecay');
  num('beta1', 'beta1');
  num('eval-every', 'evalEvery');
  num('outer-warmup', 'outerWarmup');
  num('average-rounds', 'averageRounds');
  num('final-inner-steps', 'finalInnerSteps');
  num('warm-steps', 'warmSteps');
  num('inner-lr', 'innerLr');
  if (o.innerLr !== undefined && !(o.innerLr > 0)) throw new Error('--inner-lr must be > 0');
  if (values['warm-save'] !== undefined) o.warmSave = values['warm-save'];
  if (values['warm-from'] !== undefined) o.warmFrom = values['warm-from'];
  if (values['round-steps'] !== undefined) o.roundSteps = parseList('round-steps', values['round-steps'], true);
  if (values['round-outer-lr'] !== undefined) o.roundOuterLr = parseList('round-outer-lr', values['round-outer-lr']);
  if (values['round-inner-lr'] !== undefined) o.roundInnerLr = parseList('round-inner-lr', values['round-inner-lr']);
  if (values['inner-schedule'] !== undefined) o.innerSchedule = values['inner-schedule'];
  if (values['baseline-data'] !== undefined) o.baselineData = values['baseline-data'];
  if (values.diag) o.diag = true;
  for (const k of ['attack', 'aggregator', 'compress', 'model']) if (values[k] !== undefined) o[k] = values[k];
  if (values['no-baseline']) o.baseline = false;
  if (values['baseline-round-lr']) {
    if (values['round-inner-lr'] === undefined) throw new Error('--baseline-round-lr goes with --round-inner-lr');
    o.baselineRoundLr = true;
  }
  if (o.attack !== 'none' && o.byzantine === 0) o.byzantine = 1;
  applyRoundLists(o);
  const log = (s) => process.stderr.write(`diloco: ${s}\n`);
  const ctx = await context(o);
  log(ctx.engine);
  const r = await runOne(o, ctx, log);
  if (values.curve !== undefined) writeFileSync(values.curve, JSON.stringify(r, null, 1) + '\n');
  const { curve, baseline_curve, ...rest } = r;
  void curve;
  void baseline_curve;
  if (values.json) process.stdout.write(JSON.stringify(rest) + '\n');
  else process.stdout.write(`${JSON.stringify(rest, null, 1)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    process.stderr.write(`diloco: ${e.stack ?? e}\n`);
    process.exit(1);
  });
}
