/**
 * Moving tensors between threads without copies. Typed arrays that cover their whole ArrayBuffer are *transferred*
 * (the sender's array is detached afterwards, its memory moves); a view over part of a larger buffer is copied into
 * a buffer of its own first, because structured clone would otherwise copy the entire underlying buffer (a 4 KB
 * slice of a 20 MB weight buffer must not ship 20 MB). SharedArrayBuffers are shared, never transferred.
 * Nothing goes through JSON.
 */

const MAX_DEPTH = 8;

function isPlainObject(v: object): boolean {
  const p = Object.getPrototypeOf(v) as unknown;
  return p === Object.prototype || p === null;
}

/**
 * Walks plain objects and arrays (the shape of job and result messages) and returns a message whose typed arrays
 * are ready to post, plus the transfer list. With `copy` the caller keeps its arrays: every array is cloned.
 */
export function prepareTransfer<T>(value: T, opts: { copy?: boolean } = {}): { value: T; transfer: ArrayBuffer[] } {
  const transfer = new Set<ArrayBuffer>();
  const copy = opts.copy === true;

  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof SharedArrayBuffer) return v;
      if (v instanceof DataView) return v;
      const view = v as unknown as { buffer: ArrayBuffer; byteOffset: number; byteLength: number; slice(): unknown };
      // An empty buffer is never transferred: a *detached* one in a transfer list makes postMessage drop the whole
      // message silently (Node 20), whereas cloning it throws DataCloneError, which the client reports.
      if (view.buffer.byteLength === 0) return v;
      const whole = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
      if (whole && !copy) {
        transfer.add(view.buffer);
        return v;
      }
      // a partial view or a copy request: ship a private copy
      const c = view.slice() as { buffer: ArrayBuffer };
      transfer.add(c.buffer);
      return c;
    }
    if (v instanceof ArrayBuffer) {
      if (v.byteLength === 0) return v;
      if (!copy) {
        transfer.add(v);
        return v;
      }
      const c = v.slice(0);
      transfer.add(c);
      return c;
    }
    if (depth >= MAX_DEPTH) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    if (!isPlainObject(v)) return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x, depth + 1);
    return out;
  };

  return { value: walk(value, 0) as T, transfer: [...transfer] };
}
