/**
 * Test helpers for the tensor engine: finite-difference gradient checks and tensor comparisons.
 *
 * Gradient check: the scalar loss is L = Σ out·w with a fixed random weight tensor w (w is the upstream gradient
 * dout handed to backward), evaluated in float64 from the float32 outputs. Each checked input element x is moved to
 * the float32 neighbours x ± eps (the exact step actually taken is used as the denominator), so the only noise is
 * the float32 rounding of the forward outputs: with eps ≈ 1e-2 on O(1) values it stays near 1e-5, while the
 * truncation error of central differences is O(eps²·L''') ≈ 1e-4. Tolerances are stated per test.
 */
import assert from 'node:assert/strict';
import { type Tensor } from '../../../src/tensor/index.js';

export interface GradCheckInput {
  name: string;
  /** The tensor perturbed in place (its data is restored after each probe). */
  x: Tensor;
  /** The analytic gradient of L with respect to x. */
  grad: Tensor;
}

export interface GradCheckOptions {
  /** Recomputes the forward outputs from the current input data. */
  forward: () => Tensor[];
  /** Upstream gradients, one per forward output (L = Σ_i Σ out_i·dout_i). */
  douts: Tensor[];
  inputs: GradCheckInput[];
  eps?: number;
  /** |analytic − numeric| ≤ atol + rtol·|numeric| per element. */
  atol?: number;
  rtol?: number;
  /** Probe at most this many elements per input (evenly spread), to keep big tensors fast. */
  maxProbes?: number;
}

function lossOf(outs: Tensor[], douts: Tensor[]): number {
  let s = 0;
  outs.forEach((o, i) => {
    const d = douts[i];
    assert.equal(o.numel, d.numel, 'forward output and dout sizes differ');
    for (let j = 0; j < o.numel; j++) s += o.data[j] * d.data[j];
  });
  return s;
}

/** Returns the worst error ratio |a − n| / (atol + rtol·|n|) seen (≤ 1 passes); asserts on failure. */
export function gradCheck(opts: GradCheckOptions): number {
  const eps = opts.eps ?? 1e-2;
  const atol = opts.atol ?? 1e-3;
  const rtol = opts.rtol ?? 1e-2;
  let worst = 0;
  for (const inp of opts.inputs) {
    const x = inp.x.data;
    assert.equal(inp.grad.numel, inp.x.numel, `${inp.name}: gradient size differs from the input's`);
    const probes = Math.min(x.length, opts.maxProbes ?? Infinity);
    const step = x.length / probes;
    for (let p = 0; p < probes; p++) {
      const j = Math.floor(p * step);
      const orig = x[j];
      x[j] = orig + eps;
      const hi = x[j];
      const lp = lossOf(opts.forward(), opts.douts);
      x[j] = orig - eps;
      const lo = x[j];
      const lm = lossOf(opts.forward(), opts.douts);
      x[j] = orig;
      const numeric = (lp - lm) / (hi - lo);
      const analytic = inp.grad.data[j];
      const err = Math.abs(analytic - numeric);
      const bound = atol + rtol * Math.abs(numeric);
      worst = Math.max(worst, err / bound);
      assert.ok(err <= bound, `${inp.name}[${j}]: analytic ${analytic} vs numeric ${numeric} (|Δ| ${err.toExponential(2)} > ${bound.toExponential(2)})`);
    }
  }
  return worst;
}

/** Max |a − b| over all elements. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates as a failure
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Asserts |a − b| ≤ atol + rtol·|b| elementwise, naming the first failing index. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    const bound = atol + rtol * Math.abs(b[i]);
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= bound)) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]} (|Δ| ${d.toExponential(2)} > ${bound.toExponential(2)})`);
  }
}
