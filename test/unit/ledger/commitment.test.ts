/** Activation commitments: what hop k produced and hop k+1 received commit alike; any change to a top entry shows. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  CROSS_ENGINE_TOLERANCE,
  EXACT_TOLERANCE,
  extendCommitment,
  extendCommitmentTopK,
  extendTokenCommitment,
  halfBits,
  halfValue,
  initialCommitment,
  openingCommitment,
  RunningCommitment,
  topKRows,
  verifyStep,
} from '../../../src/ledger/commitment.js';
import { Rng } from '../../../src/util/rng.js';

function hidden(rng: Rng, rows: number, cols: number): Float32Array {
  const v = new Float32Array(rows * cols);
  for (let i = 0; i < v.length; i++) v[i] = rng.next() * 2 - 1;
  return v;
}

const hex = (b: Uint8Array | Uint16Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * The previous topKRows and extendCommitmentTopK (through 2026-12-03, before the in-place bit reads and one-shot
 * hashes), kept as the reference the faster code must match byte for byte on any input.
 */
function referenceTopK(values: Float32Array, rows: number, cols: number, k: number): { idx: Uint16Array; half: Uint16Array; full: Uint8Array } {
  const kk = Math.min(k, cols);
  const outIdx = new Uint16Array(rows * kk);
  const outHalf = new Uint16Array(rows * kk);
  const all = new Uint16Array(rows * cols);
  const mag = new Uint16Array(cols);
  const bits = new Uint16Array(cols);
  const idx: number[] = [];
  for (let r = 0; r < rows; r++) {
    idx.length = 0;
    for (let c = 0; c < cols; c++) {
      const b = halfBits(values[r * cols + c]!);
      bits[c] = b;
      all[r * cols + c] = b;
      mag[c] = b & 0x7fff;
    }
    for (let c = 0; c < cols; c++) {
      const m = mag[c]!;
      if (idx.length === kk && !(m > mag[idx[kk - 1]!]!)) continue;
      let i = Math.min(idx.length, kk - 1);
      if (idx.length < kk) idx.push(c);
      while (i > 0 && m > mag[idx[i - 1]!]!) {
        idx[i] = idx[i - 1]!;
        i--;
      }
      idx[i] = c;
    }
    const sorted = [...idx].sort((a, b) => a - b);
    for (let j = 0; j < kk; j++) {
      outIdx[r * kk + j] = sorted[j]!;
      outHalf[r * kk + j] = bits[sorted[j]!]!;
    }
  }
  const le = new Uint8Array(all.length * 2);
  for (let i = 0; i < all.length; i++) new DataView(le.buffer).setUint16(2 * i, all[i]!, true);
  return { idx: outIdx, half: outHalf, full: new Uint8Array(createHash('sha256').update(le).digest()) };
}

function referenceExtend(prev: Uint8Array, s: { idx: Uint16Array; half: Uint16Array; full: Uint8Array }, rows: number, cols: number): Uint8Array {
  const h = createHash('sha256').update(prev);
  const head = new DataView(new ArrayBuffer(8));
  head.setUint32(0, rows);
  head.setUint32(4, cols);
  h.update(new Uint8Array(head.buffer));
  const out = new DataView(new ArrayBuffer(4 * s.idx.length));
  for (let j = 0; j < s.idx.length; j++) {
    out.setUint16(4 * j, s.idx[j]!);
    out.setUint16(4 * j + 2, s.half[j]!);
  }
  return new Uint8Array(h.update(new Uint8Array(out.buffer)).update(s.full).digest());
}

describe('activation commitments', () => {
  it("chain over steps: equal inputs commit equally (hop k's output = hop k+1's input); a changed top entry or step order does not", () => {
    const rng = new Rng(11);
    const steps = [hidden(rng, 5, 64), hidden(rng, 1, 64), hidden(rng, 1, 64)];
    const commit = (list: Float32Array[]): string => hex(list.reduce((c, v) => extendCommitment(c, v, v.length / 64, 64), initialCommitment()));
    const sent = commit(steps);
    const received = commit(steps.map((v) => Float32Array.from(v))); // what the next hop got over the wire
    assert.equal(received, sent);
    // the largest entry of the last step nudged by more than half precision resolves: a different commitment
    const tampered = steps.map((v) => Float32Array.from(v));
    let arg = 0;
    for (let i = 1; i < 64; i++) if (Math.abs(tampered[2]![i]!) > Math.abs(tampered[2]![arg]!)) arg = i;
    tampered[2]![arg]! += 0.01;
    assert.notEqual(commit(tampered), sent);
    assert.notEqual(commit([steps[1]!, steps[0]!, steps[2]!]), sent);
    // v2 (validator re-execution): entries outside the top-k leave the top-k records (the opening, compared across
    // engines) equal, but the chained full-tensor hash (at half precision) binds them: zeroing the smallest changes it
    const small = steps.map((v) => Float32Array.from(v));
    let min = 0;
    for (let i = 1; i < 64; i++) if (Math.abs(small[2]![i]!) < Math.abs(small[2]![min]!)) min = i;
    small[2]![min] = 0;
    assert.notEqual(commit(small), sent);
    const [x, y] = [topKRows(small[2]!, 1, 64), topKRows(steps[2]!, 1, 64)];
    assert.deepEqual([x.idx, x.half], [y.idx, y.half]);
  });

  it('the records and hashes equal the reference implementation byte for byte: any bits (NaN, infinities, subnormals), ties, k, row counts, views at an offset', () => {
    const rng = new Rng(23);
    for (let t = 0; t < 400; t++) {
      const rows = 1 + (t % 4);
      const cols = 1 + ((t * 37) % 97);
      // a view 4 bytes into a larger buffer: topKRows reads the values' bits in place
      const v = new Float32Array(rows * cols + 1).subarray(1);
      const mode = t % 4;
      for (let i = 0; i < v.length; i++) {
        if (mode === 0) new Uint32Array(v.buffer, v.byteOffset + 4 * i, 1)[0] = Math.floor(rng.next() * 0x100000000); // any bits
        else if (mode === 1) v[i] = rng.next() * 2 - 1;
        else if (mode === 2) v[i] = Math.round(rng.next() * 4) / 4 - 0.5; // many ties
        else v[i] = (rng.next() - 0.5) * 1e-4; // subnormal halves
      }
      for (const k of [8, 3, 1, 0]) {
        const got = topKRows(v, rows, cols, k);
        const want = referenceTopK(v, rows, cols, k);
        assert.deepEqual([hex(got.idx), hex(got.half), hex(got.full)], [hex(want.idx), hex(want.half), hex(want.full)], `t=${t} k=${k}`);
        const prev = extendTokenCommitment(initialCommitment(), [t]);
        assert.equal(hex(extendCommitmentTopK(prev, got)), hex(referenceExtend(prev, want, rows, cols)), `t=${t} k=${k}`);
      }
    }
  });

  it('golden: a session over [1|3|95, 768] steps (decode, prefill past the scratch buffer, subnormal, overflowing and any-bit values) commits to the value main gave before session 20', () => {
    // computed with the topKRows of 19b5919 (one halfFromBits call per value, a fresh buffer per call); the inline
    // half conversion and the scratch buffers of session 20 must not move a bit of it
    const rng = new Rng(2026);
    const rc = new RunningCommitment();
    for (let s = 0; s < 6; s++) {
      const rows = [1, 3, 1, 95, 1, 2][s]!;
      const v = new Float32Array(rows * 768);
      const u = new Uint32Array(v.buffer);
      for (let i = 0; i < v.length; i++) {
        if (s === 4) u[i] = Math.floor(rng.next() * 0x100000000);
        else v[i] = (rng.next() * 2 - 1) * (s === 5 ? 70000 : s === 2 ? 1e-6 : 3);
      }
      rc.hidden(v, 768, s === 3 ? [90, 5] : [rows]);
    }
    assert.equal(hex(rc.value), '02533435fad3c29a2f7ddef7b8a00c7d85f06636fb51205f681a45126ecc4af8');
  });

  it('the inline half conversion equals halfBits at every exponent boundary and rounding tie', () => {
    const v = new Float32Array(1);
    const u = new Uint32Array(v.buffer);
    for (let exp = 100; exp <= 160; exp++) {
      for (const mant of [0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fefff, 0x7ff000, 0x7fffff]) {
        for (const sign of [0, 0x80000000]) {
          u[0] = (sign | (exp << 23) | mant) >>> 0;
          assert.equal(topKRows(v, 1, 1, 1).half[0], halfBits(v[0]!), `bits ${u[0]!.toString(16)}`);
        }
      }
    }
  });

  it('addSteps: records computed once for a tensor commit alike in a second commitment (the entry: hop k out = hop k+1 in)', () => {
    const rng = new Rng(29);
    const v = hidden(rng, 6, 48);
    const out = new RunningCommitment(true);
    const steps = out.hidden(v, 48, [4, 1, 1]);
    const reused = new RunningCommitment(true);
    reused.addSteps(steps);
    const fresh = new RunningCommitment(true);
    fresh.hidden(v, 48, [4, 1, 1]);
    assert.deepEqual(reused.value, fresh.value);
    assert.equal(reused.steps, 3);
    assert.deepEqual(openingCommitment(reused.opening!), fresh.value);
  });

  it('token inputs commit by exact id (no half rounding: 4097 and 4098 differ)', () => {
    const a = extendTokenCommitment(initialCommitment(), [1, 2, 3]);
    assert.deepEqual(a, extendTokenCommitment(initialCommitment(), [1, 2, 3]));
    assert.notDeepEqual(a, extendTokenCommitment(initialCommitment(), [1, 2, 4]));
    assert.notDeepEqual(extendTokenCommitment(initialCommitment(), [4097]), extendTokenCommitment(initialCommitment(), [4098]));
    // a token step never equals a hidden step of one column holding the same values
    assert.notDeepEqual(extendTokenCommitment(initialCommitment(), [1, 2]), extendCommitment(initialCommitment(), Float32Array.of(1, 2), 2, 1));
  });

  it('golden fixture: the byte format is fixed (a change here breaks every signed commitment)', () => {
    // rows 0..2 of 16 columns: value(r, c) = sin(r·16 + c) (f32); then one token step [7, 4097]
    const v = new Float32Array(3 * 16);
    for (let i = 0; i < v.length; i++) v[i] = Math.sin(i);
    assert.equal(hex(initialCommitment()), '26809c08a4730c2c75a77df28d968159e13b2faeac9febd12ed9b624352d8102');
    const c1 = extendCommitment(initialCommitment(), v, 3, 16);
    assert.equal(hex(c1), '624ff3c0ad87ce418c47a6e914159b879605bc0fb980f1c634667b092d3e0b1e');
    assert.equal(hex(extendTokenCommitment(c1, [7, 4097])), '8a36b6da5add18115aadceb69de77b56b59e0804b8f58715b15b454e84ee6df1');
    const t = topKRows(v, 3, 16);
    assert.deepEqual(Array.from(t.idx.subarray(0, 8)), [1, 2, 4, 5, 7, 8, 11, 14]);
    // half rounding round-trips
    for (const x of [0, 1, -2.5, 65504, 1e-5, 0.1]) assert.equal(halfBits(halfValue(halfBits(x))), halfBits(x));
  });

  it('running commitment: one step per chunk, so a replay of the same chunks in one call commits alike; the opening reproduces it', () => {
    const rng = new Rng(5);
    const C = 32;
    const all = hidden(rng, 7, C);
    const stepwise = new RunningCommitment(true);
    stepwise.hidden(all.subarray(0, 5 * C), C, [5]);
    stepwise.hidden(all.subarray(5 * C, 6 * C), C, [1]);
    stepwise.hidden(all.subarray(6 * C), C, [1]);
    const replayed = new RunningCommitment();
    replayed.hidden(all, C, [5, 1, 1]);
    assert.deepEqual(replayed.value, stepwise.value);
    assert.equal(replayed.steps, 3);
    assert.deepEqual(openingCommitment(stepwise.opening!), stepwise.value);
    // an opening with one record changed does not reproduce it
    const forged = stepwise.opening!.map((s) => ('tokens' in s ? s : { ...s, half: Uint16Array.from(s.half) }));
    (forged[1] as { half: Uint16Array }).half[0] ^= 1;
    assert.notDeepEqual(openingCommitment(forged), stepwise.value);
    const tok = new RunningCommitment(true);
    tok.tokens([3, 9, 4, 4], [2, 1, 1]);
    assert.deepEqual(openingCommitment(tok.opening!), tok.value);
    assert.throws(() => tok.tokens([1, 2], [1]), RangeError);
  });

  it('fp16 transport does not change a commitment (selection on the half-rounded magnitude), even at a near-tie', () => {
    const rng = new Rng(17);
    const C = 64;
    const h = hidden(rng, 4, C);
    // a near-tie at the k-th place: two entries that differ in fp32 but round to one half value
    h[10] = 3.0001;
    h[11] = -3.0002;
    for (let i = 0; i < 7; i++) h[20 + i] = 5 + i;
    const f16 = h.map((x) => halfValue(halfBits(x)));
    // the full hash (v2) is over half bits too: the sender's fp32 and the receiver's fp16 commit alike
    assert.deepEqual(extendCommitment(initialCommitment(), f16, 4, C), extendCommitment(initialCommitment(), h, 4, C));
    assert.ok(Array.from(topKRows(h, 4, C).idx.subarray(0, 8)).includes(10), 'ties go to the lower index');
  });

  it('verifyStep: exact on the same engine; cross-engine noise passes the tolerance; a forged row does not', () => {
    const rng = new Rng(9);
    const rows = 6;
    const C = 256;
    const h = hidden(rng, rows, C);
    const committed = topKRows(h, rows, C);
    const same = verifyStep(committed, Float32Array.from(h), EXACT_TOLERANCE);
    assert.deepEqual([same.ok, same.exact], [true, true]);
    // cross-machine float noise: each value off by up to 2^-10 relative (far more than fp32 kernels differ by)
    const noisy = h.map((x) => x * (1 + (rng.next() * 2 - 1) / 1024));
    assert.equal(verifyStep(committed, noisy, EXACT_TOLERANCE).ok, false, 'exact tolerance refuses any difference in the top entries');
    const cross = verifyStep(committed, noisy, CROSS_ENGINE_TOLERANCE);
    assert.equal(cross.ok, true, JSON.stringify(cross));
    assert.equal(cross.exact, false);
    // a hop that scales one row by 3 % (a perturbed layer) or swaps in another row fails
    const scaled = Float32Array.from(h);
    for (let c = 0; c < C; c++) scaled[2 * C + c]! *= 1.03;
    const s = verifyStep(committed, scaled, CROSS_ENGINE_TOLERANCE);
    assert.deepEqual([s.ok, s.badRows], [false, 1]);
    const swapped = Float32Array.from(h);
    swapped.set(h.subarray(0, C), 4 * C);
    assert.equal(verifyStep(committed, swapped, CROSS_ENGINE_TOLERANCE).ok, false);
    // the wrong shape fails
    assert.equal(verifyStep(committed, h.subarray(C), CROSS_ENGINE_TOLERANCE).ok, false);
  });
});
