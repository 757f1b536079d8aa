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

  // Hints from the owner of the pool, who knows when a burst of jobs (a decode step: one job per layer, JS between
  // them) begins and ends. prime(): a burst is coming; sleeping helpers wake now and spin for up to spin_us_ waiting
  // for its first job, so their wake-up overlaps the caller's preparation instead of the first job. rest(): the
  // burst is over; helpers sleep at once instead of spinning out spin_us_ (beside the threads that carry the
  // result on). Neither changes what a job computes; both are free to ignore. Call from the pool's calling thread,
  // never inside a job.
  void prime();
  void rest();

  // This pool's id in the process (1, 2, ...; never reused), and prime() of the live pool with that id from any
  // thread of the process (false when none lives). For a caller that hands the pool's owner a burst of work from
  // another thread (the main thread posting a decode step to a compute worker): the helpers' wake-up then overlaps
  // the owner's own wake-up instead of following it. The pool cannot be destroyed or resized while it is primed
  // this way (both take the registry's lock).
  uint32_t id() const { return id_; }
  static bool prime_id(uint32_t id);

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
  int64_t work(int tid);  // the tasks it ran

  int nthreads_ = 1;
  uint32_t id_ = 0;
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

  // The generation after which helpers sleep at once (rest()); ~0: none. prime() clears it and bumps primes_, which
  // wakes sleeping helpers.
  std::atomic<uint64_t> rest_{~uint64_t{0}};
  std::atomic<uint64_t> primes_{0};

  // Counts for NEUROSHARD_POOL_STATS (printed to stderr when the pool ends): jobs run on more than one thread,
  // their tasks, the wake-ups (notify of sleeping helpers) the caller did, and the tasks and joins of helpers.
  int64_t jobs_ = 0, tasks_ = 0, wakes_ = 0;
  std::atomic<int64_t> helper_tasks_{0}, helper_joins_{0};
  // With NEUROSHARD_POOL_STATS: when the job was opened (ns, steady clock), the helpers' summed delay from there to
  // joining, and how their spins ended (a job came, time ran out, rest() or another pool took over, not allowed).
  std::atomic<int64_t> opened_ns_{0}, join_delay_ns_{0};
  int64_t closed_ns_ = 0, gaps_[7] = {0, 0, 0, 0, 0, 0, 0};  // time between a job's close and the next job's opening
  std::atomic<int64_t> spin_job_{0}, spin_timeout_{0}, spin_cut_{0}, spin_none_{0};
  // With NEUROSHARD_POOL_STATS, per job shape (its task and phase counts: a decode layer, the head's product, ...):
  // the jobs no helper worked on (they ran at one thread's speed) and those a helper did, with their summed times
  // from opening to close (ns, the caller's clock), so that the same layers can be compared between pools.
  struct Shape {
    int64_t key = -1;
    int64_t solo = 0, solo_ns = 0, helped = 0, helped_ns = 0;
  };
  static constexpr int kShapes = 16;
  Shape shapes_[kShapes];
  Shape& shape(int64_t ntasks, int nphases);

  std::atomic<int> sleepers_{0};
  std::atomic<int> spin_us_{100};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ns
