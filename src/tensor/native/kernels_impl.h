// The kernels, written once with GCC/Clang vector extensions and compiled three times: isa_avx512.cc,
// isa_avx2.cc and isa_portable.cc each set the target ISA with a pragma, pick the vector width and GEMM tile, and
// include this file inside their own namespace (so no inline function is ever shared between ISA paths: the
// linker cannot substitute an AVX-512 copy into the portable path).
//
// Expects: NS_ISA_NS (namespace name), NS_ISA_ENUM, NS_ISA_NAME, NS_W (floats per vector), NS_MR, NS_NV (GEMM tile:
// NS_MR rows × NS_NV vectors), NS_KC, NS_MC, NS_NC (cache blocking), NS_F16C (1 when F16C conversions are allowed).
//
// Element-wise kernels process every element, tails included, with the same vector code (a tail goes through a
// zero-padded vector), so the value of an element never depends on where a thread's range starts. Shapes in comments
// use the letters of src/tensor/backend.ts.

#ifndef NS_ISA_NS
#error "kernels_impl.h is included by isa_*.cc only"
#endif

namespace ns {
namespace NS_ISA_NS {

constexpr int W = NS_W;
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));
typedef uint32_t vu __attribute__((vector_size(W * 4)));

#define NS_INLINE static inline __attribute__((always_inline))
// Keeps x in a register: GCC would otherwise fold a loaded vector into every FMA that uses it as a memory operand
// (one load per use). Emits nothing.
#if defined(__x86_64__) || defined(__i386__)
#define NS_KEEP(x) __asm__("" : "+v"(x))
#else
#define NS_KEEP(x) ((void)0)
#endif

NS_INLINE vf loadu(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
NS_INLINE void storeu(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// Broadcast. (Not `vf{} + x`: that is a real addition, since 0 + (−0) = +0, and costs an instruction per use.)
NS_INLINE vf bcast(float x) {
#if NS_ISA_ENUM == 2
  return (vf)_mm512_set1_ps(x);
#elif NS_ISA_ENUM == 1
  return (vf)_mm256_set1_ps(x);
#elif defined(__SSE2__) && NS_W == 4
  return (vf)_mm_set1_ps(x);
#else
  vf v;
  for (int l = 0; l < W; l++) v[l] = x;
  return v;
#endif
}
NS_INLINE vf vmax(vf a, vf b) { return a > b ? a : b; }
NS_INLINE vf vmin(vf a, vf b) { return a < b ? a : b; }
NS_INLINE vf vabs(vf a) { return (vf)((vu)a & 0x7fffffffu); }
// Partial loads/stores of the first n ≤ W lanes (tails), so that tails run the same vector code as full vectors.
// Masked instructions on AVX-512/AVX2 (masked-off lanes never fault); a small buffer on the portable path.
NS_INLINE vf load_part_fill(const float* p, int64_t n, float fill) {
#if NS_ISA_ENUM == 2
  return (vf)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << n) - 1u), p);
#elif NS_ISA_ENUM == 1
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return (vf)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
#else
  float t[W];
  for (int i = 0; i < W; i++) t[i] = i < n ? p[i] : fill;
  return loadu(t);
#endif
}
NS_INLINE vf load_part(const float* p, int64_t n) {
#if NS_ISA_ENUM == 2
  return (vf)_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
#elif NS_ISA_ENUM == 1
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return (vf)_mm256_maskload_ps(p, m);
#else
  return load_part_fill(p, n, 0.0f);
#endif
}
NS_INLINE void store_part(float* p, vf v, int64_t n) {
#if NS_ISA_ENUM == 2
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), (__m512)v);
#elif NS_ISA_ENUM == 1
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_maskstore_ps(p, m, (__m256)v);
#else
  float t[W];
  storeu(t, v);
  for (int64_t i = 0; i < n; i++) p[i] = t[i];
#endif
}
// Horizontal reductions by halving (wide → 4 lanes → 1): a fixed order, so equal inputs give equal results.
typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v4i __attribute__((vector_size(16)));
template <class Op>
NS_INLINE float hreduce(vf v, Op op) {
  // Register extracts, not memcpy through the stack: a 64-byte store read back in halves stalls store forwarding.
#if NS_ISA_ENUM == 2
  const __m512 x = (__m512)v;
  const v8f c = op((v8f)_mm512_castps512_ps256(x), (v8f)_mm512_extractf32x8_ps(x, 1));
  const v4f f = op((v4f)_mm256_castps256_ps128((__m256)c), (v4f)_mm256_extractf128_ps((__m256)c, 1));
#elif NS_ISA_ENUM == 1
  const v4f f = op((v4f)_mm256_castps256_ps128((__m256)v), (v4f)_mm256_extractf128_ps((__m256)v, 1));
#else
  static_assert(W == 4, "the portable path uses 4-lane vectors");
  const v4f f = v;
#endif
#if defined(__clang__)
  const v4f g = op(f, __builtin_shufflevector(f, f, 2, 3, 2, 3));
#else
  const v4f g = op(f, __builtin_shuffle(f, v4i{2, 3, 2, 3}));
#endif
  return op(g[0], g[1]);
}
NS_INLINE float hsum(vf v) {
  return hreduce(v, [](auto a, auto b) { return a + b; });
}
NS_INLINE float hmax(vf v) {
  return hreduce(v, [](auto a, auto b) { return a > b ? a : b; });
}

// exp(x) to ~1 ulp (Cephes expf polynomial with a Cody-Waite range reduction). exp(-inf) and anything below
// -87.3 give exactly 0 (softmax masks rely on it); NaN stays NaN; large x saturates to +inf.
NS_INLINE vf vexp(vf x) {
  const vf hi = bcast(88.72283935546875f), lo = bcast(-87.33654475f);
  vf xc = x > hi ? hi : x;  // NaN compares false and is kept, so it propagates
  xc = xc < lo ? lo : xc;
  const vf t = xc * 1.44269504088896341f;
  const vf r = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer (|t| < 2^22)
  vf f = xc - r * 0.693359375f;
  f = f - r * -2.12194440e-4f;
  vf p = bcast(1.9875691500E-4f);
  p = p * f + 1.3981999507E-3f;
  p = p * f + 8.3334519073E-3f;
  p = p * f + 4.1665795894E-2f;
  p = p * f + 1.6666665459E-1f;
  p = p * f + 5.0000001201E-1f;
  p = p * (f * f) + f + 1.0f;
  // 2^r as two factors 2^(r/2)·2^(r − r/2): r spans [−126, 128] and 2^128 is not a float.
  const vi ri = __builtin_convertvector(r, vi);
  const vi r1 = ri >> 1, r2 = ri - r1;
  const vf s1 = (vf)((r1 + 127) << 23), s2 = (vf)((r2 + 127) << 23);
  vf y = p * s1 * s2;
  y = x > hi ? bcast(__builtin_inff()) : y;
  return x < lo ? vf{} : y;
}
NS_INLINE vf vsqrt(vf x) {
#if NS_ISA_ENUM == 2
  return (vf)_mm512_sqrt_ps((__m512)x);
#elif NS_ISA_ENUM == 1
  return (vf)_mm256_sqrt_ps((__m256)x);
#elif defined(__SSE2__) && NS_W == 4
  return (vf)_mm_sqrt_ps((__m128)x);
#else
  for (int l = 0; l < W; l++) x[l] = __builtin_sqrtf(x[l]);
  return x;
#endif
}
NS_INLINE vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

// ============================================================================================================
// GEMM: C = alpha·op(A)·op(B) + beta·C, BLIS-style: B is packed into K×NR panels, A into MR×K panels, and an
// MR×NR register tile accumulates over a KC block. K blocks start at multiples of KC and tiles at multiples of
// MR/NR from the matrix origin, so every element's arithmetic is the same whatever block a thread owns.
// ============================================================================================================

constexpr int MR = NS_MR;
constexpr int NV = NS_NV;
constexpr int NR = NV * W;
constexpr int64_t KC = NS_KC, MC = NS_MC, NC = NS_NC;
static_assert(MC % MR == 0 && NC % NR == 0, "cache blocks must be whole tiles");

NS_INLINE int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Pack op(A)[i0:i0+mc, p0:p0+kc] into ceil(mc/MR) panels of kc×MR (row r of the tile at offset r), zero-padded.
static void pack_a(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* __restrict Ap) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t mv = mc - ip < MR ? mc - ip : MR;
    float* __restrict dst = Ap + ip * kc;
    if (!g.ta) {
      // op(A)[i][k] = A[i·lda + k]: MR row streams, written interleaved.
      const float* src[MR];
      for (int r = 0; r < MR; r++) src[r] = g.A + (i0 + ip + (r < mv ? r : 0)) * g.lda + p0;
      if (mv == MR) {
        for (int64_t k = 0; k < kc; k++) {
#pragma GCC unroll 16
          for (int r = 0; r < MR; r++) dst[k * MR + r] = src[r][k];
        }
      } else {
        for (int64_t k = 0; k < kc; k++)
          for (int r = 0; r < MR; r++) dst[k * MR + r] = r < mv ? src[r][k] : 0.0f;
      }
    } else {
      // op(A)[i][k] = A[k·lda + i]: each k is a contiguous run of mv floats.
      for (int64_t k = 0; k < kc; k++) {
        const float* s = g.A + (p0 + k) * g.lda + i0 + ip;
        float* d = dst + k * MR;
        if (mv == MR) {
#pragma GCC unroll 16
          for (int r = 0; r < MR; r++) d[r] = s[r];
        } else {
          for (int r = 0; r < MR; r++) d[r] = r < mv ? s[r] : 0.0f;
        }
      }
    }
  }
}

// Pack op(B)[p0:p0+kc, j0:j0+nc] into ceil(nc/NR) panels of kc×NR, zero-padded.
static void pack_b(const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* __restrict Bp) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t nv = nc - jp < NR ? nc - jp : NR;
    float* __restrict dst = Bp + jp * kc;
    if (!g.tb) {
      // op(B)[k][j] = B[k·ldb + j]: rows of NR contiguous floats.
      const float* s = g.B + p0 * g.ldb + j0 + jp;
      if (nv == NR) {
        for (int64_t k = 0; k < kc; k++) {
#pragma GCC unroll 4
          for (int v = 0; v < NV; v++) storeu(dst + k * NR + v * W, loadu(s + k * g.ldb + v * W));
        }
      } else {
        for (int64_t k = 0; k < kc; k++)
          for (int c = 0; c < NR; c++) dst[k * NR + c] = c < nv ? s[k * g.ldb + c] : 0.0f;
      }
    } else {
      // op(B)[k][j] = B[j·ldb + k]: NR row streams of B, written interleaved (a transpose).
      const float* src[NR];
      for (int c = 0; c < NR; c++) src[c] = g.B + (j0 + jp + (c < nv ? c : 0)) * g.ldb + p0;
      if (nv == NR) {
        for (int64_t k = 0; k < kc; k++) {
#pragma GCC unroll 8
          for (int c = 0; c < NR; c++) dst[k * NR + c] = src[c][k];
        }
      } else {
        for (int64_t k = 0; k < kc; k++)
          for (int c = 0; c < NR; c++) dst[k * NR + c] = c < nv ? src[c][k] : 0.0f;
      }
    }
  }
}

// The register tile: c[MR][NV] = Σ_k Ap[k][r] · Bp[k][:].
NS_INLINE void micro(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, vf (&c)[MR][NV]) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) c[r][v] = vf{};
  for (int64_t k = 0; k < kc; k++) {
    vf b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = loadu(Bp + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const vf a = bcast(Ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) c[r][v] += a * b[v];
    }
    Ap += MR;
    Bp += NR;
  }
}

// Writes the tile: the first K block applies beta (beta = 0 never reads C), later blocks add.
NS_INLINE void store_tile(vf (&c)[MR][NV], float* C, int64_t ldc, float alpha, float beta, bool first, int64_t mv, int64_t nv) {
  if (mv == MR && nv == NR) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float* p = C + r * ldc + v * W;
        vf x = c[r][v];
        if (alpha != 1.0f) x = x * alpha;
        if (!first) {
          x = x + loadu(p);
        } else if (beta != 0.0f) {
          x = x + beta * loadu(p);
        }
        storeu(p, x);
      }
    }
    return;
  }
  for (int64_t r = 0; r < mv; r++) {
    for (int v = 0; v < NV; v++) {
      const int64_t j = v * W;
      if (j >= nv) break;
      const int64_t w = nv - j < W ? nv - j : W;
      float* p = C + r * ldc + j;
      vf x = c[r][v];
      if (alpha != 1.0f) x = x * alpha;
      if (!first) {
        x = x + load_part(p, w);
      } else if (beta != 0.0f) {
        x = x + beta * load_part(p, w);
      }
      store_part(p, x, w);
    }
  }
}

static size_t gemm_ws(const GemmArgs& g) {
  if (g.M <= kSmallM) return static_cast<size_t>(g.M * g.K + 64);
  const int64_t kc = g.K < KC ? g.K : KC;
  const int64_t nc = round_up(g.N < NC ? g.N : NC, NR);
  return static_cast<size_t>(round_up(MC * kc, 16) + kc * nc + 64);
}

static void gemm_block(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* ws) {
  const int64_t K = g.K;
  const int64_t kcmax = K < KC ? K : KC;
  float* Ap = ws;
  float* Bp = ws + round_up(MC * kcmax, 16);
  vf c[MR][NV];
  // A thread's rows fit one MC block: pack B one NR panel at a time, just before use (it stays in L1), instead of
  // writing a whole K×N packed copy to memory. This is the skinny case (64×768 @ 768×3072) and most of the
  // attention products.
  const bool one_mblock = m1 - m0 <= MC;
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = n1 - jc < NC ? n1 - jc : NC;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = K - pc < KC ? K - pc : KC;
      const bool first = pc == 0;
      if (one_mblock) {
        const int64_t mc = m1 - m0;
        pack_a(g, m0, mc, pc, kc, Ap);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nv = nc - jr < NR ? nc - jr : NR;
          pack_b(g, pc, kc, jc + jr, nv, Bp);
          for (int64_t ir = 0; ir < mc; ir += MR) {
            micro(kc, Ap + ir * kc, Bp, c);
            store_tile(c, g.C + (m0 + ir) * g.ldc + jc + jr, g.ldc, g.alpha, g.beta, first, mc - ir < MR ? mc - ir : MR, nv);
          }
        }
      } else {
        pack_b(g, pc, kc, jc, nc, Bp);
        for (int64_t ic = m0; ic < m1; ic += MC) {
          const int64_t mc = m1 - ic < MC ? m1 - ic : MC;
          pack_a(g, ic, mc, pc, kc, Ap);
          for (int64_t jr = 0; jr < nc; jr += NR) {
            const int64_t nv = nc - jr < NR ? nc - jr : NR;
            for (int64_t ir = 0; ir < mc; ir += MR) {
              micro(kc, Ap + ir * kc, Bp + jr * kc, c);
              store_tile(c, g.C + (ic + ir) * g.ldc + jc + jr, g.ldc, g.alpha, g.beta, first, mc - ir < MR ? mc - ir : MR, nv);
            }
          }
        }
      }
    }
  }
}

NS_INLINE float finish(float acc, float alpha, float beta, const float* p) {
  float x = alpha == 1.0f ? acc : acc * alpha;
  return beta == 0.0f ? x : x + beta * *p;
}
NS_INLINE vf finishv(vf acc, float alpha, float beta, const float* p, int64_t w) {
  vf x = alpha == 1.0f ? acc : acc * alpha;
  if (beta == 0.0f) return x;
  return x + beta * (w == W ? loadu(p) : load_part(p, w));
}

// NS_GEMV_PF (set by isa_avx512.cc): the decode GEMVs below (f32 with op(B) = Bᵀ, and int8) read a group of 4 rows
// of the weight matrix side by side, each only K elements long (768-3072 here), so the hardware prefetcher sees 4
// short streams that restart every group and the loads wait on memory. Prefetching, with each load, the same offset
// of the next group's rows keeps the next group in flight. Measured on the Zen 4 machine, CPU time of one 12x768
// decode step's GEMVs at 1 thread: int8 11.1-11.8 → 7.9-8.3 ms, f32 24.2 → 22.1 ms. Arithmetic is unchanged.
// Small M: decode and GEMV. B is streamed unpacked; A is read in place (rows `lda` apart) when it is not transposed
// and does not overlap C, and otherwise copied to ws as [M, K] first. `a` and `C` point at the group's first row.
//
// op(B) = B (rows of A against columns of B): groups of up to 4 rows of A, B streamed once per group.
template <int M>
static void gemm_small_nt(const GemmArgs& g, const float* a, int64_t lda, float* Cg, int64_t n0, int64_t n1) {
  const int64_t K = g.K;
  // C[i, j] = Σ_k a[i, k] · B[k, j]: vectors along j, 4 at a time.
  int64_t j = n0;
  for (; j + 4 * W <= n1; j += 4 * W) {
    vf acc[M][4];
    for (int i = 0; i < M; i++)
      for (int v = 0; v < 4; v++) acc[i][v] = vf{};
    const float* b = g.B + j;
    for (int64_t k = 0; k < K; k++, b += g.ldb) {
      vf bv[4];
      for (int v = 0; v < 4; v++) bv[v] = loadu(b + v * W);
      for (int i = 0; i < M; i++) {
        const vf av = bcast(a[i * lda + k]);
        for (int v = 0; v < 4; v++) acc[i][v] += av * bv[v];
      }
    }
    for (int i = 0; i < M; i++)
      for (int v = 0; v < 4; v++) {
        float* p = Cg + i * g.ldc + j + v * W;
        storeu(p, finishv(acc[i][v], g.alpha, g.beta, p, W));
      }
  }
  for (; j < n1; j += W) {
    const int64_t w = n1 - j < W ? n1 - j : W;
    vf acc[M];
    for (int i = 0; i < M; i++) acc[i] = vf{};
    const float* b = g.B + j;
    for (int64_t k = 0; k < K; k++, b += g.ldb) {
      const vf bv = w == W ? loadu(b) : load_part(b, w);
      for (int i = 0; i < M; i++) acc[i] += bcast(a[i * lda + k]) * bv;
    }
    for (int i = 0; i < M; i++) {
      float* p = Cg + i * g.ldc + j;
      store_part(p, finishv(acc[i], g.alpha, g.beta, p, w), w);
    }
  }
}

// op(B) = Bᵀ (the decode GEMV: a Linear's weight W [N, K], C = A·Wᵀ): dot products along k, CQ rows of W (columns of
// C) at a time against all M rows of A, so that W is streamed once for the M rows. Every output element is one dot
// product along K in K order, in W lanes, reduced by hsum: its arithmetic depends neither on M, CQ nor [n0, n1), so
// an 8-row batch gives each row the bits it gets alone (LlamaShard.decodeBatch relies on it).
// Prefetch (NS_GEMV_PF): the same line of the rows of W PF ahead of each row being read (the next group when
// PF = CQ; past the matrix's end it touches whatever follows, and a prefetch never faults), with locality LOC
// (__builtin_prefetch: 0 non-temporal into L1, 2 = prefetcht1 into L2; 2 since session 21, see gemm_small: 1 row,
// 19.6 → 29.2 GB/s; 3 rows, CPU a 12x768 step at 1 thread 20.6-21.0 → 10.9-11.0 ms, load 7-9).
template <int M, int CQ, int PF = 4, int LOC = 2>
static void gemm_small_tb(const GemmArgs& g, const float* a, int64_t lda, float* Cg, int64_t n0, int64_t n1) {
  const int64_t K = g.K;
  const int64_t kv = K / W * W;
  for (int64_t j = n0; j < n1; j += CQ) {
    const int jn = n1 - j < CQ ? static_cast<int>(n1 - j) : CQ;
    const float* b[CQ];
    for (int q = 0; q < CQ; q++) b[q] = g.B + (j + (q < jn ? q : 0)) * g.ldb;
    vf acc[M][CQ];
    for (int i = 0; i < M; i++)
      for (int q = 0; q < CQ; q++) acc[i][q] = vf{};
    for (int64_t k = 0; k < kv; k += W) {
#ifdef NS_GEMV_PF
      if (PF > 0)
        for (int q = 0; q < CQ; q++) __builtin_prefetch(b[q] + k + PF * g.ldb, 0, LOC);
#endif
      vf bv[CQ];
      for (int q = 0; q < CQ; q++) bv[q] = loadu(b[q] + k);
      for (int i = 0; i < M; i++) {
        const vf av = loadu(a + i * lda + k);
        for (int q = 0; q < CQ; q++) acc[i][q] += av * bv[q];
      }
    }
    if (kv < K) {
      vf bv[CQ];
      for (int q = 0; q < CQ; q++) bv[q] = load_part(b[q] + kv, K - kv);
      for (int i = 0; i < M; i++) {
        const vf av = load_part(a + i * lda + kv, K - kv);
        for (int q = 0; q < CQ; q++) acc[i][q] += av * bv[q];
      }
    }
    for (int i = 0; i < M; i++)
      for (int q = 0; q < jn; q++) {
        float* p = Cg + i * g.ldc + j + q;
        *p = finish(hsum(acc[i][q]), g.alpha, g.beta, p);
      }
  }
}

#if NS_W == 16
// Decode batches (5-8 rows of A, op(B) = Bᵀ) on AVX-512: rows [j0, j1) of W (j1 − j0 a multiple of CQ), CQ at a time,
// against all M rows of A over the K range [kb, ke) (vector part; the tail K % W is added when `last`). Each group's
// M·CQ accumulators start from zero when `first` and otherwise from `park` (M·CQ vectors per group, in group order),
// and go back there unless `last`, when they are reduced and stored. An output element is thus still the one dot
// product of gemm_small_tb: along K in K order in W lanes (stopping and resuming a lane's sum between K blocks does
// not change it), then hsum, so a row of a batch gets the bits it gets alone.
//
// Why this and not gemm_small_tb<M, 2>: compute, not memory, bounded the 8-row step (8 rows × 2 weight rows is 16
// FMAs per 10 vectors loaded, 0.5 FMA per byte of W per row short of memory-bound). Measured one 8-row product,
// Zen 5 (2 FMA/cycle at 3.35 GHz), W in L2 (256×768): 1.1 FMA/cycle before, 1.5-1.6 after. What it changes:
// - A's vector is held in a register (NS_KEEP) for its CQ FMAs: GCC otherwise folds it into each FMA as a memory
//   operand, loading it CQ times (18 loads per 16 FMAs at CQ = 2, where the loads, not the FMAs, set the pace).
// - CQ = 3 rows of W: 24 accumulators + 3 of W + 1 of A = 28 of the 32 registers; 11 loads per 24 FMAs.
// - K in blocks of kBatchKB (the caller's loop): A's block (8 rows × 1024 floats = 32 KiB) stays in the 48 KiB L1
//   while W streams past it; whole, the down projection's A (8 × 2048) is 64 KiB and came from L2 at every step
//   (one 768×2048 product, W from memory: 299-312 → 266-280 µs).
template <int M, int CQ, int LOC = 2>
static void gemm_batch_tb(const GemmArgs& g, const float* a, int64_t lda, float* Cg, int64_t j0, int64_t j1, int64_t kb, int64_t ke, bool first,
                          bool last, vf* park) {
  const int64_t K = g.K, ldb = g.ldb, ldc = g.ldc;
  const float alpha = g.alpha, beta = g.beta;
  for (int64_t j = j0; j < j1; j += CQ, park += M * CQ) {
    const float* b[CQ];
    for (int q = 0; q < CQ; q++) b[q] = g.B + (j + q) * ldb;
    vf acc[M * CQ];
    for (int i = 0; i < M * CQ; i++) acc[i] = first ? vf{} : park[i];
    for (int64_t k = kb; k < ke; k += W) {
      // the same line of the next group's rows: one group ahead (≈ 9 KiB at K = 768) keeps the lines in flight
      // (two groups ahead, or the same row 512-4096 bytes ahead, was slower; none, 35 %). Into L2 (prefetcht1,
      // LOC = 2) since session 21: non-temporal into L1 (LOC = 0) lost lines to A's 32 KiB block and the rows being
      // read before their loads (24 KiB ahead at K = 2048), and they came from memory twice: 12x768 8-row step at
      // 1 thread, CPU 28.2-28.5 → 18.3-19.3 ms a step (decode-kernels.mjs --modes f32:8, 3 pairs, load 7-9).
      for (int q = 0; q < CQ; q++) __builtin_prefetch(b[q] + k + CQ * ldb, 0, LOC);
      vf bv[CQ];
      for (int q = 0; q < CQ; q++) bv[q] = loadu(b[q] + k);
      for (int i = 0; i < M; i++) {
        vf av = loadu(a + i * lda + k);
        NS_KEEP(av);
        for (int q = 0; q < CQ; q++) acc[i * CQ + q] += av * bv[q];
      }
    }
    if (!last) {
      for (int i = 0; i < M * CQ; i++) park[i] = acc[i];
      continue;
    }
    const int64_t kv = K / W * W;
    if (kv < K) {
      vf bv[CQ];
      for (int q = 0; q < CQ; q++) bv[q] = load_part(b[q] + kv, K - kv);
      for (int i = 0; i < M; i++) {
        const vf av = load_part(a + i * lda + kv, K - kv);
        for (int q = 0; q < CQ; q++) acc[i * CQ + q] += av * bv[q];
      }
    }
    for (int i = 0; i < M; i++)
      for (int q = 0; q < CQ; q++) {
        float* p = Cg + i * ldc + j + q;
        *p = finish(hsum(acc[i * CQ + q]), alpha, beta, p);
      }
  }
}
// K block (floats; a multiple of W) and rows of W per sub-range (a multiple of 3, the groups whose accumulators are
// parked between K blocks: 24 rows × 8 rows of A = 192 vectors, 12 KiB).
constexpr int64_t kBatchKB = 1024, kBatchRows = 24;
template <int M>
static void gemm_batch(const GemmArgs& g, const float* a, int64_t lda, float* Cg, int64_t n0, int64_t n1) {
  alignas(64) vf park[kBatchRows * M];
  const int64_t K = g.K, kv = K / W * W;
  for (int64_t s0 = n0; s0 < n1; s0 += kBatchRows) {
    const int64_t s1 = n1 - s0 < kBatchRows ? n1 : s0 + kBatchRows;
    const int64_t s3 = s0 + (s1 - s0) / 3 * 3;  // groups of 3, then a group of 1 or 2 (no idle accumulators)
    for (int64_t kb = 0; kb == 0 || kb < kv; kb += kBatchKB) {
      const bool first = kb == 0, last = kv - kb <= kBatchKB;
      const int64_t ke = last ? kv : kb + kBatchKB;
      gemm_batch_tb<M, 3>(g, a, lda, Cg, s0, s3, kb, ke, first, last, park);
      if (s1 - s3 == 2) gemm_batch_tb<M, 2>(g, a, lda, Cg, s3, s1, kb, ke, first, last, park + (s3 - s0) * M);
      if (s1 - s3 == 1) gemm_batch_tb<M, 1>(g, a, lda, Cg, s3, s1, kb, ke, first, last, park + (s3 - s0) * M);
    }
  }
}
#endif

static void gemm_small(const GemmArgs& g, int64_t n0, int64_t n1, float* ws) {
  const int64_t M = g.M, K = g.K;
  // A in place, unless it is transposed or overlaps C. A decode step's products read the whole of A in every column
  // chunk, and the copy cost M·K floats per chunk: 8 rows × 3072 is 96 KiB copied per chunk of the down
  // projection. When A and C share memory (a caller's in-place product), the copy stays: it is what keeps A's values
  // as they were before this call wrote C (callers with more than one chunk must not overlap them at all).
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(g.A), a1 = reinterpret_cast<uintptr_t>(g.A + (M - 1) * g.lda + K);
  const uintptr_t c0 = reinterpret_cast<uintptr_t>(g.C), c1 = reinterpret_cast<uintptr_t>(g.C + (M - 1) * g.ldc + g.N);
  // ...and only when every row of A starts on a vector boundary: with 5-8 rows, A is 8 of the 11 loads per 24 FMAs,
  // and rows straddling cache lines would double them (the aligned copy is then the cheaper path).
  const bool aligned = (a0 % (W * 4)) == 0 && (g.lda % W) == 0;
  const bool inplace = !g.ta && aligned && (a1 <= c0 || c1 <= a0);
  const float* A = g.A;
  int64_t lda = g.lda;
  if (!inplace) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t k = 0; k < K; k++) ws[i * K + k] = g.ta ? g.A[k * g.lda + i] : g.A[i * g.lda + k];
    A = ws;
    lda = K;
  }
#if NS_W == 16
  // One row (decode at batch 1): 8 rows of W per pass, each prefetching the same line of the next group's rows
  // (8 ahead). 8 streams in flight instead of 4 keep more of the memory's parallelism busy: on this project's AMD
  // EPYC VM a 12x768 decode step on 2 threads took 2-8 % less time than with 4 (median of steps interleaved in one
  // process, 4.4 % on average over 12 runs). Per output element the arithmetic is the same dot product as with 4
  // rows, so logits are bit-identical.
  // The prefetches go to L2 (prefetcht1, LOC = 2), not L1 as non-temporal (prefetchnta, LOC = 0, before
  // session 21): 8 rows ahead is 8·K·4 bytes, 24 KiB at K = 768 and 64 KiB for the down projection (K = 2048), and
  // with the 8 rows being read that is more than Zen's 48 KiB L1 holds; a non-temporal line evicted from L1 before
  // its load is not in L2 either and is read from memory again. Session 21, 12x768 decode products at 1 thread
  // (scripts/experiments/decode-phases.mjs, minimum over 64 steps, load 8-10): 19.6 → 29.2 GB/s (the pinned read
  // probe: 33-34 GB/s a thread); the head (4096×768) 19 → 27 GB/s.
  if (g.tb && M == 1) {
    gemm_small_tb<1, 8, 8>(g, A, lda, g.C, n0, n1);
    return;
  }
  // 5-8 rows in one pass over W (decode batches): gemm_batch above. On AVX2 (16 registers) and the portable path
  // the rows go 4 at a time.
  if (g.tb && M > 4) {
    switch (M) {
      case 5: gemm_batch<5>(g, A, lda, g.C, n0, n1); return;
      case 6: gemm_batch<6>(g, A, lda, g.C, n0, n1); return;
      case 7: gemm_batch<7>(g, A, lda, g.C, n0, n1); return;
      default: gemm_batch<8>(g, A, lda, g.C, n0, n1); return;
    }
  }
#endif
  for (int64_t i0 = 0; i0 < M; i0 += 4) {
    const float* a = A + i0 * lda;
    float* Cg = g.C + i0 * g.ldc;
    const int64_t m = M - i0 < 4 ? M - i0 : 4;
    if (g.tb) {
      switch (m) {
        case 1: gemm_small_tb<1, 4>(g, a, lda, Cg, n0, n1); break;
        case 2: gemm_small_tb<2, 4>(g, a, lda, Cg, n0, n1); break;
        case 3: gemm_small_tb<3, 4>(g, a, lda, Cg, n0, n1); break;
        default: gemm_small_tb<4, 4>(g, a, lda, Cg, n0, n1); break;
      }
    } else {
      switch (m) {
        case 1: gemm_small_nt<1>(g, a, lda, Cg, n0, n1); break;
        case 2: gemm_small_nt<2>(g, a, lda, Cg, n0, n1); break;
        case 3: gemm_small_nt<3>(g, a, lda, Cg, n0, n1); break;
        default: gemm_small_nt<4>(g, a, lda, Cg, n0, n1); break;
      }
    }
  }
}

// Single-threaded product on this thread, used inside the attention kernels. ws: gemm_ws(g) floats.
// Same algorithm choice as the parallel driver (by shape only).
static void gemm_local(const GemmArgs& g, float* ws) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K == 0 || g.alpha == 0.0f) {
    for (int64_t i = 0; i < g.M; i++) {
      float* c = g.C + i * g.ldc;
      for (int64_t j = 0; j < g.N; j++) c[j] = g.beta == 0.0f ? 0.0f : g.beta * c[j];
    }
    return;
  }
  if (g.M <= kSmallM)
    gemm_small(g, 0, g.N, ws);
  else
    gemm_block(g, 0, g.M, 0, g.N, ws);
}

// ============================================================================================================
// Int8 weights (Q8GemmArgs in kernels.h): W[n, k] = float(Q[n, k]) · S[n, k / bs], decoded on the fly. Each decoded
// weight is exactly the float32 dequantizeInt8 gives, so these products equal a float32 GEMM over the dequantized
// matrix up to summation order. What makes int8 decode faster than float32 is the bytes read: a decode step
// streams every weight once, and int8 plus a scale per 32 weights is 1.125 bytes instead of 4.
// ============================================================================================================

typedef int8_t vq8 __attribute__((vector_size(W)));
// W int8 → W floats: vpmovsxbd (sign-extending load) + vcvtdq2ps. Written with intrinsics on x86: GCC 12 turns the
// generic __builtin_convertvector from int8 lanes into scalar extracts (a 17× slower kernel, measured).
NS_INLINE vf load_q8(const int8_t* p) {
#if NS_ISA_ENUM == 2
  return (vf)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#elif NS_ISA_ENUM == 1
  return (vf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#else
  vq8 b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(__builtin_convertvector(b, vi), vf);
#endif
}

// ---- small M (decode): int8 × int8, as llama.cpp's q8_0 · q8_0 ----
// Dequantizing each weight to float32 and multiplying by float32 activations (the earlier kernel here) costs four
// vector instructions per 16 weights and left the 2-core decode compute-bound at about half the memory bound.
// Instead each row of A is quantized once per product like the weights (q8_quant_act: per block of bs, scale
// max|x| / 127, round to nearest even), and every output element is, for row i of A and row n of W:
//
//   isum_b = Σ_{k in block b} Q[n, k] · Aq[i, k]            exact int32
//   d_b    = f32(S[n, b] · As[i, b])                         one float32 rounding
//   acc_j  = Σ_{b ≡ j mod 8, b ascending} f64(isum_b) · f64(d_b)   eight float64 sums, j = 0..7
//   C[i, n] = f32(((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)))   (+ beta · C)
//
// The product f64(isum_b)·f64(d_b) is exact (|isum_b| < 2^22 for blocks up to 256 and d_b has 24 bits), so an FMA
// and a multiply-then-add give the same sum (-ffp-contract=fast cannot change the bits), and integer sums are
// exact in any order. So every ISA path, and every grouping of rows or threads, gives the same bits: the AVX-512
// VNNI kernel below and the plain loop (AVX2, portable, AVX-512 without VNNI) compute the same numbers.

// One activation row: x[K] → q[K], s[K / bs], c[K / bs] = 128·Σ_block q (the VNNI kernel's offset correction).
// A block holding an infinity or NaN gets scale NaN (so its products are NaN, as the float32 path would give)
// and q = 0; an all-zero block (or one too small for 127 / max|x| to be finite) gets q = 0.
static void q8_quant_act(const float* x, int64_t K, int64_t bs, int8_t* q, float* s, int32_t* c) {
  const int64_t nb = K / bs;
  for (int64_t b = 0; b < nb; b++) {
    const float* xb = x + b * bs;
    int8_t* qb = q + b * bs;
    vf mx = vf{};
    vi bad = vi{};
    for (int64_t k = 0; k < bs; k += W) {
      const vf v = vabs(loadu(xb + k));
      bad |= ~(v <= bcast(3.40282347e38f));  // NaN and ±inf
      mx = vmax(mx, v);
    }
    bool nonfinite = false;
    for (int l = 0; l < W; l++) nonfinite |= bad[l] != 0;
    const float amax = hmax(mx);
    const float inv = 127.0f / amax;
    if (nonfinite || amax == 0.0f || !(inv <= 3.40282347e38f)) {
      std::memset(qb, 0, static_cast<size_t>(bs));
      s[b] = nonfinite ? __builtin_nanf("") : amax / 127.0f;
      c[b] = 0;
      continue;
    }
    s[b] = amax / 127.0f;
    vi sum = vi{};
    for (int64_t k = 0; k < bs; k += W) {
      const vf v = loadu(xb + k) * inv;  // |v| ≤ 127·(1 + 2^-23): rounds into [-127, 127]
      // round half to even (the default rounding mode), the same on every path
#if NS_ISA_ENUM == 2
      vi r = (vi)_mm512_cvtps_epi32((__m512)v);
#elif NS_ISA_ENUM == 1
      vi r = (vi)_mm256_cvtps_epi32((__m256)v);
#elif defined(__SSE2__)
      vi r = (vi)_mm_cvtps_epi32((__m128)v);
#else
      vi r;
      for (int l = 0; l < W; l++) r[l] = static_cast<int32_t>(std::nearbyint(v[l]));
#endif
      r = r > 127 ? vi{} + 127 : r;
      r = r < -127 ? vi{} - 127 : r;
      // a vector narrowing store (vpmovdb on AVX-512) and a vector sum, not element by element (a serial phase of
      // the decode step; integer sums are exact in any order)
      const vq8 n8 = __builtin_convertvector(r, vq8);
      std::memcpy(qb + k, &n8, sizeof n8);
      sum += r;
    }
    int32_t total = 0;
    for (int l = 0; l < W; l++) total += sum[l];
    c[b] = 128 * total;
  }
}

// Row n of W as row-major codes and scales: in place for kQ8Rows and the row-major tail of kQ8R16, else gathered
// from its group into qbuf[K] / sbuf[K / bs] (the slower paths' way of reading the interleaved layout).
NS_INLINE bool q8_interleaved_row(const Q8GemmArgs& g, int64_t n) { return g.layout == kQ8R16 && n < (g.N & ~int64_t{15}); }
static void q8_row(const Q8GemmArgs& g, int64_t n, int8_t* qbuf, float* sbuf, const int8_t** q, const float** s) {
  const int64_t K = g.K, nb = K / g.bs;
  if (!q8_interleaved_row(g, n)) {
    *q = g.Q + n * K;
    *s = g.S + n * nb;
    return;
  }
  const int8_t* gq = g.Q + (n & ~int64_t{15}) * K + 4 * (n & 15);
  const float* gs = g.S + (n & ~int64_t{15}) * nb + (n & 15);
  for (int64_t t = 0; t < K / 4; t++) std::memcpy(qbuf + 4 * t, gq + 64 * t, 4);
  for (int64_t b = 0; b < nb; b++) sbuf[b] = gs[16 * b];
  *q = qbuf;
  *s = sbuf;
}
// Stack scratch for q8_row: K codes and K / 16 scales (a few KiB at most; only for the interleaved layout).
#define NS_Q8_ROW_SCRATCH(g, qbuf, sbuf)                                                                            \
  int8_t* qbuf = (g).layout == kQ8R16 ? static_cast<int8_t*>(__builtin_alloca(static_cast<size_t>((g).K + (g).K / 4 + 64))) : nullptr; \
  float* sbuf = qbuf == nullptr ? nullptr : reinterpret_cast<float*>(qbuf + (((g).K + 63) & ~int64_t{63}))

// The eight float64 sums combined in the fixed order above.
NS_INLINE float q8_combine(const double* a) { return static_cast<float>(((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))); }
NS_INLINE void q8_store(const Q8GemmArgs& g, int64_t i, int64_t n, float v) {
  float* p = g.C + i * g.ldc + n;
  *p = g.beta == 0.0f ? v : v + g.beta * *p;  // beta is 0 or 1: exact either way
}

// The definition as a loop: any block size, any M. (GCC vectorizes the integer dot product.)
static void q8q8_plain(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
  const int64_t K = g.K, bs = g.bs, nb = K / bs;
  NS_Q8_ROW_SCRATCH(g, qbuf, sbuf);
  for (int64_t n = n0; n < n1; n++) {
    const int8_t* wq;
    const float* ws;
    q8_row(g, n, qbuf, sbuf, &wq, &ws);
    for (int64_t i = 0; i < g.M; i++) {
      const int8_t* xq = g.Aq + i * K;
      const float* xs = g.As + i * nb;
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int64_t k = b * bs; k < (b + 1) * bs; k++) isum += static_cast<int32_t>(wq[k]) * static_cast<int32_t>(xq[k]);
        const float d = ws[b] * xs[b];
        acc[b & 7] += static_cast<double>(isum) * static_cast<double>(d);
      }
      q8_store(g, i, n, q8_combine(acc));
    }
  }
}

#if NS_ISA_ENUM == 2
// AVX-512 VNNI, blocks of 32: vpdpbusd multiplies unsigned by signed bytes, so W's bytes go in offset by 128
// (w ^ 0x80 = w + 128) against A's signed bytes, and the block's 128·Σ Aq (Ac) is subtracted after: exact.
// A row of W is read 256 bytes (8 blocks) at a time as 4 zmm; each dpbusd leaves 8 int32 lanes per block (4 per
// 128-bit lane), reduced to one per block in block order by in-lane unpacks (cheap on Zen 4) and two cross-lane
// permutes; those 8 sums meet 8 scales as float64 in lane b mod 8, which is the definition's acc_j. CQ rows of W
// per pass (more streams in flight), each prefetching the same line of the next group's rows (NS_GEMV_PF).
#define NS_VNNI_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c,avx512vnni")))
// 4 vectors of 16 int32 (each: 8 lanes of block 2v, 8 of block 2v + 1) → the 8 block sums in block order.
NS_INLINE NS_VNNI_TARGET __m256i q8_blocksums(__m512i d0, __m512i d1, __m512i d2, __m512i d3, __m512i pi, __m512i qi) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(d0, d1), _mm512_unpackhi_epi32(d0, d1));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(d2, d3), _mm512_unpackhi_epi32(d2, d3));
  // u's 128-bit lane L holds [d0.L, d1.L, d2.L, d3.L] (each the sum of that vector's lane L); block 2v + L / 2
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
  return _mm256_add_epi32(_mm512_castsi512_si256(_mm512_permutexvar_epi32(pi, u)), _mm512_castsi512_si256(_mm512_permutexvar_epi32(qi, u)));
}
template <int M, int CQ>
NS_VNNI_TARGET static void q8q8_vnni(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
  const int64_t K = g.K, nb = K / 32;
  const __m512i pi = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i qi = _mm512_setr_epi32(4, 12, 5, 13, 6, 14, 7, 15, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t j = n0; j < n1; j += CQ) {
    const int jn = n1 - j < CQ ? static_cast<int>(n1 - j) : CQ;
    const int8_t* q[CQ];
    const float* s[CQ];
    for (int c = 0; c < CQ; c++) {
      const int64_t row = j + (c < jn ? c : 0);
      q[c] = g.Q + row * K;
      s[c] = g.S + row * nb;
    }
    __m512d acc[M][CQ];
    for (int i = 0; i < M; i++)
      for (int c = 0; c < CQ; c++) acc[i][c] = _mm512_setzero_pd();
    // one chunk of 8 blocks (FULL) or the short last one (masked loads, zeros past the end: an all-zero block
    // adds +0, no change); a template so that the full chunks' loop has no test and GCC unrolls the rows of W
    auto chunk = [&](int64_t b0, auto fullc) {
      constexpr bool full = decltype(fullc)::value;
      const int64_t k0 = b0 * 32;
      const int nbk = full ? 8 : static_cast<int>(nb - b0);
      const __mmask8 bm = static_cast<__mmask8>((1u << nbk) - 1u);
      __mmask64 km[4];
      for (int v = 0; v < 4; v++) {
        const int bytes = nbk * 32 - v * 64;
        km[v] = bytes >= 64 ? ~__mmask64{0} : (bytes <= 0 ? __mmask64{0} : ((__mmask64{1} << bytes) - 1));
      }
#pragma GCC unroll 8
      for (int c = 0; c < CQ; c++) {
#ifdef NS_GEMV_PF
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) __builtin_prefetch(q[c] + k0 + v * 64 + CQ * K, 0, 0);
        if ((b0 & 15) == 0) __builtin_prefetch(s[c] + b0 + CQ * nb, 0, 0);
#endif
        __m512i wv[4];
        __m256 ws;
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
          wv[v] = _mm512_xor_si512(full ? _mm512_loadu_si512(q[c] + k0 + v * 64) : _mm512_maskz_loadu_epi8(km[v], q[c] + k0 + v * 64), off);
        ws = full ? _mm256_loadu_ps(s[c] + b0) : _mm256_maskz_loadu_ps(bm, s[c] + b0);
#pragma GCC unroll 8
        for (int i = 0; i < M; i++) {
          const int8_t* xq = g.Aq + i * K + k0;
          __m512i d[4];
#pragma GCC unroll 4
          for (int v = 0; v < 4; v++) {
            const __m512i xv = full ? _mm512_loadu_si512(xq + v * 64) : _mm512_maskz_loadu_epi8(km[v], xq + v * 64);
            d[v] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[v], xv);
          }
          const __m256 xs = full ? _mm256_loadu_ps(g.As + i * nb + b0) : _mm256_maskz_loadu_ps(bm, g.As + i * nb + b0);
          const __m256i xc = full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.Ac + i * nb + b0)) : _mm256_maskz_loadu_epi32(bm, g.Ac + i * nb + b0);
          const __m256i isum = _mm256_sub_epi32(q8_blocksums(d[0], d[1], d[2], d[3], pi, qi), xc);
          acc[i][c] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(isum), _mm512_cvtps_pd(_mm256_mul_ps(ws, xs)), acc[i][c]);
        }
      }
    };
    int64_t b0 = 0;
    for (; b0 + 8 <= nb; b0 += 8) chunk(b0, std::true_type{});
    if (b0 < nb) chunk(b0, std::false_type{});
    for (int i = 0; i < M; i++)
      for (int c = 0; c < jn; c++) {
        alignas(64) double a8[8];
        _mm512_store_pd(a8, acc[i][c]);
        q8_store(g, i, j + c, q8_combine(a8));
      }
  }
}
#endif

#if NS_ISA_ENUM == 1
// AVX2, blocks of 32: a block is one ymm; |w| (unsigned) · sign(x, w) by vpmaddubsw (pairs ≤ 2·128·127, no
// saturation) and vpmaddwd with ones give its 8 int32 partial sums; 8 blocks' sums are reduced by horizontal adds
// to the 8 block sums in block order, which meet the scales as float64 in lanes b mod 8 (two ymm of 4): the
// definition's acc_j. A short last chunk of blocks goes through the plain loop's arithmetic, lane by lane.
static void q8q8_avx2(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
  const int64_t K = g.K, nb = K / 32, nfull = nb / 8 * 8;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t n = n0; n < n1; n++) {
    const int8_t* wq = g.Q + n * K;
    const float* ws = g.S + n * nb;
    for (int64_t i = 0; i < g.M; i++) {
      const int8_t* xq = g.Aq + i * K;
      const float* xs = g.As + i * nb;
      __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
      for (int64_t b0 = 0; b0 < nfull; b0 += 8) {
        __m256i p[8];
        for (int v = 0; v < 8; v++) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + (b0 + v) * 32));
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (b0 + v) * 32));
          p[v] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)), ones);
        }
        const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
        // h0 = [b0..b3 of the lower 128-bit halves | b0..b3 of the upper], h1 likewise for b4..b7
        const __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
        const __m256 d = _mm256_mul_ps(_mm256_loadu_ps(ws + b0), _mm256_loadu_ps(xs + b0));
        lo = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(isum)), _mm256_cvtps_pd(_mm256_castps256_ps128(d)), lo);
        hi = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(isum, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)), hi);
      }
      double acc[8];
      _mm256_storeu_pd(acc, lo);
      _mm256_storeu_pd(acc + 4, hi);
      for (int64_t b = nfull; b < nb; b++) {
        int32_t isum = 0;
        for (int64_t k = b * 32; k < (b + 1) * 32; k++) isum += static_cast<int32_t>(wq[k]) * static_cast<int32_t>(xq[k]);
        const float d = ws[b] * xs[b];
        acc[b & 7] += static_cast<double>(isum) * static_cast<double>(d);
      }
      q8_store(g, i, n, q8_combine(acc));
    }
  }
}
#endif

// Row-major rows [n0, n1) of W (kQ8Rows, or the row-major tail of kQ8R16).
static void q8_gemm_rows(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
#if NS_ISA_ENUM == 2
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (vnni && g.bs == 32) {
    // 8 rows of W per pass at one row of A (8 streams in flight, as the float32 GEMV); fewer as A's rows grow,
    // so that the M·CQ float64 accumulators and A's M·4 vectors stay in the 32 zmm registers
    switch (g.M) {
      case 1: q8q8_vnni<1, 8>(g, n0, n1); return;
      case 2: q8q8_vnni<2, 4>(g, n0, n1); return;
      case 3: q8q8_vnni<3, 2>(g, n0, n1); return;
      case 4: q8q8_vnni<4, 1>(g, n0, n1); return;
      case 8: q8q8_vnni<8, 1>(g, n0, n1); return;
      default:
        for (int64_t i0 = 0; i0 < g.M; i0 += 4) {
          Q8GemmArgs h = g;
          h.M = g.M - i0 < 4 ? g.M - i0 : 4;
          h.Aq = g.Aq + i0 * g.K, h.As = g.As + i0 * (g.K / 32), h.Ac = g.Ac + i0 * (g.K / 32), h.C = g.C + i0 * g.ldc;
          switch (h.M) {
            case 1: q8q8_vnni<1, 8>(h, n0, n1); break;
            case 2: q8q8_vnni<2, 4>(h, n0, n1); break;
            case 3: q8q8_vnni<3, 2>(h, n0, n1); break;
            default: q8q8_vnni<4, 1>(h, n0, n1); break;
          }
        }
        return;
    }
  }
#endif
#if NS_ISA_ENUM == 1
  if (g.bs == 32) {
    q8q8_avx2(g, n0, n1);
    return;
  }
#endif
  q8q8_plain(g, n0, n1);
}

// Rows [n0, n1) (n1 ≤ N16) of a kQ8R16 matrix one at a time: each gathered to row-major, then the row kernels.
static void q8_gemm_r16_rows(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
  NS_Q8_ROW_SCRATCH(g, qbuf, sbuf);
  for (int64_t n = n0; n < n1; n++) {
    Q8GemmArgs h = g;
    q8_row(g, n, qbuf, sbuf, &h.Q, &h.S);
    h.N = 1;
    h.layout = kQ8Rows;
    h.C = g.C + n;
    q8_gemm_rows(h, 0, 1);
  }
}

#if NS_ISA_ENUM == 2
// AVX-512 VNNI over kQ8R16, any block size (a multiple of 16; nano's 16 too): a 64-byte vector of W holds the same
// 4 codes of 16 rows, so one vpdpbusd of it (offset to unsigned, w ^ 0x80) against the broadcast dword of A's 4
// codes adds those 4 products into each row's lane: after a block's bs / 4 vectors the 16 lanes are the 16 rows'
// block sums (minus Ac, the offset's 128·Σ Aq), with no horizontal reduction. They meet the 16 rows' scales (one
// vector, S · As in float32) as float64 in two halves of 8, accumulated into acc[b mod 8] (16 zmm): the definition's
// acc_j per row, ascending b; the fixed tree is then vertical adds over the 16 rows. Groups [ga, gb) (row indices,
// multiples of 16); for M > 1 each row of A runs over the group in turn (the group's 16·K bytes stay in L1/L2).
// VPB: vectors of W per block (bs / 4) as a constant for the common block sizes (the block's loop unrolled), 0 for
// any other (read from g.bs).
template <int VPB>
NS_VNNI_TARGET static void q8q8_vnni16_t(const Q8GemmArgs& g, int64_t ga, int64_t gb) {
  const int64_t K = g.K, bs = VPB > 0 ? 4 * VPB : g.bs, nb = K / bs, vpb = VPB > 0 ? VPB : bs / 4, pf = g.pf;
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t n = ga; n < gb; n += 16) {
    const int8_t* q = g.Q + n * K;
    const float* s = g.S + n * nb;
    for (int64_t i = 0; i < g.M; i++) {
      const int8_t* xq = g.Aq + i * K;
      const float* xs = g.As + i * nb;
      const int32_t* xc = g.Ac + i * nb;
      __m512d acc[8][2];
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++) acc[j][0] = acc[j][1] = _mm512_setzero_pd();
      auto block = [&](int64_t b, int j) {
        const int8_t* qb = q + b * bs * 16;
        const int8_t* xb = xq + b * bs;
        // Software prefetch only as g.pf says (the block's bs / 4 lines, |pf| bytes ahead in the chunk's one stream;
        // Engine::decode_layers turns it on when the weights fit the last-level cache: from the L3, prefetcht1 16 KiB
        // ahead made the 12x768 step ~10 % faster, docs/LIMITS.md "Session 27: int8 decode on the new host").
        // From DRAM none (NS_GEMV_PF does not apply): a group is one sequential stream of 16·K bytes, and on the weights'
        // 2 MiB pages (addon.cc) the hardware prefetchers alone stream it at a one-stream read's rate. The prefetch
        // of the next group that was here (prefetchnta, 16·K ahead) only took load slots: 1 thread, 85 MB of r16
        // weights, load 6 (scripts/experiments/q8stream.cc, HUGE=1): 23.6-25.6 GB/s with it, 28.7-30.5 without,
        // a read of the same bytes 30-34; prefetcht1 was worse (22). On 4 KiB pages: 13-17 with, 14-19 without.
        if (pf > 0) {
#pragma GCC unroll 16
          for (int64_t l = 0; l < vpb; l++) _mm_prefetch(reinterpret_cast<const char*>(qb + pf + 64 * l), _MM_HINT_T0);
        } else if (pf < 0) {
#pragma GCC unroll 16
          for (int64_t l = 0; l < vpb; l++) _mm_prefetch(reinterpret_cast<const char*>(qb - pf + 64 * l), _MM_HINT_T1);
        }
        // two chains (even and odd vectors) so that a block's dpbusd latencies overlap
        __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int64_t v = 0; v < vpb; v += 2) {
          int32_t x0, x1;
          std::memcpy(&x0, xb + 4 * v, 4);
          std::memcpy(&x1, xb + 4 * v + 4, 4);
          d0 = _mm512_dpbusd_epi32(d0, _mm512_xor_si512(_mm512_loadu_si512(qb + 64 * v), off), _mm512_set1_epi32(x0));
          d1 = _mm512_dpbusd_epi32(d1, _mm512_xor_si512(_mm512_loadu_si512(qb + 64 * v + 64), off), _mm512_set1_epi32(x1));
        }
        const __m512i isum = _mm512_sub_epi32(_mm512_add_epi32(d0, d1), _mm512_set1_epi32(xc[b]));
        const __m512 d = _mm512_mul_ps(_mm512_loadu_ps(s + 16 * b), _mm512_set1_ps(xs[b]));
        acc[j][0] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(isum)), _mm512_cvtps_pd(_mm512_castps512_ps256(d)), acc[j][0]);
        acc[j][1] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(isum, 1)), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1))), acc[j][1]);
      };
      int64_t b0 = 0;
      for (; b0 + 8 <= nb; b0 += 8) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) block(b0 + j, j);
      }
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++)
        if (b0 + j < nb) block(b0 + j, j);
      float* c = g.C + i * g.ldc + n;
#pragma GCC unroll 2
      for (int h = 0; h < 2; h++) {
        const __m512d t = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(acc[0][h], acc[4][h]), _mm512_add_pd(acc[2][h], acc[6][h])),
                                        _mm512_add_pd(_mm512_add_pd(acc[1][h], acc[5][h]), _mm512_add_pd(acc[3][h], acc[7][h])));
        __m256 v = _mm512_cvtpd_ps(t);
        if (g.beta != 0.0f) v = _mm256_add_ps(v, _mm256_loadu_ps(c + 8 * h));
        _mm256_storeu_ps(c + 8 * h, v);
      }
    }
  }
}
static void q8q8_vnni16(const Q8GemmArgs& g, int64_t ga, int64_t gb) {
  switch (g.bs) {
    case 16: q8q8_vnni16_t<4>(g, ga, gb); return;
    case 32: q8q8_vnni16_t<8>(g, ga, gb); return;
    case 64: q8q8_vnni16_t<16>(g, ga, gb); return;
    default: q8q8_vnni16_t<0>(g, ga, gb); return;
  }
}
#endif

// Rows [n0, n1) of W in kQ8R16: whole groups by the VNNI group kernel where there is one; elsewhere (AVX2, portable,
// AVX-512 without VNNI, a range that starts or ends inside a group) each row gathered to row-major and run through
// the row kernels above, one row at a time (C + n and N = 1: the same arithmetic per element).
static void q8_gemm_r16(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
  const int64_t N16 = g.N & ~int64_t{15};
#if NS_ISA_ENUM == 2
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (vnni) {
    const int64_t ga = std::min((n0 + 15) & ~int64_t{15}, N16), gb = std::min(n1, N16) & ~int64_t{15};
    if (ga < gb) {
      if (n0 < ga) q8_gemm_r16_rows(g, n0, ga);
      q8q8_vnni16(g, ga, gb);
      if (gb < n1) q8_gemm_r16(g, gb, n1);
      return;
    }
  }
#endif
  q8_gemm_r16_rows(g, n0, std::min(n1, N16));
  if (n1 > N16) q8_gemm_rows(g, std::max(n0, N16), n1);
}

static void q8_gemm_small(const Q8GemmArgs& g, int64_t n0, int64_t n1) {
  if (g.layout == kQ8R16)
    q8_gemm_r16(g, n0, n1);
  else
    q8_gemm_rows(g, n0, n1);
}

#if NS_ISA_ENUM == 2
// Rows [n, n + 16) of a kQ8R16 matrix (one whole group) decoded to dst[(r)·K + k]: 4 vectors of the group (16 codes
// of each row) transposed as 4×4 dwords within each 128-bit lane by unpacks, so that each 128-bit lane then holds 16
// consecutive codes of one row: sign-extended, converted and scaled (the same float32 product per weight as the
// row-major decode), stored as one zmm.
static void q8_decode_group16(const Q8GemmArgs& g, int64_t n, float* dst) {
  const int64_t K = g.K, bs = g.bs, nb = K / bs;
  const int8_t* q = g.Q + n * K;
  const float* s = g.S + n * nb;
  for (int64_t t = 0; t < K / 4; t += 4) {
    const __m512i A = _mm512_loadu_si512(q + 64 * t), B = _mm512_loadu_si512(q + 64 * t + 64);
    const __m512i Cv = _mm512_loadu_si512(q + 64 * t + 128), D = _mm512_loadu_si512(q + 64 * t + 192);
    const __m512i u0 = _mm512_unpacklo_epi32(A, B), u1 = _mm512_unpackhi_epi32(A, B);
    const __m512i u2 = _mm512_unpacklo_epi32(Cv, D), u3 = _mm512_unpackhi_epi32(Cv, D);
    // rj's 128-bit lane L: row 4L + j's codes k = 4t..4t+15 (one block: bs is a multiple of 16)
    const __m512i r[4] = {_mm512_unpacklo_epi64(u0, u2), _mm512_unpackhi_epi64(u0, u2), _mm512_unpacklo_epi64(u1, u3), _mm512_unpackhi_epi64(u1, u3)};
    const float* sb = s + 16 * (4 * t / bs);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      const __m128i l0 = _mm512_castsi512_si128(r[j]), l1 = _mm512_extracti32x4_epi32(r[j], 1);
      const __m128i l2 = _mm512_extracti32x4_epi32(r[j], 2), l3 = _mm512_extracti32x4_epi32(r[j], 3);
      const __m128i ls[4] = {l0, l1, l2, l3};
#pragma GCC unroll 4
      for (int L = 0; L < 4; L++) {
        const int row = 4 * L + j;
        const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ls[L]));
        _mm512_storeu_ps(dst + row * K + 4 * t, _mm512_mul_ps(f, _mm512_set1_ps(sb[row])));
      }
    }
  }
}
#endif

static void q8_decode_rows(const Q8GemmArgs& g, int64_t n0, int64_t n1, float* dst) {
  const int64_t K = g.K, bs = g.bs, nb = K / bs;
#if NS_ISA_ENUM == 2
  if (g.layout == kQ8R16 && (n0 & 15) == 0) {
    const int64_t gb = std::min(n1, g.N & ~int64_t{15}) & ~int64_t{15};
    for (; n0 < gb; n0 += 16, dst += 16 * K) q8_decode_group16(g, n0, dst);
  }
#endif
  NS_Q8_ROW_SCRATCH(g, qbuf, sbuf);
  for (int64_t n = n0; n < n1; n++) {
    const int8_t* q;
    const float* s;
    q8_row(g, n, qbuf, sbuf, &q, &s);
    float* d = dst + (n - n0) * K;
    for (int64_t b = 0; b < nb; b++) {
      const vf sv = bcast(s[b]);
      for (int64_t k = b * bs; k < (b + 1) * bs; k += W) storeu(d + k, load_q8(q + k) * sv);
    }
  }
}

// ============================================================================================================
// Element-wise
// ============================================================================================================

template <class F>
NS_INLINE void map1(const float* x, float* out, int64_t n, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) storeu(out + i, f(loadu(x + i)));
  if (i < n) store_part(out + i, f(load_part(x + i, n - i)), n - i);
}
template <class F>
NS_INLINE void map2(const float* a, const float* b, float* out, int64_t n, F f) {
  int64_t i = 0;
  for (; i + W <= n; i += W) storeu(out + i, f(loadu(a + i), loadu(b + i)));
  if (i < n) store_part(out + i, f(load_part(a + i, n - i), load_part(b + i, n - i)), n - i);
}

static void k_add(const float* a, const float* b, float* out, int64_t n) {
  map2(a, b, out, n, [](vf x, vf y) { return x + y; });
}
static void k_axpy(float alpha, const float* x, float* y, int64_t n) {
  map2(x, y, y, n, [alpha](vf xv, vf yv) { return yv + alpha * xv; });
}
static void k_scale(float* x, float alpha, int64_t n) {
  map1(x, x, n, [alpha](vf v) { return v * alpha; });
}

// Σ x² over one chunk, accumulated in double (the driver combines chunk sums in order).
static double k_sumsq(const float* x, int64_t n) {
  // Lanes convert to double in two halves; 4 accumulators hide the add latency.
  typedef double vd __attribute__((vector_size(W * 4)));
  typedef float vh __attribute__((vector_size(W * 2)));
  vd acc0 = vd{}, acc1 = vd{};
  int64_t i = 0;
  for (; i < n; i += W) {
    const vf v = i + W <= n ? loadu(x + i) : load_part(x + i, n - i);
    vh lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    const vd dl = __builtin_convertvector(lo, vd), dh = __builtin_convertvector(hi, vd);
    acc0 += dl * dl;
    acc1 += dh * dh;
  }
  acc0 += acc1;
  double t[W / 2];
  std::memcpy(t, &acc0, sizeof t);
  for (int w = W / 4; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) t[j] += t[j + w];
  return t[0];
}

static bool k_allfinite(const float* x, int64_t n) {
  // An element is finite iff its exponent bits are not all ones.
  vu bad = vu{};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const vu u = (vu)loadu(x + i);
    bad |= (vu)((u & 0x7f800000u) == 0x7f800000u);
    if ((i & 4095) == 0) {
      for (int l = 0; l < W; l++)
        if (bad[l]) return false;
    }
  }
  if (i < n) {
    const vu u = (vu)load_part(x + i, n - i);
    bad |= (vu)((u & 0x7f800000u) == 0x7f800000u);
  }
  for (int l = 0; l < W; l++)
    if (bad[l]) return false;
  return true;
}

// out = silu(gate)·up, silu(x) = x·sigmoid(x).
static void k_swiglu_fwd(const float* gate, const float* up, float* out, int64_t n) {
  map2(gate, up, out, n, [](vf g, vf u) { return g * vsigmoid(g) * u; });
}
// dgate = dout·up·silu'(gate), silu'(x) = σ(x)·(1 + x·(1 − σ(x))); dup = dout·silu(gate).
static void k_swiglu_bwd(const float* dout, const float* gate, const float* up, float* dgate, float* dup, int64_t n) {
  int64_t i = 0;
  auto body = [](vf d, vf g, vf u, vf& dg, vf& du) {
    const vf s = vsigmoid(g);
    du = d * (g * s);
    dg = d * u * (s * (1.0f + g * (1.0f - s)));
  };
  for (; i + W <= n; i += W) {
    vf dg, du;
    body(loadu(dout + i), loadu(gate + i), loadu(up + i), dg, du);
    storeu(dgate + i, dg);
    storeu(dup + i, du);
  }
  if (i < n) {
    const int64_t r = n - i;
    vf dg, du;
    body(load_part(dout + i, r), load_part(gate + i, r), load_part(up + i, r), dg, du);
    store_part(dgate + i, dg, r);
    store_part(dup + i, du, r);
  }
}

// AdamW as torch.optim.AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
// p ← p − (lr / bc1) · m / (√v / √bc2 + eps), with g = grad·gradScale.
static void k_adamw(float* p, const float* gr, float* m, float* v, int64_t n, const AdamArgs& a) {
  const float decay = 1.0f - a.lr * a.wd;
  const float step = a.lr / a.bc1;
  const float isb2 = 1.0f / std::sqrt(a.bc2);
  const float b1 = a.beta1, b2 = a.beta2, c1 = 1.0f - a.beta1, c2 = 1.0f - a.beta2, gs = a.gradScale, eps = a.eps;
  auto body = [&](vf pv, vf gv, vf mv, vf vv, vf& po, vf& mo, vf& vo) {
    gv = gv * gs;
    mo = b1 * mv + c1 * gv;
    vo = b2 * vv + c2 * (gv * gv);
    po = pv * decay - step * (mo / (vsqrt(vo) * isb2 + eps));
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    vf po, mo, vo;
    body(loadu(p + i), loadu(gr + i), loadu(m + i), loadu(v + i), po, mo, vo);
    storeu(p + i, po);
    storeu(m + i, mo);
    storeu(v + i, vo);
  }
  if (i < n) {
    const int64_t r = n - i;
    vf po, mo, vo;
    body(load_part(p + i, r), load_part(gr + i, r), load_part(m + i, r), load_part(v + i, r), po, mo, vo);
    store_part(p + i, po, r);
    store_part(m + i, mo, r);
    store_part(v + i, vo, r);
  }
}

// ---- fp16 ----
// Software conversions (bit-exact IEEE, round to nearest even; NaN keeps its top payload bits and is quieted, as
// the F16C instructions do), used by the portable path and for tails.
static inline uint16_t f2h(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65536 (and inf): inf
  if (ax < 0x38800000u) {
    // Subnormal half or zero: let the FPU round by adding a magic number whose ulp is the half subnormal step.
    float a;
    std::memcpy(&a, &ax, 4);
    const uint32_t magic_u = 126u << 23;
    float magic;
    std::memcpy(&magic, &magic_u, 4);
    a += magic;
    uint32_t au;
    std::memcpy(&au, &a, 4);
    return static_cast<uint16_t>(sign | (au - magic_u));
  }
  const uint32_t odd = (ax >> 13) & 1u;
  ax += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + odd;
  return static_cast<uint16_t>(sign | (ax >> 13));  // may carry into inf: 65520 and up round to inf
}
static inline float h2f(uint16_t h) {
  const uint32_t magic_u = 113u << 23;
  const uint32_t shifted_exp = 0x7c00u << 13;
  uint32_t o = (static_cast<uint32_t>(h) & 0x7fffu) << 13;
  const uint32_t e = shifted_exp & o;
  o += static_cast<uint32_t>(127 - 15) << 23;
  float f;
  if (e == shifted_exp) {
    o += static_cast<uint32_t>(128 - 16) << 23;
    if (o & 0x7fffffu) o |= 0x400000u;  // quiet a signalling NaN, as vcvtph2ps does
    std::memcpy(&f, &o, 4);
  } else if (e == 0) {
    o += 1u << 23;
    std::memcpy(&f, &o, 4);
    float magic;
    std::memcpy(&magic, &magic_u, 4);
    f -= magic;
  } else {
    std::memcpy(&f, &o, 4);
  }
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u |= (static_cast<uint32_t>(h) & 0x8000u) << 16;
  std::memcpy(&f, &u, 4);
  return f;
}

static void k_to_fp16(const float* x, uint16_t* out, int64_t n) {
  int64_t i = 0;
#if NS_F16C && NS_ISA_ENUM == 2
  for (; i + 16 <= n; i += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#elif NS_F16C
  for (; i + 8 <= n; i += 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
  for (; i < n; i++) out[i] = f2h(x[i]);
}
static void k_from_fp16(const uint16_t* x, float* out, int64_t n) {
  int64_t i = 0;
#if NS_F16C && NS_ISA_ENUM == 2
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
#elif NS_F16C
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
#endif
  for (; i < n; i++) out[i] = h2f(x[i]);
}

// ---- int8, block-wise symmetric ----
// scale = f32(max|x| / 127) (0 for an all-zero block); q = round(x / scale) (half away from zero, the division in
// double as the reference does), clamped to ±127.
static void k_q8(const float* x, int8_t* q, float* scales, int64_t n, int64_t bs) {
  for (int64_t b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
    const int64_t len = n - b0 < bs ? n - b0 : bs;
    const float* xb = x + b0;
    vf mx = vf{};
    int64_t i = 0;
    for (; i + W <= len; i += W) mx = vmax(mx, vabs(loadu(xb + i)));
    if (i < len) mx = vmax(mx, vabs(load_part(xb + i, len - i)));
    const float amax = hmax(mx);
    const float scale = static_cast<float>(static_cast<double>(amax) / 127.0);
    scales[bi] = scale;
    int8_t* qb = q + b0;
    if (scale == 0.0f) {
      std::memset(qb, 0, static_cast<size_t>(len));
      continue;
    }
    for (int64_t j = 0; j < len; j++) {
      double r = std::round(static_cast<double>(xb[j]) / static_cast<double>(scale));
      r = r > 127.0 ? 127.0 : (r < -127.0 ? -127.0 : r);
      qb[j] = static_cast<int8_t>(r);
    }
  }
}
static void k_dq8(const int8_t* q, const float* scales, float* out, int64_t n, int64_t bs) {
  for (int64_t b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
    const int64_t len = n - b0 < bs ? n - b0 : bs;
    const float s = scales[bi];
    for (int64_t j = 0; j < len; j++) out[b0 + j] = static_cast<float>(q[b0 + j]) * s;
  }
}

// ============================================================================================================
// Rows: embedding, RMSNorm, RoPE, cross-entropy
// ============================================================================================================

static void k_embed_fwd(const float* table, const int32_t* ids, float* out, int64_t r0, int64_t r1, int64_t C) {
  for (int64_t r = r0; r < r1; r++) std::memcpy(out + r * C, table + static_cast<int64_t>(ids[r]) * C, static_cast<size_t>(C) * 4);
}
static void k_embed_bwd(const float* dout, const int32_t* ids, float* dtable, int64_t N, int64_t C, int64_t c0, int64_t c1) {
  for (int64_t n = 0; n < N; n++) k_add(dtable + static_cast<int64_t>(ids[n]) * C + c0, dout + n * C + c0, dtable + static_cast<int64_t>(ids[n]) * C + c0, c1 - c0);
}

NS_INLINE float row_sumsq(const float* x, int64_t C) {
  vf a0 = vf{}, a1 = vf{};
  int64_t i = 0;
  for (; i + 2 * W <= C; i += 2 * W) {
    const vf u = loadu(x + i), w = loadu(x + i + W);
    a0 += u * u;
    a1 += w * w;
  }
  for (; i < C; i += W) {
    const vf u = i + W <= C ? loadu(x + i) : load_part(x + i, C - i);
    a0 += u * u;
  }
  return hsum(a0 + a1);
}

// out = x·rstd·w, rstd = 1/√(mean(x²) + eps).
static void k_rms_fwd(const float* x, const float* w, float* out, float* rstd, int64_t r0, int64_t r1, int64_t C, float eps) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * C;
    const float ss = row_sumsq(xr, C);
    const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ss) / static_cast<double>(C) + static_cast<double>(eps)));
    rstd[r] = rs;
    map2(xr, w, out + r * C, C, [rs](vf xv, vf wv) { return xv * rs * wv; });
  }
}

// dx = rstd·(dout·w) − x·rstd³·Σ(dout·w·x)/C.
static void k_rms_bwd_dx(const float* dout, const float* x, const float* w, const float* rstd, float* dx, int64_t r0, int64_t r1,
                         int64_t C, bool acc) {
  for (int64_t r = r0; r < r1; r++) {
    const float* g = dout + r * C;
    const float* xr = x + r * C;
    float* d = dx + r * C;
    vf s = vf{};
    int64_t i = 0;
    for (; i + W <= C; i += W) s += loadu(g + i) * loadu(w + i) * loadu(xr + i);
    if (i < C) s += load_part(g + i, C - i) * load_part(w + i, C - i) * load_part(xr + i, C - i);
    const float rs = rstd[r];
    const float k = rs * rs * rs * hsum(s) / static_cast<float>(C);
    auto body = [rs, k](vf gv, vf wv, vf xv) { return rs * (gv * wv) - k * xv; };
    i = 0;
    for (; i + W <= C; i += W) {
      vf v = body(loadu(g + i), loadu(w + i), loadu(xr + i));
      if (acc) v += loadu(d + i);
      storeu(d + i, v);
    }
    if (i < C) {
      const int64_t t = C - i;
      vf v = body(load_part(g + i, t), load_part(w + i, t), load_part(xr + i, t));
      if (acc) v += load_part(d + i, t);
      store_part(d + i, v, t);
    }
  }
}

// dw[c0:c1] += Σ_n dout[n, c]·x[n, c]·rstd[n], n in order (one thread owns each column).
static void k_rms_bwd_dw(const float* dout, const float* x, const float* rstd, float* dw, int64_t N, int64_t C, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; c += 4 * W) {
    const int64_t len = c1 - c < 4 * W ? c1 - c : 4 * W;
    vf acc[4] = {};
    for (int64_t n = 0; n < N; n++) {
      const float* g = dout + n * C + c;
      const float* xr = x + n * C + c;
      const float rs = rstd[n];
      for (int v = 0; v < 4; v++) {
        const int64_t o = v * W;
        if (o >= len) break;
        const int64_t w = len - o < W ? len - o : W;
        const vf gv = w == W ? loadu(g + o) : load_part(g + o, w);
        const vf xv = w == W ? loadu(xr + o) : load_part(xr + o, w);
        acc[v] += gv * xv * rs;
      }
    }
    for (int v = 0; v < 4; v++) {
      const int64_t o = v * W;
      if (o >= len) break;
      const int64_t w = len - o < W ? len - o : W;
      store_part(dw + c + o, load_part(dw + c + o, w) + acc[v], w);
    }
  }
}

// RoPE, rotate-half: x1' = x1·cos − x2·sin, x2' = x2·cos + x1·sin (sin negated for the inverse).
static void k_rope(float* x, int64_t r0, int64_t r1, int64_t T, int64_t H, int64_t D, const float* const* cs, bool inverse) {
  const int64_t h2 = D / 2;
  const float sgn = inverse ? -1.0f : 1.0f;
  for (int64_t r = r0; r < r1; r++) {
    const float* co = cs[r % T];
    const float* si = co + h2;
    for (int64_t h = 0; h < H; h++) {
      float* x1 = x + (r * H + h) * D;
      float* x2 = x1 + h2;
      int64_t i = 0;
      for (; i < h2; i += W) {
        const int64_t w = h2 - i < W ? h2 - i : W;
        const vf a = w == W ? loadu(x1 + i) : load_part(x1 + i, w);
        const vf b = w == W ? loadu(x2 + i) : load_part(x2 + i, w);
        const vf c = w == W ? loadu(co + i) : load_part(co + i, w);
        const vf s = (w == W ? loadu(si + i) : load_part(si + i, w)) * sgn;
        const vf na = a * c - b * s, nb = b * c + a * s;
        if (w == W) {
          storeu(x1 + i, na);
          storeu(x2 + i, nb);
        } else {
          store_part(x1 + i, na, w);
          store_part(x2 + i, nb, w);
        }
      }
    }
  }
}

// Softmax cross-entropy per row: loss = logsumexp(x) − x[target]; dlogits = (softmax − onehot)·gradScale.
static void k_xent(const float* logits, const int32_t* targets, int64_t r0, int64_t r1, int64_t V, int32_t ignore, float* dlogits,
                   float gradScale, double* rowloss) {
  for (int64_t r = r0; r < r1; r++) {
    const float* x = logits + r * V;
    float* d = dlogits != nullptr ? dlogits + r * V : nullptr;
    const int32_t t = targets[r];
    if (t == ignore) {
      rowloss[r] = 0.0;
      if (d != nullptr) std::memset(d, 0, static_cast<size_t>(V) * 4);
      continue;
    }
    vf mx = bcast(-__builtin_inff());
    int64_t i = 0;
    for (; i + W <= V; i += W) mx = vmax(mx, loadu(x + i));
    if (i < V) mx = vmax(mx, load_part_fill(x + i, V - i, -__builtin_inff()));
    const float m = hmax(mx);
    vf sum = vf{};
    const vf mv = bcast(m);
    i = 0;
    for (; i + W <= V; i += W) {
      const vf e = vexp(loadu(x + i) - mv);
      if (d != nullptr) storeu(d + i, e);
      sum += e;
    }
    if (i < V) {
      // Padding lanes are -inf so that they add exp(-inf) = 0.
      const vf e = vexp(load_part_fill(x + i, V - i, -__builtin_inff()) - mv);
      if (d != nullptr) store_part(d + i, e, V - i);
      sum += e;
    }
    const float s = hsum(sum);
    const double lse = static_cast<double>(m) + std::log(static_cast<double>(s));
    rowloss[r] = lse - static_cast<double>(x[t]);
    if (d != nullptr) {
      const float k = gradScale / s;
      map1(d, d, V, [k](vf e) { return e * k; });
      d[t] -= gradScale;
    }
  }
}

// ============================================================================================================
// Attention. Causal GQA; q/out [B, T, H, D], k/v [B, S, KV, D]; query t sits at key position t + S − T.
// Forward tasks are (b, kv head, chunk of queries): a task packs the K and V rows its queries can see once, in the
// GEMM panel layout, and reuses them for every head of its group and every block of BR query rows: scores
// (scale·Q·Kᵀ), a row softmax saving the log-sum-exp, P·V. Backward tasks are (b, kv head): a task owns dK and dV
// of its KV head (summed over the heads of its group and the query blocks, in a fixed order) and dQ of those heads,
// so tasks never write the same memory and every sum has a fixed order.
// ============================================================================================================

constexpr int64_t BR_FWD = 32, BR_BWD = 64;  // query rows per block
constexpr int64_t QCHUNK = 128;               // query rows per forward task (a multiple of BR_FWD)

// C[0:M, 0:N] = alpha·op(A)·B + beta·C with B pre-packed: the NR-column panel j at Bp + j·kpanel, laid out [K][NR]
// (so K block pc of a panel starts pc·NR further). Ap: MC·min(K, KC) floats. Same tiles and K blocks as gemm_block.
static void gemm_bpacked(const GemmArgs& g, const float* Bp, int64_t kpanel, float* Ap) {
  vf c[MR][NV];
  for (int64_t pc = 0; pc < g.K; pc += KC) {
    const int64_t kc = g.K - pc < KC ? g.K - pc : KC;
    const bool first = pc == 0;
    for (int64_t ic = 0; ic < g.M; ic += MC) {
      const int64_t mc = g.M - ic < MC ? g.M - ic : MC;
      pack_a(g, ic, mc, pc, kc, Ap);
      for (int64_t jr = 0; jr < g.N; jr += NR) {
        const int64_t nv = g.N - jr < NR ? g.N - jr : NR;
        const float* bp = Bp + (jr / NR) * kpanel + pc * NR;
        for (int64_t ir = 0; ir < mc; ir += MR) {
          micro(kc, Ap + ir * kc, bp, c);
          store_tile(c, g.C + (ic + ir) * g.ldc + jr, g.ldc, g.alpha, g.beta, first, mc - ir < MR ? mc - ir : MR, nv);
        }
      }
    }
  }
}

// Packs rows [0, n) of a [n, D] matrix with row stride ld as B operands: transposed (Kᵀ: panels [D][NR] over the n
// rows, panel stride D·NR) or not (K: panels [n][NR] over the D columns, panel stride n·NR).
static void pack_rows_t(const float* src, int64_t ld, int64_t n, int64_t D, float* dst) {
  GemmArgs g;
  g.tb = true;
  g.B = src;
  g.ldb = ld;
  pack_b(g, 0, D, 0, n, dst);
}
static void pack_rows_n(const float* src, int64_t ld, int64_t n, int64_t D, float* dst) {
  GemmArgs g;
  g.tb = false;
  g.B = src;
  g.ldb = ld;
  pack_b(g, 0, n, 0, D, dst);
}

static int64_t attn_fwd_tasks(const AttnArgs& a) { return a.B * a.KV * ((a.T + QCHUNK - 1) / QCHUNK); }

static size_t attn_fwd_ws(const AttnArgs& a) {
  const int64_t rs = round_up(a.S, NR), rd = round_up(a.D, NR);
  return static_cast<size_t>(round_up(a.D * rs, 16) + round_up(a.S * rd, 16) + round_up(BR_FWD * a.S, 16) + MC * KC + 64);
}

// Row softmax over the first `valid` entries of s[0:n) (the rest are masked to 0); returns the log-sum-exp.
static float softmax_row(float* s, int64_t n, int64_t valid) {
  vf mx = bcast(-__builtin_inff());
  int64_t i = 0;
  for (; i + W <= valid; i += W) mx = vmax(mx, loadu(s + i));
  if (i < valid) mx = vmax(mx, load_part_fill(s + i, valid - i, -__builtin_inff()));
  const float m = hmax(mx);
  const vf mv = bcast(m);
  vf sum = vf{};
  i = 0;
  for (; i + W <= valid; i += W) {
    const vf e = vexp(loadu(s + i) - mv);
    storeu(s + i, e);
    sum += e;
  }
  if (i < valid) {
    const vf e = vexp(load_part_fill(s + i, valid - i, -__builtin_inff()) - mv);
    store_part(s + i, e, valid - i);
    sum += e;
  }
  const float tot = hsum(sum);
  const float inv = 1.0f / tot;
  map1(s, s, valid, [inv](vf e) { return e * inv; });
  for (int64_t j = valid; j < n; j++) s[j] = 0.0f;
  return m + std::log(tot);
}

static void attn_fwd(const AttnArgs& a, int64_t task, float* ws) {
  const int64_t nch = (a.T + QCHUNK - 1) / QCHUNK;
  const int64_t ch = task % nch, kvh = (task / nch) % a.KV, b = task / (nch * a.KV);
  const int64_t grp = a.H / a.KV, D = a.D;
  const int64_t off = a.S - a.T;
  const int64_t tb = ch * QCHUNK, te = a.T - tb < QCHUNK ? a.T : tb + QCHUNK;
  const int64_t svall = te + off;  // keys visible to the chunk's last query
  const int64_t qrow = a.H * D, kvrow = a.KV * D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const int64_t rs = round_up(a.S, NR), rd = round_up(D, NR);
  float* Kp = ws;                                // Kᵀ panels [D][NR] over svall keys
  float* Vp = Kp + round_up(D * rs, 16);         // V panels [svall][NR] over D columns
  float* sc = Vp + round_up(a.S * rd, 16);       // scores / probabilities [rows, sv]
  float* Ap = sc + round_up(BR_FWD * a.S, 16);   // packed A
  const float* kb = a.k + (b * a.S * a.KV + kvh) * D;
  const float* vb = a.v + (b * a.S * a.KV + kvh) * D;
  pack_rows_t(kb, kvrow, svall, D, Kp);
  pack_rows_n(vb, kvrow, svall, D, Vp);
  for (int64_t hh = 0; hh < grp; hh++) {
    const int64_t h = kvh * grp + hh;
    float* lse = a.lse + (b * a.H + h) * a.T;
    for (int64_t t0 = tb; t0 < te; t0 += BR_FWD) {
      const int64_t t1 = te - t0 < BR_FWD ? te : t0 + BR_FWD, rows = t1 - t0;
      const int64_t sv = t1 + off;
      GemmArgs g;
      g.ta = false, g.M = rows, g.N = sv, g.K = D, g.alpha = scale, g.beta = 0.0f;
      g.A = a.q + ((b * a.T + t0) * a.H + h) * D, g.lda = qrow, g.C = sc, g.ldc = sv;
      gemm_bpacked(g, Kp, D * NR, Ap);  // sc[rows, sv] = scale·Q·Kᵀ
      for (int64_t r = 0; r < rows; r++) lse[t0 + r] = softmax_row(sc + r * sv, sv, t0 + r + off + 1);
      g.ta = false, g.M = rows, g.N = D, g.K = sv, g.alpha = 1.0f, g.beta = 0.0f;
      g.A = sc, g.lda = sv, g.C = a.out + ((b * a.T + t0) * a.H + h) * D, g.ldc = qrow;
      gemm_bpacked(g, Vp, svall * NR, Ap);  // out[rows, D] = P·V
    }
  }
}

static int64_t attn_bwd_tasks(const AttnArgs& a) { return a.B * a.KV; }

static size_t attn_bwd_gemm_ws(const AttnArgs& a) {
  // dK and dV updates: M = sv ≤ S, N = D, K = rows ≤ BR_BWD.
  GemmArgs g;
  g.M = a.S > kSmallM ? a.S : kSmallM + 1;
  g.N = a.D;
  g.K = BR_BWD;
  const size_t blk = gemm_ws(g);
  const size_t small = static_cast<size_t>(kSmallM * BR_BWD + 64);
  return blk > small ? blk : small;
}
static size_t attn_bwd_ws(const AttnArgs& a) {
  const int64_t rs = round_up(a.S, NR), rd = round_up(a.D, NR);
  return static_cast<size_t>(2 * round_up(a.D * rs, 16) + round_up(a.S * rd, 16) + 2 * round_up(BR_BWD * a.S, 16) + round_up(BR_BWD, 16) +
                             MC * KC + 64) +
         attn_bwd_gemm_ws(a);
}

static void attn_bwd(const AttnArgs& a, int64_t task, float* ws) {
  const int64_t b = task / a.KV, kvh = task % a.KV;
  const int64_t grp = a.H / a.KV;
  const int64_t off = a.S - a.T;
  const int64_t qrow = a.H * a.D, kvrow = a.KV * a.D, D = a.D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.D)));
  const int64_t rs = round_up(a.S, NR), rd = round_up(D, NR);
  float* Ktp = ws;                              // Kᵀ panels [D][NR] over S keys
  float* Vtp = Ktp + round_up(D * rs, 16);      // Vᵀ panels [D][NR] over S keys
  float* Knp = Vtp + round_up(D * rs, 16);      // K panels [S][NR] over D columns
  float* P = Knp + round_up(a.S * rd, 16);
  float* dP = P + round_up(BR_BWD * a.S, 16);
  float* Dv = dP + round_up(BR_BWD * a.S, 16);
  float* Ap = Dv + round_up(BR_BWD, 16);
  float* gws = Ap + MC * KC;
  const float* kp = a.k + (b * a.S * a.KV + kvh) * D;
  const float* vp = a.v + (b * a.S * a.KV + kvh) * D;
  float* dkp = a.dk + (b * a.S * a.KV + kvh) * D;
  float* dvp = a.dv + (b * a.S * a.KV + kvh) * D;
  pack_rows_t(kp, kvrow, a.S, D, Ktp);
  pack_rows_t(vp, kvrow, a.S, D, Vtp);
  pack_rows_n(kp, kvrow, a.S, D, Knp);
  for (int64_t s = 0; s < a.S; s++) {
    std::memset(dkp + s * kvrow, 0, static_cast<size_t>(D) * 4);
    std::memset(dvp + s * kvrow, 0, static_cast<size_t>(D) * 4);
  }
  for (int64_t hh = 0; hh < grp; hh++) {
    const int64_t h = kvh * grp + hh;
    const float* lse = a.lse + (b * a.H + h) * a.T;
    for (int64_t t0 = 0; t0 < a.T; t0 += BR_BWD) {
      const int64_t t1 = a.T - t0 < BR_BWD ? a.T : t0 + BR_BWD, rows = t1 - t0;
      const int64_t sv = t1 + off;
      const int64_t rowoff = ((b * a.T + t0) * a.H + h) * D;
      const float* qp = a.q + rowoff;
      const float* op = a.out + rowoff;
      const float* dop = a.dout + rowoff;
      // Dv[r] = Σ_d dO·O (the softmax backward's row term)
      for (int64_t r = 0; r < rows; r++) {
        vf s = vf{};
        int64_t i = 0;
        for (; i + W <= D; i += W) s += loadu(dop + r * qrow + i) * loadu(op + r * qrow + i);
        if (i < D) s += load_part(dop + r * qrow + i, D - i) * load_part(op + r * qrow + i, D - i);
        Dv[r] = hsum(s);
      }
      GemmArgs g;
      // P = exp(scale·Q·Kᵀ − lse), masked
      g.ta = false, g.M = rows, g.N = sv, g.K = D, g.alpha = scale, g.beta = 0.0f;
      g.A = qp, g.lda = qrow, g.C = P, g.ldc = sv;
      gemm_bpacked(g, Ktp, D * NR, Ap);
      for (int64_t r = 0; r < rows; r++) {
        float* pr = P + r * sv;
        const int64_t valid = t0 + r + off + 1;
        const vf l = bcast(lse[t0 + r]);
        map1(pr, pr, valid, [l](vf x) { return vexp(x - l); });
        for (int64_t j = valid; j < sv; j++) pr[j] = 0.0f;
      }
      // dP = dO·Vᵀ
      g.ta = false, g.M = rows, g.N = sv, g.K = D, g.alpha = 1.0f, g.beta = 0.0f;
      g.A = dop, g.lda = qrow, g.C = dP, g.ldc = sv;
      gemm_bpacked(g, Vtp, D * NR, Ap);
      // dS = P ⊙ (dP − Dv) (masked entries have P = 0)
      for (int64_t r = 0; r < rows; r++) {
        const vf dv = bcast(Dv[r]);
        map2(P + r * sv, dP + r * sv, dP + r * sv, sv, [dv](vf p, vf d) { return p * (d - dv); });
      }
      // dQ = scale · dS·K (each query row is written exactly once)
      g.ta = false, g.M = rows, g.N = D, g.K = sv, g.alpha = scale, g.beta = 0.0f;
      g.A = dP, g.lda = sv, g.C = a.dq + rowoff, g.ldc = qrow;
      gemm_bpacked(g, Knp, a.S * NR, Ap);
      // dK[0:sv] += scale · dSᵀ·Q
      g.ta = true, g.tb = false, g.M = sv, g.N = D, g.K = rows, g.alpha = scale, g.beta = 1.0f;
      g.A = dP, g.lda = sv, g.B = qp, g.ldb = qrow, g.C = dkp, g.ldc = kvrow;
      gemm_local(g, gws);
      // dV[0:sv] += Pᵀ·dO
      g.ta = true, g.tb = false, g.M = sv, g.N = D, g.K = rows, g.alpha = 1.0f, g.beta = 1.0f;
      g.A = P, g.lda = sv, g.B = dop, g.ldb = qrow, g.C = dvp, g.ldc = kvrow;
      gemm_local(g, gws);
    }
  }
}

// Decode: one query per (b, h) against the first `len` cached positions.
static size_t decode_ws(const DecodeArgs& a) { return static_cast<size_t>(round_up(a.len, 16) + 64); }
static void attn_decode(const DecodeArgs& a, int64_t task, float* ws) {
  const int64_t b = task / a.H, h = task % a.H;
  const int64_t kvh = h / (a.H / a.KV);
  const int64_t D = a.D, kvrow = a.KV * D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const float* q = a.q + (b * a.H + h) * D;
  const float* k = a.k + (b * a.maxS * a.KV + kvh) * D;
  const float* v = a.v + (b * a.maxS * a.KV + kvh) * D;
  float* s = ws;
  for (int64_t j = 0; j < a.len; j++) {
    const float* kr = k + j * kvrow;
    vf acc = vf{};
    int64_t i = 0;
    for (; i + W <= D; i += W) acc += loadu(q + i) * loadu(kr + i);
    if (i < D) acc += load_part(q + i, D - i) * load_part(kr + i, D - i);
    s[j] = hsum(acc) * scale;
  }
  softmax_row(s, a.len, a.len);
  float* o = a.out + (b * a.H + h) * D;
  for (int64_t i = 0; i < D; i += 4 * W) {
    const int64_t len = D - i < 4 * W ? D - i : 4 * W;
    vf acc[4] = {};
    for (int64_t j = 0; j < a.len; j++) {
      const float* vr = v + j * kvrow + i;
      const vf p = bcast(s[j]);
      for (int u = 0; u < 4; u++) {
        const int64_t x = u * W;
        if (x >= len) break;
        const int64_t w = len - x < W ? len - x : W;
        acc[u] += p * (w == W ? loadu(vr + x) : load_part(vr + x, w));
      }
    }
    for (int u = 0; u < 4; u++) {
      const int64_t x = u * W;
      if (x >= len) break;
      const int64_t w = len - x < W ? len - x : W;
      store_part(o + i + x, acc[u], w);
    }
  }
}

#undef NS_INLINE
#undef NS_KEEP

}  // namespace NS_ISA_NS
}  // namespace ns
