/**
 * Residual add:  out = a + b, all of one shape (no broadcasting). `out` may be `a` itself (in-place update of the
 * residual stream). Backward is the identity to both branches: da += dout, db += dout; in a pre-norm block the
 * stream's gradient simply flows on, so a model usually passes the same dout tensor to both branches instead.
 */
import type { Backend } from '../backend.js';
import { type Tensor } from '../tensor.js';
import { expectSameShape, outputTensor } from './check.js';

export function residualForward(backend: Backend, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  expectSameShape('residual', ['a', 'b'], a, b);
  const o = outputTensor('residual', 'out', a.shape, out);
  backend.add(a.data, b.data, o.data, a.numel);
  return o;
}

/** Adds dout into each gradient given (da += dout, db += dout). */
export function residualBackward(backend: Backend, dout: Tensor, da: Tensor | null, db: Tensor | null): void {
  if (da !== null) {
    expectSameShape('residual.backward', ['dout', 'da'], dout, da);
    backend.axpy(1, dout.data, da.data, dout.numel);
  }
  if (db !== null) {
    expectSameShape('residual.backward', ['dout', 'db'], dout, db);
    backend.axpy(1, dout.data, db.data, dout.numel);
  }
}
