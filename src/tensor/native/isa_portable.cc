// The portable path: plain C++ with 16-byte vectors (SSE2 on x86-64, NEON on arm64, scalar code elsewhere), no
// FMA. The fallback on CPUs without AVX2 and the reference for NEUROSHARD_NATIVE_ISA=portable.
// GEMM tile: 6 rows × 8 columns (12 of the 16 xmm registers accumulate).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define NS_ISA_NS portable
#define NS_ISA_ENUM 0
#define NS_ISA_NAME "portable"
#define NS_W 4
#define NS_MR 6
#define NS_NV 2
#define NS_KC 256
#define NS_MC 96
#define NS_NC 2048
#define NS_F16C 0
#include "kernels_impl.h"
#include "kernels_table.h"

const ns::Kernels* ns::kernels_portable() { return &ns::portable::kTable; }
