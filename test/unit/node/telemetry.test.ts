import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinerSpans } from '../../../src/cli/swarm/index.js';
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

describe('swarm spans', () => {
  it('cuts the layers into contiguous parts covering the model, wrapping when there are more nodes than layers', () => {
    assert.deepEqual(joinerSpans(4, 2), [
      { start: 0, end: 2 },
      { start: 2, end: 4 },
    ]);
    assert.deepEqual(joinerSpans(4, 1), [{ start: 0, end: 4 }]);
    assert.deepEqual(replicasPerLayer(4, joinerSpans(4, 3)), [1, 1, 1, 1]);
    assert.deepEqual(replicasPerLayer(4, joinerSpans(4, 6)), [2, 2, 1, 1]);
    assert.deepEqual(joinerSpans(4, 0), []);
  });
});
