#!/usr/bin/env node
// Where a hop step's time goes on the main thread (issue 8 §5 chain_ratio_4; docs/LIMITS.md "Session 25: the entry's
// part of a hop step"). Usage (build first):
//   node scripts/experiments/entrysplit.mjs [--hops 1,4] [--tokens 64] [--blocks 4] [--threads 2]
// The bench's chain (serving-bench/bench.ts startChain/decode: the 12x768 preset, each hop its own libp2p node and
// compute worker, an entry holding no layers, all in this process), chains of --hops up together and decoded in
// alternating blocks. Every hop step is stamped on the main thread (performance.now()) by wrappers put on the
// prototypes (no source change):
//   A  the driver calls RemoteHopSession.step          (router/driver.ts call → session.step)
//   B  the request enters the stream's queue           (RequestQueue.push: the request built, tensorToPb done)
//   C  the hop server's step starts                    (InferenceHopServer.step: rpc/lane/AEAD/protobuf in between)
//   D  the hop hands the step to its compute worker    (HopCompute.step: the input parsed, its commitment queued)
//   E  the worker's answer resolves on the main thread (D→E: post, the worker's wake-up, the job, the answer)
//   F  the hop's response is built                     (InferenceHopServer.step resolves: tensorToPb, commitment queued)
//   G  RemoteHopSession.step resolves                  (F→G: rpc/lane/AEAD/protobuf back, tensorFromPb, the copy)
//   A' the driver calls the next hop                   (G→A': the driver between hops: checkOutput, commitments,
//                                                       deadline timer, promise layers; after the last hop, the token's
//                                                       bookkeeping and the next token's first call)
// Reports per hop position the median of each interval (µs) and per token the sums, for each chain length, and the
// time the driver spent in its commitments (RunningCommitment.hidden / addSteps / tokens: 0 unless
// NEUROSHARD_ENTRY_COMMITS=inline, the path before session 25; by default they go to the commitment worker). The
// wrappers cost a few µs a stamp; compare chain lengths and modes within one run or back to back, not against the
// bench's figures. Also: B→C and F→G split at the lane's queue, sealed write and read, and the RPC layer's sendReply /
// decodeResponse.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { quantile } from './thread-cpu.mjs';
import { presetConfig } from '../../dist/src/model/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { startChain, decode, evenSpans } from '../../dist/src/node/serving-bench/bench.js';
import { RemoteHopSession, RequestQueue, InferenceHopServer } from '../../dist/src/protocols/inference.js';
import { RunningCommitment } from '../../dist/src/ledger/commitment.js';
import { Lane } from '../../dist/src/p2p/lane/lane.js';
import { RpcNode } from '../../dist/src/protocols/rpc/service.js';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '1,4' }, tokens: { type: 'string', default: '64' }, blocks: { type: 'string', default: '4' }, threads: { type: 'string', default: '2' } } });

// ── stamps ──
let rec = null; // the current step's record while one is in flight
let steps = []; // every finished step record of the running block
let commitUs = 0;
const now = () => performance.now();

const origStep = RemoteHopSession.prototype.step;
RemoteHopSession.prototype.step = function (input, signal) {
  const r = { hop: this.span.start, A: now(), B: NaN, Bw: NaN, Br: NaN, C: NaN, D: NaN, E: NaN, F: NaN, Fs: NaN, Fq: NaN, Bq: NaN, Fw: NaN, Fr: NaN, Fd: NaN, G: NaN };
  rec = r;
  const p = origStep.call(this, input, signal);
  p.then(() => {
    r.G = now();
    steps.push(r);
  }, () => {});
  return p;
};
const origPush = RequestQueue.prototype.push;
RequestQueue.prototype.push = function (req) {
  if (rec !== null) rec.B = now();
  return origPush.call(this, req);
};
// the lane's sealed writes and reads: the first after B (the request) and after F (the answer)
const origWrite = Lane.prototype.writeFrame;
Lane.prototype.writeFrame = function (group, n) {
  const t = now();
  if (rec !== null) {
    if (!Number.isNaN(rec.F)) {
      if (Number.isNaN(rec.Fw)) rec.Fw = t;
    } else if (!Number.isNaN(rec.B) && Number.isNaN(rec.Bw)) rec.Bw = t;
  }
  return origWrite.call(this, group, n);
};
const origQueue = Lane.prototype.queue;
Lane.prototype.queue = function (...a) {
  if (rec !== null) {
    if (!Number.isNaN(rec.Fs)) {
      if (Number.isNaN(rec.Fq)) rec.Fq = now();
    } else if (!Number.isNaN(rec.B) && Number.isNaN(rec.Bq)) rec.Bq = now();
  }
  return origQueue.apply(this, a);
};
const origData = Lane.prototype.onData;
Lane.prototype.onData = function (chunk, owned) {
  const t = now();
  if (rec !== null) {
    if (!Number.isNaN(rec.Fw)) {
      if (Number.isNaN(rec.Fr)) rec.Fr = t;
    } else if (!Number.isNaN(rec.Bw) && Number.isNaN(rec.Br)) rec.Br = t;
  }
  return origData.call(this, chunk, owned);
};
const origReply = RpcNode.prototype.sendReply;
RpcNode.prototype.sendReply = function (...a) {
  if (rec !== null && !Number.isNaN(rec.F) && Number.isNaN(rec.Fs)) rec.Fs = now();
  return origReply.apply(this, a);
};
const origDecodeRes = RpcNode.prototype.decodeResponse;
RpcNode.prototype.decodeResponse = function (...a) {
  if (rec !== null && !Number.isNaN(rec.Fr) && Number.isNaN(rec.Fd)) rec.Fd = now();
  return origDecodeRes.apply(this, a);
};
const origServerStep = InferenceHopServer.prototype.step;
InferenceHopServer.prototype.step = function (s, r, ctx) {
  const cur = rec;
  if (cur !== null) cur.C = now();
  const p = origServerStep.call(this, s, r, ctx);
  p.then(() => {
    if (cur !== null) cur.F = now();
  }, () => {});
  return p;
};
for (const m of ['hidden', 'addSteps', 'tokens']) {
  const orig = RunningCommitment.prototype[m];
  RunningCommitment.prototype[m] = function (...a) {
    const t = now();
    try {
      return orig.apply(this, a);
    } finally {
      commitUs += (now() - t) * 1000;
    }
  };
}
function wrapCompute(server) {
  const compute = server.compute;
  const orig = compute.step;
  compute.step = (id, input, signal) => {
    const cur = rec;
    if (cur !== null) cur.D = now();
    const p = orig(id, input, signal);
    p.then(() => {
      if (cur !== null) cur.E = now();
    }, () => {});
    return p;
  };
}

const config = presetConfig('12x768');
const networkId = bundledGenesis().networkId;
const tokens = Number(args.tokens);
const arms = args.hops.split(',').map(Number);
const chains = new Map();
const acc = new Map(arms.map((n) => [n, { steps: [], tokMs: [], commitUs: 0, tokens: 0 }]));
try {
  for (const n of arms) {
    const chain = await startChain(networkId, config, evenSpans(config.num_hidden_layers, n), Number(args.threads), 'deployed');
    chains.set(n, chain);
    for (const h of chain.hops) wrapCompute(h.server);
    await decode(chain, config, 8);
  }
  for (const n of arms) await decode(chains.get(n), config, 16);
  for (let b = 0; b < Number(args.blocks); b++) {
    const order = b % 2 === 0 ? arms : [...arms].reverse();
    for (const n of order) {
      steps = [];
      commitUs = 0;
      const r = await decode(chains.get(n), config, tokens);
      const a = acc.get(n);
      // decode steps only (one position): the prefill's steps are the first n
      a.steps.push(...steps.slice(n));
      a.tokMs.push(...r.times.slice(1).map((t, i) => t - r.times[i]));
      a.commitUs += commitUs;
      a.tokens += r.times.length;
    }
  }
} finally {
  for (const c of chains.values()) await c.close();
}

const q = (xs) => quantile(xs, 0.5);
const us = (x) => (x * 1000).toFixed(0).padStart(6);
console.log(`entrysplit: ${tokens} tokens × ${args.blocks} blocks per chain, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('intervals per hop step, p50 µs: A→B request built | B→C to the hop | C→D hop parses | D→E worker | E→F hop answers | F→G back to the entry | G→A\' driver to the next call');
for (const n of arms) {
  const a = acc.get(n);
  // consecutive steps: the next call's A (the next hop, or the next token's first hop)
  const rows = [];
  const sums = { AB: 0, BC: 0, CD: 0, DE: 0, EF: 0, FG: 0, GA: 0 };
  for (let k = 0; k < n; k++) {
    const mine = [];
    for (let i = 0; i < a.steps.length - 1; i++) if (a.steps[i].hop === chains.get(n).hops[k].span.start) mine.push([a.steps[i], a.steps[i + 1]]);
    const iv = (f) => q(mine.map(([s, t]) => f(s, t)).filter((x) => Number.isFinite(x)));
    const r = {
      AB: iv((s) => s.B - s.A),
      BC: iv((s) => s.C - s.B),
      CD: iv((s) => s.D - s.C),
      DE: iv((s) => s.E - s.D),
      EF: iv((s) => s.F - s.E),
      FG: iv((s) => s.G - s.F),
      GA: iv((s, t) => t.A - s.G),
    };
    for (const key of Object.keys(sums)) sums[key] += r[key];
    const fine = [iv((s) => s.Bw - s.B), iv((s) => s.Br - s.Bw), iv((s) => s.C - s.Br), iv((s) => s.Fw - s.F), iv((s) => s.Fr - s.Fw), iv((s) => s.G - s.Fr), iv((s) => s.Fs - s.F), iv((s) => s.Fd - s.Fr), iv((s) => s.Fq - s.Fs), iv((s) => s.Bq - s.B)];
    rows.push(`   hop ${k} [${chains.get(n).hops[k].span.start},${chains.get(n).hops[k].span.end}):${us(r.AB)}${us(r.BC)}${us(r.CD)}${us(r.DE)}${us(r.EF)}${us(r.FG)}${us(r.GA)}   | B→queue${us(fine[9])} B→write${us(fine[0])} write→read${us(fine[1])} read→C${us(fine[2])} | F→sendReply${us(fine[6])} →queue${us(fine[8])} F→write${us(fine[3])} write→read${us(fine[4])} read→G${us(fine[5])} (read→decodeResponse${us(fine[7])})`);
  }
  const tok = q(a.tokMs);
  const outside = sums.AB + sums.BC + sums.CD + sums.EF + sums.FG + sums.GA;
  console.log(`== ${n} hop(s): token p50 ${tok.toFixed(3)} ms (${a.tokMs.length} tokens); sum of p50s: worker ${(sums.DE).toFixed(3)} ms, outside ${(outside).toFixed(3)} ms; driver commitments ${(a.commitUs / a.tokens).toFixed(1)} µs a token`);
  console.log(`   sums (µs):  ${us(sums.AB)}${us(sums.BC)}${us(sums.CD)}${us(sums.DE)}${us(sums.EF)}${us(sums.FG)}${us(sums.GA)}`);
  for (const r of rows) console.log(r);
}
process.exit(0);
