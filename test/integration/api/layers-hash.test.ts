/**
 * GET /api/layers names the model hash of a genesis node that trains (`npm start`'s default node), not an empty one:
 * the trainer loads that node's weights, so its layer pool never adopts a span with a hash of its own, and the route
 * used to answer the pool's (empty) hash for as long as the node ran. The answer is the hash the node names everywhere
 * (pool/held-hash.ts: the worker's hash of the weights it trains, refreshed as they move), its proofs' too.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { NeuroShardNode } from '../../../src/node/node.js';
import { poolNet, waitFor } from '../../utils/pool-net.js';

const net = poolNet({ prefix: 'layers-hash', tickMs: 400, settleMs: 1000 });

interface LayersBody {
  layers: { layer: number; holders: { peerId: string; state: string }[] }[];
  modelHash: string;
}

async function layersOf(n: NeuroShardNode): Promise<LayersBody | undefined> {
  const res = await fetch(`${n.apiUrl}/api/layers`);
  return res.status === 200 ? ((await res.json()) as LayersBody) : undefined;
}

describe('GET /api/layers on a genesis node that trains', { timeout: 240_000 }, () => {
  after(() => net.close());

  it('answers the model hash that the node announces, once its trainer has loaded the model', async () => {
    // a long target, no checkpoints or evaluations in the way: the node trains as `npm start`'s does
    const node = await net.start('genesis', { genesis: true, train: true, trainSteps: 1_000_000, evalEvery: 0, checkpointEvery: 0 });
    await waitFor(() => node.pool?.span() !== undefined, 60_000, 'the genesis node to hold the whole model');
    let body: LayersBody | undefined;
    await waitFor(
      async () => {
        body = await layersOf(node);
        return body !== undefined && body.modelHash !== '';
      },
      90_000,
      'GET /api/layers to name a model hash',
    );
    assert.match(body!.modelHash, /^[0-9a-f]{64}$/);
    assert.ok(body!.layers.every((l) => l.holders.some((h) => h.peerId === node.network.peerId && h.state === 'alive')));
    // the hash of the weights its worker trains (they move with every step: read both until no step lies between a
    // refresh and the reads; pool/held-hash.ts refreshes every HELD_HASH_REFRESH_MS)
    await waitFor(
      async () => {
        const held = (await node.compute.run({ type: 'modelHash' })).hash;
        return (await layersOf(node))?.modelHash === held && node.tally.modelHash() === held;
      },
      30_000,
      'the answered hash to equal that of the weights held',
    );
  });
});
