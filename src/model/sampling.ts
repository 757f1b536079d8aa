/**
 * Next-token sampling from one row of logits: temperature (0 = greedy), top-k, top-p (nucleus), seeded.
 *
 * Order of operations (as Hugging Face's generate): logits / temperature → keep the top-k → softmax → keep the
 * smallest prefix (by descending probability) whose mass reaches top-p → renormalise → draw with the seeded Rng.
 * Ties are broken by the lower token id, so a seed fully determines the sequence.
 */
import { InvalidArgumentError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax); default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 (default) keeps all. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 (default) keeps all. */
  topP?: number;
  /** Token ids never sampled (e.g. pad and reserved ids). */
  bannedIds?: readonly number[];
}

export function checkSamplingOptions(o: SamplingOptions): Required<Omit<SamplingOptions, 'bannedIds'>> & { bannedIds: readonly number[] } {
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 0;
  const topP = o.topP ?? 1;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0 || temperature > 100) {
    throw new InvalidArgumentError(`temperature ${temperature} must be a number in [0, 100]`, { temperature });
  }
  if (!Number.isInteger(topK) || topK < 0) throw new InvalidArgumentError(`topK ${topK} must be a non-negative integer`, { topK });
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new InvalidArgumentError(`topP ${topP} must be in (0, 1]`, { topP });
  return { temperature, topK, topP, bannedIds: o.bannedIds ?? [] };
}

/**
 * Index of the largest logit, lowest id on ties, with no id banned: `argmax` below with an empty set, without its
 * set lookup per element (a validator samples every row of a decode batch on the compute worker's thread between
 * the forward and the answers' post: 8 rows of 4,096 logits took ~0.3-0.5 ms per batch through `argmax`, ~4× this
 * loop). The same comparisons in the same order, so the same index: the first element is taken whatever it holds
 * (NaN included; nothing is greater than NaN, so a NaN first element wins, as in `argmax`).
 */
function argmaxAll(logits: Float32Array): number {
  if (logits.length === 0) throw new InvalidArgumentError('every token id is banned');
  let best = 0;
  let bv = logits[0];
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i];
    if (v > bv) {
      best = i;
      bv = v;
    }
  }
  return best;
}

/** Index of the largest finite-or-not logit, lowest id on ties, skipping banned ids. */
function argmax(logits: Float32Array, banned: ReadonlySet<number>): number {
  if (banned.size === 0) return argmaxAll(logits);
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (banned.has(i)) continue;
    const v = logits[i];
    if (best < 0 || v > bv) {
      best = i;
      bv = v;
    }
  }
  if (best < 0) throw new InvalidArgumentError('every token id is banned');
  return best;
}

/**
 * Draws the next token from `logits` (one row, length V). `rng` is advanced by exactly one draw unless the choice is
 * greedy (temperature 0 or top-k 1), which draws nothing.
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: Rng): number {
  const o = checkSamplingOptions(options);
  return sampleChecked(logits, o, new Set(o.bannedIds), rng);
}

/** sampleToken with its options checked and its banned ids as a set (a Sampler does both once, not per token). */
function sampleChecked(logits: Float32Array, o: ReturnType<typeof checkSamplingOptions>, banned: ReadonlySet<number>, rng: Rng): number {
  if (o.temperature === 0 || o.topK === 1) return argmax(logits, banned);
  const V = logits.length;
  let ids: number[] = [];
  for (let i = 0; i < V; i++) if (!banned.has(i) && !Number.isNaN(logits[i])) ids.push(i);
  if (ids.length === 0) throw new InvalidArgumentError('no token can be sampled (all banned or NaN)');
  const needSort = (o.topK > 0 && o.topK < ids.length) || o.topP < 1;
  if (needSort) {
    ids.sort((a, b) => logits[b] - logits[a] || a - b);
    if (o.topK > 0 && o.topK < ids.length) ids = ids.slice(0, o.topK);
  }
  // softmax over the candidates in float64
  const inv = 1 / o.temperature;
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i] * inv);
  if (max === -Infinity) return ids[0]; // every candidate impossible: fall back to the lowest id
  if (max === Infinity) return argmax(logits, banned);
  const p = new Float64Array(ids.length);
  let sum = 0;
  for (let j = 0; j < ids.length; j++) {
    p[j] = Math.exp(logits[ids[j]] * inv - max);
    sum += p[j];
  }
  let n = ids.length;
  if (o.topP < 1) {
    // ids are sorted by descending logit, hence descending probability
    let acc = 0;
    for (let j = 0; j < ids.length; j++) {
      acc += p[j] / sum;
      if (acc >= o.topP) {
        n = j + 1;
        break;
      }
    }
    sum = 0;
    for (let j = 0; j < n; j++) sum += p[j];
  }
  const u = rng.next() * sum;
  let acc = 0;
  for (let j = 0; j < n; j++) {
    acc += p[j];
    if (u < acc) return ids[j];
  }
  return ids[n - 1]; // u within rounding of sum
}

/** A sampler with its own seeded generator (the validator of a pipeline keeps one per session). */
export class Sampler {
  readonly options: SamplingOptions;
  readonly rng: Rng;

  private readonly checked: ReturnType<typeof checkSamplingOptions>;
  private readonly banned: ReadonlySet<number>;

  constructor(options: SamplingOptions = {}, seed = 0) {
    this.checked = checkSamplingOptions(options);
    this.banned = new Set(this.checked.bannedIds);
    this.options = options;
    this.rng = new Rng(seed);
  }

  /** sampleToken(logits, options, rng), with the options checked once at construction instead of per token. */
  next(logits: Float32Array): number {
    return sampleChecked(logits, this.checked, this.banned, this.rng);
  }
}
