/**
 * The held weights read by range from the compute worker (compute/served-params.ts), as the checkpoint handler
 * (./transfer.ts) serves them: figures of a sub-span, then its payload chunk by chunk, every chunk checked to come
 * from the weights version the figures were taken from. Nothing of the weights is kept on the main thread but the
 * chunk in flight (issue 12 §2: the whole-span snapshot it replaces grew chaos survivors' memory).
 */
import type { ComputeClient } from '../compute/client.js';
import type { Span } from '../model/layout.js';
import { isNeuroShardError, NeuroShardError } from '../util/errors.js';
import { spanText } from '../util/span-text.js';

/** What a stream serves from: a sub-span's figures, then ranges of its payload at the figures' version. */
export interface HeldRangeReader {
  /**
   * The figures of `want` (⊆ the held span) as the weights are now. `signal`: the stream's (its caller reset it):
   * rejects at once and drops the worker job if it has not started, so the handler ends and frees its slot.
   */
  digest(want: Span, signal?: AbortSignal): Promise<HeldDigest>;
  /** Bytes [offset, offset+length) of `want`'s payload; HeldWeightsChangedError when the weights left `version`. */
  read(want: Span, offset: number, length: number, version: string, signal?: AbortSignal): Promise<Uint8Array<ArrayBuffer>>;
}

export interface HeldDigest {
  /** Bytes of the payload. */
  total: number;
  /** Span hash, hex. */
  hash: string;
  /** SHA-256 of the payload. */
  sha: Uint8Array<ArrayBuffer>;
  /** The weights version the figures are of (opaque). */
  version: string;
}

/**
 * The held weights changed while a stream served them (a new span swapped in, a training step, a reload): the
 * stream ends with this error and the downloader takes the unit again. Never the peer's fault, never a mixed shard.
 */
export class HeldWeightsChangedError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_WEIGHTS_CHANGED', message, { fault: 'local', meta });
  }
}

/**
 * A reader over the compute worker. `held()` is the span the node believes it holds: figures of a worker that holds
 * another (a swap under way) are refused as changed weights.
 */
export function workerHeldRange(compute: Pick<ComputeClient, 'run'>, held: () => Span | undefined): HeldRangeReader {
  return {
    async digest(want, signal) {
      const d = await compute.run({ type: 'paramsDigest', span: { start: want.start, end: want.end } }, { signal });
      const h = held();
      if (h === undefined || h.start !== d.held.start || h.end !== d.held.end) {
        throw new HeldWeightsChangedError(`the compute worker holds ${spanText(d.held)}, not the span served`, { worker: d.held });
      }
      return { total: d.bytes, hash: d.hash, sha: new Uint8Array(Buffer.from(d.sha256, 'hex')), version: `${d.worker}:${d.version}` };
    },
    async read(want, offset, length, version, signal) {
      const [worker, v] = version.split(':').map(Number);
      try {
        const r = await compute.run({ type: 'paramsRange', span: { start: want.start, end: want.end }, offset, length, worker: worker!, version: v! }, { signal });
        return r.data;
      } catch (e) {
        if (isNeuroShardError(e) && e.code === 'WEIGHTS_CHANGED') throw new HeldWeightsChangedError(e.message, { version });
        throw e;
      }
    },
  };
}
