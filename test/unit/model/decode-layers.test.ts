/**
 * decodeLayers (session 23: the native backend runs all of a span's layers of a decode step, 1-8 sequences, in one
 * call and one pool job): a shard that takes it computes exactly the bits (logits or hidden states, and the KV
 * caches) that the per-layer path (one decodeLayer call a layer) and the op-by-op path compute, for float32 and
 * int8 weights, 1 and 2 threads, whole model and spans, through forward with a cache and decodeBatch of 1-8
 * sequences at different positions; and every step is one decodeLayers call. The configs are decode-layer.test.ts's
 * (products split among 2 threads, int8 blocks of 16 beside 32, a K past the f32 kernel's block) plus a deeper one
 * whose FFN width (448: 7 runs of 64) has its SwiGLU phase split unevenly between 2 threads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVCache, LlamaShard, type LlamaConfig } from '../../../src/model/index.js';
import { tryLoadNativeBackend, type Backend } from '../../../src/tensor/index.js';
import { decodeLayersOf } from '../../../src/tensor/decode-layers.js';
import { Rng } from '../../../src/util/rng.js';
import { randomIds, tinyConfig } from './helpers.js';

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}

/** The same backend, counting decodeLayer and decodeLayers calls; `ops: true` hides both (the op-by-op path). */
function wrap(backend: Backend, calls: { layer: number; layers: number }, ops = false): Backend {
  return new Proxy(backend, {
    get(t, p) {
      if (ops && (p === 'decodeLayer' || p === 'decodeLayers')) return undefined;
      const v = Reflect.get(t, p, t) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(t);
      if (p === 'decodeLayer') return (...a: unknown[]) => (calls.layer++, f(...a));
      if (p === 'decodeLayers') return (...a: unknown[]) => (calls.layers++, f(...a));
      return f;
    },
  });
}

const configs: { name: string; config: LlamaConfig }[] = [
  { name: 'tiny', config: tinyConfig() },
  {
    name: 'C128 F336',
    config: tinyConfig({ hidden_size: 128, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 336, num_hidden_layers: 2, vocab_size: 64 }),
  },
  {
    name: 'C64 F1104',
    config: tinyConfig({ hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 1104, num_hidden_layers: 2, vocab_size: 64 }),
  },
  {
    name: 'C128 F448 L5',
    config: tinyConfig({ hidden_size: 128, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 448, num_hidden_layers: 5, vocab_size: 64 }),
  },
];

/**
 * B sequences (prompts of different lengths: each row at its own position), decoded 4 steps through decodeLayers
 * (`one`), through decodeLayer a layer at a time (`per`), and op by op (`ops`); B = 1 alternates forward with a
 * cache and decodeBatch.
 */
function check(config: LlamaConfig, backend: Backend, span: { start: number; end: number }, weights: 'f32' | 'int8', B: number): void {
  const calls = { layer: 0, layers: 0 };
  const other = { layer: 0, layers: 0 };
  const f32 = new LlamaShard({ config, backend: wrap(backend, calls), seed: 13, span });
  const perF32 = new LlamaShard({ config, backend: wrap(backend, other), span, params: f32.params });
  const opsF32 = new LlamaShard({ config, backend: wrap(backend, other, true), span, params: f32.params });
  const [one, per, ops] = [f32, perF32, opsF32].map((s) => (weights === 'int8' ? s.quantized() : s));
  one.decodeOneCall = true;
  per.decodeOneCall = false;
  const C = config.hidden_size;
  const rng = new Rng(200 + B);
  const input = (n: number): Int32Array | Float32Array =>
    one.hasEmbed ? Int32Array.from({ length: n }, () => rng.int(config.vocab_size)) : Float32Array.from({ length: n * C }, () => rng.normal());
  const shards = [one, per, ops];
  const sets = shards.map((s) => Array.from({ length: B }, () => new KVCache(config, { span: s.span, batch: 1, maxLen: 24 })));
  for (let b = 0; b < B; b++) {
    const len = 1 + ((b * 5) % 7);
    const prompt = one.hasEmbed ? randomIds(len, config.vocab_size, 30 + b) : input(len);
    shards.forEach((s, i) => s.forward(prompt, 1, len, { cache: sets[i][b] }));
  }
  calls.layer = calls.layers = other.layer = other.layers = 0;
  for (let step = 0; step < 4; step++) {
    const x = input(B);
    const viaForward = B === 1 && step % 2 === 0;
    const outs = shards.map((s, i) => (viaForward ? s.forward(x, 1, 1, { cache: sets[i][0] }) : s.decodeBatch(x, sets[i])).slice());
    sameBits(outs[0], outs[1], `${B} rows, step ${step}: decodeLayers vs decodeLayer`);
    sameBits(outs[0], outs[2], `${B} rows, step ${step}: decodeLayers vs op by op`);
  }
  assert.equal(calls.layers, 4, 'every decode step was one decodeLayers call');
  assert.equal(calls.layer, 0, 'no layer went through decodeLayer on the one-call shard');
  assert.equal(other.layers, 0, 'the per-layer shard never called decodeLayers');
  assert.equal(other.layer, 4 * (span.end - span.start), 'the per-layer shard called decodeLayer once a layer');
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < sets[0][b].k.length; l++) {
      sameBits(sets[0][b].k[l], sets[1][b].k[l], `row ${b}: k cache of layer ${l}`);
      sameBits(sets[0][b].v[l], sets[1][b].v[l], `row ${b}: v cache of layer ${l}`);
      sameBits(sets[0][b].k[l], sets[2][b].k[l], `row ${b}: k cache of layer ${l} (op by op)`);
    }
  }
}

describe('decodeLayers: a decode step in one call, bit-identical to decodeLayer per layer and to the op-by-op path', () => {
  for (const threads of [1, 2]) {
    for (const { name, config } of configs) {
      it(`native ${threads}T, ${name}: f32 and int8, 1-8 rows, whole model and spans`, async (t) => {
        const n = await tryLoadNativeBackend({ threads });
        if (!n.ok) {
          t.skip('native addon not built');
          return;
        }
        assert.notEqual(decodeLayersOf(n.backend), undefined, 'the native backend has decodeLayers');
        const L = config.num_hidden_layers;
        for (const span of [
          { start: 0, end: L },
          { start: 0, end: 1 },
          { start: 1, end: L },
        ]) {
          for (const weights of ['f32', 'int8'] as const) {
            for (const B of [1, 2, 3, 8]) check(config, n.backend, span, weights, B);
          }
        }
      });
    }
  }

  it('argument checks: res entries must differ, layers and caches must be long enough', async (t) => {
    const n = await tryLoadNativeBackend({ threads: 1 });
    if (!n.ok) {
      t.skip('native addon not built');
      return;
    }
    const call = decodeLayersOf(n.backend)!;
    const C = 16, H = 2, KV = 1, D = 8, F = 32;
    const x = new Float32Array(C);
    const norm = new Float32Array(C).fill(1);
    const layer = [norm, norm, new Float32Array((H * D + 2 * KV * D) * C), new Float32Array(C * H * D), new Float32Array(2 * F * C), new Float32Array(C * F), null, null, null, null];
    const cache = new Float32Array(4 * KV * D);
    const base = { L: 1, B: 1, layers: layer, kCache: [cache], vCache: [new Float32Array(4 * KV * D)], ws: new Float32Array(4096), C, H, KV, D, F, pos: Int32Array.of(0), maxS: Int32Array.of(4), blockSizes: null, eps: 1e-5, theta: 10000 };
    assert.throws(() => call({ ...base, res: [x, x] }), /res\[1\] is res\[0\]/);
    assert.throws(() => call({ ...base, res: [x, new Float32Array(C)], layers: layer.slice(0, 9) }), /layers has 9 entries/);
    assert.throws(() => call({ ...base, res: [x, new Float32Array(C)], L: 2 }), /res has 2 entries, need 3/);
    assert.throws(() => call({ ...base, res: [x, new Float32Array(C)], kCache: [new Float32Array(1)] }), /kCaches\[0\] has 1 elements/);
    call({ ...base, res: [x, new Float32Array(C)] });
  });
});
