/**
 * Hugging Face tokenizers (`tokenizer.json`, with `tokenizer_config.json` beside it when present), loaded through
 * `@huggingface/tokenizers` (Hugging Face's own pure-JS port of the `tokenizers` pipeline: normalizer,
 * pre-tokenizer, BPE/WordPiece/Unigram model with byte fallback, post-processor, decoder). Both BPE flavours of
 * Llama checkpoints work: byte-level BPE (GPT-2 byte alphabet, Llama 3) and SentencePiece-style BPE with `▁` and
 * `<0xNN>` byte fallback (Llama 2, TinyLlama).
 *
 * A checkpoint's files are trusted configuration (the operator chose the checkpoint): the library compiles the
 * file's pre-tokenizer regex. Tokenizers received from peers use our own format (format.ts), whose splitter is
 * built in.
 *
 * `TextTokenizer` is what generation needs from either kind: ours (tokenizer.ts, adapted by `ourTextTokenizer`) or
 * this one.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { readGenerationConfig } from '../generation-config.js';
import { BOS_ID, EOS_ID } from './constants.js';
import { TokenizerFormatError } from './format.js';
import type { Tokenizer } from './tokenizer.js';

export const HF_TOKENIZER_FILE = 'tokenizer.json';
export const HF_TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
/** Largest tokenizer.json read (Llama 3's is about 9 MB; some multilingual vocabularies reach 30 MB). */
export const MAX_HF_TOKENIZER_BYTES = 64 << 20;
/** Largest tokenizer_config.json read (chat templates live there). */
export const MAX_HF_TOKENIZER_CONFIG_BYTES = 4 << 20;

export interface TextTokenizer {
  /** One past the largest id. */
  readonly vocabSize: number;
  /**
   * Ids of a prompt. 'text': plain text, with what the model was trained to see first (BOS; for HF tokenizers, the
   * post-processor's special tokens). 'chat': a rendered chat template, whose special-token strings (`<s>`,
   * `<|start_header_id|>`, …) become their ids and to which nothing is added.
   */
  encodePrompt(text: string, kind: 'text' | 'chat'): Int32Array;
  /** Text of ids, special tokens skipped. */
  decode(ids: ArrayLike<number>): string;
  /** Ids that end a generation (besides the model config's eos_token_id). */
  readonly stopIds: readonly number[];
  /** The checkpoint's chat template (Jinja), or null. */
  readonly chatTemplate: string | null;
  /** Strings the chat template knows as bos_token / eos_token. */
  readonly bosToken: string;
  readonly eosToken: string;
}

function readLimited(path: string, limit: number): string {
  const size = statSync(path).size;
  if (size > limit) throw new TokenizerFormatError(`${path} is ${size} bytes, over the ${limit} limit`, { path });
  return readFileSync(path, 'utf8');
}

function parseJsonObject(path: string, text: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFormatError(`${path} is not JSON: ${(e as Error).message}`, { path });
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TokenizerFormatError(`${path} must hold a JSON object`, { path });
  return o as Record<string, unknown>;
}

/** A token field of tokenizer_config.json: a string or an AddedToken object `{ "content": … }`. */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** The template named "default" when chat_template is a list of named templates (as some checkpoints ship). */
function pickTemplate(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v.filter((t): t is { name: string; template: string } => typeof t === 'object' && t !== null && typeof t.name === 'string' && typeof t.template === 'string');
    return (named.find((t) => t.name === 'default') ?? named[0])?.template ?? null;
  }
  return null;
}

export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly stopIds: readonly number[];
  readonly chatTemplate: string | null;
  readonly bosToken: string;
  readonly eosToken: string;

  private constructor(
    private readonly lib: HfLibTokenizer,
    config: Record<string, unknown>,
    extraStopIds: readonly number[],
  ) {
    let max = -1;
    for (const id of lib.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.bosToken = tokenString(config.bos_token) ?? '';
    this.eosToken = tokenString(config.eos_token) ?? '';
    this.chatTemplate = pickTemplate(config.chat_template);
    const stops = new Set<number>();
    const eos = this.eosToken === '' ? undefined : lib.token_to_id(this.eosToken);
    if (eos !== undefined) stops.add(eos);
    for (const id of extraStopIds) {
      if (id >= this.vocabSize) throw new TokenizerFormatError(`generation_config.json names end-of-generation id ${id}, past the tokenizer's ${this.vocabSize} ids`, { id });
      stops.add(id);
    }
    this.stopIds = [...stops];
  }

  /**
   * Builds one from parsed tokenizer.json and tokenizer_config.json objects; `extraStopIds` are generation_config.json's
   * end-of-generation ids (model/generation-config.ts), which end a generation as the EOS token does.
   */
  static fromObjects(tokenizerJson: Record<string, unknown>, config: Record<string, unknown> = {}, what = HF_TOKENIZER_FILE, extraStopIds: readonly number[] = []): HfTokenizer {
    let lib: HfLibTokenizer;
    try {
      lib = new HfLibTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new TokenizerFormatError(`${what}: ${(e as Error).message}`);
    }
    return new HfTokenizer(lib, config, extraStopIds);
  }

  /**
   * Loads `dir/tokenizer.json`, with `dir/tokenizer_config.json` (chat template, special tokens) and the
   * end-of-generation ids of `dir/generation_config.json` when present.
   */
  static load(dir: string): HfTokenizer {
    const path = join(dir, HF_TOKENIZER_FILE);
    const tok = parseJsonObject(path, readLimited(path, MAX_HF_TOKENIZER_BYTES));
    const cfgPath = join(dir, HF_TOKENIZER_CONFIG_FILE);
    const cfg = existsSync(cfgPath) ? parseJsonObject(cfgPath, readLimited(cfgPath, MAX_HF_TOKENIZER_CONFIG_BYTES)) : {};
    return HfTokenizer.fromObjects(tok, cfg, path, readGenerationConfig(dir).eosTokenIds);
  }

  encodePrompt(text: string, kind: 'text' | 'chat'): Int32Array {
    return Int32Array.from(this.lib.encode(text, { add_special_tokens: kind === 'text' }).ids);
  }

  /** Ids of `text` with or without the post-processor's special tokens. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): Int32Array {
    return Int32Array.from(this.lib.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids);
  }

  decode(ids: ArrayLike<number>): string {
    if (ids.length === 0) return '';
    return this.lib.decode(Array.from(ids), { skip_special_tokens: true });
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }
}

/** Our tokenizer as a TextTokenizer: BOS first (training documents start with it); the default chat template. */
export function ourTextTokenizer(tok: Tokenizer, chatTemplate: string | null = null): TextTokenizer {
  return {
    vocabSize: tok.vocabSize,
    encodePrompt: (text) => tok.encode(text, { bos: true }),
    decode: (ids) => tok.decode(ids),
    stopIds: [EOS_ID],
    chatTemplate,
    bosToken: '',
    eosToken: '',
  };
}

/** GPT-2's byte → printable character map, which byte-level BPE vocabularies are written in. */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}

/**
 * Our tokenizer written as a Hugging Face `tokenizer.json` (byte-level BPE with our pre-tokenizer pattern, our
 * special ids 0–9 as added tokens, BOS added by the post-processor), so other tools read our checkpoints. Fails
 * when two ids stand for the same bytes (a vocabulary a tokenizer.json cannot express).
 */
export function toHfTokenizerJson(tok: Tokenizer, pattern: string): Record<string, unknown> {
  const b2u = bytesToUnicode();
  const names = ['<pad>', '<s>', '</s>', '<unk>', '<reserved_4>', '<reserved_5>', '<reserved_6>', '<reserved_7>', '<reserved_8>', '<reserved_9>'];
  const vocab: Record<string, number> = {};
  const strOf: string[] = [];
  for (let id = 0; id < names.length; id++) {
    vocab[names[id]!] = id;
    strOf[id] = names[id]!;
  }
  for (let id = names.length; id < tok.vocabSize; id++) {
    const s = Array.from(tok.tokenBytes(id), (b) => b2u[b]).join('');
    if (vocab[s] !== undefined) throw new TokenizerFormatError(`ids ${vocab[s]} and ${id} stand for the same bytes; tokenizer.json cannot express that`);
    vocab[s] = id;
    strOf[id] = s;
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: names.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: tok.merges.map(([a, b]) => [strOf[a]!, strOf[b]!]),
    },
  };
}

/** tokenizer_config.json for our tokenizer (names the special tokens and carries the default chat template). */
export function ourHfTokenizerConfig(chatTemplate: string): Record<string, unknown> {
  return {
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 1 << 20,
    tokenizer_class: 'PreTrainedTokenizerFast',
    chat_template: chatTemplate,
  };
}
