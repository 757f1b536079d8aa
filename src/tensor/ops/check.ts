/**
 * Shape checks shared by the ops. Each op validates its arguments once, here, with errors that name the op and
 * every shape involved; kernels below never check anything.
 */
import { BackwardBeforeForwardError, ShapeError, TokenRangeError } from '../errors.js';
import { sameShape, Tensor, type IntTensor, type Shape } from '../tensor.js';

/** Throws unless `t` has exactly `expected` (null entries match any size). */
export function expectShape(op: string, name: string, t: { shape: Shape }, expected: readonly (number | null)[], others: Record<string, Shape> = {}): void {
  let ok = t.shape.length === expected.length;
  for (let i = 0; ok && i < expected.length; i++) {
    const e = expected[i];
    if (e !== null && t.shape[i] !== e) ok = false;
  }
  if (!ok) {
    const want = `[${expected.map((e) => (e === null ? '*' : String(e))).join(', ')}]`;
    throw new ShapeError(op, `${name} must have shape ${want}`, { [name]: t.shape, ...others });
  }
}

export function expectSameShape(op: string, names: [string, string], a: { shape: Shape }, b: { shape: Shape }): void {
  if (!sameShape(a.shape, b.shape)) {
    throw new ShapeError(op, `${names[0]} and ${names[1]} must have the same shape`, { [names[0]]: a.shape, [names[1]]: b.shape });
  }
}

export function expectRank(op: string, name: string, t: { shape: Shape }, min: number, max = min): void {
  if (t.shape.length < min || t.shape.length > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw new ShapeError(op, `${name} must have ${want} dimensions`, { [name]: t.shape });
  }
}

/**
 * Uses `out` when given (after checking its shape) or allocates a zeroed tensor of `shape`. Preallocated outputs
 * let a model reuse its activation buffers from step to step.
 */
export function outputTensor(op: string, name: string, shape: Shape, out: Tensor | undefined): Tensor {
  if (out === undefined) return Tensor.zeros(shape);
  if (!sameShape(out.shape, shape)) throw new ShapeError(op, `${name} must have shape [${shape.join(', ')}]`, { [name]: out.shape });
  return out;
}

/** Every id must lie in [0, V) (or equal `ignore` when given). Returns how many ids are not ignored. */
export function checkTokenRange(op: string, ids: IntTensor, V: number, ignore?: number, others: Record<string, Shape> = {}): number {
  const d = ids.data;
  let counted = 0;
  for (let i = 0; i < d.length; i++) {
    const id = d[i];
    if (ignore !== undefined && id === ignore) continue;
    if (id < 0 || id >= V) throw new TokenRangeError(op, id, i, V, { ids: ids.shape, ...others });
    counted++;
  }
  return counted;
}

/** Returns the saved forward state or throws BackwardBeforeForwardError. */
export function requireSaved<T>(op: string, saved: T | null): T {
  if (saved === null) throw new BackwardBeforeForwardError(op);
  return saved;
}

/** Product of all dimensions but the last (the row count N of a [..., C] tensor). */
export function rows(shape: Shape): number {
  let n = 1;
  for (let i = 0; i < shape.length - 1; i++) n *= shape[i];
  return n;
}
