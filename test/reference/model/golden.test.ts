/**
 * NeuroLLM against PyTorch (fixtures from scripts/reference/tiny_llama.py, a plain-PyTorch Hugging Face Llama):
 * a tiny model with fixed weights (explicit head_dim 16 with hidden 48, 4/2 heads, ε 1e-5, θ 5000: every config
 * field away from its default) gives PyTorch's logits, loss and every parameter gradient, and 10 AdamW steps
 * (clipping at 1.0, decay on 2-D weights only) give PyTorch's losses.
 *
 * Tolerances (max|ours − torch| / max|torch| per tensor): logits 1e-5, loss 1e-5, each gradient 1e-4; AdamW losses
 * 1e-4 relative each. Float32 on both sides; the differences are summation order only.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IGNORE_INDEX, loadHfModel, SafetensorsFile, createAdamW } from '../../../src/model/index.js';
import { fixturePath } from '../../utils/paths.js';
import { relErr, testBackends } from '../../unit/model/helpers.js';

const DIR = fixturePath('model', 'golden');

interface Hyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  max_grad_norm: number;
  steps: number;
}

function readGolden(): { f: SafetensorsFile; hyper: Hyper } {
  const f = SafetensorsFile.open(join(DIR, 'golden.safetensors'));
  return { f, hyper: JSON.parse(f.header.metadata.hyper) as Hyper };
}

for (const { name, backend } of await testBackends()) {
  describe(`golden tiny Llama vs PyTorch (${name} backend)`, () => {
    it('logits, loss and every parameter gradient match', () => {
      const { f } = readGolden();
      const { config, model } = loadHfModel(DIR, { backend });
      assert.equal(config.head_dim, 16);
      assert.equal(config.rope_theta, 5000);
      const ids = f.tensorI32('input_ids');
      const targets = f.tensorI32('targets');
      assert.ok(targets.includes(IGNORE_INDEX), 'fixture has ignored targets');
      const [B, T] = f.info('input_ids').shape;
      const logits = model.forward(ids, B, T);
      const eLogits = relErr(logits, f.tensorF32('logits'));
      assert.ok(eLogits <= 1e-5, `logits rel err ${eLogits}`);
      model.zeroGrad();
      const r = model.loss(targets);
      const want = f.tensorF32('loss')[0];
      assert.ok(Math.abs(r.loss - want) <= 1e-5 * want, `loss ${r.loss} vs ${want}`);
      assert.equal(r.count, B * T - 2);
      model.backward(r.dlogits!);
      let worst = 0;
      for (const e of model.layout.entries) {
        const err = relErr(model.grad(e.name), f.tensorF32(`grad.${e.name}`));
        worst = Math.max(worst, err);
        assert.ok(err <= 1e-4, `grad of ${e.name}: rel err ${err}`);
      }
      assert.equal(model.layout.entries.length, f.header.tensors.size - 6, 'every gradient compared');
      console.log(`${name}: logits rel err ${eLogits.toExponential(2)}, worst gradient rel err ${worst.toExponential(2)}`);
      f.close();
    });

    it('10 AdamW steps give the same losses', () => {
      const { f, hyper } = readGolden();
      const { model } = loadHfModel(DIR, { backend });
      const ids = f.tensorI32('input_ids');
      const targets = f.tensorI32('targets');
      const [B, T] = f.info('input_ids').shape;
      const want = f.tensorF32('adamw_losses');
      const wantNorms = f.tensorF32('adamw_grad_norms');
      const opt = createAdamW(backend, model, {
        lr: hyper.lr,
        beta1: hyper.beta1,
        beta2: hyper.beta2,
        eps: hyper.eps,
        weightDecay: hyper.weight_decay,
        maxGradNorm: hyper.max_grad_norm,
      });
      const got: number[] = [];
      for (let s = 0; s < hyper.steps; s++) {
        model.forward(ids, B, T);
        const r = model.loss(targets);
        got.push(r.loss);
        model.zeroGrad();
        model.backward(r.dlogits!);
        const st = opt.step();
        assert.ok(st.applied);
        assert.ok(Math.abs(st.gradNorm - wantNorms[s]) <= 1e-4 * wantNorms[s], `step ${s}: grad norm ${st.gradNorm} vs ${wantNorms[s]}`);
      }
      for (let s = 0; s < hyper.steps; s++) {
        assert.ok(Math.abs(got[s] - want[s]) <= 1e-4 * Math.abs(want[s]), `step ${s}: loss ${got[s]} vs torch ${want[s]}`);
      }
      assert.ok(got[hyper.steps - 1] < got[0] / 4, 'the losses fall');
      console.log(`${name}: AdamW losses ${got.map((x) => x.toFixed(4)).join(' ')}`);
      f.close();
    });
  });
}
