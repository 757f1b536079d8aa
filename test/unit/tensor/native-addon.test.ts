/**
 * The native addon itself: loading (main thread and worker_thread), ISA dispatch and its overrides, argument
 * checking at the N-API boundary, the thread pool, and bitwise thread-count independence. Kernel numerics against
 * the reference backend are parity.test.ts's job (run it with NEUROSHARD_NATIVE_ISA=avx2 / portable for the other
 * paths; `native-isa.test.ts` covers every path in one process).
 *
 * Skips, with the reason, when the addon did not build.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Backend, GemmArgs } from '../../../src/tensor/backend.js';
import { nativeAddonPath, type NativeBackend, type NativeIsa } from '../../../src/tensor/backends/native.js';
import { nativeForTest } from '../../utils/native.js';
import { Rng } from '../../../src/util/rng.js';

const { nb, skip } = nativeForTest();
const ISAS: NativeIsa[] = ['avx512', 'avx2', 'portable'];
const RANK: Record<NativeIsa, number> = { portable: 0, avx2: 1, avx512: 2 };

function backend(): NativeBackend {
  assert.ok(nb !== undefined);
  return nb;
}

function randn(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = std * rng.normal();
  return a;
}

/** Paths this CPU can run (the detected one and those below it). */
function runnableIsas(): NativeIsa[] {
  const best = backend().info().detectedIsa;
  return ISAS.filter((i) => RANK[i] <= RANK[best]);
}

/** Runs body with the given ISA and thread count, restoring the defaults. */
function withConfig(isa: NativeIsa, threads: number, body: () => void): void {
  const b = backend();
  const before = b.info();
  try {
    b.setIsa(isa);
    b.setThreads(threads);
    body();
  } finally {
    b.setIsa(before.isa);
    b.setThreads(before.threads);
  }
}

function argError(name: 'RangeError' | 'TypeError', msg?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof Error, 'expected an Error');
    assert.equal(e.name, name, `expected ${name}, got ${e.name}: ${e.message}`);
    assert.equal((e as Error & { code?: string }).code, 'ERR_NEUROSHARD_NATIVE_ARG');
    if (msg !== undefined) assert.match(e.message, msg);
    return true;
  };
}

/** Bit patterns, so that -0 vs 0 and NaN payloads count as differences. */
function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function assertSameBits(a: Float32Array, b: Float32Array, what: string): void {
  const x = bits(a);
  const y = bits(b);
  assert.equal(x.length, y.length, `${what}: length`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
  }
}

/**
 * Every kernel on inputs big enough to engage several threads; returns all outputs. Deterministic inputs (seeded).
 */
function runAll(b: Backend): Record<string, Float32Array> {
  const rng = new Rng(42);
  const out: Record<string, Float32Array> = {};
  // GEMM: every transpose on a shape that splits over threads, a skinny one, a small-M one, a batched one.
  const gemms: [string, GemmArgs][] = [];
  for (const transA of [false, true])
    for (const transB of [false, true]) gemms.push([`gemm ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, { transA, transB, M: 200, N: 130, K: 300, alpha: 1, beta: 0 }]);
  gemms.push(['gemm skinny beta', { transA: false, transB: true, M: 33, N: 700, K: 520, alpha: 0.5, beta: 0.75 }]);
  gemms.push(['gemm M=3', { transA: false, transB: false, M: 3, N: 1000, K: 300, alpha: 1, beta: 0 }]);
  gemms.push(['gemm M=2 transB', { transA: true, transB: true, M: 2, N: 999, K: 257, alpha: 1, beta: 1 }]);
  gemms.push(['gemm batched', { transA: false, transB: true, M: 70, N: 65, K: 64, alpha: 1, beta: 0, batch: 6 }]);
  gemms.push(['gemm batched accumulate stride 0', { transA: true, transB: false, M: 64, N: 96, K: 100, alpha: 1, beta: 1, batch: 4, strideC: 0 }]);
  for (const [name, g] of gemms) {
    const batch = g.batch ?? 1;
    const a = randn(rng, batch * g.M * g.K);
    const bm = randn(rng, batch * g.K * g.N);
    const c = randn(rng, (g.strideC === 0 ? 1 : batch) * g.M * g.N);
    b.gemm(a, bm, c, g);
    out[name] = c;
  }
  const n = 200_003;
  const x = randn(rng, n);
  const y = randn(rng, n);
  const add = new Float32Array(n);
  b.add(x, y, add, n);
  out.add = add;
  const axpy = new Float32Array(y);
  b.axpy(0.3, x, axpy, n);
  out.axpy = axpy;
  const scaled = new Float32Array(x);
  b.scale(scaled, 1.7, n);
  out.scale = scaled;
  out.sumSquares = new Float32Array(new Float64Array([b.sumSquares(x, n)]).buffer);
  // embedding with many repeats (accumulation order matters)
  const V = 50;
  const C = 256;
  const N = 1024;
  const ids = new Int32Array(N).map(() => rng.int(V));
  const table = randn(rng, V * C);
  const emb = new Float32Array(N * C);
  b.embeddingForward(table, ids, emb, N, C);
  out.embeddingForward = emb;
  const dtable = randn(rng, V * C);
  b.embeddingBackward(randn(rng, N * C), ids, dtable, N, C);
  out.embeddingBackward = dtable;
  // RMSNorm
  const xs = randn(rng, N * C);
  const w = randn(rng, C);
  const rn = new Float32Array(N * C);
  const rstd = new Float32Array(N);
  b.rmsnormForward(xs, w, rn, rstd, N, C, 1e-6);
  out.rmsnorm = rn;
  out.rstd = rstd;
  const dx = new Float32Array(N * C);
  const dw = randn(rng, C);
  b.rmsnormBackward(randn(rng, N * C), xs, w, rstd, dx, dw, N, C, false);
  out.rmsDx = dx;
  out.rmsDw = dw;
  // RoPE
  const [B, T, H, KV, D] = [2, 130, 4, 2, 64];
  const q = randn(rng, B * T * H * D);
  const k = randn(rng, B * T * KV * D);
  const v = randn(rng, B * T * KV * D);
  b.rope(q, B, T, H, D, 5, 10000, false);
  b.rope(k, B, T, KV, D, 5, 10000, false);
  out.ropeQ = q;
  // attention forward / backward / decode
  const att = new Float32Array(B * T * H * D);
  const lse = new Float32Array(B * H * T);
  b.attentionForward(q, k, v, att, lse, B, T, T, H, KV, D);
  out.attention = att;
  out.lse = lse;
  const dq = new Float32Array(q.length);
  const dk = new Float32Array(k.length);
  const dv = new Float32Array(v.length);
  b.attentionBackward(randn(rng, att.length), q, k, v, att, lse, dq, dk, dv, B, T, T, H, KV, D);
  out.dq = dq;
  out.dk = dk;
  out.dv = dv;
  const dec = new Float32Array(B * H * D);
  b.attentionDecode(randn(rng, B * H * D), k, v, dec, B, H, KV, D, T, T - 3);
  out.decode = dec;
  // SwiGLU
  const F = 688 * 300;
  const gate = randn(rng, F, 3);
  const up = randn(rng, F);
  const sw = new Float32Array(F);
  b.swigluForward(gate, up, sw, F);
  out.swiglu = sw;
  const dg = new Float32Array(F);
  const du = new Float32Array(F);
  b.swigluBackward(randn(rng, F), gate, up, dg, du, F);
  out.swigluDg = dg;
  out.swigluDu = du;
  // cross-entropy
  const NV = 4096;
  const NR = 96;
  const logits = randn(rng, NR * NV, 3);
  const targets = new Int32Array(NR).map((_, i) => (i % 7 === 3 ? -100 : rng.int(NV)));
  const dl = new Float32Array(NR * NV);
  const ce = b.crossEntropy(logits, targets, NR, NV, -100, dl, 1 / 80);
  out.ce = new Float32Array(new Float64Array([ce.lossSum, ce.count]).buffer);
  out.dlogits = dl;
  // AdamW
  const p = randn(rng, n);
  const m = randn(rng, n, 0.1);
  const vv = new Float32Array(n).map(() => rng.next() * 0.01);
  b.adamw(p, randn(rng, n), m, vv, n, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 7, gradScale: 0.5 });
  out.adamP = p;
  out.adamM = m;
  out.adamV = vv;
  // compression
  const h = new Uint16Array(n);
  b.toFp16(x, h, n);
  out.fp16 = new Float32Array(h.buffer.slice(0, Math.floor(h.byteLength / 4) * 4));
  const back = new Float32Array(n);
  b.fromFp16(h, back, n);
  out.fromFp16 = back;
  const q8 = new Int8Array(n);
  const scales = new Float32Array(Math.ceil(n / 64));
  b.quantizeInt8(x, q8, scales, n, 64);
  out.q8 = new Float32Array(q8.buffer.slice(0, Math.floor(n / 4) * 4));
  out.scales = scales;
  const dq8 = new Float32Array(n);
  b.dequantizeInt8(q8, scales, dq8, n, 64);
  out.dq8 = dq8;
  return out;
}

describe('native addon', { skip }, () => {
  it('loads and describes itself', () => {
    const b = backend();
    const i = b.info();
    assert.equal(b.name, 'native');
    assert.ok(ISAS.includes(i.isa), `isa ${i.isa}`);
    assert.ok(RANK[i.isa] <= RANK[i.detectedIsa], 'the chosen path never exceeds what the CPU supports');
    assert.ok(i.compiledIsas.includes('portable'));
    assert.ok(i.threads >= 1 && i.defaultThreads >= 1);
    assert.equal(b.threads, i.threads);
    assert.match(b.description, /^native (AVX-512|AVX2|portable) \((own|OpenBLAS) GEMM\), \d+ threads?/);
    if (process.env.NEUROSHARD_NATIVE_ISA === undefined) assert.equal(i.isa, i.detectedIsa, 'without an override the best path is used');
  });

  it('switches ISA paths in process and refuses unknown or unsupported ones', () => {
    const b = backend();
    const before = b.info().isa;
    try {
      for (const isa of runnableIsas()) {
        b.setIsa(isa);
        assert.equal(b.info().isa, isa);
        assert.ok(b.description.includes(isa === 'avx512' ? 'AVX-512' : isa === 'avx2' ? 'AVX2' : 'portable'));
      }
      assert.throws(() => b.setIsa('sse9' as NativeIsa), argError('RangeError', /one of avx512, avx2, portable/));
      for (const isa of ISAS.filter((x) => !runnableIsas().includes(x))) assert.throws(() => b.setIsa(isa), argError('RangeError', /not supported/));
    } finally {
      b.setIsa(before);
    }
  });

  it('NEUROSHARD_NATIVE_ISA forces a lower path at load; a bad value is reported, not fatal', () => {
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const probe = (env: Record<string, string>): { isa: string; note: string | null; gemm: string } => {
      const r = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(where.path)}); process.stdout.write(JSON.stringify(a.info()))`], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { isa: string; note: string | null; gemm: string };
    };
    const forced = probe({ NEUROSHARD_NATIVE_ISA: 'portable' });
    assert.equal(forced.isa, 'portable');
    assert.equal(forced.note, null);
    const own = probe({ NEUROSHARD_NATIVE_ISA: 'portable', NEUROSHARD_NATIVE_GEMM: 'own' });
    assert.equal(own.gemm, 'own');
    const bad = probe({ NEUROSHARD_NATIVE_ISA: 'avx1024' });
    assert.equal(bad.isa, backend().info().detectedIsa);
    assert.match(bad.note ?? '', /avx1024/);
  });

  it('setThreads resizes the pool; bad counts throw', () => {
    const b = backend();
    const def = b.info().defaultThreads;
    try {
      for (const t of [1, 3, 2, 1]) {
        b.setThreads(t);
        assert.equal(b.threads, t);
        assert.equal(b.info().threads, t);
        // the pool works after each resize
        const a = new Float32Array(300 * 300).fill(1);
        const c = new Float32Array(300 * 300);
        b.gemm(a, a, c, { transA: false, transB: false, M: 300, N: 300, K: 300, alpha: 1, beta: 0 });
        assert.equal(c[0], 300);
        assert.equal(c[c.length - 1], 300);
      }
      b.setThreads(0);
      assert.equal(b.threads, def);
      for (const bad of [-1, 1.5, NaN, 5000]) assert.throws(() => b.setThreads(bad), argError('RangeError'));
    } finally {
      b.setThreads(def);
    }
  });

  it('adviseHugePages keeps the contents, covers at most the array, and refuses a non-array', () => {
    const b = backend();
    const rng = new Rng(7);
    for (const n of [0, 1000, (3 << 20) / 4 + 123]) {
      const x = Float32Array.from({ length: n }, () => rng.normal());
      const before = x.slice();
      const advised = b.adviseHugePages(x);
      assert.ok(advised >= 0 && advised <= x.byteLength && advised % (2 << 20) === 0, `advised ${advised} of ${x.byteLength}`);
      assert.deepEqual(x, before);
    }
    const q = new Int8Array(5 << 20).fill(-3);
    assert.ok(b.adviseHugePages(q) <= q.byteLength);
    assert.ok(q.every((v) => v === -3));
    assert.throws(() => b.adviseHugePages({} as unknown as Float32Array), argError('TypeError', /typed array/));
  });

  it('readStream (the bench read bound) reads every whole 512-byte chunk: sums, byte counts, streams, arguments', () => {
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const addon = createRequire(import.meta.url)(where.path) as {
      readStream(x: Uint8Array, reps: number, cpu: number, streams?: number): { t0: number; t1: number; cpuMs: number; bytes: number; sum: number; pinned: boolean };
    };
    const rng = new Rng(3);
    const buf = new Uint8Array((3 << 20) + 1000);
    for (let i = 0; i < buf.length; i++) buf[i] = rng.int(256);
    for (const view of [buf, buf.subarray(8), buf.subarray(100, 100 + 5000)]) {
      const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
      const r1 = addon.readStream(view, 1, -1, 1);
      // where the aligned region starts cannot be seen from JS; check the byte count and that every stream count and
      // rep count agree on the sum
      assert.equal(r1.bytes % 512, 0);
      assert.ok(r1.bytes <= view.byteLength && r1.bytes > view.byteLength - 512 - 64);
      for (const streams of [2, 4]) assert.equal(addon.readStream(view, 1, -1, streams).sum, r1.sum);
      const r3 = addon.readStream(view, 3, 0, 4);
      assert.equal(r3.bytes, 3 * r1.bytes);
      assert.ok(r3.t1 >= r3.t0 && r3.cpuMs >= 0);
      // the expected sum: 64-bit little-endian words of r1.bytes from the first 64-byte boundary, which JS cannot see;
      // an ArrayBuffer's memory is at least 8-byte aligned, so one of the 8 starts ≡ −byteOffset (mod 8) in [0, 64)
      let found = false;
      for (let s0 = (8 - (view.byteOffset % 8)) % 8; s0 < 64 && !found; s0 += 8) {
        let sum = 0n;
        for (let i = s0; i + 8 <= s0 + r1.bytes && s0 + r1.bytes <= view.byteLength; i += 8) sum += dv.getBigUint64(i, true);
        if (Number(sum & ((1n << 52n) - 1n)) === r1.sum) found = true;
      }
      assert.ok(found, 'no 8-byte start gives the sum');
    }
    assert.equal(addon.readStream(new Uint8Array(100), 1, -1).bytes, 0);
    assert.throws(() => addon.readStream(buf, 0, -1), argError('RangeError'));
    assert.throws(() => addon.readStream(buf, 1, -2), argError('RangeError'));
    assert.throws(() => addon.readStream(buf, 1, -1, 3), argError('RangeError'));
    assert.throws(() => addon.readStream({} as unknown as Uint8Array, 1, -1), argError('TypeError'));
  });

  it('readArrays (the bench read bound over given buffers) reads each thread\'s part of every array: bytes, sums, threads, arguments', () => {
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const addon = createRequire(import.meta.url)(where.path) as {
      readStream(x: Uint8Array, reps: number, cpu: number, streams?: number): { bytes: number; sum: number };
      readArrays(xs: unknown, reps: number, threads: number, streams?: number, pin?: boolean): { t0: number; t1: number; cpuMs: number; bytes: number; sum: number; threadMs: number[] };
    };
    const rng = new Rng(5);
    const a = new Uint8Array((1 << 20) + 4096);
    for (let i = 0; i < a.length; i++) a[i] = rng.int(256);
    const f = new Float32Array(70_000).map(() => rng.next());
    // one thread, one array: what readStream reads (same aligned start, same whole 512-byte chunks, same sum)
    const s = addon.readStream(a, 1, -1, 1);
    const r = addon.readArrays([a], 1, 1, 1, false);
    assert.equal(r.bytes, s.bytes);
    assert.equal(r.sum, s.sum);
    for (const streams of [2, 4]) assert.equal(addon.readArrays([a], 1, 1, streams, true).sum, s.sum);
    // several threads: each reads floor(n / threads) rounded down to 512 bytes of every array, reps times
    const aligned = (x: { byteLength: number }, n: number): number => Math.floor((x.byteLength - 64) / n / 512) * 512;
    for (const threads of [2, 3]) {
      const m = addon.readArrays([a, f, new Int8Array(100)], 2, threads, 4, true);
      assert.ok(m.bytes <= 2 * threads * (Math.floor(a.byteLength / threads / 512) * 512 + Math.floor(f.byteLength / threads / 512) * 512));
      assert.ok(m.bytes >= 2 * threads * (aligned(a, threads) + aligned(f, threads)));
      assert.equal(m.threadMs.length, threads);
      assert.ok(m.t1 >= m.t0 && m.cpuMs >= 0);
    }
    assert.equal(addon.readArrays([], 1, 2).bytes, 0);
    assert.throws(() => addon.readArrays([a], 0, 1), argError('RangeError'));
    assert.throws(() => addon.readArrays([a], 1, 0), argError('RangeError'));
    assert.throws(() => addon.readArrays([a], 1, 1, 3), argError('RangeError'));
    assert.throws(() => addon.readArrays(a, 1, 1), argError('TypeError'));
    assert.throws(() => addon.readArrays([{}], 1, 1), argError('TypeError'));
  });

  it('pool: many back-to-back jobs, with helpers spinning or sleeping between them, all complete correctly', () => {
    const b = backend();
    const def = b.info().threads;
    const n = 300_000; // big enough to be split over threads
    const x = new Float32Array(n).map((_, i) => i % 1000);
    const y = new Float32Array(n).fill(1);
    const out = new Float32Array(n);
    try {
      for (const spin of [0, 100]) {
        b.setSpinMicros(spin);
        for (const t of [2, 3]) {
          b.setThreads(t);
          for (let r = 0; r < 300; r++) {
            out.fill(-1);
            b.add(x, y, out, n);
            if (out[r * 997] !== (r * 997) % 1000 + 1 || out[n - 1] !== ((n - 1) % 1000) + 1) assert.fail(`spin ${spin} threads ${t} run ${r}: wrong sum`);
          }
        }
      }
    } finally {
      b.setSpinMicros(100);
      b.setThreads(def);
    }
  });

  it('throws on a too-short or mistyped buffer instead of touching memory outside it', () => {
    const b = backend();
    const f = (n: number): Float32Array => new Float32Array(n);
    const g: GemmArgs = { transA: false, transB: false, M: 4, N: 5, K: 6, alpha: 1, beta: 0 };
    b.gemm(f(24), f(30), f(20), g); // exact sizes are fine
    assert.throws(() => b.gemm(f(23), f(30), f(20), g), argError('RangeError', /a has 23 elements/));
    assert.throws(() => b.gemm(f(24), f(29), f(20), g), argError('RangeError', /b has 29/));
    assert.throws(() => b.gemm(f(24), f(30), f(19), g), argError('RangeError', /c has 19/));
    assert.throws(() => b.gemm(f(24), f(30), f(20), { ...g, transA: true, lda: 3 }), argError('RangeError', /lda/));
    assert.throws(() => b.gemm(f(24), f(30), f(20), { ...g, offC: 1 }), argError('RangeError', /c has 20/));
    assert.throws(() => b.gemm(f(48), f(60), f(40), { ...g, batch: 2, strideA: 25 }), argError('RangeError', /a has 48/));
    assert.throws(() => b.gemm(f(24), f(30), f(20), { ...g, ldc: 4 }), argError('RangeError', /ldc/));
    // a view: its length, not the underlying buffer's, is what counts
    const big = f(1000);
    assert.throws(() => b.gemm(big.subarray(990), f(30), f(20), g), argError('RangeError', /a has 10/));
    assert.throws(() => b.gemm(new Float64Array(24) as unknown as Float32Array, f(30), f(20), g), argError('TypeError', /Float32Array/));
    assert.throws(() => b.add(f(10), f(9), f(10), 10), argError('RangeError', /b has 9/));
    assert.throws(() => b.add(f(10), f(10), f(10), -1), argError('RangeError'));
    assert.throws(() => b.add(f(10), f(10), f(10), 2.5), argError('RangeError'));
    assert.throws(() => b.axpy(1, f(10), f(9), 10), argError('RangeError'));
    assert.throws(() => b.sumSquares(f(3), 4), argError('RangeError'));
    const ids = new Int32Array([0, 3]);
    assert.throws(() => b.embeddingForward(f(3 * 4), ids, f(8), 2, 4), argError('RangeError', /ids\[1\] = 3 is outside/));
    assert.throws(() => b.embeddingBackward(f(8), new Int32Array([-1, 0]), f(16), 2, 4), argError('RangeError', /ids\[0\] = -1/));
    assert.throws(() => b.embeddingForward(f(16), new Float32Array(2) as unknown as Int32Array, f(8), 2, 4), argError('TypeError', /Int32Array/));
    assert.throws(() => b.rmsnormForward(f(12), f(3), f(12), f(3), 3, 4, 1e-6), argError('RangeError', /w has 3/));
    assert.throws(() => b.rmsnormBackward(f(12), f(12), f(4), f(3), f(12), f(3), 3, 4, false), argError('RangeError', /dw has 3/));
    assert.throws(() => b.rope(f(2 * 3 * 4 * 8 - 1), 2, 3, 4, 8, 0, 10000, false), argError('RangeError', /x has/));
    assert.throws(() => b.rope(f(2 * 3 * 4 * 8), 2, 3, 4, 8, 0, 10000, false, new Int32Array(2)), argError('RangeError', /positions has 2/));
    assert.throws(() => b.rope(f(2 * 3 * 4 * 7), 2, 3, 4, 7, 0, 10000, false), argError('RangeError', /D must be even/));
    const [B, T, S, H, KV, D] = [1, 4, 6, 4, 2, 8];
    const nq = B * T * H * D;
    const nk = B * S * KV * D;
    assert.throws(() => b.attentionForward(f(nq), f(nk - 1), f(nk), f(nq), f(B * H * T), B, T, S, H, KV, D), argError('RangeError', /k has/));
    assert.throws(() => b.attentionForward(f(nq), f(nk), f(nk), f(nq), f(B * H * T - 1), B, T, S, H, KV, D), argError('RangeError', /lse has/));
    assert.throws(() => b.attentionForward(f(nq), f(nk), f(nk), f(nq), f(B * 3 * T), B, T, S, 3, KV, D), argError('RangeError', /multiple of KV/));
    assert.throws(() => b.attentionForward(f(nq), f(nk), f(nk), f(nq), f(B * H * T), B, T, 3, H, KV, D), argError('RangeError', /at least T/));
    assert.throws(
      () => b.attentionBackward(f(nq), f(nq), f(nk), f(nk), f(nq), f(B * H * T), f(nq), f(nk), f(nk - 1), B, T, S, H, KV, D),
      argError('RangeError', /dv has/),
    );
    assert.throws(() => b.attentionDecode(f(B * H * D), f(nk), f(nk), f(B * H * D), B, H, KV, D, S, S + 1), argError('RangeError', /exceeds maxS/));
    assert.throws(() => b.attentionDecode(f(B * H * D), f(nk), f(nk - 1), f(B * H * D), B, H, KV, D, S, S), argError('RangeError', /vCache has/));
    assert.throws(() => b.swigluBackward(f(5), f(5), f(5), f(5), f(4), 5), argError('RangeError', /dup has 4/));
    assert.throws(() => b.crossEntropy(f(2 * 5), new Int32Array([0, 5]), 2, 5, -100, null, 1), argError('RangeError', /targets\[1\] = 5/));
    assert.throws(() => b.crossEntropy(f(2 * 5), new Int32Array([0, 1]), 2, 5, -100, f(9), 1), argError('RangeError', /dlogits has 9/));
    assert.throws(
      () => b.adamw(f(4), f(4), f(4), f(3), 4, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1, gradScale: 1 }),
      argError('RangeError', /v has 3/),
    );
    assert.throws(
      () => b.adamw(f(4), f(4), f(4), f(4), 4, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 0, gradScale: 1 }),
      argError('RangeError', /step/),
    );
    assert.throws(() => b.toFp16(f(4), new Uint16Array(3), 4), argError('RangeError', /out has 3/));
    assert.throws(() => b.fromFp16(new Int16Array(4) as unknown as Uint16Array, f(4), 4), argError('TypeError', /Uint16Array/));
    assert.throws(() => b.quantizeInt8(f(10), new Int8Array(10), f(2), 10, 4), argError('RangeError', /scales has 2/));
    assert.throws(() => b.dequantizeInt8(new Int8Array(9), f(3), f(10), 10, 4), argError('RangeError', /q has 9/));
  });

  it('gives bitwise identical results at 1, 2 and 3 threads, on every ISA path (own GEMM)', () => {
    const b = backend();
    const mode = b.info().gemmMode;
    try {
      b.setGemmMode('own');
      for (const isa of runnableIsas()) {
        let base: Record<string, Float32Array> | undefined;
        for (const t of [1, 2, 3]) {
          let got: Record<string, Float32Array> = {};
          withConfig(isa, t, () => {
            got = runAll(b);
          });
          if (base === undefined) {
            base = got;
            continue;
          }
          for (const [name, v] of Object.entries(base)) assertSameBits(got[name], v, `${isa} ${name} at ${t} threads vs 1`);
        }
      }
    } finally {
      b.setGemmMode(mode);
    }
  });

  it('OpenBLAS GEMM, when installed, agrees with the own GEMM and is deterministic at a fixed thread count', (t) => {
    const b = backend();
    const mode = b.info().gemmMode;
    try {
      b.setGemmMode('openblas');
      const i = b.info();
      if (i.gemm !== 'openblas') {
        t.skip(`OpenBLAS not available: ${i.blasReason ?? 'unknown'}`);
        return;
      }
      assert.match(b.description, /OpenBLAS GEMM/);
      const rng = new Rng(7);
      for (const g of [
        { transA: false, transB: false, M: 257, N: 300, K: 129, alpha: 1, beta: 0 },
        { transA: true, transB: true, M: 64, N: 768, K: 200, alpha: 0.5, beta: 1 },
      ]) {
        const a = randn(rng, g.M * g.K);
        const bm = randn(rng, g.K * g.N);
        const c0 = randn(rng, g.M * g.N);
        const blas1 = new Float32Array(c0);
        b.gemm(a, bm, blas1, g);
        const blas2 = new Float32Array(c0);
        b.gemm(a, bm, blas2, g);
        assertSameBits(blas2, blas1, 'OpenBLAS run to run');
        b.setGemmMode('own');
        const own = new Float32Array(c0);
        b.gemm(a, bm, own, g);
        b.setGemmMode('openblas');
        for (let j = 0; j < own.length; j++) assert.ok(Math.abs(own[j] - blas1[j]) <= 1e-4 * (1 + Math.abs(own[j])), `element ${j}: ${own[j]} vs ${blas1[j]}`);
      }
    } finally {
      b.setGemmMode(mode);
    }
  });

  it('keeps AVX instructions inside the AVX paths (the build is safe on any x86-64 CPU)', (t) => {
    // Disassembles the addon: a VEX/EVEX instruction (mnemonic starting with "v") in a function outside the
    // ns::avx2 / ns::avx512 namespaces would fault on a CPU without AVX, and a zmm register outside ns::avx512 on
    // one without AVX-512. This is what -march=native in a shipped build, or a leaked inline function, would cause.
    if (process.arch !== 'x64') return t.skip('x86-64 only');
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const r = spawnSync('objdump', ['-d', '--no-show-raw-insn', '-C', where.path], { encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.error !== undefined || r.status !== 0) return t.skip('objdump is not available');
    let fn = '';
    let checked = 0;
    const bad = new Set<string>();
    const seen = { avx512: false, avx2: false };
    for (const line of r.stdout.split('\n')) {
      const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
      if (head !== null) {
        fn = head[1];
        continue;
      }
      const ins = /^\s*[0-9a-f]+:\t(\S+)\s*(.*)$/.exec(line);
      if (ins === null || fn === '') continue;
      checked++;
      const [, op, operands] = ins;
      const in512 = fn.includes('ns::avx512::');
      const in2 = fn.includes('ns::avx2::');
      if (in512 && operands.includes('%zmm')) seen.avx512 = true;
      if (in2 && operands.includes('%ymm')) seen.avx2 = true;
      if (!in512 && operands.includes('%zmm')) bad.add(`${fn}: ${op} ${operands}`);
      else if (!in512 && !in2 && op.startsWith('v')) bad.add(`${fn}: ${op} ${operands}`);
    }
    assert.ok(checked > 10_000, `disassembly too short (${checked} instructions)`);
    assert.deepEqual([...bad].slice(0, 10), [], 'AVX instructions outside the AVX paths');
    assert.ok(seen.avx512 && seen.avx2, 'the AVX-512 path uses zmm and the AVX2 path ymm registers (the target pragmas took effect)');
  });

  it('loads in a worker_thread with its own engine, without disturbing this thread', async () => {
    const b = backend();
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const before = b.info().threads;
    const rng = new Rng(3);
    const a = randn(rng, 96 * 80);
    const bm = randn(rng, 80 * 70);
    const mine = new Float32Array(96 * 70);
    b.gemm(a, bm, mine, { transA: false, transB: false, M: 96, N: 70, K: 80, alpha: 1, beta: 0 });
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      addon.setThreads(1);
      const c = new Float32Array(96 * 70);
      addon.gemm(workerData.a, workerData.b, c, false, false, 96, 70, 80, 1, 0, 1, 0, 0, 0, 80, 70, 70, 0, 0, 0);
      parentPort.postMessage({ c, threads: addon.info().threads });
    `;
    const w = new Worker(code, { eval: true, workerData: { path: where.path, a, b: bm } });
    const { promise, resolve, reject } = ((): { promise: Promise<{ c: Float32Array; threads: number }>; resolve: (v: { c: Float32Array; threads: number }) => void; reject: (e: unknown) => void } => {
      let res!: (v: { c: Float32Array; threads: number }) => void;
      let rej!: (e: unknown) => void;
      const p = new Promise<{ c: Float32Array; threads: number }>((ok, no) => {
        res = ok;
        rej = no;
      });
      return { promise: p, resolve: res, reject: rej };
    })();
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`worker exited with ${code} before answering`)));
    const got = await promise;
    await w.terminate();
    assert.equal(got.threads, 1);
    assertSameBits(got.c, mine, 'worker gemm vs main thread');
    assert.equal(b.info().threads, before, 'the worker resized its own pool, not ours');
    // the main thread's addon still works after the worker's environment (and its pool) went away
    const again = new Float32Array(96 * 70);
    b.gemm(a, bm, again, { transA: false, transB: false, M: 96, N: 70, K: 80, alpha: 1, beta: 0 });
    assertSameBits(again, mine, 'main thread gemm after the worker exited');
  });

  it('counts the pools of every thread of the process (idle helpers sleep at once while they oversubscribe the CPUs)', async () => {
    const b = backend();
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const before = b.info();
    assert.ok(before.usableCpus >= 1);
    assert.ok(before.processPoolThreads >= before.threads, 'this thread\'s own pool is counted');
    // a worker's pool of more threads than the CPUs: both addon instances see one count (the pools share it)
    const k = before.usableCpus + 1;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      addon.setThreads(workerData.k);
      parentPort.postMessage(addon.info().processPoolThreads);
      parentPort.once('message', () => process.exit(0));
    `;
    const w = new Worker(code, { eval: true, workerData: { path: where.path, k } });
    const seen = await new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (c) => reject(new Error(`worker exited with ${c} before answering`)));
    });
    assert.equal(seen, before.processPoolThreads + k, 'the worker counts our pool and its own');
    assert.equal(b.info().processPoolThreads, before.processPoolThreads + k, 'we count the worker\'s pool');
    assert.ok(b.info().processPoolThreads > b.info().usableCpus, 'oversubscribed');
    const gone = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage('exit');
    await gone;
    assert.equal(b.info().processPoolThreads, before.processPoolThreads, 'a worker\'s pool leaves the count with its thread');
  });
  it('prime/rest hints and the shared spin budget never change a result nor hang (oversubscribed pools computing at once)', async () => {
    const b = backend();
    const where = nativeAddonPath();
    assert.ok('path' in where);
    const M = 3, N = 300, K = 257;
    const rng = new Rng(41);
    const a = randn(rng, M * K);
    const w = randn(rng, N * K);
    const args: GemmArgs = { transA: false, transB: true, M, N, K, alpha: 1, beta: 0 };
    const want = new Float32Array(M * N);
    const threads = b.info().threads;
    b.setThreads(1);
    b.gemm(a, w, want, args);
    b.setThreads(threads);
    // Two workers with pools of more threads than the CPUs (so the process is oversubscribed: the spin budget and
    // the active pool apply), each a burst of products between prime and rest, as a hop's decode step, while this
    // thread does the same; a worker ends while its helpers may be spinning after a prime.
    const k = b.info().usableCpus + 1;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      addon.setThreads(workerData.k);
      const { M, N, K } = workerData;
      const c = new Float32Array(M * N);
      let same = true;
      for (let s = 0; s < 40; s++) {
        addon.poolPrime();
        for (let l = 0; l < 3; l++) {
          c.fill(NaN);
          addon.gemm(workerData.a, workerData.w, c, false, true, M, N, K, 1, 0, 1, M * K, N * K, M * N, K, K, N, 0, 0, 0);
          for (let i = 0; i < c.length; i++) if (!Object.is(c[i], workerData.want[i])) same = false;
        }
        if (s % 2 === 0) addon.poolRest();
      }
      addon.poolPrime();
      parentPort.postMessage(same);
    `;
    const workers = [0, 1].map(() => new Worker(code, { eval: true, workerData: { path: where.path, k, M, N, K, a, w, want } }));
    const answers = workers.map(
      (wk) =>
        new Promise<boolean>((resolve, reject) => {
          wk.once('message', resolve);
          wk.once('error', reject);
          wk.once('exit', (c) => reject(new Error(`worker exited with ${c} before answering`)));
        }),
    );
    const c = new Float32Array(M * N);
    for (let s = 0; s < 40; s++) {
      b.primePool();
      for (let l = 0; l < 3; l++) {
        c.fill(NaN);
        b.gemm(a, w, c, args);
        assertSameBits(c, want, `main thread step ${s} product ${l}`);
      }
      b.restPool();
    }
    assert.deepEqual(await Promise.all(answers), [true, true], 'every worker product equals the 1-thread one bit for bit');
    await Promise.all(workers.map((wk) => wk.terminate()));
    // hints with no job between them, and a job right after rest
    b.primePool();
    b.primePool();
    b.restPool();
    b.gemm(a, w, c, args);
    assertSameBits(c, want, 'after prime, prime, rest');
  });

  it('poolPrimeId primes another thread\'s pool by id, and loading the addon only for it starts no threads', { skip }, () => {
    const where = nativeAddonPath();
    assert.ok('path' in where);
    // a fresh process: require the addon, prime ids that no pool has, count this process's threads before and after
    const code = `
      const fs = require('node:fs');
      const before = fs.readdirSync('/proc/self/task').length;
      const addon = require(${JSON.stringify(where.path)});
      const none = [1, 2, 4294967295].map((id) => addon.poolPrimeId(id));
      const after = fs.readdirSync('/proc/self/task').length;
      let threw = false;
      try { addon.poolPrimeId(-1); } catch (e) { threw = /poolPrimeId/.test(String(e)); }
      // the first kernel-side call makes this thread's engine and its pool: now there is one to prime
      addon.setThreads(2);
      const id = addon.poolId();
      const mine = addon.poolPrimeId(id);
      process.stdout.write(JSON.stringify({ before, after, none, threw, id, mine, threads: fs.readdirSync('/proc/self/task').length }));
    `;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { before: number; after: number; none: boolean[]; threw: boolean; id: number; mine: boolean; threads: number };
    assert.deepEqual(o.none, [false, false, false], 'no pool has these ids');
    assert.equal(o.after, o.before, 'loading the addon and priming by id started no threads');
    assert.ok(o.threw, 'a negative id is refused with the addon\'s argument error');
    assert.ok(o.id >= 1);
    assert.equal(o.mine, true);
    assert.equal(o.threads, o.before + 1, 'the engine made at first use has one helper thread (2 threads, the caller included)');
  });
});
