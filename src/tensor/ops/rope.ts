/**
 * Rotary position embedding in the rotate-half layout of Hugging Face Llama, applied in place:
 *
 *   x: [B, T, H, D] (q or k, projection layout), position p = posOffset + t (or positions[t])
 *   for i < D/2, f = p · theta^(−2i/D):  x[i] ← x[i]·cos f − x[i+D/2]·sin f,  x[i+D/2] ← x[i+D/2]·cos f + x[i]·sin f
 *
 * In place because nothing downstream needs the unrotated values (the linear backward needs the projection's input,
 * not its output), so a copy would be waste. The rotation is orthogonal, so backward is the inverse rotation of the
 * gradient, also in place. Under a KV cache the offset is the cache length: positions never restart at 0.
 */
import type { Backend } from '../backend.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { ShapeError } from '../errors.js';
import { type IntTensor, type Tensor } from '../tensor.js';

/** Llama 2's base; Llama 3 uses 500000. A model config sets its own (rope_theta). */
export const DEFAULT_ROPE_THETA = 10000;

export interface RopePositions {
  /** Position of t = 0 (default 0). */
  posOffset?: number;
  /** Explicit position per t, overriding posOffset: an int32 tensor of shape [T]. */
  positions?: IntTensor;
}

export class RoPE {
  readonly theta: number;

  constructor(
    private readonly backend: Backend,
    opts: { theta?: number } = {},
  ) {
    this.theta = opts.theta ?? DEFAULT_ROPE_THETA;
    if (!(this.theta > 0) || !Number.isFinite(this.theta)) throw new InvalidArgumentError(`rope: theta ${this.theta} must be a finite number > 0`);
  }

  /** Rotates x [B, T, H, D] in place; returns x. */
  forwardInPlace(x: Tensor, pos: RopePositions = {}): Tensor {
    this.apply('rope', x, pos, false);
    return x;
  }

  /**
   * Backward in place: dx [B, T, H, D] (the gradient of the rotated tensor) becomes the gradient of the unrotated
   * input. Needs the same positions as the forward; keeps no state, so it cannot run "before" forward in any way
   * that matters.
   */
  backwardInPlace(dx: Tensor, pos: RopePositions = {}): Tensor {
    this.apply('rope.backward', dx, pos, true);
    return dx;
  }

  private apply(op: string, x: Tensor, pos: RopePositions, inverse: boolean): void {
    if (x.shape.length !== 4) throw new ShapeError(op, 'x must be [B, T, H, D]', { x: x.shape });
    const [B, T, H, D] = x.shape;
    if (D % 2 !== 0) throw new ShapeError(op, `head_dim ${D} must be even`, { x: x.shape });
    const posOffset = pos.posOffset ?? 0;
    if (!Number.isInteger(posOffset) || posOffset < 0) throw new InvalidArgumentError(`${op}: posOffset ${posOffset} must be an integer ≥ 0`);
    if (pos.positions !== undefined && (pos.positions.shape.length !== 1 || pos.positions.shape[0] !== T)) {
      throw new ShapeError(op, 'positions must be [T]', { x: x.shape, positions: pos.positions.shape });
    }
    this.backend.rope(x.data, B, T, H, D, posOffset, this.theta, inverse, pos.positions?.data);
  }
}
