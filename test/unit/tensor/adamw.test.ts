/**
 * AdamW against hand-computed steps, global-norm clipping, the NaN/Inf skip (returned status + event), weight-decay
 * opt-out and state save/restore. Tolerance 1e-6 absolute (float32 parameters of magnitude ≤ 2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdamW, Tensor, createReferenceBackend, globalGradNorm, type StepResult } from '../../../src/tensor/index.js';
import { InvalidArgumentError } from '../../../src/util/errors.js';
import { assertClose } from './helpers.js';

const be = createReferenceBackend();

/** PyTorch AdamW in float64, one tensor, for comparison. */
function torchStep(p: number[], g: number[], m: number[], v: number[], t: number, o: { lr: number; b1: number; b2: number; eps: number; wd: number }): void {
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - o.lr * o.wd;
    m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
    v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
    const denom = Math.sqrt(v[i]) / Math.sqrt(1 - o.b2 ** t) + o.eps;
    p[i] -= (o.lr / (1 - o.b1 ** t)) * (m[i] / denom);
  }
}

describe('AdamW', () => {
  it('first step by hand: p·(1 − lr·wd) − lr·sign(g) (bias correction makes the first update ±lr)', () => {
    const param = Tensor.fromArray([1, -2, 0.5]);
    const grad = Tensor.fromArray([0.1, -0.2, 0.3]);
    const opt = new AdamW(be, [{ name: 'w', param, grad }], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 0 });
    const r = opt.step();
    assert.equal(r.applied, true);
    assert.equal(r.step, 1);
    assert.equal(r.clipScale, 1);
    assert.ok(Math.abs(r.gradNorm - Math.sqrt(0.01 + 0.04 + 0.09)) < 1e-7);
    assertClose(param.data, [0.89, -1.88, 0.395], 1e-6, 0, 'param after step 1');
  });

  it('three steps match a float64 transcription of torch.optim.AdamW', () => {
    const o = { lr: 0.05, b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1 };
    const p0 = [0.3, -1.2, 0.7, 0.01];
    const grads = [
      [0.5, -0.1, 0.2, 0.0],
      [-0.3, 0.4, 0.1, 0.05],
      [0.2, 0.2, -0.6, -0.01],
    ];
    const param = Tensor.fromArray(p0);
    const grad = Tensor.zeros([4]);
    const opt = new AdamW(be, [{ param, grad }], { lr: o.lr, beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd, maxGradNorm: 0 });
    const p = p0.map((x) => Math.fround(x));
    const m = [0, 0, 0, 0];
    const v = [0, 0, 0, 0];
    grads.forEach((g, i) => {
      grad.data.set(g);
      opt.step();
      torchStep(p, Array.from(grad.data), m, v, i + 1, o);
      assertClose(param.data, p, 1e-6, 0, `param after step ${i + 1}`);
    });
    assert.equal(opt.stepCount, 3);
  });

  it('clips by global norm across tensors: clip = max / (norm + 1e-6), folded into the moments', () => {
    const a = Tensor.fromArray([1, 1]);
    const b = Tensor.fromArray([1]);
    const ga = Tensor.fromArray([3, 0]);
    const gb = Tensor.fromArray([4]);
    const opt = new AdamW(
      be,
      [
        { name: 'a', param: a, grad: ga },
        { name: 'b', param: b, grad: gb },
      ],
      { lr: 0.01, beta1: 0.9, beta2: 0.999, weightDecay: 0, maxGradNorm: 1 },
    );
    assert.equal(globalGradNorm(be, [ga, gb]), 5);
    const r = opt.step();
    assert.equal(r.gradNorm, 5);
    assert.ok(Math.abs(r.clipScale - 1 / (5 + 1e-6)) < 1e-12);
    const s = opt.state();
    assertClose(s.m[0], [0.1 * 3 * r.clipScale, 0], 1e-8, 0, 'm of a');
    assertClose(s.v[1], [0.001 * (4 * r.clipScale) ** 2], 1e-9, 0, 'v of b');
    // the gradients themselves are not rewritten
    assert.deepEqual(Array.from(ga.data), [3, 0]);
    // below the bound nothing is clipped
    ga.data.set([0.3, 0]);
    gb.data.set([0.4]);
    assert.equal(opt.step().clipScale, 1);
  });

  it('a NaN or Infinity gradient skips the step: nothing changes, the result and the event name the tensor', () => {
    const param = Tensor.fromArray([1, 2, 3]);
    const other = Tensor.fromArray([4]);
    const grad = Tensor.fromArray([0.1, NaN, 0.3]);
    const gOther = Tensor.fromArray([0.5]);
    const opt = new AdamW(
      be,
      [
        { name: 'layers.0.w', param, grad },
        { name: 'head', param: other, grad: gOther },
      ],
      { lr: 0.1 },
    );
    const seen: StepResult[] = [];
    opt.events.on('step:skipped', (e) => seen.push(e));
    const r = opt.step();
    assert.equal(r.applied, false);
    assert.deepEqual(r.nonFinite, ['layers.0.w']);
    assert.ok(Number.isNaN(r.gradNorm));
    assert.equal(r.step, 0);
    assert.deepEqual(seen, [r]);
    assert.deepEqual(Array.from(param.data), [1, 2, 3]);
    assert.deepEqual(Array.from(other.data), [4]);
    assert.equal(opt.stepCount, 0);
    assert.ok(opt.state().m.every((m) => m.every((x) => x === 0)));

    // Infinity in the other tensor is caught as well
    grad.data[1] = 0.2;
    gOther.data[0] = -Infinity;
    const r2 = opt.step();
    assert.equal(r2.applied, false);
    assert.deepEqual(r2.nonFinite, ['head']);
    assert.equal(seen.length, 2);

    // finite gradients again: the step is taken as step 1 (bias correction unaffected by the skips)
    gOther.data[0] = 0.5;
    const r3 = opt.step();
    assert.equal(r3.applied, true);
    assert.equal(r3.step, 1);
    assert.equal(seen.length, 2);
  });

  it('weightDecay: false exempts a parameter; zero gradients leave only the decay', () => {
    const decayed = Tensor.fromArray([2]);
    const exempt = Tensor.fromArray([2]);
    const opt = new AdamW(
      be,
      [
        { name: 'w', param: decayed, grad: Tensor.zeros([1]) },
        { name: 'norm', param: exempt, grad: Tensor.zeros([1]), weightDecay: false },
      ],
      { lr: 0.1, weightDecay: 0.5 },
    );
    opt.step();
    assert.equal(decayed.data[0], Math.fround(2 * (1 - 0.05)));
    assert.equal(exempt.data[0], 2);
  });

  it('lr override per step, zeroGrad, state round-trip', () => {
    const mk = (): { p: Tensor; g: Tensor; opt: AdamW } => {
      const p = Tensor.fromArray([0.5, -0.5]);
      const g = Tensor.zeros([2]);
      return { p, g, opt: new AdamW(be, [{ param: p, grad: g }], { lr: 0.01 }) };
    };
    const A = mk();
    A.g.data.set([0.1, 0.2]);
    A.opt.step({ lr: 0.02 });
    A.g.data.set([-0.3, 0.1]);
    A.opt.step();
    const B = mk();
    B.p.data.set(A.p.data);
    B.opt.loadState(A.opt.state());
    assert.equal(B.opt.stepCount, 2);
    A.g.data.set([0.05, 0.05]);
    B.g.data.set([0.05, 0.05]);
    A.opt.step();
    B.opt.step();
    assert.deepEqual(Array.from(B.p.data), Array.from(A.p.data));
    A.opt.zeroGrad();
    assert.deepEqual(Array.from(A.g.data), [0, 0]);
    assert.throws(() => B.opt.loadState({ step: 1, m: [new Float32Array(3)], v: [new Float32Array(3)] }), InvalidArgumentError);
  });

  it('rejects bad configuration and mismatched parameter/gradient shapes', () => {
    const p = Tensor.zeros([2]);
    assert.throws(() => new AdamW(be, [{ param: p, grad: Tensor.zeros([2]) }], { beta1: 1 }), InvalidArgumentError);
    assert.throws(() => new AdamW(be, [{ param: p, grad: Tensor.zeros([2]) }], { lr: -1 }), InvalidArgumentError);
    assert.throws(() => new AdamW(be, [{ param: p, grad: Tensor.zeros([3]) }]), { code: 'SHAPE_MISMATCH' });
    assert.throws(
      () =>
        new AdamW(be, [
          { name: 'x', param: p, grad: Tensor.zeros([2]) },
          { name: 'x', param: p, grad: Tensor.zeros([2]) },
        ]),
      InvalidArgumentError,
    );
  });
});
