// What the CPU can run, and how many cores this process may use.
#pragma once

#include "kernels.h"

namespace ns {

// The best path this CPU (and OS: the AVX state must be enabled) supports.
Isa detect_isa();
const char* isa_name(Isa isa);
// "avx512" | "avx2" | "portable" (case-insensitive); false for anything else.
bool parse_isa(const char* s, Isa* out);
// The kernel table of a path, or nullptr when this build has none for it (AVX paths on non-x86 targets).
const Kernels* kernels_for(Isa isa);
// Physical cores this process may run on: the affinity mask, SMT siblings counted once, capped by a cgroup v2 CPU
// quota. At least 1.
int default_threads();

}  // namespace ns
