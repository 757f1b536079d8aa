/**
 * Key/value cache of one span for incremental decoding. Per layer it holds the RoPE-rotated keys and the values of
 * every position seen so far:
 *
 *   k[l], v[l]: [B, maxLen, KV, D]   (positions 0..length-1 valid)
 *
 * The position of the next token is `length`: a forward through a cache rotates its queries and keys at positions
 * length..length+T-1 (the Python original restarted them at 0, which made cached decoding disagree with a full
 * recompute). All layers of a span share one length; a forward advances it once, after its last layer.
 */
import { KVCacheFullError } from '../tensor/errors.js';
import { type LlamaConfig } from './config.js';
import { ModelConfigError } from './errors.js';
import { checkSpan, type Span } from './layout.js';

export class KVCache {
  readonly config: LlamaConfig;
  readonly span: Span;
  readonly batch: number;
  readonly maxLen: number;
  /** Indexed by layer - span.start. */
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  private len = 0;

  constructor(config: LlamaConfig, opts: { span?: Span; batch?: number; maxLen?: number } = {}) {
    this.config = config;
    this.span = checkSpan(config, opts.span);
    this.batch = opts.batch ?? 1;
    this.maxLen = opts.maxLen ?? config.max_position_embeddings;
    if (!Number.isInteger(this.batch) || this.batch < 1 || this.batch > 4096) throw new ModelConfigError(`KVCache: batch ${this.batch} out of range 1..4096`);
    if (!Number.isInteger(this.maxLen) || this.maxLen < 1 || this.maxLen > config.max_position_embeddings) {
      throw new ModelConfigError(`KVCache: maxLen ${this.maxLen} out of range 1..max_position_embeddings=${config.max_position_embeddings}`);
    }
    const n = this.batch * this.maxLen * config.num_key_value_heads * config.head_dim;
    this.k = [];
    this.v = [];
    for (let l = this.span.start; l < this.span.end; l++) {
      this.k.push(new Float32Array(n));
      this.v.push(new Float32Array(n));
    }
  }

  /** Positions cached so far; also the position of the next token. */
  get length(): number {
    return this.len;
  }

  /** Throws KVCacheFullError when `adding` more positions would not fit. */
  checkRoom(adding: number): void {
    if (this.len + adding > this.maxLen) throw new KVCacheFullError(this.len, adding, this.maxLen);
  }

  /** Called by the shard after a forward through every layer of the span. */
  advance(n: number): void {
    this.checkRoom(n);
    this.len += n;
  }

  /** Forgets positions from `length` on (e.g. to re-run a suffix); the buffers are not cleared. */
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.len) throw new ModelConfigError(`KVCache.truncate: ${length} not in 0..${this.len}`);
    this.len = length;
  }

  reset(): void {
    this.len = 0;
  }

  /** Bytes held by the cache buffers. */
  get bytes(): number {
    return this.k.length * 2 * this.k[0].byteLength;
  }
}
