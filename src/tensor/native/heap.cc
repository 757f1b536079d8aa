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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("trimHeap", Napi::Function::New(env, TrimHeap, "trimHeap"));
  return exports;
}

}  // namespace

NODE_API_MODULE(neuroshard_heap, Init)
