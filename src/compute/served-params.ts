/**
 * The held weights as the `checkpoint` stream serves them, read inside the compute worker (issue 12 §2, issue 8 §1).
 *
 * Before, a holder asked the worker for a copy of ALL its parameters (`getParams`: 18–146 MiB) to serve any span,
 * kept that snapshot for a minute and hashed and chunked it on the main thread; every minute with a download made a
 * new whole copy, and chaos survivors' memory grew with them. Now the main thread asks for figures and bytes only:
 *
 *   paramsDigest(span)                  → the span hash (model/hash.ts) and SHA-256 of the sub-span's payload,
 *                                         computed here over the weights in place;
 *   paramsRange(span, offset, length)   → a copy of bytes [offset, offset+length) of that payload (one chunk).
 *
 * Both are tagged with the worker's weights version: (worker thread id, a counter bumped whenever the weights may
 * have changed: a model built, loaded, released, set, trained or stepped as a stage; CHANGES_WEIGHTS below names the
 * jobs). A range read names the version its stream started at and is refused with WeightsChangedError when the
 * weights moved since: one stream never carries bytes of two versions. The thread id tells a restarted worker (its
 * counter starts again) from the old one.
 */
import { createHash } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { spanHash } from '../model/hash.js';
import { ParamLayout, subSpanRange, type Span } from '../model/layout.js';
import type { LlamaShard } from '../model/shard.js';
import { InvalidArgumentError, NeuroShardError } from '../util/errors.js';
import { ComputeStateError } from './errors.js';
import type { JobType } from './jobs.js';

/** Largest range one paramsRange job copies (the checkpoint stream reads 1 MiB chunks). */
export const MAX_RANGE_BYTES = 16 << 20;
/**
 * Digests of multi-layer sub-spans kept per weights version (heads are asked repeatedly; a holder is asked for few
 * distinct spans). One-layer units, what downloaders ask, are kept apart and all of them (≤ the held layers): a
 * flood of other spans cannot push them out, so a unit's figures cost one hash of that layer per version (session 23;
 * multi-layer spans are rate-limited by the checkpoint handler, pool/span-meter.ts).
 */
export const DIGESTS_KEPT = 64;

/** Which weights a figure or a range was taken from. */
export interface WeightsVersion {
  /** The worker thread's id (a restarted worker has a new one). */
  worker: number;
  /** Bumped whenever the worker's weights may have changed. */
  version: number;
}

/** The figures of a sub-span of the held weights. */
export interface ParamsDigest extends WeightsVersion {
  /** The span the worker holds. */
  held: Span;
  /** The sub-span these figures are of. */
  span: Span;
  /** Bytes of its payload (float32 little-endian, ParamLayout(span) order). */
  bytes: number;
  /** Its span hash (model/hash.ts), hex. */
  hash: string;
  /** SHA-256 of its payload, hex (a string: a cached digest must survive being posted, a transferred array would not). */
  sha256: string;
}

/** The worker's weights changed since the version a reader named. Not a fault of anyone: the reader starts over. */
export class WeightsChangedError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('WEIGHTS_CHANGED', message, { fault: 'local', meta });
  }
}

/**
 * Jobs after which the weights may differ (exhaustive: a new job type must be classified here to compile). Reading
 * jobs (forward, generate, sessions) leave them as they are; `stage` ops include the optimizer steps of chain
 * training, which write the weights in place.
 */
export const CHANGES_WEIGHTS: Readonly<Record<JobType, boolean>> = {
  ping: false,
  setThreads: false,
  gemm: false,
  benchGemm: false,
  spin: false,
  crash: false,
  initModel: true,
  releaseModel: true,
  trainStep: true,
  evalLoss: false,
  forward: false,
  generate: false,
  readBound: false,
  getParams: false,
  paramsDigest: false,
  paramsRange: false,
  modelHash: false,
  setParams: true,
  trainerInfo: false,
  getTrainerState: false,
  setTrainerState: false,
  resumeTrainer: false,
  saveCheckpoint: false,
  loadCheckpoint: true,
  sessionOpen: false,
  sessionStep: false,
  sessionClose: false,
  sessionList: false,
  stage: true,
};

function whole(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw new InvalidArgumentError(`${name} must be an integer in 0..${max}, got ${String(v)}`, { [name]: v });
  return v;
}

function checkSpanArg(v: unknown): Span {
  const s = v as Partial<Span> | null;
  if (typeof s !== 'object' || s === null || !Number.isSafeInteger(s.start) || !Number.isSafeInteger(s.end)) throw new InvalidArgumentError('span must be {start, end} integers');
  return { start: s.start!, end: s.end! };
}

/** The worker's served-weights state: its version counter and the digests of the current version. */
export class ServedParams {
  private n = 0;
  private readonly digests = new Map<string, ParamsDigest>();
  private readonly units = new Map<string, ParamsDigest>();
  /** The held span's hash (the `modelHash` job) at the current version, once computed. */
  private whole: string | undefined;
  /** Bytes hashed for digests so far (each payload byte counted once per digest computed; diagnostics, tests). */
  hashedBytes = 0;

  constructor(private readonly worker: number = threadId) {}

  current(): WeightsVersion {
    return { worker: this.worker, version: this.n };
  }

  /** The weights may have changed: a new version, and the figures of the old one forgotten. */
  changed(): void {
    this.n++;
    this.digests.clear();
    this.units.clear();
    this.whole = undefined;
  }

  /**
   * The hash of the whole held span (model/hash.ts; an int8 shard's is that of the float32 weights it was made from),
   * computed once per weights version: the node asks for it every few seconds (pool/held-hash.ts), and a node whose
   * weights did not move since pays a message, not a hash of its span. A hop asks for it at every session a peer
   * opens (its transcript's claim, protocols/inference.ts): uncached, a stranger's open-and-close cost the worker
   * 14 ms on the genesis model and 339 ms on a 12x768 one, 20-25 decode steps (session 27 attack pass).
   */
  heldHash(shard: LlamaShard): WeightsVersion & { hash: string } {
    if (this.whole === undefined) {
      this.whole = shard.hash();
      this.hashedBytes += shard.weights === 'f32' ? shard.params.byteLength : 0;
    }
    return { ...this.current(), hash: this.whole };
  }

  /** The figures of `want` ⊆ the shard's span, over the weights in place (cached for this version). */
  digest(shard: LlamaShard, wantArg: Span): ParamsDigest {
    const want = checkSpanArg(wantArg);
    const { offset, size } = this.locate(shard, want);
    const key = `${want.start}:${want.end}`;
    const kept = want.end - want.start === 1 ? this.units : this.digests;
    const had = kept.get(key);
    if (had !== undefined) return { ...had };
    const p = shard.params.subarray(offset, offset + size);
    const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    const d: ParamsDigest = {
      ...this.current(),
      held: { ...shard.span },
      span: want,
      bytes: p.byteLength,
      hash: spanHash(new ParamLayout(shard.config, want), p),
      sha256: createHash('sha256').update(bytes).digest('hex'),
    };
    this.hashedBytes += p.byteLength;
    if (kept === this.digests && kept.size >= DIGESTS_KEPT) kept.delete(kept.keys().next().value!);
    kept.set(key, d);
    return { ...d };
  }

  /**
   * A copy of bytes [offset, offset+length) of `want`'s payload. With `expect`, refused with WeightsChangedError
   * unless the weights are still that version.
   */
  range(shard: LlamaShard, wantArg: Span, offsetArg: number, lengthArg: number, expect?: Partial<WeightsVersion>): WeightsVersion & { data: Uint8Array<ArrayBuffer> } {
    const want = checkSpanArg(wantArg);
    if (expect !== undefined && (expect.worker !== undefined || expect.version !== undefined) && (expect.worker !== this.worker || expect.version !== this.n)) {
      throw new WeightsChangedError(`the held weights changed (version ${this.worker}:${this.n}, the reader started at ${String(expect.worker)}:${String(expect.version)})`, { now: this.n, expected: expect.version });
    }
    const { offset, size } = this.locate(shard, want);
    const total = size * 4;
    const at = whole('offset', offsetArg, total);
    const length = whole('length', lengthArg, Math.min(MAX_RANGE_BYTES, total - at));
    const p = shard.params;
    // a copy of its own (transferred to the main thread): never a view that would pin or detach the weights
    const data = new Uint8Array(p.buffer, p.byteOffset + offset * 4 + at, length).slice();
    return { ...this.current(), data };
  }

  private locate(shard: LlamaShard, want: Span): { offset: number; size: number } {
    if (shard.weights === 'int8') throw new ComputeStateError('the worker holds int8 weights and keeps no float32 copy to serve');
    return subSpanRange(shard.config, shard.span, want);
  }
}
