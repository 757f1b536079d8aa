/**
 * Backend.decodeLayer (the native backend runs a decode step's layer, 1-8 sequences, as one pool job): a shard
 * whose backend has it computes exactly the bits (logits or hidden states, and the KV cache) that the op-by-op path
 * computes, for float32 and int8 weights, 1 and 2 threads, whole model and spans, through forward with a cache and
 * decodeBatch of one sequence; and decodeBatch of 2-8 sequences at different positions gives each row the bits that
 * the op-by-op batch and that sequence decoded alone give. The second config has products large enough to be split
 * among 2 threads, and an FFN width (336) whose int8 blocks are 16 weights while the others are 32; the third an FFN
 * width (1104) past the K block of the 5-8 row f32 kernel.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVCache, LlamaShard, type LlamaConfig } from '../../../src/model/index.js';
import { tryLoadNativeBackend, type Backend } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';
import { randomIds, tinyConfig } from './helpers.js';

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}

/** The same backend without decodeLayer: the shard then takes the op-by-op path. */
function opByOp(backend: Backend): Backend {
  return new Proxy(backend, {
    get(t, p) {
      if (p === 'decodeLayer') return undefined;
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/**
 * The same backend, counting decodeLayer calls in `calls.n`; without decodeLayers (a whole step in one call,
 * decode-layers.test.ts), so that the shard calls decodeLayer layer by layer.
 */
function counting(backend: Backend, calls: { n: number }): Backend {
  return new Proxy(backend, {
    get(t, p) {
      if (p === 'decodeLayers') return undefined;
      const v = Reflect.get(t, p, t) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(t);
      return p === 'decodeLayer' ? (...a: unknown[]) => (calls.n++, f(...a)) : f;
    },
  });
}

const configs: { name: string; config: LlamaConfig }[] = [
  { name: 'tiny', config: tinyConfig() },
  {
    name: 'C128 F336',
    config: tinyConfig({ hidden_size: 128, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 336, num_hidden_layers: 2, vocab_size: 64 }),
  },
  // The down projection's K = 1104 is past the 1024-float K block of the AVX-512 5-8 row f32 kernel (its
  // accumulators are parked between blocks) and ends in a partial block.
  {
    name: 'C64 F1104',
    config: tinyConfig({ hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 1104, num_hidden_layers: 2, vocab_size: 64 }),
  },
];

function check(config: LlamaConfig, backend: Backend, span: { start: number; end: number }, weights: 'f32' | 'int8', batch: boolean): void {
  const calls = { n: 0 };
  const f32 = new LlamaShard({ config, backend: counting(backend, calls), seed: 5, span });
  const fast = weights === 'int8' ? f32.quantized() : f32;
  const plainF32 = new LlamaShard({ config, backend: opByOp(backend), span, params: f32.params });
  const plain = weights === 'int8' ? plainF32.quantized() : plainF32;
  const C = config.hidden_size;
  const rng = new Rng(11);
  const input = (n: number): Int32Array | Float32Array =>
    fast.hasEmbed ? Int32Array.from({ length: n }, () => rng.int(config.vocab_size)) : Float32Array.from({ length: n * C }, () => rng.normal());
  const caches = [fast, plain].map((s) => new KVCache(config, { span: s.span, batch: 1, maxLen: 16 }));
  const prompt = fast.hasEmbed ? randomIds(3, config.vocab_size, 7) : input(3);
  fast.forward(prompt, 1, 3, { cache: caches[0] });
  plain.forward(prompt, 1, 3, { cache: caches[1] });
  for (let step = 0; step < 6; step++) {
    const x = input(1);
    const got = (batch ? fast.decodeBatch(x, [caches[0]]) : fast.forward(x, 1, 1, { cache: caches[0] })).slice();
    const want = batch ? plain.decodeBatch(x, [caches[1]]) : plain.forward(x, 1, 1, { cache: caches[1] });
    sameBits(got, want, `step ${step}`);
  }
  assert.equal(calls.n, 6 * (span.end - span.start), 'every decode step ran its layers through decodeLayer');
  for (let l = 0; l < caches[0].k.length; l++) {
    sameBits(caches[0].k[l], caches[1].k[l], `k cache of layer ${l}`);
    sameBits(caches[0].v[l], caches[1].v[l], `v cache of layer ${l}`);
  }
}

describe('Backend.decodeLayer: bit-identical to the op-by-op decode', () => {
  for (const threads of [1, 2]) {
    for (const { name, config } of configs) {
      it(`native ${threads}T, ${name}: f32 and int8, forward and decodeBatch, whole model and spans`, async (t) => {
        const n = await tryLoadNativeBackend({ threads });
        if (!n.ok) {
          t.skip('native addon not built');
          return;
        }
        assert.equal(typeof n.backend.decodeLayer, 'function');
        const L = config.num_hidden_layers;
        const spans = [
          { start: 0, end: L },
          { start: 0, end: 1 },
          { start: 1, end: L },
        ];
        for (const span of spans) {
          for (const weights of ['f32', 'int8'] as const) {
            for (const batch of [false, true]) check(config, n.backend, span, weights, batch);
          }
        }
      });
    }
  }
});

/**
 * decodeBatch of B sequences (prompts of different lengths, so every row is at its own position) through
 * decodeLayer, against the op-by-op decodeBatch of the same B and against each sequence decoded alone (batch of 1
 * through decodeLayer): the same bits for every row, and the same caches.
 */
function checkRows(config: LlamaConfig, backend: Backend, span: { start: number; end: number }, weights: 'f32' | 'int8', B: number): void {
  const calls = { n: 0 };
  const f32 = new LlamaShard({ config, backend: counting(backend, calls), seed: 9, span });
  const fast = weights === 'int8' ? f32.quantized() : f32;
  const plainF32 = new LlamaShard({ config, backend: opByOp(backend), span, params: f32.params });
  const plain = weights === 'int8' ? plainF32.quantized() : plainF32;
  const C = config.hidden_size;
  const rng = new Rng(100 + B);
  const input = (n: number): Int32Array | Float32Array =>
    fast.hasEmbed ? Int32Array.from({ length: n }, () => rng.int(config.vocab_size)) : Float32Array.from({ length: n * C }, () => rng.normal());
  // three sets of B caches: batched through decodeLayer, batched op by op, one sequence at a time
  const sets = [fast, plain, fast].map((s) => Array.from({ length: B }, () => new KVCache(config, { span: s.span, batch: 1, maxLen: 24 })));
  for (let b = 0; b < B; b++) {
    const len = 1 + ((b * 5) % 7);
    const prompt = fast.hasEmbed ? randomIds(len, config.vocab_size, 20 + b) : input(len);
    fast.forward(prompt, 1, len, { cache: sets[0][b] });
    plain.forward(prompt, 1, len, { cache: sets[1][b] });
    fast.forward(prompt, 1, len, { cache: sets[2][b] });
  }
  calls.n = 0;
  const per = fast.hasEmbed ? 1 : C;
  for (let step = 0; step < 4; step++) {
    const x = input(B);
    const got = fast.decodeBatch(x, sets[0]).slice();
    const want = plain.decodeBatch(x, sets[1]).slice();
    sameBits(got, want, `${B} rows, step ${step}: decodeLayer vs op by op`);
    const width = got.length / B;
    for (let b = 0; b < B; b++) {
      const xb = x.subarray(b * per, (b + 1) * per) as Int32Array | Float32Array;
      const alone = fast.decodeBatch(xb, [sets[2][b]]);
      sameBits(got.subarray(b * width, (b + 1) * width), alone, `${B} rows, step ${step}, row ${b}: batched vs alone`);
    }
  }
  // 4 batched steps and 4·B steps alone, every layer through decodeLayer
  assert.equal(calls.n, 4 * (1 + B) * (span.end - span.start), 'every decode step ran its layers through decodeLayer');
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < sets[0][b].k.length; l++) {
      sameBits(sets[0][b].k[l], sets[1][b].k[l], `row ${b}: k cache of layer ${l} (op by op)`);
      sameBits(sets[0][b].v[l], sets[1][b].v[l], `row ${b}: v cache of layer ${l} (op by op)`);
      sameBits(sets[0][b].k[l], sets[2][b].k[l], `row ${b}: k cache of layer ${l} (alone)`);
      sameBits(sets[0][b].v[l], sets[2][b].v[l], `row ${b}: v cache of layer ${l} (alone)`);
    }
  }
}

describe('Backend.decodeLayer over 2-8 sequences: bit-identical to the op-by-op batch and to each row alone', () => {
  for (const threads of [1, 2]) {
    for (const { name, config } of configs) {
      it(`native ${threads}T, ${name}: f32 and int8, 2-8 rows, whole model and a span`, async (t) => {
        const n = await tryLoadNativeBackend({ threads });
        if (!n.ok) {
          t.skip('native addon not built');
          return;
        }
        const L = config.num_hidden_layers;
        for (const span of [
          { start: 0, end: L },
          { start: 1, end: L },
        ]) {
          for (const weights of ['f32', 'int8'] as const) {
            for (let B = 2; B <= 8; B++) checkRows(config, n.backend, span, weights, B);
          }
        }
      });
    }
  }
});
