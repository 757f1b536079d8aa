/**
 * DiLoCo between partial holders on real libp2p nodes on 127.0.0.1 (issue 9 §2 over §1): two chains of two stages
 * each, [0,1) and [1,2) of a 2-layer model twice (A → ?, C → ?; each driver forms its chain from the four holders,
 * the hops' leases keep one driver per hop), each node with its own compute worker, its own train-stage server and
 * its own outer sync (node/diloco.ts) over its span (training/chain-outer.ts). A fifth node E holds [1,2) in the
 * holders' view but does not train (`--no-train`: no outer sync, no train-stage).
 *
 *   1. three outer rounds of H = 3: after every round the replicas of each span report equal per-layer hashes,
 *      every layer's round closed with the two trainers' contributions, their workers hold bit-identical weights,
 *      and the validation loss of the assembled model falls;
 *   2. the non-training holder E is no round member: it is in no round's members (the holders counted for the quorum
 *      and the hash vote) and has no contribution on record.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { makeConfig, ParamLayout, type LlamaConfig } from '../../../src/model/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { nodeChainDriver, NodeChainHop } from '../../../src/node/chain.js';
import { startOuterSync, type OuterSyncWiring } from '../../../src/node/diloco.js';
import { type ChainTrainer, innerLoopParams, runOuterRounds, type Batch, type BatchSource, type ChainCandidate, type InnerLoop, type LastRoundReport } from '../../../src/training/index.js';
import { layerRanges } from '../../../src/training/diloco.js';
import { batchOf } from '../../../src/training/pipeline/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { createLogger } from '../../../src/util/logger.js';
import { loopbackNodeOptions, LOOPBACK_TUNING, startTrainingNet } from '../../utils/network.js';
import { learnableTokens, xorshift } from '../../utils/learnable-stream.js';

const genesis = bundledGenesis();
const cfg: LlamaConfig = makeConfig({ hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 64 });
const L = cfg.num_hidden_layers;
const SEED = 3;
const H = 3;
const ROUNDS = 3;
const SYNC_MS = 60_000;
const OPTIONS = { innerSteps: H, outerLr: 0.7, outerMomentum: 0.9, aggregator: 'trimmed-mean', compress: 'int8', outerQuorum: 2 / 3, outerSyncTimeoutMs: SYNC_MS };
const TRAINER = { lr: 1e-2, warmupSteps: 0, decaySteps: 1000 };
const B = 4;
const T = 16;

/** The learnable stream of test/utils/learnable-stream.ts, as this file's pipeline batches. */
function batch(rand: () => number, b = B): Batch {
  const t = learnableTokens(rand, b, T);
  return batchOf(t.inputs, t.targets, b, T);
}
const rng = xorshift;
function source(seed: number): BatchSource {
  const rand = rng(seed);
  let i = 0;
  return {
    next: () => (i++, batch(rand)),
    position: () => i,
  };
}

interface TestNode {
  name: string;
  key: NodeKey;
  span: { start: number; end: number };
  net: NodeNetwork;
  compute: ComputeClient;
  hop: NodeChainHop;
  driver?: ChainTrainer;
  wiring?: OuterSyncWiring;
  rounds: LastRoundReport[];
  hashes: Map<number, Record<string, string>>;
}

const nodes: TestNode[] = [];
let idle: NodeNetwork | undefined; // E: holds [1, 2) in the view, does not train
const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;
const spanA = { start: 0, end: 1 };
const spanB = { start: 1, end: L };

async function startNode(name: string, span: { start: number; end: number }, boot: string[]): Promise<TestNode> {
  const key = keyFromPrivate(randomBytes(32));
  const net = await startTrainingNet(genesis.networkId, key, span, boot);
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config: cfg, seed: SEED, span });
  const hop = await NodeChainHop.start({ compute, network: net, config: cfg, span: () => span, limits: { leaseMs: 120_000 } });
  return { name, key, span, net, compute, hop, rounds: [], hashes: new Map() };
}

/** The whole model's flat buffer from one holder of each span (by parameter name). */
async function assemble(first: TestNode, second: TestNode): Promise<Float32Array> {
  const whole = new ParamLayout(cfg);
  const out = new Float32Array(whole.size);
  for (const n of [first, second]) {
    const p = (await n.compute.run({ type: 'getParams' })).params;
    const sl = new ParamLayout(cfg, n.span);
    for (const e of sl.entries) whole.view(out, e.name).set(p.subarray(e.offset, e.offset + e.size));
  }
  return out;
}

describe('DiLoCo between partial holders (two 2-stage chains) on real libp2p nodes', { timeout: 900_000 }, () => {
  let ref: ComputeClient;
  const val = batch(rng(4242), 8);

  before(async () => {
    const a = await startNode('A', spanA, []);
    nodes.push(a);
    for (const [name, span] of [['B', spanB], ['C', spanA], ['D', spanB]] as const) nodes.push(await startNode(name, span, nodes.map((n) => addr(n.net))));
    idle = await createNodeNetwork({
      networkId: genesis.networkId,
      key: keyFromPrivate(randomBytes(32)),
      options: loopbackNodeOptions({ span: spanB, bootstrap: nodes.map((n) => addr(n.net)), heartbeatIntervalMs: 500 }),
      tuning: LOOPBACK_TUNING,
    });
    await idle.start();
    for (const n of nodes) await waitFor(() => n.net.liveness.snapshot().filter((p) => p.state === 'alive').length >= 4, { timeoutMs: 240_000, intervalMs: 100, what: `${n.name} to see the four others alive` });
    ref = await ComputeClient.start({ threads: 1 });
    await ref.run({ type: 'initModel', config: cfg, seed: SEED });
  });

  after(async () => {
    for (const n of nodes) {
      n.hop.stop();
      await n.wiring?.stop().catch(() => {});
      await n.net.stop().catch(() => {});
      await n.compute.close().catch(() => {});
    }
    await idle?.stop().catch(() => {});
    await ref?.close();
  });

  it(`two chains, ${ROUNDS} rounds of H = ${H}: equal per-layer hashes across replicas after every round, identical weights, falling validation loss`, async () => {
    const [a, b, c, d] = nodes as [TestNode, TestNode, TestNode, TestNode];
    const before0 = (await ref.run({ type: 'evalLoss', inputs: val.inputs.data.slice(), targets: val.targets.data.slice(), B: 8, T })).loss;
    // the holders as the pool's view gives them (E, which does not train, included)
    const holders = (layer: string): string[] => (layer === 'embed' || layer === 'layers.0' ? [a, c] : [b, d]).map((n) => n.net.peerId).concat(layer === 'embed' || layer === 'layers.0' ? [] : [idle!.peerId]);
    const all: ChainCandidate[] = nodes.map((n) => ({ peer: n.net.peerId, span: n.span }));
    const ac = new AbortController();
    for (const [i, n] of nodes.entries()) {
      const driving = n.span.start === 0;
      if (driving) {
        n.driver = nodeChainDriver({
          compute: n.compute,
          network: n.net,
          config: cfg,
          span: n.span,
          data: source(100 + i),
          pipeline: { microBatches: 2, schedule: '1f1b', trainer: TRAINER },
          candidates: () => all,
          stepTimeoutMs: 60_000,
          retryMs: 200,
        });
      }
      const layout = new ParamLayout(cfg, n.span);
      const inner: InnerLoop = driving ? n.driver! : n.hop.inner!;
      n.wiring = await startOuterSync({
        rpc: n.net.rpc,
        scores: n.net.scores,
        peerId: n.net.peerId,
        key: n.key,
        networkId: genesis.networkId,
        config: cfg,
        span: n.span,
        inner: innerLoopParams(inner, layerRanges(layout), layout.size),
        holders,
        options: OPTIONS,
        clock: { now: () => Date.now() },
        pollMs: 100,
        ...(process.env.SYNC_TEST_LOG === undefined ? {} : { log: createLogger({ level: 'debug', module: n.name }) }),
      });
    }
    await Promise.all(
      nodes.map((n) =>
        runOuterRounds({
          inner: n.driver ?? n.hop.inner!,
          sync: n.wiring!.sync,
          innerSteps: H,
          signal: ac.signal,
          done: () => n.rounds.length >= ROUNDS,
          onRound: (r) => {
            n.rounds.push(r);
            n.hashes.set(r.round, n.wiring!.sync.stats().hashes);
          },
        }),
      ),
    );
    if (process.env.SYNC_TEST_LOG !== undefined) for (const n of nodes) console.error(n.name, JSON.stringify(n.rounds.map((x) => ({ ...x, records: undefined }))));
    for (const [x, y, ids] of [[a, c, ['embed', 'layers.0']], [b, d, ['layers.1', 'head']]] as const) {
      for (let round = 0; round < ROUNDS; round++) {
        const hx = x.hashes.get(round);
        const hy = y.hashes.get(round);
        assert.deepEqual(Object.keys(hx ?? {}).sort(), [...ids].sort(), `round ${round}: ${x.name} reports the hashes of its layers`);
        assert.deepEqual(hx, hy, `round ${round}: ${x.name} and ${y.name} hold equal layer hashes`);
        for (const n of [x, y]) {
          const rep = n.rounds.find((r) => r.round === round)!;
          assert.deepEqual(Object.values(rep.outcome), ['closed', 'closed'], `${n.name} round ${round} closed on both layers`);
          assert.equal(rep.accepted, 2 * 2, `${n.name} round ${round}: two contributions per layer`);
          assert.deepEqual(rep.repaired, []);
        }
      }
      assert.notDeepEqual(x.hashes.get(0), x.hashes.get(ROUNDS - 1), 'the rounds moved the weights');
      const px = (await x.compute.run({ type: 'getParams' })).params;
      const py = (await y.compute.run({ type: 'getParams' })).params;
      assert.ok(Buffer.from(px.buffer, px.byteOffset, px.byteLength).equals(Buffer.from(py.buffer, py.byteOffset, py.byteLength)), `${x.name} and ${y.name}: bit-identical weights`);
    }
    // each chain trained: its driver applied H · ROUNDS steps
    for (const n of [a, c]) assert.equal(n.driver!.appliedSteps(), H * ROUNDS, `${n.name} applied ${H * ROUNDS} steps`);
    const w1 = await assemble(a, b);
    const w2 = await assemble(c, d);
    assert.deepEqual(w1, w2, 'both chains hold the same model');
    await ref.run({ type: 'setParams', params: w1 });
    const after0 = (await ref.run({ type: 'evalLoss', inputs: val.inputs.data.slice(), targets: val.targets.data.slice(), B: 8, T })).loss;
    assert.ok(after0 < before0 - 0.3, `validation loss falls: ${before0} → ${after0}`);
    console.log(`# chain DiLoCo: val loss ${before0.toFixed(4)} → ${after0.toFixed(4)}; outer bytes sent by A ${a.wiring!.sync.stats().bytesSent}, by B ${b.wiring!.sync.stats().bytesSent}`);
  });

  it('a holder that does not train is no round member: not counted for the quorum or the hash vote', () => {
    const e = idle!.peerId;
    for (const n of nodes.slice(1, 4).filter((x) => x.span.start === 1)) {
      assert.ok(!n.wiring!.sync.status().members.includes(e), `${n.name}: E is not a member of its current round`);
      for (const r of n.rounds) {
        assert.ok(!r.members.includes(e), `${n.name} round ${r.round}: E is not a member`);
        assert.equal(r.members.length, 2, `${n.name} round ${r.round}: the two trainers are the members`);
        for (const rec of Object.values(r.records)) assert.ok(!JSON.stringify(rec).includes(e), `${n.name} round ${r.round}: E has no contribution on record`);
        assert.ok(!r.late.includes(e));
      }
    }
  });
});
