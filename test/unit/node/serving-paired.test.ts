import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alternate, blockOrder, blockTokS, median, pairedRatio, pooledTokS } from '../../../src/node/serving-bench/paired.js';

describe('serving-bench paired blocks (chain_ratio_4, batch8_ratio)', () => {
  it('rotates the arms each block and reverses every other round: 3 arms over 6 blocks run all six orders', () => {
    const orders = Array.from({ length: 6 }, (_, b) => blockOrder([1, 2, 4], b).join(''));
    assert.deepEqual(orders, ['124', '241', '412', '421', '142', '214']);
    assert.equal(new Set(orders).size, 6);
    // two arms: A B, B A, B A, A B (each first twice, each after the other twice)
    assert.deepEqual(Array.from({ length: 4 }, (_, b) => blockOrder(['a', 'b'], b).join('')), ['ab', 'ba', 'ba', 'ab']);
  });

  it('runs one arm at a time in block order', async () => {
    const seen: string[] = [];
    let running = 0;
    await alternate(['x', 'y'], 3, async (arm, b) => {
      assert.equal(++running, 1);
      await Promise.resolve();
      seen.push(`${arm}${b}`);
      running--;
    });
    assert.deepEqual(seen, ['x0', 'y0', 'y1', 'x1', 'y2', 'x2']);
  });

  it('takes the median of block-by-block ratios, so a drift shared by both arms cancels', () => {
    // the host halves its speed for the last two blocks (memory bandwidth): both arms slow down together
    const one = [100, 100, 100, 50, 50];
    const four = [90, 90, 90, 45, 45];
    const r = pairedRatio(four, one, pooledTokS(four.map((x) => ({ intervals: x, ms: 1000 }))), pooledTokS(one.map((x) => ({ intervals: x, ms: 1000 }))));
    assert.ok(Math.abs(r.median - 0.9) < 1e-12);
    assert.ok(Math.abs(r.min - 0.9) < 1e-12 && Math.abs(r.max - 0.9) < 1e-12);
    // one arm timed only before the drift and the other only after (the pre-session-22 sequence) would read 0.45
    assert.equal(four[4]! / one[0]!, 0.45);
    assert.throws(() => pairedRatio([1], [1, 2], 1, 1), RangeError);
  });

  it('pools blocks by their wall time and rates a block by its intervals', () => {
    assert.equal(blockTokS({ intervals: 31, ms: 310 }), 100);
    // 10 intervals in 100 ms and 10 in 400 ms: 20 in 0.5 s (not the mean of 100 and 25)
    assert.equal(pooledTokS([{ intervals: 10, ms: 100 }, { intervals: 10, ms: 400 }]), 40);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
  });
});
