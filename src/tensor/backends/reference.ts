/*
This is the clean reference backend: every kernel of the Backend contract (../backend.ts) as plain TypeScript loops,
written to be obviously right rather than fast. It is the oracle of the parity tests and the fallback engine when the
native addon does not load. Sums run in float64 (JS numbers) and are rounded to float32 only when stored, so it is
at least as accurate as any faster version. Faster versions live elsewhere (../native/*.cc behind ./native.ts).

Shape letters as in backend.ts: B batch, T query positions, S key positions, H query heads, KV key/value heads,
D head_dim, N rows, C channels, V vocabulary.
*/
import type { AdamWArgs, Backend, GemmArgs, Int8Layout } from '../backend.js';
import { int8MatrixRow } from '../int8-layout.js';
import { floatToHalf as halfFromFloat, halfToFloat as floatFromHalf } from '../half.js';

const f32 = Math.fround;

/** Float32 angle tables for RoPE, computed exactly as Hugging Face Llama does (float32 inv_freq and products). */
function ropeInvFreq(D: number, theta: number): Float32Array {
  const half = D / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const e = f32((2 * i) / D);
    inv[i] = f32(1 / f32(Math.pow(theta, e)));
  }
  return inv;
}

// ---- fp16 ----------------------------------------------------------------------------------------------------------




/** C `roundf`: halves go away from zero. */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

export class ReferenceBackend implements Backend {
  readonly name = 'reference' as const;
  readonly description = 'reference TypeScript backend';
  readonly threads = 1;

  /** The reference backend is single-threaded; the request is accepted and ignored. */
  setThreads(_n: number): void {}

  /** Page sizes are the native engine's business: nothing to do here. */
  adviseHugePages(_x: Float32Array | Int8Array): number {
    return 0;
  }

  // ---- linear algebra ---------------------------------------------------------------------------------------------

  gemm(a: Float32Array, b: Float32Array, c: Float32Array, args: GemmArgs): void {
    const { transA, transB, M, N, K, alpha, beta } = args;
    const batch = args.batch ?? 1;
    const lda = args.lda ?? (transA ? M : K);
    const ldb = args.ldb ?? (transB ? K : N);
    const ldc = args.ldc ?? N;
    const strideA = args.strideA ?? (transA ? K : M) * lda;
    const strideB = args.strideB ?? (transB ? N : K) * ldb;
    const strideC = args.strideC ?? M * ldc;
    const acc = new Float64Array(N);
    for (let bi = 0; bi < batch; bi++) {
      const ao = (args.offA ?? 0) + bi * strideA;
      const bo = (args.offB ?? 0) + bi * strideB;
      const co = (args.offC ?? 0) + bi * strideC;
      for (let i = 0; i < M; i++) {
        // acc[j] = Σ_p op(A)[i, p] · op(B)[p, j]
        acc.fill(0);
        for (let p = 0; p < K; p++) {
          const aip = transA ? a[ao + p * lda + i] : a[ao + i * lda + p];
          if (transB) {
            for (let j = 0; j < N; j++) acc[j] += aip * b[bo + j * ldb + p];
          } else {
            const row = bo + p * ldb;
            for (let j = 0; j < N; j++) acc[j] += aip * b[row + j];
          }
        }
        const crow = co + i * ldc;
        for (let j = 0; j < N; j++) c[crow + j] = beta === 0 ? alpha * acc[j] : alpha * acc[j] + beta * c[crow + j];
      }
    }
  }

  // ---- elementwise ------------------------------------------------------------------------------------------------

  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  }

  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) y[i] += alpha * x[i];
  }

  scale(x: Float32Array, alpha: number, n: number): void {
    for (let i = 0; i < n; i++) x[i] *= alpha;
  }

  sumSquares(x: Float32Array, n: number): number {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * x[i];
    return s;
  }

  allFinite(x: Float32Array, n: number): boolean {
    for (let i = 0; i < n; i++) if (!Number.isFinite(x[i])) return false;
    return true;
  }

  // ---- embedding --------------------------------------------------------------------------------------------------

  embeddingForward(table: Float32Array, ids: Int32Array, out: Float32Array, N: number, C: number): void {
    for (let n = 0; n < N; n++) {
      const src = ids[n] * C;
      for (let c = 0; c < C; c++) out[n * C + c] = table[src + c];
    }
  }

  embeddingBackward(dout: Float32Array, ids: Int32Array, dtable: Float32Array, N: number, C: number): void {
    for (let n = 0; n < N; n++) {
      const dst = ids[n] * C;
      for (let c = 0; c < C; c++) dtable[dst + c] += dout[n * C + c];
    }
  }

  // ---- RMSNorm ----------------------------------------------------------------------------------------------------

  rmsnormForward(x: Float32Array, w: Float32Array, out: Float32Array, rstd: Float32Array, N: number, C: number, eps: number): void {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      let ss = 0;
      for (let c = 0; c < C; c++) ss += x[o + c] * x[o + c];
      const r = 1 / Math.sqrt(ss / C + eps);
      for (let c = 0; c < C; c++) out[o + c] = x[o + c] * r * w[c];
      rstd[n] = r;
    }
  }

  rmsnormBackward(
    dout: Float32Array,
    x: Float32Array,
    w: Float32Array,
    rstd: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    N: number,
    C: number,
    accumulateDx: boolean,
  ): void {
    // out_c = w_c·x_c·r with r = (mean(x²) + eps)^(-1/2), dr/dx_j = −r³·x_j / C, so
    // dx_j = r·(w_j·dout_j − x_j·r²/C · Σ_c dout_c·w_c·x_c);  dw_c += dout_c·x_c·r
    for (let n = 0; n < N; n++) {
      const o = n * C;
      const r = rstd[n];
      let dot = 0;
      for (let c = 0; c < C; c++) dot += dout[o + c] * w[c] * x[o + c];
      const k = (r * r * dot) / C;
      for (let c = 0; c < C; c++) {
        const g = r * (w[c] * dout[o + c] - x[o + c] * k);
        dx[o + c] = accumulateDx ? dx[o + c] + g : g;
        dw[c] += dout[o + c] * x[o + c] * r;
      }
    }
  }

  // ---- RoPE -------------------------------------------------------------------------------------------------------

  rope(x: Float32Array, B: number, T: number, H: number, D: number, posOffset: number, theta: number, inverse: boolean, positions?: Int32Array): void {
    const half = D / 2;
    const inv = ropeInvFreq(D, theta);
    const sgn = inverse ? -1 : 1;
    for (let t = 0; t < T; t++) {
      const p = positions !== undefined ? positions[t] : posOffset + t;
      for (let i = 0; i < half; i++) {
        const ang = f32(p * inv[i]);
        const cos = Math.cos(ang);
        const sin = sgn * Math.sin(ang);
        for (let b = 0; b < B; b++) {
          for (let h = 0; h < H; h++) {
            const o = ((b * T + t) * H + h) * D;
            const x1 = x[o + i];
            const x2 = x[o + i + half];
            x[o + i] = x1 * cos - x2 * sin;
            x[o + i + half] = x2 * cos + x1 * sin;
          }
        }
      }
    }
  }

  // ---- attention --------------------------------------------------------------------------------------------------

  attentionForward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    B: number,
    T: number,
    S: number,
    H: number,
    KV: number,
    D: number,
  ): void {
    const scale = 1 / Math.sqrt(D);
    const group = H / KV;
    const shift = S - T; // query t sits at key position t + shift
    const scores = new Float64Array(S);
    const acc = new Float64Array(D);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          const kvh = Math.floor(h / group);
          const qo = ((b * T + t) * H + h) * D;
          const last = t + shift;
          let max = -Infinity;
          for (let s = 0; s <= last; s++) {
            const ko = ((b * S + s) * KV + kvh) * D;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
            scores[s] = dot * scale;
            if (scores[s] > max) max = scores[s];
          }
          let sum = 0;
          for (let s = 0; s <= last; s++) {
            scores[s] = Math.exp(scores[s] - max);
            sum += scores[s];
          }
          acc.fill(0);
          for (let s = 0; s <= last; s++) {
            const p = scores[s] / sum;
            const vo = ((b * S + s) * KV + kvh) * D;
            for (let d = 0; d < D; d++) acc[d] += p * v[vo + d];
          }
          for (let d = 0; d < D; d++) out[qo + d] = acc[d];
          lse[(b * H + h) * T + t] = max + Math.log(sum);
        }
      }
    }
  }

  attentionBackward(
    dout: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    B: number,
    T: number,
    S: number,
    H: number,
    KV: number,
    D: number,
  ): void {
    // p[t,s] = exp(scale·q_t·k_s − lse_t);  out_t = Σ_s p·v_s
    // dv_s += Σ_t p·dout_t;  dp = dout_t·v_s;  ds = p·(dp − dout_t·out_t);  dq_t += scale·Σ_s ds·k_s;  dk_s += scale·Σ_t ds·q_t
    const scale = 1 / Math.sqrt(D);
    const group = H / KV;
    const shift = S - T;
    const dk64 = new Float64Array(B * S * KV * D);
    const dv64 = new Float64Array(B * S * KV * D);
    const dq64 = new Float64Array(D);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          const kvh = Math.floor(h / group);
          const qo = ((b * T + t) * H + h) * D;
          const l = lse[(b * H + h) * T + t];
          let delta = 0;
          for (let d = 0; d < D; d++) delta += dout[qo + d] * out[qo + d];
          dq64.fill(0);
          for (let s = 0; s <= t + shift; s++) {
            const ko = ((b * S + s) * KV + kvh) * D;
            let dot = 0;
            let dp = 0;
            for (let d = 0; d < D; d++) {
              dot += q[qo + d] * k[ko + d];
              dp += dout[qo + d] * v[ko + d];
            }
            const p = Math.exp(dot * scale - l);
            const ds = p * (dp - delta);
            for (let d = 0; d < D; d++) {
              dq64[d] += scale * ds * k[ko + d];
              dk64[ko + d] += scale * ds * q[qo + d];
              dv64[ko + d] += p * dout[qo + d];
            }
          }
          for (let d = 0; d < D; d++) dq[qo + d] = dq64[d];
        }
      }
    }
    for (let i = 0; i < dk64.length; i++) {
      dk[i] = dk64[i];
      dv[i] = dv64[i];
    }
  }

  attentionDecode(
    q: Float32Array,
    kCache: Float32Array,
    vCache: Float32Array,
    out: Float32Array,
    B: number,
    H: number,
    KV: number,
    D: number,
    maxS: number,
    len: number,
  ): void {
    const scale = 1 / Math.sqrt(D);
    const group = H / KV;
    const scores = new Float64Array(len);
    const acc = new Float64Array(D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        const qo = (b * H + h) * D;
        let max = -Infinity;
        for (let s = 0; s < len; s++) {
          const ko = ((b * maxS + s) * KV + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * kCache[ko + d];
          scores[s] = dot * scale;
          if (scores[s] > max) max = scores[s];
        }
        let sum = 0;
        for (let s = 0; s < len; s++) {
          scores[s] = Math.exp(scores[s] - max);
          sum += scores[s];
        }
        acc.fill(0);
        for (let s = 0; s < len; s++) {
          const vo = ((b * maxS + s) * KV + kvh) * D;
          for (let d = 0; d < D; d++) acc[d] += (scores[s] / sum) * vCache[vo + d];
        }
        for (let d = 0; d < D; d++) out[qo + d] = acc[d];
      }
    }
  }

  // ---- SwiGLU -----------------------------------------------------------------------------------------------------

  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      out[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
  }

  swigluBackward(dout: Float32Array, gate: Float32Array, up: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void {
    // silu(g) = g·σ(g);  silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      const sig = 1 / (1 + Math.exp(-g));
      dgate[i] = dout[i] * up[i] * sig * (1 + g * (1 - sig));
      dup[i] = dout[i] * g * sig;
    }
  }

  // ---- loss -------------------------------------------------------------------------------------------------------

  crossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    N: number,
    V: number,
    ignoreIndex: number,
    dlogits: Float32Array | null,
    gradScale: number,
  ): { lossSum: number; count: number } {
    let lossSum = 0;
    let count = 0;
    for (let n = 0; n < N; n++) {
      const o = n * V;
      const target = targets[n];
      if (target === ignoreIndex) {
        if (dlogits !== null) dlogits.fill(0, o, o + V);
        continue;
      }
      let max = -Infinity;
      for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
      let sum = 0;
      for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j] - max);
      const lse = max + Math.log(sum);
      lossSum += lse - logits[o + target];
      count++;
      if (dlogits !== null) {
        for (let j = 0; j < V; j++) {
          const p = Math.exp(logits[o + j] - lse);
          dlogits[o + j] = (p - (j === target ? 1 : 0)) * gradScale;
        }
      }
    }
    return { lossSum, count };
  }

  // ---- optimizer --------------------------------------------------------------------------------------------------

  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, P: number, args: AdamWArgs): void {
    // PyTorch's AdamW: p ·= 1 − lr·wd; m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
    // p −= lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
    const { lr, beta1, beta2, eps, weightDecay, step, gradScale } = args;
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
    const stepSize = lr / bc1;
    const decay = 1 - lr * weightDecay;
    for (let i = 0; i < P; i++) {
      const g = grad[i] * gradScale;
      const mi = beta1 * m[i] + (1 - beta1) * g;
      const vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      // read back the stored float32 moments, as a float32 implementation would use them
      param[i] = param[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  }

  // ---- compression ------------------------------------------------------------------------------------------------

  toFp16(x: Float32Array, out: Uint16Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = halfFromFloat(x[i]);
  }

  fromFp16(x: Uint16Array, out: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = floatFromHalf(x[i]);
  }

  quantizeInt8(x: Float32Array, q: Int8Array, scales: Float32Array, n: number, blockSize: number): void {
    for (let b0 = 0, blk = 0; b0 < n; b0 += blockSize, blk++) {
      const b1 = Math.min(n, b0 + blockSize);
      let max = 0;
      for (let i = b0; i < b1; i++) max = Math.max(max, Math.abs(x[i]));
      const scale = f32(max / 127);
      scales[blk] = scale;
      for (let i = b0; i < b1; i++) {
        q[i] = scale === 0 ? 0 : Math.max(-127, Math.min(127, roundHalfAway(x[i] / scale)));
      }
    }
  }

  gemmQ8(a: Float32Array, q: Int8Array, scales: Float32Array, c: Float32Array, M: number, N: number, K: number, blockSize: number, beta: 0 | 1, layout: Int8Layout = 'rows'): void {
    // the definition: dequantize each weight row (the float32 products dequantizeInt8 writes), then a dot product
    // accumulated in float64 as gemm does
    const nb = K / blockSize;
    const w = new Float32Array(K);
    const wq = new Int8Array(K);
    const ws = new Float32Array(nb);
    for (let n = 0; n < N; n++) {
      int8MatrixRow(q, scales, N, K, blockSize, layout, n, wq, ws);
      for (let k = 0; k < K; k++) w[k] = wq[k] * ws[Math.floor(k / blockSize)];
      for (let i = 0; i < M; i++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += a[i * K + k] * w[k];
        c[i * N + n] = beta === 0 ? acc : acc + c[i * N + n];
      }
    }
  }

  dequantizeInt8(q: Int8Array, scales: Float32Array, out: Float32Array, n: number, blockSize: number): void {
    for (let i = 0; i < n; i++) out[i] = q[i] * scales[Math.floor(i / blockSize)];
  }
}

export function createReferenceBackend(): Backend {
  return new ReferenceBackend();
}
