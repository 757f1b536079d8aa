import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinerMemoryMb } from '../../../src/cli/swarm/index.js';
import { NANO } from '../../../src/model/index.js';
import { layersFor } from '../../../src/pool/capacity.js';
import { replicasFromLayersView, replicasPerLayer } from '../../../src/node/telemetry.js';

describe('layer coverage from spans', () => {
  it('counts holders per layer, gaps as 0, spans clipped to the model', () => {
    assert.deepEqual(replicasPerLayer(4, [{ start: 0, end: 4 }, { start: 0, end: 2 }, null]), [2, 2, 1, 1]);
    assert.deepEqual(replicasPerLayer(4, [{ start: 1, end: 2 }]), [0, 1, 0, 0]);
    assert.deepEqual(replicasPerLayer(3, [{ start: 2, end: 9 }]), [0, 0, 1]);
  });
});

describe('layer coverage from the pool view', () => {
  it('counts live holders (alive or stale) per layer; dead ones and out-of-range layers do not count', () => {
    const h = (state: string) => ({ peerId: 'p', state, tokensPerSec: 1 });
    const view = { layers: [{ layer: 0, holders: [h('alive'), h('stale')] }, { layer: 1, holders: [h('dead')] }, { layer: 2, holders: [h('alive')] }, { layer: 9, holders: [h('alive')] }] };
    assert.deepEqual(replicasFromLayersView(view, 4), [2, 0, 1, 0]);
  });
});

describe('swarm joiner memory', () => {
  it('offers room for ceil(2L/joiners) layers (at most L) plus the embedding and head', () => {
    const c = NANO;
    const L = c.num_hidden_layers;
    const fits = (joiners: number): number => layersFor(c, joinerMemoryMb(c, joiners));
    assert.equal(fits(1), L);
    assert.equal(fits(2), L);
    assert.equal(fits(4), Math.ceil(L / 2));
    assert.equal(fits(2 * L), 1);
    assert.equal(fits(0), L);
    // the joiners alone have room for every layer twice (once when there is only one of them)
    for (const j of [1, 2, 3, 4, 5, 8]) assert.ok(j * fits(j) >= Math.min(2, j) * L, `joiners ${j}`);
  });
});
