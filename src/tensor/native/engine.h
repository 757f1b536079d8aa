// The engine of one JS environment (the main thread or a worker_thread each get their own): the thread pool, the
// chosen kernel table, the GEMM policy and the RoPE table cache, plus the parallel drivers that split each kernel's
// work among the pool's threads. Calls come from one JS thread at a time (N-API calls are synchronous).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blas.h"
#include "kernels.h"
#include "pool.h"

namespace ns {

enum class GemmMode { automatic, own, openblas };

// One decoder layer of a decode step of B ≤ kDecodeMaxRows sequences, each one row at its own position in its own
// KV cache (LlamaShard.layerForward with T = 1 and a cache per row; B = 1 is a batch-1 decode step). Row b:
//   h1 = rmsnorm(x); [q | k | v] = h1 · Wqkvᵀ; rope(q, k) at pos[b]; k, v → cache b at pos[b];
//   att = attention(q, cache b [0..pos[b]]); r = x + att · Woᵀ; h2 = rmsnorm(r); [g | u] = h2 · Wguᵀ;
//   out = r + (silu(g) · u) · Wdownᵀ
// The products run over all B rows at once (the weights are streamed once per step, not once per row).
// Each matrix is float32 (w) or int8 codes with a scale per `bs` weights along K (q, s).
constexpr int64_t kDecodeMaxRows = 8;
static_assert(kDecodeMaxRows <= kSmallM, "a decode layer's products take the unpacked small-M kernels");
struct DecodeMat {
  const float* w = nullptr;
  const int8_t* q = nullptr;
  const float* s = nullptr;
  int64_t bs = 32;  // int8: weights per scale along K
  int layout = 0;    // int8: kQ8Rows or kQ8R16 (kernels.h)
};
struct DecodeLayerArgs {
  int64_t B = 1, C = 0, H = 0, KV = 0, D = 0, F = 0;
  int64_t pos[kDecodeMaxRows] = {}, maxS[kDecodeMaxRows] = {};  // per row: its position and its cache's length
  float eps = 0.0f;
  double theta = 0.0;
  const float* x = nullptr;  // [B, C]
  float* out = nullptr;      // [B, C]
  const float* inNorm = nullptr;
  const float* postNorm = nullptr;
  DecodeMat qkv, o, gu, down;            // [H·D + 2·KV·D, C], [C, H·D], [2F, C], [C, F]
  float* kc[kDecodeMaxRows] = {};        // row b's cache of this layer, [maxS[b], KV, D]
  float* vc[kDecodeMaxRows] = {};
  // Scratch, decode_layer_ws(B, C, H, KV, D, F) floats: h1 [B, C] | qkv [B, H·D + 2·KV·D] | att [B, H·D] | r [B, C] |
  // h2 [B, C] | gu [B, 2F] | act [B, F] | rstd [2B], each starting on a 64-byte line (decode_layer_parts).
  float* ws = nullptr;
};
// The span's head after a decode_layers job: xf[B, C] = rmsnorm(last layer's out; norm), rstd[B]; logits[B, V] =
// xf · wᵀ (w float32 [V, C]), as LlamaShard's rmsnormForward and gemm compute them for B ≤ kSmallM rows.
struct DecodeHead {
  const float* norm = nullptr;
  const float* w = nullptr;
  float* xf = nullptr;
  float* rstd = nullptr;
  float* logits = nullptr;
  int64_t V = 0;
};
// Floats of one part of the decode scratch, rounded up to a 64-byte line: the products read their A rows (h1, att,
// h2, act) in place with full-vector loads, and a row that straddles lines costs two loads each time (a large
// Float32Array from V8 starts 16 bytes into a page, glibc's mmap offset).
inline int64_t decode_layer_part(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t decode_layer_ws(int64_t B, int64_t C, int64_t H, int64_t KV, int64_t D, int64_t F) {
  // + 16: room to move the start onto a line
  return 16 + 3 * decode_layer_part(B * C) + decode_layer_part(B * (H * D + 2 * KV * D)) + decode_layer_part(B * H * D) +
         decode_layer_part(B * 2 * F) + decode_layer_part(B * F) + decode_layer_part(2 * B);
}

class Engine {
 public:
  Engine();

  // ---- configuration ----
  Isa isa() const { return k_->isa; }
  Isa detected_isa() const { return detected_; }
  const Kernels& kernels() const { return *k_; }
  // Switches the kernel path; false (and no change) when the CPU or this build lacks it.
  bool set_isa(Isa isa);
  int threads() const { return pool_.threads(); }
  void set_threads(int n) { pool_.resize(n); }
  void set_spin_us(int us) { pool_.set_spin_us(us); }
  // A burst of jobs is coming / is over (Pool::prime, Pool::rest).
  void pool_prime() { pool_.prime(); }
  void pool_rest() { pool_.rest(); }
  uint32_t pool_id() const { return pool_.id(); }
  GemmMode gemm_mode() const { return mode_; }
  void set_gemm_mode(GemmMode m);
  // Whether GEMM currently goes to OpenBLAS (policy and availability), and why not when it does not.
  bool gemm_uses_blas() const { return blas_ != nullptr && use_blas_; }
  const std::string& blas_config() const { return blas_ != nullptr ? blas_->config : empty_; }
  const std::string& blas_reason() const { return blas_why_; }
  // A note about an environment override that was not honoured ("" when none).
  const std::string& note() const { return note_; }

  // ---- kernels (sizes already validated by the caller) ----
  void gemm(const GemmArgs& g, int64_t batch, int64_t strideA, int64_t strideB, int64_t strideC);
  void gemm_q8(const Q8GemmArgs& g);
  void add(const float* a, const float* b, float* out, int64_t n);
  void axpy(float alpha, const float* x, float* y, int64_t n);
  void scale(float* x, float alpha, int64_t n);
  double sumsq(const float* x, int64_t n);
  bool allfinite(const float* x, int64_t n);
  void embed_fwd(const float* table, const int32_t* ids, float* out, int64_t N, int64_t C);
  void embed_bwd(const float* dout, const int32_t* ids, float* dtable, int64_t N, int64_t C);
  void rms_fwd(const float* x, const float* w, float* out, float* rstd, int64_t N, int64_t C, float eps);
  void rms_bwd(const float* dout, const float* x, const float* w, const float* rstd, float* dx, float* dw, int64_t N, int64_t C, bool acc);
  void rope(float* x, int64_t B, int64_t T, int64_t H, int64_t D, int64_t posOffset, double theta, bool inverse, const int32_t* positions);
  void attn_fwd(const AttnArgs& a);
  void attn_bwd(const AttnArgs& a);
  void attn_decode(const DecodeArgs& a);
  // One layer of a decode step of B rows as one pool job (see DecodeLayerArgs). Every output element is computed by
  // the same kernels, on the same data, as the op-by-op path, so results are the same bits.
  void decode_layer(const DecodeLayerArgs& a);
  // L consecutive layers of one decode step (layer l's out is layer l + 1's x) as ONE pool job of L × 10 phases:
  // no return to JS, no job close and reopen, no helper wake-up between layers, and the layer-independent
  // preparation once. Every layer must have the same B, sizes, positions, eps, theta, ws, int8-ness, block sizes
  // and layout (the caller checks); each its own weights, caches, x and out. The same tasks in the same order as L
  // decode_layer calls, so the same bits.
  // With `head`, the same job then runs the final norm and the LM head's product (see DecodeHead).
  void decode_layers(const DecodeLayerArgs* layers, int64_t L, const DecodeHead* head);
  // NEUROSHARD_DECODE_TRACE=1 (scripts/experiments/decode-phases.mjs): every decode_layer call appends
  // kDecodeTraceFields numbers (ns): the call's entry, the job's open and close (CLOCK_MONOTONIC; entry → open is the
  // engine's preparation, the previous close → entry the JS and the N-API call), then per phase the first task's
  // start and the last task's end (from the open), the tasks' summed wall time and their count. Taken
  // and cleared by take_decode_trace(); it grows until taken (43 doubles a layer), so it is for experiments only. Off:
  // one predictable branch per task.
  static constexpr int kDecodePhases = 10;
  static constexpr int kDecodeTraceFields = 3 + 4 * kDecodePhases;
  std::vector<double> take_decode_trace() { std::vector<double> t; t.swap(trace_); return t; }
  void swiglu_fwd(const float* gate, const float* up, float* out, int64_t n);
  void swiglu_bwd(const float* dout, const float* gate, const float* up, float* dgate, float* dup, int64_t n);
  // Returns the loss sum (in double) and the count of non-ignored rows.
  double xent(const float* logits, const int32_t* targets, int64_t N, int64_t V, int32_t ignore, float* dlogits, float gradScale,
              int64_t* count);
  void adamw(float* p, const float* g, float* m, float* v, int64_t n, const AdamArgs& a);
  void to_fp16(const float* x, uint16_t* out, int64_t n);
  void from_fp16(const uint16_t* x, float* out, int64_t n);
  void q8(const float* x, int8_t* q, float* scales, int64_t n, int64_t bs);
  void dq8(const int8_t* q, const float* scales, float* out, int64_t n, int64_t bs);

 private:
  int threads_for(double work, double per_thread) const;
  template <class F>
  void par(int64_t n, int64_t align, double work, double per_thread, F& f);
  void gemm_one(const GemmArgs& g, int T);
  void gemm_serial(const GemmArgs& g, float* ws);
  void blas_block(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) const;
  void update_blas();
  const float* rope_row(int64_t pos, int64_t D, double theta, float* tmp);

  Pool pool_;
  const Kernels* k_;
  Isa detected_;
  GemmMode mode_ = GemmMode::automatic;
  const Blas* blas_ = nullptr;
  bool use_blas_ = false;
  std::string blas_why_;
  std::string note_;
  std::string empty_;
  // RoPE cos/sin rows [pos][cos D/2 | sin D/2] for positions [0, rope_npos_) at (rope_theta_, rope_D_).
  std::vector<float> rope_cs_;
  double rope_theta_ = 0.0;
  int64_t rope_D_ = 0, rope_npos_ = 0;
  std::vector<const float*> rope_rows_;
  std::vector<float> rope_tmp_;
  // Quantized rows of A for the int8 small-M products (q8_quant_act): gemm_q8 uses one product's worth,
  // decode_layer the four products' A rows side by side.
  std::vector<int8_t> q8a_;
  std::vector<float> q8s_;
  std::vector<int32_t> q8c_;
  std::vector<double> dscratch_;
  std::vector<double> trace_;
  // decode_layers: the attention arguments of every (layer, row) and the job's phase ends.
  std::vector<DecodeArgs> da_;
  std::vector<int64_t> lends_;
};

}  // namespace ns
