/**
 * Our ops against PyTorch golden fixtures (test/fixtures/tensor/ops.json, written by scripts/reference/tensor_ops.py
 * with Debian torch 1.13; CI only reads the committed file). The fixtures hold PyTorch's float64 results for float32
 * inputs, so each tolerance below bounds our float32 error. Every case runs on the reference backend and, when it
 * loads, on the native backend too.
 *
 * Tolerances, |ours − torch| ≤ atol + rtol·|torch|:
 *   matmul, linear, embedding, residual, swiglu, rmsnorm forward    1e-5 + 1e-5
 *   rope (HF float32 cos/sin tables)                                 1e-6 + 1e-6
 *   attention forward (training and KV-cache decode)                 1e-5 + 1e-4
 *   every gradient                                                   5e-5 + 1e-4
 *   cross-entropy loss: relative 1e-6; dlogits 1e-6 + 1e-5
 *   AdamW parameters after each of 4 steps: 2e-6 + 1e-6 (vs torch float64 and float32); grad norms relative 1e-6
 *   fp16 bits and int8 codes and scales: exact; int8 dequantized: 0 + 1e-7
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  AdamW,
  CausalAttention,
  CrossEntropy,
  Embedding,
  IntTensor,
  KVCache,
  Linear,
  MatMul,
  RMSNorm,
  RoPE,
  SwiGLU,
  Tensor,
  attentionWithCache,
  createReferenceBackend,
  dequantizeInt8,
  fromFp16,
  quantizeInt8,
  residualBackward,
  residualForward,
  toFp16,
  tryLoadNativeBackend,
  type Backend,
} from '../../../src/tensor/index.js';
import { fixturePath } from '../../utils/paths.js';

// ---- fixture loading --------------------------------------------------------------------------------------------

interface RawTensor {
  dtype: 'f32' | 'i32' | 'u16' | 'i8';
  shape: number[];
  data: string;
}

interface RawCase {
  name: string;
  op: string;
  params: Record<string, unknown>;
  tensors: Record<string, RawTensor>;
}

interface Fixture {
  format: string;
  version: number;
  cases: RawCase[];
}

type Decoded = Float32Array | Int32Array | Uint16Array | Int8Array;

function decode(t: RawTensor): Decoded {
  const bytes = Buffer.from(t.data, 'base64');
  // copy into a fresh, aligned buffer (the file is little-endian, as is every machine we run on)
  const buf = new Uint8Array(bytes.length);
  buf.set(bytes);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const arr = { f32: Float32Array, i32: Int32Array, u16: Uint16Array, i8: Int8Array }[t.dtype];
  const out = new arr(buf.buffer, 0, n);
  assert.equal(out.byteLength, buf.length, `tensor of shape [${t.shape.join(', ')}] has ${buf.length} bytes`);
  return out;
}

class Case {
  constructor(readonly raw: RawCase) {}

  get name(): string {
    return this.raw.name;
  }

  param<T>(k: string): T {
    assert.ok(k in this.raw.params, `${this.name}: no param ${k}`);
    return this.raw.params[k] as T;
  }

  /** A fresh float32 tensor (ops may write in place). */
  f(k: string): Tensor {
    const t = this.raw.tensors[k];
    assert.ok(t !== undefined && t.dtype === 'f32', `${this.name}: no f32 tensor ${k}`);
    return new Tensor(decode(t) as Float32Array, t.shape);
  }

  i(k: string): IntTensor {
    const t = this.raw.tensors[k];
    assert.ok(t !== undefined && t.dtype === 'i32', `${this.name}: no i32 tensor ${k}`);
    return new IntTensor(decode(t) as Int32Array, t.shape);
  }

  raw16(k: string): Uint16Array {
    return decode(this.raw.tensors[k]) as Uint16Array;
  }

  raw8(k: string): Int8Array {
    return decode(this.raw.tensors[k]) as Int8Array;
  }
}

const fixture = JSON.parse(readFileSync(fixturePath('tensor', 'ops.json'), 'utf8')) as Fixture;
assert.equal(fixture.format, 'neuroshard-tensor-ops');
assert.equal(fixture.version, 1);
const cases = fixture.cases.map((c) => new Case(c));
const byOp = (op: string): Case[] => cases.filter((c) => c.raw.op === op);

function close(got: Tensor | ArrayLike<number>, want: Tensor | ArrayLike<number>, atol: number, rtol: number, what: string): void {
  const g = got instanceof Tensor ? got.data : got;
  const w = want instanceof Tensor ? want.data : want;
  if (got instanceof Tensor && want instanceof Tensor) assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  assert.equal(g.length, w.length, `${what}: length`);
  for (let i = 0; i < g.length; i++) {
    const d = Math.abs(g[i] - w[i]);
    const bound = atol + rtol * Math.abs(w[i]);
    if (!(d <= bound)) assert.fail(`${what}[${i}]: ours ${g[i]} vs torch ${w[i]} (|Δ| ${d.toExponential(2)} > ${bound.toExponential(2)})`);
  }
}

const FWD = [1e-5, 1e-5] as const;
const GRAD = [5e-5, 1e-4] as const;

// ---- the checks, per backend --------------------------------------------------------------------------------------

const backends: { label: string; be: Backend }[] = [{ label: 'reference', be: createReferenceBackend() }];
const native = await tryLoadNativeBackend();
if (native.ok) backends.push({ label: 'native', be: native.backend });

describe('fixture file', () => {
  it('covers every op', () => {
    const ops = new Set(cases.map((c) => c.raw.op));
    for (const op of ['matmul', 'linear', 'embedding', 'rmsnorm', 'rope', 'attention', 'swiglu', 'residual', 'crossEntropy', 'adamw', 'fp16', 'int8']) {
      assert.ok(ops.has(op), `no fixture for ${op}`);
    }
  });
});

for (const { label, be } of backends) {
  describe(`ops vs PyTorch (${label} backend)`, () => {
    it('matmul: all transposes, 2-D and batched', () => {
      const cs = byOp('matmul');
      assert.equal(cs.length, 8);
      for (const c of cs) {
        const op = new MatMul(be, { transA: c.param<boolean>('transA'), transB: c.param<boolean>('transB') });
        close(op.forward(c.f('a'), c.f('b')), c.f('out'), ...FWD, `${c.name} out`);
        const { da, db } = op.backward(c.f('dout'));
        close(da!, c.f('da'), ...GRAD, `${c.name} da`);
        close(db!, c.f('db'), ...GRAD, `${c.name} db`);
      }
    });

    it('linear', () => {
      for (const c of byOp('linear')) {
        const op = new Linear(be);
        const w = c.f('w');
        close(op.forward(c.f('x'), w), c.f('out'), ...FWD, `${c.name} out`);
        const dw = Tensor.zeros(w.shape);
        close(op.backward(c.f('dout'), dw), c.f('dx'), ...GRAD, `${c.name} dx`);
        close(dw, c.f('dw'), ...GRAD, `${c.name} dw`);
      }
    });

    it('embedding', () => {
      for (const c of byOp('embedding')) {
        const op = new Embedding(be);
        const table = c.f('table');
        close(op.forward(table, c.i('ids')), c.f('out'), 0, 0, `${c.name} out`);
        const dtable = Tensor.zeros(table.shape);
        op.backward(c.f('dout'), dtable);
        close(dtable, c.f('dtable'), ...GRAD, `${c.name} dtable`);
      }
    });

    it('rmsnorm', () => {
      for (const c of byOp('rmsnorm')) {
        const op = new RMSNorm(be, { eps: c.param<number>('eps') });
        const w = c.f('w');
        close(op.forward(c.f('x'), w), c.f('out'), ...FWD, `${c.name} out`);
        const dw = Tensor.zeros(w.shape);
        close(op.backward(c.f('dout'), dw), c.f('dx'), ...GRAD, `${c.name} dx`);
        close(dw, c.f('dw'), ...GRAD, `${c.name} dw`);
      }
    });

    it('rope (HF rotate-half, float32 tables, offsets up to 2000)', () => {
      const cs = byOp('rope');
      assert.ok(cs.some((c) => c.param<number>('posOffset') >= 2000));
      for (const c of cs) {
        const rope = new RoPE(be, { theta: c.param<number>('theta') });
        const pos = { posOffset: c.param<number>('posOffset') };
        close(rope.forwardInPlace(c.f('x'), pos), c.f('out'), 1e-6, 1e-6, `${c.name} out`);
        close(rope.backwardInPlace(c.f('dout'), pos), c.f('dx'), 1e-6, 1e-6, `${c.name} dx`);
      }
    });

    it('causal GQA attention: training path', () => {
      for (const c of byOp('attention')) {
        const op = new CausalAttention(be);
        close(op.forward(c.f('q'), c.f('k'), c.f('v')), c.f('out'), 1e-5, 1e-4, `${c.name} out`);
        const { dq, dk, dv } = op.backward(c.f('dout'));
        close(dq, c.f('dq'), ...GRAD, `${c.name} dq`);
        close(dk, c.f('dk'), ...GRAD, `${c.name} dk`);
        close(dv, c.f('dv'), ...GRAD, `${c.name} dv`);
      }
    });

    it('causal GQA attention: KV-cache prefill + token-by-token decode gives the same rows', () => {
      for (const c of byOp('attention')) {
        const [B, T, H, D] = c.f('q').shape;
        const [, S, KV] = c.f('k').shape;
        if (S !== T) continue;
        const q = c.f('q');
        const k = c.f('k');
        const v = c.f('v');
        const want = c.f('out');
        const cache = new KVCache({ batch: B, maxSeq: T, nKvHeads: KV, headDim: D });
        const sl = (x: Tensor, t0: number, t1: number, heads: number): Tensor => {
          const o = Tensor.zeros([B, t1 - t0, heads, D]);
          for (let b = 0; b < B; b++) o.data.set(x.data.subarray((b * T + t0) * heads * D, (b * T + t1) * heads * D), b * (t1 - t0) * heads * D);
          return o;
        };
        const prefill = T - 2;
        const steps: [number, number][] = [[0, prefill]];
        for (let t = prefill; t < T; t++) steps.push([t, t + 1]);
        for (const [t0, t1] of steps) {
          const out = attentionWithCache(be, sl(q, t0, t1, H), sl(k, t0, t1, KV), sl(v, t0, t1, KV), cache);
          close(out, sl(want, t0, t1, H), 1e-5, 1e-4, `${c.name} cached positions ${t0}..${t1 - 1}`);
        }
      }
    });

    it('swiglu', () => {
      for (const c of byOp('swiglu')) {
        const op = new SwiGLU(be);
        close(op.forward(c.f('gate'), c.f('up')), c.f('out'), ...FWD, `${c.name} out`);
        const { dgate, dup } = op.backward(c.f('dout'));
        close(dgate, c.f('dgate'), ...GRAD, `${c.name} dgate`);
        close(dup, c.f('dup'), ...GRAD, `${c.name} dup`);
      }
    });

    it('residual', () => {
      for (const c of byOp('residual')) {
        close(residualForward(be, c.f('a'), c.f('b')), c.f('out'), ...FWD, `${c.name} out`);
        const da = Tensor.zeros(c.f('a').shape);
        const db = Tensor.zeros(c.f('b').shape);
        residualBackward(be, c.f('dout'), da, db);
        close(da, c.f('da'), 0, 0, `${c.name} da`);
        close(db, c.f('db'), 0, 0, `${c.name} db`);
      }
    });

    it('cross-entropy with ignore index −100', () => {
      for (const c of byOp('crossEntropy')) {
        const op = new CrossEntropy(be, { ignoreIndex: c.param<number>('ignoreIndex') });
        const r = op.forward(c.f('logits'), c.i('targets'));
        const want = c.param<number>('loss');
        assert.ok(Math.abs(r.loss - want) <= 1e-6 * Math.abs(want), `${c.name}: loss ${r.loss} vs torch ${want}`);
        assert.equal(r.count, Array.from(c.i('targets').data).filter((t) => t !== -100).length);
        close(op.backward(), c.f('dlogits'), 1e-6, 1e-5, `${c.name} dlogits`);
      }
    });

    it('AdamW with global-norm clipping: 4 steps vs torch.optim.AdamW + clip_grad_norm_', () => {
      for (const c of byOp('adamw')) {
        const steps = c.param<number>('steps');
        const params = [c.f('p0_0'), c.f('p0_1')];
        const grads = params.map((p) => Tensor.zeros(p.shape));
        const opt = new AdamW(
          be,
          params.map((param, i) => ({ name: `p${i}`, param, grad: grads[i] })),
          {
            lr: c.param<number>('lr'),
            beta1: c.param<number>('beta1'),
            beta2: c.param<number>('beta2'),
            eps: c.param<number>('eps'),
            weightDecay: c.param<number>('weightDecay'),
            maxGradNorm: c.param<number>('maxGradNorm'),
          },
        );
        const norms = c.param<number[]>('gradNorms_f64');
        let clipped = 0;
        for (let s = 0; s < steps; s++) {
          grads[0].copyFrom(c.f(`g${s}_0`));
          grads[1].copyFrom(c.f(`g${s}_1`));
          const r = opt.step();
          assert.equal(r.applied, true);
          assert.ok(Math.abs(r.gradNorm - norms[s]) <= 1e-6 * norms[s], `step ${s + 1}: grad norm ${r.gradNorm} vs torch ${norms[s]}`);
          if (r.clipScale < 1) clipped++;
          for (const tag of ['f64', 'f32']) {
            close(params[0], c.f(`p${s + 1}_0_${tag}`), 2e-6, 1e-6, `${c.name} step ${s + 1} p0 vs torch ${tag}`);
            close(params[1], c.f(`p${s + 1}_1_${tag}`), 2e-6, 1e-6, `${c.name} step ${s + 1} p1 vs torch ${tag}`);
          }
        }
        assert.ok(clipped > 0 && clipped < steps, `the fixture should exercise both clipped and unclipped steps (clipped ${clipped} of ${steps})`);
      }
    });

    it('fp16: the same bits as torch .half()', () => {
      for (const c of byOp('fp16')) {
        const x = c.f('x');
        const want = c.raw16('half');
        const got = toFp16(be, x);
        for (let i = 0; i < want.length; i++) {
          if (got[i] !== want[i]) assert.fail(`${c.name}: fp16(${x.data[i]}) = 0x${got[i].toString(16)}, torch 0x${want[i].toString(16)}`);
        }
        const back = fromFp16(be, want);
        for (let i = 0; i < want.length; i++) {
          const expect = x.data[i];
          // |x − half(x)| ≤ 2^-11·|x| in range, the half value itself decodes exactly (checked in unit tests)
          if (Number.isFinite(expect) && Math.abs(expect) < 65504) {
            assert.ok(Math.abs(back[i] - expect) <= Math.max(2 ** -11 * Math.abs(expect), 2 ** -25), `${c.name}: ${expect} → ${back[i]}`);
          }
        }
      }
    });

    it('int8 block quantization: codes, scales and dequantized values', () => {
      for (const c of byOp('int8')) {
        const blockSize = c.param<number>('blockSize');
        const qb = quantizeInt8(be, c.f('x'), blockSize);
        assert.deepEqual(Array.from(qb.q), Array.from(c.raw8('q')), `${c.name} codes`);
        close(qb.scales, c.f('scales'), 0, 0, `${c.name} scales`);
        close(dequantizeInt8(be, qb), c.f('deq'), 0, 1e-7, `${c.name} dequantized`);
      }
    });
  });
}
