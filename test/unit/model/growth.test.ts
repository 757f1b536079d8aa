/**
 * Function-preserving growth of a trained model: deeper (identity layers appended) and wider (zero residual
 * channels, new heads and FFN units with zero output columns, RMSNorm scales ×√(C/C′) and ε ×C/C′). The logits on
 * held-out text agree within 1e-4 (max|Δ| / max|logit|) right after growth, every new tensor receives gradient, and
 * training continues: the loss keeps falling over the next steps.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkGrowth,
  createAdamW,
  growDeeper,
  growModel,
  growParams,
  growWider,
  grownConfig,
  LlamaShard,
  NANO,
  rung,
} from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { randomIds, reference as backend, relErr, tinyConfig } from './helpers.js';

const B = 4;
const T = 12;

/** A learnable batch: arithmetic sequences mod V, targets the next element. */
function batch(V: number, offset: number): { ids: Int32Array; targets: Int32Array } {
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const step = 1 + ((b + offset) % 3);
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = (offset + b * 7 + t * step) % V;
      targets[b * T + t] = (offset + b * 7 + (t + 1) * step) % V;
    }
  }
  return { ids, targets };
}

function train(m: LlamaShard, steps: number, lr = 1e-2): number[] {
  const opt = createAdamW(backend, m, { lr, weightDecay: 0 });
  const { ids, targets } = batch(m.config.vocab_size, 0);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    m.forward(ids, B, T);
    const r = m.loss(targets);
    losses.push(r.loss);
    m.zeroGrad();
    m.backward(r.dlogits!);
    opt.step();
  }
  return losses;
}

function trained(): LlamaShard {
  const m = new LlamaShard({ config: tinyConfig({ num_hidden_layers: 2 }), backend, seed: 21 });
  const losses = train(m, 25);
  assert.ok(losses[24] < losses[0] * 0.7, 'the base model learned something');
  return m;
}

const heldOut = randomIds(2 * 16, 50, 77);

describe('growth', () => {
  it('deeper: appended identity layers leave the logits unchanged, then learn', () => {
    const m = trained();
    const before = m.forward(heldOut, 2, 16).slice();
    const g = growDeeper(m, 4, { seed: 1 });
    assert.equal(g.config.num_hidden_layers, 4);
    for (const e of m.layout.entries) assert.deepEqual(g.param(e.name), m.param(e.name), `${e.name} kept`);
    assert.ok(g.param('model.layers.3.self_attn.o_proj.weight').every((x) => x === 0));
    assert.ok(g.param('model.layers.3.mlp.down_proj.weight').every((x) => x === 0));
    assert.ok(g.param('model.layers.3.self_attn.q_proj.weight').some((x) => x !== 0));
    const after = g.forward(heldOut, 2, 16);
    const err = relErr(after, before);
    assert.ok(err <= 1e-4, `rel err ${err}`);

    // the new layers are alive: their output projections get gradient
    const { ids, targets } = batch(50, 0);
    g.forward(ids, B, T);
    const r = g.loss(targets);
    g.zeroGrad();
    g.backward(r.dlogits!);
    for (const n of ['model.layers.2.self_attn.o_proj.weight', 'model.layers.3.mlp.down_proj.weight']) {
      assert.ok(g.grad(n).some((x) => x !== 0), `${n} receives gradient`);
    }
    const losses = train(g, 8);
    assert.ok(Math.abs(losses[0] - r.loss) < 1e-6, 'training starts from the pre-growth loss');
    assert.ok(losses[7] < losses[0], `loss keeps falling: ${losses.map((x) => x.toFixed(3)).join(' ')}`);
  });

  it('wider: more channels, heads (with KV heads) and FFN units leave the logits unchanged, then learn', () => {
    const m = trained();
    const before = m.forward(heldOut, 2, 16).slice();
    const { ids, targets } = batch(50, 0);
    m.forward(ids, B, T);
    const lossBefore = m.loss(targets, { grad: false }).loss;
    const g = growWider(m, { hidden_size: 48, num_attention_heads: 6, intermediate_size: 80 }, { seed: 2 });
    const c = g.config;
    assert.equal(c.num_key_value_heads, 3, 'the GQA group size is kept');
    assert.equal(c.head_dim, 8);
    assert.ok(Math.abs(c.rms_norm_eps - (1e-6 * 32) / 48) < 1e-18);
    const err = relErr(g.forward(heldOut, 2, 16), before);
    assert.ok(err <= 1e-4, `rel err ${err}`);
    // new residual channels start at zero in the embedding; the old block is kept
    const E = g.param('model.embed_tokens.weight');
    const E0 = m.param('model.embed_tokens.weight');
    for (let v = 0; v < 50; v++) {
      for (let j = 0; j < 32; j++) assert.equal(E[v * 48 + j], E0[v * 32 + j]);
      for (let j = 32; j < 48; j++) assert.equal(E[v * 48 + j], 0);
    }

    g.forward(ids, B, T);
    const r = g.loss(targets);
    assert.ok(Math.abs(r.loss - lossBefore) < 1e-5);
    g.zeroGrad();
    g.backward(r.dlogits!);
    // the new parts are reachable by gradient: new output rows, new heads' output columns, new FFN units
    const o = g.grad('model.layers.1.self_attn.o_proj.weight'); // [48, 48]
    let newRows = 0;
    let newCols = 0;
    for (let i = 32; i < 48; i++) for (let j = 0; j < 48; j++) newRows += Math.abs(o[i * 48 + j]);
    for (let i = 0; i < 32; i++) for (let j = 32; j < 48; j++) newCols += Math.abs(o[i * 48 + j]);
    assert.ok(newRows > 0 && newCols > 0, 'o_proj: new rows and new head columns get gradient');
    const down = g.grad('model.layers.0.mlp.down_proj.weight'); // [48, 80]
    let newUnits = 0;
    for (let i = 0; i < 48; i++) for (let j = 48; j < 80; j++) newUnits += Math.abs(down[i * 80 + j]);
    assert.ok(newUnits > 0, 'down_proj: new FFN units get gradient');

    const losses = train(g, 8);
    assert.ok(losses[7] < losses[0], `loss keeps falling: ${losses.map((x) => x.toFixed(3)).join(' ')}`);
  });

  it('wider and deeper at once, along the scaler ladder from nano', () => {
    const small = new LlamaShard({ config: { ...NANO, vocab_size: 64, max_position_embeddings: 16 }, backend, seed: 3 });
    const to = grownConfig(small.config, { hidden_size: 384, num_attention_heads: 6, num_hidden_layers: 6, intermediate_size: 1024 });
    const ladder = rung(384, { vocab_size: 64, max_position_embeddings: 16, rms_norm_eps: to.rms_norm_eps });
    assert.deepEqual(to, ladder, 'the grown nano is the next ladder rung');
    const ids = randomIds(16, 64, 1);
    const before = small.forward(ids, 1, 16).slice();
    const g = growModel(small, to, { seed: 4 });
    const err = relErr(g.forward(ids, 1, 16), before);
    assert.ok(err <= 1e-4, `rel err ${err}`);
  });

  it('every replica of a span grows it identically (per-tensor seeded draws)', () => {
    const m = trained();
    const to = grownConfig(m.config, { hidden_size: 48, num_attention_heads: 6, num_hidden_layers: 3 });
    const full = growModel(m, to, { seed: 9 });
    const a = new LlamaShard({ config: m.config, backend, span: { start: 0, end: 1 }, params: m.params.slice(0, m.layout.get('model.layers.1.input_layernorm.weight').offset) });
    const b = new LlamaShard({ config: m.config, backend, span: { start: 1, end: 2 }, params: m.params.slice(m.layout.get('model.layers.1.input_layernorm.weight').offset) });
    const ga = growParams({ from: a, to, seed: 9 });
    const gb = growParams({ from: b, to, seed: 9 });
    assert.deepEqual(gb.layout.span, { start: 1, end: 3 }, 'the span that ended the model gets the new layer');
    for (const g of [ga, gb]) for (const e of g.layout.entries) assert.deepEqual(g.layout.view(g.params, e.name), full.param(e.name), e.name);
    // optimizer moments: old values kept, new entries zero
    const mom = growParams({ from: { layout: a.layout, params: a.params }, to, seed: 9, mode: 'moments' });
    const q = mom.layout.view(mom.params, 'model.layers.0.self_attn.q_proj.weight');
    assert.equal(q[48 * 0 + 40], 0);
    assert.equal(q[0], a.param('model.layers.0.self_attn.q_proj.weight')[0]);
  });

  it('shapes that are not function-preserving are refused, naming why', () => {
    const c = tinyConfig();
    const bad = (shape: Parameters<typeof grownConfig>[1], re: RegExp): void => {
      assert.throws(() => grownConfig(c, shape), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID') && re.test((e as Error).message));
    };
    bad({ num_hidden_layers: 2 }, /num_hidden_layers shrinks/);
    bad({ hidden_size: 16 }, /hidden_size shrinks/);
    bad({ num_attention_heads: 6, num_key_value_heads: 2 }, /GQA group size/);
    assert.match(checkGrowth(c, { ...c, head_dim: 16 }) ?? '', /head_dim/);
    assert.match(checkGrowth(c, { ...c, vocab_size: 60 }) ?? '', /vocab_size/);
    assert.match(checkGrowth(c, { ...c, hidden_size: 64 }) ?? '', /rms_norm_eps/);
  });
});
