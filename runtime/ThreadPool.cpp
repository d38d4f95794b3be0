// The runtime's thread pool (ThreadPool.h) and its C ABI (KilnABI.h): one process-wide pool of
// fixed workers woken per parallel loop through a generation counter, claiming chunks by CAS.
#include "runtime/ThreadPool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/KilnABI.h"

namespace kiln::rt {

namespace {

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// How long a thread polls before it sleeps on a futex. A prediction calls the pool once per
/// matrix product with a little serial elementwise work between them; polling that long keeps
/// the workers awake across the gap, where a futex wake-up would cost several microseconds.
/// Past kPauseTime the poll yields the core between checks: on an oversubscribed machine the
/// thread it waits for may need that core to finish.
constexpr auto kPauseTime = std::chrono::microseconds(20);
constexpr auto kSpinTime = std::chrono::microseconds(100);

/// Polls `flag` until `keepWaiting(value)` is false, then sleeps on it (std::atomic::wait is a
/// futex on Linux: no allocation). Returns the value that ended the wait.
template <class T, class Pred>
T awaitChange(const std::atomic<T>& flag, Pred keepWaiting) {
  T v = flag.load(std::memory_order_acquire);
  if (!keepWaiting(v)) return v;
  auto start = std::chrono::steady_clock::now();
  bool yielding = false;
  for (int i = 1;; ++i) {
    if (yielding) std::this_thread::yield();
    else cpuRelax();
    v = flag.load(std::memory_order_acquire);
    if (!keepWaiting(v)) return v;
    if (yielding || i % 64 == 0) {
      auto waited = std::chrono::steady_clock::now() - start;
      if (waited > kSpinTime) break;
      yielding = waited > kPauseTime;
    }
  }
  while (keepWaiting(v)) {
    flag.wait(v, std::memory_order_acquire);
    v = flag.load(std::memory_order_acquire);
  }
  return v;
}

/// True on the workers, and on a caller while it runs chunks of its loop: a parallel loop started
/// there runs serially instead of waiting on the workers it is running on.
thread_local bool tInsideLoop = false;
/// The chunk of a pool loop this thread is running, or -1.
thread_local int tChunk = -1;

int availableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

/// Worker i runs chunk i of each loop unless the caller got to it first: after its own chunk 0
/// the caller takes every chunk no worker has claimed yet, so a worker that is asleep or
/// descheduled (the machine oversubscribed) costs at most its wake-up, not the whole chunk.
/// Claims are compare-and-swaps of the loop's number into claimed_[i]; numbers only grow, and a
/// loop finishes only after all its chunks are claimed and done, so a worker that wakes late
/// can never claim a chunk of a loop that is over.
class Pool {
 public:
  Pool() : threads_(defaultNumThreads()) {}
  ~Pool() {
    std::lock_guard<std::mutex> lock(dispatch_);
    stopWorkers();
  }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void setThreads(int n) {
    std::lock_guard<std::mutex> lock(dispatch_);
    stopWorkers();
    threads_.store(n, std::memory_order_relaxed);
  }

  void run(int64_t n, int64_t grain, RangeFn body, void* ctx) {
    if (n <= 0) return;
    if (tInsideLoop || Partition::of(n, grain, threads()).chunks <= 1) return body(0, n, ctx);
    // One loop at a time: a second caller runs its loop on its own thread instead of queueing.
    std::unique_lock<std::mutex> lock(dispatch_, std::try_to_lock);
    if (!lock.owns_lock()) return body(0, n, ctx);
    Partition part = Partition::of(n, grain, threads());  // the count may have just changed
    if (part.chunks <= 1) return body(0, n, ctx);
    if (static_cast<int>(workers_.size()) != threads() - 1) {
      stopWorkers();
      startWorkers(threads() - 1);
    }
    uint64_t loop = ++loops_;
    // Workers past the last chunk have nothing to claim in this loop.
    for (int i = static_cast<int>(part.chunks); i < threads(); ++i)
      claimed_[i].store(loop, std::memory_order_relaxed);
    part_ = part;
    body_ = body;
    ctx_ = ctx;
    remaining_.store(static_cast<int>(part.chunks - 1), std::memory_order_relaxed);
    loop_.store(loop, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();

    tInsideLoop = true;
    runChunk(0);
    for (int i = 1; i < part.chunks; ++i)
      if (claim(i, loop)) {
        runChunk(i);
        remaining_.fetch_sub(1, std::memory_order_acq_rel);
      }
    tInsideLoop = false;
    awaitChange(remaining_, [](int r) { return r != 0; });
  }

 private:
  bool claim(int chunk, uint64_t loop) {
    uint64_t cur = claimed_[chunk].load(std::memory_order_relaxed);
    return cur < loop &&
           claimed_[chunk].compare_exchange_strong(cur, loop, std::memory_order_acq_rel);
  }

  void runChunk(int i) {
    int64_t begin, end;
    part_.range(i, &begin, &end);
    tChunk = i;
    body_(begin, end, ctx_);
    tChunk = -1;
  }

  // Both run under dispatch_.
  void startWorkers(int count) {
    stop_.store(false, std::memory_order_relaxed);
    uint32_t seen = generation_.load(std::memory_order_relaxed);
    workers_.reserve(static_cast<size_t>(count));
    for (int i = 1; i <= count; ++i) workers_.emplace_back([this, i, seen] { workerLoop(i, seen); });
  }
  void stopWorkers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  void workerLoop(int index, uint32_t seen) {
    tInsideLoop = true;
    for (;;) {
      seen = awaitChange(generation_, [seen](uint32_t g) { return g == seen; });
      if (stop_.load(std::memory_order_acquire)) return;
      // A successful claim means the loop is still under way, so part_, body_ and ctx_ are its.
      if (claim(index, loop_.load(std::memory_order_acquire))) {
        runChunk(index);
        if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) remaining_.notify_one();
      }
    }
  }

  std::mutex dispatch_;
  std::atomic<int> threads_;
  std::vector<std::thread> workers_;
  // The loop under way: written by the dispatching thread before it publishes loop_ (release),
  // read by whoever claims one of its chunks (after an acquire of loop_).
  Partition part_;
  RangeFn body_ = nullptr;
  void* ctx_ = nullptr;
  uint64_t loops_ = 0;  // loops started, under dispatch_
  std::atomic<uint64_t> loop_{0};
  std::atomic<uint64_t> claimed_[kMaxThreads] = {};
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> generation_{0};  // bumped to wake the workers
  std::atomic<int> remaining_{0};        // chunks other than 0 not yet done
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

std::optional<int> parseNumThreads(const char* text, std::string* error) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno == ERANGE || v < 1 || v > kMaxThreads) {
    if (error)
      *error = "expected an integer from 1 to " + std::to_string(kMaxThreads) + ", found '" +
               text + "'";
    return std::nullopt;
  }
  return static_cast<int>(v);
}

int defaultNumThreads() {
  int cores = std::min(availableCores(), kMaxThreads);
  const char* env = std::getenv("KILN_NUM_THREADS");
  if (!env || !*env) return cores;
  std::string error;
  if (std::optional<int> n = parseNumThreads(env, &error)) return *n;
  // Reported once per process (the default is read when the pool starts and on reset).
  static std::once_flag reported;
  std::call_once(reported, [&] {
    std::fprintf(stderr, "kiln runtime: KILN_NUM_THREADS: %s; using %d (the available cores)\n",
                 error.c_str(), cores);
  });
  return cores;
}

int numThreads() { return pool().threads(); }

int currentChunk() { return tChunk; }

void setNumThreads(int n) { pool().setThreads(n >= 1 ? std::min(n, kMaxThreads) : defaultNumThreads()); }

Partition Partition::of(int64_t n, int64_t grain, int threads) {
  Partition p;
  p.n = std::max<int64_t>(n, 0);
  p.grain = std::max<int64_t>(grain, 1);
  int64_t units = p.n == 0 ? 0 : (p.n - 1) / p.grain + 1;
  p.chunks = std::min<int64_t>(std::max(threads, 1), units);
  return p;
}

void Partition::range(int64_t i, int64_t* begin, int64_t* end) const {
  // Chunk i gets grain units [i*units/chunks, (i+1)*units/chunks): sizes differ by at most one
  // unit. 128-bit products: units * j * grain can pass int64 for huge n.
  int64_t units = (n - 1) / grain + 1;
  auto start = [&](int64_t j) {
    return static_cast<int64_t>(
        std::min<__int128>(n, static_cast<__int128>(units) * j / chunks * grain));
  };
  *begin = start(i);
  *end = i + 1 == chunks ? n : start(i + 1);
}

void parallelFor(int64_t n, int64_t grain, RangeFn body, void* ctx) {
  pool().run(n, grain, body, ctx);
}

}  // namespace kiln::rt

extern "C" {

void kiln_rt_set_num_threads(int n) { kiln::rt::setNumThreads(n); }

int kiln_rt_get_num_threads(void) { return kiln::rt::numThreads(); }

void kiln_rt_parallel_for(int64_t n, int64_t grain, kiln_range_fn body, void* ctx) {
  kiln::rt::parallelFor(n, grain, body, ctx);
}

}  // extern "C"
