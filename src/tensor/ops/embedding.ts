/**
 * Embedding lookup:
 *
 *   table: [V, C]   ids: [...] (int32, each in [0, V))   →   out: [..., C],  out[n] = table[ids[n]]
 *
 * Backward scatter-adds: dtable[ids[n]] += dout[n] (a repeated id accumulates every occurrence).
 * Ids are checked before any kernel runs: an id outside [0, V) is a TokenRangeError, never a wild read.
 */
import type { Backend } from '../backend.js';
import { ShapeError } from '../errors.js';
import { type IntTensor, type Tensor } from '../tensor.js';
import { checkTokenRange, expectShape, outputTensor, requireSaved } from './check.js';

function checkEmbedding(op: string, table: Tensor, ids: IntTensor): void {
  if (table.shape.length !== 2) throw new ShapeError(op, 'table must be [V, C]', { table: table.shape, ids: ids.shape });
  checkTokenRange(op, ids, table.shape[0], undefined, { table: table.shape });
}

/** out[..., C] = table[ids] without caching anything (inference). */
export function embedding(backend: Backend, table: Tensor, ids: IntTensor, out?: Tensor): Tensor {
  checkEmbedding('embedding', table, ids);
  const C = table.shape[1];
  const o = outputTensor('embedding', 'out', [...ids.shape, C], out);
  backend.embeddingForward(table.data, ids.data, o.data, ids.numel, C);
  return o;
}

export class Embedding {
  private saved: { ids: IntTensor; V: number; C: number } | null = null;

  constructor(private readonly backend: Backend) {}

  forward(table: Tensor, ids: IntTensor, out?: Tensor): Tensor {
    const o = embedding(this.backend, table, ids, out);
    this.saved = { ids, V: table.shape[0], C: table.shape[1] };
    return o;
  }

  /** dout: [..., C]. Scatter-adds into dtable [V, C]. (The ids have no gradient.) */
  backward(dout: Tensor, dtable: Tensor): void {
    const { ids, V, C } = requireSaved('embedding', this.saved);
    expectShape('embedding.backward', 'dout', dout, [...ids.shape, C], { ids: ids.shape });
    expectShape('embedding.backward', 'dtable', dtable, [V, C]);
    this.backend.embeddingBackward(dout.data, ids.data, dtable.data, ids.numel, C);
    this.saved = null;
  }
}
