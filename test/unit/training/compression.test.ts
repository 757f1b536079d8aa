import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend, dequantizeInt8, fromFp16, quantizeInt8, toFp16 } from '../../../src/tensor/index.js';
import { COMPRESSIONS, decodeDelta, encodeDelta, encodedBytes, ErrorFeedback, sparseK } from '../../../src/training/compression/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { Rng } from '../../../src/util/rng.js';

function randomDelta(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * 1e-3 * (i % 17 === 0 ? 10 : 1);
  return x;
}

const malformed = (e: unknown): boolean => isNeuroShardError(e, 'TRAINING_DELTA_MALFORMED') && e.fault === 'peer';

describe('Δ compression', () => {
  it('round-trips none exactly and fp16 / int8 within their error bounds, matching the engine bit for bit', () => {
    const be = createReferenceBackend();
    const x = randomDelta(10_001, 1);
    assert.deepEqual(decodeDelta('none', x.length, encodeDelta('none', x)), x);
    const h = decodeDelta('fp16', x.length, encodeDelta('fp16', x));
    assert.deepEqual(h, fromFp16(be, toFp16(be, x)));
    const q = decodeDelta('int8', x.length, encodeDelta('int8', x));
    const ref = dequantizeInt8(be, quantizeInt8(be, x, 64));
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(q[i]! - ref[i]!));
    assert.ok(worst <= 1.1e-2 * 1e-3, `int8 differs from the engine by ${worst}`); // at most one code on a rounding tie
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(q[i]! - x[i]!) <= 0.05 * 1e-2 + 1e-9, `int8 error at ${i}`);
    assert.equal(encodeDelta('int8', x).byteLength, 4 + 4 * Math.ceil(x.length / 64) + x.length);
  });

  it('fp16 edge cases: subnormals, overflow to Infinity (then refused), ties to even', () => {
    const be = createReferenceBackend();
    const x = Float32Array.from([0, -0, 1, 65504, 2 ** -24, 2 ** -25 * 3, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -3.14159]);
    assert.deepEqual(decodeDelta('fp16', x.length, encodeDelta('fp16', x)), fromFp16(be, toFp16(be, x)));
    assert.throws(() => decodeDelta('fp16', 1, encodeDelta('fp16', Float32Array.from([1e6]))), malformed);
  });

  it('sparse keeps the top |x| of each chunk with two levels per chunk, ~108× smaller than fp32', () => {
    const x = randomDelta(10_000, 2);
    const payload = encodeDelta('sparse', x);
    const k = sparseK(4096, 1 / 64);
    assert.equal(k, 64);
    assert.equal(payload.byteLength, encodedBytes('sparse', x.length));
    const ratio = (4 * 4096) / (8 + 2 * 64 + 16);
    assert.ok(ratio > 100, `${ratio}`);
    const y = decodeDelta('sparse', x.length, payload);
    // exactly k non-zeros per chunk, at the largest |x|, with the right sign
    for (let s = 0; s < x.length; s += 4096) {
      const len = Math.min(4096, x.length - s);
      const kk = sparseK(len, 1 / 64);
      const nz = [];
      for (let i = 0; i < len; i++) if (y[s + i] !== 0) nz.push(i);
      assert.equal(nz.length, kk);
      const thr = [...x.subarray(s, s + len)].map(Math.abs).sort((a, b) => b - a)[kk - 1]!;
      for (const i of nz) {
        assert.ok(Math.abs(x[s + i]!) >= thr);
        assert.equal(Math.sign(y[s + i]!), Math.sign(x[s + i]!));
      }
    }
  });

  it('sparse: ties at the threshold go to the lower index; hand-computed levels', () => {
    // chunk 8, fraction 0.5 → k = 4 of [1, -4, 2, 2, 2, 0, 3, -1]: |x| sorted 4,3,2,2,2,… → keep 4, 3 and the first two 2s
    const x = Float32Array.from([1, -4, 2, 2, 2, 0, 3, -1]);
    const o = { sparseChunk: 8, sparseFraction: 0.5 };
    const y = decodeDelta('sparse', 8, encodeDelta('sparse', x, o), o);
    // kept |x| = 2, 2, 3, 4 → median (lower) 2: lo = 2, hi = 3.5
    assert.deepEqual([...y], [0, -3.5, 2, 2, 0, 0, 3.5, 0]);
  });

  it('error feedback carries what was dropped into the next rounds (Σ sent = Σ Δ − residual)', () => {
    for (const kind of COMPRESSIONS) {
      const ef = new ErrorFeedback(kind);
      const n = 5000;
      const sumDelta = new Float64Array(n);
      const sumSent = new Float64Array(n);
      for (let r = 0; r < 6; r++) {
        const d = randomDelta(n, 10 + r);
        for (let i = 0; i < n; i++) d[i] += 2e-4; // a consistent direction that sparse alone would mostly drop
        const { sent, payload } = ef.compress('layer.0', d);
        assert.equal(payload.byteLength, encodedBytes(kind, n), kind);
        for (let i = 0; i < n; i++) {
          sumDelta[i] += d[i]!;
          sumSent[i] += sent[i]!;
        }
      }
      const res = ef.residualOf('layer.0')!;
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(sumSent[i]! + res[i]! - sumDelta[i]!));
      assert.ok(worst < 1e-6, `${kind}: Σ sent + residual differs from Σ Δ by ${worst}`);
      if (kind === 'none') assert.ok(res.every((v) => v === 0));
      // state survives a restart
      const ef2 = new ErrorFeedback(kind);
      ef2.loadState(ef.state());
      assert.deepEqual(ef2.residualOf('layer.0'), res);
    }
    // sparse with feedback sends the small consistent component over rounds; without (β = 0) it is mostly lost
    const n = 4096;
    const meanSent = (beta: number): number => {
      const ef = new ErrorFeedback('sparse', {}, beta);
      let m = 0;
      for (let r = 0; r < 40; r++) {
        const d = randomDelta(n, 100 + r);
        for (let i = 0; i < n; i++) d[i] = d[i]! * 0.1 + 1e-5;
        const { sent } = ef.compress('l', d);
        for (let i = 0; i < n; i++) m += sent[i]! / (n * 40);
      }
      return m;
    };
    const withEf = meanSent(1);
    const without = meanSent(0);
    assert.ok(withEf > 2 * Math.abs(without) && withEf > 2e-6, `mean sent ${withEf} with feedback, ${without} without`);
  });

  it('decoding refuses wrong lengths, bad scales, bad indices, −128 codes, foreign parameters and non-finite values', () => {
    const x = randomDelta(300, 3);
    assert.throws(() => decodeDelta('none', 300, encodeDelta('none', x).subarray(4)), malformed);
    const nan = encodeDelta('none', x);
    new DataView(nan.buffer).setFloat32(8, NaN, true);
    assert.throws(() => decodeDelta('none', 300, nan), malformed);
    const i8 = encodeDelta('int8', x);
    new DataView(i8.buffer).setFloat32(4, Infinity, true);
    assert.throws(() => decodeDelta('int8', 300, i8), malformed);
    const i8b = encodeDelta('int8', x);
    new DataView(i8b.buffer).setInt8(i8b.byteLength - 1, -128);
    assert.throws(() => decodeDelta('int8', 300, i8b), malformed);
    assert.throws(() => decodeDelta('int8', 300, encodeDelta('int8', x, { int8Block: 32 })), malformed);
    const sp = encodeDelta('sparse', x);
    const dv = new DataView(sp.buffer);
    const first = dv.getUint16(20, true);
    dv.setUint16(22, first, true); // second index equal to the first
    assert.throws(() => decodeDelta('sparse', 300, sp), malformed);
    const sp2 = encodeDelta('sparse', x);
    new DataView(sp2.buffer).setFloat32(12, -1, true);
    assert.throws(() => decodeDelta('sparse', 300, sp2), malformed);
    assert.throws(() => decodeDelta('sparse', 300, encodeDelta('sparse', x, { sparseFraction: 0.5 })), malformed);
    assert.throws(() => encodeDelta('none', Float32Array.from([NaN])), (e) => isNeuroShardError(e, 'NON_FINITE'));
  });
});
