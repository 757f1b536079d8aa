import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import * as pb from '../../../src/protocols/pb/node.js';
import {
  BadTensorError,
  activationTensor,
  bf16Tensor,
  bf16ToFloat,
  floatToBf16,
  floatToHalf,
  fp16Tensor,
  fp32Tensor,
  halfToFloat,
  int8Tensor,
  tensorFromPb,
  tensorToPb,
  toFloat32,
} from '../../../src/protocols/tensor-wire.js';

/** [float32 bits, bfloat16 bits] as PyTorch 1.13's `torch.tensor(x, dtype=float32).to(torch.bfloat16)` gives them. */
const TORCH_BF16: [number, number][] = [
  [0x3f800000, 0x3f80],
  [0xc0000000, 0xc000],
  [0x40490fd0, 0x4049],
  [0x0da24260, 0x0da2],
  [0x806ce3ee, 0x806d],
  [0x7f61b1e6, 0x7f62],
  [0x7f7fffff, 0x7f80], // the largest float rounds up to Infinity
  [0x477fe000, 0x4780],
  [0x49742400, 0x4974],
  [0x7f800000, 0x7f80],
  [0xff800000, 0xff80],
  [0x00000000, 0x0000],
  [0x80000000, 0x8000],
  [0x3f808000, 0x3f80], // a tie: to even (down)
  [0x3f818000, 0x3f82], // a tie: to even (up)
  [0x3f808008, 0x3f81], // just above a tie
  [0x00010000, 0x0001], // a float32 subnormal stays one
  [0x00c00000, 0x00c0],
  [0xbbf5c28f, 0xbbf6],
];

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

  it('converts bf16 as PyTorch does (round to nearest even, Inf, subnormals) and back exactly', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (const [bits, want] of TORCH_BF16) {
      u[0] = bits;
      assert.equal(floatToBf16(f[0]!), want, `0x${bits.toString(16)} → 0x${floatToBf16(f[0]!).toString(16)}, torch 0x${want.toString(16)}`);
    }
    assert.ok(Number.isNaN(bf16ToFloat(floatToBf16(NaN))));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (h) => {
        const v = bf16ToFloat(h);
        if (Number.isNaN(v)) return;
        assert.equal(floatToBf16(v), h);
      }),
    );
    // through protobuf, unaligned: the values are the bf16 roundings, relative error ≤ 2^-9
    const x = Float32Array.from([1, -3.14159, 1e-20, 12345.678, 0]);
    const bytes = pb.Tensor.encode(tensorToPb(bf16Tensor(x, [5])));
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes, 1);
    const t = tensorFromPb(pb.Tensor.decode(padded.subarray(1)), 't');
    assert.equal(t.dtype, 'bf16');
    assert.equal(t.data.byteLength, 10);
    const y = toFloat32(t);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= 2 ** -9 * Math.abs(x[i]!), `${x[i]} → ${y[i]}`);
    assert.equal(activationTensor(x, [5], 'bf16').dtype, 'bf16');
    assert.equal(activationTensor(x, [5], 'f16').dtype, 'fp16');
    assert.equal(activationTensor(x, [5], 'f32').dtype, 'fp32');
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

