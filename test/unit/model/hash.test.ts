/**
 * Model hash definition, checked against an independent computation: a layer hash is SHA-256 of its tensors in
 * name order as float32 little-endian bytes; the embedding and the head are layers; a span hash is SHA-256 of its
 * layer hashes in order. Also the learning-rate schedule of training-defaults.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { layerHash, layerHashes, learningRate, LlamaShard, NEUROLLM_SCHEDULE, spanHash } from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { reference as backend, tinyConfig } from './helpers.js';

function sha(parts: Float32Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return h.digest();
}

describe('model hash', () => {
  it('matches the written definition', () => {
    const m = new LlamaShard({ config: tinyConfig({ num_hidden_layers: 2 }), backend, seed: 1 });
    const p = (n: string): Float32Array => m.param(n);
    const l0 = [
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.mlp.down_proj.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.v_proj.weight',
    ];
    assert.deepEqual(Buffer.from(layerHash(m.layout, m.params, 0)), sha(l0.map(p)));
    const embed = sha([p('model.embed_tokens.weight')]);
    const head = sha([p('lm_head.weight'), p('model.norm.weight')]);
    assert.deepEqual(Buffer.from(layerHash(m.layout, m.params, 'head')), head);
    const l1 = Buffer.from(layerHash(m.layout, m.params, 1));
    const want = createHash('sha256').update(embed).update(sha(l0.map(p))).update(l1).update(head).digest('hex');
    assert.equal(spanHash(m.layout, m.params), want);
    assert.deepEqual([...layerHashes(m.layout, m.params).keys()], ['embed', 0, 1, 'head']);
    // any change of any weight changes the hash
    m.param('model.layers.1.mlp.up_proj.weight')[3] += 1e-3;
    assert.notEqual(spanHash(m.layout, m.params), want);
  });

  it('tied models hash the embedding as the head matrix', () => {
    const m = new LlamaShard({ config: tinyConfig({ num_hidden_layers: 1, tie_word_embeddings: true }), backend, seed: 1 });
    assert.deepEqual(Buffer.from(layerHash(m.layout, m.params, 'head')), sha([m.param('model.embed_tokens.weight'), m.param('model.norm.weight')]));
  });
});

describe('learning-rate schedule', () => {
  const s = { ...NEUROLLM_SCHEDULE, totalSteps: 1100 };
  it('warms up linearly, decays by cosine to the floor, then stays', () => {
    assert.equal(learningRate(0, s), s.peak / 100);
    assert.equal(learningRate(99, s), s.peak);
    assert.ok(Math.abs(learningRate(600, s) - (s.peak + s.peak * s.minRatio) / 2) < 1e-12, 'half way down at mid-decay');
    assert.ok(Math.abs(learningRate(1100, s) - s.peak * s.minRatio) < 1e-15);
    assert.equal(learningRate(5000, s), learningRate(1100, s));
    for (let i = 100; i < 1100; i++) assert.ok(learningRate(i + 1, s) <= learningRate(i, s));
    assert.throws(() => learningRate(-1, s), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => learningRate(1, { ...s, peak: 0 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});
