/**
 * `--weights int8` in the model: a shard that holds its projection matrices as int8 blocks.
 * - its forward (whole sequence, and prefill + decode through a KV cache) stays close to the float32 shard's
 *   (logits within a few percent of their range; the same argmax on nearly every position) and is finite;
 * - prefill + decode equals the whole-sequence forward: up to float32 rounding on the reference backend; on the
 *   native one products of at most 8 rows (a prefill of 8, each decode step) quantize their activations to int8
 *   (int8 × int8, kernels_impl.h) while the 12-row forward does not, so within that quantization's error;
 * - a chain of int8 spans computes what one int8 shard holding every layer computes;
 * - its hash is the float32 weights' span hash; it keeps no float32 buffer and refuses backward/param();
 * - its weights take about 3.5× fewer bytes per layer than float32 (1.125 bytes a weight);
 * - capacity: layersFor gives an int8 node more than 3× the layers of an f32 one when the KV budget is small.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVCache, LlamaShard, ModelStateError, makeConfig, spanHash } from '../../../src/model/index.js';
import { layerMb, layerWeightBytes, layersFor } from '../../../src/pool/capacity.js';
import { reference, relErr, randomIds, testBackends, tinyConfig } from './helpers.js';

const backends = await testBackends();

function argmaxRows(x: Float32Array, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / V; r++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (x[r * V + v]! > x[r * V + best]!) best = v;
    out.push(best);
  }
  return out;
}

for (const { name, backend } of backends) {
  describe(`int8 shard (${name})`, () => {
    // K = 64, 64 and 96: blocks of 32; a second config with an FFN of 48 (blocks of 16, as nano's 688)
    const config = tinyConfig({ hidden_size: 64, intermediate_size: 96, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 });

    it('forward stays close to float32, finite, same argmax on most positions; hash is the float32 one', () => {
      const f32 = new LlamaShard({ config, backend, seed: 3 });
      const hash = spanHash(f32.layout, f32.params);
      const q = f32.quantized();
      assert.equal(q.weights, 'int8');
      assert.equal(q.hash(), hash);
      assert.equal(q.params.length, 0);
      const B = 2;
      const T = 16;
      const ids = randomIds(B * T, config.vocab_size, 5);
      const a = f32.forward(ids, B, T).slice();
      const b = q.forward(ids, B, T).slice();
      assert.ok(b.every(Number.isFinite));
      const err = relErr(b, a);
      assert.ok(err < 0.05 && err > 0, `relative logit error ${err}`);
      const am = argmaxRows(a, config.vocab_size);
      const bm = argmaxRows(b, config.vocab_size);
      const same = am.filter((x, i) => x === bm[i]).length;
      assert.ok(same >= 0.9 * am.length, `${same} of ${am.length} argmax agree`);
    });

    it('prefill + decode through a KV cache equals the whole-sequence forward', () => {
      const q = new LlamaShard({ config, backend, seed: 4, weights: 'int8' });
      const T = 12;
      const ids = randomIds(T, config.vocab_size, 6);
      const whole = q.forward(ids, 1, T).slice();
      const cache = new KVCache(config, { span: q.span, batch: 1, maxLen: T });
      const V = config.vocab_size;
      // measured on native: 0.5-0.7 % of the logits' range
      const tol = name === 'native' ? 2e-2 : 1e-4;
      const pre = q.forward(ids.subarray(0, 8), 1, 8, { cache }).slice();
      assert.ok(relErr(pre, whole.subarray(0, 8 * V)) < tol, `prefill: ${relErr(pre, whole.subarray(0, 8 * V))}`);
      for (let t = 8; t < T; t++) {
        const step = q.forward(ids.subarray(t, t + 1), 1, 1, { cache }).slice();
        const e = relErr(step, whole.subarray(t * V, (t + 1) * V));
        assert.ok(e < tol, `position ${t}: ${e}`);
      }
    });

    it('a chain of int8 spans computes what one int8 shard computes', () => {
      const whole = new LlamaShard({ config, backend, seed: 7 });
      const L = config.num_hidden_layers;
      const parts = [
        { start: 0, end: 1 },
        { start: 1, end: L },
      ].map((span) => {
        // the whole model's weights for this span, copied through the layout's names
        const s = new LlamaShard({ config, backend, span, seed: 0 });
        for (const e of s.entries) s.params.set(whole.param(e.name), e.offset);
        return s.quantized();
      });
      const q = whole.quantized();
      const T = 8;
      const ids = randomIds(T, config.vocab_size, 8);
      const ref = q.forward(ids, 1, T).slice();
      const h = parts[0]!.forward(ids, 1, T).slice();
      const out = parts[1]!.forward(h, 1, T).slice();
      assert.deepEqual(out, ref);
    });

    it('is inference only: backward, param() and grad() are typed errors', () => {
      const q = new LlamaShard({ config, backend, seed: 1, weights: 'int8' });
      const ids = randomIds(8, config.vocab_size, 2);
      const out = q.forward(ids, 1, 8);
      assert.throws(() => q.backward(out), ModelStateError);
      assert.throws(() => q.param('model.norm.weight'), ModelStateError);
      assert.throws(() => q.grad('model.norm.weight'), ModelStateError);
    });

    it('works where 32 does not divide K (blocks of 16) and refuses widths 16 does not divide', () => {
      const c16 = tinyConfig({ hidden_size: 64, intermediate_size: 48, head_dim: 16 });
      const q = new LlamaShard({ config: c16, backend, seed: 2, weights: 'int8' });
      const f = new LlamaShard({ config: c16, backend, seed: 2 });
      const ids = randomIds(8, c16.vocab_size, 3);
      assert.ok(relErr(q.forward(ids, 1, 8).slice(), f.forward(ids, 1, 8).slice()) < 0.05);
      assert.throws(() => new LlamaShard({ config: tinyConfig({ hidden_size: 40, head_dim: 10 }), backend, weights: 'int8' }), /multiple of 16/);
    });
  });
}

describe('int8 sizes', () => {
  it('a layer of the 12x768 shape takes about 3.5× fewer bytes; the shard reports the same figure', async () => {
    const c = makeConfig({ hidden_size: 768, num_hidden_layers: 1, num_attention_heads: 12, num_key_value_heads: 4, intermediate_size: 2048, vocab_size: 256, max_position_embeddings: 64 });
    const ratio = layerWeightBytes(c) / layerWeightBytes(c, 'int8');
    assert.ok(ratio > 3.5 && ratio < 3.56, `ratio ${ratio}`);
    const { backend } = backends[0]!;
    const q = new LlamaShard({ config: c, backend, seed: 0, weights: 'int8' });
    const f = new LlamaShard({ config: c, backend, seed: 0 });
    // the shard's own count: the layer plus the float32 embedding, final norm and head
    const extra = 4 * (2 * 256 * 768 + 768);
    assert.equal(q.weightBytes - extra, layerWeightBytes(c, 'int8'));
    assert.equal(f.weightBytes - extra, layerWeightBytes(c));
  });

  it('layersFor gives an int8 node more than 3× the layers when the KV budget is small', () => {
    const c = makeConfig({ hidden_size: 768, num_hidden_layers: 48, num_attention_heads: 12, num_key_value_heads: 4, intermediate_size: 2048, vocab_size: 4096, max_position_embeddings: 256 });
    assert.ok(layerMb(c, 'int8') < layerMb(c));
    const f = layersFor(c, 300);
    const q = layersFor(c, 300, 'int8');
    assert.ok(f >= 5 && q >= 3 * f, `f32 ${f} layers, int8 ${q}`);
  });

  it('asks for 2 MiB pages on the float32 head and embedding it keeps, before they are filled (session 22)', () => {
    // a decode step streams the head every token; a slice() of it sat on 4 KiB pages (AnonHugePages: 82 of 100 MB)
    const c = tinyConfig({ tie_word_embeddings: false });
    const advised: { length: number; zero: boolean }[] = [];
    const spy = Object.create(reference) as typeof reference;
    spy.adviseHugePages = (x) => {
      advised.push({ length: x.length, zero: x.every((v) => v === 0) });
      return 0;
    };
    const q = new LlamaShard({ config: c, backend: spy, seed: 0, weights: 'int8' });
    const V = c.vocab_size * c.hidden_size;
    // the embedding and the head: each advised while still zero (the advice is for the pages' first touch)
    assert.equal(advised.filter((a) => a.length === V && a.zero).length, 2, JSON.stringify(advised));
    const arrays = q.decodeReadArrays();
    assert.equal(arrays.at(-1)!.length, V);
  });
});
