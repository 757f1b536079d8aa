/**
 * A holder of part of the model that trains in a pipeline chain announces the hash of the weights it holds now, not
 * the one it took its span with (session 27). Two real nodes on 127.0.0.1 (libp2p, compute workers, ledgers): the
 * genesis node holds [0, 2) and drives a chain, a joiner holds [2, 4) and is its train-stage hop; both train a few
 * steps inside outer rounds (DiLoCo per span, one holder each) and stop at --train-steps. Once the weights stop
 * moving, within the refresh bound, each node's GET /api/layers `modelHash`, its shard-info answer and the hash its
 * proofs of work claim (the work tally) equal the hash of the weights in its compute worker, which differs from the
 * hash it adopted the span with. Before, all three kept the adoption hash for as long as the node ran (and the
 * driver's proofs never claimed its training: "model hash unchanged").
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { proofClaim, workSnapshot } from '../../../src/ledger/index.js';
import type { NeuroShardNode } from '../../../src/node/node.js';
import { GENESIS_SEED } from '../../../src/node/pool.js';
import * as methods from '../../../src/protocols/methods.js';
import { HELD_HASH_REFRESH_MS } from '../../../src/pool/index.js';
import { bootAddrs, poolNet, waitFor } from '../../utils/pool-net.js';

const net = poolNet({ prefix: 'span-hash', tickMs: 400, settleMs: 1000 });

/** Steps the driver runs (--train-steps), in outer rounds of INNER inner steps. */
const STEPS = 4;
const INNER = 2;
const TRAIN = { train: true, trainSteps: STEPS, innerSteps: INNER, microBatches: 1, evalEvery: 0, checkpointEvery: 0, outerSyncTimeoutMs: 30_000 };

/** The hash of the seeded genesis weights of `span`: what a node that seeds the span adopts it with. */
async function seededHash(span: { start: number; end: number }): Promise<string> {
  const c = await ComputeClient.start({ threads: 1 });
  try {
    await c.run({ type: 'initModel', config: bundledGenesis().config, seed: GENESIS_SEED, span });
    return (await c.run({ type: 'modelHash' })).hash;
  } finally {
    await c.close();
  }
}

async function announced(n: NeuroShardNode): Promise<string | undefined> {
  const res = await fetch(`${n.apiUrl}/api/layers`);
  return res.status === 200 ? ((await res.json()) as { modelHash: string }).modelHash : undefined;
}

describe('a span holder that trains in a chain', { timeout: 420_000 }, () => {
  after(() => net.close());

  it('announces the hash of the weights it holds now (API, shard-info, proofs), not its span\'s at adoption', async () => {
    const adopted = new Map<string, string>([
      ['driver', await seededHash({ start: 0, end: 2 })],
      ['hop', await seededHash({ start: 2, end: 4 })],
    ]);
    const driver = await net.start('driver', { genesis: true, span: '0:2', ...TRAIN });
    await waitFor(() => driver.pool?.span() !== undefined, 60_000, 'the driver to hold [0, 2)');
    const hop = await net.start('hop', { bootstrap: bootAddrs(driver), span: '2:4', ...TRAIN });
    await waitFor(() => hop.pool?.span() !== undefined, 60_000, 'the hop to hold [2, 4)');
    // both seeded their spans and announce those weights' hash at first
    assert.equal(driver.pool!.modelHash(), adopted.get('driver'));
    assert.equal(hop.pool!.modelHash(), adopted.get('hop'));

    // the driver's steps, the hop's applied ones, and every outer round closed on each (weights replaced at each):
    // from then on nothing moves the weights
    const rounds = (n: NeuroShardNode): number => n.chain?.outerSync()?.sync.round ?? 0;
    await waitFor(() => driver.counters.trainingSteps >= STEPS, 300_000, `the driver to run ${STEPS} steps`);
    await waitFor(() => rounds(driver) >= STEPS / INNER && rounds(hop) >= STEPS / INNER, 120_000, `both to close ${STEPS / INNER} outer rounds`);

    for (const n of [driver, hop]) {
      const name = n === driver ? 'driver' : 'hop';
      // training has stopped (--train-steps): the worker's weights no longer move; their hash now
      let now = '';
      await waitFor(
        async () => {
          now = (await n.compute.run({ type: 'modelHash' })).hash;
          return (await announced(n)) === now && n.tally.modelHash() === now;
        },
        2 * HELD_HASH_REFRESH_MS + 10_000,
        `the ${name}'s announced hash to be that of the weights it holds`,
      );
      assert.notEqual(now, adopted.get(name), `the ${name}'s weights moved since it adopted its span`);
      // what a peer asks (shard-info) is the same hash
      const other = n === driver ? hop : driver;
      const fromPeer = await other.network.rpc.call(n.network.peerId, methods.shardInfo, {}, { timeoutMs: 10_000 });
      assert.equal(fromPeer.modelHash, now, `a peer's shard-info of the ${name} names the same hash`);
    }
    // the driver's next proof, from a base before it trained (its adoption hash, no tokens): the chain's steps are
    // claimable training (before: "model hash unchanged", and its training tokens were dropped from every proof)
    const cur = workSnapshot(driver.tally);
    assert.ok(cur.tokens > 0n, 'the driver tallied its chain steps');
    const { claim, why } = proofClaim({ uptimeMs: 60_000, base: { ...cur, tokens: 0n }, cur, modelHashBefore: adopted.get('driver')!, modelHashNow: driver.tally.modelHash(), training: driver.tally.training(), requestIds: [] });
    assert.equal(why, undefined);
    assert.ok(claim.trainingTokens > 0n);
  });
});
