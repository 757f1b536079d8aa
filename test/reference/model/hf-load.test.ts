/**
 * Hugging Face-layout checkpoints written by other tools (fixtures from scripts/reference/tiny_llama.py) load and
 * give PyTorch's logits: F16 weights with a sparse config.json (its missing fields take LlamaConfig's defaults) and
 * an old exporter's rotary_emb.inv_freq buffers; BF16 weights with tied embeddings, multi-query attention and
 * θ 500000. Tolerance: max|ours − torch| / max|torch| ≤ 1e-5 (both sides compute in float32 from the same weights).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadAnyCheckpoint, loadHfModel, SafetensorsFile } from '../../../src/model/index.js';
import { fixturePath } from '../../utils/paths.js';
import { relErr, testBackends } from '../../unit/model/helpers.js';

function expected(dir: string): { ids: Int32Array; logits: Float32Array } {
  const f = SafetensorsFile.open(join(dir, 'expected.safetensors'));
  try {
    return { ids: f.tensorI32('input_ids'), logits: f.tensorF32('logits') };
  } finally {
    f.close();
  }
}

for (const { name, backend } of await testBackends()) {
  describe(`foreign Hugging Face checkpoints (${name} backend)`, () => {
    it('F16, untied, defaults filled in from LlamaConfig', () => {
      const dir = fixturePath('model', 'hf-f16');
      const { config, model } = loadHfModel(dir, { backend });
      assert.equal(config.num_key_value_heads, 4, 'KV heads default to the heads');
      assert.equal(config.head_dim, 8, 'head_dim defaults to hidden / heads');
      assert.equal(config.rms_norm_eps, 1e-6);
      assert.equal(config.rope_theta, 10000);
      assert.equal(config.tie_word_embeddings, false);
      const e = expected(dir);
      const logits = model.forward(e.ids, 1, e.ids.length);
      const err = relErr(logits, e.logits);
      assert.ok(err <= 1e-5, `rel err ${err}`);
    });

    it('BF16, tied embeddings, one KV head', () => {
      const dir = fixturePath('model', 'hf-bf16-tied');
      const { config, model, verified } = loadAnyCheckpoint(dir, { backend });
      assert.equal(verified, null, 'a foreign checkpoint has no manifest to verify');
      assert.equal(config.tie_word_embeddings, true);
      assert.equal(config.num_key_value_heads, 1);
      assert.equal(model.layout.has('lm_head.weight'), false);
      const e = expected(dir);
      const logits = model.forward(e.ids, 1, e.ids.length);
      const err = relErr(logits, e.logits);
      assert.ok(err <= 1e-5, `rel err ${err}`);
    });
  });
}
