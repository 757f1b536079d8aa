/**
 * Training batches: B windows of S+1 consecutive tokens; inputs = window[0..S), labels = window[1..S] (the next
 * token of each input position). Shapes: inputs and labels are [B, S] row-major Int32Array.
 *
 * Order, all of it derived from the seed (so a stream is reproducible and its position is three integers):
 * - epoch e visits the node's shards in a permutation drawn from seed(seed, e);
 * - within a shard, epoch e starts at a random offset o ∈ [0, S) and cuts windows starting at o, o+S, o+2S, …
 *   (consecutive windows share one token, so every next-token pair is in exactly one window), visited in a
 *   random permutation; offset and permutation are drawn from seed(seed, e, shard id);
 * - batches take the next B windows, crossing shard and epoch boundaries.
 * The position `{ epoch, shard, window }` (plus the configuration it belongs to) is a small JSON object that a
 * checkpoint stores; a stream built with it continues with exactly the batches the original would have produced.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

export interface Batch {
  batchSize: number;
  seqLen: number;
  /** [batchSize, seqLen] token ids. */
  inputs: Int32Array;
  /** [batchSize, seqLen] next-token targets: labels[b, t] = inputs[b, t + 1] within a window. */
  labels: Int32Array;
}

/** Serialisable position of a training stream (JSON-safe). */
export interface DataPosition {
  version: 1;
  seed: number;
  batchSize: number;
  seqLen: number;
  /** The shard ids the stream runs over, in the node's assignment order. */
  shards: number[];
  epoch: number;
  /** Index into this epoch's shard permutation. */
  shard: number;
  /** Index into that shard's window permutation. */
  window: number;
}

export interface ShardTokens {
  id: number;
  tokens: Uint16Array;
}

export interface BatchStreamOptions {
  batchSize: number;
  seqLen: number;
  /** uint32 seed of the stream's order. */
  seed: number;
  /** Resume from this position (its seed, sizes and shard list must match). */
  position?: DataPosition;
}

/** Deterministic uint32 seed from a list of integers (SHA-256 based, so nearby inputs give unrelated seeds). */
export function deriveSeed(...parts: (number | string)[]): number {
  return createHash('sha256').update(parts.join(':')).digest().readUInt32LE(0);
}

export class BatchStream {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly seed: number;
  private readonly shards: ShardTokens[];
  /** Shard ids as given (the position records them to detect a resume on different data). */
  private readonly inputIds: number[];
  private epoch = 0;
  private shardCursor = 0;
  private windowCursor = 0;
  private epochOrder: number[] = [];
  private plan: { offset: number; order: Uint32Array } | undefined;

  constructor(shards: ShardTokens[], opts: BatchStreamOptions) {
    const { batchSize, seqLen, seed } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidArgumentError(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new InvalidArgumentError(`seqLen must be a positive integer, got ${seqLen}`);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new InvalidArgumentError(`seed must be a uint32, got ${seed}`);
    this.inputIds = shards.map((s) => s.id);
    // A shard shorter than one window after the largest offset (S − 1) contributes nothing; drop it up front.
    this.shards = shards.filter((s) => s.tokens.length >= 2 * seqLen);
    if (this.shards.length === 0) throw new InvalidArgumentError(`no shard holds at least ${2 * seqLen} tokens for seqLen ${seqLen}`);
    this.batchSize = batchSize;
    this.seqLen = seqLen;
    this.seed = seed;
    const p = opts.position;
    if (p !== undefined) {
      if (
        p.version !== 1 ||
        p.seed !== seed ||
        p.batchSize !== batchSize ||
        p.seqLen !== seqLen ||
        JSON.stringify(p.shards) !== JSON.stringify(this.inputIds)
      ) {
        throw new InvalidArgumentError('data position belongs to a different stream (seed, sizes or shards differ)', { code: 'DATA_POSITION_MISMATCH' });
      }
      if (![p.epoch, p.shard, p.window].every((x) => Number.isInteger(x) && x >= 0)) throw new InvalidArgumentError('data position fields must be non-negative integers');
      this.epoch = p.epoch;
      this.shardCursor = p.shard;
      this.windowCursor = p.window;
    }
    this.startEpoch(this.epoch);
    if (this.shardCursor >= this.epochOrder.length) throw new InvalidArgumentError('data position shard index out of range');
    this.plan = this.planShard();
    if (this.windowCursor > this.plan.order.length) throw new InvalidArgumentError('data position window index out of range');
    this.settle();
  }

  /** Current position (before the next batch). */
  position(): DataPosition {
    return {
      version: 1,
      seed: this.seed,
      batchSize: this.batchSize,
      seqLen: this.seqLen,
      shards: [...this.inputIds],
      epoch: this.epoch,
      shard: this.shardCursor,
      window: this.windowCursor,
    };
  }

  /** The next batch. Never ends: after the last window of an epoch the next epoch starts. */
  next(): Batch {
    const B = this.batchSize;
    const S = this.seqLen;
    const inputs = new Int32Array(B * S);
    const labels = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      const plan = this.plan!;
      const tokens = this.shards[this.epochOrder[this.shardCursor]].tokens;
      const start = plan.offset + plan.order[this.windowCursor] * S;
      this.windowCursor++;
      this.settle();
      for (let t = 0; t < S; t++) {
        inputs[b * S + t] = tokens[start + t];
        labels[b * S + t] = tokens[start + t + 1];
      }
    }
    return { batchSize: B, seqLen: S, inputs, labels };
  }

  /** Moves the cursor past the end of a shard or epoch, so the position always names the next window. */
  private settle(): void {
    while (this.windowCursor >= this.plan!.order.length) {
      this.windowCursor = 0;
      this.shardCursor++;
      if (this.shardCursor >= this.epochOrder.length) {
        this.shardCursor = 0;
        this.startEpoch(this.epoch + 1);
      }
      this.plan = this.planShard();
    }
  }

  /** Tokens the stream runs over per epoch (about windows · S). */
  tokensPerEpoch(): number {
    return this.shards.reduce((n, s) => n + s.tokens.length, 0);
  }

  private startEpoch(e: number): void {
    this.epoch = e;
    this.epochOrder = new Rng(deriveSeed(this.seed, 'epoch', e)).shuffle(this.shards.map((_, i) => i));
  }

  private planShard(): { offset: number; order: Uint32Array } {
    const shard = this.shards[this.epochOrder[this.shardCursor]];
    const rng = new Rng(deriveSeed(this.seed, 'shard', this.epoch, shard.id));
    const offset = rng.int(this.seqLen);
    const count = Math.floor((shard.tokens.length - 1 - offset) / this.seqLen);
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    for (let i = count - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return { offset, order };
  }
}

/**
 * Validation batches: the windows of `tokens` in order, starting at 0 with stride S (consecutive windows share one
 * token, so each next-token pair is scored once), grouped B at a time; the incomplete last batch is dropped.
 */
export function sequentialBatches(tokens: Uint16Array, opts: { batchSize: number; seqLen: number; maxBatches?: number }): Batch[] {
  const { batchSize: B, seqLen: S } = opts;
  if (!Number.isInteger(B) || B < 1 || !Number.isInteger(S) || S < 1) throw new InvalidArgumentError('batchSize and seqLen must be positive integers');
  const windows = Math.floor((tokens.length - 1) / S);
  const n = Math.min(Math.floor(windows / B), opts.maxBatches ?? Infinity);
  const out: Batch[] = [];
  for (let k = 0; k < n; k++) {
    const inputs = new Int32Array(B * S);
    const labels = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      const start = (k * B + b) * S;
      for (let t = 0; t < S; t++) {
        inputs[b * S + t] = tokens[start + t];
        labels[b * S + t] = tokens[start + t + 1];
      }
    }
    out.push({ batchSize: B, seqLen: S, inputs, labels });
  }
  return out;
}
