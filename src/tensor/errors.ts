/**
 * Typed errors of the tensor engine. Every one names the op that refused and, where shapes are involved, the shapes
 * it was given, so a message like `linear: input channels 7 ≠ weight in-features 8 (x: [2, 3, 7], w: [16, 8])` is
 * enough to find the bug. All are caller faults: the engine itself never produces a wrong shape.
 */
import { NeuroShardError } from '../util/errors.js';

/** Formats a shape as `[2, 3, 4]`. */
export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function shapesStr(shapes: Readonly<Record<string, readonly number[]>>): string {
  const parts = Object.entries(shapes).map(([k, s]) => `${k}: ${shapeStr(s)}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

/** Tensors whose shapes do not fit the op. Nothing is ever broadcast or truncated to make them fit. */
export class ShapeError extends NeuroShardError {
  readonly op: string;
  readonly shapes: Readonly<Record<string, readonly number[]>>;

  constructor(op: string, detail: string, shapes: Readonly<Record<string, readonly number[]>> = {}) {
    super('SHAPE_MISMATCH', `${op}: ${detail}${shapesStr(shapes)}`, {
      fault: 'caller',
      meta: { op, shapes: Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, [...s]])) },
    });
    this.op = op;
    this.shapes = shapes;
  }
}

/** A token id (or a target id) outside [0, V). */
export class TokenRangeError extends NeuroShardError {
  readonly op: string;

  constructor(op: string, id: number, index: number, vocab: number, shapes: Readonly<Record<string, readonly number[]>> = {}) {
    super('TOKEN_OUT_OF_RANGE', `${op}: token id ${id} at flat index ${index} is outside [0, ${vocab})${shapesStr(shapes)}`, {
      fault: 'caller',
      meta: { op, id, index, vocab },
    });
    this.op = op;
  }
}

/** backward() called on an op that has no forward() pass waiting for it (never run, or already consumed). */
export class BackwardBeforeForwardError extends NeuroShardError {
  readonly op: string;

  constructor(op: string) {
    super('BACKWARD_BEFORE_FORWARD', `${op}: backward() called without a preceding forward() (each forward pairs with one backward)`, {
      fault: 'caller',
      meta: { op },
    });
    this.op = op;
  }
}

/** A KV cache has no room for the positions being appended. */
export class KVCacheFullError extends NeuroShardError {
  constructor(length: number, adding: number, maxSeq: number) {
    super('KV_CACHE_FULL', `KVCache.append: ${adding} new position(s) after ${length} exceed the capacity of ${maxSeq}`, {
      fault: 'caller',
      meta: { length, adding, maxSeq },
    });
  }
}

/** The native backend was required (not merely preferred) and could not be loaded. */
export class BackendUnavailableError extends NeuroShardError {
  constructor(reason: string) {
    super('BACKEND_UNAVAILABLE', `native tensor backend unavailable: ${reason}`, { fault: 'local', meta: { reason } });
  }
}
