/**
 * RMSNorm with a learned scale (no bias, no mean subtraction), as Llama:
 *
 *   x: [..., C]   w: [C]   →   out = x / sqrt(mean(x²) + eps) · w: [..., C]
 *
 * Forward saves rstd [N] = 1/sqrt(mean(x²) + eps) per row for backward (N = product of the leading dimensions).
 * Backward: dx = rstd·(w·dout − x·rstd²/C·Σ dout·w·x);  dw[C] += Σ_rows dout·x·rstd.
 */
import type { Backend } from '../backend.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { ShapeError } from '../errors.js';
import { type Tensor } from '../tensor.js';
import { expectShape, outputTensor, requireSaved, rows } from './check.js';

/** Llama's default epsilon; a model config sets its own (rms_norm_eps). */
export const DEFAULT_RMSNORM_EPS = 1e-5;

export class RMSNorm {
  private saved: { x: Tensor; w: Tensor; N: number } | null = null;
  /** rstd of the last forward, reused across calls of the same row count (no allocation per step). */
  private rstd = new Float32Array(0);
  readonly eps: number;

  constructor(
    private readonly backend: Backend,
    opts: { eps?: number } = {},
  ) {
    this.eps = opts.eps ?? DEFAULT_RMSNORM_EPS;
    if (!(this.eps >= 0) || !Number.isFinite(this.eps)) throw new InvalidArgumentError(`rmsnorm: eps ${this.eps} must be a finite number ≥ 0`);
  }

  /** Caches x and w by reference: leave them unchanged until backward. */
  forward(x: Tensor, w: Tensor, out?: Tensor): Tensor {
    const C = checkRmsnorm(x, w);
    const N = rows(x.shape);
    const o = outputTensor('rmsnorm', 'out', x.shape, out);
    if (this.rstd.length !== N) this.rstd = new Float32Array(N);
    this.backend.rmsnormForward(x.data, w.data, o.data, this.rstd, N, C, this.eps);
    this.saved = { x, w, N };
    return o;
  }

  /** dout: [..., C]. Adds into dw [C]; returns dx [..., C] (into `opts.dx`, added when accumulateDx). */
  backward(dout: Tensor, dw: Tensor, opts: { dx?: Tensor; accumulateDx?: boolean } = {}): Tensor {
    const { x, w, N } = requireSaved('rmsnorm', this.saved);
    expectShape('rmsnorm.backward', 'dout', dout, x.shape, { x: x.shape });
    expectShape('rmsnorm.backward', 'dw', dw, w.shape);
    const dx = outputTensor('rmsnorm.backward', 'dx', x.shape, opts.dx);
    this.backend.rmsnormBackward(dout.data, x.data, w.data, this.rstd, dx.data, dw.data, N, w.shape[0], opts.accumulateDx === true);
    this.saved = null;
    return dx;
  }
}

function checkRmsnorm(x: Tensor, w: Tensor): number {
  if (w.shape.length !== 1 || x.shape.length < 1 || x.shape[x.shape.length - 1] !== w.shape[0]) {
    throw new ShapeError('rmsnorm', 'x must be [..., C] and w [C]', { x: x.shape, w: w.shape });
  }
  return w.shape[0];
}

/** RMSNorm without caching anything (inference). */
export function rmsnorm(backend: Backend, x: Tensor, w: Tensor, eps: number = DEFAULT_RMSNORM_EPS, out?: Tensor): Tensor {
  const C = checkRmsnorm(x, w);
  const N = rows(x.shape);
  const o = outputTensor('rmsnorm', 'out', x.shape, out);
  backend.rmsnormForward(x.data, w.data, o.data, new Float32Array(N), N, C, eps);
  return o;
}
