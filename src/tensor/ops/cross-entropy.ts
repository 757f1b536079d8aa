/**
 * Softmax cross-entropy over the vocabulary, mean over the counted positions:
 *
 *   logits: [..., V]   targets: [...] (int32, in [0, V) or ignoreIndex)   →   loss = Σ_counted (lse − logit[target]) / count
 *
 * Rows whose target is the ignore index (−100, as PyTorch) contribute nothing and are not counted. When every row is
 * ignored the loss is 0 with count 0 (not NaN) and the gradient is zero. The forward pass also writes the gradient
 * (softmax − onehot)/count, fused, since it has the softmax in hand; backward only scales it by dloss.
 */
import type { Backend } from '../backend.js';
import { ShapeError } from '../errors.js';
import { Tensor, type IntTensor } from '../tensor.js';
import { checkTokenRange, outputTensor, requireSaved } from './check.js';

export const IGNORE_INDEX = -100;

export interface CrossEntropyResult {
  /** Mean loss over the counted rows (0 when count is 0). */
  loss: number;
  /** Rows counted (targets other than the ignore index). */
  count: number;
}

function checkCE(op: string, logits: Tensor, targets: IntTensor, ignoreIndex: number): { N: number; V: number; count: number } {
  const shapes = { logits: logits.shape, targets: targets.shape };
  if (logits.shape.length !== targets.shape.length + 1) throw new ShapeError(op, 'logits must be [..., V] with targets [...]', shapes);
  for (let i = 0; i < targets.shape.length; i++) {
    if (logits.shape[i] !== targets.shape[i]) throw new ShapeError(op, 'leading dimensions of logits and targets differ', shapes);
  }
  const V = logits.shape[logits.shape.length - 1];
  const count = checkTokenRange(op, targets, V, ignoreIndex, { logits: logits.shape });
  return { N: targets.numel, V, count };
}

export class CrossEntropy {
  readonly ignoreIndex: number;
  /** A gradient buffer this op allocated, reused by later forwards of the same size. */
  private own: Tensor | null = null;
  /** The gradient of the last forward, between that forward and the backward that hands it out. */
  private pending: Tensor | null = null;

  constructor(
    private readonly backend: Backend,
    opts: { ignoreIndex?: number } = {},
  ) {
    this.ignoreIndex = opts.ignoreIndex ?? IGNORE_INDEX;
  }

  /**
   * Computes the loss and, unless computeGrad is false, the gradient d loss / d logits into `dlogits` (given, or
   * allocated on first use and reused while the size stays the same: the tensor backward returned last time is
   * overwritten).
   */
  forward(logits: Tensor, targets: IntTensor, opts: { computeGrad?: boolean; dlogits?: Tensor } = {}): CrossEntropyResult {
    const { N, V, count } = checkCE('crossEntropy', logits, targets, this.ignoreIndex);
    if (opts.computeGrad === false) {
      this.pending = null;
      const r = this.backend.crossEntropy(logits.data, targets.data, N, V, this.ignoreIndex, null, 0);
      return { loss: r.count === 0 ? 0 : r.lossSum / r.count, count: r.count };
    }
    let dlogits = opts.dlogits;
    if (dlogits === undefined) {
      if (this.own === null || this.own.numel !== logits.numel) this.own = Tensor.zeros(logits.shape);
      dlogits = this.own.reshape(logits.shape);
    }
    dlogits = outputTensor('crossEntropy', 'dlogits', logits.shape, dlogits);
    const r = this.backend.crossEntropy(logits.data, targets.data, N, V, this.ignoreIndex, dlogits.data, count === 0 ? 0 : 1 / count);
    this.pending = dlogits;
    return { loss: r.count === 0 ? 0 : r.lossSum / r.count, count: r.count };
  }

  /** Returns d(dloss·loss)/d logits [..., V]: the fused gradient, scaled in place by dloss when it is not 1. */
  backward(dloss = 1): Tensor {
    const dlogits = requireSaved('crossEntropy', this.pending);
    if (dloss !== 1) this.backend.scale(dlogits.data, dloss, dlogits.numel);
    this.pending = null;
    return dlogits;
  }
}

/** Mean cross-entropy without any gradient (evaluation). */
export function crossEntropyLoss(backend: Backend, logits: Tensor, targets: IntTensor, ignoreIndex = IGNORE_INDEX): CrossEntropyResult {
  const { N, V } = checkCE('crossEntropy', logits, targets, ignoreIndex);
  const r = backend.crossEntropy(logits.data, targets.data, N, V, ignoreIndex, null, 0);
  return { loss: r.count === 0 ? 0 : r.lossSum / r.count, count: r.count };
}
