/**
 * Text generation with a KV cache on a model that holds every layer (a distributed chain uses the same pieces:
 * each hop keeps a KVCache for its span, the validator runs a Sampler).
 *
 * The prompt is prefilled in one forward (positions 0..P-1), then each new token is decoded at position
 * P, P+1, … through the cache, so cached decoding computes the logits of a full recompute (tested). Generation
 * stops at the first of: an end id (default the config's eos_token_id), a stop sequence in the decoded text,
 * maxTokens new tokens, the context being full (the last token returned is the one predicted at position
 * max_position_embeddings − 1), or an abort.
 */
import { AbortedError, InvalidArgumentError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { ModelStateError } from './errors.js';
import { KVCache } from './kv-cache.js';
import { checkSamplingOptions, sampleToken, type SamplingOptions } from './sampling.js';
import { type LlamaShard } from './shard.js';

export interface GenerateOptions extends SamplingOptions {
  /** New tokens at most (≥ 1). */
  maxTokens: number;
  /** Seed of the sampler (default 0); unused when greedy. */
  seed?: number;
  /** Ids that end generation (not included in the text); default [config.eos_token_id]. */
  stopIds?: readonly number[];
  /** Strings that end generation when they appear in the decoded new text; the text is cut before them. */
  stop?: readonly string[];
  /** Turns ids into text; required with `stop`, and used for `text` in the result. */
  decode?: (ids: readonly number[]) => string;
  /** Called with each new token as it is chosen. */
  onToken?: (id: number) => void;
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length';

export interface GenerateResult {
  /** New token ids (an end id that stopped generation is not included). */
  tokens: number[];
  /** decode(tokens), cut before a matched stop sequence; null without a decode function. */
  text: string | null;
  /** 'stop': an end id or a stop sequence; 'length': maxTokens or the context ran out. */
  finishReason: FinishReason;
  /** What stopped it: the end id, the stop sequence, or null for 'length'. */
  stoppedBy: number | string | null;
}

export const MAX_STOP_SEQUENCES = 16;
export const MAX_STOP_LENGTH = 256;

export function generate(model: LlamaShard, prompt: Int32Array | readonly number[], opts: GenerateOptions): GenerateResult {
  if (!model.hasEmbed || !model.hasHead) throw new ModelStateError('generate: the model must hold every layer (embedding and head)');
  const c = model.config;
  checkSamplingOptions(opts);
  const maxTokens = opts.maxTokens;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new InvalidArgumentError(`maxTokens ${maxTokens} must be a positive integer`);
  const ids = Int32Array.from(prompt);
  if (ids.length === 0) throw new InvalidArgumentError('generate: the prompt is empty (give at least a BOS id)');
  if (ids.length >= c.max_position_embeddings) {
    throw new InvalidArgumentError(`generate: the prompt has ${ids.length} tokens, the context holds ${c.max_position_embeddings}`);
  }
  const stop = opts.stop ?? [];
  if (stop.length > MAX_STOP_SEQUENCES || stop.some((s) => typeof s !== 'string' || s.length === 0 || s.length > MAX_STOP_LENGTH)) {
    throw new InvalidArgumentError(`generate: stop takes up to ${MAX_STOP_SEQUENCES} non-empty strings of up to ${MAX_STOP_LENGTH} characters`);
  }
  if (stop.length > 0 && opts.decode === undefined) throw new InvalidArgumentError('generate: stop sequences need a decode function');
  const stopIds = new Set(opts.stopIds ?? [c.eos_token_id]);
  const rng = new Rng(opts.seed ?? 0);
  const V = c.vocab_size;

  const maxLen = Math.min(c.max_position_embeddings, ids.length + maxTokens);
  const cache = new KVCache(c, { span: model.span, batch: 1, maxLen });
  const out: number[] = [];
  let logits = model.forward(ids, 1, ids.length, { cache });
  let row = logits.subarray((ids.length - 1) * V, ids.length * V);
  const finish = (reason: FinishReason, by: number | string | null, cut?: number): GenerateResult => {
    let text = opts.decode !== undefined ? opts.decode(out) : null;
    if (text !== null && cut !== undefined) text = text.slice(0, cut);
    return { tokens: out, text, finishReason: reason, stoppedBy: by };
  };
  for (;;) {
    if (opts.signal?.aborted === true) throw new AbortedError('generate aborted');
    const next = sampleToken(row, opts, rng);
    if (stopIds.has(next)) return finish('stop', next);
    out.push(next);
    opts.onToken?.(next);
    if (stop.length > 0) {
      const text = opts.decode!(out);
      // the earliest match wins; the text is cut before it
      let at = -1;
      let which = '';
      for (const s of stop) {
        const i = text.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          which = s;
        }
      }
      if (at >= 0) return finish('stop', which, at);
    }
    if (out.length >= maxTokens || cache.length >= cache.maxLen) return finish('length', null);
    logits = model.forward(Int32Array.of(next), 1, 1, { cache });
    row = logits.subarray(0, V);
  }
}
