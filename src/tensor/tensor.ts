/**
 * Tensors: a dense row-major typed array plus a shape, nothing else. No strides, no dtype zoo, no autograd tape:
 * ops (src/tensor/ops/) pair forward with backward explicitly, and backends compute over the raw arrays.
 *
 * - `Tensor` holds float32 data (activations, parameters, gradients).
 * - `IntTensor` holds int32 data (token ids, targets).
 *
 * A tensor may view part of a larger buffer (`new Tensor(flat.subarray(off, off + n), shape)`), which is how a model
 * keeps all its parameters in one flat allocation with named views (llm.c style). `reshape` never copies.
 */
import { InvalidArgumentError } from '../util/errors.js';
import { type Rng } from '../util/rng.js';
import { ShapeError, shapeStr } from './errors.js';

export type Shape = readonly number[];

/** Number of elements of a shape; throws a ShapeError on a negative or fractional dimension. */
export function numelOf(shape: Shape, op = 'shape'): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(op, `dimension ${d} is not a non-negative integer`, { shape });
    n *= d;
  }
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolves a reshape target (one dimension may be -1, inferred) against `numel` elements. */
function resolveReshape(op: string, from: Shape, to: Shape, numel: number): number[] {
  const out = [...to];
  let infer = -1;
  let known = 1;
  for (let i = 0; i < out.length; i++) {
    const d = out[i];
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(op, 'at most one dimension may be -1', { from, to });
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(op, `dimension ${d} is not a non-negative integer`, { from, to });
    } else {
      known *= d;
    }
  }
  if (infer >= 0) {
    if (known === 0 || numel % known !== 0) throw new ShapeError(op, `cannot infer -1 for ${numel} elements`, { from, to });
    out[infer] = numel / known;
  } else if (known !== numel) {
    throw new ShapeError(op, `${numel} elements do not fit`, { from, to });
  }
  return out;
}

export class Tensor {
  readonly data: Float32Array;
  readonly shape: Shape;

  /** Wraps `data` (no copy). Its length must equal the product of `shape`. */
  constructor(data: Float32Array, shape: Shape) {
    const n = numelOf(shape, 'Tensor');
    if (data.length !== n) throw new ShapeError('Tensor', `data has ${data.length} elements, shape needs ${n}`, { shape });
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  static zeros(shape: Shape): Tensor {
    return new Tensor(new Float32Array(numelOf(shape, 'Tensor.zeros')), shape);
  }

  static full(shape: Shape, value: number): Tensor {
    return new Tensor(new Float32Array(numelOf(shape, 'Tensor.full')).fill(value), shape);
  }

  /** Copies `values` (rounded to float32). Without a shape the tensor is 1-D. */
  static fromArray(values: ArrayLike<number>, shape: Shape = [values.length]): Tensor {
    const n = numelOf(shape, 'Tensor.fromArray');
    if (values.length !== n) throw new ShapeError('Tensor.fromArray', `${values.length} values do not fill the shape`, { shape });
    return new Tensor(Float32Array.from(values), shape);
  }

  /** Normal(mean, std²) samples from a seeded Rng, so initialisation is reproducible. */
  static randn(shape: Shape, rng: Rng, std = 1, mean = 0): Tensor {
    const t = Tensor.zeros(shape);
    const d = t.data;
    for (let i = 0; i < d.length; i++) d[i] = mean + std * rng.normal();
    return t;
  }

  /** Uniform samples in [lo, hi) from a seeded Rng. */
  static uniform(shape: Shape, rng: Rng, lo = 0, hi = 1): Tensor {
    const t = Tensor.zeros(shape);
    const d = t.data;
    for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rng.next();
    return t;
  }

  get numel(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Size of dimension `dim` (negative counts from the end). */
  size(dim: number): number {
    const i = dim < 0 ? this.shape.length + dim : dim;
    if (i < 0 || i >= this.shape.length) throw new ShapeError('Tensor.size', `no dimension ${dim}`, { shape: this.shape });
    return this.shape[i];
  }

  /** A view with another shape over the same data (no copy); one dimension may be -1. */
  reshape(shape: Shape): Tensor {
    return new Tensor(this.data, resolveReshape('Tensor.reshape', this.shape, shape, this.data.length));
  }

  /** Sets every element to zero, in place. */
  zero(): this {
    this.data.fill(0);
    return this;
  }

  /** A copy with its own data. */
  clone(): Tensor {
    return new Tensor(new Float32Array(this.data), this.shape);
  }

  /** Copies `src` into this tensor; the shapes must be equal. */
  copyFrom(src: Tensor): this {
    if (!sameShape(src.shape, this.shape)) throw new ShapeError('Tensor.copyFrom', 'shapes differ', { dst: this.shape, src: src.shape });
    this.data.set(src.data);
    return this;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  toString(): string {
    return `Tensor${shapeStr(this.shape)}`;
  }
}

/** Int32 tensor: token ids and targets. */
export class IntTensor {
  readonly data: Int32Array;
  readonly shape: Shape;

  constructor(data: Int32Array, shape: Shape) {
    const n = numelOf(shape, 'IntTensor');
    if (data.length !== n) throw new ShapeError('IntTensor', `data has ${data.length} elements, shape needs ${n}`, { shape });
    this.data = data;
    this.shape = Object.freeze([...shape]);
  }

  static zeros(shape: Shape): IntTensor {
    return new IntTensor(new Int32Array(numelOf(shape, 'IntTensor.zeros')), shape);
  }

  /** Copies `values`; each must be an integer in the int32 range (nothing is truncated silently). */
  static fromArray(values: ArrayLike<number>, shape: Shape = [values.length]): IntTensor {
    const n = numelOf(shape, 'IntTensor.fromArray');
    if (values.length !== n) throw new ShapeError('IntTensor.fromArray', `${values.length} values do not fill the shape`, { shape });
    const data = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
        throw new InvalidArgumentError(`IntTensor.fromArray: value ${v} at index ${i} is not an int32`, { index: i });
      }
      data[i] = v;
    }
    return new IntTensor(data, shape);
  }

  get numel(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  reshape(shape: Shape): IntTensor {
    return new IntTensor(this.data, resolveReshape('IntTensor.reshape', this.shape, shape, this.data.length));
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  toString(): string {
    return `IntTensor${shapeStr(this.shape)}`;
  }
}
