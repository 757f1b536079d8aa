// The N-API surface of the compute addon. Every function is synchronous and works in place on the caller's typed
// arrays (no copies). Arguments are checked here, cheaply: the type of each array, and its length against the sizes
// passed, so that a wrong call throws a JS TypeError/RangeError (with code ERR_NEUROSHARD_NATIVE_ARG) instead of
// reading or writing out of bounds. Shape semantics (does this tensor fit that op?) are the TypeScript ops layer's job.
//
// Context-aware: each JS environment (main thread, every worker_thread) gets its own Engine (thread pool, caches)
// as N-API instance data, destroyed with the environment. There are no static JS handles.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#endif

#include "cpu.h"
#include "engine.h"

namespace ns {
namespace {

// Largest size accepted for any one dimension or offset (products are checked in 128-bit arithmetic).
constexpr int64_t kMaxDim = int64_t{1} << 46;

// One engine per environment, made at its first use: a thread that loads the addon only to prime another thread's
// pool (poolPrimeId, the main thread of a node) starts no pool threads of its own.
Engine& engine(const Napi::CallbackInfo& info) {
  Engine* e = info.Env().GetInstanceData<Engine>();
  if (e == nullptr) {
    e = new Engine();
    info.Env().SetInstanceData<Engine>(e);
  }
  return *e;
}

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}

  [[noreturn]] void fail(const std::string& msg, bool type = false) const {
    Napi::Error e = type ? static_cast<Napi::Error>(Napi::TypeError::New(env_, std::string("neuroshard_native.") + fn_ + ": " + msg))
                         : static_cast<Napi::Error>(Napi::RangeError::New(env_, std::string("neuroshard_native.") + fn_ + ": " + msg));
    e.Set("code", Napi::String::New(env_, "ERR_NEUROSHARD_NATIVE_ARG"));
    throw e;
  }

  // A typed array of the given type with at least `need` elements; returns its first element.
  void* array(int i, const char* name, napi_typedarray_type want, const char* want_name, __int128 need) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value ab;
    size_t byte_offset = 0;
    if (static_cast<size_t>(i) >= info_.Length() ||
        napi_get_typedarray_info(env_, info_[i], &type, &length, &data, &ab, &byte_offset) != napi_ok) {
      fail(std::string(name) + " must be a " + want_name, true);
    }
    if (type != want) fail(std::string(name) + " must be a " + want_name, true);
    if (need > static_cast<__int128>(length))
      fail(std::string(name) + " has " + std::to_string(length) + " elements, the sizes given need " + std::to_string(static_cast<int64_t>(need)));
    return data;
  }
  float* f32(int i, const char* name, __int128 need) const {
    return static_cast<float*>(array(i, name, napi_float32_array, "Float32Array", need));
  }
  // A Float32Array, or null/undefined (returns nullptr).
  float* f32_opt(int i, const char* name, __int128 need) const {
    if (static_cast<size_t>(i) >= info_.Length() || info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return f32(i, name, need);
  }
  // Element j of a JS array argument: a Float32Array with at least `need` elements.
  float* f32_at(int i, int64_t j, const char* name, __int128 need) const {
    if (static_cast<size_t>(i) >= info_.Length() || !info_[i].IsArray()) fail(std::string(name) + " must be an array of Float32Arrays", true);
    Napi::Array arr = info_[i].As<Napi::Array>();
    if (static_cast<int64_t>(arr.Length()) <= j) fail(std::string(name) + " has " + std::to_string(arr.Length()) + " entries, need " + std::to_string(j + 1));
    const std::string what = std::string(name) + "[" + std::to_string(j) + "]";
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value ab;
    size_t byte_offset = 0;
    if (napi_get_typedarray_info(env_, arr.Get(static_cast<uint32_t>(j)), &type, &length, &data, &ab, &byte_offset) != napi_ok ||
        type != napi_float32_array)
      fail(what + " must be a Float32Array", true);
    if (need > static_cast<__int128>(length))
      fail(what + " has " + std::to_string(length) + " elements, the sizes given need " + std::to_string(static_cast<int64_t>(need)));
    return static_cast<float*>(data);
  }
  int32_t* i32(int i, const char* name, __int128 need) const {
    return static_cast<int32_t*>(array(i, name, napi_int32_array, "Int32Array", need));
  }
  int32_t* i32_opt(int i, const char* name, __int128 need) const {
    if (static_cast<size_t>(i) >= info_.Length() || info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return i32(i, name, need);
  }
  uint16_t* u16(int i, const char* name, __int128 need) const {
    return static_cast<uint16_t*>(array(i, name, napi_uint16_array, "Uint16Array", need));
  }
  int8_t* i8(int i, const char* name, __int128 need) const {
    return static_cast<int8_t*>(array(i, name, napi_int8_array, "Int8Array", need));
  }

  double num(int i, const char* name) const {
    if (static_cast<size_t>(i) >= info_.Length() || !info_[i].IsNumber()) fail(std::string(name) + " must be a number", true);
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  double finite(int i, const char* name) const {
    const double v = num(i, name);
    if (!std::isfinite(v)) fail(std::string(name) + " must be finite");
    return v;
  }
  // An integer in [lo, kMaxDim].
  int64_t dim(int i, const char* name, int64_t lo = 0) const {
    const double v = num(i, name);
    if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(kMaxDim)) || std::floor(v) != v)
      fail(std::string(name) + " must be an integer in [" + std::to_string(lo) + ", 2^46], got " + std::to_string(v));
    return static_cast<int64_t>(v);
  }
  bool flag(int i, const char* name) const {
    if (static_cast<size_t>(i) >= info_.Length() || !info_[i].IsBoolean()) fail(std::string(name) + " must be a boolean", true);
    return info_[i].As<Napi::Boolean>().Value();
  }
  std::string str(int i, const char* name) const {
    if (static_cast<size_t>(i) >= info_.Length() || !info_[i].IsString()) fail(std::string(name) + " must be a string", true);
    return info_[i].As<Napi::String>().Utf8Value();
  }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* fn_;
};

using I128 = __int128;

// Elements a strided batch of matrices spans: off + (batch−1)·stride + (rows−1)·ld + cols (0 when empty).
I128 span(int64_t off, int64_t batch, int64_t stride, int64_t rows, int64_t ld, int64_t cols) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  return static_cast<I128>(off) + static_cast<I128>(batch - 1) * stride + static_cast<I128>(rows - 1) * ld + cols;
}

// ---- configuration ----

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine& e = engine(info);
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", isa_name(e.isa()));
  o.Set("detectedIsa", isa_name(e.detected_isa()));
  // The int8 matrix layout the current path's decode kernels read fastest (kernels.h): groups of 16 rows for the
  // AVX-512 VNNI group kernel; row-major for the others (they read the grouped layout a gathered row at a time).
#if defined(__x86_64__)
  const bool vnni = __builtin_cpu_supports("avx512vnni");
#else
  const bool vnni = false;
#endif
  o.Set("int8Layout", e.isa() == Isa::avx512 && vnni ? "r16" : "rows");
  Napi::Array compiled = Napi::Array::New(env);
  uint32_t n = 0;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::portable})
    if (kernels_for(isa) != nullptr) compiled.Set(n++, isa_name(isa));
  o.Set("compiledIsas", compiled);
  o.Set("threads", e.threads());
  o.Set("defaultThreads", default_threads());
  o.Set("processPoolThreads", Pool::process_threads());
  o.Set("usableCpus", Pool::usable_cpus());
  o.Set("gemmMode", e.gemm_mode() == GemmMode::own ? "own" : e.gemm_mode() == GemmMode::openblas ? "openblas" : "auto");
  o.Set("gemm", e.gemm_uses_blas() ? "openblas" : "own");
  o.Set("blas", e.blas_config().empty() ? env.Null() : Napi::String::New(env, e.blas_config()));
  o.Set("blasReason", e.blas_reason().empty() ? env.Null() : Napi::String::New(env, e.blas_reason()));
  o.Set("note", e.note().empty() ? env.Null() : Napi::String::New(env, e.note()));
  Napi::Object tile = Napi::Object::New(env);
  const Kernels& k = e.kernels();
  tile.Set("mr", k.mr);
  tile.Set("nr", k.nr);
  tile.Set("kc", k.kc);
  tile.Set("mc", k.mc);
  tile.Set("nc", k.nc);
  o.Set("gemmTile", tile);
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Args a(info, "setThreads");
  const int64_t n = a.dim(0, "threads", 1);
  if (n > 1024) a.fail("threads must be at most 1024");
  engine(info).set_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Args a(info, "setIsa");
  const std::string s = a.str(0, "isa");
  Isa isa;
  if (!parse_isa(s.c_str(), &isa)) a.fail("isa must be one of avx512, avx2, portable, got " + s);
  Engine& e = engine(info);
  if (!e.set_isa(isa)) a.fail(s + " is not supported here (this CPU's best is " + isa_name(e.detected_isa()) + ")");
  return info.Env().Undefined();
}

Napi::Value SetGemm(const Napi::CallbackInfo& info) {
  Args a(info, "setGemm");
  const std::string s = a.str(0, "mode");
  GemmMode m;
  if (s == "auto") {
    m = GemmMode::automatic;
  } else if (s == "own") {
    m = GemmMode::own;
  } else if (s == "openblas") {
    m = GemmMode::openblas;
  } else {
    a.fail("mode must be one of auto, own, openblas, got " + s);
  }
  engine(info).set_gemm_mode(m);
  return info.Env().Undefined();
}

Napi::Value SetSpinUs(const Napi::CallbackInfo& info) {
  Args a(info, "setSpinUs");
  const int64_t us = a.dim(0, "us");
  engine(info).set_spin_us(static_cast<int>(us > 100000 ? 100000 : us));
  return info.Env().Undefined();
}

// poolPrime() / poolRest(): the caller's hints that a burst of jobs (a decode step) is coming / is over (pool.h).
Napi::Value PoolPrime(const Napi::CallbackInfo& info) {
  engine(info).pool_prime();
  return info.Env().Undefined();
}

Napi::Value PoolRest(const Napi::CallbackInfo& info) {
  engine(info).pool_rest();
  return info.Env().Undefined();
}

// poolId() → this environment's pool's id in the process; poolPrimeId(id) → whether a live pool had that id (it is
// primed: Pool::prime_id). poolPrimeId makes no engine: any thread may call it.
Napi::Value PoolId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), engine(info).pool_id()); }

Napi::Value PoolPrimeId(const Napi::CallbackInfo& info) {
  Args a(info, "poolPrimeId");
  const int64_t id = a.dim(0, "id");
  return Napi::Boolean::New(info.Env(), id > 0 && id <= 0xffffffffLL && Pool::prime_id(static_cast<uint32_t>(id)));
}

// adviseHugePages(typedArray) → bytes now advised: asks Linux to back the whole 2 MiB pages inside the array with
// transparent huge pages (madvise MADV_HUGEPAGE, then MADV_COLLAPSE to do it now rather than when khugepaged gets
// to it). For weights that a decode step streams once per token: with 4 KiB pages, 324 MB of 12x768 weights are
// 79,000 TLB misses per token. Best effort: 0 where the kernel refuses or THP is off; never changes the contents.
Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  Args a(info, "adviseHugePages");
  if (info.Length() < 1 || !info[0].IsTypedArray()) a.fail("x must be a typed array", true);
  double advised = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const Napi::TypedArray t = info[0].As<Napi::TypedArray>();
  const uintptr_t p0 = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
  const uintptr_t huge = uintptr_t{2} << 20;
  const uintptr_t b = (p0 + huge - 1) & ~(huge - 1), e = (p0 + t.ByteLength()) & ~(huge - 1);
  if (e > b && madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE) == 0) {
    advised = static_cast<double>(e - b);
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
    // may fail (no free 2 MiB frames, an old kernel): the advice still applies to khugepaged and new faults
    (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_COLLAPSE);
  }
#endif
  return Napi::Number::New(info.Env(), advised);
}

// ---- the decode's read bound (src/compute/llamacpp/bench.ts) ----

static uint64_t read_sum_portable(const uint8_t* p, size_t n) {
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n; i += 64)
    for (int j = 0; j < 8; j++) {
      uint64_t x;
      std::memcpy(&x, p + i + 8 * j, 8);
      a[j] += x;
    }
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static double clock_ms(clockid_t id) {
  timespec t;
  clock_gettime(id, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

// readStream(typedArray, reps, cpu, streams = 1) → {t0, t1, cpuMs, bytes, sum, avx512, pinned}: reads the array's
// whole 512-byte chunks `reps` times in `streams` (1, 2 or 4) parts side by side (summing them as 64-bit words, so
// no load can be skipped), on the calling thread pinned to CPU `cpu` for the call (-1: not pinned; the thread's affinity is restored after). t0/t1: CLOCK_MONOTONIC in ms (comparable
// across threads: a pass over several workers runs from the earliest t0 to the latest t1); cpuMs: this thread's CPU
// time over the reads. The bench's memory-read bound: a load loop with nothing else in it, timed where it runs.
Napi::Value ReadStream(const Napi::CallbackInfo& info) {
  Args a(info, "readStream");
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber()) a.fail("expects (typedArray, reps, cpu)", true);
  const Napi::TypedArray t = info[0].As<Napi::TypedArray>();
  const int64_t reps = info[1].As<Napi::Number>().Int64Value();
  const int64_t cpu = info[2].As<Napi::Number>().Int64Value();
  if (reps < 1 || reps > 1000000) a.fail("reps must be in 1..1000000");
  if (cpu < -1 || cpu > 4095) a.fail("cpu must be in -1..4095");
  const int64_t streams = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 1;
  if (streams != 1 && streams != 2 && streams != 4) a.fail("streams must be 1, 2 or 4");
  const uint8_t* p0 = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  // whole 512-byte chunks from the first 64-byte boundary (aligned loads; 4 parts of whole 128-byte steps)
  const uint8_t* p = reinterpret_cast<const uint8_t*>((reinterpret_cast<uintptr_t>(p0) + 63) & ~uintptr_t{63});
  const size_t skip = static_cast<size_t>(p - p0);
  const size_t n = t.ByteLength() > skip ? ((t.ByteLength() - skip) & ~size_t{511}) : 0;
#if defined(__x86_64__)
  const bool avx512 = kernels_avx512() != nullptr && __builtin_cpu_supports("avx512f");
#else
  const bool avx512 = false;
#endif
  bool pinned = false;
#if defined(__linux__)
  cpu_set_t old, one;
  const bool have_old = sched_getaffinity(0, sizeof old, &old) == 0;
  if (cpu >= 0 && have_old && cpu < CPU_SETSIZE && CPU_ISSET(static_cast<int>(cpu), &old)) {
    CPU_ZERO(&one);
    CPU_SET(static_cast<int>(cpu), &one);
    pinned = sched_setaffinity(0, sizeof one, &one) == 0;
  }
#endif
  uint64_t sum = 0;
  const double c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), t0 = clock_ms(CLOCK_MONOTONIC);
  for (int64_t r = 0; r < reps; r++) {
#if defined(__x86_64__)
    if (avx512) sum += read_sum_avx512(p, n, static_cast<int>(streams));  // isa_avx512.cc
    else sum += read_sum_portable(p, n);
#else
    sum += read_sum_portable(p, n);
#endif
    __asm__ volatile("" ::: "memory");  // every rep reads the memory again
  }
  const double t1 = clock_ms(CLOCK_MONOTONIC), c1 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
#if defined(__linux__)
  if (pinned) (void)sched_setaffinity(0, sizeof old, &old);
#endif
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("t0", t0);
  o.Set("t1", t1);
  o.Set("cpuMs", c1 - c0);
  o.Set("bytes", static_cast<double>(n) * static_cast<double>(reps));
  o.Set("sum", static_cast<double>(sum & ((uint64_t{1} << 52) - 1)));
  o.Set("avx512", avx512);
  o.Set("pinned", pinned);
  return o;
}

// readArrays(arrays, reps, threads, streams = 1, pin = true) → {t0, t1, cpuMs, bytes, threadMs}: the read bound over
// given buffers (session 22): `threads` threads started for the call (thread i pinned to CPU i mod the usable CPUs
// when `pin`), thread i reading the i-th of `threads` equal parts of EVERY array (whole 512-byte chunks from its
// first 64-byte boundary) `reps` times with the readStream loop (`streams` parts side by side). Same figure as a
// ReadProbe pass (all bytes ÷ latest end − earliest start, CLOCK_MONOTONIC), but over memory the caller names: the
// decode's own weight buffers, so that the bound does not depend on where this VM placed a probe's buffer. The
// threads start together (a spin on a flag) so that none reads alone. Arrays of less than 512 bytes a part are
// skipped (counted in `bytes` only when read).
Napi::Value ReadArrays(const Napi::CallbackInfo& info) {
  Args a(info, "readArrays");
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsNumber() || !info[2].IsNumber()) a.fail("expects (arrays, reps, threads)", true);
  const Napi::Array list = info[0].As<Napi::Array>();
  const int64_t reps = info[1].As<Napi::Number>().Int64Value();
  const int64_t nt = info[2].As<Napi::Number>().Int64Value();
  if (reps < 1 || reps > 100000) a.fail("reps must be in 1..100000");
  if (nt < 1 || nt > 256) a.fail("threads must be in 1..256");
  const int64_t streams = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 1;
  if (streams != 1 && streams != 2 && streams != 4) a.fail("streams must be 1, 2 or 4");
  const bool pin = info.Length() > 4 && info[4].IsBoolean() ? info[4].As<Napi::Boolean>().Value() : true;
  struct Part {
    const uint8_t* p;
    size_t n;
  };
  std::vector<std::vector<Part>> parts(static_cast<size_t>(nt));
  double bytes = 0;
  for (uint32_t i = 0; i < list.Length(); i++) {
    const Napi::Value v = list[i];
    if (!v.IsTypedArray()) a.fail("arrays must hold typed arrays", true);
    const Napi::TypedArray t = v.As<Napi::TypedArray>();
    const uint8_t* p0 = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    const uint8_t* p = reinterpret_cast<const uint8_t*>((reinterpret_cast<uintptr_t>(p0) + 63) & ~uintptr_t{63});
    const size_t skip = static_cast<size_t>(p - p0);
    const size_t n = t.ByteLength() > skip ? t.ByteLength() - skip : 0;
    const size_t per = (n / static_cast<size_t>(nt)) & ~size_t{511};
    if (per == 0) continue;
    for (int64_t k = 0; k < nt; k++) parts[static_cast<size_t>(k)].push_back({p + static_cast<size_t>(k) * per, per});
    bytes += static_cast<double>(per) * static_cast<double>(nt) * static_cast<double>(reps);
  }
#if defined(__x86_64__)
  const bool avx512 = kernels_avx512() != nullptr && __builtin_cpu_supports("avx512f");
#else
  const bool avx512 = false;
#endif
  std::vector<double> t0(static_cast<size_t>(nt)), t1(static_cast<size_t>(nt)), cpu(static_cast<size_t>(nt));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<uint64_t> sink{0};
  const int ncpu = static_cast<int>(std::thread::hardware_concurrency() > 0 ? std::thread::hardware_concurrency() : 1);
  auto body = [&](int k) {
#if defined(__linux__)
    if (pin) {
      cpu_set_t set;
      if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int want = k % (CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : ncpu), c = -1;
        for (int j = 0; j < CPU_SETSIZE; j++)
          if (CPU_ISSET(j, &set) && want-- == 0) {
            c = j;
            break;
          }
        if (c >= 0) {
          cpu_set_t one;
          CPU_ZERO(&one);
          CPU_SET(c, &one);
          (void)sched_setaffinity(0, sizeof one, &one);
        }
      }
    }
#endif
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    uint64_t sum = 0;
    const double c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), s0 = clock_ms(CLOCK_MONOTONIC);
    for (int64_t r = 0; r < reps; r++) {
      for (const Part& q : parts[static_cast<size_t>(k)]) {
#if defined(__x86_64__)
        if (avx512) sum += read_sum_avx512(q.p, q.n, static_cast<int>(streams));
        else sum += read_sum_portable(q.p, q.n);
#else
        sum += read_sum_portable(q.p, q.n);
#endif
      }
      __asm__ volatile("" ::: "memory");
    }
    t1[static_cast<size_t>(k)] = clock_ms(CLOCK_MONOTONIC);
    cpu[static_cast<size_t>(k)] = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
    t0[static_cast<size_t>(k)] = s0;
    sink.fetch_add(sum, std::memory_order_relaxed);
  };
  std::vector<std::thread> ts;
  try {
    for (int64_t k = 0; k < nt; k++) ts.emplace_back(body, static_cast<int>(k));
  } catch (...) {
    go.store(true, std::memory_order_release);
    for (auto& t : ts) t.join();
    a.fail("could not start the reader threads", true);
  }
  while (ready.load() < nt) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  double lo = t0[0], hi = t1[0], cs = 0;
  Napi::Env env = info.Env();
  Napi::Array per = Napi::Array::New(env, static_cast<size_t>(nt));
  for (size_t k = 0; k < static_cast<size_t>(nt); k++) {
    lo = std::min(lo, t0[k]);
    hi = std::max(hi, t1[k]);
    cs += cpu[k];
    per.Set(static_cast<uint32_t>(k), t1[k] - t0[k]);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("t0", lo);
  o.Set("t1", hi);
  o.Set("cpuMs", cs / static_cast<double>(nt));
  o.Set("bytes", bytes);
  o.Set("threadMs", per);
  o.Set("sum", static_cast<double>(sink.load() & ((uint64_t{1} << 52) - 1)));
  o.Set("avx512", avx512);
  return o;
}

// ---- linear algebra ----

// gemm(a, b, c, transA, transB, M, N, K, alpha, beta, batch, strideA, strideB, strideC, lda, ldb, ldc, offA, offB, offC)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Args a(info, "gemm");
  GemmArgs g;
  g.ta = a.flag(3, "transA");
  g.tb = a.flag(4, "transB");
  g.M = a.dim(5, "M");
  g.N = a.dim(6, "N");
  g.K = a.dim(7, "K");
  g.alpha = static_cast<float>(a.num(8, "alpha"));
  g.beta = static_cast<float>(a.num(9, "beta"));
  const int64_t batch = a.dim(10, "batch");
  const int64_t sA = a.dim(11, "strideA"), sB = a.dim(12, "strideB"), sC = a.dim(13, "strideC");
  g.lda = a.dim(14, "lda");
  g.ldb = a.dim(15, "ldb");
  g.ldc = a.dim(16, "ldc");
  const int64_t offA = a.dim(17, "offA"), offB = a.dim(18, "offB"), offC = a.dim(19, "offC");
  const int64_t rA = g.ta ? g.K : g.M, cA = g.ta ? g.M : g.K;
  const int64_t rB = g.tb ? g.N : g.K, cB = g.tb ? g.K : g.N;
  // A and B are read only when there is something to multiply.
  const bool reads = g.M > 0 && g.N > 0 && g.K > 0 && g.alpha != 0.0f;
  if (reads && g.lda < cA) a.fail("lda " + std::to_string(g.lda) + " < " + std::to_string(cA) + " columns of A");
  if (reads && g.ldb < cB) a.fail("ldb " + std::to_string(g.ldb) + " < " + std::to_string(cB) + " columns of B");
  if (g.M > 0 && g.ldc < g.N) a.fail("ldc " + std::to_string(g.ldc) + " < N = " + std::to_string(g.N));
  float* A = a.f32(0, "a", reads ? span(offA, batch, sA, rA, g.lda, cA) : 0);
  float* B = a.f32(1, "b", reads ? span(offB, batch, sB, rB, g.ldb, cB) : 0);
  float* C = a.f32(2, "c", span(offC, batch, sC, g.M, g.ldc, g.N));
  if (batch == 0 || g.M == 0 || g.N == 0) return info.Env().Undefined();
  g.A = reads ? A + offA : nullptr;
  g.B = reads ? B + offB : nullptr;
  g.C = C + offC;
  engine(info).gemm(g, batch, sA, sB, sC);
  return info.Env().Undefined();
}

// ---- element-wise ----

Napi::Value Add(const Napi::CallbackInfo& info) {
  Args a(info, "add");
  const int64_t n = a.dim(3, "n");
  engine(info).add(a.f32(0, "a", n), a.f32(1, "b", n), a.f32(2, "out", n), n);
  return info.Env().Undefined();
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Args a(info, "axpy");
  const int64_t n = a.dim(3, "n");
  engine(info).axpy(static_cast<float>(a.num(0, "alpha")), a.f32(1, "x", n), a.f32(2, "y", n), n);
  return info.Env().Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Args a(info, "scale");
  const int64_t n = a.dim(2, "n");
  engine(info).scale(a.f32(0, "x", n), static_cast<float>(a.num(1, "alpha")), n);
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "sumSquares");
  const int64_t n = a.dim(1, "n");
  return Napi::Number::New(info.Env(), engine(info).sumsq(a.f32(0, "x", n), n));
}

Napi::Value AllFinite(const Napi::CallbackInfo& info) {
  Args a(info, "allFinite");
  const int64_t n = a.dim(1, "n");
  return Napi::Boolean::New(info.Env(), engine(info).allfinite(a.f32(0, "x", n), n));
}

// ---- embedding ----

// Checks every id against the table's row count: ids are pre-validated by the ops layer, but a bad one here would
// read or write outside the table.
void check_ids(const Args& a, const int32_t* ids, int64_t N, int64_t rows) {
  for (int64_t n = 0; n < N; n++)
    if (ids[n] < 0 || ids[n] >= rows)
      a.fail("ids[" + std::to_string(n) + "] = " + std::to_string(ids[n]) + " is outside the table's " + std::to_string(rows) + " rows");
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForward");
  const int64_t N = a.dim(3, "N"), C = a.dim(4, "C");
  const float* table = a.f32(0, "table", 0);
  const int32_t* ids = a.i32(1, "ids", N);
  float* out = a.f32(2, "out", static_cast<I128>(N) * C);
  if (N == 0 || C == 0) return info.Env().Undefined();
  const int64_t rows = static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength()) / C;
  check_ids(a, ids, N, rows);
  engine(info).embed_fwd(table, ids, out, N, C);
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingBackward");
  const int64_t N = a.dim(3, "N"), C = a.dim(4, "C");
  const float* dout = a.f32(0, "dout", static_cast<I128>(N) * C);
  const int32_t* ids = a.i32(1, "ids", N);
  float* dtable = a.f32(2, "dtable", 0);
  if (N == 0 || C == 0) return info.Env().Undefined();
  const int64_t rows = static_cast<int64_t>(info[2].As<Napi::Float32Array>().ElementLength()) / C;
  check_ids(a, ids, N, rows);
  engine(info).embed_bwd(dout, ids, dtable, N, C);
  return info.Env().Undefined();
}

// ---- RMSNorm ----

Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward");
  const int64_t N = a.dim(4, "N"), C = a.dim(5, "C", 1);
  const I128 nc = static_cast<I128>(N) * C;
  const float eps = static_cast<float>(a.finite(6, "eps"));
  engine(info).rms_fwd(a.f32(0, "x", nc), a.f32(1, "w", C), a.f32(2, "out", nc), a.f32(3, "rstd", N), N, C, eps);
  return info.Env().Undefined();
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward");
  const int64_t N = a.dim(6, "N"), C = a.dim(7, "C", 1);
  const I128 nc = static_cast<I128>(N) * C;
  const bool acc = a.flag(8, "accumulateDx");
  engine(info).rms_bwd(a.f32(0, "dout", nc), a.f32(1, "x", nc), a.f32(2, "w", C), a.f32(3, "rstd", N), a.f32(4, "dx", nc),
                       a.f32(5, "dw", C), N, C, acc);
  return info.Env().Undefined();
}

// ---- RoPE ----

// rope(x, B, T, H, D, posOffset, theta, inverse, positions?)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info, "rope");
  const int64_t B = a.dim(1, "B"), T = a.dim(2, "T"), H = a.dim(3, "H"), D = a.dim(4, "D");
  if (D % 2 != 0) a.fail("D must be even, got " + std::to_string(D));
  const double off = a.num(5, "posOffset");
  if (!(std::fabs(off) <= 2147483647.0) || std::floor(off) != off) a.fail("posOffset must be an integer");
  const double theta = a.finite(6, "theta");
  if (!(theta > 0)) a.fail("theta must be positive");
  const bool inverse = a.flag(7, "inverse");
  float* x = a.f32(0, "x", static_cast<I128>(B) * T * H * D);
  const int32_t* pos = a.i32_opt(8, "positions", T);
  engine(info).rope(x, B, T, H, D, static_cast<int64_t>(off), theta, inverse, pos);
  return info.Env().Undefined();
}

// ---- attention ----

void check_heads(const Args& a, int64_t T, int64_t S, int64_t H, int64_t KV) {
  if (KV == 0 || H % KV != 0) a.fail("H = " + std::to_string(H) + " must be a positive multiple of KV = " + std::to_string(KV));
  if (S < T) a.fail("S = " + std::to_string(S) + " must be at least T = " + std::to_string(T));
}

// attentionForward(q, k, v, out, lse, B, T, S, H, KV, D)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionForward");
  AttnArgs x;
  x.B = a.dim(5, "B"), x.T = a.dim(6, "T"), x.S = a.dim(7, "S"), x.H = a.dim(8, "H", 1), x.KV = a.dim(9, "KV", 1), x.D = a.dim(10, "D");
  check_heads(a, x.T, x.S, x.H, x.KV);
  const I128 nq = static_cast<I128>(x.B) * x.T * x.H * x.D, nk = static_cast<I128>(x.B) * x.S * x.KV * x.D;
  x.q = a.f32(0, "q", nq);
  x.k = a.f32(1, "k", nk);
  x.v = a.f32(2, "v", nk);
  x.out = a.f32(3, "out", nq);
  x.lse = a.f32(4, "lse", static_cast<I128>(x.B) * x.H * x.T);
  engine(info).attn_fwd(x);
  return info.Env().Undefined();
}

// attentionBackward(dout, q, k, v, out, lse, dq, dk, dv, B, T, S, H, KV, D)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward");
  AttnArgs x;
  x.B = a.dim(9, "B"), x.T = a.dim(10, "T"), x.S = a.dim(11, "S"), x.H = a.dim(12, "H", 1), x.KV = a.dim(13, "KV", 1),
  x.D = a.dim(14, "D");
  check_heads(a, x.T, x.S, x.H, x.KV);
  const I128 nq = static_cast<I128>(x.B) * x.T * x.H * x.D, nk = static_cast<I128>(x.B) * x.S * x.KV * x.D;
  x.dout = a.f32(0, "dout", nq);
  x.q = a.f32(1, "q", nq);
  x.k = a.f32(2, "k", nk);
  x.v = a.f32(3, "v", nk);
  x.out = a.f32(4, "out", nq);
  x.lse = a.f32(5, "lse", static_cast<I128>(x.B) * x.H * x.T);
  x.dq = a.f32(6, "dq", nq);
  x.dk = a.f32(7, "dk", nk);
  x.dv = a.f32(8, "dv", nk);
  engine(info).attn_bwd(x);
  return info.Env().Undefined();
}

// attentionDecode(q, kCache, vCache, out, B, H, KV, D, maxS, len)
Napi::Value AttentionDecode(const Napi::CallbackInfo& info) {
  Args a(info, "attentionDecode");
  DecodeArgs x;
  x.B = a.dim(4, "B"), x.H = a.dim(5, "H", 1), x.KV = a.dim(6, "KV", 1), x.D = a.dim(7, "D"), x.maxS = a.dim(8, "maxS"),
  x.len = a.dim(9, "len", 1);
  check_heads(a, 1, x.maxS, x.H, x.KV);
  if (x.len > x.maxS) a.fail("len = " + std::to_string(x.len) + " exceeds maxS = " + std::to_string(x.maxS));
  const I128 nq = static_cast<I128>(x.B) * x.H * x.D, nk = static_cast<I128>(x.B) * x.maxS * x.KV * x.D;
  x.q = a.f32(0, "q", nq);
  x.k = a.f32(1, "kCache", nk);
  x.v = a.f32(2, "vCache", nk);
  x.out = a.f32(3, "out", nq);
  engine(info).attn_decode(x);
  return info.Env().Undefined();
}

// An optional int8 layout argument: absent or 0 kQ8Rows, 1 kQ8R16 (kernels.h; the same bytes either way).
static int q8_layout(const Napi::CallbackInfo& info, const Args& a, int i) {
  if (static_cast<size_t>(i) >= info.Length() || info[i].IsUndefined()) return kQ8Rows;
  const int64_t l = a.dim(i, "layout");
  if (l != kQ8Rows && l != kQ8R16) a.fail("layout must be 0 (rows) or 1 (groups of 16 rows)");
  return static_cast<int>(l);
}

// decodeLayer(x, out, inNorm, postNorm, wQkv, wO, wGu, wDown, sQkv, sO, sGu, sDown, kCaches, vCaches, ws,
//             C, H, KV, D, F, pos, maxS, blockSizes, eps, theta, int8, B, layout?)
// One layer of a decode step of B (1..8) sequences, one row each (Engine::decode_layer). x/out: [B, C]. Float32
// weights: w* are Float32Arrays, s* null; int8: w* are the Int8Array codes and s* their scales, blockSizes
// (Int32Array [4]) the weights per scale of each, layout their layout (as gemmQ8's; the same for all four). kCaches/vCaches: arrays of B Float32Arrays, row b's cache of this
// layer [maxS[b], KV, D], distinct per row; pos/maxS: Int32Array [B]; ws: scratch.
Napi::Value DecodeLayer(const Napi::CallbackInfo& info) {
  Args a(info, "decodeLayer");
  DecodeLayerArgs x;
  x.B = a.dim(26, "B", 1);
  if (x.B > kDecodeMaxRows) a.fail("B = " + std::to_string(x.B) + " rows exceed " + std::to_string(kDecodeMaxRows));
  const int64_t B = x.B;
  x.C = a.dim(15, "C", 1), x.H = a.dim(16, "H", 1), x.KV = a.dim(17, "KV", 1), x.D = a.dim(18, "D", 2), x.F = a.dim(19, "F", 1);
  x.eps = static_cast<float>(a.finite(23, "eps"));
  x.theta = a.finite(24, "theta");
  const bool q8 = a.flag(25, "int8");
  const int q8l = q8 ? q8_layout(info, a, 27) : kQ8Rows;
  check_heads(a, 1, 1, x.H, x.KV);
  if (x.D % 2 != 0) a.fail("D must be even");
  const int64_t HD = x.H * x.D, KVD = x.KV * x.D, F = x.F, C = x.C;
  const int32_t* pos = a.i32(20, "pos", B);
  const int32_t* maxS = a.i32(21, "maxS", B);
  for (int64_t b = 0; b < B; b++) {
    if (pos[b] < 0 || maxS[b] < 1 || pos[b] >= maxS[b])
      a.fail("row " + std::to_string(b) + ": pos = " + std::to_string(pos[b]) + " is outside a cache of " + std::to_string(maxS[b]));
    x.pos[b] = pos[b];
    x.maxS[b] = maxS[b];
    const I128 nc = static_cast<I128>(maxS[b]) * KVD;
    x.kc[b] = a.f32_at(12, b, "kCaches", nc);
    x.vc[b] = a.f32_at(13, b, "vCaches", nc);
    // two rows in one cache would write it at the same time
    for (int64_t e = 0; e < b; e++)
      if (x.kc[e] == x.kc[b] || x.vc[e] == x.vc[b]) a.fail("rows " + std::to_string(e) + " and " + std::to_string(b) + " share a cache");
  }
  x.x = a.f32(0, "x", static_cast<I128>(B) * C);
  x.out = a.f32(1, "out", static_cast<I128>(B) * C);
  x.inNorm = a.f32(2, "inNorm", C);
  x.postNorm = a.f32(3, "postNorm", C);
  const int64_t rows[4] = {HD + 2 * KVD, C, 2 * F, C}, cols[4] = {C, HD, C, F};
  const char* wn[4] = {"wQkv", "wO", "wGu", "wDown"};
  const char* sn[4] = {"sQkv", "sO", "sGu", "sDown"};
  DecodeMat* m[4] = {&x.qkv, &x.o, &x.gu, &x.down};
  for (int i = 0; i < 4; i++) {
    const I128 n = static_cast<I128>(rows[i]) * cols[i];
    if (q8) {
      const int32_t* bs = a.i32(22, "blockSizes", 4);
      m[i]->bs = bs[i];
      m[i]->layout = q8l;
      if (m[i]->bs < 16 || m[i]->bs % 16 != 0 || cols[i] % m[i]->bs != 0) a.fail(std::string(sn[i]) + "'s block size must be a multiple of 16 dividing K");
      m[i]->q = a.i8(4 + i, wn[i], n);
      m[i]->s = a.f32(8 + i, sn[i], n / m[i]->bs);
    } else {
      m[i]->w = a.f32(4 + i, wn[i], n);
    }
  }
  x.ws = a.f32(14, "ws", decode_layer_ws(B, C, x.H, x.KV, x.D, F));
  engine(info).decode_layer(x);
  return info.Env().Undefined();
}

// decodeLayers(res, layers, kCaches, vCaches, ws, C, H, KV, D, F, pos, maxS, blockSizes, eps, theta, int8, B, layout, L,
//              headNorm?, headW?, xf?, rstd?, logits?, V?)
// L consecutive layers of a decode step of B (1..8) rows in one call and one pool job (Engine::decode_layers): layer
// l reads res[l] and writes res[l + 1] ([B, C] each; res has L + 1 distinct Float32Arrays). layers: a JS array of
// 10·L entries, layer l's [inNorm, postNorm, wQkv, wO, wGu, wDown, sQkv, sO, sGu, sDown] (s* null for float32, as
// decodeLayer takes them); kCaches/vCaches: JS arrays of L·B Float32Arrays, layer l's row b at l·B + b;
// blockSizes: Int32Array [4·L] (int8; every layer's the same); the rest as decodeLayer. With headW (float32 [V, C]),
// the same job then computes xf [B, C] = rmsnorm(res[L]; headNorm), rstd [B] and logits [B, V] = xf · headWᵀ.
Napi::Value DecodeLayers(const Napi::CallbackInfo& info) {
  Args a(info, "decodeLayers");
  napi_env env = info.Env();
  const int64_t L = a.dim(18, "L", 1);
  DecodeLayerArgs x;
  x.B = a.dim(16, "B", 1);
  if (x.B > kDecodeMaxRows) a.fail("B = " + std::to_string(x.B) + " rows exceed " + std::to_string(kDecodeMaxRows));
  const int64_t B = x.B;
  x.C = a.dim(5, "C", 1), x.H = a.dim(6, "H", 1), x.KV = a.dim(7, "KV", 1), x.D = a.dim(8, "D", 2), x.F = a.dim(9, "F", 1);
  x.eps = static_cast<float>(a.finite(13, "eps"));
  x.theta = a.finite(14, "theta");
  const bool q8 = a.flag(15, "int8");
  const int q8l = q8 ? q8_layout(info, a, 17) : kQ8Rows;
  check_heads(a, 1, 1, x.H, x.KV);
  if (x.D % 2 != 0) a.fail("D must be even");
  const int64_t HD = x.H * x.D, KVD = x.KV * x.D, F = x.F, C = x.C;
  const int32_t* pos = a.i32(10, "pos", B);
  const int32_t* maxS = a.i32(11, "maxS", B);
  for (int64_t b = 0; b < B; b++) {
    if (pos[b] < 0 || maxS[b] < 1 || pos[b] >= maxS[b])
      a.fail("row " + std::to_string(b) + ": pos = " + std::to_string(pos[b]) + " is outside a cache of " + std::to_string(maxS[b]));
    x.pos[b] = pos[b];
    x.maxS[b] = maxS[b];
  }
  x.ws = a.f32(4, "ws", decode_layer_ws(B, C, x.H, x.KV, x.D, F));
  const int32_t* bs = q8 ? a.i32(12, "blockSizes", static_cast<I128>(4) * L) : nullptr;
  // Entry j of the JS array argument i: a typed array of type `want` with at least `need` elements, or (nullable)
  // null/undefined → nullptr.
  auto elem = [&](int i, int64_t j, const char* name, napi_typedarray_type want, const char* want_name, I128 need, bool nullable) -> void* {
    if (static_cast<size_t>(i) >= info.Length() || !info[i].IsArray()) a.fail(std::string(name) + " must be an array", true);
    napi_value v;
    const std::string what = std::string(name) + "[" + std::to_string(j) + "]";
    if (napi_get_element(env, info[i], static_cast<uint32_t>(j), &v) != napi_ok) a.fail(what + " is missing");
    napi_valuetype vt;
    napi_typeof(env, v, &vt);
    if (nullable && (vt == napi_null || vt == napi_undefined)) return nullptr;
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value ab;
    size_t off = 0;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &off) != napi_ok || type != want) a.fail(what + " must be a " + want_name, true);
    if (need > static_cast<I128>(length))
      a.fail(what + " has " + std::to_string(length) + " elements, the sizes given need " + std::to_string(static_cast<int64_t>(need)));
    return data;
  };
  for (int i = 0; i < 4; i++) {
    const uint32_t n = info[i].IsArray() ? info[i].As<Napi::Array>().Length() : 0;
    const int64_t want = i == 0 ? L + 1 : i == 1 ? 10 * L : L * B;
    const char* nm[4] = {"res", "layers", "kCaches", "vCaches"};
    if (!info[i].IsArray()) a.fail(std::string(nm[i]) + " must be an array", true);
    if (static_cast<int64_t>(n) < want) a.fail(std::string(nm[i]) + " has " + std::to_string(n) + " entries, need " + std::to_string(want));
  }
  std::vector<float*> res(static_cast<size_t>(L + 1));
  for (int64_t l = 0; l <= L; l++) {
    res[static_cast<size_t>(l)] = static_cast<float*>(elem(0, l, "res", napi_float32_array, "Float32Array", static_cast<I128>(B) * C, false));
    // a layer reading and writing one array would overwrite its input while other rows still read it
    if (l > 0 && res[static_cast<size_t>(l)] == res[static_cast<size_t>(l - 1)]) a.fail("res[" + std::to_string(l) + "] is res[" + std::to_string(l - 1) + "]");
  }
  const int64_t rows[4] = {HD + 2 * KVD, C, 2 * F, C}, cols[4] = {C, HD, C, F};
  std::vector<DecodeLayerArgs> ls(static_cast<size_t>(L), x);
  for (int64_t l = 0; l < L; l++) {
    DecodeLayerArgs& y = ls[static_cast<size_t>(l)];
    y.x = res[static_cast<size_t>(l)];
    y.out = res[static_cast<size_t>(l + 1)];
    y.inNorm = static_cast<const float*>(elem(1, 10 * l, "layers", napi_float32_array, "Float32Array", C, false));
    y.postNorm = static_cast<const float*>(elem(1, 10 * l + 1, "layers", napi_float32_array, "Float32Array", C, false));
    DecodeMat* m[4] = {&y.qkv, &y.o, &y.gu, &y.down};
    for (int i = 0; i < 4; i++) {
      const I128 n = static_cast<I128>(rows[i]) * cols[i];
      if (q8) {
        m[i]->bs = bs[4 * l + i];
        m[i]->layout = q8l;
        if (m[i]->bs < 16 || m[i]->bs % 16 != 0 || cols[i] % m[i]->bs != 0) a.fail("layer " + std::to_string(l) + ": block size must be a multiple of 16 dividing K");
        // the job quantizes each product's activations once per layer at layer 0's block sizes
        if (m[i]->bs != bs[i]) a.fail("layer " + std::to_string(l) + "'s block sizes differ from layer 0's");
        m[i]->q = static_cast<const int8_t*>(elem(1, 10 * l + 2 + i, "layers", napi_int8_array, "Int8Array", n, false));
        m[i]->s = static_cast<const float*>(elem(1, 10 * l + 6 + i, "layers", napi_float32_array, "Float32Array", n / m[i]->bs, false));
      } else {
        m[i]->w = static_cast<const float*>(elem(1, 10 * l + 2 + i, "layers", napi_float32_array, "Float32Array", n, false));
      }
    }
    for (int64_t b = 0; b < B; b++) {
      const I128 nc = static_cast<I128>(maxS[b]) * KVD;
      y.kc[b] = static_cast<float*>(elem(2, l * B + b, "kCaches", napi_float32_array, "Float32Array", nc, false));
      y.vc[b] = static_cast<float*>(elem(3, l * B + b, "vCaches", napi_float32_array, "Float32Array", nc, false));
      // two rows in one cache would write it at the same time
      for (int64_t e = 0; e < b; e++)
        if (y.kc[e] == y.kc[b] || y.vc[e] == y.vc[b]) a.fail("layer " + std::to_string(l) + ": rows " + std::to_string(e) + " and " + std::to_string(b) + " share a cache");
    }
  }
  // The head (optional: headW null or absent → none).
  DecodeHead head;
  const bool with_head = info.Length() > 20 && !info[20].IsNull() && !info[20].IsUndefined();
  if (with_head) {
    head.V = a.dim(24, "V", 1);
    head.norm = a.f32(19, "headNorm", C);
    head.w = a.f32(20, "headW", static_cast<I128>(head.V) * C);
    head.xf = a.f32(21, "xf", static_cast<I128>(B) * C);
    head.rstd = a.f32(22, "rstd", B);
    head.logits = a.f32(23, "logits", static_cast<I128>(B) * head.V);
  }
  engine(info).decode_layers(ls.data(), L, with_head ? &head : nullptr);
  return info.Env().Undefined();
}

// decodeTrace() → Float64Array: what NEUROSHARD_DECODE_TRACE=1 recorded since the last call (Engine::take_decode_trace;
// Engine::kDecodeTraceFields numbers per decode layer), cleared. Empty when the trace is off.
Napi::Value DecodeTrace(const Napi::CallbackInfo& info) {
  const std::vector<double> t = engine(info).take_decode_trace();
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), t.size());
  if (!t.empty()) std::memcpy(out.Data(), t.data(), t.size() * sizeof(double));
  return out;
}

// ---- SwiGLU ----

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluForward");
  const int64_t n = a.dim(3, "n");
  engine(info).swiglu_fwd(a.f32(0, "gate", n), a.f32(1, "up", n), a.f32(2, "out", n), n);
  return info.Env().Undefined();
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward");
  const int64_t n = a.dim(5, "n");
  engine(info).swiglu_bwd(a.f32(0, "dout", n), a.f32(1, "gate", n), a.f32(2, "up", n), a.f32(3, "dgate", n), a.f32(4, "dup", n), n);
  return info.Env().Undefined();
}

// ---- loss ----

// crossEntropy(logits, targets, N, V, ignoreIndex, dlogits | null, gradScale) → { lossSum, count }
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropy");
  const int64_t N = a.dim(2, "N"), V = a.dim(3, "V", 1);
  const double ig = a.num(4, "ignoreIndex");
  if (std::floor(ig) != ig || ig < -2147483648.0 || ig > 2147483647.0) a.fail("ignoreIndex must be a 32-bit integer");
  const int32_t ignore = static_cast<int32_t>(ig);
  const I128 nv = static_cast<I128>(N) * V;
  const float* logits = a.f32(0, "logits", nv);
  const int32_t* targets = a.i32(1, "targets", N);
  float* dlogits = a.f32_opt(5, "dlogits", nv);
  const float gradScale = static_cast<float>(a.num(6, "gradScale"));
  for (int64_t n = 0; n < N; n++)
    if (targets[n] != ignore && (targets[n] < 0 || targets[n] >= V))
      a.fail("targets[" + std::to_string(n) + "] = " + std::to_string(targets[n]) + " is outside [0, " + std::to_string(V) + ")");
  int64_t count = 0;
  const double loss = engine(info).xent(logits, targets, N, V, ignore, dlogits, gradScale, &count);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("lossSum", loss);
  o.Set("count", static_cast<double>(count));
  return o;
}

// ---- optimizer ----

// adamw(param, grad, m, v, P, lr, beta1, beta2, eps, weightDecay, step, gradScale)
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Args a(info, "adamw");
  const int64_t P = a.dim(4, "P");
  AdamArgs x;
  x.lr = static_cast<float>(a.finite(5, "lr"));
  const double b1 = a.finite(6, "beta1"), b2 = a.finite(7, "beta2");
  x.beta1 = static_cast<float>(b1);
  x.beta2 = static_cast<float>(b2);
  x.eps = static_cast<float>(a.finite(8, "eps"));
  x.wd = static_cast<float>(a.finite(9, "weightDecay"));
  const int64_t step = a.dim(10, "step", 1);
  x.gradScale = static_cast<float>(a.num(11, "gradScale"));
  // Bias corrections in double: β^step underflows gracefully and 1 − β^step keeps its precision.
  x.bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(x.beta1), static_cast<double>(step)));
  x.bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(x.beta2), static_cast<double>(step)));
  engine(info).adamw(a.f32(0, "param", P), a.f32(1, "grad", P), a.f32(2, "m", P), a.f32(3, "v", P), P, x);
  return info.Env().Undefined();
}

// ---- compression ----

Napi::Value ToFp16(const Napi::CallbackInfo& info) {
  Args a(info, "toFp16");
  const int64_t n = a.dim(2, "n");
  engine(info).to_fp16(a.f32(0, "x", n), a.u16(1, "out", n), n);
  return info.Env().Undefined();
}

Napi::Value FromFp16(const Napi::CallbackInfo& info) {
  Args a(info, "fromFp16");
  const int64_t n = a.dim(2, "n");
  engine(info).from_fp16(a.u16(0, "x", n), a.f32(1, "out", n), n);
  return info.Env().Undefined();
}

Napi::Value QuantizeInt8(const Napi::CallbackInfo& info) {
  Args a(info, "quantizeInt8");
  const int64_t n = a.dim(3, "n"), bs = a.dim(4, "blockSize", 1);
  engine(info).q8(a.f32(0, "x", n), a.i8(1, "q", n), a.f32(2, "scales", (n + bs - 1) / bs), n, bs);
  return info.Env().Undefined();
}

Napi::Value DequantizeInt8(const Napi::CallbackInfo& info) {
  Args a(info, "dequantizeInt8");
  const int64_t n = a.dim(3, "n"), bs = a.dim(4, "blockSize", 1);
  engine(info).dq8(a.i8(0, "q", n), a.f32(1, "scales", (n + bs - 1) / bs), a.f32(2, "out", n), n, bs);
  return info.Env().Undefined();
}

// gemmQ8(a, q, scales, c, M, N, K, blockSize, beta, layout?): C[M, N] = A[M, K] · dequant(Q[N, K])ᵀ + beta·C.
Napi::Value GemmQ8(const Napi::CallbackInfo& info) {
  Args a(info, "gemmQ8");
  Q8GemmArgs g;
  g.M = a.dim(4, "M");
  g.N = a.dim(5, "N");
  g.K = a.dim(6, "K");
  g.bs = a.dim(7, "blockSize", 16);
  if (g.bs % 16 != 0) a.fail("blockSize must be a multiple of 16");
  if (g.K % g.bs != 0) a.fail("K must be a multiple of blockSize");
  const double beta = a.finite(8, "beta");
  if (beta != 0.0 && beta != 1.0) a.fail("beta must be 0 or 1");
  g.beta = static_cast<float>(beta);
  g.ldc = g.N;
  g.A = a.f32(0, "a", static_cast<__int128>(g.M) * g.K);
  g.Q = a.i8(1, "q", static_cast<__int128>(g.N) * g.K);
  g.S = a.f32(2, "scales", static_cast<__int128>(g.N) * (g.K / g.bs));
  g.C = a.f32(3, "c", static_cast<__int128>(g.M) * g.N);
  g.layout = q8_layout(info, a, 9);
  engine(info).gemm_q8(g);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The engine is made at first use (engine() above); N-API deletes it (joining the pool's threads) when the environment goes away.
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"info", Info},
      {"setThreads", SetThreads},
      {"setIsa", SetIsa},
      {"setGemm", SetGemm},
      {"setSpinUs", SetSpinUs},
      {"poolPrime", PoolPrime},
      {"poolRest", PoolRest},
      {"poolId", PoolId},
      {"poolPrimeId", PoolPrimeId},
      {"adviseHugePages", AdviseHugePages},
      {"readStream", ReadStream},
      {"readArrays", ReadArrays},
      {"gemm", Gemm},
      {"gemmQ8", GemmQ8},
      {"add", Add},
      {"axpy", Axpy},
      {"scale", Scale},
      {"sumSquares", SumSquares},
      {"allFinite", AllFinite},
      {"embeddingForward", EmbeddingForward},
      {"embeddingBackward", EmbeddingBackward},
      {"rmsnormForward", RmsnormForward},
      {"rmsnormBackward", RmsnormBackward},
      {"rope", Rope},
      {"attentionForward", AttentionForward},
      {"attentionBackward", AttentionBackward},
      {"attentionDecode", AttentionDecode},
      {"decodeLayer", DecodeLayer},
      {"decodeLayers", DecodeLayers},
      {"decodeTrace", DecodeTrace},
      {"swigluForward", SwigluForward},
      {"swigluBackward", SwigluBackward},
      {"crossEntropy", CrossEntropy},
      {"adamw", AdamW},
      {"toFp16", ToFp16},
      {"fromFp16", FromFp16},
      {"quantizeInt8", QuantizeInt8},
      {"dequantizeInt8", DequantizeInt8},
  };
  for (const auto& f : fns) exports.Set(f.first, Napi::Function::New(env, f.second, f.first));
  return exports;
}

}  // namespace
}  // namespace ns

static Napi::Object InitNeuroshard(Napi::Env env, Napi::Object exports) { return ns::Init(env, exports); }
NODE_API_MODULE(neuroshard_native, InitNeuroshard)
