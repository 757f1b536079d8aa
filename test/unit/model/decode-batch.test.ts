/**
 * LlamaShard.decodeBatch (continuous batching): B sequences, each on its own KV cache at its own position, decoded
 * in one forward give exactly the bits (not just close values) that decoding each alone gives, on the reference
 * backend and on the native one with 1 and 2 threads, for the whole model and for driver, middle and validator
 * spans; and the caches end up identical.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVCache, LlamaShard, MAX_DECODE_BATCH, type LlamaConfig } from '../../../src/model/index.js';
import { tryLoadNativeBackend, type Backend } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';
import { randomIds, reference, tinyConfig } from './helpers.js';

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}

async function backends(): Promise<{ name: string; backend: Backend }[]> {
  const out = [{ name: 'reference', backend: reference }];
  for (const threads of [1, 2]) {
    const n = await tryLoadNativeBackend({ threads });
    if (n.ok) out.push({ name: `native ${threads}T`, backend: n.backend });
  }
  return out;
}

/** Input of one position for a span: an id (driver) or a hidden row [C]. */
function inputs(shard: LlamaShard, n: number, rng: Rng): Int32Array | Float32Array {
  if (shard.hasEmbed) return Int32Array.from({ length: n }, () => rng.int(shard.config.vocab_size));
  return Float32Array.from({ length: n * shard.config.hidden_size }, () => rng.normal());
}

function check(config: LlamaConfig, backend: Backend, span: { start: number; end: number }, B: number): void {
  const shard = new LlamaShard({ config, backend, seed: 3, span });
  const W = shard.outputWidth;
  const C = config.hidden_size;
  const rng = new Rng(17 + B);
  // B sequences with different prompt lengths (so different positions), each cached twice: solo and batched
  const solo: KVCache[] = [];
  const batched: KVCache[] = [];
  for (let b = 0; b < B; b++) {
    const P = 1 + ((b * 3) % 7);
    const prompt = shard.hasEmbed ? randomIds(P, config.vocab_size, 100 + b) : inputs(shard, P, rng);
    for (const set of [solo, batched]) {
      const cache = new KVCache(config, { span, batch: 1, maxLen: 24 });
      shard.forward(prompt, 1, P, { cache });
      set.push(cache);
    }
  }
  for (let step = 0; step < 4; step++) {
    const x = inputs(shard, B, rng);
    const one = (b: number): Int32Array | Float32Array => (x instanceof Int32Array ? x.subarray(b, b + 1) : x.subarray(b * C, (b + 1) * C));
    const want = new Float32Array(B * W);
    for (let b = 0; b < B; b++) want.set(shard.forward(one(b), 1, 1, { cache: solo[b] }), b * W);
    const got = shard.decodeBatch(x, batched).slice();
    sameBits(got, want, `step ${step}, B ${B}, span ${span.start}:${span.end}`);
  }
  for (let b = 0; b < B; b++) {
    assert.equal(batched[b].length, solo[b].length);
    for (let l = 0; l < span.end - span.start; l++) {
      const n = solo[b].length * config.num_key_value_heads * config.head_dim;
      sameBits(batched[b].k[l].subarray(0, n), solo[b].k[l].subarray(0, n), `k cache ${b}/${l}`);
      sameBits(batched[b].v[l].subarray(0, n), solo[b].v[l].subarray(0, n), `v cache ${b}/${l}`);
    }
  }
}

describe('LlamaShard.decodeBatch', () => {
  // odd sizes: the native kernels' vector tails are exercised (96 = 6·16, 160 = 10·16, 70 not a multiple of 4)
  const configs = [tinyConfig(), tinyConfig({ hidden_size: 96, num_attention_heads: 6, num_key_value_heads: 2, intermediate_size: 160, vocab_size: 70 })];

  it('gives each row the bits a batch-1 decode of that sequence gives (whole model and spans, B = 1..8)', async () => {
    for (const { name, backend } of await backends()) {
      for (const config of configs) {
        const L = config.num_hidden_layers;
        for (const span of [{ start: 0, end: L }, { start: 0, end: 1 }, { start: 1, end: 2 }, { start: 2, end: L }]) {
          for (const B of [1, 2, 3, 5, 8]) {
            try {
              check(config, backend, span, B);
            } catch (e) {
              (e as Error).message = `${name}, C ${config.hidden_size}: ${(e as Error).message}`;
              throw e;
            }
          }
        }
      }
    }
  });

  it('refuses more than MAX_DECODE_BATCH rows, a cache twice, a full cache, and a wrong input size', () => {
    const config = tinyConfig();
    const shard = new LlamaShard({ config, backend: reference, seed: 1 });
    const caches = Array.from({ length: MAX_DECODE_BATCH + 1 }, () => new KVCache(config, { batch: 1, maxLen: 4 }));
    assert.throws(() => shard.decodeBatch(new Int32Array(MAX_DECODE_BATCH + 1), caches), { code: 'SHAPE_MISMATCH' });
    assert.throws(() => shard.decodeBatch(new Int32Array(2), [caches[0], caches[0]]), /twice/);
    assert.throws(() => shard.decodeBatch(new Int32Array(3), caches.slice(0, 2)), { code: 'SHAPE_MISMATCH' });
    const full = new KVCache(config, { batch: 1, maxLen: 1 });
    shard.forward(new Int32Array(1), 1, 1, { cache: full });
    assert.throws(() => shard.decodeBatch(new Int32Array(2), [caches[0], full]));
    assert.equal(caches[0].length, 0, 'a refused batch advances no cache');
  });
});
