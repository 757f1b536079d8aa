/**
 * Matrix product with optionally transposed operands, batched over equal leading dimensions:
 *
 *   a: [...batch, M, K]  (transA: [...batch, K, M])
 *   b: [...batch, K, N]  (transB: [...batch, N, K])
 *   out = op(a)·op(b): [...batch, M, N]
 *
 * The batch dimensions of a and b must be equal: a 2-D b against a batched a is a shape error, not a broadcast
 * (use Linear for x·Wᵀ over rows).
 *
 * Backward, with C = op(A)·op(B):  d op(A) = dC·op(B)ᵀ,  d op(B) = op(A)ᵀ·dC, each transposed back to the stored
 * layout of its operand.
 */
import type { Backend } from '../backend.js';
import { ShapeError } from '../errors.js';
import { type Tensor, type Shape } from '../tensor.js';
import { outputTensor, requireSaved } from './check.js';

export interface MatMulOptions {
  transA?: boolean;
  transB?: boolean;
}

interface MatMulDims {
  batchDims: number[];
  batch: number;
  M: number;
  K: number;
  N: number;
}

function dims(op: string, a: Shape, b: Shape, transA: boolean, transB: boolean): MatMulDims {
  if (a.length < 2 || b.length < 2 || a.length !== b.length) {
    throw new ShapeError(op, 'operands must both have 2 or more dimensions, the same number', { a, b });
  }
  const r = a.length;
  const batchDims = a.slice(0, r - 2);
  for (let i = 0; i < r - 2; i++) {
    if (a[i] !== b[i]) throw new ShapeError(op, `batch dimension ${i} differs (no broadcasting)`, { a, b });
  }
  const M = transA ? a[r - 1] : a[r - 2];
  const K = transA ? a[r - 2] : a[r - 1];
  const Kb = transB ? b[r - 1] : b[r - 2];
  const N = transB ? b[r - 2] : b[r - 1];
  if (K !== Kb) {
    throw new ShapeError(op, `inner dimensions differ: op(a) has K = ${K}, op(b) has K = ${Kb} (transA ${transA}, transB ${transB})`, { a, b });
  }
  let batch = 1;
  for (const d of batchDims) batch *= d;
  return { batchDims, batch, M, K, N };
}

/** out = op(a)·op(b) (+ out when accumulate). No state: use MatMul when a backward pass follows. */
export function matmul(backend: Backend, a: Tensor, b: Tensor, opts: MatMulOptions & { out?: Tensor; accumulate?: boolean } = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const { batchDims, batch, M, K, N } = dims('matmul', a.shape, b.shape, transA, transB);
  const out = outputTensor('matmul', 'out', [...batchDims, M, N], opts.out);
  if (opts.accumulate === true && opts.out === undefined) throw new ShapeError('matmul', 'accumulate needs an out tensor');
  backend.gemm(a.data, b.data, out.data, { transA, transB, M, N, K, alpha: 1, beta: opts.accumulate === true ? 1 : 0, batch });
  return out;
}

export class MatMul {
  private saved: { a: Tensor; b: Tensor; d: MatMulDims } | null = null;
  readonly transA: boolean;
  readonly transB: boolean;

  constructor(
    private readonly backend: Backend,
    opts: MatMulOptions = {},
  ) {
    this.transA = opts.transA ?? false;
    this.transB = opts.transB ?? false;
  }

  /** Caches a and b (by reference: do not modify them before backward). */
  forward(a: Tensor, b: Tensor, out?: Tensor): Tensor {
    const d = dims('matmul', a.shape, b.shape, this.transA, this.transB);
    const o = outputTensor('matmul', 'out', [...d.batchDims, d.M, d.N], out);
    this.backend.gemm(a.data, b.data, o.data, { transA: this.transA, transB: this.transB, M: d.M, N: d.N, K: d.K, alpha: 1, beta: 0, batch: d.batch });
    this.saved = { a, b, d };
    return o;
  }

  /**
   * dout: [...batch, M, N] → gradients of a and b in their stored layouts. Written into `da`/`db` when given
   * (added to them when accumulate), freshly allocated otherwise; `needA`/`needB` false skips one.
   */
  backward(
    dout: Tensor,
    opts: { da?: Tensor; db?: Tensor; accumulate?: boolean; needA?: boolean; needB?: boolean } = {},
  ): { da: Tensor | null; db: Tensor | null } {
    const { a, b, d } = requireSaved('matmul', this.saved);
    const { batch, M, K, N } = d;
    const op = 'matmul.backward';
    outputTensor(op, 'dout', [...d.batchDims, M, N], dout);
    const beta = opts.accumulate === true ? 1 : 0;
    const tA = this.transA;
    const tB = this.transB;
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (opts.needA !== false) {
      da = outputTensor(op, 'da', a.shape, opts.da);
      if (!tA) {
        // da[M, K] = dC[M, N]·op(B)ᵀ
        this.backend.gemm(dout.data, b.data, da.data, { transA: false, transB: !tB, M, N: K, K: N, alpha: 1, beta, batch });
      } else {
        // da[K, M] = op(B)[K, N]·dCᵀ
        this.backend.gemm(b.data, dout.data, da.data, { transA: tB, transB: true, M: K, N: M, K: N, alpha: 1, beta, batch });
      }
    }
    if (opts.needB !== false) {
      db = outputTensor(op, 'db', b.shape, opts.db);
      if (!tB) {
        // db[K, N] = op(A)ᵀ·dC[M, N]
        this.backend.gemm(a.data, dout.data, db.data, { transA: !tA, transB: false, M: K, N, K: M, alpha: 1, beta, batch });
      } else {
        // db[N, K] = dCᵀ·op(A)[M, K]
        this.backend.gemm(dout.data, a.data, db.data, { transA: true, transB: tA, M: N, N: K, K: M, alpha: 1, beta, batch });
      }
    }
    this.saved = null;
    return { da, db };
  }
}
