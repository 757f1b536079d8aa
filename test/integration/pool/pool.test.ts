/**
 * The layer pool on real nodes (NeuroShardNode: libp2p on 127.0.0.1, compute workers, SQLite ledgers):
 *
 *   1. a genesis node started from a fixed checkpoint and four joiners with memory for half the model each: within a
 *      bound, the joiners alone hold every layer twice, each with weights whose span hash matches the checkpoint's
 *      (fetched from peers over the checkpoint stream and verified);
 *   2. a fifth joiner comes, then the genesis node and a joiner stop: the layers left with one live holder are taken
 *      over by a joiner with a surplus (a restoring move, again with hash-verified weights) until every layer has 2
 *      live holders.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NANO, type LlamaConfig } from '../../../src/model/index.js';
import type { NeuroShardNode } from '../../../src/node/node.js';
import { coverage, extraWeightBytes, layerMb, sliceSpan, spanHashOfParams, type PoolView } from '../../../src/pool/index.js';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;
/** Memory for L/2 layers plus the embedding and head. */
const HALF_MB = Math.ceil(extraWeightBytes(CONFIG) / (1 << 20)) + (L / 2) * layerMb(CONFIG) + 1;

const net = poolNet({ prefix: 'pool', tickMs: 400, settleMs: 5000 });

/** The view of `n` restricted to joiners (everyone but `exclude`), live holders only. */
function liveCoverage(v: PoolView, exclude: Set<string>): number[] {
  return coverage({ numLayers: v.numLayers, holders: v.holders.filter((h) => !exclude.has(h.peerId) && h.state === 'alive') }).replicas;
}

describe('layer pool on real nodes', { timeout: 1_500_000 }, () => {
  let checkpointDir = '';
  let fullParams: Float32Array;
  let genesis: NeuroShardNode;
  const joiners: NeuroShardNode[] = [];

  before(async () => {
    // the fixed genesis checkpoint: the nano shape from seed 1234 (not the network's default seed 0)
    ({ dir: checkpointDir, params: fullParams } = await genesisCheckpoint(CONFIG, 1234, net.tmp('ckpt')));
  });

  after(() => net.close());

  it('genesis from a checkpoint + four half-model joiners: every layer gets 2 live joiner replicas with verified weights', async () => {
    genesis = await net.start('genesis', { genesis: true, checkpoint: checkpointDir });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold its span');
    assert.deepEqual(genesis.pool!.span(), { start: 0, end: L });
    assert.equal(genesis.pool!.modelHash(), spanHashOfParams(CONFIG, { start: 0, end: L }, fullParams));
    const boot = bootAddrs(genesis);
    // joiners arrive one after the other (each placement sees the ones before it)
    const placed: { start: number; end: number }[] = [];
    for (let i = 0; i < 4; i++) {
      const j = await net.start(`j${i}`, { bootstrap: boot, memoryMb: HALF_MB });
      joiners.push(j);
      const t0 = Date.now();
      await waitFor(() => j.pool?.span() !== undefined, 240_000, `joiner ${i} to hold a span`);
      placed.push({ ...j.pool!.span()! });
      if (process.env.POOL_TEST_LOG !== undefined) console.error(`joiner ${i} holds ${JSON.stringify(j.pool!.span())} after ${Date.now() - t0} ms`);
      // "each placement sees the ones before it" needs this joiner's heartbeats to be out in the network before the
      // next one listens (on a loaded machine they were not always: the next joiner then chose on the genesis node's
      // view alone and took the same half)
      await waitFor(() => genesis.pool!.view().holders.some((h) => h.peerId === j.network.peerId && h.state === 'alive'), 60_000, `joiner ${i} alive in the genesis node's view`);
    }
    for (const j of joiners) {
      const s = j.pool!.span()!;
      assert.equal(s.end - s.start, L / 2, 'a joiner with memory for half the model holds half of it');
      // the weights came from peers and match the checkpoint's
      assert.equal(j.pool!.modelHash(), spanHashOfParams(CONFIG, s, sliceSpan(CONFIG, { start: 0, end: L }, fullParams, s)));
    }
    // replicas first: the first two joiners' placements fill the two halves the genesis node alone held (as placed:
    // a throughput move may legitimately shift a joiner later, once the others' measured speeds differ by > 25 %)
    assert.notEqual(placed[0]!.start, placed[1]!.start, `first placements ${JSON.stringify(placed)}`);
    const joinerIds = new Set(joiners.map((j) => j.network.peerId));
    const notJoiners = new Set([genesis.network.peerId]);
    await waitFor(() => genesis.pool!.view().holders.filter((h) => joinerIds.has(h.peerId) && h.state === 'alive').length === 4, 60_000, 'four live joiners in the view');
    assert.ok(Math.min(...liveCoverage(genesis.pool!.view(), new Set())) >= 2, 'every layer has 2 live holders');
    assert.ok(Math.min(...liveCoverage(genesis.pool!.view(), notJoiners)) >= 1, 'the joiners alone hold the whole model');
    // GET /api/layers says the same, with every holder's measured throughput once its record has been fetched
    type LayersBody = { layers: { layer: number; holders: { peerId: string; state: string; tokensPerSec: number }[] }[]; replicasMin: number; modelHash: string };
    let body: LayersBody | undefined;
    await waitFor(
      async () => {
        const res = await fetch(`${genesis.apiUrl}/api/layers`);
        assert.equal(res.status, 200);
        body = (await res.json()) as LayersBody;
        return body.layers.every((l) => l.holders.length >= 2 && l.holders.every((h) => h.tokensPerSec > 0));
      },
      60_000,
      'every holder in GET /api/layers with its measured tokens/s',
    );
    assert.equal(body!.layers.length, L);
    assert.ok(body!.replicasMin >= 2, `every layer has 2 live holders, got ${body!.replicasMin}`);
    assert.equal(body!.modelHash, genesis.pool!.modelHash());
    assert.ok(body!.layers.every((l) => l.holders.some((h) => h.peerId === genesis.network.peerId && h.state === 'alive')));
  });

  it('the genesis node and a joiner stop: a surplus joiner re-covers the lost layers with verified weights', async () => {
    const boot = bootAddrs(genesis);
    const fifth = await net.start('j4', { bootstrap: boot, memoryMb: HALF_MB });
    joiners.push(fifth);
    await waitFor(() => fifth.pool?.span() !== undefined, 240_000, 'the fifth joiner to hold a span');
    const before = joiners.map((j) => ({ j, span: j.pool!.span()! }));
    // stop the genesis node; if every layer still has two live joiners, also stop a joiner of the smaller half
    const count = (start: number): number => before.filter((b) => b.span.start === start).length;
    const stopped = [genesis];
    if (Math.min(count(0), count(L / 2)) >= 2) {
      const small = count(0) <= count(L / 2) ? 0 : L / 2;
      stopped.push(before.find((b) => b.span.start === small)!.j);
    }
    const survivors = joiners.filter((j) => !stopped.includes(j));
    const gone = new Set(stopped.map((n) => n.network.peerId));
    await Promise.all(stopped.map((n) => n.close()));
    const watcher = survivors[0]!;
    await waitFor(() => Math.min(...liveCoverage(watcher.pool!.view(), gone)) >= 2, 240_000, 'every layer back to 2 live replicas');
    const moved = survivors.filter((s) => {
      const b = before.find((x) => x.j === s)!;
      return b.span.start !== s.pool!.span()!.start;
    });
    assert.ok(moved.length >= 1, 'a joiner moved');
    for (const m of survivors) {
      const s = m.pool!.span()!;
      assert.equal(m.pool!.modelHash(), spanHashOfParams(CONFIG, s, sliceSpan(CONFIG, { start: 0, end: L }, fullParams, s)), 'weights verify');
    }
    // the survivors' own spans cover every layer twice
    const own = coverage({ numLayers: L, holders: survivors.map((x) => ({ peerId: x.network.peerId, span: x.pool!.span()!, state: 'alive' as const, tokensPerSec: 1, memoryMb: 0 })) });
    assert.ok(own.replicasMin >= 2);
  });
});
