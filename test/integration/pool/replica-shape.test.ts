/**
 * A whole-model replica of a network whose model is not the bundled shape trains at the network's shape. Real nodes
 * on 127.0.0.1: a genesis node founds a network from a checkpoint of the tiny test shape (1 layer × 32 wide; seed
 * 1234) and does not train; a joiner (`--network-id`: it learns the config from its peers) pinned to the whole model
 * with training on takes it and trains a few steps. Its training run must be of the network's shape, from the
 * downloaded weights, and the hash it names that of the weights in its worker. Before session 27 the run was sized
 * by trainSolo's preset (nano), and failed with a typed error at `initModel` (the downloaded weights are not a
 * nano model's): the replica served, and never trained.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { configsEqual } from '../../../src/model/index.js';
import { TINY_CONFIG } from '../../../src/node/train.js';
import { spanHashOfParams } from '../../../src/pool/index.js';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const STEPS = 3;
const net = poolNet({ prefix: 'replica-shape', tickMs: 400, settleMs: 1000 });

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

describe('a whole-model replica of a network of another shape than the bundled one', { timeout: 300_000 }, () => {
  after(() => net.close());

  it("trains at the network's shape, from the weights it downloaded", async (t) => {
    const ck = await genesisCheckpoint(TINY_CONFIG, 1234, net.tmp('ckpt'));
    const L = TINY_CONFIG.num_hidden_layers;
    const genesis = await net.start('genesis', { genesis: true, checkpoint: ck.dir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold the checkpoint');
    const replica = await net.start('replica', { networkId: genesis.genesis.networkId, bootstrap: bootAddrs(genesis), span: `0:${L}`, train: true, trainSteps: STEPS, evalEvery: 0, checkpointEvery: 0 });
    assert.ok(configsEqual(replica.pool!.modelConfig(), TINY_CONFIG), 'the joiner learned the network config');
    await waitFor(() => replica.pool?.span() !== undefined, 120_000, 'the replica to take the whole model');
    assert.equal(replica.pool!.modelHash(), spanHashOfParams(TINY_CONFIG, { start: 0, end: L }, ck.params), 'downloaded and verified');
    // tiny steps take milliseconds: a run that did not start (a failed one) shows as this bound
    await waitFor(() => replica.counters.trainingSteps >= STEPS, 60_000, `the replica to train ${STEPS} steps`);
    const r = await replica.trainingDone();
    assert.equal(r?.step, STEPS);
    const held = (await replica.compute.run({ type: 'getParams' })).params;
    assert.equal(held.length, ck.params.length, "the network's shape");
    const moved = distance(held, ck.params);
    t.diagnostic(`after ${STEPS} steps: ${moved.toFixed(4)} (L2) from the downloaded weights`);
    assert.ok(moved > 0 && moved < 1, `trained from the downloaded weights (${moved.toFixed(4)} from them)`);
    const now = (await replica.compute.run({ type: 'modelHash' })).hash;
    await waitFor(() => replica.pool!.modelHash() === now, 20_000, 'the named hash to be that of the weights held');
  });
});
