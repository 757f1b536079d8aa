/**
 * Generation: cached decoding computes the logits of a full recompute at every position (the Python original
 * restarted RoPE positions at 0 under the cache, which this catches), for a prefill + one-token steps, for chunked
 * prefills, for batches and across a chain of spans; sampling is seeded, greedy at temperature 0, and honours top-k,
 * top-p, stop ids, stop sequences and maxTokens.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generate, KVCache, LlamaShard, sampleToken, Sampler } from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { Rng } from '../../../src/util/rng.js';
import { randomIds, reference as backend, relErr, tinyConfig } from './helpers.js';

const TOL = 1e-5;

describe('KV-cache decoding', () => {
  it('prefill then one token at a time gives the full recompute logits at every position', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend, seed: 2 });
    const V = cfg.vocab_size;
    const seq = randomIds(20, V, 3);
    const full = m.forward(seq, 1, 20).slice();
    const cache = new KVCache(cfg);
    const pre = m.forward(seq.subarray(0, 8), 1, 8, { cache }).slice();
    assert.ok(relErr(pre, full.subarray(0, 8 * V)) <= TOL);
    for (let t = 8; t < 20; t++) {
      assert.equal(cache.length, t, 'the next position is the cache length');
      const row = m.forward(seq.subarray(t, t + 1), 1, 1, { cache });
      const err = relErr(row, full.subarray(t * V, (t + 1) * V));
      assert.ok(err <= TOL, `position ${t}: rel err ${err}`);
    }
  });

  it('a prefill in chunks after a cache matches too', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend, seed: 2 });
    const V = cfg.vocab_size;
    const seq = randomIds(15, V, 4);
    const full = m.forward(seq, 1, 15).slice();
    const cache = new KVCache(cfg);
    m.forward(seq.subarray(0, 5), 1, 5, { cache });
    const mid = m.forward(seq.subarray(5, 12), 1, 7, { cache }).slice();
    assert.ok(relErr(mid, full.subarray(5 * V, 12 * V)) <= TOL);
  });

  it('batched decoding matches per-sequence recompute', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend, seed: 5 });
    const V = cfg.vocab_size;
    const B = 3;
    const T = 9;
    const seq = randomIds(B * T, V, 6);
    const full = m.forward(seq, B, T).slice();
    const cache = new KVCache(cfg, { batch: B });
    const prompt = new Int32Array(B * 4);
    for (let b = 0; b < B; b++) prompt.set(seq.subarray(b * T, b * T + 4), b * 4);
    m.forward(prompt, B, 4, { cache });
    for (let t = 4; t < T; t++) {
      const step = Int32Array.from({ length: B }, (_, b) => seq[b * T + t]);
      const rows = m.forward(step, B, 1, { cache });
      for (let b = 0; b < B; b++) {
        const err = relErr(rows.subarray(b * V, (b + 1) * V), full.subarray((b * T + t) * V, (b * T + t + 1) * V));
        assert.ok(err <= TOL, `batch ${b} position ${t}: ${err}`);
      }
    }
  });

  it('a chain of spans decodes with one cache per span', () => {
    const cfg = tinyConfig();
    const seed = 8;
    const full = new LlamaShard({ config: cfg, backend, seed });
    const a = new LlamaShard({ config: cfg, backend, seed, span: { start: 0, end: 1 } });
    const b = new LlamaShard({ config: cfg, backend, seed, span: { start: 1, end: 3 } });
    const V = cfg.vocab_size;
    const seq = randomIds(10, V, 9);
    const want = full.forward(seq, 1, 10).slice();
    const ca = new KVCache(cfg, { span: a.span });
    const cb = new KVCache(cfg, { span: b.span });
    b.forward(a.forward(seq.subarray(0, 6), 1, 6, { cache: ca }).slice(), 1, 6, { cache: cb });
    for (let t = 6; t < 10; t++) {
      const row = b.forward(a.forward(seq.subarray(t, t + 1), 1, 1, { cache: ca }).slice(), 1, 1, { cache: cb });
      assert.ok(relErr(row, want.subarray(t * V, (t + 1) * V)) <= TOL, `position ${t}`);
    }
  });

  it('a full cache, a foreign cache and backward after a cached forward are refused', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend });
    const cache = new KVCache(cfg, { maxLen: 4 });
    m.forward(randomIds(3, cfg.vocab_size, 1), 1, 3, { cache });
    assert.throws(() => m.backward(new Float32Array(3 * cfg.vocab_size)), (e) => isNeuroShardError(e, 'MODEL_STATE'));
    assert.throws(() => m.forward(randomIds(2, cfg.vocab_size, 1), 1, 2, { cache }), (e) => isNeuroShardError(e, 'KV_CACHE_FULL'));
    const other = new KVCache(cfg, { span: { start: 0, end: 1 } });
    assert.throws(() => m.forward(randomIds(1, cfg.vocab_size, 1), 1, 1, { cache: other }), (e) => isNeuroShardError(e, 'MODEL_STATE'));
  });
});

describe('sampling', () => {
  const logits = Float32Array.from([0.5, 2.0, 1.9, -1, 2.0, 0]);

  it('temperature 0 is argmax, lowest id on ties, and draws nothing', () => {
    const rng = new Rng(1);
    const before = rng.state();
    assert.equal(sampleToken(logits, { temperature: 0 }, rng), 1);
    assert.deepEqual(rng.state(), before);
    assert.equal(sampleToken(logits, { temperature: 0, bannedIds: [1] }, rng), 4);
  });

  it('top-k keeps the k most likely, top-p the nucleus', () => {
    const rng = new Rng(2);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, { temperature: 1, topK: 3 }, rng));
    assert.deepEqual([...seen].sort(), [1, 2, 4]);
    // p(1) = p(4) ≈ 0.32 each, p(2) ≈ 0.29: top-p 0.5 keeps {1, 4}
    seen.clear();
    for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.5 }, rng));
    assert.deepEqual([...seen].sort(), [1, 4]);
    // with everything allowed every id appears eventually
    seen.clear();
    for (let i = 0; i < 2000; i++) seen.add(sampleToken(logits, { temperature: 1 }, rng));
    assert.equal(seen.size, logits.length);
  });

  it('frequencies follow the softmax at the temperature', () => {
    const l = Float32Array.from([0, Math.log(3)]); // p = 1/4, 3/4 at T = 1; at T = 2: 1/(1+√3) ≈ 0.366
    const rng = new Rng(3);
    let ones = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) ones += sampleToken(l, { temperature: 2 }, rng);
    const p0 = 1 - ones / n;
    assert.ok(Math.abs(p0 - 1 / (1 + Math.sqrt(3))) < 0.015, `p0 ${p0}`);
  });

  it('a seed fixes the sequence', () => {
    const a = new Sampler({ temperature: 0.8, topK: 4 }, 42);
    const b = new Sampler({ temperature: 0.8, topK: 4 }, 42);
    const xs = Array.from({ length: 50 }, () => a.next(logits));
    const ys = Array.from({ length: 50 }, () => b.next(logits));
    assert.deepEqual(xs, ys);
  });

  it("greedy without banned ids (the decode batch's path) picks what the banned-set scan picks: ties, NaN, -Infinity", () => {
    // a banned id past the end changes no candidate but keeps sampleToken on its set-checking loop: the reference
    const ref = (l: Float32Array): number => sampleToken(l, { temperature: 0, bannedIds: [l.length + 7] }, new Rng(0));
    const rows = [
      logits,
      Float32Array.from([NaN, 1, 2]),
      Float32Array.from([1, NaN, 3, 3]),
      Float32Array.from([-Infinity, -Infinity]),
      Float32Array.from([-Infinity, -5, Infinity, Infinity]),
      Float32Array.from([7]),
      Float32Array.from([0, -0, 0]),
    ];
    const rng = new Rng(5);
    for (let k = 0; k < 200; k++) rows.push(Float32Array.from({ length: 1 + (k % 37) }, () => Math.round((rng.next() - 0.5) * 8) / 2));
    for (const l of rows) {
      const want = ref(l);
      assert.equal(sampleToken(l, { temperature: 0 }, new Rng(0)), want, `row ${Array.from(l).join(',')}`);
      assert.equal(new Sampler({ temperature: 0 }, 0).next(l), want);
      assert.equal(new Sampler({ temperature: 0.7, topK: 1 }, 0).next(l), want, 'top-k 1 is greedy too');
    }
    assert.throws(() => sampleToken(new Float32Array(0), { temperature: 0 }, new Rng(0)), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });

  it('a Sampler checks its options once, at construction, and samples as sampleToken does', () => {
    assert.throws(() => new Sampler({ topP: 0 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    const a = new Sampler({ temperature: 0.9, topP: 0.8, bannedIds: [4] }, 7);
    const rng = new Rng(7);
    for (let i = 0; i < 100; i++) assert.equal(a.next(logits), sampleToken(logits, { temperature: 0.9, topP: 0.8, bannedIds: [4] }, rng));
  });

  it('bad options are refused', () => {
    const rng = new Rng(0);
    for (const o of [{ temperature: -1 }, { topK: 1.5 }, { topP: 0 }, { topP: 1.5 }]) {
      assert.throws(() => sampleToken(logits, o, rng), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    }
  });
});

describe('generate', () => {
  const cfg = tinyConfig({ eos_token_id: 2 });
  const m = new LlamaShard({ config: cfg, backend, seed: 12 });
  const decode = (ids: readonly number[]): string => ids.map((i) => String.fromCharCode(97 + (i % 26))).join('');

  it('greedy generation equals argmax over full recomputes', () => {
    const prompt = [1, 7, 9];
    const r = generate(m, prompt, { maxTokens: 8, temperature: 0, stopIds: [] });
    assert.equal(r.finishReason, 'length');
    assert.equal(r.tokens.length, 8);
    const seq = [...prompt];
    for (let i = 0; i < 8; i++) {
      const lg = m.forward(Int32Array.from(seq), 1, seq.length);
      const row = lg.subarray((seq.length - 1) * cfg.vocab_size);
      let best = 0;
      for (let v = 1; v < cfg.vocab_size; v++) if (row[v] > row[best]) best = v;
      seq.push(best);
    }
    assert.deepEqual(r.tokens, seq.slice(prompt.length));
  });

  it('seeded sampling is reproducible; different seeds differ', () => {
    const o = { maxTokens: 12, temperature: 1.5, stopIds: [] };
    const a = generate(m, [1, 4], { ...o, seed: 1 });
    const b = generate(m, [1, 4], { ...o, seed: 1 });
    const c = generate(m, [1, 4], { ...o, seed: 2 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.notDeepEqual(a.tokens, c.tokens);
  });

  it('stops at an end id, at a stop sequence (text cut before it), and at the context', () => {
    const free = generate(m, [1, 4], { maxTokens: 10, temperature: 0, stopIds: [], decode });
    const stopId = free.tokens[3];
    const firstAt = free.tokens.indexOf(stopId);
    const r1 = generate(m, [1, 4], { maxTokens: 10, temperature: 0, stopIds: [stopId] });
    assert.equal(r1.finishReason, 'stop');
    assert.equal(r1.stoppedBy, stopId);
    assert.deepEqual(r1.tokens, free.tokens.slice(0, firstAt));

    const text = free.text!;
    const stop = text.slice(4, 6);
    const r2 = generate(m, [1, 4], { maxTokens: 10, temperature: 0, stopIds: [], stop: [stop], decode });
    assert.equal(r2.finishReason, 'stop');
    assert.equal(r2.stoppedBy, stop);
    assert.equal(r2.text, text.slice(0, text.indexOf(stop)));

    const r3 = generate(m, Array.from({ length: 28 }, (_, i) => i % 40), { maxTokens: 100, temperature: 0, stopIds: [] });
    assert.equal(r3.finishReason, 'length');
    // positions 28..31 are fed; the token predicted at the last position is returned too
    assert.equal(r3.tokens.length, cfg.max_position_embeddings - 28 + 1);
  });

  it('bad requests are refused', () => {
    assert.throws(() => generate(m, [], { maxTokens: 1 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => generate(m, [1], { maxTokens: 0 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => generate(m, [1], { maxTokens: 2, stop: ['x'] }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    const ac = new AbortController();
    ac.abort();
    assert.throws(() => generate(m, [1], { maxTokens: 5, signal: ac.signal }), (e) => isNeuroShardError(e, 'ABORTED'));
  });
});
