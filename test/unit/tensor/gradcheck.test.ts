/**
 * Finite-difference gradient checks of every op's backward, on the reference backend (see helpers.ts for the
 * method). Tolerances: |analytic − numeric| ≤ atol + rtol·|numeric| with eps = 1e-2 unless stated; bilinear ops
 * (matmul, linear, embedding, rope, residual) have no truncation error, so they get atol 1e-4, rtol 1e-4; the
 * nonlinear ones (rmsnorm, attention, swiglu, cross-entropy) atol 1e-3, rtol 1e-2.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CausalAttention,
  CrossEntropy,
  Embedding,
  IntTensor,
  Linear,
  MatMul,
  RMSNorm,
  RoPE,
  SwiGLU,
  Tensor,
  attention,
  createReferenceBackend,
  crossEntropyLoss,
  embedding,
  linear,
  matmul,
  residualBackward,
  residualForward,
  rmsnorm,
  swiglu,
} from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';
import { gradCheck } from './helpers.js';

const be = createReferenceBackend();
const EXACT = { atol: 1e-4, rtol: 1e-4 };
const SMOOTH = { atol: 1e-3, rtol: 1e-2 };

describe('gradient checks (finite differences, reference backend)', () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const batch of [0, 2]) {
        it(`matmul transA=${transA} transB=${transB} ${batch ? `batched ×${batch}` : '2-D'}`, () => {
          const rng = new Rng(10 + Number(transA) * 2 + Number(transB) + batch);
          const [M, K, N] = [3, 5, 4];
          const bd = batch ? [batch] : [];
          const a = Tensor.randn([...bd, ...(transA ? [K, M] : [M, K])], rng);
          const b = Tensor.randn([...bd, ...(transB ? [N, K] : [K, N])], rng);
          const op = new MatMul(be, { transA, transB });
          const out = op.forward(a, b);
          assert.deepEqual(out.shape, [...bd, M, N]);
          const dout = Tensor.randn(out.shape, rng);
          const { da, db } = op.backward(dout);
          gradCheck({
            forward: () => [matmul(be, a, b, { transA, transB })],
            douts: [dout],
            inputs: [
              { name: 'a', x: a, grad: da! },
              { name: 'b', x: b, grad: db! },
            ],
            ...EXACT,
          });
        });
      }
    }
  }

  it('linear (y = x·wᵀ), dw accumulates onto what was there', () => {
    const rng = new Rng(20);
    const x = Tensor.randn([2, 3, 5], rng);
    const w = Tensor.randn([4, 5], rng);
    const op = new Linear(be);
    const y = op.forward(x, w);
    assert.deepEqual(y.shape, [2, 3, 4]);
    const dy = Tensor.randn(y.shape, rng);
    const before = Tensor.randn([4, 5], rng);
    const dw = before.clone();
    const dx = op.backward(dy, dw);
    const dwOnly = Tensor.zeros([4, 5]);
    for (let i = 0; i < dw.numel; i++) dwOnly.data[i] = dw.data[i] - before.data[i];
    gradCheck({
      forward: () => [linear(be, x, w)],
      douts: [dy],
      inputs: [
        { name: 'x', x, grad: dx },
        { name: 'w', x: w, grad: dwOnly },
      ],
      ...EXACT,
    });
  });

  it('embedding (scatter-add with repeated ids)', () => {
    const rng = new Rng(30);
    const table = Tensor.randn([7, 4], rng);
    const ids = IntTensor.fromArray([3, 1, 3, 0, 6, 3, 1, 2], [2, 4]);
    const op = new Embedding(be);
    const out = op.forward(table, ids);
    assert.deepEqual(out.shape, [2, 4, 4]);
    const dout = Tensor.randn(out.shape, rng);
    const dtable = Tensor.zeros([7, 4]);
    op.backward(dout, dtable);
    // row 5 is never looked up: its gradient is exactly zero
    assert.deepEqual(Array.from(dtable.data.subarray(20, 24)), [0, 0, 0, 0]);
    gradCheck({ forward: () => [embedding(be, table, ids)], douts: [dout], inputs: [{ name: 'table', x: table, grad: dtable }], ...EXACT });
  });

  for (const eps of [1e-5, 1e-2]) {
    it(`rmsnorm eps=${eps}`, () => {
      const rng = new Rng(40);
      const x = Tensor.randn([3, 2, 8], rng);
      const w = Tensor.randn([8], rng, 0.5, 1);
      const op = new RMSNorm(be, { eps });
      const out = op.forward(x, w);
      const dout = Tensor.randn(out.shape, rng);
      const dw = Tensor.zeros([8]);
      const dx = op.backward(dout, dw);
      gradCheck({
        forward: () => [rmsnorm(be, x, w, eps)],
        douts: [dout],
        inputs: [
          { name: 'x', x, grad: dx },
          { name: 'w', x: w, grad: dw },
        ],
        ...SMOOTH,
      });
    });
  }

  for (const [theta, posOffset] of [
    [10000, 0],
    [500000, 7],
  ] as const) {
    it(`rope theta=${theta} posOffset=${posOffset} (in place; backward is the inverse rotation)`, () => {
      const rng = new Rng(50);
      const x = Tensor.randn([2, 3, 2, 8], rng);
      const rope = new RoPE(be, { theta });
      const dout = Tensor.randn(x.shape, rng);
      const dx = rope.backwardInPlace(dout.clone(), { posOffset });
      gradCheck({
        forward: () => [rope.forwardInPlace(x.clone(), { posOffset })],
        douts: [dout],
        inputs: [{ name: 'x', x, grad: dx }],
        ...EXACT,
      });
    });
  }

  it('rope with explicit positions equals rope with the matching offset', () => {
    const rng = new Rng(51);
    const x = Tensor.randn([1, 4, 2, 6], rng);
    const rope = new RoPE(be);
    const a = rope.forwardInPlace(x.clone(), { posOffset: 9 });
    const b = rope.forwardInPlace(x.clone(), { positions: IntTensor.fromArray([9, 10, 11, 12]) });
    assert.deepEqual(Array.from(a.data), Array.from(b.data));
    // and position 0 is the identity
    const c = rope.forwardInPlace(x.clone().reshape([4, 1, 2, 6]), { posOffset: 0 });
    assert.deepEqual(Array.from(c.data), Array.from(x.data));
  });

  for (const c of [
    { name: 'GQA training (S = T, H = 4, KV = 2)', B: 2, T: 4, S: 4, H: 4, KV: 2, D: 6 },
    { name: 'MHA (H = KV = 2)', B: 1, T: 5, S: 5, H: 2, KV: 2, D: 4 },
    { name: 'prefill after a cache (S = 5 > T = 3, MQA)', B: 1, T: 3, S: 5, H: 2, KV: 1, D: 4 },
  ]) {
    it(`attention ${c.name}`, () => {
      const rng = new Rng(60 + c.T + c.S);
      const q = Tensor.randn([c.B, c.T, c.H, c.D], rng);
      const k = Tensor.randn([c.B, c.S, c.KV, c.D], rng);
      const v = Tensor.randn([c.B, c.S, c.KV, c.D], rng);
      const op = new CausalAttention(be);
      const out = op.forward(q, k, v);
      const dout = Tensor.randn(out.shape, rng);
      const { dq, dk, dv } = op.backward(dout);
      gradCheck({
        forward: () => [attention(be, q, k, v)],
        douts: [dout],
        inputs: [
          { name: 'q', x: q, grad: dq },
          { name: 'k', x: k, grad: dk },
          { name: 'v', x: v, grad: dv },
        ],
        ...SMOOTH,
      });
    });
  }

  it('attention is causal: query t ignores keys after t', () => {
    const rng = new Rng(61);
    const q = Tensor.randn([1, 4, 2, 4], rng);
    const k = Tensor.randn([1, 4, 2, 4], rng);
    const v = Tensor.randn([1, 4, 2, 4], rng);
    const base = attention(be, q, k, v);
    // change key/value of the last position: outputs of positions 0..2 must not move
    k.data.fill(5, 3 * 8);
    v.data.fill(-5, 3 * 8);
    const moved = attention(be, q, k, v);
    assert.deepEqual(Array.from(moved.data.subarray(0, 3 * 8)), Array.from(base.data.subarray(0, 3 * 8)));
    assert.notDeepEqual(Array.from(moved.data.subarray(3 * 8)), Array.from(base.data.subarray(3 * 8)));
  });

  it('swiglu', () => {
    const rng = new Rng(70);
    const gate = Tensor.randn([3, 7], rng, 2);
    const up = Tensor.randn([3, 7], rng);
    const op = new SwiGLU(be);
    const out = op.forward(gate, up);
    const dout = Tensor.randn(out.shape, rng);
    const { dgate, dup } = op.backward(dout);
    gradCheck({
      forward: () => [swiglu(be, gate, up)],
      douts: [dout],
      inputs: [
        { name: 'gate', x: gate, grad: dgate },
        { name: 'up', x: up, grad: dup },
      ],
      ...SMOOTH,
    });
  });

  it('residual add (backward adds dout into both branches)', () => {
    const rng = new Rng(80);
    const a = Tensor.randn([2, 5], rng);
    const b = Tensor.randn([2, 5], rng);
    const dout = Tensor.randn([2, 5], rng);
    const da = Tensor.zeros([2, 5]);
    const db = Tensor.full([2, 5], 1);
    residualBackward(be, dout, da, db);
    for (let i = 0; i < 10; i++) assert.equal(db.data[i], Math.fround(1 + dout.data[i]));
    gradCheck({
      forward: () => [residualForward(be, a, b)],
      douts: [dout],
      inputs: [{ name: 'a', x: a, grad: da }],
      ...EXACT,
    });
    // in place on the residual stream
    const sum = residualForward(be, a, b);
    residualForward(be, a, b, a);
    assert.deepEqual(Array.from(a.data), Array.from(sum.data));
  });

  it('cross-entropy with ignored positions (mean over counted rows), dloss scaling', () => {
    const rng = new Rng(90);
    const logits = Tensor.randn([2, 3, 7], rng, 2);
    const targets = IntTensor.fromArray([1, -100, 6, 0, 3, -100], [2, 3]);
    const op = new CrossEntropy(be);
    const r = op.forward(logits, targets);
    assert.equal(r.count, 4);
    const dloss = 0.7;
    const dlogits = op.backward(dloss);
    // ignored rows get no gradient
    assert.ok(dlogits.data.subarray(7, 14).every((g) => g === 0));
    gradCheck({
      forward: () => [Tensor.fromArray([crossEntropyLoss(be, logits, targets).loss])],
      douts: [Tensor.fromArray([dloss])],
      inputs: [{ name: 'logits', x: logits, grad: dlogits }],
      ...SMOOTH,
    });
  });

  it('cross-entropy with every row ignored: loss 0, count 0, zero gradient', () => {
    const op = new CrossEntropy(be);
    const logits = Tensor.randn([2, 5], new Rng(91));
    const r = op.forward(logits, IntTensor.fromArray([-100, -100]));
    assert.deepEqual(r, { loss: 0, count: 0 });
    assert.ok(op.backward().data.every((g) => g === 0));
  });
});
