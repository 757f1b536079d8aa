/**
 * SwiGLU gating of the Llama MLP:
 *
 *   gate: [..., F]   up: [..., F]   →   out = silu(gate)·up: [..., F],  silu(g) = g·sigmoid(g)
 *
 * Backward: dgate = dout·up·silu'(gate),  dup = dout·silu(gate).
 */
import type { Backend } from '../backend.js';
import { type Tensor } from '../tensor.js';
import { expectSameShape, expectShape, outputTensor, requireSaved } from './check.js';

export class SwiGLU {
  private saved: { gate: Tensor; up: Tensor } | null = null;

  constructor(private readonly backend: Backend) {}

  /** Caches gate and up by reference: leave them unchanged until backward. */
  forward(gate: Tensor, up: Tensor, out?: Tensor): Tensor {
    const o = swiglu(this.backend, gate, up, out);
    this.saved = { gate, up };
    return o;
  }

  /** dout: [..., F] → dgate, dup [..., F] (overwritten when given, allocated otherwise). */
  backward(dout: Tensor, opts: { dgate?: Tensor; dup?: Tensor } = {}): { dgate: Tensor; dup: Tensor } {
    const { gate, up } = requireSaved('swiglu', this.saved);
    expectShape('swiglu.backward', 'dout', dout, gate.shape, { gate: gate.shape });
    const dgate = outputTensor('swiglu.backward', 'dgate', gate.shape, opts.dgate);
    const dup = outputTensor('swiglu.backward', 'dup', gate.shape, opts.dup);
    this.backend.swigluBackward(dout.data, gate.data, up.data, dgate.data, dup.data, gate.numel);
    this.saved = null;
    return { dgate, dup };
  }
}

/** silu(gate)·up without caching anything (inference). */
export function swiglu(backend: Backend, gate: Tensor, up: Tensor, out?: Tensor): Tensor {
  expectSameShape('swiglu', ['gate', 'up'], gate, up);
  const o = outputTensor('swiglu', 'out', gate.shape, out);
  backend.swigluForward(gate.data, up.data, o.data, gate.numel);
  return o;
}
