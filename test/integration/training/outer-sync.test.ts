/**
 * DiLoCo between replicas on real libp2p nodes on 127.0.0.1 (createNodeNetwork: heartbeats, liveness, the RPC
 * layer, peer scores) with the node's wiring (node/diloco.ts: signed contributions, the three outer-sync RPCs),
 * each replica training a whole tiny model in its own compute worker (solo inner steps; the pipeline is another
 * branch). The holders of each layer are the peers whose heartbeats name the layer and are alive, as in the pool.
 *
 *   1. four replicas run 3 outer rounds with H = 3: after every round every layer's holders have equal hashes,
 *      their workers hold bit-identical weights, and the validation loss falls (the holder set is the four replicas,
 *      as the pool's view would give it);
 *   2. a replica dies mid-round (its network and worker stop): the round closes at the deadline with the quorum
 *      (3 of 4) without it; it restarts with a fresh worker (stale weights) and the same key, enters at the next
 *      boundary that counts it with weights downloaded and verified against the holders' hash, listens to that round
 *      (the survivors neither wait for it nor count its Δ: a rejoin does not stall them) and ends it with their
 *      state;
 *   3. contributions signed by another key than the sender's, for a far round, for a layer the node does not hold,
 *      oversized, or with a non-finite Δ are answered `rejected` and their sender loses peer score.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { makeConfig, type LlamaConfig } from '../../../src/model/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { encodeContribution } from '../../../src/protocols/training-contribution.js';
import { trainingContribution } from '../../../src/protocols/training-sync.js';
import { encodeDelta } from '../../../src/training/compression/index.js';
import type { Batch } from '../../../src/training/index.js';
import { loopbackNodeOptions, LOOPBACK_TUNING } from '../../utils/network.js';
import { learnableBatch, xorshift } from '../../utils/learnable-stream.js';
import { startWholeReplica, stopWholeReplica, type WholeReplica } from '../../utils/training-replica.js';

const genesis = bundledGenesis();
const CONFIG: LlamaConfig = makeConfig({
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 64,
  vocab_size: 4096,
  max_position_embeddings: 64,
});
const L = CONFIG.num_hidden_layers;
const H = 3;
const SYNC_MS = 60_000;
const OPTIONS = { innerSteps: H, outerLr: 0.7, outerMomentum: 0.9, aggregator: 'trimmed-mean', compress: 'int8', outerQuorum: 2 / 3, outerSyncTimeoutMs: SYNC_MS };

const batch = (rand: () => number, b = 4, t = 16): Batch => learnableBatch(rand, b, t);
const rng = xorshift;

type Replica = WholeReplica;

const replicas: Replica[] = [];
const holderSet = new Set<string>();
const extra: NodeNetwork[] = [];

/** A replica of the whole model among the test's holders (test/utils/training-replica.ts). */
function startReplica(name: string, boot: string[], key?: NodeKey, seed = replicas.length + 1): Promise<Replica> {
  return startWholeReplica({ name, networkId: genesis.networkId, config: CONFIG, options: OPTIONS, boot, holders: holderSet, seed, ...(key === undefined ? {} : { key }) });
}

const stopReplica = stopWholeReplica;

/** Steps until the replica has closed `round` (inclusive). */
async function trainThrough(r: Replica, round: number): Promise<void> {
  while (!r.rounds.some((x) => x.round >= round)) await r.stepper.trainStep(batch(r.rand));
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

const addr = (n: NodeNetwork): string => `${n.p2p.multiaddrs()[0]!}`;
const alivePeers = (n: NodeNetwork): number => n.liveness.snapshot().filter((p) => p.state === 'alive').length;

describe('DiLoCo outer sync on real libp2p nodes', { timeout: 900_000 }, () => {
  const valBatch = batch(rng(424242), 8, 16);

  before(async () => {
    const a = await startReplica('a', []);
    replicas.push(a);
    // each replica dials every earlier one (holders call each other directly; a node knows the addresses of the
    // peers it dialled or that dialled it)
    for (const name of ['b', 'c', 'd']) replicas.push(await startReplica(name, replicas.map((r) => addr(r.net))));
    for (const r of replicas) await waitFor(() => alivePeers(r.net) >= 3, 240_000, `${r.name} to see the three others alive`);
  });

  after(async () => {
    for (const r of replicas) await stopReplica(r);
    for (const n of extra) await n.stop().catch(() => {});
  });

  it('four replicas, 3 rounds of H = 3: equal per-layer hashes after every round, identical weights, falling validation loss', async () => {
    const before0 = await replicas[0]!.compute.run({ type: 'evalLoss', inputs: valBatch.inputs.data.slice(), targets: valBatch.targets.data.slice(), B: 8, T: 16 });
    await Promise.all(replicas.map((r) => trainThrough(r, 2)));
    if (process.env.SYNC_TEST_LOG !== undefined) for (const r of replicas) console.error(r.name, r.net.peerId.slice(-6), JSON.stringify(r.rounds.map((x) => ({ ...x, records: undefined }))));
    for (let round = 0; round <= 2; round++) {
      const hs = replicas.map((r) => r.hashes.get(round));
      assert.ok(hs.every((h) => h !== undefined && Object.keys(h).length === L + 2), `round ${round}: every replica reports hashes of ${L + 2} layers`);
      for (const h of hs) assert.deepEqual(h, hs[0], `round ${round}: the holders' hashes are equal`);
      for (const r of replicas) {
        const rep = r.rounds.find((x) => x.round === round)!;
        assert.deepEqual(Object.values(rep.outcome), Array(L + 2).fill('closed'), `round ${round} closed on every layer`);
        assert.equal(rep.accepted, 4 * (L + 2), 'every layer aggregated four contributions');
        assert.deepEqual(rep.repaired, []);
      }
    }
    // consecutive rounds moved the weights
    assert.notDeepEqual(replicas[0]!.hashes.get(0), replicas[0]!.hashes.get(2));
    const params = await Promise.all(replicas.map(async (r) => (await r.compute.run({ type: 'getParams' })).params));
    for (const p of params) assert.ok(Buffer.from(p.buffer, p.byteOffset, p.byteLength).equals(Buffer.from(params[0]!.buffer, params[0]!.byteOffset, params[0]!.byteLength)), 'bit-identical weights in every worker');
    const after0 = await replicas[0]!.compute.run({ type: 'evalLoss', inputs: valBatch.inputs.data.slice(), targets: valBatch.targets.data.slice(), B: 8, T: 16 });
    assert.ok(after0.loss < before0.loss - 0.5, `validation loss falls: ${before0.loss} → ${after0.loss}`);
    const s = replicas[0]!.wiring.sync.stats();
    assert.ok(s.bytesSent > 0 && s.bytesReceived > 0);
  });

  it('a replica dies mid-round: the round closes with the quorum; it restarts and rejoins at a boundary with verified weights', async () => {
    const [a, b, c, d] = replicas as [Replica, Replica, Replica, Replica];
    // d takes one inner step of round 3 and dies
    await d.stepper.trainStep(batch(d.rand));
    await stopReplica(d);
    const t0 = Date.now();
    await Promise.all([a, b, c].map((r) => trainThrough(r, 3)));
    for (const r of [a, b, c]) {
      const rep = r.rounds.find((x) => x.round === 3)!;
      assert.deepEqual(Object.values(rep.outcome), Array(L + 2).fill('closed'), 'closed with the quorum');
      assert.equal(rep.accepted, 3 * (L + 2), 'three contributions per layer');
    }
    assert.ok(Date.now() - t0 >= SYNC_MS - 1000, 'the survivors waited for the deadline, not for the dead replica');
    assert.deepEqual(a.hashes.get(3), b.hashes.get(3));
    assert.deepEqual(a.hashes.get(3), c.hashes.get(3));
    // d restarts: same key, fresh worker with the initial (stale) weights
    const d2 = await startReplica('d', [a, b, c].map((r) => addr(r.net)), d.key, 4);
    replicas[3] = d2;
    // as the layer pool does before it takes a span: hear the network first
    await waitFor(() => alivePeers(d2.net) >= 3, 240_000, 'the restarted replica to see the others alive');
    // the others keep training while d2 enters at a boundary that counts it; then one more round with all four
    let entered = -1;
    const survivors = Promise.all(
      [a, b, c].map(async (r) => {
        for (let round = 4; round < 12; round++) {
          await trainThrough(r, round);
          if (entered >= 0 && round >= entered) return;
        }
      }),
    );
    const dLoop = (async () => {
      await d2.stepper.trainStep(batch(d2.rand)); // enters (download + verify), then one inner step
      entered = d2.wiring.sync.round;
      await trainThrough(d2, entered);
    })();
    await Promise.all([survivors, dLoop]);
    assert.ok(entered >= 4, `d entered at round ${entered}`);
    // the join's cost to the members: how long the survivors' outer sync of each round lasted (the round d entered
    // against the others)
    console.log(`# outer-sync rejoin: d entered round ${entered}; survivors' sync ms by round: ${[a, b, c].map((r) => r.rounds.filter((x) => x.round >= 4).map((x) => `${x.round}:${x.syncMs}`).join(' ')).join(' | ')}`);
    for (const r of [a, b, c]) assert.deepEqual(r.hashes.get(entered), d2.hashes.get(entered), `round ${entered}: the rejoined replica agrees with ${r.name}`);
    const rep = d2.rounds.find((x) => x.round === entered)!;
    assert.deepEqual(rep.repaired, [], 'its own outer step matched (the entry weights were right)');
    // the round d entered at it only listened to (training/rounds.ts `waived`): the survivors did not wait for it
    assert.ok(rep.waived.includes(d2.net.peerId), 'd listened to its entry round');
    for (const r of [a, b, c]) {
      const x = r.rounds.find((y) => y.round === entered)!;
      assert.ok(x.waived.includes(d2.net.peerId), `${r.name} did not wait for d in round ${entered}`);
      assert.equal(x.accepted, 3 * (L + 2), `${r.name}: round ${entered} aggregated the three survivors' contributions`);
    }
  });

  it('bad contributions are rejected and their senders penalised', async () => {
    const target = replicas[0]!;
    const round = target.wiring.sync.round;
    const n = target.wiring.sync.layerSize('head')!;
    const good = (): Float32Array => new Float32Array(n).fill(0.001);
    const cases: { name: string; bytes: (k: NodeKey) => Uint8Array }[] = [
      { name: 'signed by another key', bytes: () => encodeContribution(keyFromPrivate(randomBytes(32)), { networkId: genesis.networkId, round, layer: 'head', compression: 'int8', n, payload: encodeDelta('int8', good()) }) },
      { name: 'for a far round', bytes: (k) => encodeContribution(k, { networkId: genesis.networkId, round: round + 5, layer: 'head', compression: 'int8', n, payload: encodeDelta('int8', good()) }) },
      { name: 'for a layer it does not hold', bytes: (k) => encodeContribution(k, { networkId: genesis.networkId, round, layer: 'layers.9', compression: 'int8', n, payload: encodeDelta('int8', good()) }) },
      { name: 'oversized', bytes: (k) => encodeContribution(k, { networkId: genesis.networkId, round, layer: 'head', compression: 'int8', n, payload: new Uint8Array(4 * n + 64) }) },
      {
        name: 'non-finite',
        bytes: (k) => {
          const p = encodeDelta('int8', good());
          new DataView(p.buffer, p.byteOffset).setFloat32(4, Number.NaN, true); // block 0's scale
          return encodeContribution(k, { networkId: genesis.networkId, round, layer: 'head', compression: 'int8', n, payload: p });
        },
      },
    ];
    for (const c of cases) {
      const key = keyFromPrivate(randomBytes(32));
      const net = await createNodeNetwork({ networkId: genesis.networkId, key, options: loopbackNodeOptions({ bootstrap: [addr(target.net)] }), tuning: LOOPBACK_TUNING });
      extra.push(net);
      await net.start();
      const before0 = target.net.scores.score(net.peerId);
      const res = await net.rpc.call(target.net.peerId, trainingContribution, c.bytes(key), { timeoutMs: 30_000 });
      assert.equal(res.verdict, 'rejected', c.name);
      assert.ok(target.net.scores.score(net.peerId) < before0, `${c.name}: the sender was penalised`);
      await net.stop();
    }
  });
});
