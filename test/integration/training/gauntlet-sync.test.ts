/**
 * Gauntlet over the network (issue 9 §2, `--aggregator gauntlet`): three whole-model replicas on real libp2p nodes
 * on 127.0.0.1 (createNodeNetwork, the node's outer-sync wiring: signed contributions, the three outer-sync RPCs),
 * each with its own compute worker. Each holder scores every contribution to a layer on its own worker: the loss of
 * the round's held-out batch with only that layer moved to θ_start − Δ_i, against θ_start (node/diloco.ts
 * workerHeldOutLoss; the batch is fixed by the round number, the same on every holder).
 *
 * Replica c is Byzantine: it trains honestly but sends −2·Δ for every layer (a sign flip, scaled; its inner params
 * report θ = 3·θ_start − 2·θ_local at the close, so its wiring signs and sends the flipped Δ as any node would).
 *
 *   over 3 rounds of H = 3: every layer's aggregate on every holder rejects c's contribution as harmful and never
 *   uses it; the honest holders' contributions are used; every holder (c included: it aggregates as the others do)
 *   ends each round with equal per-layer hashes without the hash vote repairing anything (the holders agreed by
 *   scoring alike); the validation loss falls.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Batch as DataBatch } from '../../../src/data/index.js';
import { makeConfig, type LlamaConfig } from '../../../src/model/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { workerHeldOutLoss, workerParams } from '../../../src/node/diloco.js';
import type { Batch } from '../../../src/training/index.js';
import type { InnerParams } from '../../../src/training/sync.js';
import { learnableBatch, learnableTokens, xorshift } from '../../utils/learnable-stream.js';
import { startWholeReplica, stopWholeReplica, type WholeReplica } from '../../utils/training-replica.js';

const genesis = bundledGenesis();
const CONFIG: LlamaConfig = makeConfig({ hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 64 });
const L = CONFIG.num_hidden_layers;
const H = 3;
const ROUNDS = 3;
const OPTIONS = { innerSteps: H, outerLr: 0.7, outerMomentum: 0.9, aggregator: 'gauntlet', compress: 'int8', outerQuorum: 2 / 3, outerSyncTimeoutMs: 60_000 };
const B = 4;
const T = 16;

const tokens = (rand: () => number, b: number): { inputs: Int32Array; targets: Int32Array } => learnableTokens(rand, b, T);
const rng = xorshift;
const batch = (rand: () => number): Batch => learnableBatch(rand, B, T);
/** The held-out batches every holder scores on (the same seed on every holder, as corpusHeldOut's fixed id). */
const heldOut = (): DataBatch[] => {
  const rand = rng(777);
  return Array.from({ length: 4 }, () => {
    const t = tokens(rand, 8);
    return { batchSize: 8, seqLen: T, inputs: t.inputs, labels: t.targets };
  });
};

/** θ reported at the close is (1 + k)·θ_start − k·θ_local, so Δ = θ_start − θ = −k·(θ_start − θ_local). */
function signFlipped(inner: InnerParams, k: number): InnerParams {
  let start: Float32Array | undefined;
  return {
    getParams: async () => {
      const p = await inner.getParams();
      if (start === undefined) {
        start = p.slice(); // the entry read: θ_start of the first round
        return p;
      }
      const out = new Float32Array(p.length);
      for (let i = 0; i < p.length; i++) out[i] = (1 + k) * start[i]! - k * p[i]!;
      return out;
    },
    setParams: async (p) => {
      start = p.slice(); // the round's result: θ_start of the next
      await inner.setParams(p);
    },
  };
}

type Replica = WholeReplica;

const replicas: Replica[] = [];
const holderSet = new Set<string>();

/** A replica of the whole model among the test's holders (test/utils/training-replica.ts), scoring with Gauntlet. */
function startReplica(name: string, boot: string[], byzantine: boolean): Promise<Replica> {
  const held = heldOut();
  return startWholeReplica({
    name,
    networkId: genesis.networkId,
    config: CONFIG,
    options: OPTIONS,
    boot,
    holders: holderSet,
    seed: replicas.length + 1,
    inner: (compute) => (byzantine ? signFlipped(workerParams(compute), 2) : workerParams(compute)),
    more: ({ compute }) => ({ heldOutLoss: workerHeldOutLoss(compute, () => Promise.resolve(held)) }),
  });
}

async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

const addr = (n: NodeNetwork): string => `${n.p2p.multiaddrs()[0]!}`;

describe('Gauntlet between replicas on real libp2p nodes', () => {
  before(async () => {
    replicas.push(await startReplica('a', [], false));
    replicas.push(await startReplica('b', [addr(replicas[0]!.net)], false));
    replicas.push(await startReplica('c', replicas.map((r) => addr(r.net)), true));
    for (const r of replicas) await waitUntil(() => r.net.liveness.snapshot().filter((p) => p.state === 'alive').length >= 2, 240_000, `${r.name} to see the two others alive`);
  });

  after(async () => {
    for (const r of replicas) await stopWholeReplica(r);
  });

  it('a replica sending sign-flipped Δ is rejected on every layer by every holder, holders agree, the loss falls', async () => {
    const val = tokens(rng(424242), 8);
    const evalLoss = async (): Promise<number> => (await replicas[0]!.compute.run({ type: 'evalLoss', inputs: val.inputs.slice(), targets: val.targets.slice(), B: 8, T })).loss;
    const before0 = await evalLoss();
    await Promise.all(
      replicas.map(async (r) => {
        while (!r.rounds.some((x) => x.round >= ROUNDS - 1)) await r.stepper.trainStep(batch(r.rand));
      }),
    );
    const after0 = await evalLoss();
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const byz = c.net.peerId;
    for (let round = 0; round < ROUNDS; round++) {
      for (const r of replicas) {
        const rep = r.rounds.find((x) => x.round === round)!;
        assert.deepEqual(Object.values(rep.outcome), Array(L + 2).fill('closed'), `round ${round} closed on every layer at ${r.name}`);
        assert.equal(Object.keys(rep.records).length, L + 2, `round ${round}: ${r.name} recorded every layer's aggregate`);
        for (const [layer, rec] of Object.entries(rep.records)) {
          assert.equal(rec.aggregator, 'gauntlet');
          const bad = rec.contributions.find((x) => x.id === byz);
          assert.ok(bad !== undefined, `round ${round} ${layer} at ${r.name}: the Byzantine contribution was received`);
          assert.equal(bad.used, false, `round ${round} ${layer} at ${r.name}: the sign-flipped Δ is not used`);
          assert.equal(bad.reason, 'harmful', `round ${round} ${layer} at ${r.name}: rejected as harmful (score ${bad.score})`);
          assert.ok(rec.contributions.some((x) => x.id !== byz && x.used), `round ${round} ${layer} at ${r.name}: an honest Δ is used`);
        }
        assert.deepEqual(rep.repaired, [], `round ${round} at ${r.name}: the holders agreed without the hash vote`);
      }
      const hs = replicas.map((r) => r.hashes.get(round));
      assert.ok(hs.every((h) => h !== undefined && Object.keys(h).length === L + 2));
      for (const h of hs) assert.deepEqual(h, hs[0], `round ${round}: equal per-layer hashes on every holder`);
    }
    const used = (r: Replica): number => r.rounds.reduce((s, x) => s + x.accepted, 0);
    console.log(`# gauntlet-sync: val loss ${before0.toFixed(4)} → ${after0.toFixed(4)}; honest contributions used per holder over ${ROUNDS} rounds: ${[a, b, c].map(used).join(', ')} of ${2 * ROUNDS * (L + 2)}`);
    assert.ok(after0 < before0 - 0.3, `validation loss falls: ${before0} → ${after0}`);
  });
});
