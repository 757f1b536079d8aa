// A small persistent thread pool: the only level of threading in the engine.
//
// A job is a list of independent tasks. The calling thread always works on it (as thread id 0), and the pool's
// N - 1 helper threads join when they wake; tasks are claimed one at a time from a shared counter. The caller
// returns as soon as every task is done: a helper that has not joined by then (asleep, or descheduled on a busy
// machine) simply skips the job, so a slow helper never stalls a kernel, it only fails to speed it up. Helpers spin
// for a short while after a job (kernels of a training step come back to back, microseconds apart) and then sleep
// on a condition variable, so an idle pool costs nothing. Threads are started once, never per call.
//
// Determinism: the pool only decides *which thread* runs a task. Every kernel in this addon makes a task's
// arithmetic independent of that choice (see kernels.h), so results do not depend on the thread count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ns {

class Pool {
 public:
  using TaskFn = void (*)(void* ctx, int64_t task, int tid);

  explicit Pool(int threads);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return nthreads_; }
  // Stops the helper threads and starts n - 1 new ones. Must not be called from inside a job.
  void resize(int threads);
  // How long an idle helper spins before it sleeps (while the process's pools do not oversubscribe its CPUs; see
  // process_threads()).
  void set_spin_us(int us) { spin_us_.store(us < 0 ? 0 : us, std::memory_order_relaxed); }
  // Threads of every live pool in this process (all addon instances: one per worker thread that loaded it) and the
  // CPUs the process may run on. While the first exceeds the second, idle helpers sleep at once instead of spinning.
  static int process_threads();
  static int usable_cpus();

  // Runs fn(ctx, task, tid) for every task in [0, ntasks) on up to `want` threads (the caller included). `tid` is in
  // [0, threads()) and identifies the thread's scratch buffers. Nested calls run serially on the calling thread.
  void run(int64_t ntasks, int want, TaskFn fn, void* ctx);

  template <class F>
  void run(int64_t ntasks, int want, F& f) {
    run(ntasks, want, [](void* c, int64_t task, int tid) { (*static_cast<F*>(c))(task, tid); }, &f);
  }

  // One job of `nphases` phases: phase p is tasks [ends[p-1], ends[p]) (ends ascending, ends[nphases-1] = all
  // tasks), and no task of phase p starts before every task of phase p-1 has finished. Tasks are claimed in order
  // from one counter, as in run(), so a thread waits at a phase boundary only on tasks already claimed by running
  // threads; a helper that never joins still costs nothing. For a chain of dependent steps (a decode layer's
  // products and the small ops between them) this is one wake-up and no job open/close per step: the boundary is
  // a wait on a counter. `ends` must outlive the call.
  void run_phased(const int64_t* ends, int nphases, int want, TaskFn fn, void* ctx);

  template <class F>
  void run_phased(const int64_t* ends, int nphases, int want, F& f) {
    run_phased(ends, nphases, want, [](void* c, int64_t task, int tid) { (*static_cast<F*>(c))(task, tid); }, &f);
  }

  // Per-thread scratch memory, 64-byte aligned, kept between calls. `reserve` grows buffer `slot` of every thread
  // to at least `floats` and must be called on the calling thread before run() (it may throw std::bad_alloc, which
  // must never happen inside a job); inside a job, thread `tid` uses only its own buffer(s) via scratch().
  static constexpr int kSlots = 4;
  void reserve(int slot, size_t floats);
  float* scratch(int tid, int slot) const { return bufs_[static_cast<size_t>(tid) * kSlots + slot].p; }

 private:
  struct Buf {
    float* p = nullptr;
    size_t n = 0;
  };

  void worker(int tid);
  void start(int threads);
  void stop();
  void work(int tid);

  int nthreads_ = 1;
  std::vector<std::thread> workers_;
  std::vector<Buf> bufs_;  // [thread][slot]

  // The job. `word_` = generation << 1 | open. Fields are written while the job is closed and no helper is inside
  // it (joined_ == 0); a helper reads them only after joining and re-checking that the word has not changed.
  alignas(64) std::atomic<uint64_t> word_{0};
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<int64_t> finished_{0};
  alignas(64) std::atomic<int> joined_{0};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t ntasks_ = 0;
  // Phase ends of a run_phased job (nullptr: one phase).
  const int64_t* ends_ = nullptr;
  int nphases_ = 1;
  int want_ = 1;
  uint64_t gen_ = 0;

  std::atomic<int> sleepers_{0};
  std::atomic<int> spin_us_{100};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ns
