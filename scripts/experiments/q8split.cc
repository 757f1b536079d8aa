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
//                read2x4-nobar: the reads as 4 streams a thread
//   g++ -std=c++17 -O3 -ffp-contract=fast -fno-math-errno -Wno-psabi -pthread -I. -Isrc/tensor/native -o /tmp/q8split
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
static std::atomic<uint64_t> g_sink{0};
static std::vector<std::vector<int64_t>> g_cuts;

static Q8GemmArgs args(Mat& m) {
  Q8GemmArgs g;
  g.M = 1, g.N = m.N, g.K = m.K, g.bs = 32, g.Q = m.Q, g.S = m.S, g.C = m.C.data(), g.ldc = m.N, g.beta = 0;
  g.Aq = m.aq.data(), g.As = m.as.data(), g.Ac = m.ac.data(), g.layout = kQ8R16;
  return g;
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
    if (g_mode < 5) barrier(gen);
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
                          {"fixed-256", 3, 256}, {"fixed-64", 3, 64}, {"fixed-16", 3, 16}, {"guided-T-min64", 11, 64}, {"read2", 4, 0}, {"read2-nobar", 5, 0}, {"read2x4-nobar", 5, 4}, {"halves-nobar", 6, 0}};
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
        g_fixed = m.mode == 5 ? m.arg : 1;
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
  std::printf("(%g %d)\n", static_cast<double>(mats[5].C[3]), static_cast<int>(g_sink.load() & 1));
  return 0;
}
