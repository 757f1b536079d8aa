// The per-ISA kernel table. Each instruction-set path (AVX-512, AVX2+FMA, portable) compiles the same templated
// sources (kernels_impl.h) in its own translation unit and namespace, and exposes them through one `Kernels` table.
// The kernels here are single-threaded and work on a range (rows, columns, a block of C, a task id); the parallel
// drivers in ops.cc split the work among the pool's threads.
//
// Determinism contract (what lets training resume bit for bit): every kernel gives the same bits on every run at a
// given thread count, and, with our own GEMM, at ANY thread count: the arithmetic that produces an output element
// never depends on how the work was split among threads. GEMM tiles and K blocks are aligned to the matrix origin,
// element-wise ranges to 64 elements (a vector never straddles two tasks, tails run the same vector code), and
// reductions over long axes are done by one task in a fixed order (rows; RMSNorm dw and embedding backward by
// column ranges) or in fixed-size chunks combined in chunk order (sum of squares, cross-entropy loss).
// Exceptions: the OpenBLAS GEMM path (blas.h: deterministic at a fixed thread count only), and results differ
// between ISA paths (vector widths, FMA), except the int8 small-M products (q8_gemm_small, q8_quant_act), whose
// every output is the same bits on every path (kernels_impl.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ns {

enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2 };

// Products with at most this many rows of C take the unpacked small-M path (decode, GEMV, small batches), where
// packing B would cost more than the arithmetic. The choice depends on the shape only, never on threads.
constexpr int64_t kSmallM = 8;

// One row-major matrix product C = alpha·op(A)·op(B) + beta·C with pointers already at matrix 0's first element.
struct GemmArgs {
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* A = nullptr;
  int64_t lda = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  float* C = nullptr;
  int64_t ldc = 0;
};

// Int8 weights (GGUF q8_0-like): C[M, N] = A[M, K] · Wᵀ + beta·C where W [N, K] is stored as int8 Q[N, K] with one
// float32 scale per block of `bs` consecutive elements along K (S[N, K / bs]); W[n, k] = float(Q[n, k]) · S[n, k / bs]
// (one float32 rounding: the value dequantizeInt8 gives). A is dense [M, K]; K % bs == 0 and bs % 16 == 0.
// The r16 VNNI kernel's prefetch when the decode's int8 weights fit the last-level cache: prefetcht1 16 KiB ahead
// (docs/LIMITS.md "Session 27: int8 decode on the new host").
constexpr int64_t kQ8Prefetch = -16384;
struct Q8GemmArgs {
  int64_t M = 0, N = 0, K = 0, bs = 32;
  const float* A = nullptr;
  const int8_t* Q = nullptr;
  const float* S = nullptr;
  float* C = nullptr;
  int64_t ldc = 0;
  float beta = 0.0f;  // 0 overwrites C, 1 adds into it
  // Small M (q8_gemm_small): A's rows quantized by q8_quant_act with the weights' block size (row i at Aq + i·K,
  // As + i·(K / bs), Ac + i·(K / bs)). The small-M product is int8 × int8 (see kernels_impl.h); unused by the
  // large-M path.
  const int8_t* Aq = nullptr;
  const float* As = nullptr;
  const int32_t* Ac = nullptr;
  // How Q and S are laid out (kQ8Rows or kQ8R16); N is then the whole matrix's row count (the layout depends on it).
  int layout = 0;
  // Software prefetch of the r16 VNNI kernel (q8q8_vnni16_t), bytes ahead in a group's stream: > 0 prefetcht0,
  // < 0 prefetcht1 at |pf|, 0 none. Never changes a bit; Engine::decode_layers sets it (kQ8Prefetch) when the
  // weights fit the last-level cache.
  int64_t pf = 0;
};
// Int8 matrix layouts. kQ8Rows: Q[N, K] row-major, S[N, K / bs] row-major. kQ8R16 (what an int8 shard holds, made at
// load by interleaveInt8Matrix in src/tensor/ops/quantize.ts): the rows [0, N16), N16 = N − N mod 16, in groups of 16;
// group g's codes at Q + 16·g·K, row 16g + r's bytes k = 4t..4t+3 at offset 64·t + 4·r (a 64-byte vector holds the
// same 4 codes of the group's 16 rows), its scales at S + 16·g·nb, row 16g + r's block b at 16·b + r; the last
// N mod 16 rows row-major after them, at Q + n·K and S + n·nb as in kQ8Rows. Same bytes in all; a row range that
// starts and ends on a multiple of 16 (or at N) is a matrix of the same layout.
constexpr int kQ8Rows = 0;
constexpr int kQ8R16 = 1;

// Attention shapes: q/out/dq [B, T, H, D], k/v/dk/dv [B, S, KV, D], lse [B, H, T].
struct AttnArgs {
  int64_t B = 0, T = 0, S = 0, H = 0, KV = 0, D = 0;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;  // forward output; read-only in backward
  float* lse = nullptr;  // written by forward; read by backward
  const float* dout = nullptr;
  float* dq = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
};

struct DecodeArgs {
  int64_t B = 0, H = 0, KV = 0, D = 0, maxS = 0, len = 0;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
};

struct AdamArgs {
  float lr, beta1, beta2, eps, wd, gradScale;
  float bc1, bc2;  // bias corrections 1 - beta^step, computed once in double by the driver
};

struct Kernels {
  Isa isa;
  const char* name;
  int mr, nr, kc, mc, nc;  // GEMM register tile and cache blocking

  // ---- GEMM ----
  // Scratch (floats) one thread needs for gemm_block / gemm_small.
  size_t (*gemm_ws)(const GemmArgs& g);
  // Packed GEMM on the block C[m0:m1, n0:n1]; requires K > 0 and alpha != 0 (the driver handles the rest).
  void (*gemm_block)(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* ws);
  // Unpacked GEMM for M ≤ kSmallM (decode, GEMV): all M rows, columns [n0, n1) (with op(B) = Bᵀ on AVX-512, W is
  // read once for all M rows).
  void (*gemm_small)(const GemmArgs& g, int64_t n0, int64_t n1, float* ws);

  // ---- int8-weight GEMM ----
  // M ≤ kSmallM: columns [n0, n1) of C from the quantized rows of A (g.Aq/As/Ac): int8 × int8 dot products per
  // block, combined in a fixed order that every ISA path follows, so all paths give the same bits.
  void (*q8_gemm_small)(const Q8GemmArgs& g, int64_t n0, int64_t n1);
  // One activation row x[K] → q[K] (int8), s[K / bs] (block scales), c[K / bs] (128·Σ q per block): the
  // quantization of A for q8_gemm_small. Same bits on every ISA path.
  void (*q8_quant_act)(const float* x, int64_t K, int64_t bs, int8_t* q, float* s, int32_t* c);
  // dst[(n − n0)·K + k] = W[n, k] for rows [n0, n1) of W (the large-M path decodes a panel, then runs gemm_block).
  void (*q8_decode_rows)(const Q8GemmArgs& g, int64_t n0, int64_t n1, float* dst);

  // ---- elementwise over [0, n) of the given pointers (the driver offsets them) ----
  void (*add)(const float* a, const float* b, float* out, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
  void (*scale)(float* x, float alpha, int64_t n);
  double (*sumsq)(const float* x, int64_t n);
  bool (*allfinite)(const float* x, int64_t n);
  void (*swiglu_fwd)(const float* gate, const float* up, float* out, int64_t n);
  void (*swiglu_bwd)(const float* dout, const float* gate, const float* up, float* dgate, float* dup, int64_t n);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamArgs& a);
  void (*to_fp16)(const float* x, uint16_t* out, int64_t n);
  void (*from_fp16)(const uint16_t* x, float* out, int64_t n);
  // Whole blocks: x/q/out start at a block boundary, nblocks blocks of `bs` (the last may be short: n is the total).
  void (*q8)(const float* x, int8_t* q, float* scales, int64_t n, int64_t bs);
  void (*dq8)(const int8_t* q, const float* scales, float* out, int64_t n, int64_t bs);

  // ---- rows ----
  void (*embed_fwd)(const float* table, const int32_t* ids, float* out, int64_t r0, int64_t r1, int64_t C);
  // dtable[ids[n], c0:c1] += dout[n, c0:c1] for every n in order.
  void (*embed_bwd)(const float* dout, const int32_t* ids, float* dtable, int64_t N, int64_t C, int64_t c0, int64_t c1);
  void (*rms_fwd)(const float* x, const float* w, float* out, float* rstd, int64_t r0, int64_t r1, int64_t C, float eps);
  void (*rms_bwd_dx)(const float* dout, const float* x, const float* w, const float* rstd, float* dx, int64_t r0, int64_t r1,
                     int64_t C, bool acc);
  void (*rms_bwd_dw)(const float* dout, const float* x, const float* rstd, float* dw, int64_t N, int64_t C, int64_t c0, int64_t c1);
  // RoPE on rows [r0, r1) of x viewed as [B·T, H, D]; row r uses cos/sin table row cs[r % T] (cos[D/2], sin[D/2]).
  void (*rope)(float* x, int64_t r0, int64_t r1, int64_t T, int64_t H, int64_t D, const float* const* cs, bool inverse);
  // Softmax cross-entropy rows [r0, r1): rowloss[r] = lse - logit[target] (0 for ignored rows); dlogits when non-null.
  void (*xent)(const float* logits, const int32_t* targets, int64_t r0, int64_t r1, int64_t V, int32_t ignore, float* dlogits,
               float gradScale, double* rowloss);

  // ---- attention ----
  size_t (*attn_fwd_ws)(const AttnArgs& a);
  int64_t (*attn_fwd_tasks)(const AttnArgs& a);
  void (*attn_fwd)(const AttnArgs& a, int64_t task, float* ws);
  size_t (*attn_bwd_ws)(const AttnArgs& a);
  int64_t (*attn_bwd_tasks)(const AttnArgs& a);
  void (*attn_bwd)(const AttnArgs& a, int64_t task, float* ws);
  size_t (*decode_ws)(const DecodeArgs& a);
  void (*attn_decode)(const DecodeArgs& a, int64_t task, float* ws);  // task = b·H + h
};

const Kernels* kernels_portable();
const Kernels* kernels_avx2();    // nullptr when not compiled in (non-x86 targets)
const Kernels* kernels_avx512();  // nullptr when not compiled in
// The bench's read bound (addon.cc readStream): the 64-bit sum of [p, p + n) read with 64-byte loads in `streams` (1,
// 2 or 4) equal parts side by side; n a multiple of 512, p 64-byte aligned. AVX-512 only (0 when not compiled in).
uint64_t read_sum_avx512(const uint8_t* p, size_t n, int streams);

}  // namespace ns
