/**
 * generation_config.json (src/model/generation-config.ts): end-of-generation ids as an id or a list, the sampling
 * defaults with Hugging Face's do_sample rule, fields we do not implement ignored, wrong values refused by name.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultNewTokens, EMPTY_GENERATION_CONFIG, MAX_GENERATION_CONFIG_BYTES, parseGenerationConfig, readGenerationConfig } from '../../../src/model/generation-config.js';
import { tempDir } from '../../utils/paths.js';

const tmp = tempDir('ns-gen-config-');
after(() => tmp.cleanup());

describe('generation_config.json', () => {
  it("reads Llama 3 Instruct's file: three end ids and its sampling defaults", () => {
    const g = parseGenerationConfig({ bos_token_id: 128000, do_sample: true, eos_token_id: [128001, 128008, 128009], temperature: 0.6, top_p: 0.9, transformers_version: '4.45.0' });
    assert.deepEqual(g, { eosTokenIds: [128001, 128008, 128009], sampling: { temperature: 0.6, topP: 0.9 } });
  });

  it('takes a single id, drops repeats, and ignores what we do not implement', () => {
    assert.deepEqual(parseGenerationConfig({ eos_token_id: 2, repetition_penalty: 1.1, num_beams: 4, pad_token_id: 0 }), { eosTokenIds: [2], sampling: {} });
    assert.deepEqual(parseGenerationConfig({ eos_token_id: [2, 2, 7], eos: null }).eosTokenIds, [2, 7]);
    assert.deepEqual(parseGenerationConfig({}), { eosTokenIds: [], sampling: {} });
  });

  it('do_sample false means greedy whatever the temperature says; max_new_tokens is a default length', () => {
    assert.deepEqual(parseGenerationConfig({ do_sample: false, temperature: 0.7, top_p: 0.5, top_k: 20, max_new_tokens: 32 }).sampling, { temperature: 0, maxNewTokens: 32 });
    assert.deepEqual(parseGenerationConfig({ top_k: 40 }).sampling, { topK: 40 });
  });

  it("max_length counts the prompt; max_new_tokens wins over it (transformers' rule)", () => {
    // Llama 2 chat's file
    const llama2 = parseGenerationConfig({ bos_token_id: 1, do_sample: true, eos_token_id: 2, max_length: 4096, pad_token_id: 0, temperature: 0.6, top_p: 0.9 });
    assert.deepEqual(llama2, { eosTokenIds: [2], sampling: { temperature: 0.6, topP: 0.9, maxLength: 4096 } });
    assert.equal(defaultNewTokens(llama2.sampling, 96, 256), 4000);
    // a prompt that fills max_length still gets one token, as in transformers
    assert.equal(defaultNewTokens(llama2.sampling, 4096, 256), 1);
    const both = parseGenerationConfig({ max_length: 50, max_new_tokens: 12 }).sampling;
    assert.deepEqual(both, { maxNewTokens: 12 });
    assert.equal(defaultNewTokens(both, 40, 256), 12);
    // no length in the file: the caller's own default
    assert.equal(defaultNewTokens({ temperature: 0 }, 40, 256), 256);
  });

  it('refuses wrong values of the fields it reads, naming the field', () => {
    for (const [o, field] of [
      [{ eos_token_id: -1 }, 'eos_token_id'],
      [{ eos_token_id: [1, 'x'] }, 'eos_token_id'],
      [{ eos_token_id: Array.from({ length: 65 }, (_, i) => i) }, 'eos_token_id'],
      [{ temperature: -0.1 }, 'temperature'],
      [{ temperature: 'hot' }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ top_p: 1.5 }, 'top_p'],
      [{ top_k: 2.5 }, 'top_k'],
      [{ max_new_tokens: 0 }, 'max_new_tokens'],
      [{ max_length: 12.5 }, 'max_length'],
      [{ max_length: '4096' }, 'max_length'],
      [{ do_sample: 'yes' }, 'do_sample'],
    ] as const) {
      assert.throws(() => parseGenerationConfig(o), (e: { code: string; meta: { field: string } }) => e.code === 'GENERATION_CONFIG_INVALID' && e.meta.field === field, JSON.stringify(o));
    }
    assert.throws(() => parseGenerationConfig([1]), { code: 'GENERATION_CONFIG_INVALID' });
  });

  it('reads a directory: none there → the empty config; bad JSON or an oversized file → typed errors', () => {
    assert.equal(readGenerationConfig(tmp.dir), EMPTY_GENERATION_CONFIG);
    const path = join(tmp.dir, 'generation_config.json');
    writeFileSync(path, JSON.stringify({ eos_token_id: [2, 9], do_sample: false }));
    assert.deepEqual(readGenerationConfig(tmp.dir), { eosTokenIds: [2, 9], sampling: { temperature: 0 } });
    writeFileSync(path, '{"eos_token_id": [2,');
    assert.throws(() => readGenerationConfig(tmp.dir), { code: 'GENERATION_CONFIG_INVALID' });
    // the error names the file (and the field, for a wrong value)
    writeFileSync(path, JSON.stringify({ eos_token_id: [2, 'x'] }));
    assert.throws(
      () => readGenerationConfig(tmp.dir),
      (e: Error & { code: string; meta: { file: string; field: string } }) => e.code === 'GENERATION_CONFIG_INVALID' && e.meta.file === path && e.meta.field === 'eos_token_id' && e.message.includes(path),
    );
    writeFileSync(path, ' '.repeat(MAX_GENERATION_CONFIG_BYTES + 1));
    assert.throws(() => readGenerationConfig(tmp.dir), { code: 'GENERATION_CONFIG_INVALID' });
  });
});
