/**
 * Inference sessions inside the compute worker: the math of one hop of a chain (or of the whole model, for the
 * local generator). A session is a KV cache over the worker's span plus, on the validator (the span holding the LM
 * head), a seeded Sampler: the same model/sampling.ts code `neuroshard generate` runs, drawing once per sampled
 * token, so a chain reproduces a one-machine answer token for token.
 *
 * Quotas (memory budget per node, sessions per peer, idle timeouts) are the hop manager's on the main thread
 * (protocols/inference.ts); this table only refuses what would break it: a duplicate id, a step past the cache, a
 * wrong input kind or size. Replacing or releasing the model drops every session (their caches belong to it).
 */
import { KVCache } from '../model/kv-cache.js';
import { Sampler } from '../model/sampling.js';
import { MAX_DECODE_BATCH, type LlamaShard } from '../model/shard.js';
import { ShapeError } from '../tensor/index.js';
import { InvalidArgumentError, NeuroShardError } from '../util/errors.js';
import type { JobOf, ResultOf } from './jobs.js';

/** Most sessions one worker keeps (the hop manager's budget is tighter; this is the last line). */
export const MAX_WORKER_SESSIONS = 4096;
const MAX_SESSION_ID_CHARS = 128;

export class SessionError extends NeuroShardError {
  constructor(code: 'SESSION_EXISTS' | 'SESSION_UNKNOWN' | 'SESSION_LIMIT', message: string, meta?: Record<string, unknown>) {
    // the caller asked for something the session table cannot do; whether that is a peer's fault is decided by
    // the hop manager, which knows who asked
    super(code, message, { fault: 'caller', meta });
  }
}

interface Session {
  shard: LlamaShard;
  cache: KVCache;
  sampler: Sampler | undefined;
  tokensProcessed: number;
  /** performance.now() of its last decode step (-Infinity: none yet). */
  lastDecodeAt: number;
  /** performance.now() of its open or its last step, prefills included (serving-first.ts: a reply mid-answer). */
  activeAt: number;
}

/** A decode step: one position of one session, what continuous batching stacks (prefills run alone). */
export function isDecodeStep(job: JobOf<'sessionStep'>): boolean {
  return Array.isArray(job.chunks) && job.chunks.length === 1 && job.chunks[0] === 1;
}

export class SessionTable {
  private readonly sessions = new Map<string, Session>();

  get size(): number {
    return this.sessions.size;
  }

  clear(): void {
    this.sessions.clear();
  }

  open(shard: LlamaShard, job: JobOf<'sessionOpen'>): ResultOf<'sessionOpen'> {
    const id = checkId(job.id);
    if (this.sessions.has(id)) throw new SessionError('SESSION_EXISTS', `session ${id} is already open`);
    if (this.sessions.size >= MAX_WORKER_SESSIONS) throw new SessionError('SESSION_LIMIT', `the worker holds ${MAX_WORKER_SESSIONS} sessions`);
    const ctx = shard.config.max_position_embeddings;
    if (!Number.isInteger(job.maxLen) || job.maxLen < 1 || job.maxLen > ctx) {
      throw new InvalidArgumentError(`sessionOpen: maxLen ${job.maxLen} not in 1..${ctx}`);
    }
    let sampler: Sampler | undefined;
    if (shard.hasHead) {
      const s = job.sampling ?? { temperature: 0, topK: 0, topP: 1, seed: 0 };
      sampler = new Sampler({ temperature: s.temperature, topK: s.topK, topP: s.topP }, s.seed);
    }
    const cache = new KVCache(shard.config, { span: shard.span, batch: 1, maxLen: job.maxLen });
    this.sessions.set(id, { shard, cache, sampler, tokensProcessed: 0, lastDecodeAt: -Infinity, activeAt: performance.now() });
    return { span: { ...shard.span }, kvBytes: cache.bytes, maxLen: cache.maxLen };
  }

  step(shard: LlamaShard, job: JobOf<'sessionStep'>, throwIfCancelled: () => void): ResultOf<'sessionStep'> {
    const { s, chunks, T } = this.prepare(shard, job);
    const C = shard.config.hidden_size;
    const V = shard.config.vocab_size;
    const hiddenOut = shard.hasHead ? undefined : new Float32Array(T * C);
    const tokens = shard.hasHead ? new Int32Array(chunks.length) : undefined;
    let at = 0;
    for (let i = 0; i < chunks.length; i++) {
      throwIfCancelled();
      const n = chunks[i];
      // [n] ids or [n, C] hidden → [n, C] hidden or [n, V] logits
      const input = shard.hasEmbed ? job.ids!.subarray(at, at + n) : job.hidden!.subarray(at * C, (at + n) * C);
      const out = shard.forward(input, 1, n, { cache: s.cache });
      if (hiddenOut !== undefined) hiddenOut.set(out.subarray(0, n * C), at * C);
      else tokens![i] = s.sampler!.next(out.subarray((n - 1) * V, n * V));
      at += n;
    }
    if (T === 1) s.lastDecodeAt = performance.now();
    return this.finish(s, T, hiddenOut, tokens, 1);
  }

  /**
   * Continuous batching: the decode steps (one position each, see isDecodeStep) of distinct sessions run as one
   * forward of B rows (LlamaShard.decodeBatch), each row on its own KV cache and position, then split back; row b
   * computes the bits `step` would compute for that session alone. A step that fails its own checks gets its own
   * error and leaves the others to run. Results come back in the order of `jobs`.
   */
  stepBatch(shard: LlamaShard, jobs: readonly JobOf<'sessionStep'>[]): ({ ok: true; result: ResultOf<'sessionStep'> } | { ok: false; error: unknown })[] {
    const out: ({ ok: true; result: ResultOf<'sessionStep'> } | { ok: false; error: unknown })[] = new Array(jobs.length);
    const rows: { i: number; s: Session }[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < jobs.length; i++) {
      try {
        if (seen.has(jobs[i].id)) throw new InvalidArgumentError(`sessionStep: session ${jobs[i].id} appears twice in one batch`);
        const { s, T } = this.prepare(shard, jobs[i]);
        if (T !== 1) throw new InvalidArgumentError('sessionStep: only decode steps (one position) are batched');
        seen.add(jobs[i].id);
        rows.push({ i, s });
      } catch (e) {
        out[i] = { ok: false, error: e };
      }
    }
    for (let at = 0; at < rows.length; at += MAX_DECODE_BATCH) {
      const group = rows.slice(at, at + MAX_DECODE_BATCH);
      const B = group.length;
      const C = shard.config.hidden_size;
      const V = shard.config.vocab_size;
      try {
        let input: Int32Array | Float32Array;
        if (shard.hasEmbed) {
          input = new Int32Array(B);
          group.forEach((r, b) => ((input as Int32Array)[b] = jobs[r.i].ids![0]));
        } else {
          input = new Float32Array(B * C);
          group.forEach((r, b) => (input as Float32Array).set(jobs[r.i].hidden!, b * C));
        }
        // [B] ids or [B, C] hidden → [B, C] hidden or [B, V] logits
        const y = shard.decodeBatch(input, group.map((r) => r.s.cache));
        const now = performance.now();
        group.forEach((r, b) => {
          r.s.lastDecodeAt = now;
          const hidden = shard.hasHead ? undefined : y.slice(b * C, (b + 1) * C);
          const tokens = shard.hasHead ? Int32Array.of(r.s.sampler!.next(y.subarray(b * V, (b + 1) * V))) : undefined;
          out[r.i] = { ok: true, result: this.finish(r.s, 1, hidden, tokens, B) };
        });
      } catch (e) {
        for (const r of group) out[r.i] = { ok: false, error: e };
      }
    }
    return out;
  }

  /** Sessions that ran a decode step within the last `withinMs` (the batcher waits for them; see worker.ts). */
  activeDecoders(withinMs: number, now = performance.now()): number {
    let n = 0;
    for (const s of this.sessions.values()) if (now - s.lastDecodeAt <= withinMs) n++;
    return n;
  }

  /**
   * When a session still open was last opened or stepped (-Infinity: none open). Serving before training waits for
   * a reply's next step only while this is recent (serving-first.ts `trainingWait`): a closed session has no next
   * step, so a stranger's empty opens and closes buy no wait.
   */
  lastActiveAt(): number {
    let at = -Infinity;
    for (const s of this.sessions.values()) if (s.activeAt > at) at = s.activeAt;
    return at;
  }

  /** The checks every step passes before it touches a cache. */
  private prepare(shard: LlamaShard, job: JobOf<'sessionStep'>): { s: Session; chunks: number[]; T: number } {
    const s = this.get(job.id);
    if (s.shard !== shard) {
      this.sessions.delete(job.id);
      throw new SessionError('SESSION_UNKNOWN', `session ${job.id} belonged to a model that was replaced`);
    }
    const chunks = job.chunks;
    if (!Array.isArray(chunks) || chunks.length === 0 || chunks.length > 65536 || chunks.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new InvalidArgumentError('sessionStep: chunks must be a non-empty list of positive integers');
    }
    const T = chunks.reduce((a, b) => a + b, 0);
    const C = shard.config.hidden_size;
    if (s.cache.length + T > s.cache.maxLen) {
      throw new InvalidArgumentError(`sessionStep: ${T} positions past the session's ${s.cache.maxLen} (holds ${s.cache.length})`, { length: s.cache.length, adding: T }, 'SESSION_FULL');
    }
    if (shard.hasEmbed) {
      if (!(job.ids instanceof Int32Array) || job.ids.length !== T) throw new ShapeError('sessionStep', `the driver span takes ${T} token ids`, { ids: [job.ids?.length ?? 0] });
    } else if (!(job.hidden instanceof Float32Array) || job.hidden.length !== T * C) {
      throw new ShapeError('sessionStep', `hidden states must hold [${T}, ${C}] elements`, { hidden: [job.hidden?.length ?? 0], expected: [T, C] });
    }
    return { s, chunks, T };
  }

  private finish(s: Session, T: number, hidden: Float32Array | undefined, tokens: Int32Array | undefined, batch: number): ResultOf<'sessionStep'> {
    s.tokensProcessed += T;
    s.activeAt = performance.now();
    const r: ResultOf<'sessionStep'> = { length: s.cache.length, tokensProcessed: s.tokensProcessed, batch };
    if (hidden !== undefined) r.hidden = hidden;
    if (tokens !== undefined) r.tokens = tokens;
    return r;
  }

  close(id: string): ResultOf<'sessionClose'> {
    const s = this.sessions.get(id);
    this.sessions.delete(id);
    return { closed: s !== undefined, tokensProcessed: s?.tokensProcessed ?? 0 };
  }

  list(): ResultOf<'sessionList'> {
    let kvBytes = 0;
    for (const s of this.sessions.values()) kvBytes += s.cache.bytes;
    return { ids: [...this.sessions.keys()], kvBytes };
  }

  private get(id: string): Session {
    const s = this.sessions.get(checkId(id));
    if (s === undefined) throw new SessionError('SESSION_UNKNOWN', `no session ${id} (closed, timed out, or the worker restarted)`);
    return s;
  }
}

function checkId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_SESSION_ID_CHARS) {
    throw new InvalidArgumentError(`session ids are 1..${MAX_SESSION_ID_CHARS} characters`);
  }
  return id;
}
