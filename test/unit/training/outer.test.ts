import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { nesterovOuterStep, OuterOptimizer, pseudoGradient } from '../../../src/training/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { fixturePath } from '../../utils/paths.js';

interface Fixture {
  lr: number;
  momentum: number;
  n: number;
  theta0: string;
  rounds: { delta: string; theta: string }[];
}

function f32(b64: string): Float32Array {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const fx = JSON.parse(readFileSync(fixturePath('training', 'outer-nesterov.json'), 'utf8')) as Fixture;

describe('outer Nesterov step', () => {
  it('matches torch.optim.SGD(nesterov=True) over 3 rounds with Δ as the gradient', () => {
    const opt = new OuterOptimizer({ lr: fx.lr, momentum: fx.momentum });
    const theta = f32(fx.theta0);
    let worst = 0;
    for (const r of fx.rounds) {
      opt.applyLayer('layer', theta, f32(r.delta));
      opt.finishRound();
      const want = f32(r.theta);
      // float32 rounding of θ_start − η·d where the two nearly cancel: compare in ULPs of the larger operand
      for (let i = 0; i < fx.n; i++) worst = Math.max(worst, Math.abs(theta[i]! - want[i]!));
    }
    assert.ok(worst <= 1.2e-7, `worst absolute error ${worst}`); // one float32 ULP at |θ| < 2 (PyTorch fuses g + μ·buf)
    assert.equal(opt.round, 3);
  });

  it('is bit-identical across holders given the same Δ (and the buffer round-trips through state)', () => {
    const a = new OuterOptimizer({ lr: 0.7, momentum: 0.9 });
    const b = new OuterOptimizer({ lr: 0.7, momentum: 0.9 });
    const ta = f32(fx.theta0);
    const tb = f32(fx.theta0);
    a.applyLayer('l', ta, f32(fx.rounds[0]!.delta));
    b.applyLayer('l', tb, f32(fx.rounds[0]!.delta));
    const c = new OuterOptimizer({ lr: 0.7, momentum: 0.9 });
    c.loadState(b.state());
    const tc = new Float32Array(tb);
    a.applyLayer('l', ta, f32(fx.rounds[1]!.delta));
    c.applyLayer('l', tc, f32(fx.rounds[1]!.delta));
    assert.deepEqual(Buffer.from(ta.buffer), Buffer.from(tc.buffer));
  });

  it('computes Δ = θ_start − θ_local and the hand-computed first and second steps', () => {
    const d = pseudoGradient(new Float32Array([1, 2, 3]), new Float32Array([0.5, 2, 4]));
    assert.deepEqual([...d], [0.5, 0, -1]);
    const theta = new Float32Array([1, 1]);
    // round 1: buf = Δ = [1, -2]; θ = 1 − 0.5·(Δ + 0.5·buf) = 1 − 0.5·1.5·Δ
    const buf = nesterovOuterStep(theta, new Float32Array([1, -2]), null, { lr: 0.5, momentum: 0.5 });
    assert.deepEqual([...theta], [0.25, 2.5]);
    // round 2: buf = 0.5·[1, -2] + [2, 0] = [2.5, -1]; θ = θ − 0.5·([2, 0] + 0.5·[2.5, -1])
    nesterovOuterStep(theta, new Float32Array([2, 0]), buf, { lr: 0.5, momentum: 0.5 });
    assert.deepEqual([...buf], [2.5, -1]);
    assert.deepEqual([...theta], [0.25 - 0.5 * 3.25, 2.5 + 0.25]);
  });

  it('rejects bad options and mismatched sizes with typed errors', () => {
    assert.throws(() => new OuterOptimizer({ lr: -1, momentum: 0.9 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => new OuterOptimizer({ lr: 0.7, momentum: 1 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => nesterovOuterStep(new Float32Array(2), new Float32Array(3), null, { lr: 0.7, momentum: 0.9 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });
});
