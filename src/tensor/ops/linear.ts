/**
 * Linear layer without bias, weights in PyTorch's layout:
 *
 *   x: [..., in]   w: [out, in]   →   y = x·wᵀ: [..., out]
 *
 * Backward:  dw[out, in] += dyᵀ·x  (parameter gradient, accumulated),  dx[..., in] = dy·w.
 */
import type { Backend } from '../backend.js';
import { ShapeError } from '../errors.js';
import { type Tensor } from '../tensor.js';
import { expectShape, outputTensor, requireSaved, rows } from './check.js';

export class Linear {
  private saved: { x: Tensor; w: Tensor; N: number } | null = null;

  constructor(private readonly backend: Backend) {}

  /** Caches x and w by reference: leave them unchanged until backward. */
  forward(x: Tensor, w: Tensor, out?: Tensor): Tensor {
    const y = linear(this.backend, x, w, out);
    this.saved = { x, w, N: rows(x.shape) };
    return y;
  }

  /**
   * dy: [..., out]. Adds dyᵀ·x into dw [out, in]; returns dx [..., in], written into `opts.dx` when given (added to
   * it when accumulateDx) or freshly allocated.
   */
  backward(dy: Tensor, dw: Tensor, opts: { dx?: Tensor; accumulateDx?: boolean } = {}): Tensor {
    const { x, w, N } = requireSaved('linear', this.saved);
    const [O, I] = w.shape;
    const op = 'linear.backward';
    expectShape(op, 'dy', dy, [...x.shape.slice(0, -1), O], { x: x.shape, w: w.shape });
    expectShape(op, 'dw', dw, [O, I], { w: w.shape });
    // dw[O, I] += dy[N, O]ᵀ·x[N, I]
    this.backend.gemm(dy.data, x.data, dw.data, { transA: true, transB: false, M: O, N: I, K: N, alpha: 1, beta: 1 });
    const dx = outputTensor(op, 'dx', x.shape, opts.dx);
    // dx[N, I] = dy[N, O]·w[O, I]
    this.backend.gemm(dy.data, w.data, dx.data, { transA: false, transB: false, M: N, N: I, K: O, alpha: 1, beta: opts.accumulateDx === true ? 1 : 0 });
    this.saved = null;
    return dx;
  }
}

/** Checks x [..., in] against w [out, in] and returns the row count N. */
function checkLinear(op: string, x: Tensor, w: Tensor): number {
  if (w.shape.length !== 2) throw new ShapeError(op, 'w must be [out, in]', { x: x.shape, w: w.shape });
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== w.shape[1]) {
    throw new ShapeError(op, `input channels ${x.shape[x.shape.length - 1]} ≠ weight in-features ${w.shape[1]}`, { x: x.shape, w: w.shape });
  }
  return rows(x.shape);
}

/** y = x·wᵀ without caching anything (inference). */
export function linear(backend: Backend, x: Tensor, w: Tensor, out?: Tensor): Tensor {
  const N = checkLinear('linear', x, w);
  const [O, I] = w.shape;
  const y = outputTensor('linear', 'out', [...x.shape.slice(0, -1), O], out);
  // y[N, O] = x[N, I]·w[O, I]ᵀ
  backend.gemm(x.data, w.data, y.data, { transA: false, transB: true, M: N, N: O, K: I, alpha: 1, beta: 0 });
  return y;
}
