import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParamLayout } from '../../../src/model/index.js';
import { aggregate } from '../../../src/training/aggregation/index.js';
import { decodeDelta } from '../../../src/training/compression/index.js';
import { DiLoCoNode, layerRanges } from '../../../src/training/index.js';
import { Rng } from '../../../src/util/rng.js';
import { tinyConfig } from '../model/helpers.js';

describe('DiLoCoNode', () => {
  it('layers are the hash layers, contiguous, tiling the buffer', () => {
    const layout = new ParamLayout(tinyConfig());
    const ls = layerRanges(layout);
    assert.deepEqual(
      ls.map((l) => l.id),
      ['embed', 'layers.0', 'layers.1', 'layers.2', 'head'],
    );
    assert.equal(
      ls.reduce((a, l) => a + l.size, 0),
      layout.size,
    );
    const span = layerRanges(new ParamLayout(tinyConfig(), { start: 1, end: 2 }));
    assert.deepEqual(
      span.map((l) => [l.id, l.offset]),
      [['layers.1', 0]],
    );
  });

  for (const compress of ['none', 'int8', 'sparse'] as const) {
    it(`${compress}: replicas that diverge in the inner loop end the round with bit-identical layer hashes`, () => {
      const layout = new ParamLayout(tinyConfig());
      const init = Float32Array.from({ length: layout.size }, (_, i) => Math.sin(i) * 0.02);
      const nodes = [0, 1, 2].map(() => new DiLoCoNode(layout, init.slice(), { outer: { lr: 0.7, momentum: 0.9 }, compress }));
      for (let round = 0; round < 3; round++) {
        const starts = nodes.map((n) => n.startRound());
        assert.deepEqual(starts[1], starts[0]);
        nodes.forEach((n, j) => {
          const rng = new Rng(round * 10 + j);
          for (let i = 0; i < n.params.length; i++) n.params[i] += rng.normal() * 1e-3;
        });
        const contribs = nodes.map((n) => n.contributions());
        const agg = new Map<string, Float32Array | null>();
        for (const l of nodes[0]!.layers) {
          const cs = contribs.map((c, j) => {
            const lc = c.find((x) => x.layer === l.id)!;
            return { id: `node${j}`, delta: decodeDelta(compress, lc.n, lc.payload) };
          });
          agg.set(l.id, l.id === 'head' && round === 1 ? null : aggregate('mean', cs, l.size).delta);
        }
        const ends = nodes.map((n) => n.finishRound(agg));
        assert.deepEqual(ends[1], ends[0]);
        assert.deepEqual(ends[2], ends[0]);
        if (round === 1) assert.equal(ends[0]!.head, starts[0]!.head); // an abandoned layer goes back to θ_start
        else assert.notEqual(ends[0]!.head, starts[0]!.head);
      }
      assert.equal(nodes[0]!.round, 3);
    });
  }
});
