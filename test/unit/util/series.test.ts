import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingBuffer, ThinningSeries } from '../../../src/util/series.js';

describe('RingBuffer', () => {
  it('keeps the last N items with sequence numbers and reports what a slow reader missed', () => {
    const r = new RingBuffer<number>(3);
    for (let i = 0; i < 5; i++) assert.equal(r.push(i * 10), i);
    assert.equal(r.seq, 5);
    assert.equal(r.size, 3);
    assert.deepEqual(r.toArray(), [20, 30, 40]);
    assert.deepEqual(r.since(3), { items: [30, 40], missed: 0 });
    assert.deepEqual(r.since(0), { items: [20, 30, 40], missed: 2 });
    assert.deepEqual(r.since(5), { items: [], missed: 0 });
  });
  it('refuses a capacity that is not a positive integer', () => {
    assert.throws(() => new RingBuffer(0), RangeError);
    assert.throws(() => new RingBuffer(1.5), RangeError);
  });
});

describe('ThinningSeries', () => {
  it('stays within its capacity and spans the whole run at an even spacing', () => {
    const s = new ThinningSeries<number>(8);
    for (let i = 0; i < 1000; i++) s.push(i);
    const pts = s.toArray();
    assert.ok(pts.length <= 8 && pts.length >= 4, `${pts.length} points`);
    assert.equal(pts[0], 0, 'the start of the run is kept');
    const gaps = new Set(pts.slice(1).map((p, i) => p - pts[i]!));
    assert.equal(gaps.size, 1, `even spacing, got gaps ${[...gaps].join(',')}`);
    assert.ok(pts[pts.length - 1]! >= 1000 - [...gaps][0]!, 'the end of the run is near the last point');
    assert.ok(s.generation > 0);
  });
  it('keeps every point until it is full', () => {
    const s = new ThinningSeries<number>(4);
    for (let i = 0; i < 4; i++) assert.equal(s.push(i), true);
    assert.equal(s.generation, 0);
    assert.deepEqual(s.toArray(), [0, 1, 2, 3]);
    s.push(4);
    assert.deepEqual(s.toArray(), [0, 2, 4]);
    assert.equal(s.generation, 1);
  });
});
