// Session 23 (issue 10, helper prefetch): the int8 decode products of a 12x768 step (12 layers × qkv [1536, 768],
// o [768, 768], gate/up [4096, 768], down [768, 2048], r16 layout, bs 32, ~87 MB) at 1 and 2 threads, split as
// the engine splits them and otherwise, with a spin barrier between products as the pool's phase boundary.
// No addon, no JS. Modes (each timed best-of and median over `reps` passes of the 48 products):
//   1t           one thread, each product whole
//   guided       2 threads, chunks claimed from a shared counter, each 1/(2T) of the rows left (≥ 16), as
//                Engine::decode_layers
//   halves       2 threads, thread t takes rows [t·N/2, (t+1)·N/2) (on 16-row groups), no counter
//   fixed R      2 threads, chunks of R rows from a shared counter
//   guided-T-min64  each chunk half of the rows left (the first thread's chunk N/2), at least 64 rows
//   read2        2 threads each reading its half of every matrix (read_sum, 1 stream), the same barriers
//   read2-nobar, halves-nobar   the same without the barriers (each thread streams its halves back to back);
//                read2x4-nobar: the reads as 4 streams a thread; read2x2, read2x4: with the barriers
//   halves-sSxR  (helper streams) halves, each thread's half cut in S sub-ranges walked alternately R rows at a
//                time (the kernel called on R rows of each in turn: S streams a thread, switched every 12-48 KB)
//   multiS       halves, each half as S runs of 16-row groups advanced one block (512 bytes) of each in turn
//   fineS        the same, the runs' vectors loaded alternately 128 bytes at a time (as read_sum's streams);
//                multiS-pf1k: with prefetcht0 1 KiB ahead; read2x2, read2x4: read2 as 2 or 4 streams a thread
//   Then: same bits (each product by the kernel and by multi/fine, compared element by element) and a "hot" rate
//   (one thread, the o product's 0.6 MB in L2: the kernels' compute rate). docs/LIMITS.md "Session 23: interleaved
//   streams". The multi/fine modes need VNNI inlined into a lambda: build with -march=native (AVX-512 VNNI host).
//   g++ -std=c++17 -O3 -march=native -ffp-contract=fast -fno-math-errno -Wno-psabi -pthread -I. -Isrc/tensor/native -o /tmp/q8split
//       scripts/experiments/q8split.cc && nice -n 5 /tmp/q8split [reps 30]
#include "isa_avx512.cc"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
static void* halloc(size_t n) {
  const size_t huge = size_t{2} << 20;
  n = (n + huge - 1) & ~(huge - 1);
  void* p = std::aligned_alloc(huge, n);
  madvise(p, n, MADV_HUGEPAGE);
  return p;
}

using namespace ns;
struct Mat {
  int64_t N, K;
  int8_t* Q;
  float* S;
  std::vector<int8_t> aq;
  std::vector<float> as;
  std::vector<int32_t> ac;
  std::vector<float> C;
};
static const Kernels* kt = &avx512::kTable;
static std::vector<Mat> mats;
static double total = 0;

// the pass's shared state
static std::atomic<int64_t> g_next{0};
static std::atomic<int> g_bar{0};
static std::atomic<int> g_go{0};
static int g_mode = 0;  // 1 guided, 2 halves, 3 fixed, 4 read2
static int64_t g_fixed = 64;
static int64_t g_step = 16;
static std::atomic<uint64_t> g_sink{0};
static std::vector<std::vector<int64_t>> g_cuts;

static Q8GemmArgs args(Mat& m) {
  Q8GemmArgs g;
  g.M = 1, g.N = m.N, g.K = m.K, g.bs = 32, g.Q = m.Q, g.S = m.S, g.C = m.C.data(), g.ldc = m.N, g.beta = 0;
  g.Aq = m.aq.data(), g.As = m.as.data(), g.Ac = m.ac.data(), g.layout = kQ8R16;
  return g;
}


// (helper streams) the VNNI group kernel of kernels_impl.h (q8q8_vnni16_t, bs 32, M 1) over S groups at once: the
// groups' blocks advanced side by side (block b of group 0, block b of group 1, ...), each group with its own
// accumulators in the same order as the kernel's, so each element's arithmetic is the kernel's. S sequential streams
// a thread interleaved at 512-byte granularity instead of one.
static int64_t g_pf = 0;
static bool g_fine = false;
template <int S>
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c,avx512vnni"))) static void vnni16_multi(
    const Q8GemmArgs& g, const int64_t* ns) {
  const int64_t K = g.K, bs = 32, nb = K / bs, vpb = 8;
  const __m512i off = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* xq = g.Aq;
  const float* xs = g.As;
  const int32_t* xc = g.Ac;
  __m512d acc[S][8][2];
  for (int t = 0; t < S; t++)
    for (int j = 0; j < 8; j++) acc[t][j][0] = acc[t][j][1] = _mm512_setzero_pd();
  auto block = [&](int t, int64_t b, int j) {
    const int8_t* qb = g.Q + ns[t] * K + b * bs * 16;
    const float* sp = g.S + ns[t] * nb;
    const int8_t* xb = xq + b * bs;
    if (g_pf > 0) {  // software prefetch g_pf bytes ahead in this group's stream (the 8 lines of a later block)
#pragma GCC unroll 8
      for (int l = 0; l < 8; l++) _mm_prefetch(reinterpret_cast<const char*>(qb + g_pf + 64 * l), _MM_HINT_T0);
    }
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
    const __m512 d = _mm512_mul_ps(_mm512_loadu_ps(sp + 16 * b), _mm512_set1_ps(xs[b]));
    acc[t][j][0] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(isum)), _mm512_cvtps_pd(_mm512_castps512_ps256(d)), acc[t][j][0]);
    acc[t][j][1] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(isum, 1)), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1))), acc[t][j][1]);
  };
  // g_fine: block b of all S groups in one loop, their vectors' loads alternating 128 bytes at a time (as read_sum's
  // streams do); each group's own dpbusd chains and accumulation order unchanged
  auto blocks = [&](int64_t b, int j) {
    __m512i d0[S], d1[S];
    for (int t = 0; t < S; t++) d0[t] = d1[t] = _mm512_setzero_si512();
    const int8_t* xb = xq + b * bs;
#pragma GCC unroll 8
    for (int64_t v = 0; v < vpb; v += 2) {
      int32_t x0, x1;
      std::memcpy(&x0, xb + 4 * v, 4);
      std::memcpy(&x1, xb + 4 * v + 4, 4);
#pragma GCC unroll 4
      for (int t = 0; t < S; t++) {
        const int8_t* qb = g.Q + ns[t] * K + b * bs * 16;
        d0[t] = _mm512_dpbusd_epi32(d0[t], _mm512_xor_si512(_mm512_loadu_si512(qb + 64 * v), off), _mm512_set1_epi32(x0));
        d1[t] = _mm512_dpbusd_epi32(d1[t], _mm512_xor_si512(_mm512_loadu_si512(qb + 64 * v + 64), off), _mm512_set1_epi32(x1));
      }
    }
#pragma GCC unroll 4
    for (int t = 0; t < S; t++) {
      const float* sp = g.S + ns[t] * nb;
      const __m512i isum = _mm512_sub_epi32(_mm512_add_epi32(d0[t], d1[t]), _mm512_set1_epi32(xc[b]));
      const __m512 d = _mm512_mul_ps(_mm512_loadu_ps(sp + 16 * b), _mm512_set1_ps(xs[b]));
      acc[t][j][0] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(isum)), _mm512_cvtps_pd(_mm512_castps512_ps256(d)), acc[t][j][0]);
      acc[t][j][1] = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(isum, 1)), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1))), acc[t][j][1]);
    }
  };
  int64_t b0 = 0;
  if (g_fine)
    for (; b0 + 8 <= nb; b0 += 8)
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++) blocks(b0 + j, j);
  for (; b0 + 8 <= nb; b0 += 8)
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
#pragma GCC unroll 4
      for (int t = 0; t < S; t++) block(t, b0 + j, j);
  for (int j = 0; j < 8; j++)
    if (b0 + j < nb)
      for (int t = 0; t < S; t++) block(t, b0 + j, j);
  for (int t = 0; t < S; t++) {
    float* c = g.C + ns[t];
    for (int h = 0; h < 2; h++) {
      const __m512d u = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(acc[t][0][h], acc[t][4][h]), _mm512_add_pd(acc[t][2][h], acc[t][6][h])),
                                      _mm512_add_pd(_mm512_add_pd(acc[t][1][h], acc[t][5][h]), _mm512_add_pd(acc[t][3][h], acc[t][7][h])));
      _mm256_storeu_ps(c + 8 * h, _mm512_cvtpd_ps(u));
    }
  }
}
// rows [a, b) (multiples of 16) as S sub-ranges walked side by side, one group of each at a time
static void gemm_multi(const Q8GemmArgs& g, int64_t a, int64_t b, int S) {
  const int64_t groups = (b - a) / 16, per = groups / S;
  for (int64_t i = 0; i < per; i++) {
    int64_t ns[4];
    for (int t = 0; t < S; t++) ns[t] = a + (t * per + i) * 16;
    if (S == 2) vnni16_multi<2>(g, ns);
    else if (S == 4) vnni16_multi<4>(g, ns);
    else vnni16_multi<1>(g, ns);
  }
  if (a + S * per * 16 < b) kt->q8_gemm_small(g, a + S * per * 16, b);
}

// barrier for 2 threads, generation-counted; also resets the claim counter
static void barrier(int& gen) {
  gen++;
  if (g_bar.fetch_add(1) % 2 == 1) {
    g_next.store(0, std::memory_order_relaxed);
    g_go.store(gen, std::memory_order_release);
  } else {
    while (g_go.load(std::memory_order_acquire) < gen) _mm_pause();
  }
}

static void pass(int tid, int& gen) {
  for (size_t i = 0; i < mats.size(); i++) {
    Mat& m = mats[i];
    const Q8GemmArgs g = args(m);
    if (g_mode == 2 || g_mode == 6) {
      const int64_t h = (m.N / 2 + 15) & ~int64_t{15};
      kt->q8_gemm_small(g, tid == 0 ? 0 : h, tid == 0 ? h : m.N);
    } else if (g_mode == 8) {
      const int64_t h = (m.N / 2 + 15) & ~int64_t{15};
      gemm_multi(g, tid == 0 ? 0 : h, tid == 0 ? h : m.N, static_cast<int>(g_fixed));
    } else if (g_mode == 7) {
      // halves, each thread's half walked as g_fixed sub-ranges (S) advanced alternately, g_step rows of each in turn
      const int64_t h = (m.N / 2 + 15) & ~int64_t{15};
      const int64_t a = tid == 0 ? 0 : h, b = tid == 0 ? h : m.N, S = g_fixed;
      const int64_t part = ((b - a) / S + 15) & ~int64_t{15};
      for (int64_t i = 0; i < part; i += g_step)
        for (int64_t s = 0; s < S; s++) {
          const int64_t r0 = a + s * part + i, r1 = std::min({a + s * part + i + g_step, a + (s + 1) * part, b});
          if (r0 < r1) kt->q8_gemm_small(g, r0, r1);
        }
    } else if (g_mode == 4 || g_mode == 5) {
      const size_t h = static_cast<size_t>(m.N / 2 * m.K);
      uint64_t s = avx512::read_sum(reinterpret_cast<const uint8_t*>(m.Q) + (tid ? h : 0), h, g_fixed > 0 ? static_cast<int>(g_fixed) : 1);
      s += avx512::read_sum(reinterpret_cast<const uint8_t*>(m.S) + (tid ? h / 8 : 0), h / 8, 1);
      g_sink.fetch_add(s, std::memory_order_relaxed);
    } else {
      const std::vector<int64_t>& cut = g_cuts[i];
      for (;;) {
        const int64_t c = g_next.fetch_add(1, std::memory_order_relaxed);
        if (c + 1 >= static_cast<int64_t>(cut.size())) break;
        kt->q8_gemm_small(g, cut[c], cut[c + 1]);
      }
    }
    if (g_mode < 5 || g_mode >= 7) barrier(gen);
  }
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  const int64_t shapes[4][2] = {{1536, 768}, {768, 768}, {4096, 768}, {768, 2048}};
  for (int l = 0; l < 12; l++)
    for (auto& s : shapes) {
      Mat m;
      m.N = s[0], m.K = s[1];
      const size_t qb = static_cast<size_t>(m.N * m.K), nb = static_cast<size_t>(m.N * m.K / 32);
      m.Q = static_cast<int8_t*>(halloc(qb));
      m.S = static_cast<float*>(halloc(nb * 4));
      for (size_t i = 0; i < qb; i++) m.Q[i] = static_cast<int8_t>((i * 2654435761u + l) >> 13);
      for (size_t i = 0; i < nb; i++) m.S[i] = 1e-3f * static_cast<float>(1 + i % 7);
      std::vector<float> x(m.K);
      for (int64_t k = 0; k < m.K; k++) x[k] = std::sin(0.37f * static_cast<float>(k));
      m.aq.resize(m.K), m.as.resize(m.K / 32), m.ac.resize(m.K / 32), m.C.resize(m.N);
      kt->q8_quant_act(x.data(), m.K, 32, m.aq.data(), m.as.data(), m.ac.data());
      total += static_cast<double>(qb + nb * 4);
      mats.push_back(std::move(m));
    }
  auto guided = [](int64_t N, int T, int64_t minr) {
    std::vector<int64_t> cut{0};
    int64_t rr = 0;
    while (rr < N) {
      int64_t take = (N - rr + 2 * T - 1) / (2 * T);
      if (T < 0) take = (N - rr + 1) / 2;  // first chunk half of what is left
      take = std::max(minr, (take + 15) / 16 * 16);
      rr = std::min(N, rr + take);
      cut.push_back(rr);
    }
    return cut;
  };
  auto fixed = [](int64_t N, int64_t R) {
    std::vector<int64_t> cut{0};
    for (int64_t r = R; r < N + R; r += R) cut.push_back(std::min(N, r));
    return cut;
  };
  struct M {
    std::string name;
    int mode;
    int64_t arg;
  };
  std::vector<M> modes = {{"1t", 0, 0}, {"guided", 1, 16}, {"guided-min64", 1, 64}, {"guided-min128", 1, 128}, {"halves", 2, 0},
                          {"fixed-256", 3, 256}, {"fixed-64", 3, 64}, {"fixed-16", 3, 16}, {"guided-T-min64", 11, 64}, {"read2", 4, 0}, {"read2-nobar", 5, 0}, {"read2x4-nobar", 5, 4}, {"halves-nobar", 6, 0},
                          {"halves-s2x16", 7, 2}, {"halves-s4x16", 7, 4}, {"halves-s4x64", 7, 1004}, {"halves-s2x64", 7, 1002}, {"multi1", 8, 1}, {"multi2", 8, 2}, {"multi4", 8, 4}, {"multi1-pf1k", 8, 1 + 10000}, {"multi2-pf1k", 8, 2 + 10000}, {"fine2", 8, 2 + 100000}, {"fine4", 8, 4 + 100000}, {"read2x2", 4, 2}, {"read2x4", 4, 4}};
  std::vector<std::vector<double>> times(modes.size());
  // the helper thread: runs a pass whenever g_run changes
  std::atomic<int> run{0}, done{0};
  std::atomic<bool> quit{false};
  int gen1 = 0;
  std::thread helper([&] {
    int seen = 0;
    for (;;) {
      int r;
      while ((r = run.load(std::memory_order_acquire)) == seen && !quit.load()) _mm_pause();
      if (quit.load()) return;
      seen = r;
      pass(1, gen1);
      done.store(r, std::memory_order_release);
    }
  });
  int gen0 = 0, runs = 0;
  for (int rep = 0; rep < reps; rep++)
    for (size_t mi = 0; mi < modes.size(); mi++) {
      const M& m = modes[(mi + rep) % modes.size()];  // rotate the order
      double t0;
      if (m.mode == 0) {
        t0 = now();
        for (Mat& x : mats) kt->q8_gemm_small(args(x), 0, x.N);
      } else {
        g_mode = m.mode == 1 || m.mode == 11 ? 1 : m.mode;
        g_fixed = m.mode == 5 || m.mode == 4 || m.mode == 7 || m.mode == 8 ? (m.arg > 0 ? m.arg % 100000 % 10000 % 1000 : 1) : 1;
        g_step = m.arg > 1000 && m.arg < 10000 ? 64 : 16;
        g_pf = m.mode == 8 ? m.arg % 100000 / 10000 * 1024 : 0;
        g_fine = m.arg >= 100000;
        g_cuts.clear();
        if (m.mode == 1 || m.mode == 3 || m.mode == 11)
          for (Mat& x : mats) g_cuts.push_back(m.mode == 1 ? guided(x.N, 2, m.arg) : m.mode == 11 ? guided(x.N, -1, m.arg) : fixed(x.N, m.arg));
        g_next.store(0);
        t0 = now();
        run.store(++runs, std::memory_order_release);
        pass(0, gen0);
        while (done.load(std::memory_order_acquire) != runs) _mm_pause();
      }
      times[(mi + rep) % modes.size()].push_back(now() - t0);
    }
  quit.store(true);
  helper.join();
  std::printf("%.1f MB per pass, %d reps\n", total / 1e6, reps);
  for (size_t i = 0; i < modes.size(); i++) {
    std::vector<double>& t = times[i];
    std::sort(t.begin(), t.end());
    std::printf("  %-14s best %.1f GB/s (%.3f ms)  median %.1f GB/s\n", modes[i].name.c_str(), total / t[0] / 1e9, t[0] * 1e3, total / t[t.size() / 2] / 1e9);
  }
  // same bits: every product by the kernel and by gemm_multi with 1, 2 and 4 streams, compared element by element
  g_pf = 0;
  for (int S : {1, 2, 4, 102, 104}) {
    g_fine = S > 100;
    S %= 100;
    size_t diff = 0;
    for (Mat& m : mats) {
      const Q8GemmArgs g = args(m);
      kt->q8_gemm_small(g, 0, m.N);
      const std::vector<float> ref = m.C;
      std::fill(m.C.begin(), m.C.end(), 0.0f);
      const int64_t h = (m.N / 2 + 15) & ~int64_t{15};
      gemm_multi(g, 0, h, S);
      gemm_multi(g, h, m.N, S);
      diff += std::memcmp(ref.data(), m.C.data(), ref.size() * 4) != 0;
    }
    std::printf("  same bits %s%d: %s\n", g_fine ? "fine" : "multi", S, diff ? "NO" : "yes");
  }
  // compute-bound rate: one thread, a product whose weights stay in L2 (o: 768 x 768, 0.6 MB), 200 calls
  g_fine = false;
  for (int S : {0, 1, 2, 4, 102, 104}) {
    g_fine = S > 100;
    S %= 100;
    Mat& m = mats[1];
    const Q8GemmArgs g = args(m);
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
      const double t0 = now();
      for (int k = 0; k < 200; k++) {
        if (S == 0) kt->q8_gemm_small(g, 0, m.N);
        else gemm_multi(g, 0, m.N, S);
      }
      best = std::min(best, now() - t0);
    }
    std::printf("  hot 1 thread %s%d: %.1f GB/s\n", g_fine ? "fine" : S ? "multi" : "kernel", S, 200.0 * static_cast<double>(m.N * m.K * 9 / 8) / best / 1e9);
  }
  std::printf("(%g %d)\n", static_cast<double>(mats[5].C[3]), static_cast<int>(g_sink.load() & 1));
  return 0;
}
