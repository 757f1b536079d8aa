#include "engine.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>

#include "cpu.h"

#include <time.h>
#include <unistd.h>

namespace ns {

namespace {

// Below these amounts of work per thread, waking another thread costs more than it saves. Units: flops for GEMM
// and attention, elements for the element-wise kernels (an exp counts as several).
constexpr double kGemmFlopsPerThread = 1 << 19;
// Products with M ≤ kSmallM (decode GEMVs) are bound by the weights they stream, not by flops: their threads are
// also counted by weight bytes, so that a 384×768 K/V projection (1.2 MB f32, 0.3 MB int8) uses every thread
// instead of the one its 0.6 Mflop gave it. The split never changes an output element's arithmetic (kernels.h).
constexpr double kGemvBytesPerThread = 1 << 17;
constexpr double kMemElemsPerThread = 1 << 15;
constexpr double kExpElemsPerThread = 1 << 13;
// Element-wise ranges start at multiples of this (in elements): a vector never straddles two threads' ranges.
constexpr int64_t kAlign = 64;
// Tasks per thread for element-wise and row kernels (dynamic load balancing).
constexpr int64_t kChunksPerThread = 4;
// GEMM blocks per thread when a product is big enough that the extra packing does not matter.
constexpr double kGemmFlopsPerBlock = 1 << 24;
// Fixed chunk of the sum-of-squares reduction: partial sums are combined in chunk order whatever the thread count.
constexpr int64_t kSumChunk = 8192;
// Positions kept in the RoPE table (beyond: computed per call).
constexpr int64_t kRopeMaxCached = 1 << 14;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

bool decode_trace_on() {
  static const bool on = [] {
    const char* e = env("NEUROSHARD_DECODE_TRACE");
    return e != nullptr && *e == '1';
  }();
  return on;
}
int64_t clock_ns(clockid_t id) {
  timespec t;
  clock_gettime(id, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}
void atomic_min(std::atomic<int64_t>& a, int64_t v) {
  int64_t c = a.load(std::memory_order_relaxed);
  while (v < c && !a.compare_exchange_weak(c, v, std::memory_order_relaxed)) {
  }
}
void atomic_max(std::atomic<int64_t>& a, int64_t v) {
  int64_t c = a.load(std::memory_order_relaxed);
  while (v > c && !a.compare_exchange_weak(c, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

Engine::Engine() : pool_(default_threads()), k_(nullptr), detected_(detect_isa()) {
  k_ = kernels_for(detected_);
  if (const char* want = env("NEUROSHARD_NATIVE_ISA")) {
    Isa isa;
    if (!parse_isa(want, &isa)) {
      note_ = std::string("NEUROSHARD_NATIVE_ISA=") + want + " is not one of avx512, avx2, portable; using " + isa_name(detected_);
    } else if (!set_isa(isa)) {
      note_ = std::string("NEUROSHARD_NATIVE_ISA=") + want + " is not supported by this CPU; using " + isa_name(detected_);
    }
  }
  if (const char* m = env("NEUROSHARD_NATIVE_GEMM")) {
    if (std::strcmp(m, "own") == 0) {
      mode_ = GemmMode::own;
    } else if (std::strcmp(m, "openblas") == 0) {
      mode_ = GemmMode::openblas;
    } else if (std::strcmp(m, "auto") != 0) {
      note_ += (note_.empty() ? "" : "; ") + std::string("NEUROSHARD_NATIVE_GEMM=") + m + " is not one of auto, own, openblas; using auto";
    }
  }
  if (const char* s = env("NEUROSHARD_NATIVE_SPIN_US")) pool_.set_spin_us(std::atoi(s));
  update_blas();
}

bool Engine::set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_)) return false;
  const Kernels* k = kernels_for(isa);
  if (k == nullptr) return false;
  k_ = k;
  update_blas();
  return true;
}

void Engine::set_gemm_mode(GemmMode m) {
  mode_ = m;
  update_blas();
}

// Policy, from measurements on this project's Zen 5 machine (scripts/bench-gemm.mjs): our AVX-512 kernel runs at
// ~1.9x OpenBLAS 0.3.21 (which has no Zen 5 kernel and uses its Haswell one), and our AVX2 kernel matches OpenBLAS
// within a few percent while keeping results independent of the thread count. So `auto` uses OpenBLAS only on the
// portable path (CPUs without AVX2, other architectures), and only when it loads.
void Engine::update_blas() {
  const bool want = mode_ == GemmMode::openblas || (mode_ == GemmMode::automatic && k_->isa == Isa::portable);
  if (want && blas_ == nullptr && blas_why_.empty()) blas_ = blas_load(&blas_why_);
  use_blas_ = want && blas_ != nullptr;
}

int Engine::threads_for(double work, double per_thread) const {
  const double t = work / per_thread;
  const int n = pool_.threads();
  if (t >= n) return n;
  return t < 1.0 ? 1 : static_cast<int>(t);
}

template <class F>
void Engine::par(int64_t n, int64_t align, double work, double per_thread, F& f) {
  if (n <= 0) return;
  const int64_t units = (n + align - 1) / align;
  int T = threads_for(work, per_thread);
  if (T > units) T = static_cast<int>(units);
  if (T <= 1) {
    f(int64_t{0}, n);
    return;
  }
  // A few chunks per thread: when a helper is late (asleep, or descheduled on a busy machine) the others take its
  // share instead of waiting for it.
  const int64_t chunks = std::min<int64_t>(units, static_cast<int64_t>(T) * kChunksPerThread);
  auto task = [&](int64_t c, int) {
    const int64_t u0 = units * c / chunks, u1 = units * (c + 1) / chunks;
    const int64_t a = u0 * align, b = std::min(n, u1 * align);
    if (a < b) f(a, b);
  };
  pool_.run(chunks, T, task);
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------------------------------

namespace {

struct Grid {
  int tm = 1, tn = 1;
};

// Splits C among T threads as a tm × tn grid of tile-aligned blocks, minimising the largest block's cost:
// its flops (padded to whole tiles) plus the packing it does (A: rows·K per NC column block, B: cols·K).
Grid choose_grid(int64_t M, int64_t N, int64_t K, int T, int mr, int nr, int64_t nc) {
  Grid best;
  double best_cost = -1;
  const int64_t mt = (M + mr - 1) / mr, nt = (N + nr - 1) / nr;
  for (int tm = 1; tm <= T; tm++) {
    if (T % tm != 0) continue;
    const int tn = T / tm;
    if (tm > mt || tn > nt) continue;
    const double rows = static_cast<double>((mt + tm - 1) / tm) * mr;
    const double cols = static_cast<double>((nt + tn - 1) / tn) * nr;
    const double nblocks = std::ceil(cols / static_cast<double>(nc));
    const double cost = 2.0 * rows * cols * K + 64.0 * (cols * K + rows * K * nblocks);
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best.tm = tm;
      best.tn = tn;
    }
  }
  if (best_cost < 0) {
    // Fewer tiles than threads in both directions: split the longer side as far as it goes.
    if (mt >= nt)
      best.tm = static_cast<int>(std::min<int64_t>(mt, T));
    else
      best.tn = static_cast<int>(std::min<int64_t>(nt, T));
  }
  return best;
}

bool fits_int(const GemmArgs& g) {
  return g.M <= INT_MAX && g.N <= INT_MAX && g.K <= INT_MAX && g.lda <= INT_MAX && g.ldb <= INT_MAX && g.ldc <= INT_MAX;
}

}  // namespace

void Engine::blas_block(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) const {
  const float* A = g.ta ? g.A + m0 : g.A + m0 * g.lda;
  const float* B = g.tb ? g.B + n0 * g.ldb : g.B + n0;
  blas_->sgemm(kCblasRowMajor, g.ta ? kCblasTrans : kCblasNoTrans, g.tb ? kCblasTrans : kCblasNoTrans, static_cast<int>(m1 - m0),
               static_cast<int>(n1 - n0), static_cast<int>(g.K), g.alpha, A, static_cast<int>(g.lda), B, static_cast<int>(g.ldb), g.beta,
               g.C + m0 * g.ldc + n0, static_cast<int>(g.ldc));
}

// One whole product on the calling thread (batch-parallel mode).
void Engine::gemm_serial(const GemmArgs& g, float* ws) {
  if (gemm_uses_blas() && g.M > kSmallM && fits_int(g))
    blas_block(g, 0, g.M, 0, g.N);
  else if (g.M <= kSmallM)
    k_->gemm_small(g, 0, g.N, ws);
  else
    k_->gemm_block(g, 0, g.M, 0, g.N, ws);
}

// One product, split among up to T threads.
void Engine::gemm_one(const GemmArgs& g, int T) {
  const Kernels& k = *k_;
  const bool blas = gemm_uses_blas() && g.M > kSmallM && fits_int(g);
  if (!blas && g.M <= kSmallM) {
    // Small M: columns split in aligned runs, B streamed once.
    pool_.reserve(0, k.gemm_ws(g));
    const int64_t units = (g.N + kAlign - 1) / kAlign;
    const int64_t chunks = std::min<int64_t>(units, static_cast<int64_t>(T) * kChunksPerThread);
    auto task = [&](int64_t c, int tid) {
      const int64_t u0 = units * c / chunks, u1 = units * (c + 1) / chunks;
      const int64_t a = u0 * kAlign, b = std::min(g.N, u1 * kAlign);
      if (a < b) k.gemm_small(g, a, b, pool_.scratch(tid, 0));
    };
    pool_.run(chunks, T, task);
    return;
  }
  // Tile-aligned blocks of C; two per thread when the product is big enough, for load balancing.
  const double flops = 2.0 * static_cast<double>(g.M) * static_cast<double>(g.N) * static_cast<double>(g.K);
  const int blocks = T > 1 && flops >= 2.0 * T * kGemmFlopsPerBlock ? 2 * T : T;
  const Grid grid = choose_grid(g.M, g.N, g.K, blocks, k.mr, k.nr, k.nc);
  if (!blas) pool_.reserve(0, k.gemm_ws(g));
  const int64_t mt = (g.M + k.mr - 1) / k.mr, ntl = (g.N + k.nr - 1) / k.nr;
  auto task = [&](int64_t b, int tid) {
    const int64_t i = b / grid.tn, j = b % grid.tn;
    const int64_t m0 = mt * i / grid.tm * k.mr, m1 = std::min(g.M, mt * (i + 1) / grid.tm * k.mr);
    const int64_t n0 = ntl * j / grid.tn * k.nr, n1 = std::min(g.N, ntl * (j + 1) / grid.tn * k.nr);
    if (m0 >= m1 || n0 >= n1) return;
    if (blas)
      blas_block(g, m0, m1, n0, n1);
    else
      k.gemm_block(g, m0, m1, n0, n1, pool_.scratch(tid, 0));
  };
  pool_.run(static_cast<int64_t>(grid.tm) * grid.tn, T, task);
}

// Int8-weight product. Small M (decode): A's rows quantized once here (q8_quant_act, on this thread: M·K elements
// against the N·K weights every task streams), then columns split in aligned runs like gemm_one, int8 × int8.
// Larger M (prefill, batches): each task decodes a panel of kQ8Panel rows of W into its scratch and runs the float32
// packed kernel on it, so the arithmetic per element is the float32 GEMM's over the dequantized weights whatever
// the split (panels start at multiples of kQ8Panel, a multiple of every ISA's NR).
void Engine::gemm_q8(const Q8GemmArgs& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K == 0) {
    for (int64_t i = 0; i < g.M; i++) {
      float* c = g.C + i * g.ldc;
      for (int64_t j = 0; j < g.N; j++) c[j] = g.beta == 0.0f ? 0.0f : g.beta * c[j];
    }
    return;
  }
  const Kernels& k = *k_;
  const double flops = 2.0 * static_cast<double>(g.M) * static_cast<double>(g.N) * static_cast<double>(g.K);
  int T = threads_for(flops, kGemmFlopsPerThread);
  if (g.M <= kSmallM) {
    const double bytes = static_cast<double>(g.N) * static_cast<double>(g.K) * (1.0 + 4.0 / static_cast<double>(g.bs));
    T = std::max(T, threads_for(bytes, kGemvBytesPerThread));
    const int64_t nb = g.K / g.bs;
    q8a_.resize(static_cast<size_t>(g.M * g.K));
    q8s_.resize(static_cast<size_t>(g.M * nb));
    q8c_.resize(static_cast<size_t>(g.M * nb));
    for (int64_t i = 0; i < g.M; i++) k.q8_quant_act(g.A + i * g.K, g.K, g.bs, q8a_.data() + i * g.K, q8s_.data() + i * nb, q8c_.data() + i * nb);
    Q8GemmArgs h = g;
    h.Aq = q8a_.data(), h.As = q8s_.data(), h.Ac = q8c_.data();
    const int64_t units = (g.N + kAlign - 1) / kAlign;
    const int64_t chunks = std::min<int64_t>(units, static_cast<int64_t>(T) * kChunksPerThread);
    auto task = [&](int64_t c, int) {
      const int64_t u0 = units * c / chunks, u1 = units * (c + 1) / chunks;
      const int64_t a = u0 * kAlign, b = std::min(g.N, u1 * kAlign);
      if (a < b) k.q8_gemm_small(h, a, b);
    };
    pool_.run(chunks, T, task);
    return;
  }
  constexpr int64_t kQ8Panel = 64;
  GemmArgs p;
  p.ta = false;
  p.tb = true;
  p.M = g.M;
  p.N = std::min<int64_t>(kQ8Panel, g.N);
  p.K = g.K;
  p.alpha = 1.0f;
  p.beta = g.beta;
  p.A = g.A;
  p.lda = g.K;
  p.ldb = g.K;
  p.ldc = g.ldc;
  const size_t panel = static_cast<size_t>(kQ8Panel * g.K + 16);
  pool_.reserve(0, panel + k.gemm_ws(p));
  const int64_t panels = (g.N + kQ8Panel - 1) / kQ8Panel;
  auto task = [&](int64_t t, int tid) {
    const int64_t n0 = t * kQ8Panel, n1 = std::min(g.N, n0 + kQ8Panel);
    float* ws = pool_.scratch(tid, 0);
    k.q8_decode_rows(g, n0, n1, ws);
    GemmArgs x = p;
    x.N = n1 - n0;
    x.B = ws;
    x.C = g.C + n0;
    k.gemm_block(x, 0, x.M, 0, x.N, ws + panel);
  };
  pool_.run(panels, T, task);
}

void Engine::gemm(const GemmArgs& g, int64_t batch, int64_t sA, int64_t sB, int64_t sC) {
  if (g.M <= 0 || g.N <= 0 || batch <= 0) return;
  if (g.K == 0 || g.alpha == 0.0f) {
    // Nothing to multiply: C = beta·C (beta = 0 clears C, NaN included).
    for (int64_t b = 0; b < batch; b++)
      for (int64_t i = 0; i < g.M; i++) {
        float* c = g.C + b * sC + i * g.ldc;
        if (g.beta == 0.0f)
          std::memset(c, 0, static_cast<size_t>(g.N) * 4);
        else
          for (int64_t j = 0; j < g.N; j++) c[j] *= g.beta;
      }
    return;
  }
  const double flops = 2.0 * static_cast<double>(g.M) * static_cast<double>(g.N) * static_cast<double>(g.K);
  const int T = threads_for(flops * static_cast<double>(batch), kGemmFlopsPerThread);
  auto item = [&](int64_t b) {
    GemmArgs x = g;
    x.A += b * sA;
    x.B += b * sB;
    x.C += b * sC;
    return x;
  };
  // Whole products per thread when there are enough of them and their C matrices cannot overlap (a stride of 0,
  // which accumulates every product into one C, must run in order).
  const bool disjoint = sC >= (g.M - 1) * g.ldc + g.N;
  if (T > 1 && batch >= T && disjoint) {
    pool_.reserve(0, k_->gemm_ws(g));
    auto task = [&](int64_t b, int tid) { gemm_serial(item(b), pool_.scratch(tid, 0)); };
    pool_.run(batch, T, task);
    return;
  }
  int Ti = threads_for(flops, kGemmFlopsPerThread);
  if (g.M <= kSmallM) Ti = std::max(Ti, threads_for(4.0 * static_cast<double>(g.N) * static_cast<double>(g.K), kGemvBytesPerThread));
  for (int64_t b = 0; b < batch; b++) gemm_one(item(b), Ti);
}

// ---------------------------------------------------------------------------------------------------------------
// Element-wise and rows
// ---------------------------------------------------------------------------------------------------------------

void Engine::add(const float* a, const float* b, float* out, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->add(a + i0, b + i0, out + i0, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
}

void Engine::axpy(float alpha, const float* x, float* y, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->axpy(alpha, x + i0, y + i0, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
}

void Engine::scale(float* x, float alpha, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->scale(x + i0, alpha, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
}

double Engine::sumsq(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  dscratch_.assign(static_cast<size_t>(chunks), 0.0);
  double* part = dscratch_.data();
  auto f = [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const int64_t i0 = c * kSumChunk, len = std::min(kSumChunk, n - i0);
      part[c] = k_->sumsq(x + i0, len);
    }
  };
  par(chunks, 1, static_cast<double>(n), kMemElemsPerThread, f);
  double s = 0.0;
  for (int64_t c = 0; c < chunks; c++) s += part[c];
  return s;
}

bool Engine::allfinite(const float* x, int64_t n) {
  std::atomic<bool> ok{true};
  auto f = [&](int64_t i0, int64_t i1) {
    if (!k_->allfinite(x + i0, i1 - i0)) ok.store(false, std::memory_order_relaxed);
  };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
  return ok.load();
}

void Engine::embed_fwd(const float* table, const int32_t* ids, float* out, int64_t N, int64_t C) {
  auto f = [&](int64_t r0, int64_t r1) { k_->embed_fwd(table, ids, out, r0, r1, C); };
  par(N, 1, static_cast<double>(N * C), kMemElemsPerThread, f);
}

void Engine::embed_bwd(const float* dout, const int32_t* ids, float* dtable, int64_t N, int64_t C) {
  // Columns split among threads: each thread adds its columns of every row in row order, so repeated ids
  // accumulate in the same order at any thread count.
  auto f = [&](int64_t c0, int64_t c1) { k_->embed_bwd(dout, ids, dtable, N, C, c0, c1); };
  par(C, kAlign, static_cast<double>(N * C), kMemElemsPerThread, f);
}

void Engine::rms_fwd(const float* x, const float* w, float* out, float* rstd, int64_t N, int64_t C, float eps) {
  auto f = [&](int64_t r0, int64_t r1) { k_->rms_fwd(x, w, out, rstd, r0, r1, C, eps); };
  par(N, 1, static_cast<double>(N * C), kMemElemsPerThread, f);
}

void Engine::rms_bwd(const float* dout, const float* x, const float* w, const float* rstd, float* dx, float* dw, int64_t N, int64_t C,
                     bool acc) {
  // One job of independent tasks: row chunks compute dx, column chunks compute dw (each column summed over all
  // rows in order, by one task).
  int T = threads_for(static_cast<double>(N * C), kMemElemsPerThread);
  if (T > N) T = static_cast<int>(std::max<int64_t>(N, 1));
  const int64_t cunits = (C + kAlign - 1) / kAlign;
  const int64_t rchunks = std::max<int64_t>(1, std::min<int64_t>(N, static_cast<int64_t>(T) * kChunksPerThread));
  const int64_t cchunks = std::max<int64_t>(1, std::min<int64_t>(cunits, static_cast<int64_t>(T) * kChunksPerThread));
  auto task = [&](int64_t t, int) {
    if (t < rchunks) {
      const int64_t r0 = N * t / rchunks, r1 = N * (t + 1) / rchunks;
      if (r0 < r1) k_->rms_bwd_dx(dout, x, w, rstd, dx, r0, r1, C, acc);
    } else {
      const int64_t c = t - rchunks;
      const int64_t c0 = cunits * c / cchunks * kAlign, c1 = std::min(C, cunits * (c + 1) / cchunks * kAlign);
      if (c0 < c1) k_->rms_bwd_dw(dout, x, rstd, dw, N, C, c0, c1);
    }
  };
  pool_.run(rchunks + cchunks, T, task);
}

const float* Engine::rope_row(int64_t pos, int64_t D, double theta, float* tmp) {
  const int64_t h2 = D / 2;
  // Angles as Hugging Face Llama computes them, in float32: inv_freq[i] = f32(1 / f32(theta^f32(2i/D))),
  // angle = f32(p · inv_freq[i]); cos and sin of that float32 angle (in double, then rounded), so that logits match
  // PyTorch's at long positions.
  auto fill = [&](float* row, int64_t p) {
    for (int64_t i = 0; i < h2; i++) {
      const float e = static_cast<float>(static_cast<double>(2 * i) / static_cast<double>(D));
      const float pw = static_cast<float>(std::pow(theta, static_cast<double>(e)));
      const float inv = static_cast<float>(1.0 / static_cast<double>(pw));
      const float ang = static_cast<float>(static_cast<double>(p) * static_cast<double>(inv));
      row[i] = static_cast<float>(std::cos(static_cast<double>(ang)));
      row[h2 + i] = static_cast<float>(std::sin(static_cast<double>(ang)));
    }
  };
  if (pos >= 0 && pos < kRopeMaxCached) {
    if (rope_theta_ != theta || rope_D_ != D) {
      rope_cs_.clear();
      rope_npos_ = 0;
      rope_theta_ = theta;
      rope_D_ = D;
    }
    if (pos >= rope_npos_) {
      // Grow to the next power of two so that decode, one position at a time, rarely recomputes.
      int64_t want = 64;
      while (want <= pos) want *= 2;
      if (want > kRopeMaxCached) want = kRopeMaxCached;
      rope_cs_.resize(static_cast<size_t>(want * D));
      for (int64_t p = rope_npos_; p < want; p++) fill(rope_cs_.data() + p * D, p);
      rope_npos_ = want;
    }
    return rope_cs_.data() + pos * D;
  }
  fill(tmp, pos);
  return tmp;
}

void Engine::rope(float* x, int64_t B, int64_t T, int64_t H, int64_t D, int64_t posOffset, double theta, bool inverse,
                  const int32_t* positions) {
  if (B * T * H * D == 0) return;
  // Table rows for the T positions first (growing the cache may move it), then pointers into it.
  rope_tmp_.resize(static_cast<size_t>(T * D));
  std::vector<int64_t> pos(static_cast<size_t>(T));
  int64_t maxpos = -1;
  for (int64_t t = 0; t < T; t++) {
    pos[t] = positions != nullptr ? positions[t] : posOffset + t;
    if (pos[t] >= 0 && pos[t] < kRopeMaxCached) maxpos = std::max(maxpos, pos[t]);
  }
  if (maxpos >= 0) rope_row(maxpos, D, theta, nullptr);
  rope_rows_.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; t++) rope_rows_[t] = rope_row(pos[t], D, theta, rope_tmp_.data() + t * D);
  const float* const* cs = rope_rows_.data();
  auto f = [&](int64_t r0, int64_t r1) { k_->rope(x, r0, r1, T, H, D, cs, inverse); };
  par(B * T, 1, static_cast<double>(B * T * H * D), kMemElemsPerThread, f);
}

void Engine::swiglu_fwd(const float* gate, const float* up, float* out, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->swiglu_fwd(gate + i0, up + i0, out + i0, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kExpElemsPerThread, f);
}

void Engine::swiglu_bwd(const float* dout, const float* gate, const float* up, float* dgate, float* dup, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->swiglu_bwd(dout + i0, gate + i0, up + i0, dgate + i0, dup + i0, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kExpElemsPerThread, f);
}

double Engine::xent(const float* logits, const int32_t* targets, int64_t N, int64_t V, int32_t ignore, float* dlogits, float gradScale,
                    int64_t* count) {
  dscratch_.assign(static_cast<size_t>(N), 0.0);
  double* rowloss = dscratch_.data();
  auto f = [&](int64_t r0, int64_t r1) { k_->xent(logits, targets, r0, r1, V, ignore, dlogits, gradScale, rowloss); };
  par(N, 1, static_cast<double>(N * V), kExpElemsPerThread, f);
  double s = 0.0;
  int64_t c = 0;
  for (int64_t r = 0; r < N; r++) {
    if (targets[r] == ignore) continue;
    s += rowloss[r];
    c++;
  }
  *count = c;
  return s;
}

void Engine::adamw(float* p, const float* g, float* m, float* v, int64_t n, const AdamArgs& a) {
  auto f = [&](int64_t i0, int64_t i1) { k_->adamw(p + i0, g + i0, m + i0, v + i0, i1 - i0, a); };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
}

void Engine::to_fp16(const float* x, uint16_t* out, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->to_fp16(x + i0, out + i0, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
}

void Engine::from_fp16(const uint16_t* x, float* out, int64_t n) {
  auto f = [&](int64_t i0, int64_t i1) { k_->from_fp16(x + i0, out + i0, i1 - i0); };
  par(n, kAlign, static_cast<double>(n), kMemElemsPerThread, f);
}

void Engine::q8(const float* x, int8_t* q, float* scales, int64_t n, int64_t bs) {
  const int64_t nb = (n + bs - 1) / bs;
  auto f = [&](int64_t b0, int64_t b1) {
    const int64_t i0 = b0 * bs, i1 = std::min(n, b1 * bs);
    k_->q8(x + i0, q + i0, scales + b0, i1 - i0, bs);
  };
  par(nb, 1, static_cast<double>(n), kExpElemsPerThread, f);
}

void Engine::dq8(const int8_t* q, const float* scales, float* out, int64_t n, int64_t bs) {
  const int64_t nb = (n + bs - 1) / bs;
  auto f = [&](int64_t b0, int64_t b1) {
    const int64_t i0 = b0 * bs, i1 = std::min(n, b1 * bs);
    k_->dq8(q + i0, scales + b0, out + i0, i1 - i0, bs);
  };
  par(nb, 1, static_cast<double>(n), kMemElemsPerThread, f);
}

// ---------------------------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------------------------

void Engine::attn_fwd(const AttnArgs& a) {
  if (a.B * a.T * a.H * a.D == 0) return;
  const double flops = 2.0 * static_cast<double>(a.B * a.H) * static_cast<double>(a.T) * static_cast<double>(a.S) * static_cast<double>(a.D);
  const int T = threads_for(flops, kGemmFlopsPerThread);
  pool_.reserve(1, k_->attn_fwd_ws(a));
  auto f = [&](int64_t task, int tid) { k_->attn_fwd(a, task, pool_.scratch(tid, 1)); };
  pool_.run(k_->attn_fwd_tasks(a), T, f);
}

void Engine::attn_bwd(const AttnArgs& a) {
  if (a.B * a.S * a.KV * a.D == 0) return;
  const double flops = 5.0 * static_cast<double>(a.B * a.H) * static_cast<double>(a.T) * static_cast<double>(a.S) * static_cast<double>(a.D);
  const int T = threads_for(flops, kGemmFlopsPerThread);
  pool_.reserve(1, k_->attn_bwd_ws(a));
  auto f = [&](int64_t task, int tid) { k_->attn_bwd(a, task, pool_.scratch(tid, 1)); };
  pool_.run(k_->attn_bwd_tasks(a), T, f);
}

void Engine::attn_decode(const DecodeArgs& a) {
  if (a.B * a.H * a.D == 0) return;
  const double flops = 4.0 * static_cast<double>(a.B * a.H) * static_cast<double>(a.len) * static_cast<double>(a.D);
  const int T = threads_for(flops, kGemmFlopsPerThread);
  pool_.reserve(1, k_->decode_ws(a));
  auto f = [&](int64_t task, int tid) { k_->attn_decode(a, task, pool_.scratch(tid, 1)); };
  pool_.run(a.B * a.H, T, f);
}

// ---------------------------------------------------------------------------------------------------------------
// A decode layer in one job
// ---------------------------------------------------------------------------------------------------------------

// The op-by-op decode step issues 5 pool jobs per layer (q/k/v, attention, o, gate/up, down) and runs the norms,
// RoPE, the cache writes and SwiGLU on the calling thread between them, each job costing a publish, a join and a
// close, with the helpers idle in the JS between. Here the layer is one job in 9 phases, each boundary a wait on
// the job's counter. The per-row phases run one task per row on whichever thread claims it; the products take all B
// rows at once (the weights streamed once per step) and are split in aligned column runs as gemm_one / gemm_q8
// split them, and every kernel is called on the same data as there, so the arithmetic of every element is
// unchanged (the small-M kernels give an element the same bits whatever M: kernels_impl.h).
void Engine::decode_layer(const DecodeLayerArgs& a) { decode_layers(&a, 1, nullptr); }

// L layers in one job of L × 10 phases (decode_layers in engine.h): layer l's phases are tasks
// [l·S, (l + 1)·S), S the tasks of one layer, in the order decode_layer runs them. Everything that does not depend
// on the layer (the chunking, the RoPE rows, the int8 offsets, the scratch) is prepared once; the layer only picks
// its weights, its caches and its x/out.
void Engine::decode_layers(const DecodeLayerArgs* ls, int64_t L, const DecodeHead* head) {
  if (L <= 0) return;
  const int64_t entered = decode_trace_on() ? clock_ns(CLOCK_MONOTONIC) : 0;
  const Kernels& k = *k_;
  const DecodeLayerArgs& a0 = ls[0];
  const int64_t B = a0.B, C = a0.C, HD = a0.H * a0.D, KVD = a0.KV * a0.D, F = a0.F, NQKV = HD + 2 * KVD;
  // The scratch's parts on 64-byte lines (see decode_layer_part; the caller's array may start anywhere).
  float* h1 = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(a0.ws) + 63) & ~uintptr_t{63});
  float* qkv = h1 + decode_layer_part(B * C);
  float* att = qkv + decode_layer_part(B * NQKV);
  float* r = att + decode_layer_part(B * HD);
  float* h2 = r + decode_layer_part(B * C);
  float* gu = h2 + decode_layer_part(B * C);
  float* act = gu + decode_layer_part(B * 2 * F);
  float* rstd = act + decode_layer_part(B * F);
  const bool q8 = a0.qkv.w == nullptr;

  // The four products: C[B, N] = A[B, K] · Wᵀ (+ C); W (and, for down, C) per layer.
  struct Prod {
    const float* A;
    float* C;
    int64_t N, K;
    float beta;
  };
  const Prod prods[4] = {{h1, qkv, NQKV, C, 0.0f}, {att, r, C, HD, 1.0f}, {h2, gu, 2 * F, C, 0.0f}, {act, nullptr, C, F, 1.0f}};
  auto mat = [](const DecodeLayerArgs& a, int i) -> const DecodeMat& { return i == 0 ? a.qkv : i == 1 ? a.o : i == 2 ? a.gu : a.down; };
  auto gemm_args = [&](const DecodeLayerArgs& a, int i) {
    const Prod& p = prods[i];
    GemmArgs g;
    g.ta = false, g.tb = true, g.M = B, g.N = p.N, g.K = p.K, g.alpha = 1.0f, g.beta = p.beta;
    g.A = p.A, g.lda = p.K, g.B = mat(a, i).w, g.ldb = p.K, g.C = i == 3 ? a.out : p.C, g.ldc = p.N;
    return g;
  };
  // int8: each product's A rows quantized (q8_quant_act) into q8a_/q8s_/q8c_ at qoff/soff, by the task that
  // finished the row (norms, SwiGLU) or, for the attention output, in a phase of its own. The block sizes are the
  // same in every layer (the caller checks).
  int64_t qoff[4], soff[4];
  // The r16 kernel's software prefetch (Q8GemmArgs::pf) only when the job's int8 weights fit in half the last-level
  // cache. Then a product's stream comes from the L3 and the hardware prefetchers alone leave its latency exposed:
  // prefetcht1 16 KiB ahead made the 12x768 step ~10 % faster on a host with a 480 MiB L3 (89 MB of weights).
  // Streaming from DRAM (2 MiB pages) the same kind of prefetch cost 20-25 % of the rate on the earlier host
  // (docs/LIMITS.md "Session 21: int8 decode stream"), so larger weights keep none. NEUROSHARD_Q8_PF (experiments,
  // read per call): the distance in bytes, negative for prefetcht1, 0 none.
  int64_t q8pf = 0;
  if (q8) {
    static const int64_t llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    double wb = 0;
    for (int i = 0; i < 4; i++) wb += static_cast<double>(prods[i].N) * static_cast<double>(prods[i].K) * (1.0 + 4.0 / static_cast<double>(mat(a0, i).bs));
    if (llc > 0 && wb * static_cast<double>(L) <= 0.5 * static_cast<double>(llc)) q8pf = kQ8Prefetch;
  }
  if (const char* e = env("NEUROSHARD_Q8_PF")) q8pf = std::atoll(e) / 64 * 64;
  if (q8) {
    int64_t qa = 0, sa = 0;
    for (int i = 0; i < 4; i++) {
      qoff[i] = qa, soff[i] = sa;
      qa += B * prods[i].K;
      sa += B * (prods[i].K / mat(a0, i).bs);
    }
    q8a_.resize(static_cast<size_t>(qa));
    q8s_.resize(static_cast<size_t>(sa));
    q8c_.resize(static_cast<size_t>(sa));
  }
  auto quant = [&](int i, int64_t row) {
    const Prod& p = prods[i];
    const int64_t bs = mat(a0, i).bs, nb = p.K / bs;
    k.q8_quant_act(p.A + row * p.K, p.K, bs, q8a_.data() + qoff[i] + row * p.K, q8s_.data() + soff[i] + row * nb, q8c_.data() + soff[i] + row * nb);
  };
  auto q8_args = [&](const DecodeLayerArgs& a, int i) {
    const Prod& p = prods[i];
    const DecodeMat& m = mat(a, i);
    Q8GemmArgs g;
    g.M = B, g.N = p.N, g.K = p.K, g.bs = m.bs, g.A = p.A, g.Q = m.q, g.S = m.s, g.C = i == 3 ? a.out : p.C, g.ldc = p.N, g.beta = p.beta;
    g.Aq = q8a_.data() + qoff[i], g.As = q8s_.data() + soff[i], g.Ac = q8c_.data() + soff[i];
    g.layout = m.layout;
    g.pf = q8pf;
    return g;
  };

  // Threads as gemm_q8 / gemm counts them for the largest product (bytes streamed); chunks per product as there.
  double most = 0;
  for (int i = 0; i < 4; i++) {
    const double wbytes = q8 ? 1.0 + 4.0 / static_cast<double>(mat(a0, i).bs) : 4.0;
    most = std::max(most, static_cast<double>(prods[i].N) * static_cast<double>(prods[i].K) * wbytes);
  }
  const int T = threads_for(most, kGemvBytesPerThread);
  // Chunks of each product, guided: each takes 1/T of the rows still unclaimed (the first thread's chunk half of a
  // product at 2 threads, the second a quarter, ...), at least kDecodeMinRows, so that a thread that is late or
  // descheduled leaves a shrinking tail for the other, and the threads finish a product within a chunk of each
  // other. (Equal eighths, as gemm_one splits, left one thread waiting up to a whole eighth at every product:
  // measured on 12x768 f32 at 2 threads, 0.2-0.3 ms of a 5.1 ms step. 1/(2T) of the rows left down to 16-row chunks,
  // session 23's first split, lost 5-8 % of the products' 2-thread rate to its small tail chunks: each chunk
  // restarts the hardware prefetchers' streams and claims the counter, and a product of 16-row chunks alone runs
  // below one thread's rate; scripts/experiments/q8split.cc and docs/LIMITS.md "Session 23: the products at two
  // threads".) The split never changes an element's arithmetic. Both minimums are multiples of every small-M
  // kernel's rows of W per pass (16 for the r16 groups, 8, 4 or 2).
  // NEUROSHARD_DECODE_SPLIT (experiments, scripts/experiments/split-ab.mjs; read per call): "guided16" the previous
  // split, "guided<R>" 1/(2T) with at least R rows, "halves" T equal chunks, "min<R>" this split with at least R
  // rows (a multiple of 16) a chunk.
  constexpr int64_t kDecodeRows = 16, kDecodeMinRows = 64;
  int64_t div = T, minr = kDecodeMinRows;
  bool halves = false;
  if (const char* e = env("NEUROSHARD_DECODE_SPLIT")) {
    if (std::strncmp(e, "guided", 6) == 0) div = 2 * T, minr = std::max<int64_t>(kDecodeRows, std::atoll(e + 6) / kDecodeRows * kDecodeRows);
    if (std::strncmp(e, "min", 3) == 0) minr = std::max<int64_t>(kDecodeRows, std::atoll(e + 3) / kDecodeRows * kDecodeRows);
    halves = std::strcmp(e, "halves") == 0;
  }
  int64_t first[5];  // chunk c of product i is rows [cut[first[i] + c], cut[first[i] + c + 1]); 4: the head
  int64_t chunks[5] = {0, 0, 0, 0, 0};
  int64_t cut[5 * 64];
  int64_t nc = 0;
  auto split = [&](int i, int64_t N) {
    first[i] = nc;
    int64_t rr = 0;
    cut[nc++] = 0;
    const int64_t half = (N / T + kDecodeRows - 1) / kDecodeRows * kDecodeRows;
    // (on many threads the minimum gives way so that a product still has ~2 chunks a thread)
    const int64_t least = std::max(kDecodeRows, std::min(minr, (N / (2 * T) + kDecodeRows - 1) / kDecodeRows * kDecodeRows));
    while (rr < N) {
      int64_t take = halves ? half : std::max(least, (N - rr + div - 1) / div);
      take = (take + kDecodeRows - 1) / kDecodeRows * kDecodeRows;
      // the last chunk may be short; never more than 62 chunks (the table's room)
      if (nc - first[i] >= 62 || T == 1) take = N - rr;
      rr = std::min(N, rr + take);
      cut[nc++] = rr;
    }
    chunks[i] = nc - first[i] - 1;
  };
  for (int i = 0; i < 4; i++) split(i, prods[i].N);
  // The head (logits[B, V] = rmsnorm(res[L]) · Wᵀ): the product gemm() runs for M ≤ kSmallM (gemm_small over
  // column runs; an element's bits do not depend on the runs), in guided chunks as the layers' products.
  GemmArgs hg;
  if (head != nullptr) {
    split(4, head->V);
    hg.ta = false, hg.tb = true, hg.M = B, hg.N = head->V, hg.K = C, hg.alpha = 1.0f, hg.beta = 0.0f;
    hg.A = head->xf, hg.lda = C, hg.B = head->w, hg.ldb = C, hg.C = head->logits, hg.ldc = head->V;
  }
  {
    size_t most_ws = head != nullptr ? k.gemm_ws(hg) : 0;
    if (!q8)
      for (int i = 0; i < 4; i++) most_ws = std::max(most_ws, k.gemm_ws(gemm_args(a0, i)));
    if (most_ws > 0) pool_.reserve(0, most_ws);
  }
  // Attention of layer l's row b: its own cache, length and scratch (da_[l·B + b]).
  da_.resize(static_cast<size_t>(L * B));
  size_t most_dws = 0;
  int64_t maxpos = -1;
  for (int64_t l = 0; l < L; l++) {
    for (int64_t b = 0; b < B; b++) {
      DecodeArgs& d = da_[static_cast<size_t>(l * B + b)];
      d = DecodeArgs{};
      d.B = 1, d.H = a0.H, d.KV = a0.KV, d.D = a0.D, d.maxS = a0.maxS[b], d.len = a0.pos[b] + 1;
      d.q = qkv + b * NQKV, d.k = ls[l].kc[b], d.v = ls[l].vc[b], d.out = att + b * HD;
      most_dws = std::max(most_dws, k.decode_ws(d));
    }
  }
  for (int64_t b = 0; b < B; b++)
    if (a0.pos[b] < kRopeMaxCached) maxpos = std::max(maxpos, a0.pos[b]);
  pool_.reserve(1, most_dws);
  // The RoPE rows of the B positions, before the job: growing the table to the largest first (it may move), then
  // pointers into it (a position beyond the table is computed into its own row of rope_tmp_).
  rope_tmp_.resize(static_cast<size_t>(B * a0.D));
  if (maxpos >= 0) rope_row(maxpos, a0.D, a0.theta, nullptr);
  const float* cs[kDecodeMaxRows];
  for (int64_t b = 0; b < B; b++) cs[b] = rope_row(a0.pos[b], a0.D, a0.theta, rope_tmp_.data() + b * a0.D);

  // Phases of a layer: 0 rmsnorm | 1 q/k/v | 2 RoPE, cache writes, r = x | 3 attention heads | 4 int8: quantize the
  // attention rows (no tasks for float32) | 5 o | 6 rmsnorm | 7 gate/up | 8 SwiGLU, out = r | 9 down. The single-row
  // phases have a task per row; attention one per (row, head).
  enum : int { kNorm1, kQkv, kRope, kAttn, kQAtt, kO, kNorm2, kGu, kAct, kDown, kPhases };
  // SwiGLU (and its int8 quantization) is per element and per block of bs: each row in `parts` runs of whole
  // units (64 elements, and whole blocks), so the second thread shares the largest of the one-row phases (31.7 µs
  // a 12x768 int8 step at 1 thread). A run's elements get the bits the whole row gets (no run ends mid-vector).
  const int64_t unit = q8 ? std::lcm<int64_t>(kAlign, mat(a0, 3).bs) : kAlign;
  const int64_t parts = T > 1 && F % unit == 0 && F / unit >= T ? T : 1;
  const int64_t sizes[kPhases] = {B, chunks[0], B, B * a0.H, q8 ? B : 0, chunks[1], B, chunks[2], B * parts, chunks[3]};
  int64_t ends[kPhases];
  for (int p = 0, e = 0; p < kPhases; p++) ends[p] = e += sizes[p];
  const int64_t S = ends[kPhases - 1];
  // The job's phase ends: layer l's phase p ends at l·S + ends[p]; then, with the head, its norm (a task per row)
  // and its product.
  const int nph = static_cast<int>(L * kPhases) + (head != nullptr ? 2 : 0);
  lends_.resize(static_cast<size_t>(nph));
  for (int64_t l = 0; l < L; l++)
    for (int p = 0; p < kPhases; p++) lends_[static_cast<size_t>(l * kPhases + p)] = l * S + ends[p];
  if (head != nullptr) {
    lends_[static_cast<size_t>(L * kPhases)] = L * S + B;
    lends_[static_cast<size_t>(L * kPhases + 1)] = L * S + B + chunks[4];
  }
  auto product = [&](const DecodeLayerArgs& a, int i, int64_t c, int tid) {
    const int64_t n0 = cut[first[i] + c], n1 = cut[first[i] + c + 1];
    if (n0 >= n1) return;
    if (q8)
      k.q8_gemm_small(q8_args(a, i), n0, n1);
    else
      k.gemm_small(gemm_args(a, i), n0, n1, pool_.scratch(tid, 0));
  };
  static_assert(kPhases == kDecodePhases, "the trace's phases");
  const bool tr = decode_trace_on();
  // Trace: per layer and phase the first task's start, the last task's end, the summed wall time and the count.
  const size_t ntr = tr ? static_cast<size_t>(L * kPhases) : 0;
  std::unique_ptr<std::atomic<int64_t>[]> t_first(tr ? new std::atomic<int64_t>[ntr] : nullptr), t_last(tr ? new std::atomic<int64_t>[ntr] : nullptr),
      t_wall(tr ? new std::atomic<int64_t>[ntr] : nullptr), t_count(tr ? new std::atomic<int64_t>[ntr] : nullptr);
  for (size_t p = 0; p < ntr; p++) t_first[p] = INT64_MAX, t_last[p] = INT64_MIN, t_wall[p] = 0, t_count[p] = 0;
  auto body = [&](const DecodeLayerArgs& a, const DecodeArgs* da, int ph, int64_t i, int tid) {
    switch (ph) {
      case kNorm1:
        k.rms_fwd(a.x, a.inNorm, h1, rstd, i, i + 1, C, a.eps);
        if (q8) quant(0, i);
        break;
      case kQkv: product(a, 0, i, tid); break;
      case kRope: {
        float* row = qkv + i * NQKV;
        const float* const rows[1] = {cs[i]};
        k.rope(row, 0, 1, 1, a.H, a.D, rows, false);
        k.rope(row + HD, 0, 1, 1, a.KV, a.D, rows, false);
        std::memcpy(a.kc[i] + a.pos[i] * KVD, row + HD, static_cast<size_t>(KVD) * sizeof(float));
        std::memcpy(a.vc[i] + a.pos[i] * KVD, row + HD + KVD, static_cast<size_t>(KVD) * sizeof(float));
        std::memcpy(r + i * C, a.x + i * C, static_cast<size_t>(C) * sizeof(float));
        break;
      }
      case kAttn: k.attn_decode(da[i / a.H], i % a.H, pool_.scratch(tid, 1)); break;
      case kQAtt: quant(1, i); break;
      case kO: product(a, 1, i, tid); break;
      case kNorm2:
        k.rms_fwd(r, a.postNorm, h2, rstd + B, i, i + 1, C, a.eps);
        if (q8) quant(2, i);
        break;
      case kGu: product(a, 2, i, tid); break;
      case kAct: {
        const int64_t row = i / parts, part = i % parts, units = F / (parts > 1 ? unit : F);
        const int64_t f0 = parts > 1 ? units * part / parts * unit : 0, f1 = parts > 1 ? units * (part + 1) / parts * unit : F;
        k.swiglu_fwd(gu + row * 2 * F + f0, gu + row * 2 * F + F + f0, act + row * F + f0, f1 - f0);
        if (q8) {
          const int64_t bs = mat(a0, 3).bs, nb = F / bs;
          k.q8_quant_act(act + row * F + f0, f1 - f0, bs, q8a_.data() + qoff[3] + row * F + f0, q8s_.data() + soff[3] + row * nb + f0 / bs,
                         q8c_.data() + soff[3] + row * nb + f0 / bs);
        }
        if (part == 0) std::memcpy(a.out + row * C, r + row * C, static_cast<size_t>(C) * sizeof(float));
        break;
      }
      default: product(a, 3, i, tid); break;
    }
  };
  const DecodeArgs* da_all = da_.data();
  auto task = [&](int64_t t, int tid) {
    if (t >= L * S) {
      // the head: rows' norms, then the product's chunks
      t -= L * S;
      if (t < B) {
        k.rms_fwd(ls[L - 1].out, head->norm, head->xf, head->rstd, t, t + 1, C, a0.eps);
      } else {
        const int64_t n0 = cut[first[4] + t - B], n1 = cut[first[4] + t - B + 1];
        if (n0 < n1) k.gemm_small(hg, n0, n1, pool_.scratch(tid, 0));
      }
      return;
    }
    const int64_t l = t / S;
    t -= l * S;
    int ph = 0;
    while (t >= ends[ph]) ph++;
    const int64_t i = ph == 0 ? t : t - ends[ph - 1];
    const DecodeLayerArgs& a = ls[l];
    const DecodeArgs* da = da_all + l * B;
    if (!tr) {
      body(a, da, ph, i, tid);
      return;
    }
    // (wall clock only: the thread CPU clock is a system call here, 1.3 µs, more than a small task)
    const int64_t w0 = clock_ns(CLOCK_MONOTONIC);
    body(a, da, ph, i, tid);
    const int64_t w1 = clock_ns(CLOCK_MONOTONIC);
    const size_t j = static_cast<size_t>(l * kPhases + ph);
    atomic_min(t_first[j], w0);
    atomic_max(t_last[j], w1);
    t_wall[j].fetch_add(w1 - w0, std::memory_order_relaxed);
    t_count[j].fetch_add(1, std::memory_order_relaxed);
  };
  const int64_t open = tr ? clock_ns(CLOCK_MONOTONIC) : 0;
  pool_.run_phased(lends_.data(), nph, T, task);
  if (tr) {
    const int64_t close = clock_ns(CLOCK_MONOTONIC);
    // One record per layer, as decode_layer wrote them. For layer l > 0 of one job its entry and open are the
    // previous layer's close (its last task's end), its close its own last task's end: the "between" gap is 0 and
    // the boundary's wait shows in its first phase's start.
    int64_t prev = close;
    for (int64_t l = 0; l < L; l++) {
      int64_t last = INT64_MIN;
      for (int p = 0; p < kPhases; p++) last = std::max(last, t_last[static_cast<size_t>(l * kPhases + p)].load());
      const int64_t lopen = l == 0 ? open : prev, lclose = l == L - 1 ? close : last;
      trace_.push_back(static_cast<double>(l == 0 ? entered : lopen));
      trace_.push_back(static_cast<double>(lopen));
      trace_.push_back(static_cast<double>(lclose));
      for (int p = 0; p < kPhases; p++) {
        const size_t j = static_cast<size_t>(l * kPhases + p);
        const bool ran = t_last[j] != INT64_MIN;
        trace_.push_back(ran ? static_cast<double>(t_first[j] - lopen) : -1.0);
        trace_.push_back(ran ? static_cast<double>(t_last[j] - lopen) : -1.0);
        trace_.push_back(static_cast<double>(t_wall[j].load()));
        trace_.push_back(static_cast<double>(t_count[j].load()));
      }
      prev = lclose;
    }
  }
}

}  // namespace ns
