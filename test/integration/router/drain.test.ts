/**
 * Draining a hop before the pool moves its span, on real libp2p nodes on 127.0.0.1 (one compute worker per hop):
 * the draining hop refuses new sessions (RPC_BUSY: the entry picks the replica), lets a live session finish within
 * the bound, and evicts one that outlives it (its KV cache freed at once); that session's entry fails over to the
 * replica by replay and its greedy tokens do not change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { genesisModelView, NodeGenerator, workerHopCompute } from '../../../src/node/serving.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../../src/protocols/inference.js';
import { waitFor } from '../../../src/util/abort.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { createLogger, silentLogger } from '../../../src/util/logger.js';
import { startServingNet } from '../../utils/network.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const C = cfg.hidden_size;
const PROMPT = 'The jury said that';
const MAX = 40;
const log = process.env.DRAIN_TEST_LOG === undefined ? silentLogger : createLogger({ level: 'debug', module: 'entry' });

interface Hop {
  net: NodeNetwork;
  compute: ComputeClient;
  server: InferenceHopServer;
}

const startNet = (span: { start: number; end: number } | undefined, boot: string[]): Promise<NodeNetwork> => startServingNet(genesis.networkId, span, boot);

async function startHop(span: { start: number; end: number }, boot: string[]): Promise<Hop> {
  const net = await startNet(span, boot);
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
  const server = new InferenceHopServer(workerHopCompute(compute, cfg, () => span), HOP_LIMIT_DEFAULTS, net.scores);
  await server.register(net.rpc);
  return { net, compute, server };
}

const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;

describe('draining a hop before a move', () => {
  let a: Hop;
  let v1: Hop;
  let v2: Hop;
  let entry: NodeNetwork;
  let entryCompute: ComputeClient;
  let reference: number[];
  const hops = (): Hop[] => [a, v1, v2];

  /** A generator whose route choice sees only the given peers (so the test decides which replica is first). */
  const generator = (peers: () => Hop[]): NodeGenerator =>
    new NodeGenerator({
      compute: entryCompute,
      genesis,
      selfPeerId: entry.peerId,
      localSpan: () => undefined,
      // the hops' spans as they are (not through heartbeats: a late heartbeat on a loaded machine is not this test's subject)
      peers: () => peers().map((h) => ({ peerId: h.net.peerId, span: h === a ? { start: 0, end: 2 } : { start: 2, end: L }, alive: true })),
      remote: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores }),
      options: { stepTimeoutMs: 60_000 }, // failover here comes from the eviction, not from a deadline on a loaded machine
      log,
    });

  before(async () => {
    a = await startHop({ start: 0, end: 2 }, []);
    v1 = await startHop({ start: 2, end: L }, [addr(a.net)]);
    v2 = await startHop({ start: 2, end: L }, [addr(a.net)]);
    entry = await startNet(undefined, [addr(a.net)]);
    // connected to every hop by address: the sessions go by peer id, and an entry that had not yet learned v1's
    // address through a (DHT or peer routing, slow at load 30-40) failed its first step, failed over, and found no
    // other holder in its view (LAYERS_UNCOVERED in both cases)
    for (const h of hops()) await entry.p2p.dial(addr(h.net), { signal: AbortSignal.timeout(60_000) });
    entryCompute = await ComputeClient.start({ threads: 1 });
    await entryCompute.run({ type: 'initModel', config: cfg, seed: 0 });
    const model = genesisModelView(genesis);
    reference = Array.from((await entryCompute.run({ type: 'generate', prompt: Int32Array.from(model.encode(PROMPT)), maxTokens: MAX, temperature: 0, stopIds: [cfg.eos_token_id] })).tokens);
    await waitFor(() => entry.liveness.snapshot().filter((p) => p.state === 'alive' && p.heartbeat.span !== undefined).length >= 3, { timeoutMs: 120_000, intervalMs: 100, what: 'three alive hops' });
  });
  after(async () => {
    for (const h of hops()) {
      await h?.net.stop();
      await h?.compute.close();
    }
    await entry?.stop();
    await entryCompute?.close();
  });

  const params = { prompt: PROMPT, maxTokens: MAX, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

  it('a live session finishes within the bound; new sessions are refused (RPC_BUSY) until the move ends and go to the replica', async () => {
    const onlyV1 = generator(() => [a, v1]);
    let drained: Promise<{ finished: number; evicted: number }> | undefined;
    // the drain starts after the first token
    let gate: () => void = () => {};
    const paused = new Promise<void>((resolve) => (gate = resolve));
    const first = onlyV1.run(params, {
      onToken: () => {
        if (drained !== undefined) return;
        drained = v1.server.drain(120_000);
        gate();
      },
    }, new AbortController().signal);
    await paused;
    assert.equal(v1.server.isDraining(), true);
    // a new session on the draining hop is refused with RPC_BUSY
    const probe = new RemoteHopSession(entry.rpc, v1.net.peerId, { start: 2, end: L }, { id: 'probe', maxLen: 8, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32' });
    const refused = await probe.step({ hidden: new Float32Array(C), chunks: [1] }, new AbortController().signal).catch((e: unknown) => e);
    assert.ok(refused instanceof NeuroShardError && refused.code === 'RPC_BUSY', String(refused));
    const r1 = await first;
    assert.deepEqual(r1.tokens, reference);
    assert.equal(r1.failovers, 0, 'the live session was not cut');
    const d = await drained!;
    assert.deepEqual(d, { finished: 1, evicted: 0 });
    assert.equal(v1.server.usage().sessions, 0);
    // still draining (until the move ends): a generation that chooses v1 is refused there and moved to v2
    const r2 = await generator(() => [a, v1]).run(params, {}, new AbortController().signal).catch((e: unknown) => e);
    assert.ok(r2 instanceof NeuroShardError && r2.code === 'LAYERS_UNCOVERED', `v1 refused the session and nobody else holds [2, ${L}): ${String(r2)}`);
    const r3 = await generator(() => [a, v1, v2]).run(params, {}, new AbortController().signal);
    assert.deepEqual(r3.tokens, reference);
    assert.ok(r3.route.every((h) => h.peerId !== v1.net.peerId) || r3.failovers >= 1, 'a route through v1 was moved to v2');
    v1.server.resume();
    assert.equal(v1.server.isDraining(), false);
  });

  it('a session that outlives the bound is evicted (its KV cache freed) and fails over by replay, same tokens', async () => {
    const preferV1 = generator(() => [a, v1, v2]);
    // v1 first: v2 is seen only after the failover bans v1 (the view lists v2 then)
    let banV1 = false;
    const gen = new NodeGenerator({
      compute: entryCompute,
      genesis,
      selfPeerId: entry.peerId,
      localSpan: () => undefined,
      peers: () => preferV1.holders().filter((h) => (banV1 ? h.peerId !== v1.net.peerId : h.peerId !== v2.net.peerId)),
      remote: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores }),
      options: { stepTimeoutMs: 60_000 },
      log,
    });
    let drained: Promise<{ finished: number; evicted: number }> | undefined;
    let tokens = 0;
    const r = await gen.run(params, {
      onToken: () => {
        if (++tokens !== 5) return;
        banV1 = true;
        // the bound is 0: the session is still open, so it is evicted at once
        drained = v1.server.drain(0);
      },
    }, new AbortController().signal);
    const d = await drained!;
    assert.deepEqual(d, { finished: 0, evicted: 1 });
    assert.deepEqual(r.tokens, reference);
    assert.ok(r.failovers >= 1, `failovers ${r.failovers}`);
    assert.equal(v1.server.usage().sessions, 0);
    assert.equal(v1.server.usage().reservedBytes, 0);
    await waitFor(async () => (await v1.compute.run({ type: 'sessionList' })).ids.length === 0, { timeoutMs: 10_000, intervalMs: 50, what: 'the evicted KV cache freed in the worker' });
    v1.server.resume();
  });
});
