// A second, tiny addon (`neuroshard_heap`): gives freed C heap back to the OS. Kept apart from the compute addon
// because loading that one starts a thread pool, and this one is loaded on a node's main thread.
//
// Why (issue 12, chaos memory growth): glibc's malloc keeps the pages of freed chunks that are not at the top of a
// heap. A serving node's main thread allocates and frees network buffers of many sizes (socket reads, yamux and
// noise frames, tensors in RPC messages), so its main arena grew to ~200 MiB of mostly free memory while the
// JavaScript heap stayed flat; `malloc_trim(0)` on a running chaos node took its RSS from 414 to 193 MiB.
// Elsewhere (musl, macOS, Windows) there is no such call: trimHeap returns null.
#include <napi.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

Napi::Value TrimHeap(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  // true when some memory was released (every arena, free pages in the middle included: glibc >= 2.8)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return info.Env().Null();
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("trimHeap", Napi::Function::New(env, TrimHeap, "trimHeap"));
  return exports;
}

}  // namespace

NODE_API_MODULE(neuroshard_heap, Init)
