/**
 * LlamaConfig: nano's values, validation with typed errors, Hugging Face config.json parsing (defaults for missing
 * fields, unsupported options refused by name), the config.json we write round-trips, presets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  makeConfig,
  NANO,
  parseHfConfig,
  presetConfig,
  presetNames,
  toHfConfigJson,
  totalParams,
  validateConfig,
  type LlamaConfig,
} from '../../../src/model/index.js';
import { isNeuroShardError, type NeuroShardError } from '../../../src/util/errors.js';

describe('LlamaConfig', () => {
  it('nano is the anchor shape', () => {
    assert.deepEqual(
      [NANO.hidden_size, NANO.num_hidden_layers, NANO.num_attention_heads, NANO.num_key_value_heads, NANO.head_dim, NANO.intermediate_size, NANO.vocab_size, NANO.max_position_embeddings],
      [256, 4, 4, 2, 64, 688, 4096, 256],
    );
    assert.equal(NANO.rms_norm_eps, 1e-6);
    assert.equal(NANO.rope_theta, 10000);
    assert.equal(NANO.tie_word_embeddings, false);
    assert.equal(totalParams(NANO), 4_999_424);
    assert.deepEqual(presetConfig('nano'), NANO);
  });

  it('validation names the bad field', () => {
    const cases: [Partial<LlamaConfig>, string][] = [
      [{ hidden_size: 0 }, 'hidden_size'],
      [{ num_key_value_heads: 3 }, 'num_key_value_heads'],
      [{ head_dim: 63 }, 'head_dim'],
      [{ rms_norm_eps: 0 }, 'rms_norm_eps'],
      [{ rope_theta: -1 }, 'rope_theta'],
      [{ vocab_size: 1.5 }, 'vocab_size'],
      [{ eos_token_id: 4096 }, 'eos_token_id'],
      [{ tie_word_embeddings: 'no' as unknown as boolean }, 'tie_word_embeddings'],
    ];
    for (const [over, field] of cases) {
      assert.throws(
        () => validateConfig({ ...NANO, ...over }),
        (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID') && (e as NeuroShardError).fault === 'config' && (e as Error).message.includes(field),
        field,
      );
    }
  });

  it('makeConfig derives head_dim, KV heads and the SwiGLU width', () => {
    const c = makeConfig({ hidden_size: 512, num_hidden_layers: 2, num_attention_heads: 8 });
    assert.equal(c.head_dim, 64);
    assert.equal(c.num_key_value_heads, 8);
    assert.equal(c.intermediate_size, 1376);
  });

  it('parses a Hugging Face config.json, filling LlamaConfig defaults', () => {
    const c = parseHfConfig(JSON.stringify({ model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 128, vocab_size: 100, torch_dtype: 'bfloat16', eos_token_id: [2, 7] }));
    assert.equal(c.num_key_value_heads, 4);
    assert.equal(c.head_dim, 16);
    assert.equal(c.rms_norm_eps, 1e-6);
    assert.equal(c.rope_theta, 10000);
    assert.equal(c.max_position_embeddings, 2048);
    assert.equal(c.tie_word_embeddings, false);
    assert.equal(c.eos_token_id, 2);
    // explicit head_dim different from hidden / heads is honoured
    assert.equal(parseHfConfig({ hidden_size: 48, num_attention_heads: 4, head_dim: 16, num_hidden_layers: 1, vocab_size: 10 }).head_dim, 16);
  });

  it('refuses unsupported options by name', () => {
    const base = { hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, vocab_size: 100 };
    const cases: [Record<string, unknown>, string][] = [
      [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'rope_scaling'],
      [{ rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling'],
      [{ attention_bias: true }, 'attention_bias'],
      [{ mlp_bias: true }, 'mlp_bias'],
      [{ hidden_act: 'gelu' }, 'hidden_act'],
      [{ model_type: 'mistral' }, 'model_type'],
      [{ sliding_window: 4096 }, 'sliding_window'],
      [{ attention_dropout: 0.1 }, 'attention_dropout'],
      [{ architectures: ['MistralForCausalLM'] }, 'architectures'],
    ];
    for (const [over, name] of cases) {
      assert.throws(
        () => parseHfConfig({ ...base, ...over }, 'some/config.json'),
        (e) => isNeuroShardError(e, 'MODEL_OPTION_UNSUPPORTED') && (e as Error).message.includes(name) && (e as Error).message.includes('some/config.json'),
        name,
      );
    }
    // harmless values of those options are accepted
    parseHfConfig({ ...base, rope_scaling: null, attention_bias: false, hidden_act: 'silu', rope_scaling_unused: 1, pretraining_tp: 1 });
    parseHfConfig({ ...base, rope_scaling: { rope_type: 'default' } });
  });

  it('rejects malformed files with the file name', () => {
    assert.throws(() => parseHfConfig('{not json', 'x/config.json'), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID') && /x\/config.json/.test((e as Error).message));
    assert.throws(() => parseHfConfig('[]'), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));
    assert.throws(() => parseHfConfig({ hidden_size: 'big' }), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID') && /hidden_size/.test((e as Error).message));
    assert.throws(() => parseHfConfig('x'.repeat(2 << 20)), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));
  });

  it('the config.json we write round-trips and says tie_word_embeddings false', () => {
    const j = toHfConfigJson(NANO);
    assert.equal(j.tie_word_embeddings, false);
    assert.equal(j.model_type, 'llama');
    assert.deepEqual(j.architectures, ['LlamaForCausalLM']);
    assert.deepEqual(parseHfConfig(JSON.stringify(j)), NANO);
  });

  it('presets: nano and the ladder rungs by name', () => {
    const names = presetNames();
    assert.equal(names[0], 'nano');
    assert.ok(names.includes('16x1024') && names.includes('32x3072') && names.includes('64x7168'));
    const c = presetConfig('32x3072');
    assert.equal(c.hidden_size, 3072);
    assert.equal(c.num_attention_heads, 48);
    assert.equal(c.num_key_value_heads, 24);
    assert.throws(() => presetConfig('huge'), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => presetConfig('17x1024'), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});
