// The AVX2 path (AVX2 + FMA + F16C), compiled with a target pragma rather than -march flags so
// that the shipped binary runs on any x86-64 CPU: this code only runs after cpu.cc saw AVX2, FMA and F16C at run time.
// GEMM tile: 6 rows × 16 columns (12 of the 16 ymm registers accumulate).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.h"

#if defined(__x86_64__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's own intrinsic headers trip -Wmaybe-uninitialized (their _mm*_undefined_* helpers): noise, not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

// Standard headers are included above, outside the region, so that their inline functions keep the default target
// and can never be shared with the other paths in an AVX2 build.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define NS_ISA_NS avx2
#define NS_ISA_ENUM 1
#define NS_ISA_NAME "avx2"
#define NS_W 8
#define NS_MR 6
#define NS_NV 2
#define NS_KC 256
#define NS_MC 96
#define NS_NC 2048
#define NS_F16C 1
#include "kernels_impl.h"
#include "kernels_table.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const ns::Kernels* ns::kernels_avx2() { return &ns::avx2::kTable; }
#else
const ns::Kernels* ns::kernels_avx2() { return nullptr; }
#endif
