/**
 * The shard: gradients agree with finite differences; a chain of three spans computes the whole model's loss and
 * every gradient (relative error ≤ 1e-5); initialisation is seeded and span-consistent; misuse fails with typed
 * errors; a tied model accumulates the head's gradient into the embedding.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LlamaShard, ParamLayout, paramCount, totalParams, type Span } from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { randomIds, reference as backend, relErr, tinyConfig } from './helpers.js';

const B = 2;
const T = 6;

describe('LlamaShard', () => {
  it('layout: HF names, one flat buffer, parameter count from the Llama formula', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend });
    assert.equal(m.params.length, totalParams(cfg));
    assert.equal(m.grads.length, m.params.length);
    const names = m.layout.entries.map((e) => e.name);
    assert.equal(names[0], 'model.embed_tokens.weight');
    assert.ok(names.includes('model.layers.2.self_attn.q_proj.weight'));
    assert.ok(names.includes('model.layers.0.mlp.down_proj.weight'));
    assert.deepEqual(names.slice(-2), ['model.norm.weight', 'lm_head.weight']);
    // offsets tile the buffer
    let off = 0;
    for (const e of m.layout.entries) {
      assert.equal(e.offset, off);
      off += e.size;
    }
    assert.equal(off, m.params.length);
    // views write through
    m.param('model.norm.weight')[0] = 5;
    assert.equal(m.params[m.layout.get('model.norm.weight').offset], 5);
    // spans partition the model
    const parts: Span[] = [
      { start: 0, end: 1 },
      { start: 1, end: 2 },
      { start: 2, end: 3 },
    ];
    assert.equal(parts.reduce((a, s) => a + paramCount(cfg, s), 0), totalParams(cfg));
  });

  it('gradients agree with central finite differences', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend, seed: 3 });
    const ids = randomIds(B * T, cfg.vocab_size, 1);
    const tg = randomIds(B * T, cfg.vocab_size, 2);
    m.forward(ids, B, T);
    const r = m.loss(tg);
    m.zeroGrad();
    m.backward(r.dlogits!);
    // central differences at h and h/2 combined by Richardson extrapolation: error O(h⁴), so float32 rounding of
    // the loss is the only noise left
    const lossAt = (p: Float32Array, i: number, x: number): number => {
      const old = p[i];
      p[i] = x;
      m.forward(ids, B, T);
      const l = m.loss(tg, { grad: false }).loss;
      p[i] = old;
      return l;
    };
    for (const e of m.layout.entries) {
      const p = m.param(e.name);
      const g = m.grad(e.name);
      // the entry with the largest gradient magnitude, so float32 noise does not dominate the check
      let i = 0;
      for (let j = 0; j < g.length; j++) if (Math.abs(g[j]) > Math.abs(g[i])) i = j;
      const x = p[i];
      const d = (h: number): number => (lossAt(p, i, x + h) - lossAt(p, i, x - h)) / (2 * h);
      const fd = (4 * d(5e-3) - d(1e-2)) / 3;
      assert.ok(Math.abs(fd - g[i]) <= 1e-3 * Math.max(Math.abs(g[i]), 1e-3), `${e.name}[${i}]: analytic ${g[i]} vs numeric ${fd}`);
    }
  });

  it('three chained spans give the whole model loss and every gradient (rel err ≤ 1e-5)', () => {
    const cfg = tinyConfig({ num_hidden_layers: 5 });
    const seed = 11;
    const full = new LlamaShard({ config: cfg, backend, seed });
    const spans: Span[] = [
      { start: 0, end: 2 },
      { start: 2, end: 3 },
      { start: 3, end: 5 },
    ];
    // each span initialises itself from the same seed: the weights must be those of the full model
    const shards = spans.map((span) => new LlamaShard({ config: cfg, backend, span, seed }));
    for (const s of shards) for (const e of s.layout.entries) assert.deepEqual(s.param(e.name), full.param(e.name), `init of ${e.name}`);
    assert.ok(shards[0].hasEmbed && !shards[0].hasHead);
    assert.ok(!shards[1].hasEmbed && !shards[1].hasHead);
    assert.ok(!shards[2].hasEmbed && shards[2].hasHead);

    const ids = randomIds(B * T, cfg.vocab_size, 5);
    const tg = randomIds(B * T, cfg.vocab_size, 6);
    tg[3] = -100;
    full.forward(ids, B, T);
    const rf = full.loss(tg);
    full.zeroGrad();
    full.backward(rf.dlogits!);

    let h = shards[0].forward(ids, B, T).slice();
    h = shards[1].forward(h, B, T).slice();
    shards[2].forward(h, B, T);
    const rs = shards[2].loss(tg);
    for (const s of shards) s.zeroGrad();
    let d = shards[2].backward(rs.dlogits!)!.slice();
    d = shards[1].backward(d)!.slice();
    assert.equal(shards[0].backward(d), null, 'the driver returns no input gradient');

    assert.ok(Math.abs(rs.loss - rf.loss) <= 1e-5 * rf.loss, `loss ${rs.loss} vs ${rf.loss}`);
    let n = 0;
    for (const s of shards) {
      for (const e of s.layout.entries) {
        const err = relErr(s.grad(e.name), full.grad(e.name));
        assert.ok(err <= 1e-5, `${e.name}: rel err ${err}`);
        n++;
      }
    }
    assert.equal(n, full.layout.entries.length, 'every gradient compared');
  });

  it('initialisation is reproducible and seed-dependent; norms start at 1', () => {
    const cfg = tinyConfig();
    const a = new LlamaShard({ config: cfg, backend, seed: 1 });
    const b = new LlamaShard({ config: cfg, backend, seed: 1 });
    const c = new LlamaShard({ config: cfg, backend, seed: 2 });
    assert.deepEqual(a.params, b.params);
    assert.notDeepEqual(a.params, c.params);
    assert.ok(a.param('model.layers.1.input_layernorm.weight').every((x) => x === 1));
    const q = a.param('model.layers.0.self_attn.q_proj.weight');
    const std = Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length);
    assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);
  });

  it('gradients accumulate over micro-batches until zeroGrad', () => {
    const cfg = tinyConfig({ num_hidden_layers: 1 });
    const m = new LlamaShard({ config: cfg, backend });
    const ids = randomIds(B * T, cfg.vocab_size, 1);
    const tg = randomIds(B * T, cfg.vocab_size, 2);
    m.zeroGrad();
    m.forward(ids, B, T);
    m.backward(m.loss(tg).dlogits!);
    const once = m.grads.slice();
    m.forward(ids, B, T);
    m.backward(m.loss(tg).dlogits!);
    assert.ok(relErr(m.grads, once.map((x) => 2 * x)) < 1e-6);
    m.zeroGrad();
    assert.ok(m.grads.every((x) => x === 0));
  });

  it('tied embeddings: the head gradient lands in the embedding', () => {
    const cfg = tinyConfig({ tie_word_embeddings: true, num_hidden_layers: 2 });
    const m = new LlamaShard({ config: cfg, backend, seed: 4 });
    assert.equal(m.layout.has('lm_head.weight'), false);
    const ids = randomIds(B * T, cfg.vocab_size, 1);
    const tg = randomIds(B * T, cfg.vocab_size, 2);
    m.forward(ids, B, T);
    const r = m.loss(tg);
    m.zeroGrad();
    m.backward(r.dlogits!);
    // finite difference on an embedding row that is never an input id: only the head path reaches it
    const unused = [...Array(cfg.vocab_size).keys()].find((v) => !ids.includes(v))!;
    const p = m.param('model.embed_tokens.weight');
    const g = m.grad('model.embed_tokens.weight');
    const i = unused * cfg.hidden_size;
    assert.notEqual(g[i], 0);
    const old = p[i];
    p[i] = old + 1e-2;
    m.forward(ids, B, T);
    const lp = m.loss(tg, { grad: false }).loss;
    p[i] = old - 1e-2;
    m.forward(ids, B, T);
    const lm = m.loss(tg, { grad: false }).loss;
    p[i] = old;
    assert.ok(Math.abs((lp - lm) / 2e-2 - g[i]) <= 2e-3 * Math.abs(g[i]) + 1e-6);
    // a tied model cannot be split so that embedding and head live apart
    assert.throws(() => new ParamLayout(cfg, { start: 0, end: 1 }), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));
  });

  it('misuse fails with typed errors', () => {
    const cfg = tinyConfig();
    const m = new LlamaShard({ config: cfg, backend });
    const mid = new LlamaShard({ config: cfg, backend, span: { start: 1, end: 2 } });
    assert.throws(() => m.backward(new Float32Array(B * T * cfg.vocab_size)), (e) => isNeuroShardError(e, 'MODEL_STATE'));
    const bad = randomIds(B * T, cfg.vocab_size, 1);
    bad[5] = cfg.vocab_size;
    assert.throws(() => m.forward(bad, B, T), (e) => isNeuroShardError(e, 'TOKEN_OUT_OF_RANGE') && /token id 50 at flat index 5/.test((e as Error).message));
    assert.throws(() => m.forward(randomIds(5, cfg.vocab_size, 1), B, T), (e) => isNeuroShardError(e, 'SHAPE_MISMATCH'));
    assert.throws(() => m.forward(new Float32Array(B * T * cfg.hidden_size), B, T), (e) => isNeuroShardError(e, 'MODEL_STATE'));
    assert.throws(() => mid.forward(randomIds(B * T, cfg.vocab_size, 1), B, T), (e) => isNeuroShardError(e, 'MODEL_STATE'));
    assert.throws(() => mid.loss(new Int32Array(B * T)), (e) => isNeuroShardError(e, 'MODEL_STATE'));
    assert.throws(() => m.forward(randomIds(B * 40, cfg.vocab_size, 1), B, 40), (e) => isNeuroShardError(e, 'SHAPE_MISMATCH'), 'longer than the context');
    m.forward(randomIds(B * T, cfg.vocab_size, 1), B, T);
    const tg = randomIds(B * T, cfg.vocab_size, 2);
    tg[0] = -5;
    assert.throws(() => m.loss(tg), (e) => isNeuroShardError(e, 'TOKEN_OUT_OF_RANGE'));
    assert.throws(() => m.backward(new Float32Array(7)), (e) => isNeuroShardError(e, 'SHAPE_MISMATCH'));
    assert.throws(() => new LlamaShard({ config: cfg, backend, params: new Float32Array(3) }), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));
  });

  it('all targets ignored: loss 0 and a zero gradient', () => {
    const cfg = tinyConfig({ num_hidden_layers: 1 });
    const m = new LlamaShard({ config: cfg, backend });
    m.forward(randomIds(B * T, cfg.vocab_size, 1), B, T);
    const r = m.loss(new Int32Array(B * T).fill(-100));
    assert.equal(r.loss, 0);
    assert.equal(r.count, 0);
    assert.ok(r.dlogits!.every((x) => x === 0));
  });
});
