import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unigramCrossEntropy } from '../../../src/data/index.js';

describe('unigramCrossEntropy', () => {
  it('matches a hand computation with add-one smoothing', () => {
    // train counts: 0→3, 1→1 of N = 4; V = 4 → p = (c+1)/(N+V): p0 = 4/8, p1 = 2/8, p2 = 1/8
    const ce = unigramCrossEntropy([Uint16Array.of(0, 0, 1, 0)], [Uint16Array.of(0, 1, 2)], 4);
    const want = -(Math.log(4 / 8) + Math.log(2 / 8) + Math.log(1 / 8)) / 3;
    assert.ok(Math.abs(ce - want) < 1e-12, `${ce} vs ${want}`);
  });

  it('is ln V without training data and lower when val looks like train', () => {
    assert.ok(Math.abs(unigramCrossEntropy([], [Uint16Array.of(1, 2, 3)], 4096) - Math.log(4096)) < 1e-12);
    const train = Uint16Array.from({ length: 10_000 }, (_, i) => (i % 10 === 0 ? 7 : 5));
    assert.ok(unigramCrossEntropy([train], [Uint16Array.of(5, 5, 5, 7)], 4096) < 1);
  });

  it('rejects ids outside the vocabulary and empty validation data', () => {
    assert.throws(() => unigramCrossEntropy([Uint16Array.of(9)], [Uint16Array.of(1)], 4));
    assert.throws(() => unigramCrossEntropy([Uint16Array.of(1)], [], 4));
  });
});
