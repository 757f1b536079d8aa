#include "cpu.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif

namespace ns {

Isa detect_isa() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // libgcc's checks include the OS (XCR0) enabling the AVX and AVX-512 register state.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) return Isa::avx2;
#endif
  return Isa::portable;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

bool parse_isa(const char* s, Isa* out) {
  std::string v;
  for (const char* p = s; *p != '\0'; p++) v.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(*p))));
  if (v == "avx512" || v == "avx-512") {
    *out = Isa::avx512;
  } else if (v == "avx2") {
    *out = Isa::avx2;
  } else if (v == "portable" || v == "generic") {
    *out = Isa::portable;
  } else {
    return false;
  }
  return true;
}

const Kernels* kernels_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kernels_avx512();
    case Isa::avx2: return kernels_avx2();
    default: return kernels_portable();
  }
}

#if defined(__linux__)
static bool read_int(const std::string& path, long* out) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  long v = 0;
  const bool ok = std::fscanf(f, "%ld", &v) == 1;
  std::fclose(f);
  if (ok) *out = v;
  return ok;
}
#endif

int default_threads() {
  int n = 0;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    // Count physical cores: SMT siblings share (package, core id) and add little to GEMM throughput.
    std::set<std::pair<long, long>> cores;
    int logical = 0;
    bool topo = true;
    for (int c = 0; c < CPU_SETSIZE; c++) {
      if (!CPU_ISSET(c, &set)) continue;
      logical++;
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
      long pkg = 0, core = 0;
      if (!read_int(base + "physical_package_id", &pkg) || !read_int(base + "core_id", &core)) topo = false;
      cores.insert({pkg, core});
    }
    n = topo && !cores.empty() ? static_cast<int>(cores.size()) : logical;
  }
  // A cgroup v2 quota ("200000 100000" = 2 CPUs) caps what a container may use whatever the mask says.
  if (FILE* f = std::fopen("/sys/fs/cgroup/cpu.max", "r")) {
    char quota[32] = {0};
    long period = 0;
    if (std::fscanf(f, "%31s %ld", quota, &period) == 2 && std::strcmp(quota, "max") != 0 && period > 0) {
      const long q = std::atol(quota);
      const int cap = static_cast<int>(std::ceil(static_cast<double>(q) / static_cast<double>(period)));
      if (cap >= 1 && (n == 0 || cap < n)) n = cap;
    }
    std::fclose(f);
  }
#endif
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  return n;
}

}  // namespace ns
