/**
 * Bad input gives typed errors that name the op and the shapes: shape mismatches (never broadcast or truncated),
 * out-of-range token ids, backward before forward.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BackwardBeforeForwardError,
  CausalAttention,
  CrossEntropy,
  Embedding,
  IntTensor,
  KVCache,
  KVCacheFullError,
  Linear,
  MatMul,
  RMSNorm,
  RoPE,
  ShapeError,
  SwiGLU,
  Tensor,
  TokenRangeError,
  attentionWithCache,
  createReferenceBackend,
  embedding,
  matmul,
  residualForward,
  type Shape,
} from '../../../src/tensor/index.js';
import { InvalidArgumentError, NeuroShardError } from '../../../src/util/errors.js';

const be = createReferenceBackend();
const z = (...shape: Shape): Tensor => Tensor.zeros(shape);

function expectShapeError(fn: () => unknown, op: string, ...mentions: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ShapeError, `expected ShapeError, got ${String(e)}`);
    assert.equal(e.code, 'SHAPE_MISMATCH');
    assert.equal(e.fault, 'caller');
    assert.equal(e.op, op);
    assert.ok(e.message.startsWith(`${op}:`), e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `message "${e.message}" should mention ${m}`);
    return true;
  });
}

describe('shape mismatches are ShapeErrors naming the op and the shapes', () => {
  it('matmul: inner dimension, batch dimension, rank', () => {
    expectShapeError(() => matmul(be, z(2, 3), z(4, 5)), 'matmul', '[2, 3]', '[4, 5]');
    expectShapeError(() => matmul(be, z(2, 3), z(4, 3), { transB: false }), 'matmul', 'K = 3');
    expectShapeError(() => matmul(be, z(2, 2, 3), z(3, 3, 4)), 'matmul', 'batch', '[2, 2, 3]', '[3, 3, 4]');
    // no broadcasting of a 2-D operand against a batched one
    expectShapeError(() => matmul(be, z(2, 2, 3), z(3, 4)), 'matmul', '[3, 4]');
    expectShapeError(() => new MatMul(be).forward(z(2, 3), z(3, 4), z(2, 5)), 'matmul', 'out', '[2, 5]');
  });

  it('linear: input channels vs weight in-features', () => {
    expectShapeError(() => new Linear(be).forward(z(2, 3, 7), z(16, 8)), 'linear', '7', '8', '[2, 3, 7]', '[16, 8]');
    const lin = new Linear(be);
    lin.forward(z(2, 8), z(4, 8));
    expectShapeError(() => lin.backward(z(2, 5), z(4, 8)), 'linear.backward', 'dy', '[2, 5]');
    lin.forward(z(2, 8), z(4, 8));
    expectShapeError(() => lin.backward(z(2, 4), z(8, 4)), 'linear.backward', 'dw', '[8, 4]');
  });

  it('rmsnorm, swiglu, residual, embedding, cross-entropy', () => {
    expectShapeError(() => new RMSNorm(be).forward(z(2, 8), z(7)), 'rmsnorm', '[2, 8]', '[7]');
    expectShapeError(() => new SwiGLU(be).forward(z(2, 8), z(2, 9)), 'swiglu', '[2, 8]', '[2, 9]');
    expectShapeError(() => residualForward(be, z(2, 8), z(8)), 'residual', '[2, 8]', '[8]');
    expectShapeError(() => embedding(be, z(10), IntTensor.zeros([3])), 'embedding', '[10]');
    expectShapeError(() => new CrossEntropy(be).forward(z(2, 3, 5), IntTensor.zeros([2, 4])), 'crossEntropy', '[2, 3, 5]', '[2, 4]');
  });

  it('attention: heads, head_dim, S < T; rope: odd head_dim', () => {
    const att = new CausalAttention(be);
    expectShapeError(() => att.forward(z(1, 4, 3, 8), z(1, 4, 2, 8), z(1, 4, 2, 8)), 'attention', 'multiple', '[1, 4, 3, 8]');
    expectShapeError(() => att.forward(z(1, 4, 2, 8), z(1, 4, 2, 4), z(1, 4, 2, 4)), 'attention', 'head_dim');
    expectShapeError(() => att.forward(z(1, 4, 2, 8), z(1, 3, 2, 8), z(1, 3, 2, 8)), 'attention', 'S = 3');
    expectShapeError(() => att.forward(z(1, 4, 2, 8), z(1, 4, 2, 8), z(1, 4, 1, 8)), 'attention', 'same shape');
    expectShapeError(() => new RoPE(be).forwardInPlace(z(1, 2, 2, 7)), 'rope', 'even');
    expectShapeError(() => new RoPE(be).forwardInPlace(z(2, 2, 7)), 'rope', '[B, T, H, D]');
  });

  it('tensors: data length, reshape', () => {
    expectShapeError(() => new Tensor(new Float32Array(5), [2, 3]), 'Tensor', '[2, 3]');
    expectShapeError(() => z(2, 3).reshape([4, 2]), 'Tensor.reshape', '[2, 3]', '[4, 2]');
    expectShapeError(() => z(2, 3).reshape([-1, 4]), 'Tensor.reshape');
    assert.throws(() => IntTensor.fromArray([1.5]), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes('1.5'));
  });

  it('errors carry meta that crosses worker boundaries', () => {
    try {
      matmul(be, z(2, 3), z(4, 5));
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof NeuroShardError);
      const o = e.toObject();
      assert.deepEqual(o.meta, { op: 'matmul', shapes: { a: [2, 3], b: [4, 5] } });
      assert.equal(NeuroShardError.fromObject(o).code, 'SHAPE_MISMATCH');
    }
  });
});

describe('token ids out of range', () => {
  it('embedding rejects an id ≥ V or < 0 before reading anything', () => {
    const table = z(10, 4);
    for (const bad of [10, -1, 1 << 30]) {
      assert.throws(
        () => new Embedding(be).forward(table, IntTensor.fromArray([1, 2, bad, 3], [2, 2])),
        (e: unknown) => e instanceof TokenRangeError && e.code === 'TOKEN_OUT_OF_RANGE' && e.fault === 'caller' && e.message.includes(`${bad}`) && e.message.includes('[0, 10)') && e.message.includes('index 2'),
      );
    }
  });

  it('cross-entropy rejects targets outside [0, V) other than −100', () => {
    const ce = new CrossEntropy(be);
    assert.throws(() => ce.forward(z(2, 5), IntTensor.fromArray([5, 0])), TokenRangeError);
    assert.throws(() => ce.forward(z(2, 5), IntTensor.fromArray([0, -1])), TokenRangeError);
    assert.doesNotThrow(() => ce.forward(z(2, 5), IntTensor.fromArray([4, -100])));
    // a custom ignore index replaces −100
    assert.throws(() => new CrossEntropy(be, { ignoreIndex: -1 }).forward(z(2, 5), IntTensor.fromArray([-100, 0])), TokenRangeError);
  });
});

describe('backward before forward', () => {
  const cases: [string, () => unknown][] = [
    ['matmul', () => new MatMul(be).backward(z(2, 2))],
    ['linear', () => new Linear(be).backward(z(2, 2), z(2, 2))],
    ['embedding', () => new Embedding(be).backward(z(2, 2), z(2, 2))],
    ['rmsnorm', () => new RMSNorm(be).backward(z(2, 2), z(2))],
    ['attention', () => new CausalAttention(be).backward(z(1, 1, 1, 2))],
    ['swiglu', () => new SwiGLU(be).backward(z(2))],
    ['crossEntropy', () => new CrossEntropy(be).backward()],
  ];
  for (const [op, fn] of cases) {
    it(`${op}: typed error`, () => {
      assert.throws(fn, (e: unknown) => e instanceof BackwardBeforeForwardError && e.code === 'BACKWARD_BEFORE_FORWARD' && e.op === op);
    });
  }

  it('a second backward for one forward is refused too', () => {
    const lin = new Linear(be);
    lin.forward(z(2, 3), z(4, 3));
    lin.backward(z(2, 4), z(4, 3));
    assert.throws(() => lin.backward(z(2, 4), z(4, 3)), BackwardBeforeForwardError);
  });

  it('cross-entropy forward without gradient does not arm backward', () => {
    const ce = new CrossEntropy(be);
    ce.forward(z(2, 5), IntTensor.fromArray([1, 2]), { computeGrad: false });
    assert.throws(() => ce.backward(), BackwardBeforeForwardError);
  });
});

describe('KV cache', () => {
  it('appending past capacity is a KVCacheFullError; nothing is truncated', () => {
    const cache = new KVCache({ batch: 1, maxSeq: 4, nKvHeads: 1, headDim: 2 });
    cache.append(z(1, 3, 1, 2), z(1, 3, 1, 2));
    assert.throws(() => cache.append(z(1, 2, 1, 2), z(1, 2, 1, 2)), KVCacheFullError);
    assert.equal(cache.length, 3);
    assert.throws(
      () => attentionWithCache(be, z(1, 2, 2, 2), z(1, 2, 1, 2), z(1, 2, 1, 2), cache),
      (e: unknown) => e instanceof KVCacheFullError && e.code === 'KV_CACHE_FULL',
    );
  });

  it('wrong head count for the cache is a ShapeError', () => {
    const cache = new KVCache({ batch: 1, maxSeq: 4, nKvHeads: 2, headDim: 2 });
    expectShapeError(() => cache.append(z(1, 1, 1, 2), z(1, 1, 1, 2)), 'KVCache.append', '[1, 1, 1, 2]');
  });
});

describe('invalid arguments', () => {
  it('eps, theta, posOffset', () => {
    assert.throws(() => new RMSNorm(be, { eps: -1 }), InvalidArgumentError);
    assert.throws(() => new RoPE(be, { theta: 0 }), InvalidArgumentError);
    assert.throws(() => new RoPE(be).forwardInPlace(z(1, 1, 1, 2), { posOffset: -3 }), InvalidArgumentError);
  });
});
