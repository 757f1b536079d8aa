/**
 * The scaler reproduces the seed's table (layers × hidden), picks the largest ladder rung within the parameter
 * budget, never shrinks a running model, and every rung is reachable from every smaller one by growth.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkGrowth, grownConfig, ladderWidths, MEMORY_BYTES_PER_PARAM, NANO, rung, scaleFor, totalParams } from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const GB = 1e9;

describe('scaler', () => {
  it("reproduces the seed's table: 40 GB → 16 × 1024, 800 GB → 32 × 3072, 8 TB → 64 × 7168", () => {
    for (const [mem, L, C] of [
      [40 * GB, 16, 1024],
      [800 * GB, 32, 3072],
      [8000 * GB, 64, 7168],
    ] as const) {
      const r = scaleFor(mem);
      assert.equal(r.config.num_hidden_layers, L, `${mem / GB} GB layers`);
      assert.equal(r.config.hidden_size, C, `${mem / GB} GB hidden`);
      assert.equal(r.config.head_dim, 64);
      assert.equal(r.config.num_attention_heads, C / 64);
      assert.equal(r.config.num_key_value_heads, C / 128);
      assert.ok(r.params <= r.budget, 'within the budget');
      assert.equal(r.budget, Math.floor(mem / MEMORY_BYTES_PER_PARAM));
    }
    // the documented parameter counts (docs/ARCHITECTURE.md, NeuroLLM)
    assert.equal(scaleFor(40 * GB).params, 193_233_920);
    assert.equal(scaleFor(800 * GB).params, 3_347_254_272);
    assert.equal(scaleFor(8000 * GB).params, 36_238_662_656);
  });

  it('nano is the bottom rung; too little memory is a typed error', () => {
    assert.deepEqual(scaleFor(1 * GB).config, NANO);
    assert.throws(() => scaleFor(0.5 * GB), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));
    assert.throws(() => scaleFor(Number.NaN), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));
  });

  it('is monotone in memory and never shrinks a running model', () => {
    let prev = scaleFor(1 * GB).config;
    for (let mem = 1 * GB; mem < 20_000 * GB; mem *= 1.25) {
      const c = scaleFor(mem).config;
      assert.equal(checkGrowth(prev, { ...c, rms_norm_eps: (prev.rms_norm_eps * prev.hidden_size) / c.hidden_size }), null, `${mem / GB} GB`);
      prev = c;
    }
    const big = grownConfig(NANO, { hidden_size: 1024, num_attention_heads: 16, num_hidden_layers: 16, intermediate_size: 2736 });
    const r = scaleFor(2 * GB, { current: big });
    assert.deepEqual(r.config, big, 'less memory keeps the current model');
    const up = scaleFor(800 * GB, { current: big });
    assert.equal(up.config.hidden_size, 3072);
    assert.ok(Math.abs(up.config.rms_norm_eps - (1e-6 * 256) / 3072) < 1e-18, 'epsilon follows the growth lineage');
  });

  it('every rung grows function-preservingly from the one below, each step buying ≥ ×1.3 parameters', () => {
    const ws = ladderWidths();
    assert.equal(ws[0], 256);
    for (let i = 1; i < ws.length; i++) {
      const a = rung(ws[i - 1]);
      const b = rung(ws[i], { rms_norm_eps: (a.rms_norm_eps * a.hidden_size) / ws[i] });
      assert.equal(checkGrowth(a, b), null, `${ws[i - 1]} → ${ws[i]}`);
      assert.ok(totalParams(b) / totalParams(a) >= 1.3, `${ws[i - 1]} → ${ws[i]}: ×${(totalParams(b) / totalParams(a)).toFixed(2)}`);
    }
  });
});
