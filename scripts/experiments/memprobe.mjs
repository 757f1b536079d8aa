#!/usr/bin/env node
// Memory probe for the serving path (issue 12 §2, "memory of serving nodes grows"). Usage (build first):
//   node --expose-gc scripts/experiments/memprobe.mjs [--gens 300] [--cut]
// One process: three real libp2p nodes on 127.0.0.1 holding [0, 2), [2, L), [2, L) (each its own compute worker
// and InferenceHopServer) and an entry node without layers whose NodeGenerator drives greedy 16-token generations
// through them, one after another. With --cut, every other generation hangs up the entry's connection to one of
// the two [2, L) replicas 100 ms in (the hop's streams reset on both sides: a failover, or a typed error once both
// are banned). Every 50 generations it prints, after a GC: heap, RSS, external and ArrayBuffer bytes, open hop
// sessions (InferenceHopServer) and worker sessions (SessionTable) per hop, the hop servers' `finished` records,
// liveness and peer-store entries, and connections/streams per node. A leak shows as a count or heap that keeps
// rising; a bounded cache as one that stops.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ComputeClient } from '../../dist/src/compute/index.js';
import { keyFromPrivate } from '../../dist/src/identity/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { createNodeNetwork } from '../../dist/src/node/network.js';
import { NodeGenerator, workerHopCompute } from '../../dist/src/node/serving.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../dist/src/protocols/inference.js';
import { waitFor } from '../../dist/src/util/abort.js';
import { loopbackNodeOptions, LOOPBACK_TUNING } from '../../dist/test/utils/network.js';

const { values: args } = parseArgs({ options: { gens: { type: 'string', default: '300' }, cut: { type: 'boolean', default: false } } });
const N = Number(args.gens);
const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const MiB = (b) => (b / 1048576).toFixed(1);

async function startNet(span, boot) {
  const net = await createNodeNetwork({
    networkId: genesis.networkId,
    key: keyFromPrivate(randomBytes(32)),
    options: loopbackNodeOptions({ span, bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 300 }),
    tuning: LOOPBACK_TUNING,
  });
  await net.start();
  return net;
}

const hops = [];
for (const span of [{ start: 0, end: 2 }, { start: 2, end: L }, { start: 2, end: L }]) {
  const net = await startNet(span, hops.length === 0 ? [] : [hops[0].net.p2p.multiaddrs()[0]]);
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
  const server = new InferenceHopServer(workerHopCompute(compute, cfg, () => span), HOP_LIMIT_DEFAULTS, net.scores);
  await server.register(net.rpc);
  hops.push({ net, compute, server, span });
}
const entry = await startNet(undefined, hops.map((h) => h.net.p2p.multiaddrs()[0]));
const entryCompute = await ComputeClient.start({ threads: 1 });
const gen = new NodeGenerator({
  compute: entryCompute,
  genesis,
  selfPeerId: entry.peerId,
  localSpan: () => undefined,
  peers: () => hops.map((h) => ({ peerId: h.net.peerId, span: h.span, alive: true })),
  remote: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: cfg.hidden_size, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores }),
  options: { stepTimeoutMs: 60_000 },
});
await waitFor(() => entry.liveness.snapshot().filter((p) => p.state === 'alive').length >= 3, { timeoutMs: 300_000, intervalMs: 100, what: 'three alive hops' });

const nets = () => [entry, ...hops.map((h) => h.net)];
/** Entries in the dependant-signal set of a long-lived AbortSignal (Node 20 never prunes it for AbortSignal.any). */
function dependants(signal) {
  const k = Object.getOwnPropertySymbols(signal).find((x) => String(x) === 'Symbol(kDependantSignals)');
  return k === undefined ? 0 : (signal[k]?.size ?? 0);
}
let failovers = 0;
let errors = 0;
async function report(i) {
  globalThis.gc?.();
  const m = process.memoryUsage();
  const workers = await Promise.all(hops.map((h) => h.compute.run({ type: 'sessionList' })));
  const streams = nets().map((n) => {
    let c = 0;
    let s = 0;
    for (const conn of n.p2p.libp2p.getConnections()) {
      c++;
      s += conn.streams.length;
    }
    return `${c}c/${s}s`;
  });
  const store = await Promise.all(nets().map(async (n) => (await n.p2p.libp2p.peerStore.all()).length));
  console.log(
    `gen ${i}: heap ${MiB(m.heapUsed)} MiB, rss ${MiB(m.rss)}, external ${MiB(m.external)}, arrayBuffers ${MiB(m.arrayBuffers)};` +
      ` hop sessions ${hops.map((h) => h.server.usage().sessions)}, worker sessions ${workers.map((w) => w.ids.length)},` +
      ` finished ${hops.map((h) => h.server.finished.length)}; failovers ${failovers}, errors ${errors};` +
      ` rpc closing dependants ${nets().map((n) => dependants(n.rpc.closing.signal))};` +
      ` liveness ${nets().map((n) => n.liveness.snapshot().length)}, peer store ${store}; conns/streams ${streams.join(' ')}`,
  );
}

for (let i = 0; i < N; i++) {
  if (args.cut && i % 2 === 1) {
    const victim = hops[1 + ((i >> 1) % 2)].net.p2p.libp2p.peerId;
    setTimeout(() => entry.p2p.libp2p.hangUp(victim).catch(() => {}), 100);
  }
  try {
    const r = await gen.generate({ prompt: 'The jury said that', maxTokens: 16, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] }, {}, new AbortController().signal);
    failovers += r.failovers;
  } catch {
    errors++;
  }
  if (i % 50 === 0) await report(i);
}
// the hops see the last streams end asynchronously
await waitFor(() => hops.every((h) => h.server.usage().sessions === 0), { timeoutMs: 30_000, intervalMs: 100, what: 'hop sessions closed' });
await report(N);
for (const h of hops) {
  await h.net.stop();
  await h.compute.close();
}
await entry.stop();
await entryCompute.close();
