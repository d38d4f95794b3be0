// The runtime's thread pool: fixed worker threads that split a range [0, n) into contiguous
// chunks, deterministically, with no heap allocation per parallel loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kiln::rt {

/// The body of a parallel loop: processes indices [begin, end).
using RangeFn = void (*)(int64_t begin, int64_t end, void* ctx);

/// Upper bound on the thread count (a guard against a mistyped KILN_NUM_THREADS).
constexpr int kMaxThreads = 256;

/// Threads the runtime's kernels use, >= 1: the last setNumThreads(n >= 1), else the default.
int numThreads();
/// n >= 1 sets the thread count (capped at kMaxThreads); n <= 0 restores the default. Waits for a
/// parallel loop under way in another thread to finish; the workers start at the next loop.
void setNumThreads(int n);
/// KILN_NUM_THREADS when it holds a valid count, else the cores this process may run on.
int defaultNumThreads();
/// Reads a KILN_NUM_THREADS value: an integer in [1, kMaxThreads]. Returns nullopt and sets
/// `error` (saying what was expected and found) for anything else.
std::optional<int> parseNumThreads(const char* text, std::string* error);

/// How parallelFor splits [0, n): into `chunks` pieces of whole multiples of `grain` (only the
/// last may be shorter), as even as that allows. A function of (n, grain, threads) alone.
struct Partition {
  int64_t n = 0, grain = 1, chunks = 0;
  /// The chunk count for n indices, grain (< 1 means 1) and a thread count.
  static Partition of(int64_t n, int64_t grain, int threads);
  /// Chunk i's indices [*begin, *end), 0 <= i < chunks.
  void range(int64_t i, int64_t* begin, int64_t* end) const;
};

/// Runs body over [0, n) split as Partition::of(n, grain, numThreads()) says: chunk 0 on the
/// calling thread, chunk i on worker i unless the caller, done with its own, gets to it first
/// (a late worker then costs no waiting). Returns when every chunk is done. Runs the whole
/// range on the calling thread when there is one chunk, when called from inside a parallel loop
/// (nesting), or when another thread's loop holds the pool. Allocates nothing except when it
/// first starts the workers. body must not throw.
void parallelFor(int64_t n, int64_t grain, RangeFn body, void* ctx);

/// The chunk of a parallel loop the calling thread is running (0 <= i < chunks), or -1 outside
/// one. Kernels key per-chunk scratch memory on it: chunk i runs on one thread at a time and
/// gets the same size of work every time, whichever thread runs it.
int currentChunk();

/// The same for any callable f(int64_t begin, int64_t end); f is called by reference.
template <class F>
void parallelFor(int64_t n, int64_t grain, const F& f) {
  parallelFor(
      n, grain, [](int64_t b, int64_t e, void* c) { (*static_cast<const F*>(c))(b, e); },
      const_cast<F*>(&f));
}

}  // namespace kiln::rt
