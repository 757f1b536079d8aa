/**
 * Continuous batching across nodes, on real libp2p on 127.0.0.1: eight generations sent at once from an entry
 * node with no layers through a chain of two hops (each its own compute worker) give, each, exactly the tokens it
 * gives when the generations run one after another (greedy and seeded), while the hops ran most of their decode
 * steps batched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { NodeGenerator, workerHopCompute } from '../../../src/node/serving.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../../src/protocols/inference.js';
import { waitFor } from '../../../src/util/abort.js';
import { createLogger } from '../../../src/util/logger.js';
import { startServingNet } from '../../utils/network.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const N = 8;
const prompts = ['The jury said that', 'It was a', 'The city', 'He said', 'In the morning the', 'She', 'They were not', 'A long time ago there was'];

const startNet = (span: { start: number; end: number } | undefined, boot: string[]): Promise<NodeNetwork> => startServingNet(genesis.networkId, span, boot);

describe('continuous batching through a chain of hops', () => {
  const hops: { net: NodeNetwork; compute: ComputeClient; server: InferenceHopServer }[] = [];
  let entry: NodeNetwork;
  let entryCompute: ComputeClient;
  let gen: NodeGenerator;
  /** The generator's log (a failover says why, should one happen). */
  const log: string[] = [];

  before(async () => {
    for (const span of [{ start: 0, end: 2 }, { start: 2, end: L }]) {
      const net = await startNet(span, hops.length === 0 ? [] : [hops[0].net.p2p.multiaddrs()[0]!]);
      // a wide batch window: on a loaded machine the eight streams' steps arrive far apart; the default is 2 ms
      const compute = await ComputeClient.start({ threads: 1, batchWindowMs: 20 });
      await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
      const server = new InferenceHopServer(workerHopCompute(compute, cfg, () => span), HOP_LIMIT_DEFAULTS, net.scores);
      await server.register(net.rpc);
      hops.push({ net, compute, server });
    }
    // the entry bootstraps to both hops (the bootstrap retries a dial that times out on a loaded machine)
    entry = await startNet(undefined, hops.map((h) => h.net.p2p.multiaddrs()[0]!));
    entryCompute = await ComputeClient.start({ threads: 1 });
    gen = new NodeGenerator({
      compute: entryCompute,
      genesis,
      selfPeerId: entry.peerId,
      localSpan: () => undefined,
      // the hops as given (this test is about batching, not discovery: no wait for heartbeats on a loaded machine)
      peers: () => hops.map((h, k) => ({ peerId: h.net.peerId, span: k === 0 ? { start: 0, end: 2 } : { start: 2, end: L }, alive: true })),
      remote: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: cfg.hidden_size, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores }),
      options: { stepTimeoutMs: 120_000 }, // about batching, not timeouts (the machine may be loaded)
      log: createLogger({ level: 'info', write: (line) => log.push(line) }),
    });
    // the connections have settled once heartbeats flow over them (a stream opened on a connection that is being
    // replaced fails, and with one holder per span the router would have no replica to fail over to)
    await waitFor(() => entry.liveness.snapshot().filter((p) => p.state === 'alive').length >= 2, { timeoutMs: 300_000, intervalMs: 100, what: 'two alive hops' });
  });
  after(async () => {
    for (const h of hops) {
      await h.net.stop();
      await h.compute.close();
    }
    await entry?.stop();
    await entryCompute?.close();
  });

  for (const sampling of [{ temperature: 0, topK: 0, topP: 1, seed: 0 }, { temperature: 0.8, topK: 40, topP: 0.95, seed: 11 }]) {
    it(`eight concurrent generations give the tokens they give one at a time (temperature ${sampling.temperature})`, async () => {
      const params = (i: number) => ({ prompt: prompts[i], maxTokens: 16, ...sampling, seed: sampling.seed + i, stop: [] });
      const signal = new AbortController().signal;
      const sequential: number[][] = [];
      for (let i = 0; i < N; i++) sequential.push((await gen.run(params(i), {}, signal).catch((e: Error) => assert.fail(`${e.message}\n${log.join('\n')}`))).tokens);
      const before = hops.map((h) => ({ ...h.server.stepStats }));
      const concurrent = await Promise.all(Array.from({ length: N }, (_, i) => gen.run(params(i), {}, signal))).catch((e: Error) => assert.fail(`${e.message}\n${log.join('\n')}`));
      assert.deepEqual(
        concurrent.map((r) => r.tokens),
        sequential,
      );
      assert.ok(concurrent.every((r) => r.failovers === 0 && r.route.length === 2), log.join('\n'));
      for (const [k, h] of hops.entries()) {
        const steps = h.server.stepStats.steps - before[k].steps;
        const batched = h.server.stepStats.batched - before[k].batched;
        assert.ok(batched > steps / 4, `hop ${k}: ${batched} of ${steps} steps ran batched`);
      }
      await waitFor(() => hops.every((h) => h.server.usage().sessions === 0), { timeoutMs: 30_000, intervalMs: 50, what: 'sessions closed' });
    });
  }
});
