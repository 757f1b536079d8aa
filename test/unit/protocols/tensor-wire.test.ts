import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import * as pb from '../../../src/protocols/pb/node.js';
import { BadTensorError, floatToHalf, fp16Tensor, fp32Tensor, halfToFloat, int8Tensor, tensorFromPb, tensorToPb, toFloat32 } from '../../../src/protocols/tensor-wire.js';

describe('tensors on the wire', () => {
  it('carries fp32 bit-exactly through protobuf, also from an unaligned offset', () => {
    const x = Float32Array.from([1, -0, NaN, Infinity, 3.14159, -1e-30]);
    const bytes = pb.Tensor.encode(tensorToPb(fp32Tensor(x, [2, 3])));
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes, 1);
    const t = tensorFromPb(pb.Tensor.decode(padded.subarray(1)), 't');
    const y = toFloat32(t);
    assert.deepEqual(new Uint8Array(y.buffer, y.byteOffset, y.byteLength), new Uint8Array(x.buffer));
  });

  it('converts fp16 with round-to-nearest-even (matches the IEEE table for exact halves)', () => {
    assert.equal(floatToHalf(1), 0x3c00);
    assert.equal(floatToHalf(-2), 0xc000);
    assert.equal(floatToHalf(65504), 0x7bff);
    assert.equal(floatToHalf(1e6), 0x7c00);
    assert.equal(floatToHalf(2 ** -24), 0x0001);
    assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (h) => {
        const v = halfToFloat(h);
        if (Number.isNaN(v)) return;
        assert.equal(floatToHalf(v), h === 0x8000 ? 0x8000 : h);
      }),
    );
    const t = fp16Tensor(Float32Array.from([0.5, 1.5, -3]), [3]);
    assert.deepEqual([...toFloat32(t)], [0.5, 1.5, -3]);
  });

  it('quantises int8 with one scale, within half a step', () => {
    const x = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i) * 4);
    const t = int8Tensor(x, [10, 10]);
    const y = toFloat32(tensorFromPb(pb.Tensor.decode(pb.Tensor.encode(tensorToPb(t))), 'q'));
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= t.scale! / 2 + 1e-6);
  });

  it('rejects tensors whose bytes do not match, unknown dtypes, deep ranks and int8 without a scale', () => {
    const bad: pb.Tensor[] = [
      { dtype: pb.DType.FP32, shape: [2, 2], data: new Uint8Array(15), scale: 0 },
      { dtype: pb.DType.DTYPE_UNSPECIFIED, shape: [1], data: new Uint8Array(4), scale: 0 },
      { dtype: pb.DType.FP16, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], data: new Uint8Array(2), scale: 0 },
      { dtype: pb.DType.INT8, shape: [4], data: new Uint8Array(4), scale: 0 },
      { dtype: pb.DType.FP32, shape: [2 ** 31, 2 ** 31], data: new Uint8Array(0), scale: 0 },
    ];
    for (const t of bad) assert.throws(() => tensorFromPb(t, 't'), BadTensorError);
    assert.throws(() => tensorFromPb(undefined, 't'), BadTensorError);
    assert.equal(tensorFromPb(undefined, 't', true), undefined);
  });

  it('refuses a zero-element tensor that names huge dimensions, keeps small empty ones', () => {
    const huge = { dtype: pb.DType.FP32, shape: [0, 2147483647, 2147483647], data: new Uint8Array(0), scale: 0 };
    assert.throws(() => tensorFromPb(huge, 't'), BadTensorError);
    const empty = { dtype: pb.DType.FP32, shape: [0, 768], data: new Uint8Array(0), scale: 0 };
    assert.deepEqual(tensorFromPb(empty, 't').shape, [0, 768]);
  });
});

