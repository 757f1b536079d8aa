import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { applyMergesHeap, applyMergesScan, pairKey, type MergeTable } from '../../../src/model/tokenizer/index.js';

/** A random valid merge table over byte ids 10..13 (each merge uses earlier ids). */
function randomTable(pairs: [number, number][]): MergeTable {
  const t: MergeTable = new Map();
  let next = 266;
  for (const [x, y] of pairs) {
    const ids = [10, 11, 12, 13, ...Array.from({ length: next - 266 }, (_, i) => 266 + i)];
    const a = ids[x % ids.length];
    const b = ids[y % ids.length];
    if (t.has(pairKey(a, b))) continue;
    t.set(pairKey(a, b), next++);
  }
  return t;
}

describe('applyMerges', () => {
  it('applies the earliest-learned merge first, left to right', () => {
    // 266 = (10,10), 267 = (266,10): "aaa" → [266, 10] → [267]; "aaaa" → [266, 266]
    const t: MergeTable = new Map([
      [pairKey(10, 10), 266],
      [pairKey(266, 10), 267],
    ]);
    assert.deepEqual(applyMergesScan([10, 10, 10], t), [267]);
    assert.deepEqual(applyMergesScan([10, 10, 10, 10], t), [266, 266]);
    assert.deepEqual(applyMergesHeap([10, 10, 10, 10], t), [266, 266]);
  });

  it('the heap and the scan implementations agree', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(40), fc.nat(40)), { maxLength: 30 }),
        fc.array(fc.integer({ min: 10, max: 13 }), { maxLength: 120 }),
        (pairs, ids) => {
          const t = randomTable(pairs);
          assert.deepEqual(applyMergesHeap([...ids], t), applyMergesScan([...ids], t));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('handles a very long piece (heap path) with the same result as short ones', () => {
    const t: MergeTable = new Map([
      [pairKey(42, 42), 266],
      [pairKey(266, 266), 267],
    ]);
    const out = applyMergesHeap(new Array<number>(200_001).fill(42), t);
    assert.equal(out.length, 50_001);
    assert.ok(out.slice(0, 50_000).every((x) => x === 267));
    assert.equal(out[50_000], 42);
  });
});
