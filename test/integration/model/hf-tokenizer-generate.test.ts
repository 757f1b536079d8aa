/**
 * A Hugging Face Llama checkpoint that ships tokenizer.json generates through `neuroshard generate`'s path
 * (node/generate.ts → model-session): the prompt is encoded by its tokenizer.json (with the post-processor's <s>),
 * the greedy tokens are those the model computes for exactly those ids, and the text is their decoding by the same
 * tokenizer. The checkpoint is the committed tiny fixture (vocab 72); the tokenizer is a SentencePiece-style BPE
 * built here to fit it.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HfTokenizer } from '../../../src/model/tokenizer/hf.js';
import { generateText } from '../../../src/node/generate.js';
import { openModelSession } from '../../../src/node/model-session.js';
import { fixturePath, tempDir } from '../../utils/paths.js';

/** ids 0–2 specials, 3 '▁', 4–29 'a'–'z', 30–71 merges: a vocabulary of exactly 72 ids. */
function tinySentencePiece(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3 };
  for (let i = 0; i < 26; i++) vocab[String.fromCharCode(97 + i)] = 4 + i;
  const merges: [string, string][] = [];
  const add = (a: string, b: string): void => {
    if (vocab[a + b] !== undefined) return;
    merges.push([a, b]);
    vocab[a + b] = 30 + merges.length - 1;
  };
  for (const w of ['hello', 'world', 'the', 'model', 'speaks']) {
    let cur = '▁';
    for (const ch of w) {
      add(cur, ch);
      cur += ch;
    }
  }
  assert.ok(Object.keys(vocab).length <= 72, `${Object.keys(vocab).length} ids`);
  return {
    version: '1.0',
    added_tokens: [0, 1, 2].map((id) => ({ id, content: ['<unk>', '<s>', '</s>'][id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
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

describe('a Hugging Face checkpoint with tokenizer.json', () => {
  const tmp = tempDir('ns-hf-gen-');
  after(() => tmp.cleanup());
  const dir = join(tmp.dir, 'ckpt');
  cpSync(fixturePath('model', 'hf-bf16-tied'), dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinySentencePiece()));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }));

  it('encodes the prompt with it, generates those ids greedily, and decodes with it', async () => {
    const tok = HfTokenizer.load(dir);
    const prompt = 'hello world the model';
    const ids = Array.from(tok.encodePrompt(prompt, 'text'));
    assert.deepEqual(ids, [1, tok.tokenToId('▁hello'), tok.tokenToId('▁world'), tok.tokenToId('▁the'), tok.tokenToId('▁model')]);

    const r = await generateText({ checkpoint: dir, prompt, maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], threads: 1 });
    assert.equal(r.promptTokens, ids.length);
    assert.ok(r.tokens.length >= 1);
    assert.equal(r.text, tok.decode(r.tokens));

    // the same ids straight into the model give the same tokens
    const s = await openModelSession(dir, { threads: 1 });
    try {
      assert.equal(s.format, 'huggingface');
      assert.equal(basename(s.tokenizerPath!), 'tokenizer.json');
      const direct = await s.client.run({ type: 'generate', prompt: Int32Array.from(ids), maxTokens: 8, temperature: 0, stopIds: [2] });
      assert.deepEqual(r.tokens, Array.from(direct.tokens));
    } finally {
      await s.close();
    }
  });
});
