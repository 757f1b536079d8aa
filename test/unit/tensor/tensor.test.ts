/**
 * Tensor and IntTensor: construction, views without copies, seeded initialisation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IntTensor, Tensor, numelOf, sameShape } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';

describe('Tensor', () => {
  it('zeros, full, fromArray (float32 rounding), numel, ndim, size', () => {
    const z = Tensor.zeros([2, 3, 4]);
    assert.equal(z.numel, 24);
    assert.equal(z.ndim, 3);
    assert.equal(z.size(-1), 4);
    assert.equal(z.size(0), 2);
    assert.throws(() => z.size(3), { code: 'SHAPE_MISMATCH' });
    assert.ok(z.data.every((x) => x === 0));
    assert.ok(Tensor.full([3], 2.5).data.every((x) => x === 2.5));
    const t = Tensor.fromArray([0.1, 2, 3, 4], [2, 2]);
    assert.equal(t.data[0], Math.fround(0.1));
    assert.deepEqual(t.shape, [2, 2]);
    assert.deepEqual(Tensor.fromArray([1, 2, 3]).shape, [3]);
    assert.equal(String(t), 'Tensor[2, 2]');
    assert.equal(numelOf([]), 1);
    assert.equal(Tensor.zeros([0, 5]).numel, 0);
  });

  it('reshape is a view: no copy, one dimension inferred', () => {
    const t = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = t.reshape([3, -1]);
    assert.deepEqual(v.shape, [3, 2]);
    assert.equal(v.data, t.data);
    v.data[5] = 60;
    assert.equal(t.data[5], 60);
    assert.ok(Object.isFrozen(t.shape));
  });

  it('wraps part of a larger buffer (flat parameter layout) without copying', () => {
    const flat = new Float32Array(10);
    const w = new Tensor(flat.subarray(4, 10), [2, 3]);
    w.data.fill(1);
    assert.deepEqual(Array.from(flat), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    w.zero();
    assert.ok(flat.every((x) => x === 0));
  });

  it('clone copies, copyFrom checks the shape', () => {
    const a = Tensor.fromArray([1, 2, 3, 4], [2, 2]);
    const b = a.clone();
    b.data[0] = 9;
    assert.equal(a.data[0], 1);
    a.copyFrom(b);
    assert.equal(a.data[0], 9);
    assert.throws(() => a.copyFrom(Tensor.zeros([4])), { code: 'SHAPE_MISMATCH' });
    assert.ok(sameShape(a.shape, [2, 2]));
    assert.ok(!sameShape(a.shape, [4]));
  });

  it('randn is reproducible from the seed and has the requested moments', () => {
    const a = Tensor.randn([4000], new Rng(42), 0.02);
    const b = Tensor.randn([4000], new Rng(42), 0.02);
    const c = Tensor.randn([4000], new Rng(43), 0.02);
    assert.deepEqual(Array.from(a.data), Array.from(b.data));
    assert.notDeepEqual(Array.from(a.data), Array.from(c.data));
    const mean = a.data.reduce((s, x) => s + x, 0) / a.numel;
    const std = Math.sqrt(a.data.reduce((s, x) => s + (x - mean) ** 2, 0) / a.numel);
    assert.ok(Math.abs(mean) < 0.002, `mean ${mean}`);
    assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);
    const u = Tensor.uniform([1000], new Rng(1), -1, 1);
    assert.ok(u.data.every((x) => x >= -1 && x < 1));
  });

  it('rejects bad shapes', () => {
    assert.throws(() => Tensor.zeros([2, -1]), { code: 'SHAPE_MISMATCH' });
    assert.throws(() => Tensor.zeros([1.5]), { code: 'SHAPE_MISMATCH' });
    assert.throws(() => Tensor.fromArray([1, 2, 3], [2, 2]), { code: 'SHAPE_MISMATCH' });
  });
});

describe('IntTensor', () => {
  it('holds int32 token ids; fromArray refuses non-integers and out-of-range values instead of truncating', () => {
    const t = IntTensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.ok(t.data instanceof Int32Array);
    assert.deepEqual(t.reshape([3, 2]).shape, [3, 2]);
    assert.equal(t.reshape([6]).data, t.data);
    assert.throws(() => IntTensor.fromArray([2 ** 31]), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => IntTensor.fromArray([NaN]), { code: 'INVALID_ARGUMENT' });
    assert.deepEqual(IntTensor.zeros([2]).toArray(), [0, 0]);
  });
});
