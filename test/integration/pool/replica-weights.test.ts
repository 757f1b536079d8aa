/**
 * A node that takes the whole model from peers and trains it (a DiLoCo replica, node/diloco.ts) trains the weights it
 * downloaded and verified, not a fresh seeded initialisation, and the hash it names is theirs. Real nodes on
 * 127.0.0.1: a genesis node serves a fixed checkpoint (seed 1234, not the network's seed 0) and does not train; a
 * joiner pinned to the whole model with training on takes it from the genesis node and trains a few steps. Its
 * worker's weights must then lie near the checkpoint's (a few optimizer steps away) and far from the seed-0 model's,
 * and its announced hash (GET /api/layers, the pool) must be that of the weights in its worker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { GENESIS_SEED } from '../../../src/node/pool.js';
import { spanHashOfParams } from '../../../src/pool/index.js';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const CONFIG = bundledGenesis().config;
const L = CONFIG.num_hidden_layers;
const STEPS = 3;
const net = poolNet({ prefix: 'replica-weights', tickMs: 400, settleMs: 1000 });

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
});
