// Optional OpenBLAS, loaded at run time with dlopen (never linked: the addon builds and runs without it).
//
// When it is used, every pool thread calls cblas_sgemm on its own block of C with OpenBLAS itself held at one
// thread (openblas_set_num_threads(1)), so there is still one level of threading. OpenBLAS picks its own kernel and
// K blocking, so unlike the own GEMM its results are not promised to be bit-identical across thread counts.
#pragma once

#include <string>

namespace ns {

struct Blas {
  // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); CBLAS enum values as ints.
  void (*sgemm)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int) = nullptr;
  std::string config;  // openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"
};

// Loads libopenblas once per process (thread-safe); nullptr when it is not installed or lacks the symbols.
// `why` receives the reason on failure.
const Blas* blas_load(std::string* why);

constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112;

}  // namespace ns
