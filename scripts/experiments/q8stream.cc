// Session 21 (issue 10, helper int8stream): the int8 decode GEMV (q8_gemm_small over the r16 layout, one row of A,
// the kernel a batch-1 int8 decode step runs) against a plain read of the same bytes, one thread, no addon, no JS.
// Builds the AVX-512 kernel table from the sources as the addon does and times, best of `reps` passes:
//   kernel      the product over `nmat` matrices [N, K] in turn (codes + scales, ~85-115 MB: not cache-resident)
//   read 1 / 4  the same bytes read by the bench's ReadProbe loop (read_sum) as 1 and as 4 streams
//   kernel hot  the product over one matrix's first 128 rows, repeated (L2-resident: the kernel's compute ceiling)
// The weights sit on 2 MiB transparent huge pages as the addon puts them (addon.cc); HUGE=0 for 4 KiB pages.
//   g++ -std=c++17 -O3 -ffp-contract=fast -fno-math-errno -Wno-psabi -I. -Isrc/tensor/native -o /tmp/q8stream
//       scripts/experiments/q8stream.cc && nice -n 5 /tmp/q8stream [K 768] [N 2048] [nmat 48] [reps 40]
// (the old kernel: the same with -I pointing at an older checkout's src/tensor/native)
#include "isa_avx512.cc"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
static void* halloc(size_t n) {
  const size_t huge = size_t{2} << 20;
  n = (n + huge - 1) & ~(huge - 1);
  void* p = std::aligned_alloc(huge, n);
  const char* h = std::getenv("HUGE");
  if (h == nullptr || h[0] != '0') madvise(p, n, MADV_HUGEPAGE);
  return p;
}

int main(int argc, char** argv) {
  using namespace ns;
  const int64_t K = argc > 1 ? std::atoll(argv[1]) : 768, N = argc > 2 ? std::atoll(argv[2]) : 2048;
  const int nmat = argc > 3 ? std::atoi(argv[3]) : 48, reps = argc > 4 ? std::atoi(argv[4]) : 40;
  const Kernels* kt = &avx512::kTable;
  const int64_t bs = 32, nb = K / bs;
  const size_t qbytes = static_cast<size_t>(N * K), sbytes = static_cast<size_t>(N * nb) * 4;
  std::vector<int8_t*> Q(nmat);
  std::vector<float*> S(nmat);
  for (int m = 0; m < nmat; m++) {
    Q[m] = static_cast<int8_t*>(halloc(qbytes));
    S[m] = static_cast<float*>(halloc(sbytes));
    for (size_t i = 0; i < qbytes; i++) Q[m][i] = static_cast<int8_t>((i * 2654435761u + m) >> 13);
    for (size_t i = 0; i < static_cast<size_t>(N * nb); i++) S[m][i] = 1e-3f * static_cast<float>(1 + i % 7);
  }
  std::vector<float> x(K), C(N);
  for (int64_t k = 0; k < K; k++) x[k] = std::sin(0.37f * static_cast<float>(k));
  std::vector<int8_t> aq(K);
  std::vector<float> as(nb);
  std::vector<int32_t> ac(nb);
  kt->q8_quant_act(x.data(), K, bs, aq.data(), as.data(), ac.data());
  auto args = [&](int m) {
    Q8GemmArgs g;
    g.M = 1, g.N = N, g.K = K, g.bs = bs, g.Q = Q[m], g.S = S[m], g.C = C.data(), g.ldc = N, g.beta = 0;
    g.Aq = aq.data(), g.As = as.data(), g.Ac = ac.data(), g.layout = kQ8R16;
    return g;
  };
  const double total = static_cast<double>(nmat) * static_cast<double>(qbytes + sbytes);
  double tk = 1e9, t1 = 1e9, t4 = 1e9, th = 1e9;
  uint64_t sink = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int m = 0; m < nmat; m++) kt->q8_gemm_small(args(m), 0, N);
    tk = std::min(tk, now() - t0);
    for (int streams : {1, 4}) {
      t0 = now();
      for (int m = 0; m < nmat; m++)
        sink += avx512::read_sum(reinterpret_cast<const uint8_t*>(Q[m]), qbytes, streams) +
                avx512::read_sum(reinterpret_cast<const uint8_t*>(S[m]), sbytes & ~size_t{255}, 1);
      (streams == 1 ? t1 : t4) = std::min(streams == 1 ? t1 : t4, now() - t0);
    }
    t0 = now();
    for (int64_t it = 0; it < nmat * (N / 128); it++) kt->q8_gemm_small(args(0), 0, 128);
    th = std::min(th, now() - t0);
  }
  std::printf("K=%ld N=%ld %.1f MB: kernel %.1f GB/s | read 1 stream %.1f | read 4 streams %.1f | kernel hot (L2) %.1f  (%g %d)\n",
              static_cast<long>(K), static_cast<long>(N), total / 1e6, total / tk / 1e9, total / t1 / 1e9, total / t4 / 1e9,
              total / th / 1e9, static_cast<double>(C[5]), static_cast<int>(sink & 1));
  return 0;
}
