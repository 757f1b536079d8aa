// The AVX-512 path (AVX-512 F/DQ/BW/VL + FMA + F16C), compiled with a target pragma rather than -march flags so
// that the shipped binary runs on any x86-64 CPU: this code only runs after cpu.cc saw AVX-512 at run time.
// GEMM tile: 8 rows × 32 columns (16 zmm accumulators).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels.h"

#if defined(__x86_64__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's own intrinsic headers trip -Wmaybe-uninitialized (their _mm*_undefined_* helpers): noise, not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

// Standard headers are included above, outside the region, so that their inline functions keep the default target
// and can never be shared with the other paths in an AVX-512 build.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")
#endif

#define NS_ISA_NS avx512
#define NS_ISA_ENUM 2
#define NS_ISA_NAME "avx512"
#define NS_W 16
#define NS_MR 8
#define NS_NV 2
#define NS_KC 384
#define NS_MC 96
#define NS_NC 1024
#define NS_F16C 1
// Software prefetch in the decode GEMVs (kernels_impl.h, NS_GEMV_PF): measured on Zen 4 only, so AVX-512 only.
#define NS_GEMV_PF 1
#include "kernels_impl.h"
#include "kernels_table.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const ns::Kernels* ns::kernels_avx512() { return &ns::avx512::kTable; }
#else
const ns::Kernels* ns::kernels_avx512() { return nullptr; }
#endif
