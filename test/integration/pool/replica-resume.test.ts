/**
 * A whole-model replica whose data dir holds an older checkpoint of its own (it trained before, stopped, and the
 * network moved on) trains the weights it takes from peers, not that checkpoint's. Real nodes on 127.0.0.1, in two
 * acts on the same data dirs: first a genesis node serves checkpoint A (seed 1234) and does not train, and the replica
 * takes the whole model from it, trains a few steps and stops (its checkpoint: near A, with optimizer moments). Then
 * the genesis node comes back serving checkpoint B (seed 4321: the network's weights have moved), and the replica
 * comes back. Its worker's weights must then lie near B and far from its own checkpoint's; that checkpoint's run goes
 * on (its step count), with a fresh optimizer (B is of no closed outer round, so the old moments are not of its
 * weights); and the hash it names is that of the weights in its worker. Before session 27 it loaded its checkpoint
 * over the downloaded weights and trained those, naming B's hash.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { latestCheckpoint } from '../../../src/model/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { CHECKPOINTS_DIR } from '../../../src/node/model-limits.js';
import { spanHashOfParams } from '../../../src/pool/index.js';
import { join } from 'node:path';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const CONFIG = bundledGenesis().config;
const L = CONFIG.num_hidden_layers;
const OLD_STEPS = 1;
const STEPS = 3;
const net = poolNet({ prefix: 'replica-resume', tickMs: 400, settleMs: 1000 });

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

describe('a whole-model replica with an older checkpoint of its own in its data dir', { timeout: 600_000 }, () => {
  after(() => net.close());

  it('trains the network weights it downloaded, goes on with its run, and starts the optimizer fresh', async (t) => {
    const a = await genesisCheckpoint(CONFIG, 1234, net.tmp('ckpt-a'));
    const b = await genesisCheckpoint(CONFIG, 4321, net.tmp('ckpt-b'));
    const genesisDir = net.tmp('genesis');
    const replicaDir = net.tmp('replica');
    const span = `0:${L}`;

    // act 1: the replica trains the network's weights A for a while and stops (a checkpoint at its target)
    let genesis = await net.start('genesis', { dataDir: genesisDir, genesis: true, checkpoint: a.dir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold checkpoint A');
    let replica = await net.start('replica', { dataDir: replicaDir, bootstrap: bootAddrs(genesis), span, train: true, trainSteps: OLD_STEPS, evalEvery: 0, checkpointEvery: 0 });
    await waitFor(() => replica.pool?.span() !== undefined, 120_000, 'the replica to take A');
    await waitFor(() => replica.counters.trainingSteps >= OLD_STEPS, 300_000, `the replica to train ${OLD_STEPS} step`);
    const first = await replica.trainingDone();
    assert.equal(first?.step, OLD_STEPS);
    const oldDir = latestCheckpoint(join(replicaDir, CHECKPOINTS_DIR));
    assert.ok(oldDir !== null, 'the replica cut a checkpoint of its own');
    await net.closeNodes();
    const c = await ComputeClient.start({ threads: 1 });
    let oldParams: Float32Array;
    try {
      assert.equal((await c.run({ type: 'loadCheckpoint', dir: oldDir })).optimizerRestored, true, 'with moments');
      oldParams = (await c.run({ type: 'getParams' })).params;
    } finally {
      await c.close();
    }

    // act 2: the network's weights are B now; the replica comes back on its data dir
    genesis = await net.start('genesis', { dataDir: genesisDir, genesis: true, checkpoint: b.dir, train: false });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold checkpoint B');
    replica = await net.start('replica', { dataDir: replicaDir, bootstrap: bootAddrs(genesis), span, train: true, trainSteps: OLD_STEPS + STEPS, evalEvery: 0, checkpointEvery: 0 });
    await waitFor(() => replica.pool?.span() !== undefined, 120_000, 'the replica to take B');
    assert.equal(replica.pool!.modelHash(), spanHashOfParams(CONFIG, { start: 0, end: L }, b.params), 'downloaded and verified');
    await waitFor(() => replica.counters.trainingSteps >= OLD_STEPS + STEPS, 300_000, `the replica to train to step ${OLD_STEPS + STEPS}`);
    const r = await replica.trainingDone();
    assert.ok(r !== undefined, 'training ran to its end');
    assert.equal(r.step, OLD_STEPS + STEPS, "its checkpoint's run went on from its step");
    const held = (await replica.compute.run({ type: 'getParams' })).params;
    const toNet = distance(held, b.params);
    const toOld = distance(held, oldParams);
    t.diagnostic(`after ${STEPS} steps: ${toNet.toFixed(3)} (L2) from the network's weights, ${toOld.toFixed(3)} from its old checkpoint's`);
    assert.ok(toNet < toOld / 10, `the replica's weights are ${toNet.toFixed(3)} from the network's and ${toOld.toFixed(3)} from its old checkpoint's`);
    const info = await replica.compute.run({ type: 'trainerInfo' });
    assert.equal(info.step, OLD_STEPS + STEPS, "the trainer's step (the schedule's) goes on from the checkpoint's");
    assert.equal(info.appliedSteps, STEPS, 'a fresh optimizer: its moments (and bias correction) began with this run');
    const now = (await replica.compute.run({ type: 'modelHash' })).hash;
    await waitFor(() => replica.pool!.modelHash() === now, 20_000, 'the named hash to be that of the weights held');
  });
});
