/**
 * A Hugging Face Llama checkpoint that ships tokenizer.json generates through `neuroshard generate`'s path
 * (node/generate.ts → model-session): the prompt is encoded by its tokenizer.json (with the post-processor's <s>),
 * the greedy tokens are those the model computes for exactly those ids, and the text is their decoding by the same
 * tokenizer. The checkpoint is the committed tiny fixture (vocab 72); the tokenizer is the SentencePiece-style BPE
 * of test/utils/hf-checkpoint.ts (54 ids), which fits it.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HfTokenizer } from '../../../src/model/tokenizer/hf.js';
import { generateText } from '../../../src/node/generate.js';
import { openModelSession } from '../../../src/node/model-session.js';
import { sentencePieceTokenizerJson, SP_BASE_VOCAB } from '../../utils/hf-checkpoint.js';
import { fixturePath, tempDir } from '../../utils/paths.js';

describe('a Hugging Face checkpoint with tokenizer.json', () => {
  const tmp = tempDir('ns-hf-gen-');
  after(() => tmp.cleanup());
  const dir = join(tmp.dir, 'ckpt');
  cpSync(fixturePath('model', 'hf-bf16-tied'), dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceTokenizerJson()));
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

  it("stops on an end id that only generation_config.json names (a list, as Llama 3's)", async () => {
    const args = { prompt: 'hello world the model', maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], threads: 1 };
    const plain = await generateText({ checkpoint: dir, ...args });
    assert.equal(plain.finishReason, 'length');
    // the first generated token that is one of the tokenizer's ids (the fixture's greedy answer repeats one token)
    const at = plain.tokens.findIndex((t) => t < SP_BASE_VOCAB && t !== 2);
    assert.ok(at >= 0, `no token to stop on in ${plain.tokens.join(',')}`);
    const withGen = join(tmp.dir, 'ckpt-gen');
    cpSync(dir, withGen, { recursive: true });
    writeFileSync(join(withGen, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, plain.tokens[at]!] }));
    const r = await generateText({ checkpoint: withGen, ...args });
    assert.deepEqual(r.tokens, plain.tokens.slice(0, at));
    assert.equal(r.finishReason, 'stop');
  });
});
