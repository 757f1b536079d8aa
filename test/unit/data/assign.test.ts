import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assignShards } from '../../../src/data/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const ids = Array.from({ length: 25 }, (_, i) => i + 1);
const opts = { manifestName: 'brown-v1' };

describe('assignShards', () => {
  it('is a deterministic permutation of the shards, per node', () => {
    const a = assignShards('node-a', ids, opts);
    assert.deepEqual(a, assignShards('node-a', ids, opts));
    assert.deepEqual([...a].sort((x, y) => x - y), ids);
    assert.notDeepEqual(a, assignShards('node-b', ids, opts));
    assert.deepEqual(assignShards('node-a', ids, { ...opts, count: 3 }), a.slice(0, 3));
  });

  it('spreads nodes evenly over the shards', () => {
    const hits = new Map<number, number>(ids.map((i) => [i, 0]));
    const nodes = 500;
    for (let n = 0; n < nodes; n++) for (const s of assignShards(`12D3KooWnode${n}`, ids, { ...opts, count: 2 })) hits.set(s, hits.get(s)! + 1);
    // 1,000 picks over 25 shards: 40 expected each; binomial sd ≈ 6.2, so [15, 65] is a > 4-sigma band.
    for (const [s, h] of hits) assert.ok(h >= 15 && h <= 65, `shard ${s} picked ${h} times`);
  });

  it('adding a shard moves few nodes (rendezvous property)', () => {
    let moved = 0;
    for (let n = 0; n < 200; n++) {
      const before = assignShards(`n${n}`, ids, { ...opts, count: 1 })[0];
      const after = assignShards(`n${n}`, [...ids, 26], { ...opts, count: 1 })[0];
      if (before !== after) {
        moved++;
        assert.equal(after, 26, 'a node only moves to the new shard');
      }
    }
    assert.ok(moved < 30, `${moved} of 200 nodes moved`);
  });

  it('rejects empty node ids and bad counts', () => {
    assert.throws(() => assignShards('', ids, opts), (e: unknown) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => assignShards('x', ids, { ...opts, count: 0 }), (e: unknown) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});
