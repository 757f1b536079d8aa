#include "blas.h"

#include <mutex>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define NS_HAVE_DLOPEN 1
#endif

namespace ns {

namespace {
std::once_flag g_once;
Blas g_blas;
bool g_ok = false;
std::string g_why;

void load() {
#if NS_HAVE_DLOPEN
  void* h = nullptr;
  for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"}) {
    h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) break;
  }
  if (h == nullptr) {
    g_why = "libopenblas is not installed";
    return;
  }
  auto sgemm = reinterpret_cast<decltype(g_blas.sgemm)>(dlsym(h, "cblas_sgemm"));
  auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"));
  auto get_config = reinterpret_cast<const char* (*)()>(dlsym(h, "openblas_get_config"));
  if (sgemm == nullptr || set_threads == nullptr) {
    g_why = "libopenblas lacks cblas_sgemm or openblas_set_num_threads";
    return;  // the handle stays open: unloading a library that started threads is not safe
  }
  // Our pool supplies the parallelism; OpenBLAS runs single-threaded inside each pool thread.
  set_threads(1);
  g_blas.sgemm = sgemm;
  g_blas.config = get_config != nullptr ? get_config() : "OpenBLAS";
  g_ok = true;
#else
  g_why = "dlopen is not available on this platform";
#endif
}
}  // namespace

const Blas* blas_load(std::string* why) {
  std::call_once(g_once, load);
  if (!g_ok && why != nullptr) *why = g_why;
  return g_ok ? &g_blas : nullptr;
}

}  // namespace ns
