#!/usr/bin/env node
// How often greedy output through int8 hops differs from float32 hops (issue 8), on real libp2p hops on 127.0.0.1.
// Usage (build first):  node scripts/experiments/int8-net-greedy.mjs [--steps 200] [--prompts 20] [--tokens 64] [--hops 4]
//
// The model is the one of `npm run bench -- --only int8` (src/compute/int8/bench.ts): nano trained --steps steps of
// 8×128 from seed 0 on the genesis stream (a random model's near-uniform logits would hide what quantization does);
// the prompts are its: the first 16 tokens of each validation window. Two chains of --hops hops (one layer each for
// nano's 4 layers: every layer boundary is a hop boundary), each hop its own libp2p node and compute worker holding
// its slice of those weights, float32 in one chain and `--weights int8` (quantized by the worker on install, as a
// node does) in the other, and an entry node holding nothing that drives the generation (router/driver.ts
// runGeneration, float32 activations on the wire). Every prompt is decoded greedily for --tokens tokens (no early
// stop) through both chains and, as a check, in this process with the float32 model and its int8 quantization
// (model/shard.ts `quantized`): the network's answers must equal the in-process ones of the same format token for
// token, so that the difference measured is the int8 model's and not the network's.
//
// Prints one JSON line: prompts_differing (share of prompts whose int8 answer differs anywhere), tokens_differing
// (share of all positions whose token differs, every token after a first difference counting), first_diff_median,
// and the checks.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ComputeClient } from '../../dist/src/compute/index.js';
import { openCorpus } from '../../dist/src/data/index.js';
import { keyFromPrivate } from '../../dist/src/identity/index.js';
import { presetConfig } from '../../dist/src/model/index.js';
import { KVCache } from '../../dist/src/model/kv-cache.js';
import { LlamaShard } from '../../dist/src/model/shard.js';
import { createNodeNetwork } from '../../dist/src/node/network.js';
import { workerHopCompute } from '../../dist/src/node/serving.js';
import { sliceSpan } from '../../dist/src/pool/weights.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../dist/src/protocols/inference.js';
import { BanList, DRIVER_DEFAULTS, runGeneration } from '../../dist/src/router/index.js';
import { selectBackend } from '../../dist/src/tensor/index.js';
import { waitFor } from '../../dist/src/util/abort.js';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '200' }, prompts: { type: 'string', default: '20' }, tokens: { type: 'string', default: '64' }, hops: { type: 'string', default: '4' } } });
const STEPS = Number(args.steps);
const PROMPTS = Number(args.prompts);
const GEN = Number(args.tokens);
const PROMPT = 16;
const log = (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const config = presetConfig('nano');
const L = config.num_hidden_layers;
const HOPS = Math.min(L, Number(args.hops));
const NET = `int8-greedy-${randomBytes(4).toString('hex')}`;
const TUNING = { ephemeralPeerStore: true, inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100, retryBaseMs: 200, retryMaxMs: 2000, pubsubHeartbeatMs: 300, autonat: false, dcutr: false };

async function trained() {
  const corpus = await openCorpus(undefined);
  const B = 8;
  const T = 128;
  const stream = await corpus.trainStream({ nodeId: 'bench-int8', batchSize: B, seqLen: T, seed: 0 });
  const val = await corpus.validationBatches({ batchSize: B, seqLen: T, maxBatches: 4 });
  const c = await ComputeClient.start({ threads: 2 });
  try {
    await c.run({ type: 'initModel', config, seed: 0, trainer: { decaySteps: STEPS } });
    const t0 = performance.now();
    let loss = NaN;
    for (let s = 0; s < STEPS; s++) {
      const b = stream.next();
      loss = (await c.run({ type: 'trainStep', inputs: b.inputs.slice(), targets: b.labels.slice(), B, T })).loss;
    }
    log(`trained nano ${STEPS} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s, last train loss ${loss.toFixed(3)}`);
    const { params } = await c.run({ type: 'getParams' });
    const prompts = [];
    for (const b of val) for (let r = 0; r < b.batchSize && prompts.length < PROMPTS; r++) prompts.push(Array.from(b.inputs.slice(r * b.seqLen, r * b.seqLen + PROMPT)));
    return { params, prompts };
  } finally {
    await c.close();
  }
}

async function node(boot, span) {
  const n = await createNodeNetwork({
    networkId: NET,
    key: keyFromPrivate(randomBytes(32)),
    options: { dataDir: '/nonexistent', listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], bootstrap: boot, trackers: [], genesis: boot.length === 0, mdns: false, upnp: false, relay: false, relayDataLimitMb: 256, relayDurationS: 600, maxConnections: 200, span, heartbeatIntervalMs: 1000, peerStaleMs: 5000, peerDeadMs: 20_000 },
    tuning: TUNING,
  });
  await n.start();
  return n;
}

/** A chain of hops holding `params` in `weights`, and an entry node. */
async function chain(params, weights) {
  const whole = { start: 0, end: L };
  const spans = Array.from({ length: HOPS }, (_, i) => ({ start: Math.round((i * L) / HOPS), end: Math.round(((i + 1) * L) / HOPS) }));
  const hops = [];
  let boot = [];
  for (const span of spans) {
    const n = await node(boot, span);
    if (boot.length === 0) boot = [n.p2p.multiaddrs()[0]];
    const compute = await ComputeClient.start({ threads: 1, weights });
    await compute.run({ type: 'initModel', config, span, params: sliceSpan(config, whole, params, span) });
    const server = new InferenceHopServer(workerHopCompute(compute, config, () => span), HOP_LIMIT_DEFAULTS);
    await server.register(n.rpc);
    hops.push({ n, compute, span, peerId: n.peerId, engine: compute.info?.description ?? '' });
  }
  const entry = await node(boot, undefined);
  await waitFor(() => new Set(entry.liveness.snapshot().filter((p) => p.state === 'alive').map((p) => p.peer)).size >= hops.length, { timeoutMs: 300_000, intervalMs: 100, what: 'the entry hears every hop' });
  return {
    hops,
    async generate(prompt) {
      const model = { numLayers: L, hiddenSize: config.hidden_size, contextLength: config.max_position_embeddings, eosId: -1, encode: () => prompt, decode: () => '' };
      const view = hops.map((h) => ({ peerId: h.peerId, span: h.span, alive: true, rttMs: 0, ...(weights === 'int8' ? { weights } : {}) }));
      let k = 0;
      const r = await runGeneration(
        { prompt: '', maxTokens: GEN, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
        {
          model,
          holders: () => view,
          opener: { open: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: config.hidden_size, vocabSize: config.vocab_size, wire: 'f32' }) },
          bans: new BanList(),
          now: () => performance.now(),
          random: () => 0,
          newSessionId: () => `${weights}-${++k}-${randomBytes(4).toString('hex')}`,
          // no failover (a loaded machine must not turn into a replay) and no exploration: the one chain of this format
          options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 60_000, explore: 0 },
        },
        {},
        new AbortController().signal,
      );
      if (r.failovers !== 0) throw new Error(`a failover happened (${r.failovers}): the figure would mix chains`);
      // the route as chosen: every hop of this chain's format (a mixed f32/int8 chain would be neither model)
      const formats = [...new Set(r.route.map((h) => h.weights ?? 'f32'))];
      if (formats.length !== 1 || formats[0] !== weights) throw new Error(`a route of formats ${formats.join(',')} in the ${weights} chain`);
      routes[weights].add(r.route.map((h) => `${h.peerId.slice(-6)}@${h.span[0]}:${h.span[1]}/${h.weights ?? 'f32'}`).join(' '));
      return r.tokens;
    },
    async close() {
      await entry.stop();
      for (const h of hops) {
        await h.n.stop();
        await h.compute.close();
      }
    },
  };
}

/** Greedy decode in this process (the bench's greedyChain with one shard). */
function greedy(shard, prompt) {
  const cache = new KVCache(shard.config, { span: shard.span, batch: 1, maxLen: prompt.length + GEN });
  const out = [];
  let input = Int32Array.from(prompt);
  const V = config.vocab_size;
  for (let k = 0; k < GEN; k++) {
    const T = input.length;
    const y = shard.forward(input, 1, T, { cache });
    let best = 0;
    const row = y.subarray((T - 1) * V, T * V);
    for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
    out.push(best);
    input = Int32Array.of(best);
  }
  return out;
}

function compare(ref, other) {
  let differing = 0;
  let tokens = 0;
  const firsts = [];
  for (let i = 0; i < ref.length; i++) {
    let first = -1;
    for (let t = 0; t < ref[i].length; t++) {
      if (ref[i][t] !== other[i][t]) {
        tokens++;
        if (first < 0) first = t;
      }
    }
    if (first >= 0) {
      differing++;
      firsts.push(first);
    }
  }
  firsts.sort((a, b) => a - b);
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return { prompts_differing: r3(differing / ref.length), prompts_differing_count: differing, tokens_differing: r3(tokens / (ref.length * GEN)), first_diff_median: firsts.length > 0 ? firsts[Math.floor(firsts.length / 2)] : null };
}

const load0 = loadavg()[0];
/** The distinct routes each chain's generations took (one expected: every span is held once). */
const routes = { f32: new Set(), int8: new Set() };
/** Prompts whose answer through hops differs from the in-process one of the same format: index and positions. */
function mismatches(a, b) {
  const out = [];
  for (let i = 0; i < a.length; i++) {
    const at = [];
    for (let t = 0; t < a[i].length; t++) if (a[i][t] !== b[i][t]) at.push(t);
    if (at.length > 0) out.push({ prompt: i, positions: at.length > 6 ? [...at.slice(0, 6), '…'] : at });
  }
  return out;
}
const { params, prompts } = await trained();
const out = { f32: [], int8: [] };
const engines = {};
for (const weights of ['f32', 'int8']) {
  const c = await chain(params, weights);
  engines[weights] = [...new Set(c.hops.map((h) => h.engine))];
  try {
    const t0 = performance.now();
    for (const p of prompts) out[weights].push(await c.generate(p));
    log(`${weights} chain of ${c.hops.length} hops: ${prompts.length} prompts × ${GEN} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s (engines ${engines[weights].join(' | ')})`);
  } finally {
    await c.close();
  }
}
const sel = await selectBackend({ threads: 2 });
const f32 = new LlamaShard({ config, backend: sel.backend, params });
const q = f32.quantized();
const local = { f32: prompts.map((p) => greedy(f32, p)), int8: prompts.map((p) => greedy(q, p)) };
const same = (a, b) => a.every((x, i) => x.length === b[i].length && x.every((t, k) => t === b[i][k]));
const result = {
  model: `nano trained ${STEPS} steps`,
  hops: HOPS,
  prompts: prompts.length,
  tokens: GEN,
  int8_vs_f32_through_hops: compare(out.f32, out.int8),
  int8_vs_f32_in_process: compare(local.f32, local.int8),
  f32_hops_equal_in_process: same(out.f32, local.f32),
  int8_hops_equal_in_process: same(out.int8, local.int8),
  f32_hops_vs_in_process: mismatches(out.f32, local.f32),
  int8_hops_vs_in_process: mismatches(out.int8, local.int8),
  routes: { f32: [...routes.f32], int8: [...routes.int8] },
  engines,
  load_avg_1m: Math.round(load0 * 10) / 10,
};
console.log(JSON.stringify(result));
process.exit(0);
