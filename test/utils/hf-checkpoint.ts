/**
 * Small Hugging Face Llama checkpoints that tests build themselves (no downloads): a SentencePiece-style BPE
 * tokenizer.json in Llama 2 / TinyLlama's layout over a vocabulary the tests know, and a directory of config.json,
 * model.safetensors, tokenizer files and generation_config.json around a model made in the test.
 * Used by test/e2e/hf-chain.test.ts and test/integration/model/hf-tokenizer-generate.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHfConfigJson } from '../../src/model/config.js';
import { writeSafetensors, type LlamaShard } from '../../src/model/index.js';

/**
 * Ids of `sentencePieceTokenizerJson`: specials `<unk>` 0, `<s>` 1, `</s>` 2, '▁' 3, 'a'–'z' 4–29, the merges of
 * ▁hello ▁world ▁the ▁model ▁speaks 30–53; extra special tokens follow from 54.
 */
export const SP_BASE_VOCAB = 54;

/** The tokenizer.json (see SP_BASE_VOCAB); `extraSpecials` are added tokens with ids 54, 55, … in order. */
export function sentencePieceTokenizerJson(extraSpecials: readonly string[] = []): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3 };
  for (let i = 0; i < 26; i++) vocab[String.fromCharCode(97 + i)] = 4 + i;
  const merges: [string, string][] = [];
  for (const w of ['hello', 'world', 'the', 'model', 'speaks']) {
    let cur = '▁';
    for (const ch of w) {
      if (vocab[cur + ch] === undefined) {
        merges.push([cur, ch]);
        vocab[cur + ch] = 29 + merges.length;
      }
      cur += ch;
    }
  }
  assert.equal(29 + merges.length, SP_BASE_VOCAB - 1);
  const specials: [number, string][] = [[0, '<unk>'], [1, '<s>'], [2, '</s>']];
  extraSpecials.forEach((content, i) => {
    vocab[content] = SP_BASE_VOCAB + i;
    specials.push([SP_BASE_VOCAB + i, content]);
  });
  return {
    version: '1.0',
    added_tokens: specials.map(([id, content]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

/**
 * Scales a random model's matrices (embedding and head ×4, q/k ×6, the rest ×2) so that its greedy choices are
 * decisive: the same tokens on the reference and the native engine, whole or split across nodes.
 */
export function sharpen(m: LlamaShard): void {
  for (const e of m.layout.entries) {
    if (e.shape.length < 2) continue;
    const scale = /embed_tokens|lm_head/.test(e.name) ? 4 : /[qk]_proj/.test(e.name) ? 6 : 2;
    const w = m.params.subarray(e.offset, e.offset + e.size);
    for (let i = 0; i < w.length; i++) w[i] *= scale;
  }
}

export interface HfCheckpointFiles {
  /** tokenizer.json (written when given). */
  tokenizer?: Record<string, unknown>;
  /** tokenizer_config.json (written when given). */
  tokenizerConfig?: Record<string, unknown>;
  /** generation_config.json (written when given). */
  generationConfig?: Record<string, unknown>;
}

/** Writes the tokenizer and generation files of a checkpoint into `dir` (created when missing). */
export function writeHfTokenizerFiles(dir: string, f: HfCheckpointFiles): void {
  mkdirSync(dir, { recursive: true });
  if (f.tokenizer !== undefined) writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(f.tokenizer));
  if (f.tokenizerConfig !== undefined) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(f.tokenizerConfig));
  if (f.generationConfig !== undefined) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(f.generationConfig));
}

/** Writes `model` as a Hugging Face checkpoint (config.json + F32 model.safetensors) into `dir`, with `files`. */
export function writeHfCheckpoint(dir: string, model: LlamaShard, files: HfCheckpointFiles = {}): void {
  writeHfTokenizerFiles(dir, files);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(model.config)));
  writeSafetensors(
    join(dir, 'model.safetensors'),
    model.layout.entries.map((e) => ({ name: e.name, shape: [...e.shape], data: model.params.subarray(e.offset, e.offset + e.size) })),
  );
}
