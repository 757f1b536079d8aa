/**
 * A node that takes the whole model from peers and trains it (a DiLoCo replica, node/diloco.ts) trains the weights it
 * downloaded and verified, not a fresh seeded initialisation, and the hash it names is theirs. Real nodes on
 * 127.0.0.1: a genesis node serves a fixed checkpoint (seed 1234, not the network's seed 0) and does not train; a
 * joiner pinned to the whole model with training on takes it from the genesis node and trains a few steps. Its
 * worker's weights must then lie near the checkpoint's (a few optimizer steps away) and far from the seed-0 model's,
 * and its announced hash (GET /api/layers, the pool) must be that of the weights in its worker.
 *
 * The network's model need not be the shape `--preset` names (nano): a network founded from a checkpoint of another
 * shape (same tokenizer) has replicas too. Such a replica trains the network's model from the weights it downloaded;
 * before, it asked the worker for a nano model built from them, which failed after the worker had dropped the
 * downloaded model: the replica went on announcing the whole model with nothing loaded to serve it.
 *
 * An `--weights int8` node that takes the whole model does not train (inference only, as when it seeds it): before,
 * the replica path started training it anyway; the trainer failed, but the outer sync it had started served the
 * training-status RPC, so float32 replicas counted it as a member of their outer rounds that never contributes.
 * Likewise a float32 replica whose trainer fails (here: the network's vocabulary is not the corpus's) stops the
 * outer sync it started for it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { makeConfig } from '../../../src/model/config.js';
import { LlamaShard } from '../../../src/model/index.js';
import { createReferenceBackend } from '../../../src/tensor/index.js';
import { sentencePieceTokenizerJson, SP_BASE_VOCAB, writeHfCheckpoint } from '../../utils/hf-checkpoint.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NeuroShardNode } from '../../../src/node/node.js';
import { GENESIS_SEED } from '../../../src/node/pool.js';
import { spanHashOfParams } from '../../../src/pool/index.js';
import { trainingStatus } from '../../../src/protocols/training-sync.js';
import { RpcTransportError } from '../../../src/protocols/rpc/errors.js';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const CONFIG = bundledGenesis().config;
const L = CONFIG.num_hidden_layers;
const STEPS = 3;
const net = poolNet({ prefix: 'replica-weights', tickMs: 400, settleMs: 1000 });

/**
 * Resolves when `n`'s pool adopts a span, bounded. The node registered its own span:held handler (which starts a
 * replica's training) before this one, so trainingDone() is that run once this resolves. Called right after the node
 * starts: a span taken from peers is adopted seconds later (capacity measured, the view settled, the download).
 */
function adopted(n: NeuroShardNode, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no span adopted within ${ms} ms`)), ms);
    n.pool!.events.once('span:held', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

describe('a whole-model replica that took its weights from peers', { timeout: 600_000 }, () => {
  let ckDir = '';
  let ckParams: Float32Array;
  let seeded: Float32Array;

  before(async () => {
    ({ dir: ckDir, params: ckParams } = await genesisCheckpoint(CONFIG, 1234, net.tmp('ckpt')));
    const c = await ComputeClient.start({ threads: 1 });
    try {
      await c.run({ type: 'initModel', config: CONFIG, seed: GENESIS_SEED });
      seeded = (await c.run({ type: 'getParams' })).params;
    } finally {
      await c.close();
    }
  });

  after(() => net.close());

  it('trains the downloaded weights, not a seeded initialisation, and names their hash', async () => {
    const genesis = await net.start('genesis', { genesis: true, checkpoint: ckDir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold the checkpoint');
    const replica = await net.start('replica', { bootstrap: bootAddrs(genesis), span: `0:${L}`, train: true, trainSteps: STEPS, evalEvery: 0, checkpointEvery: 0 });
    await waitFor(() => replica.pool?.span() !== undefined, 120_000, 'the replica to take the whole model from the genesis node');
    assert.equal(replica.pool!.modelHash(), spanHashOfParams(CONFIG, { start: 0, end: L }, ckParams), 'downloaded and verified');
    await waitFor(() => replica.counters.trainingSteps >= STEPS, 300_000, `the replica to train ${STEPS} steps`);
    await replica.trainingDone();
    const held = (await replica.compute.run({ type: 'getParams' })).params;
    const toCk = distance(held, ckParams);
    const toSeed = distance(held, seeded);
    assert.ok(toCk < toSeed, `the replica's weights are ${toCk.toFixed(3)} from the checkpoint's and ${toSeed.toFixed(3)} from the seed-0 model's`);
    const now = (await replica.compute.run({ type: 'modelHash' })).hash;
    await waitFor(() => replica.pool!.modelHash() === now, 20_000, 'the named hash to be that of the weights held');
  });

  it('of a network whose model is not the --preset shape trains that model, and its worker keeps serving it', async () => {
    await net.closeNodes();
    // the bundled tokenizer (vocab 4096), another shape: 3 layers of 128
    const shape = makeConfig({ hidden_size: 128, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 344, max_position_embeddings: 128 });
    const n = shape.num_hidden_layers;
    const { dir, params } = await genesisCheckpoint(shape, 77, net.tmp('ckpt-shape'));
    const genesis = await net.start('genesis-shape', { genesis: true, checkpoint: dir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold the checkpoint');
    const replica = await net.start('replica-shape', { networkId: genesis.genesis.networkId, bootstrap: bootAddrs(genesis), span: `0:${n}`, train: true, trainSteps: STEPS, evalEvery: 0, checkpointEvery: 0 });
    await adopted(replica, 120_000);
    const downloaded = spanHashOfParams(shape, { start: 0, end: n }, params);
    assert.equal(replica.pool!.modelHash(), downloaded);
    const result = await replica.trainingDone();
    // the worker holds the network's model, trained from the downloaded weights (before: no model at all, "no model
    // is loaded in the compute worker", while the replica still announced the whole model)
    const held = (await replica.compute.run({ type: 'getParams' })).params;
    assert.ok(result !== undefined, 'the replica trained (before: "training failed", a nano model of the wrong size)');
    assert.equal(result.step, STEPS);
    assert.equal(held.length, params.length, 'the network\'s shape');
    const c = await ComputeClient.start({ threads: 1 });
    let seededShape: Float32Array;
    try {
      await c.run({ type: 'initModel', config: shape, seed: GENESIS_SEED });
      seededShape = (await c.run({ type: 'getParams' })).params;
    } finally {
      await c.close();
    }
    const toCk = distance(held, params);
    const toSeed = distance(held, seededShape);
    assert.ok(toCk < toSeed / 4, `the replica's weights are ${toCk.toFixed(3)} from the downloaded ones and ${toSeed.toFixed(3)} from a seed-0 model's`);
    const now = (await replica.compute.run({ type: 'modelHash' })).hash;
    assert.notEqual(now, downloaded, 'trained');
    await waitFor(() => replica.pool!.modelHash() === now, 20_000, 'the named hash to be that of the weights held');
  });

  it('with int8 weights holds the downloaded model and does not train (no outer-round membership)', async () => {
    await net.closeNodes();
    const genesis = await net.start('genesis-int8', { genesis: true, checkpoint: ckDir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold the checkpoint');
    const replica = await net.start('replica-int8', { bootstrap: bootAddrs(genesis), span: `0:${L}`, weights: 'int8', train: true, trainSteps: STEPS, evalEvery: 0, checkpointEvery: 0 });
    await adopted(replica, 120_000);
    assert.equal(await replica.trainingDone(), undefined);
    assert.equal(replica.outerSync, undefined, 'no outer sync on an int8 node');
    await assert.rejects(
      genesis.network.rpc.call(replica.network.peerId, trainingStatus, {}, { timeoutMs: 10_000 }),
      (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol',
      'a trainer takes a holder that serves no training status for one that does not train',
    );
    assert.equal((await replica.compute.run({ type: 'modelHash' })).hash, spanHashOfParams(CONFIG, { start: 0, end: L }, ckParams), 'the downloaded weights, quantized');
  });

  it('whose trainer fails leaves the outer rounds it joined for it (no membership, the downloaded model kept)', async () => {
    await net.closeNodes();
    // a Hugging Face checkpoint with its own tokenizer: the bundled corpus's ids (4096) are not this model's
    const shape = makeConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, intermediate_size: 128, vocab_size: SP_BASE_VOCAB, max_position_embeddings: 64, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 });
    const model = new LlamaShard({ config: shape, backend: createReferenceBackend(), seed: 7 });
    const dir = net.tmp('ckpt-hf');
    writeHfCheckpoint(dir, model, { tokenizer: sentencePieceTokenizerJson(), tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }, generationConfig: { eos_token_id: [2], do_sample: false } });
    const n = shape.num_hidden_layers;
    const genesis = await net.start('genesis-hf', { genesis: true, checkpoint: dir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold the checkpoint');
    const replica = await net.start('replica-hf', { networkId: genesis.genesis.networkId, bootstrap: bootAddrs(genesis), span: `0:${n}`, train: true, trainSteps: STEPS, evalEvery: 0, checkpointEvery: 0 });
    await adopted(replica, 120_000);
    assert.equal(await replica.trainingDone(), undefined, 'training failed (VOCAB_MISMATCH)');
    assert.equal(replica.outerSync, undefined, 'the outer sync started for the failed run is stopped');
    await assert.rejects(
      genesis.network.rpc.call(replica.network.peerId, trainingStatus, {}, { timeoutMs: 10_000 }),
      (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol',
      'no training status: trainers do not wait for its contributions',
    );
    assert.equal((await replica.compute.run({ type: 'modelHash' })).hash, spanHashOfParams(shape, { start: 0, end: n }, model.params), 'the downloaded weights, still served');
  });
});
