/**
 * A Hugging Face checkpoint's `generation_config.json`: what its authors want generation to do by default.
 *
 * Two things in it change answers, and both are read here:
 *   - `eos_token_id` (an id or a list): every id that ends a generation. Llama 3 Instruct names three there
 *     (`<|end_of_text|>`, `<|eom_id|>`, `<|eot_id|>`), while its config.json names one; without this list a chat
 *     answer runs on past its end-of-turn token.
 *   - sampling defaults (`do_sample`, `temperature`, `top_p`, `top_k`, `max_new_tokens`, `max_length`): used when a
 *     request leaves the setting out, as Hugging Face's `generate()` and vLLM (`--generation-config auto`) do.
 *     `do_sample: false` means greedy whatever the temperature says. `max_length` counts the prompt too (Llama 2 chat
 *     ships 4096: answer to the end of the context); `max_new_tokens` wins over it, as in transformers.
 * Every other field (beam search, repetition penalty, …) is ignored: we do not implement them, and a default we do not
 * implement must not refuse a checkpoint. A field we read that holds a wrong value is a typed error naming it: the file
 * is configuration the operator chose (or verified against the network id when it came from peers), so a bad one stops
 * the node at start rather than answering differently from its peers.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../util/errors.js';

export const GENERATION_CONFIG_FILE = 'generation_config.json';
/** Largest generation_config.json read (real ones are under 1 KiB; pool/model-files.ts caps fetched ones the same). */
export const MAX_GENERATION_CONFIG_BYTES = 64 * 1024;
/** Most end-of-generation ids taken from one file. */
export const MAX_EOS_IDS = 64;

/** Sampling settings a request may leave out; absent = the API's own default. */
export interface SamplingDefaults {
  /** 0 = greedy (also what `do_sample: false` gives). */
  temperature?: number;
  topP?: number;
  /** 0 = off. */
  topK?: number;
  /** New tokens when a request names none. */
  maxNewTokens?: number;
  /** Prompt + new tokens when a request names no length (only when the file has no max_new_tokens). */
  maxLength?: number;
}

export interface GenerationConfig {
  /** Ids that end a generation, besides the tokenizer's and config.json's own (deduplicated, in file order). */
  eosTokenIds: number[];
  sampling: SamplingDefaults;
}

export const EMPTY_GENERATION_CONFIG: GenerationConfig = Object.freeze({ eosTokenIds: [], sampling: {} }) as GenerationConfig;

function bad(what: string, field: string, why: string): ConfigError {
  return new ConfigError(`${what}: "${field}" ${why}`, { file: what, field }, 'GENERATION_CONFIG_INVALID');
}

/** Validates the fields we use of a parsed generation_config.json (see the file comment). */
export function parseGenerationConfig(o: unknown, what = GENERATION_CONFIG_FILE): GenerationConfig {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ConfigError(`${what} must hold a JSON object`, { file: what }, 'GENERATION_CONFIG_INVALID');
  const r = o as Record<string, unknown>;
  const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const eos: number[] = [];
  const e = r.eos_token_id;
  if (e !== undefined && e !== null) {
    const list = Array.isArray(e) ? e : [e];
    if (list.length > MAX_EOS_IDS) throw bad(what, 'eos_token_id', `lists ${list.length} ids, more than ${MAX_EOS_IDS}`);
    for (const id of list) {
      if (!isId(id)) throw bad(what, 'eos_token_id', 'must be a token id or a list of token ids');
      if (!eos.includes(id)) eos.push(id);
    }
  }
  const sampling: SamplingDefaults = {};
  const num = (field: string, lo: number, hi: number, loOpen = false): number | undefined => {
    const v = r[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v > hi || (loOpen ? v <= lo : v < lo)) throw bad(what, field, `must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}]`);
    return v;
  };
  const temperature = num('temperature', 0, 100);
  const topP = num('top_p', 0, 1, true);
  const topK = num('top_k', 0, 1 << 20);
  if (topK !== undefined && !Number.isInteger(topK)) throw bad(what, 'top_k', 'must be an integer');
  const maxNew = num('max_new_tokens', 1, 1 << 20);
  if (maxNew !== undefined && !Number.isInteger(maxNew)) throw bad(what, 'max_new_tokens', 'must be an integer');
  const maxLength = num('max_length', 1, 1 << 20);
  if (maxLength !== undefined && !Number.isInteger(maxLength)) throw bad(what, 'max_length', 'must be an integer');
  const doSample = r.do_sample;
  if (doSample !== undefined && doSample !== null && typeof doSample !== 'boolean') throw bad(what, 'do_sample', 'must be true or false');
  // Hugging Face: do_sample false (its default) → greedy, and temperature/top_p/top_k are then unused. A file that
  // sets no do_sample but a temperature is read as a sampling default (transformers warns and samples greedily;
  // checkpoints that ship a temperature mean it, and vLLM applies it).
  if (doSample === false) sampling.temperature = 0;
  else {
    if (temperature !== undefined) sampling.temperature = temperature;
    if (topP !== undefined) sampling.topP = topP;
    if (topK !== undefined) sampling.topK = topK;
  }
  // transformers: max_new_tokens, when set, replaces max_length
  if (maxNew !== undefined) sampling.maxNewTokens = maxNew;
  else if (maxLength !== undefined) sampling.maxLength = maxLength;
  return { eosTokenIds: eos, sampling };
}

/**
 * New tokens for a request that names no length: the file's max_new_tokens, else its max_length less the prompt (at
 * least 1, as transformers generates one token past a max_length the prompt already fills), else `fallback`.
 */
export function defaultNewTokens(s: SamplingDefaults, promptTokens: number, fallback: number): number {
  if (s.maxNewTokens !== undefined) return s.maxNewTokens;
  if (s.maxLength !== undefined) return Math.max(1, s.maxLength - promptTokens);
  return fallback;
}

/** `dir/generation_config.json` when it is there, else the empty config. */
export function readGenerationConfig(dir: string): GenerationConfig {
  const path = join(dir, GENERATION_CONFIG_FILE);
  if (!existsSync(path)) return EMPTY_GENERATION_CONFIG;
  const size = statSync(path).size;
  if (size > MAX_GENERATION_CONFIG_BYTES) throw new ConfigError(`${path}: ${size} bytes, more than the ${MAX_GENERATION_CONFIG_BYTES} a generation config may have`, { file: path }, 'GENERATION_CONFIG_INVALID');
  let o: unknown;
  try {
    o = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${path} is not JSON: ${(e as Error).message}`, { file: path }, 'GENERATION_CONFIG_INVALID');
  }
  return parseGenerationConfig(o, path);
}
