/**
 * Decode with a KV cache gives the same outputs as attention over the whole sequence (tolerance 1e-6 absolute),
 * with RoPE positions continuing from the cache length (never restarting at 0).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVCache, RoPE, Tensor, attention, attentionWithCache, createReferenceBackend } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';
import { assertClose } from './helpers.js';

const be = createReferenceBackend();

/** Positions [t0, t1) of x [B, T, H, D] as a new tensor. */
function slice(x: Tensor, t0: number, t1: number): Tensor {
  const [B, T, H, D] = x.shape;
  const out = Tensor.zeros([B, t1 - t0, H, D]);
  const row = H * D;
  for (let b = 0; b < B; b++) out.data.set(x.data.subarray((b * T + t0) * row, (b * T + t1) * row), b * (t1 - t0) * row);
  return out;
}

describe('KV-cache decode', () => {
  for (const B of [1, 2]) {
    it(`prefill then token-by-token decode equals full causal attention with RoPE (B = ${B})`, () => {
      const rng = new Rng(100 + B);
      const [T, H, KV, D] = [9, 4, 2, 8];
      const rope = new RoPE(be, { theta: 10000 });
      const q = Tensor.randn([B, T, H, D], rng);
      const k = Tensor.randn([B, T, KV, D], rng);
      const v = Tensor.randn([B, T, KV, D], rng);
      // full sequence: rotate with positions 0..T-1, attend
      const full = attention(be, rope.forwardInPlace(q.clone()), rope.forwardInPlace(k.clone()), v);

      const cache = new KVCache({ batch: B, maxSeq: 16, nKvHeads: KV, headDim: D });
      const prefill = 4;
      const outs: Tensor[] = [];
      for (let t0 = 0; t0 < T; ) {
        const t1 = t0 === 0 ? prefill : t0 + 1;
        const pos = { posOffset: cache.length };
        assert.equal(pos.posOffset, t0, 'the RoPE offset is the cache length');
        const qs = rope.forwardInPlace(slice(q, t0, t1), pos);
        const ks = rope.forwardInPlace(slice(k, t0, t1), pos);
        outs.push(attentionWithCache(be, qs, ks, slice(v, t0, t1), cache));
        t0 = t1;
      }
      assert.equal(cache.length, T);
      let t = 0;
      for (const o of outs) {
        const n = o.shape[1];
        assertClose(o.data, slice(full, t, t + n).data, 1e-6, 0, `positions ${t}..${t + n - 1}`);
        t += n;
      }
    });
  }

  it('restarting positions at 0 under a cache would give different outputs (the bug this guards against)', () => {
    const rng = new Rng(110);
    const rope = new RoPE(be);
    const x = Tensor.randn([1, 1, 1, 8], rng);
    const right = rope.forwardInPlace(x.clone(), { posOffset: 5 });
    const wrong = rope.forwardInPlace(x.clone(), { posOffset: 0 });
    assert.notDeepEqual(Array.from(right.data), Array.from(wrong.data));
  });

  it('truncate rolls the cache back for a replay; contents() views or copies the valid part', () => {
    const cache = new KVCache({ batch: 2, maxSeq: 5, nKvHeads: 1, headDim: 2 });
    const k = Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 1, 2]);
    cache.append(k, k);
    cache.append(Tensor.full([2, 1, 1, 2], 9), Tensor.full([2, 1, 1, 2], 9));
    assert.deepEqual(Array.from(cache.contents().k.data), [1, 2, 3, 4, 9, 9, 5, 6, 7, 8, 9, 9]);
    cache.truncate(2);
    assert.equal(cache.length, 2);
    assert.deepEqual(cache.contents().v.shape, [2, 2, 1, 2]);
    assert.deepEqual(Array.from(cache.contents().v.data), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.throws(() => cache.truncate(3), { code: 'SHAPE_MISMATCH' });
    cache.reset();
    assert.equal(cache.length, 0);
  });
});
