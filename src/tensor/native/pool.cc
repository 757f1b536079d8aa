#include "pool.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#if defined(__linux__)
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax() { asm volatile("yield" ::: "memory"); }
#else
static inline void cpu_relax() {}
#endif

namespace ns {

namespace {
bool stats_on() {
  static const bool on = [] {
    const char* e = std::getenv("NEUROSHARD_POOL_STATS");
    return e != nullptr && *e == '1';
  }();
  return on;
}
int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// True on a thread while it runs tasks of a job: a nested run() then executes serially instead of deadlocking.
thread_local bool tl_in_job = false;
// The pool thread id of this thread (0 for the caller), for a nested run's scratch.
thread_local int tl_tid = 0;

using Clock = std::chrono::steady_clock;

// How long the caller spins on a helper's unfinished task before it yields the core at each further check.
constexpr int kWaitSpinUs = 20;

// Threads of every live pool in this process (each compute worker of a process owns a pool; the addon's globals
// are shared by all of them) and the CPUs the process may run on. Every helper may spin after a job while the pools
// together hold no more threads than CPUs; beyond that, an idle helper spinning beside more runnable threads than
// cores takes a core from a thread with work (see g_active below). Measured on the serving bench's 4-hop chain (four workers of 2 threads, all in
// one process on 2 cores): the spins of the hop that just answered overlapped the next hop's start on every step.
std::atomic<int> g_pool_threads{0};
// While they do oversubscribe it, spinning is a process-wide budget: only the helpers of the pool that opened a job
// (or was primed) most recently may spin, at most usable CPUs - 1 of them at once (one CPU is left to the threads
// with work: the caller, the main thread carrying a result on), and a spinner stops as soon as another pool takes
// over. In a chain of hops in one process only one hop computes at a time: its helpers keep the speed of a lone
// pool (no futex wake-up per layer), the idle hops' helpers sleep. Before this (session 16) no helper spun at all
// there, and every layer of a hop woke a sleeping helper that often joined late or not at all: the serving bench's
// 4-hop chain spent 12.05 ms per token in its workers against 7.09 ms for the same 12 layers in one hop.
std::atomic<const Pool*> g_active{nullptr};
std::atomic<int> g_spinning{0};

int cpus_of_process() {
  static const int n = [] {
    int c = 0;
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) c = CPU_COUNT(&set);
#endif
    if (c <= 0) c = static_cast<int>(std::thread::hardware_concurrency());
    return c > 0 ? c : 1;
  }();
  return n;
}

// The live pools by id (Pool::prime_id): registered by the constructor, removed by the destructor; resize() holds
// the lock too, so that a prime from another thread never meets a pool whose threads are being replaced.
std::mutex g_reg_mu;
std::vector<std::pair<uint32_t, Pool*>> g_reg;
uint32_t g_next_id = 0;

// NEUROSHARD_POOL_SHARED_SPIN=0: the session-16 policy, for A/B measurements (no spin at all while the pools
// oversubscribe the CPUs; prime() and rest() do nothing).
bool shared_spin() {
  static const bool on = [] {
    const char* e = std::getenv("NEUROSHARD_POOL_SHARED_SPIN");
    return e == nullptr || *e != '0';
  }();
  return on;
}

// One of the oversubscribed process's spin slots (usable CPUs - 1), or false when all are taken.
bool take_spin_slot() {
  const int most = cpus_of_process() - 1;
  int n = g_spinning.load(std::memory_order_relaxed);
  while (n < most)
    if (g_spinning.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) return true;
  return false;
}

template <class Done>
void wait_until(Done done) {
  if (done()) return;
  const auto limit = Clock::now() + std::chrono::microseconds(kWaitSpinUs);
  for (int k = 1;; k++) {
    if (done()) return;
    if ((k & 63) == 0 && Clock::now() > limit) break;
    cpu_relax();
  }
  while (!done()) std::this_thread::yield();
}
}  // namespace

Pool::Shape& Pool::shape(int64_t ntasks, int nphases) {
  const int64_t key = ntasks * 4096 + nphases;
  Shape& sh = shapes_[static_cast<uint64_t>(key * 0x9E3779B97F4A7C15ull >> 32) % kShapes];
  if (sh.key != key && sh.key != -1) {
    // two shapes on one slot: the first keeps it, the second is counted in the last slot, marked mixed (-2)
    Shape& other = shapes_[kShapes - 1];
    if (other.key != key) other.key = -2;
    return other;
  }
  sh.key = key;
  return sh;
}

int Pool::process_threads() { return g_pool_threads.load(std::memory_order_relaxed); }
int Pool::usable_cpus() { return cpus_of_process(); }

Pool::Pool(int threads) {
  {
    std::lock_guard<std::mutex> lk(g_reg_mu);
    id_ = ++g_next_id;
    g_reg.emplace_back(id_, this);
  }
  start(threads);
}

bool Pool::prime_id(uint32_t id) {
  std::lock_guard<std::mutex> lk(g_reg_mu);
  for (const auto& e : g_reg)
    if (e.first == id) {
      e.second->prime();
      return true;
    }
  return false;
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lk(g_reg_mu);
    for (size_t i = 0; i < g_reg.size(); i++)
      if (g_reg[i].second == this) {
        g_reg.erase(g_reg.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
  }
  stop();
  if (stats_on())
    std::fprintf(stderr,
                 "neuroshard pool (%d threads): %lld jobs, %lld tasks, %lld wake-ups, helpers joined %lld times (mean delay %.1f us) and ran %lld tasks; "
                 "spins ended by a job %lld, by time %lld, cut %lld, not begun %lld\n",
                 nthreads_, static_cast<long long>(jobs_), static_cast<long long>(tasks_), static_cast<long long>(wakes_), static_cast<long long>(helper_joins_.load()),
                 helper_joins_.load() > 0 ? static_cast<double>(join_delay_ns_.load()) / 1e3 / static_cast<double>(helper_joins_.load()) : 0.0,
                 static_cast<long long>(helper_tasks_.load()), static_cast<long long>(spin_job_.load()), static_cast<long long>(spin_timeout_.load()),
                 static_cast<long long>(spin_cut_.load()), static_cast<long long>(spin_none_.load()));
  if (stats_on())
    std::fprintf(stderr, "  gaps between jobs (us) <20 %lld, <50 %lld, <100 %lld, <200 %lld, <500 %lld, <2000 %lld, more %lld\n", static_cast<long long>(gaps_[0]),
                 static_cast<long long>(gaps_[1]), static_cast<long long>(gaps_[2]), static_cast<long long>(gaps_[3]), static_cast<long long>(gaps_[4]),
                 static_cast<long long>(gaps_[5]), static_cast<long long>(gaps_[6]));
  if (stats_on())
    for (const Shape& sh : shapes_)
      if (sh.solo + sh.helped > 0)
        std::fprintf(stderr, "  jobs of %lld tasks in %d phase(s): %lld no helper worked on (mean %.1f us), %lld a helper did (mean %.1f us)\n",
                     static_cast<long long>(sh.key < 0 ? -1 : sh.key / 4096), sh.key < 0 ? -1 : static_cast<int>(sh.key % 4096), static_cast<long long>(sh.solo),
                     sh.solo > 0 ? static_cast<double>(sh.solo_ns) / 1e3 / static_cast<double>(sh.solo) : 0.0, static_cast<long long>(sh.helped),
                     sh.helped > 0 ? static_cast<double>(sh.helped_ns) / 1e3 / static_cast<double>(sh.helped) : 0.0);
  for (Buf& b : bufs_) std::free(b.p);
}

void Pool::start(int threads) {
  if (threads < 1) threads = 1;
  nthreads_ = threads;
  stopping_.store(false);
  // Scratch of threads that no longer exist is freed; that of the survivors is kept.
  const size_t want = static_cast<size_t>(threads) * kSlots;
  for (size_t i = want; i < bufs_.size(); i++) std::free(bufs_[i].p);
  bufs_.resize(want);
  g_pool_threads.fetch_add(threads, std::memory_order_relaxed);
  workers_.reserve(threads - 1);
  for (int t = 1; t < threads; t++) workers_.emplace_back(&Pool::worker, this, t);
}

void Pool::stop() {
  if (stopping_.load()) return;  // stopped already (resize, then the destructor)
  g_pool_threads.fetch_sub(nthreads_, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_.store(true);
  }
  cv_.notify_all();
  for (std::thread& w : workers_) w.join();
  workers_.clear();
}

void Pool::resize(int threads) {
  if (threads < 1) threads = 1;
  if (threads == nthreads_) return;
  std::lock_guard<std::mutex> lk(g_reg_mu);
  stop();
  start(threads);
}

void Pool::reserve(int slot, size_t floats) {
  for (int tid = 0; tid < nthreads_; tid++) {
    Buf& b = bufs_[static_cast<size_t>(tid) * kSlots + slot];
    if (b.n >= floats) continue;
    std::free(b.p);
    // Round up so that a slowly growing request does not reallocate every call.
    const size_t n = floats + floats / 4 + 1024;
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    b.p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (b.p == nullptr) {
      b.n = 0;
      throw std::bad_alloc();
    }
    b.n = n;
  }
}

int64_t Pool::work(int tid) {
  if (ends_ == nullptr) {
    for (int64_t done = 0;; done++) {
      const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= ntasks_) return done;
      fn_(ctx_, t, tid);
      finished_.fetch_add(1, std::memory_order_release);
    }
  }
  // Phased: a thread claims the next task only once the phases before it have finished, never to wait on them
  // holding it. (Claiming first and then waiting at the boundary left a task in the hands of a thread that might
  // be descheduled while it waited, on a busy machine for a whole time slice, and the other thread then waited for
  // that task at the next boundary: with a decode step's 120 phases in one job, the step's median at load 7-10 went
  // 1.4-1.6x the per-layer jobs'. Now a thread holds a task only while it runs it.)
  int p = 0;  // the phase of the next unclaimed task as last seen (tasks come in increasing order)
  int64_t t = next_.load(std::memory_order_relaxed);
  for (int64_t done = 0;;) {
    if (t >= ntasks_) return done;
    while (p < nphases_ - 1 && t >= ends_[p]) p++;
    if (p > 0) {
      const int64_t need = ends_[p - 1];
      // Every task before this phase has been claimed (the counter is monotonic); wait until they have finished.
      wait_until([&] { return finished_.load(std::memory_order_acquire) >= need; });
    }
    // (on failure t holds the counter as another thread left it: look at that task's phase again)
    if (!next_.compare_exchange_weak(t, t + 1, std::memory_order_relaxed, std::memory_order_relaxed)) continue;
    fn_(ctx_, t, tid);
    finished_.fetch_add(1, std::memory_order_release);
    done++;
    t = next_.load(std::memory_order_relaxed);
  }
}

void Pool::run_phased(const int64_t* ends, int nphases, int want, TaskFn fn, void* ctx) {
  if (nphases <= 0) return;
  const int64_t ntasks = ends[nphases - 1];
  if (ntasks <= 0) return;
  int n = want < nthreads_ ? want : nthreads_;
  if (n <= 1 || tl_in_job) {
    // Serial: tasks in order satisfy every phase boundary.
    run(ntasks, 1, fn, ctx);
    return;
  }
  ends_ = ends;
  nphases_ = nphases;
  run(ntasks, want, fn, ctx);
  ends_ = nullptr;
  nphases_ = 1;
}

void Pool::prime() {
  if (nthreads_ <= 1 || !shared_spin()) return;
  if (g_active.load(std::memory_order_relaxed) != this) g_active.store(this, std::memory_order_relaxed);
  rest_.store(~uint64_t{0}, std::memory_order_relaxed);
  primes_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
}

// Jobs are opened only by this (calling) thread, so gen_ is the last one published.
void Pool::rest() {
  if (shared_spin()) rest_.store(gen_, std::memory_order_release);
}

void Pool::run(int64_t ntasks, int want, TaskFn fn, void* ctx) {
  if (ntasks <= 0) return;
  int n = want < nthreads_ ? want : nthreads_;
  if (n > ntasks) n = static_cast<int>(ntasks);
  if (n <= 1 || tl_in_job) {
    const bool outer = tl_in_job;
    tl_in_job = true;
    for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, tl_tid);
    tl_in_job = outer;
    return;
  }
  // (before the job opens: a helper could run all of it before the caller looks)
  const int64_t t_open = stats_on() ? now_ns() : 0;
  const int64_t helped_before = stats_on() ? helper_tasks_.load(std::memory_order_relaxed) : 0;
  // No helper is inside a job here (the previous run waited for joined_ == 0), so the fields are ours to write.
  fn_ = fn;
  ctx_ = ctx;
  ntasks_ = ntasks;
  want_ = n;
  next_.store(0, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  gen_++;
  if (g_active.load(std::memory_order_relaxed) != this) g_active.store(this, std::memory_order_relaxed);
  const uint64_t open = gen_ << 1 | 1;
  word_.store(open, std::memory_order_seq_cst);
  jobs_++;
  tasks_ += ntasks;
  if (stats_on()) {
    const int64_t t = now_ns();
    opened_ns_.store(t, std::memory_order_relaxed);
    const int64_t us = (t - closed_ns_) / 1000;
    gaps_[us < 20 ? 0 : us < 50 ? 1 : us < 100 ? 2 : us < 200 ? 3 : us < 500 ? 4 : us < 2000 ? 5 : 6]++;
  }
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    wakes_++;
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
  tl_in_job = true;
  work(0);
  tl_in_job = false;
  // Every task is claimed; wait for those a helper is still running. Spin first, then yield the core: the helper
  // may have been descheduled (a busy machine), or woken on this very CPU (the scheduler's wake-affine placement
  // puts a woken thread beside its waker), and then every spin keeps it off the CPU we wait on. The spin was 20,000
  // pauses (~0.4 ms on Zen, where a pause is ~65 cycles) per product: a helper woken beside its caller cost a decode
  // step's 49 products up to that much each, which made int8 decode on 2 threads slower than on 1. The spin is now
  // bounded by time (kWaitSpinUs), about a chunk of a decode GEMV.
  wait_until([&] { return finished_.load(std::memory_order_acquire) >= ntasks; });
  // Close the job, then wait until no helper is inside it (one may have joined just now and will leave at once;
  // it may also have been preempted between joining and leaving, hence the same spin-then-yield).
  word_.store(gen_ << 1, std::memory_order_seq_cst);
  wait_until([&] { return joined_.load(std::memory_order_seq_cst) == 0; });
  if (stats_on()) {
    closed_ns_ = now_ns();
    // No helper is inside the job now: helper_tasks_ holds every task they ran in it (only this pool's helpers add
    // to it, and only inside its jobs).
    Shape& sh = shape(ntasks, ends_ == nullptr ? 1 : nphases_);
    if (helper_tasks_.load(std::memory_order_relaxed) != helped_before)
      sh.helped++, sh.helped_ns += closed_ns_ - t_open;
    else
      sh.solo++, sh.solo_ns += closed_ns_ - t_open;
  }
}

void Pool::worker(int tid) {
  tl_tid = tid;
  uint64_t seen = 0;  // the generation last looked at
  uint64_t primed = primes_.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t w = word_.load(std::memory_order_acquire);
    if ((w >> 1) == seen) {
      // Spin for up to spin_us_, then sleep until a new job is published. (Tried: polling with sched_yield for 2 ms
      // more before sleeping, to keep the helper awake through a decode step's gaps. On this 2-core machine at load
      // 15-23 it made decode at 2 threads several times slower at the median: the yielding helper kept taking
      // the core from its own caller. Not kept.)
      // No spin after rest() until the next job or prime(). While this process's pools hold more threads than it
      // has CPUs, only within the spin budget (g_active, g_spinning) and only while this pool is the active one.
      const bool over = g_pool_threads.load(std::memory_order_relaxed) > cpus_of_process();
      int spin = rest_.load(std::memory_order_acquire) == seen ? 0 : spin_us_.load(std::memory_order_relaxed);
      bool slot = false;
      if (spin > 0 && over) {
        slot = shared_spin() && g_active.load(std::memory_order_relaxed) == this && take_spin_slot();
        if (!slot) spin = 0;
      }
      const auto limit = Clock::now() + std::chrono::microseconds(spin);
      int k = 0;
      while (spin > 0 && ((w = word_.load(std::memory_order_acquire)) >> 1) == seen && !stopping_.load(std::memory_order_relaxed)) {
        cpu_relax();
        if ((++k & 255) == 0 && Clock::now() > limit) break;
        if ((k & 15) == 0 && (rest_.load(std::memory_order_relaxed) == seen || (over && g_active.load(std::memory_order_relaxed) != this))) break;
      }
      if (slot) g_spinning.fetch_sub(1, std::memory_order_acq_rel);
      if (stats_on()) {
        if (spin <= 0)
          spin_none_.fetch_add(1, std::memory_order_relaxed);
        else if ((w >> 1) != seen)
          spin_job_.fetch_add(1, std::memory_order_relaxed);
        else if (Clock::now() > limit)
          spin_timeout_.fetch_add(1, std::memory_order_relaxed);
        else
          spin_cut_.fetch_add(1, std::memory_order_relaxed);
      }
      if ((w >> 1) == seen && !stopping_.load(std::memory_order_relaxed)) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_.wait(lk, [&] { return ((w = word_.load(std::memory_order_seq_cst)) >> 1) != seen || stopping_.load() || primes_.load(std::memory_order_seq_cst) != primed; });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        primed = primes_.load(std::memory_order_relaxed);
        // Primed and no job yet: spin again (the loop's top) for the job that is coming.
        if ((w >> 1) == seen && !stopping_.load(std::memory_order_acquire)) continue;
      }
    }
    if (stopping_.load(std::memory_order_acquire)) return;
    seen = w >> 1;
    if ((w & 1) == 0) continue;  // already closed: nothing left to do
    const int j = joined_.fetch_add(1, std::memory_order_seq_cst);
    // Still the same open job? (Once joined, the caller waits for us before it touches the job's fields again.)
    if (word_.load(std::memory_order_seq_cst) == w && j < want_ - 1) {
      const int64_t joined_at = stats_on() ? now_ns() : 0;
      tl_in_job = true;
      const int64_t done = work(tid);
      tl_in_job = false;
      if (done > 0) {
        if (stats_on()) join_delay_ns_.fetch_add(joined_at - opened_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        helper_joins_.fetch_add(1, std::memory_order_relaxed);
        helper_tasks_.fetch_add(done, std::memory_order_relaxed);
      }
    }
    joined_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

}  // namespace ns
