/**
 * DiLoCo's outer optimizer: SGD with Nesterov momentum applied to the pseudo-gradient
 *
 *   Δ = θ_start − θ_local            (per layer, after H inner steps; aggregated across the layer's holders)
 *   buf ← μ·buf + Δ                  (buf = Δ on the first round, as torch.optim.SGD)
 *   θ   ← θ_start − η·(Δ + μ·buf)    (nesterov = true, dampening 0, no weight decay)
 *
 * exactly torch.optim.SGD(params=[θ_start], lr=η, momentum=μ, nesterov=True) stepped once with Δ as the gradient
 * (test fixture: scripts/reference/outer_nesterov.py). Every operation is rounded to float32 in a fixed order
 * (Math.fround after each multiply and add, elementwise, no reduction), so every holder of a layer that starts
 * from the same θ_start, momentum buffer and aggregated Δ ends with bit-identical weights, on any machine.
 *
 * Defaults (`--outer-lr` 0.7, `--outer-momentum` 0.9) live in src/node/options.ts; the functions here take them
 * explicitly.
 */
import { InvalidArgumentError } from '../util/errors.js';

export interface OuterOptions {
  /** η: outer learning rate. */
  lr: number;
  /** μ: Nesterov momentum. */
  momentum: number;
}

export function checkOuterOptions(o: OuterOptions): void {
  if (!Number.isFinite(o.lr) || o.lr < 0) throw new InvalidArgumentError(`outer lr ${o.lr} must be a finite number ≥ 0`, { lr: o.lr });
  if (!(o.momentum >= 0 && o.momentum < 1)) throw new InvalidArgumentError(`outer momentum ${o.momentum} must be in [0, 1)`, { momentum: o.momentum });
}

/** Δ = θ_start − θ_local, float32 (one rounding per element). */
export function pseudoGradient(thetaStart: Float32Array, thetaLocal: Float32Array, out = new Float32Array(thetaStart.length)): Float32Array {
  if (thetaLocal.length !== thetaStart.length || out.length !== thetaStart.length) {
    throw new InvalidArgumentError(`pseudoGradient: θ_start has ${thetaStart.length} elements, θ_local ${thetaLocal.length}, out ${out.length}`);
  }
  for (let i = 0; i < thetaStart.length; i++) out[i] = thetaStart[i]! - thetaLocal[i]!; // float32 store rounds once
  return out;
}

/**
 * One outer step for one layer. Writes the new weights into `out` (may be `thetaStart` itself) and updates `buf` in
 * place; `buf === null` means the first round (the buffer is created from Δ, as PyTorch does). Returns the buffer.
 * Shapes: every array has the layer's element count n.
 */
export function nesterovOuterStep(
  thetaStart: Float32Array,
  delta: Float32Array,
  buf: Float32Array | null,
  o: OuterOptions,
  out: Float32Array = thetaStart,
): Float32Array {
  checkOuterOptions(o);
  const n = thetaStart.length;
  if (delta.length !== n || out.length !== n || (buf !== null && buf.length !== n)) {
    throw new InvalidArgumentError(`nesterovOuterStep: θ_start has ${n} elements, Δ ${delta.length}, buf ${buf?.length ?? 'new'}, out ${out.length}`);
  }
  const f = Math.fround;
  const mu = f(o.momentum);
  const lr = f(o.lr);
  const b = buf ?? new Float32Array(delta); // first step: buf = clone(Δ)
  for (let i = 0; i < n; i++) {
    const g = delta[i]!;
    const m = buf === null ? b[i]! : f(f(mu * b[i]!) + g);
    b[i] = m;
    const d = f(g + f(mu * m));
    out[i] = f(thetaStart[i]! - f(lr * d));
  }
  return b;
}

/**
 * The outer optimizer of one node: a momentum buffer per layer it holds (layer names are the model's layer ids),
 * kept across rounds. `state()`/`loadState()` make it part of a checkpoint; a node joining at a round boundary
 * takes the buffer with the weights (both are the same on every honest holder).
 */
export class OuterOptimizer {
  private readonly bufs = new Map<string, Float32Array>();
  private rounds = 0;

  constructor(readonly options: OuterOptions) {
    checkOuterOptions(options);
  }

  /** Rounds applied. */
  get round(): number {
    return this.rounds;
  }

  /** θ_start (in place) ← θ_start − η·nesterov(Δ) for one layer. */
  applyLayer(layer: string, thetaStart: Float32Array, delta: Float32Array, out: Float32Array = thetaStart): void {
    const buf = this.bufs.get(layer) ?? null;
    const nb = nesterovOuterStep(thetaStart, delta, buf, this.options, out);
    if (buf === null) this.bufs.set(layer, nb);
  }

  /** Marks the end of a round (after every layer has been applied). */
  finishRound(): void {
    this.rounds++;
  }

  /** Replaces one layer's buffer (null: none, as before the first round). */
  setBuffer(layer: string, buf: Float32Array | null): void {
    if (buf === null) this.bufs.delete(layer);
    else this.bufs.set(layer, new Float32Array(buf));
  }

  buffer(layer: string): Float32Array | undefined {
    return this.bufs.get(layer);
  }

  state(): { round: number; buffers: Record<string, Float32Array> } {
    const buffers: Record<string, Float32Array> = {};
    for (const [k, v] of this.bufs) buffers[k] = new Float32Array(v);
    return { round: this.rounds, buffers };
  }

  loadState(s: { round: number; buffers: Record<string, Float32Array> }): void {
    if (!Number.isInteger(s.round) || s.round < 0) throw new InvalidArgumentError(`outer optimizer state: round ${s.round} must be an integer ≥ 0`);
    this.bufs.clear();
    for (const [k, v] of Object.entries(s.buffers)) this.bufs.set(k, new Float32Array(v));
    this.rounds = s.round;
  }
}
