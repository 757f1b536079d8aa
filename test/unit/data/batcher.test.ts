import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchStream, sequentialBatches, type DataPosition, type ShardTokens } from '../../../src/data/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

/** Shards whose token at position p is (shard·1000 + p) mod 65536, so a window tells where it came from. */
function shards(lengths: number[]): ShardTokens[] {
  return lengths.map((len, i) => ({ id: i + 1, tokens: Uint16Array.from({ length: len }, (_, p) => ((i + 1) * 1000 + p) % 65536) }));
}

describe('BatchStream', () => {
  const data = shards([300, 157, 420]);

  it('yields B×S inputs with labels shifted by one, from contiguous windows of one shard', () => {
    const s = new BatchStream(data, { batchSize: 3, seqLen: 16, seed: 1 });
    for (let k = 0; k < 20; k++) {
      const b = s.next();
      assert.equal(b.inputs.length, 48);
      assert.equal(b.labels.length, 48);
      for (let r = 0; r < 3; r++) {
        const row = b.inputs.subarray(r * 16, r * 16 + 16);
        const lab = b.labels.subarray(r * 16, r * 16 + 16);
        for (let t = 0; t < 16; t++) {
          assert.equal(lab[t], row[t] + 1, 'label = next token');
          if (t > 0) assert.equal(row[t], row[t - 1] + 1, 'window is contiguous');
        }
        assert.equal(Math.floor(row[0] / 1000), Math.floor(lab[15] / 1000), 'window stays in one shard');
      }
    }
  });

  it('covers each shard’s windows exactly once per epoch', () => {
    const S = 16;
    const s = new BatchStream(data, { batchSize: 1, seqLen: S, seed: 7 });
    const starts = new Set<number>();
    let windows = 0;
    while (s.position().epoch === 0) {
      const b = s.next();
      const key = b.inputs[0];
      assert.ok(!starts.has(key), 'no window twice in an epoch');
      starts.add(key);
      windows++;
    }
    // Each shard of length L gives floor((L − 1 − o)/S) windows for its offset o ∈ [0, S): between these bounds.
    const lo = data.reduce((n, d) => n + Math.floor((d.tokens.length - S) / S), 0);
    const hi = data.reduce((n, d) => n + Math.floor((d.tokens.length - 1) / S), 0);
    assert.ok(windows >= lo && windows <= hi, `${windows} windows in [${lo}, ${hi}]`);
  });

  it('resumes exactly from a JSON-serialised position', () => {
    const a = new BatchStream(data, { batchSize: 4, seqLen: 8, seed: 42 });
    for (let k = 0; k < 37; k++) a.next(); // crosses shard and epoch boundaries
    const pos = JSON.parse(JSON.stringify(a.position())) as DataPosition;
    const b = new BatchStream(data, { batchSize: 4, seqLen: 8, seed: 42, position: pos });
    for (let k = 0; k < 60; k++) {
      const x = a.next();
      const y = b.next();
      assert.deepEqual(y.inputs, x.inputs);
      assert.deepEqual(y.labels, x.labels);
    }
    assert.deepEqual(b.position(), a.position());
    assert.ok(a.position().epoch >= 1);
  });

  it('is reproducible from its seed and differs between seeds', () => {
    const x = new BatchStream(data, { batchSize: 2, seqLen: 8, seed: 3 }).next();
    assert.deepEqual(new BatchStream(data, { batchSize: 2, seqLen: 8, seed: 3 }).next(), x);
    assert.notDeepEqual(new BatchStream(data, { batchSize: 2, seqLen: 8, seed: 4 }).next().inputs, x.inputs);
  });

  it('rejects a position from another stream and bad sizes', () => {
    const pos = new BatchStream(data, { batchSize: 2, seqLen: 8, seed: 3 }).position();
    const mismatch = (e: unknown): boolean => isNeuroShardError(e, 'INVALID_ARGUMENT');
    assert.throws(() => new BatchStream(data, { batchSize: 2, seqLen: 8, seed: 4, position: pos }), mismatch);
    assert.throws(() => new BatchStream(data, { batchSize: 2, seqLen: 9, seed: 3, position: pos }), mismatch);
    assert.throws(() => new BatchStream(data.slice(1), { batchSize: 2, seqLen: 8, seed: 3, position: pos }), mismatch);
    assert.throws(() => new BatchStream(data, { batchSize: 2, seqLen: 8, seed: 3, position: { ...pos, shard: 99 } }), mismatch);
    assert.throws(() => new BatchStream(data, { batchSize: 0, seqLen: 8, seed: 3 }), mismatch);
    assert.throws(() => new BatchStream(shards([10]), { batchSize: 1, seqLen: 8, seed: 3 }), mismatch);
  });
});

describe('sequentialBatches', () => {
  it('cuts windows in order with stride S and drops the incomplete batch', () => {
    const tokens = Uint16Array.from({ length: 50 }, (_, i) => i);
    const batches = sequentialBatches(tokens, { batchSize: 2, seqLen: 8 });
    // (50 − 1) / 8 = 6 windows → 3 batches of 2
    assert.equal(batches.length, 3);
    assert.deepEqual([...batches[0].inputs.subarray(0, 8)], [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual([...batches[0].labels.subarray(0, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual([...batches[0].inputs.subarray(8, 16)], [8, 9, 10, 11, 12, 13, 14, 15]);
    assert.equal(batches[2].labels[15], 48);
    assert.equal(sequentialBatches(tokens, { batchSize: 2, seqLen: 8, maxBatches: 1 }).length, 1);
  });
});
