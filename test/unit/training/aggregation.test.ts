import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aggregate, AGGREGATORS, type AggregatorName, type Contribution } from '../../../src/training/aggregation/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const c = (id: string, ...v: number[]): Contribution => ({ id, delta: Float32Array.from(v) });
const vals = (x: Float32Array | null): number[] => [...(x ?? [])];

describe('aggregation', () => {
  it('mean: plain average in canonical order', () => {
    const r = aggregate('mean', [c('b', 3, 0), c('a', 1, 2)], 2);
    assert.deepEqual(vals(r.delta), [2, 1]);
    assert.deepEqual(
      r.record.contributions.map((x) => x.id),
      ['a', 'b'],
    );
    assert.equal(r.record.used, 2);
  });

  it('rejects NaN, Infinity, wrong sizes and duplicate ids under every aggregator, never propagating them', () => {
    for (const name of AGGREGATORS) {
      const cs = [c('a', 1, 1), c('b', 1, 1), c('c', 1, 1), c('d', NaN, 1), c('e', 1, Infinity), c('f', 1), c('a', 100, 100)];
      const r = aggregate(name, cs, 2, { lossAfter: () => 0, baseLoss: 1 });
      assert.deepEqual(vals(r.delta), [1, 1], name);
      const why = Object.fromEntries(r.record.contributions.filter((x) => !x.used && x.reason !== 'krum_score').map((x) => [x.id + (x.reason === 'duplicate' ? '2' : ''), x.reason]));
      assert.deepEqual(why, { a2: 'duplicate', d: 'non_finite', e: 'non_finite', f: 'wrong_size' }, name);
      assert.equal(r.record.received, 7);
      const krumDrops = name === 'krum' ? 2 : name === 'multi-krum' ? 1 : 0; // of the 3 equal ones Krum keeps 1, Multi-Krum k − f = 2
      assert.equal(r.record.rejected, 4 + krumDrops, name);
    }
  });

  it('returns no delta when nothing survives', () => {
    const r = aggregate('trimmed-mean', [c('a', NaN)], 1);
    assert.equal(r.delta, null);
    assert.equal(r.record.used, 0);
    assert.equal(aggregate('mean', [], 3).delta, null);
  });

  it('trimmed mean: drops ⌊k/3⌋ at each end of every coordinate, ties broken by canonical order', () => {
    // k = 4, b = 1: coordinate 0 sorted 1,2,3,100 → (2+3)/2; coordinate 1 all equal 5 (ties) → 5
    const r = aggregate('trimmed-mean', [c('a', 1, 5), c('b', 2, 5), c('c', 3, 5), c('d', 100, 5)], 2);
    assert.deepEqual(vals(r.delta), [2.5, 5]);
    // coordinate 1's tie keeps b and c (a is the "smallest" by order, d the largest): a kept 0/2, b 2/2, c 2/2, d 0/2… except
    // coordinate 0 keeps b and c too
    assert.deepEqual(
      r.record.contributions.map((x) => x.weight),
      [0, 1, 1, 0],
    );
    // k = 6, b = 2: keeps the middle two
    const r6 = aggregate('trimmed-mean', [c('a', -50), c('b', 1), c('c', 2), c('d', 3), c('e', 4), c('f', 50)], 1);
    assert.deepEqual(vals(r6.delta), [2.5]);
    // k = 2: nothing can be trimmed (b ≤ (k−1)/2)
    assert.deepEqual(vals(aggregate('trimmed-mean', [c('a', 0), c('b', 1)], 1).delta), [0.5]);
  });

  it('median: odd and even counts, ties', () => {
    assert.deepEqual(vals(aggregate('median', [c('a', 9, 1), c('b', 1, 1), c('c', 5, 2)], 2).delta), [5, 1]);
    assert.deepEqual(vals(aggregate('median', [c('a', 9), c('b', 1), c('c', 5), c('d', 3)], 1).delta), [4]);
    assert.deepEqual(vals(aggregate('median', [c('a', 2), c('b', 2), c('c', 2), c('d', 7)], 1).delta), [2]);
  });

  it('krum and multi-krum: hand-computed scores, outlier rejected, ties by canonical order', () => {
    // 1-D points 0, 1, 2, 10; k = 4, f = 1, neighbours = 1: scores 1, 1, 1, 64
    const cs = [c('a', 0), c('b', 1), c('c', 2), c('d', 10)];
    const k = aggregate('krum', cs, 1);
    assert.deepEqual(
      k.record.contributions.map((x) => x.score),
      [1, 1, 1, 64],
    );
    assert.deepEqual(vals(k.delta), [0]); // tie between a, b, c: a comes first
    assert.deepEqual(
      k.record.contributions.map((x) => x.used),
      [true, false, false, false],
    );
    assert.equal(k.record.contributions[3]!.reason, 'krum_score');
    const mk = aggregate('multi-krum', cs, 1); // m = k − f = 3
    assert.deepEqual(vals(mk.delta), [1]);
    assert.deepEqual(
      mk.record.contributions.map((x) => x.used),
      [true, true, true, false],
    );
    assert.deepEqual(vals(aggregate('multi-krum', cs, 1, { multiKrumM: 2 }).delta), [0.5]);
  });

  it('geometric median: the middle point on a line, robust to one far outlier', () => {
    const r = aggregate('geometric-median', [c('a', 0, 0), c('b', 1, 0), c('c', 2, 0)], 2);
    assert.ok(Math.abs(r.delta![0]! - 1) < 1e-4 && Math.abs(r.delta![1]!) < 1e-6, `got ${vals(r.delta)}`);
    const o = aggregate('geometric-median', [c('a', 1, 1), c('b', 1, 1), c('c', 1, 1), c('d', 1e6, -1e6)], 2);
    assert.ok(Math.abs(o.delta![0]! - 1) < 1e-3 && Math.abs(o.delta![1]! - 1) < 1e-3, `got ${vals(o.delta)}`);
    assert.ok(o.record.contributions[3]!.weight < 1e-3);
  });

  it('centered clipping: hand-computed one-iteration case', () => {
    // centre 0, τ = 1: points 0.5 (kept whole) and 4 (clipped to 1): v = (0.5 + 1)/2 = 0.75
    const r = aggregate('centered-clip', [c('a', 0.5), c('b', 4)], 1, { center: new Float32Array([0]), clipRadius: 1, clipIterations: 1 });
    assert.deepEqual(vals(r.delta), [0.75]);
    assert.deepEqual(
      r.record.contributions.map((x) => x.weight),
      [1, 0.25],
    );
    // default: from the median, τ = median distance; a huge outlier moves the result by at most τ/k per iteration
    const d = aggregate('centered-clip', [c('a', 1), c('b', 1.2), c('c', 0.8), c('d', 1000)], 1);
    assert.ok(Math.abs(d.delta![0]! - 1) < 0.5, `got ${vals(d.delta)}`);
  });

  it('gauntlet: drops contributions that do not lower the held-out loss, with their improvement as score', () => {
    // held-out loss after applying Δ: (1 − Δ)², base 1 (Δ = 0): improvement 1 − (1 − Δ)²
    const lossAfter = (d: Float32Array): number => (1 - d[0]!) ** 2;
    const r = aggregate('gauntlet', [c('a', 0.5), c('b', 1), c('c', -1), c('d', 2.5)], 1, { lossAfter, baseLoss: 1 });
    assert.deepEqual(vals(r.delta), [0.75]);
    assert.deepEqual(
      r.record.contributions.map((x) => [x.id, x.used, x.reason]),
      [
        ['a', true, undefined],
        ['b', true, undefined],
        ['c', false, 'harmful'],
        ['d', false, 'harmful'],
      ],
    );
    assert.deepEqual(
      r.record.contributions.map((x) => x.score),
      [0.75, 1, -3, -1.25],
    );
    // a non-finite loss counts as harmful; all harmful → no delta
    assert.equal(aggregate('gauntlet', [c('a', 1)], 1, { lossAfter: () => NaN, baseLoss: 1 }).delta, null);
    assert.throws(() => aggregate('gauntlet', [c('a', 1)], 1), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });

  it('is independent of arrival order (bit-identical on every holder)', () => {
    const cs: Contribution[] = [];
    for (let j = 0; j < 6; j++) cs.push({ id: `p${j}`, delta: Float32Array.from({ length: 50 }, (_, i) => Math.sin(i * 7.1 + j * 3.3) * 10 ** (j - 3)) });
    for (const name of AGGREGATORS.filter((n) => n !== 'gauntlet') as AggregatorName[]) {
      const a = aggregate(name, cs, 50);
      const b = aggregate(name, [...cs].reverse(), 50);
      assert.deepEqual(Buffer.from(a.delta!.buffer), Buffer.from(b.delta!.buffer), name);
      assert.deepEqual(a.record, b.record, name);
    }
  });

  it('refuses unknown aggregators and bad options', () => {
    assert.throws(() => aggregate('bogus' as AggregatorName, [], 1), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => aggregate('mean', [], 1, { byzantineFraction: 0.5 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});
