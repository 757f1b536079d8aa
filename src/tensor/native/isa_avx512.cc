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

namespace ns {
namespace avx512 {
// 64-byte aligned loads summed into 64-bit lanes, no stores, no streaming hint (the decode's weight reads are plain
// loads too). `streams` equal parts of [p, p + n) are read side by side, 128 bytes of each per step (two add chains
// per part): several sequential streams keep more misses in flight on the hardware prefetchers than one.
uint64_t read_sum(const uint8_t* p, size_t n, int streams) {
  __m512i acc[8];
  for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_si512();
  const size_t part = (n / static_cast<size_t>(streams)) & ~size_t{127};
  if (streams == 1) {
    for (size_t i = 0; i < part; i += 256) {
      acc[0] = _mm512_add_epi64(acc[0], _mm512_load_si512(p + i));
      acc[1] = _mm512_add_epi64(acc[1], _mm512_load_si512(p + i + 64));
      acc[2] = _mm512_add_epi64(acc[2], _mm512_load_si512(p + i + 128));
      acc[3] = _mm512_add_epi64(acc[3], _mm512_load_si512(p + i + 192));
    }
  } else if (streams == 2) {
    const uint8_t* q = p + part;
    for (size_t i = 0; i < part; i += 128) {
      acc[0] = _mm512_add_epi64(acc[0], _mm512_load_si512(p + i));
      acc[1] = _mm512_add_epi64(acc[1], _mm512_load_si512(p + i + 64));
      acc[2] = _mm512_add_epi64(acc[2], _mm512_load_si512(q + i));
      acc[3] = _mm512_add_epi64(acc[3], _mm512_load_si512(q + i + 64));
    }
  } else {
    const uint8_t* q[4] = {p, p + part, p + 2 * part, p + 3 * part};
    for (size_t i = 0; i < part; i += 128)
      for (int j = 0; j < 4; j++) {
        acc[2 * j] = _mm512_add_epi64(acc[2 * j], _mm512_load_si512(q[j] + i));
        acc[2 * j + 1] = _mm512_add_epi64(acc[2 * j + 1], _mm512_load_si512(q[j] + i + 64));
      }
  }
  __m512i a = acc[0];
  for (int j = 1; j < 8; j++) a = _mm512_add_epi64(a, acc[j]);
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(a));
}
}  // namespace avx512
}  // namespace ns

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const ns::Kernels* ns::kernels_avx512() { return &ns::avx512::kTable; }
uint64_t ns::read_sum_avx512(const uint8_t* p, size_t n, int streams) { return ns::avx512::read_sum(p, n, streams); }
#else
const ns::Kernels* ns::kernels_avx512() { return nullptr; }
uint64_t ns::read_sum_avx512(const uint8_t*, size_t, int) { return 0; }
#endif
