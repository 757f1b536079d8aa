// A second, tiny addon (`neuroshard_heap`): gives freed C heap back to the OS. Kept apart from the compute addon
// because loading that one starts a thread pool, and this one is loaded on a node's main thread.
//
// Why (issue 12, chaos memory growth): glibc's malloc keeps the pages of freed chunks that are not at the top of a
// heap. A serving node's main thread allocates and frees network buffers of many sizes (socket reads, yamux and
// noise frames, tensors in RPC messages), so its main arena grew to ~200 MiB of mostly free memory while the
// JavaScript heap stayed flat; `malloc_trim(0)` on a running chaos node took its RSS from 414 to 193 MiB.
// The trim runs on libuv's thread pool (a trim that releases ~200 MiB in many fragments took 0.9 s on a loaded
// machine; it holds each arena's lock only while trimming that arena) and resolves a promise.
// Elsewhere (musl, macOS, Windows) there is no such call: the promise resolves to null.
#include <napi.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

class TrimWorker : public Napi::AsyncWorker {
 public:
  TrimWorker(Napi::Env env, Napi::Promise::Deferred deferred) : Napi::AsyncWorker(env), deferred_(deferred) {}

  void Execute() override {
#if defined(__GLIBC__)
    // every arena, free pages in the middle included (glibc >= 2.8); nonzero when some memory was released
    released_ = malloc_trim(0) != 0 ? 1 : 0;
#else
    released_ = -1;
#endif
  }

  void OnOK() override {
    Napi::Env env = Env();
    deferred_.Resolve(released_ < 0 ? env.Null() : Napi::Boolean::New(env, released_ == 1));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int released_ = -1;
};

Napi::Value TrimHeap(const Napi::CallbackInfo& info) {
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(info.Env());
  (new TrimWorker(info.Env(), deferred))->Queue();
  return deferred.Promise();
}

// setMallocPolicy(mmapThreshold, trimThreshold) -> true | false | null: fixed glibc thresholds (mallopt), so that a
// freed large buffer stays in the heap for the next one instead of being unmapped (or trimmed off the heap's top) and
// mapped and faulted in again: a fresh 1 MiB buffer the lane fills cost 4-5x its memset (docs/LIMITS.md "Session 22:
// 1 MiB on the lane"). The periodic trim above still gives free pages back. null where there is no mallopt.
Napi::Value SetMallocPolicy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "setMallocPolicy(mmapThreshold, trimThreshold)");
  double mmapT = info[0].As<Napi::Number>().DoubleValue();
  double trimT = info[1].As<Napi::Number>().DoubleValue();
  // glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit (HEAP_MAX_SIZE / 2) and refuses more
  if (!(mmapT >= 0 && mmapT <= 32.0 * 1024 * 1024) || !(trimT >= 0 && trimT <= 2147483647.0)) throw Napi::RangeError::New(env, "threshold out of range");
#if defined(__GLIBC__)
  bool ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmapT)) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(trimT)) == 1 && ok;
  return Napi::Boolean::New(env, ok);
#else
  return env.Null();
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("trimHeap", Napi::Function::New(env, TrimHeap, "trimHeap"));
  exports.Set("setMallocPolicy", Napi::Function::New(env, SetMallocPolicy, "setMallocPolicy"));
  return exports;
}

}  // namespace

NODE_API_MODULE(neuroshard_heap, Init)
