/**
 * Native-vs-reference parity of every kernel of the Backend contract, on random shapes including awkward sizes
 * (1, 7, 33, 257), every transpose combination, batched and strided GEMM, at 1 thread and at the native default.
 * Skips, with the reason, when the native backend does not load.
 *
 * Inputs and outputs are views at a non-zero offset inside larger buffers whose margins hold a canary value: a
 * kernel that ignores byteOffset or writes past its output fails here, not in production.
 *
 * Tolerances (native float32 arithmetic vs the reference's float64 sums):
 * - gemm: |Δ| ≤ 2·K·2^-24·(|α|·(|op(A)|·|op(B)|) + |β·C|) + 1e-30 per element, the classical bound for any
 *   summation order;
 * - exact: embedding forward, fp16 conversions (NaN payloads excepted), int8 dequantize, allFinite, counts;
 * - int8 codes may differ by 1 only where x/scale lies within 1e-4 of a rounding tie; scales to 1 ulp;
 * - everything else: |Δ| ≤ atol + rtol·|ref| with the values stated at each check.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend, tryLoadNativeBackend, type Backend, type GemmArgs } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';

/**
 * NEUROSHARD_PARITY_SELFTEST=1 stands a second reference backend in for the native one, to exercise this harness
 * itself (every check must pass against an identical implementation).
 */
function selfTestStandIn(): Backend {
  let threads = 2;
  const own: Record<string | symbol, unknown> = {
    name: 'native',
    description: 'native stand-in (reference, parity self-test)',
    setThreads: (n: number) => {
      threads = n;
    },
  };
  return new Proxy(createReferenceBackend(), {
    get: (target, prop, receiver) => (prop === 'threads' ? threads : prop in own ? own[prop] : Reflect.get(target, prop, receiver)),
  });
}

const native: { ok: true; backend: Backend } | { ok: false; reason: string } =
  process.env.NEUROSHARD_PARITY_SELFTEST === '1' ? { ok: true, backend: selfTestStandIn() } : await tryLoadNativeBackend();
const skip = native.ok ? false : `native backend not loaded (${native.reason}); parity is checked once src/tensor/backends/native.ts loads`;
const ref = createReferenceBackend();
const AWKWARD = [1, 7, 33, 257];
const PAD = 5;
const CANARY = Math.fround(-12345.678);

// ---- guarded buffers ------------------------------------------------------------------------------------------

type Arr = Float32Array | Int32Array | Uint16Array | Int8Array;

interface Guarded<A extends Arr> {
  v: A;
  intact(): boolean;
}

function guard<A extends Arr>(make: (n: number) => A, n: number, canary: number, fill?: (i: number) => number): Guarded<A> {
  const back = make(n + 2 * PAD);
  back.fill(canary);
  const v = back.subarray(PAD, PAD + n) as A;
  if (fill !== undefined) for (let i = 0; i < n; i++) v[i] = fill(i);
  return {
    v,
    intact: () => {
      for (let i = 0; i < PAD; i++) if (back[i] !== canary || back[PAD + n + i] !== canary) return false;
      return true;
    },
  };
}

const f32 = (n: number, fill?: (i: number) => number): Guarded<Float32Array> => guard((m) => new Float32Array(m), n, CANARY, fill);
const i32 = (n: number, fill?: (i: number) => number): Guarded<Int32Array> => guard((m) => new Int32Array(m), n, -77, fill);

function randn(rng: Rng, n: number, std = 1): Guarded<Float32Array> {
  return f32(n, () => std * rng.normal());
}

/** A guarded copy of an array (each backend writes its own output). */
function copyOf(a: Float32Array): Guarded<Float32Array> {
  return f32(a.length, (i) => a[i]);
}

function assertIntact(what: string, ...gs: Guarded<Arr>[]): void {
  gs.forEach((g, i) => assert.ok(g.intact(), `${what}: buffer ${i} written outside its bounds (or its offset ignored)`));
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = -1;
  let wi = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const excess = Number.isNaN(d) ? Infinity : d - (atol + rtol * Math.abs(want[i]));
    if (excess > worst) [worst, wi] = [excess, i];
  }
  if (worst > 0) {
    assert.fail(`${what}[${wi}]: native ${got[wi]} vs reference ${want[wi]} (tolerance ${atol} + ${rtol}·|ref|)`);
  }
}

function threadCounts(b: Backend): number[] {
  const def = b.threads;
  return def > 1 ? [1, def] : [1];
}

/** Runs `body` with the native backend at each thread count, restoring the default afterwards. */
function eachThreads(body: (nb: Backend, threads: number) => void): void {
  if (!native.ok) return;
  const nb = native.backend;
  const def = nb.threads;
  try {
    for (const t of threadCounts(nb)) {
      nb.setThreads(t);
      body(nb, t);
    }
  } finally {
    nb.setThreads(def);
  }
}

// ---- gemm -----------------------------------------------------------------------------------------------------

function gemmCase(rng: Rng, g: GemmArgs, label: string): void {
  const batch = g.batch ?? 1;
  const lda = g.lda ?? (g.transA ? g.M : g.K);
  const ldb = g.ldb ?? (g.transB ? g.K : g.N);
  const ldc = g.ldc ?? g.N;
  const sA = g.strideA ?? (g.transA ? g.K : g.M) * lda;
  const sB = g.strideB ?? (g.transB ? g.N : g.K) * ldb;
  const sC = g.strideC ?? g.M * ldc;
  const nA = (g.offA ?? 0) + (batch - 1) * sA + (g.transA ? g.K : g.M) * lda;
  const nB = (g.offB ?? 0) + (batch - 1) * sB + (g.transB ? g.N : g.K) * ldb;
  const nC = (g.offC ?? 0) + (batch - 1) * sC + g.M * ldc;
  const a = randn(rng, nA);
  const b = randn(rng, nB);
  const c0 = randn(rng, nC);
  const want = copyOf(c0.v);
  ref.gemm(a.v, b.v, want.v, g);
  // error bound: |α|·(|A|·|B|) + |β·C|
  const absA = Float32Array.from(a.v, Math.abs);
  const absB = Float32Array.from(b.v, Math.abs);
  const bound = new Float32Array(c0.v.length);
  ref.gemm(absA, absB, bound, { ...g, alpha: Math.abs(g.alpha), beta: 0 });
  const u = 2 ** -24;
  eachThreads((nb, t) => {
    const got = copyOf(c0.v);
    nb.gemm(a.v, b.v, got.v, g);
    assertIntact(`gemm ${label}`, a, b, got);
    for (let i = 0; i < got.v.length; i++) {
      const tol = 2 * Math.max(g.K, 1) * u * (bound[i] + Math.abs(g.beta * c0.v[i])) + 1e-30;
      const d = Math.abs(got.v[i] - want.v[i]);
      if (!(d <= tol)) assert.fail(`gemm ${label} threads=${t}: C[${i}] native ${got.v[i]} vs reference ${want.v[i]} (tolerance ${tol})`);
    }
  });
}

describe('native vs reference parity', { skip }, () => {
  it('gemm: every transpose, M, N, K ∈ {1, 7, 33, 257}', () => {
    const rng = new Rng(1);
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const M of AWKWARD) {
          for (const N of AWKWARD) {
            for (const K of AWKWARD) {
              if (M * N * K > 257 * 257 * 33) continue; // the reference's time, not the native's, is the limit
              gemmCase(rng, { transA, transB, M, N, K, alpha: 1, beta: 0 }, `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} ${M}×${N}×${K}`);
            }
          }
        }
        gemmCase(rng, { transA, transB, M: 257, N: 257, K: 257, alpha: 1, beta: 0 }, `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} 257³`);
      }
    }
  });

  it('gemm: alpha/beta accumulation, model-like shapes', () => {
    const rng = new Rng(2);
    for (const [transA, transB] of [
      [false, true],
      [true, false],
      [false, false],
      [true, true],
    ] as const) {
      gemmCase(rng, { transA, transB, M: 128, N: 96, K: 256, alpha: 1, beta: 1 }, 'accumulate');
      gemmCase(rng, { transA, transB, M: 33, N: 65, K: 129, alpha: -0.5, beta: 0.25 }, 'alpha/beta');
      gemmCase(rng, { transA, transB, M: 64, N: 688, K: 256, alpha: 1, beta: 0 }, 'ffn');
    }
  });

  it('gemm: batched, dense and with padded leading dimensions, strides and offsets', () => {
    const rng = new Rng(3);
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [batch, M, N, K] of [
          [3, 7, 33, 7],
          [8, 33, 1, 33],
          [2, 1, 257, 7],
          [5, 17, 17, 64],
        ]) {
          const tag = `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} batch ${batch} ${M}×${N}×${K}`;
          gemmCase(rng, { transA, transB, M, N, K, alpha: 1, beta: 0, batch }, `${tag} dense`);
          const lda = (transA ? M : K) + 3;
          const ldb = (transB ? K : N) + 1;
          const ldc = N + 2;
          gemmCase(
            rng,
            {
              transA,
              transB,
              M,
              N,
              K,
              alpha: 1,
              beta: 0.5,
              batch,
              lda,
              ldb,
              ldc,
              strideA: (transA ? K : M) * lda + 5,
              strideB: (transB ? N : K) * ldb + 2,
              strideC: M * ldc + 1,
              offA: 7,
              offB: 3,
              offC: 2,
            },
            `${tag} strided`,
          );
        }
      }
    }
  });

  it('elementwise: add (incl. in place), axpy, scale, sumSquares, allFinite', () => {
    const rng = new Rng(4);
    for (const n of [...AWKWARD, 4099]) {
      const a = randn(rng, n);
      const b = randn(rng, n);
      const wantAdd = new Float32Array(n);
      ref.add(a.v, b.v, wantAdd, n);
      const wantAxpy = new Float32Array(b.v);
      ref.axpy(-0.75, a.v, wantAxpy, n);
      const wantScale = new Float32Array(a.v);
      ref.scale(wantScale, 1.5, n);
      const ss = ref.sumSquares(a.v, n);
      eachThreads((nb, t) => {
        const tag = `n=${n} threads=${t}`;
        const out = f32(n);
        nb.add(a.v, b.v, out.v, n);
        assertClose(out.v, wantAdd, 0, 0, `add ${tag}`);
        const inPlace = copyOf(a.v);
        nb.add(inPlace.v, b.v, inPlace.v, n);
        assertClose(inPlace.v, wantAdd, 0, 0, `add in place ${tag}`);
        const y = copyOf(b.v);
        nb.axpy(-0.75, a.v, y.v, n);
        assertClose(y.v, wantAxpy, 1e-6, 1e-6, `axpy ${tag}`);
        const x = copyOf(a.v);
        nb.scale(x.v, 1.5, n);
        assertClose(x.v, wantScale, 0, 1e-7, `scale ${tag}`);
        assertIntact(`elementwise ${tag}`, a, b, out, inPlace, y, x);
        assertClose([nb.sumSquares(a.v, n)], [ss], 0, 1e-6, `sumSquares ${tag}`);
        assert.equal(nb.allFinite(a.v, n), true, `allFinite ${tag}`);
        for (const pos of new Set([0, n - 1, Math.floor(n / 2)])) {
          for (const bad of [NaN, Infinity, -Infinity]) {
            const z = copyOf(a.v);
            z.v[pos] = bad;
            assert.equal(nb.allFinite(z.v, n), false, `allFinite with ${bad} at ${pos} ${tag}`);
            assert.ok(!Number.isFinite(nb.sumSquares(z.v, n)), `sumSquares with ${bad} at ${pos} ${tag}`);
          }
        }
      });
    }
  });

  it('embedding forward (exact) and backward (scatter-add with repeats)', () => {
    const rng = new Rng(5);
    for (const [V, C, N] of [
      [1, 1, 1],
      [7, 33, 7],
      [257, 7, 33],
      [33, 257, 257],
    ]) {
      const table = randn(rng, V * C);
      const ids = i32(N, () => rng.int(Math.min(V, 5))); // few distinct ids: many repeats
      const dout = randn(rng, N * C);
      const wantOut = new Float32Array(N * C);
      ref.embeddingForward(table.v, ids.v, wantOut, N, C);
      const dt0 = randn(rng, V * C);
      const wantDt = new Float32Array(dt0.v);
      ref.embeddingBackward(dout.v, ids.v, wantDt, N, C);
      eachThreads((nb, t) => {
        const tag = `V=${V} C=${C} N=${N} threads=${t}`;
        const out = f32(N * C);
        nb.embeddingForward(table.v, ids.v, out.v, N, C);
        assertClose(out.v, wantOut, 0, 0, `embeddingForward ${tag}`);
        const dt = copyOf(dt0.v);
        nb.embeddingBackward(dout.v, ids.v, dt.v, N, C);
        assertClose(dt.v, wantDt, 1e-5, 1e-5, `embeddingBackward ${tag}`);
        assertIntact(`embedding ${tag}`, table, ids, dout, out, dt);
      });
    }
  });

  it('rmsnorm forward and backward (overwrite and accumulate)', () => {
    const rng = new Rng(6);
    for (const N of [1, 7, 33]) {
      for (const C of AWKWARD) {
        for (const eps of [1e-5, 1e-6]) {
          const x = randn(rng, N * C, 2);
          const w = randn(rng, C);
          const dout = randn(rng, N * C);
          const wantOut = new Float32Array(N * C);
          const wantRstd = new Float32Array(N);
          ref.rmsnormForward(x.v, w.v, wantOut, wantRstd, N, C, eps);
          const dx0 = randn(rng, N * C);
          const dw0 = randn(rng, C);
          const wantDx = new Float32Array(N * C);
          const wantDxAcc = new Float32Array(dx0.v);
          const wantDw = new Float32Array(dw0.v);
          ref.rmsnormBackward(dout.v, x.v, w.v, wantRstd, wantDx, wantDw, N, C, false);
          ref.rmsnormBackward(dout.v, x.v, w.v, wantRstd, wantDxAcc, new Float32Array(C), N, C, true);
          eachThreads((nb, t) => {
            const tag = `N=${N} C=${C} eps=${eps} threads=${t}`;
            const out = f32(N * C);
            const rstd = f32(N);
            nb.rmsnormForward(x.v, w.v, out.v, rstd.v, N, C, eps);
            assertClose(out.v, wantOut, 1e-5, 1e-5, `rmsnormForward out ${tag}`);
            assertClose(rstd.v, wantRstd, 0, 1e-5, `rmsnormForward rstd ${tag}`);
            const dx = f32(N * C, () => NaN); // overwrite must not read dx
            const dw = copyOf(dw0.v);
            nb.rmsnormBackward(dout.v, x.v, w.v, wantRstd, dx.v, dw.v, N, C, false);
            assertClose(dx.v, wantDx, 1e-5, 1e-4, `rmsnormBackward dx ${tag}`);
            assertClose(dw.v, wantDw, 1e-4, 1e-4, `rmsnormBackward dw ${tag}`);
            const dxAcc = copyOf(dx0.v);
            nb.rmsnormBackward(dout.v, x.v, w.v, wantRstd, dxAcc.v, new Float32Array(C), N, C, true);
            assertClose(dxAcc.v, wantDxAcc, 1e-5, 1e-4, `rmsnormBackward dx accumulate ${tag}`);
            assertIntact(`rmsnorm ${tag}`, x, w, dout, out, rstd, dx, dw, dxAcc);
          });
        }
      }
    }
  });

  it('rope forward and inverse: offsets, explicit positions, thetas, long positions', () => {
    const rng = new Rng(7);
    for (const [B, T, H, D] of [
      [1, 1, 1, 2],
      [2, 7, 3, 8],
      [1, 33, 4, 64],
      [3, 5, 2, 258],
    ]) {
      for (const [posOffset, theta, explicit] of [
        [0, 10000, false],
        [31, 500000, false],
        [4000, 10000, false],
        [0, 10000, true],
      ] as const) {
        const x = randn(rng, B * T * H * D);
        const positions = explicit ? i32(T, () => rng.int(3000)) : undefined;
        for (const inverse of [false, true]) {
          const want = new Float32Array(x.v);
          ref.rope(want, B, T, H, D, posOffset, theta, inverse, positions?.v);
          eachThreads((nb, t) => {
            const tag = `[${B}, ${T}, ${H}, ${D}] offset ${posOffset} theta ${theta} explicit ${explicit} inverse ${inverse} threads=${t}`;
            const got = copyOf(x.v);
            nb.rope(got.v, B, T, H, D, posOffset, theta, inverse, positions?.v);
            // float32 cos/sin of the same float32 angle: a few ulps of |x|
            assertClose(got.v, want, 2e-6, 2e-6, `rope ${tag}`);
            assertIntact(`rope ${tag}`, got, ...(positions ? [positions] : []));
          });
        }
      }
    }
  });

  it('attention forward, backward and decode: GQA/MHA/MQA, S = T and S > T, awkward T and D', () => {
    const rng = new Rng(8);
    for (const [B, T, S, H, KV, D] of [
      [1, 1, 1, 1, 1, 1],
      [2, 7, 7, 4, 2, 8],
      [1, 33, 33, 4, 4, 7],
      [2, 7, 40, 4, 1, 33],
      [1, 257, 257, 2, 1, 64],
      [1, 33, 33, 8, 2, 64],
    ]) {
      const q = randn(rng, B * T * H * D);
      const k = randn(rng, B * S * KV * D);
      const v = randn(rng, B * S * KV * D);
      const dout = randn(rng, B * T * H * D);
      const wantOut = new Float32Array(B * T * H * D);
      const wantLse = new Float32Array(B * H * T);
      ref.attentionForward(q.v, k.v, v.v, wantOut, wantLse, B, T, S, H, KV, D);
      const wantDq = new Float32Array(q.v.length);
      const wantDk = new Float32Array(k.v.length);
      const wantDv = new Float32Array(v.v.length);
      ref.attentionBackward(dout.v, q.v, k.v, v.v, wantOut, wantLse, wantDq, wantDk, wantDv, B, T, S, H, KV, D);
      // decode: the last query row against a cache of maxS ≥ S positions holding k, v
      const maxS = S + 3;
      const kc = f32(B * maxS * KV * D, () => rng.normal());
      const vc = f32(B * maxS * KV * D, () => rng.normal());
      for (let b = 0; b < B; b++) {
        kc.v.set(k.v.subarray(b * S * KV * D, (b + 1) * S * KV * D), b * maxS * KV * D);
        vc.v.set(v.v.subarray(b * S * KV * D, (b + 1) * S * KV * D), b * maxS * KV * D);
      }
      const qLast = f32(B * H * D);
      for (let b = 0; b < B; b++) qLast.v.set(q.v.subarray(((b * T + T - 1) * H) * D, ((b * T + T) * H) * D), b * H * D);
      const wantDec = new Float32Array(B * H * D);
      ref.attentionDecode(qLast.v, kc.v, vc.v, wantDec, B, H, KV, D, maxS, S);
      eachThreads((nb, t) => {
        const tag = `B=${B} T=${T} S=${S} H=${H} KV=${KV} D=${D} threads=${t}`;
        const out = f32(wantOut.length);
        const lse = f32(wantLse.length);
        nb.attentionForward(q.v, k.v, v.v, out.v, lse.v, B, T, S, H, KV, D);
        assertClose(out.v, wantOut, 2e-5, 1e-4, `attentionForward out ${tag}`);
        assertClose(lse.v, wantLse, 2e-5, 1e-5, `attentionForward lse ${tag}`);
        const dq = f32(wantDq.length, () => NaN);
        const dk = f32(wantDk.length, () => NaN);
        const dv = f32(wantDv.length, () => NaN);
        nb.attentionBackward(dout.v, q.v, k.v, v.v, wantOut, wantLse, dq.v, dk.v, dv.v, B, T, S, H, KV, D);
        assertClose(dq.v, wantDq, 1e-4, 1e-3, `attentionBackward dq ${tag}`);
        assertClose(dk.v, wantDk, 1e-4, 1e-3, `attentionBackward dk ${tag}`);
        assertClose(dv.v, wantDv, 1e-4, 1e-3, `attentionBackward dv ${tag}`);
        const dec = f32(wantDec.length);
        nb.attentionDecode(qLast.v, kc.v, vc.v, dec.v, B, H, KV, D, maxS, S);
        assertClose(dec.v, wantDec, 2e-5, 1e-4, `attentionDecode ${tag}`);
        assertIntact(`attention ${tag}`, q, k, v, dout, out, lse, dq, dk, dv, kc, vc, qLast, dec);
      });
    }
  });

  it('swiglu forward and backward, including large |gate|', () => {
    const rng = new Rng(9);
    for (const n of [...AWKWARD, 4099]) {
      const gate = f32(n, (i) => (i % 13 === 0 ? (rng.next() - 0.5) * 200 : rng.normal() * 3));
      const up = randn(rng, n);
      const dout = randn(rng, n);
      const wantOut = new Float32Array(n);
      ref.swigluForward(gate.v, up.v, wantOut, n);
      const wantDg = new Float32Array(n);
      const wantDu = new Float32Array(n);
      ref.swigluBackward(dout.v, gate.v, up.v, wantDg, wantDu, n);
      eachThreads((nb, t) => {
        const tag = `n=${n} threads=${t}`;
        const out = f32(n);
        nb.swigluForward(gate.v, up.v, out.v, n);
        assertClose(out.v, wantOut, 1e-6, 1e-5, `swigluForward ${tag}`);
        const dg = f32(n);
        const du = f32(n);
        nb.swigluBackward(dout.v, gate.v, up.v, dg.v, du.v, n);
        assertClose(dg.v, wantDg, 1e-6, 1e-5, `swigluBackward dgate ${tag}`);
        assertClose(du.v, wantDu, 1e-6, 1e-5, `swigluBackward dup ${tag}`);
        assertIntact(`swiglu ${tag}`, gate, up, dout, out, dg, du);
      });
    }
  });

  it('cross-entropy: loss sum, count, gradient, ignored rows, large logits', () => {
    const rng = new Rng(10);
    for (const N of [1, 7, 33]) {
      for (const V of [1, 7, 257, 4099]) {
        const logits = f32(N * V, () => rng.normal() * 4 + (rng.next() < 0.01 ? 60 : 0));
        const targets = i32(N, (i) => (i % 3 === 1 ? -100 : rng.int(V)));
        const want = new Float32Array(N * V);
        const r = ref.crossEntropy(logits.v, targets.v, N, V, -100, want, 0.125);
        eachThreads((nb, t) => {
          const tag = `N=${N} V=${V} threads=${t}`;
          const dl = f32(N * V, () => NaN); // ignored rows must be zeroed, not left alone
          const got = nb.crossEntropy(logits.v, targets.v, N, V, -100, dl.v, 0.125);
          assert.equal(got.count, r.count, `count ${tag}`);
          assertClose([got.lossSum], [r.lossSum], 1e-5, 1e-5, `lossSum ${tag}`);
          // float32 lse carries ~1 ulp of the max logit, so p ≈ 1 rows lose relative accuracy in p − 1: atol 2e-6 (of ≤ 0.125)
          assertClose(dl.v, want, 2e-6, 1e-4, `dlogits ${tag}`);
          const noGrad = nb.crossEntropy(logits.v, targets.v, N, V, -100, null, 0);
          assertClose([noGrad.lossSum], [r.lossSum], 1e-5, 1e-5, `lossSum without gradient ${tag}`);
          assertIntact(`crossEntropy ${tag}`, logits, targets, dl);
        });
      }
    }
  });

  it('adamw: three steps with clipping scale and weight decay', () => {
    const rng = new Rng(11);
    for (const P of [...AWKWARD, 4099]) {
      const p0 = randn(rng, P);
      const grads = [randn(rng, P), randn(rng, P, 0.01), randn(rng, P, 10)];
      const want = { p: new Float32Array(p0.v), m: new Float32Array(P), v: new Float32Array(P) };
      const argsOf = (step: number): Parameters<Backend['adamw']>[5] => ({ lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step, gradScale: step === 2 ? 0.7 : 1 });
      const wantAfter: Float32Array[] = [];
      grads.forEach((g, i) => {
        ref.adamw(want.p, g.v, want.m, want.v, P, argsOf(i + 1));
        wantAfter.push(new Float32Array(want.p));
      });
      eachThreads((nb, t) => {
        const p = copyOf(p0.v);
        const m = f32(P, () => 0);
        const v = f32(P, () => 0);
        grads.forEach((g, i) => {
          nb.adamw(p.v, g.v, m.v, v.v, P, argsOf(i + 1));
          assertClose(p.v, wantAfter[i], 1e-6, 1e-5, `adamw P=${P} step ${i + 1} threads=${t}`);
        });
        assertClose(m.v, want.m, 1e-7, 1e-5, `adamw m P=${P} threads=${t}`);
        assertClose(v.v, want.v, 1e-9, 1e-5, `adamw v P=${P} threads=${t}`);
        assertIntact(`adamw P=${P}`, p, m, v, ...grads);
      });
    }
  });

  it('fp16: bit-exact both ways (NaN payloads aside), including subnormals, ties and overflow', () => {
    const rng = new Rng(12);
    for (const n of [...AWKWARD, 65536]) {
      const x = f32(n, (i) => {
        const r = i % 5;
        if (r === 0) return (rng.next() - 0.5) * 2 ** (rng.int(50) - 30);
        if (r === 1) return (1 + (2 * rng.int(1024) + 1) * 2 ** -11) * 2 ** (rng.int(30) - 15); // exact ties
        if (r === 2) return [NaN, Infinity, -Infinity, 65520, 65519, -0, 2 ** -25, 2 ** -24][rng.int(8)];
        return rng.normal() * 100;
      });
      const want = new Uint16Array(n);
      ref.toFp16(x.v, want, n);
      const h = guard((m) => new Uint16Array(m), n, 0xabcd, (i) => (n === 65536 ? i : want[i]));
      const wantBack = new Float32Array(n);
      ref.fromFp16(h.v, wantBack, n);
      eachThreads((nb, t) => {
        const tag = `n=${n} threads=${t}`;
        const got = guard((m) => new Uint16Array(m), n, 0x1234);
        nb.toFp16(x.v, got.v, n);
        for (let i = 0; i < n; i++) {
          const isNaN = Number.isNaN(x.v[i]);
          if (isNaN) assert.ok((got.v[i] & 0x7c00) === 0x7c00 && (got.v[i] & 0x3ff) !== 0, `toFp16(NaN) ${tag}`);
          else if (got.v[i] !== want[i]) assert.fail(`toFp16(${x.v[i]}) ${tag}: native 0x${got.v[i].toString(16)} vs reference 0x${want[i].toString(16)}`);
        }
        const back = f32(n);
        nb.fromFp16(h.v, back.v, n);
        for (let i = 0; i < n; i++) {
          if (Number.isNaN(wantBack[i])) assert.ok(Number.isNaN(back.v[i]), `fromFp16 NaN ${tag}`);
          else if (!Object.is(back.v[i], wantBack[i])) assert.fail(`fromFp16(0x${h.v[i].toString(16)}) ${tag}: native ${back.v[i]} vs reference ${wantBack[i]}`);
        }
        assertIntact(`fp16 ${tag}`, x, h, got, back);
      });
    }
  });

  it('int8 block quantize/dequantize', () => {
    const rng = new Rng(13);
    for (const n of [...AWKWARD, 4099]) {
      for (const blockSize of [1, 7, 64, 256]) {
        const x = f32(n, (i) => (Math.floor(i / blockSize) % 4 === 3 ? 0 : rng.normal() * 10 ** (rng.int(6) - 3)));
        const nb0 = Math.ceil(n / blockSize);
        const wantQ = new Int8Array(n);
        const wantS = new Float32Array(nb0);
        ref.quantizeInt8(x.v, wantQ, wantS, n, blockSize);
        const wantDeq = new Float32Array(n);
        ref.dequantizeInt8(wantQ, wantS, wantDeq, n, blockSize);
        eachThreads((nb, t) => {
          const tag = `n=${n} block=${blockSize} threads=${t}`;
          const q = guard((m) => new Int8Array(m), n, 99);
          const s = f32(nb0);
          nb.quantizeInt8(x.v, q.v, s.v, n, blockSize);
          assertClose(s.v, wantS, 0, 2 ** -23, `int8 scales ${tag}`);
          for (let i = 0; i < n; i++) {
            if (q.v[i] === wantQ[i]) continue;
            const r = Math.abs(x.v[i] / wantS[Math.floor(i / blockSize)]);
            const nearTie = Math.abs(r - Math.floor(r) - 0.5) < 1e-4; // x·(1/scale) and x/scale may straddle a tie
            assert.ok(Math.abs(q.v[i] - wantQ[i]) === 1 && nearTie, `int8 q[${i}] ${tag}: native ${q.v[i]} vs reference ${wantQ[i]} (x/scale = ${r})`);
          }
          const deq = f32(n);
          nb.dequantizeInt8(wantQ, wantS, deq.v, n, blockSize);
          assertClose(deq.v, wantDeq, 0, 0, `int8 dequantize ${tag}`);
          assertIntact(`int8 ${tag}`, x, q, s, deq);
        });
      }
    }
  });

  it('setThreads is honoured and reported', () => {
    if (!native.ok) return;
    const nb = native.backend;
    const def = nb.threads;
    try {
      nb.setThreads(1);
      assert.equal(nb.threads, 1);
      nb.setThreads(2);
      assert.equal(nb.threads, 2);
    } finally {
      nb.setThreads(def);
    }
    assert.equal(nb.name, 'native');
    assert.ok(nb.description.startsWith('native'), `description "${nb.description}" should start with "native"`);
  });
});
