// The runtime's thread pool (partitioning, parallel loops, the thread-count setting) and the
// multi-threaded matmul kernels: bit-identical results for every thread count.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "TestUtil.h"
#include "runtime/AbiKernels.h"
#include "runtime/KilnABI.h"
#include "runtime/ThreadPool.h"

namespace kiln::rt {
namespace {

using test::ScopedThreads;

TEST(PartitionTest, ChunksCoverTheRangeInWholeGrains) {
  for (int threads : {1, 2, 3, 4, 7})
    for (int64_t n : {1, 2, 7, 8, 9, 63, 64, 65, 1000, 1001})
      for (int64_t grain : {1, 3, 8, 64}) {
        SCOPED_TRACE("threads " + std::to_string(threads) + " n " + std::to_string(n) +
                     " grain " + std::to_string(grain));
        Partition p = Partition::of(n, grain, threads);
        int64_t units = (n + grain - 1) / grain;
        EXPECT_EQ(p.chunks, std::min<int64_t>(threads, units));
        int64_t next = 0, smallest = n, largest = 0;
        for (int64_t i = 0; i < p.chunks; ++i) {
          int64_t b, e;
          p.range(i, &b, &e);
          EXPECT_EQ(b, next) << "chunk " << i << " does not start where the last ended";
          EXPECT_LT(b, e) << "chunk " << i << " is empty";
          EXPECT_EQ(b % grain, 0) << "chunk " << i << " starts inside a grain";
          if (i + 1 < p.chunks) {
            EXPECT_EQ((e - b) % grain, 0) << "only the last chunk may be a partial grain";
            smallest = std::min(smallest, e - b);
            largest = std::max(largest, e - b);
          }
          next = e;
        }
        EXPECT_EQ(next, n);
        // Whole chunks differ by at most one grain: an even split.
        if (p.chunks > 2) {
          EXPECT_LE(largest - smallest, grain);
        }
      }
}

TEST(PartitionTest, EdgeCases) {
  EXPECT_EQ(Partition::of(0, 4, 8).chunks, 0);
  EXPECT_EQ(Partition::of(-5, 4, 8).chunks, 0);
  // A grain below 1 means 1; a thread count below 1 means 1.
  EXPECT_EQ(Partition::of(10, 0, 4).chunks, 4);
  EXPECT_EQ(Partition::of(10, -3, 4).grain, 1);
  EXPECT_EQ(Partition::of(10, 1, 0).chunks, 1);
  // Near the top of int64 the arithmetic must not overflow.
  int64_t huge = INT64_MAX - 5;
  Partition p = Partition::of(huge, 1 << 20, 3);
  ASSERT_EQ(p.chunks, 3);
  int64_t b, e, next = 0;
  for (int64_t i = 0; i < 3; ++i) {
    p.range(i, &b, &e);
    EXPECT_EQ(b, next);
    EXPECT_GT(e, b);
    next = e;
  }
  EXPECT_EQ(next, huge);
}

TEST(ThreadPoolTest, EveryIndexRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 4}) {
    ScopedThreads t(threads);
    for (int64_t n : {1, 5, 100, 4097}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallelFor(n, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1)
            << "index " << i << " of " << n << " with " << threads << " threads";
    }
  }
}

TEST(ThreadPoolTest, WorkersRunChunksAtTheSameTimeAsTheCaller) {
  ScopedThreads t(3);
  ASSERT_EQ(kiln_rt_get_num_threads(), 3);
  // Every chunk waits until all three run at once: only three threads can get past it, so the
  // loop finishes only if both workers took part. A timeout, not a hang, if they do not.
  std::atomic<int> arrived{0};
  std::atomic<bool> timedOut{false};
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::vector<int> chunkOfBegin(300, -2);
  parallelFor(300, 1, [&](int64_t b, int64_t e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      threads.insert(std::this_thread::get_id());
      chunkOfBegin[size_t(b)] = currentChunk();
    }
    arrived.fetch_add(1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (arrived.load() < 3)
      if (std::chrono::steady_clock::now() > deadline) {
        timedOut = true;
        break;
      }
  });
  EXPECT_FALSE(timedOut) << "the three chunks never ran at the same time";
  EXPECT_EQ(threads.size(), 3u);
  // currentChunk() names each chunk by its index in the partition.
  Partition p = Partition::of(300, 1, 3);
  for (int64_t i = 0; i < p.chunks; ++i) {
    int64_t b, e;
    p.range(i, &b, &e);
    EXPECT_EQ(chunkOfBegin[size_t(b)], i);
  }
  EXPECT_EQ(currentChunk(), -1) << "outside a loop";
}

TEST(ThreadPoolTest, CallerTakesChunksNoWorkerHasStarted) {
  // Chunks this short are over long before a worker sees the loop start, so the caller runs
  // chunk 1 itself most of the time (a worker wins a few races): every index still runs once.
  ScopedThreads t(2);
  int takenByCaller = 0;
  for (int loop = 0; loop < 2000; ++loop) {
    std::atomic<int> sum{0};
    std::atomic<bool> callerRanChunk1{false};
    std::thread::id caller = std::this_thread::get_id();
    parallelFor(2, 1, [&](int64_t b, int64_t e) {
      if (b == 1 && std::this_thread::get_id() == caller) callerRanChunk1 = true;
      for (int64_t i = b; i < e; ++i) sum.fetch_add(int(i) + 1);
    });
    ASSERT_EQ(sum.load(), 3) << "loop " << loop;
    takenByCaller += callerRanChunk1;
  }
  EXPECT_GT(takenByCaller, 0) << "the caller never took a chunk";
  RecordProperty("chunks_taken_by_caller", std::to_string(takenByCaller));
}

TEST(ThreadPoolTest, NestedLoopsRunSeriallyInsideTheirChunk) {
  ScopedThreads t(2);
  std::vector<std::atomic<int>> hits(64 * 64);
  parallelFor(64, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      std::thread::id outer = std::this_thread::get_id();
      parallelFor(64, 1, [&](int64_t jb, int64_t je) {
        EXPECT_EQ(std::this_thread::get_id(), outer) << "a nested loop stays on its thread";
        for (int64_t j = jb; j < je; ++j) hits[static_cast<size_t>(i * 64 + j)].fetch_add(1);
      });
    }
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
}

TEST(ThreadPoolTest, ConcurrentCallersEachGetTheirWholeLoop) {
  ScopedThreads t(2);
  constexpr int kCallers = 3, kLoops = 200;
  std::vector<int64_t> sums(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      for (int l = 0; l < kLoops; ++l) {
        std::atomic<int64_t> sum{0};
        parallelFor(1000, 10, [&](int64_t b, int64_t e) {
          int64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += i;
          sum.fetch_add(s);
        });
        sums[static_cast<size_t>(c)] += sum.load();
      }
    });
  for (std::thread& th : callers) th.join();
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(sums[static_cast<size_t>(c)], kLoops * 499500LL);
}

// A loop body as generated code passes it: a plain C function and a context pointer.
void squareInto(int64_t begin, int64_t end, void* ctx) {
  auto* v = static_cast<double*>(ctx);
  for (int64_t i = begin; i < end; ++i) v[i] = static_cast<double>(i) * static_cast<double>(i);
}

TEST(ThreadPoolTest, CAbiParallelFor) {
  ScopedThreads t(2);
  std::vector<double> v(10007, -1.0);
  kiln_rt_parallel_for(static_cast<int64_t>(v.size()), 100, &squareInto, v.data());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], double(i) * double(i)) << "index " << i;
  kiln_rt_parallel_for(0, 100, &squareInto, nullptr);  // an empty range calls nothing
}

TEST(ThreadPoolTest, ThreadCountSetting) {
  int saved = kiln_rt_get_num_threads();
  kiln_rt_set_num_threads(5);
  EXPECT_EQ(kiln_rt_get_num_threads(), 5);
  kiln_rt_set_num_threads(100000);
  EXPECT_EQ(kiln_rt_get_num_threads(), kMaxThreads);
  // The default: KILN_NUM_THREADS when valid, else the available cores.
  const char* env = std::getenv("KILN_NUM_THREADS");
  std::string savedEnv = env ? env : "";
  setenv("KILN_NUM_THREADS", "3", 1);
  kiln_rt_set_num_threads(0);
  EXPECT_EQ(kiln_rt_get_num_threads(), 3);
  unsetenv("KILN_NUM_THREADS");
  kiln_rt_set_num_threads(-1);
  int cores = kiln_rt_get_num_threads();
  EXPECT_GE(cores, 1);
  EXPECT_LE(static_cast<unsigned>(cores), std::max(1u, std::thread::hardware_concurrency()));
  setenv("KILN_NUM_THREADS", "three", 1);
  EXPECT_EQ(defaultNumThreads(), cores) << "an invalid value falls back to the cores";
  if (env) setenv("KILN_NUM_THREADS", savedEnv.c_str(), 1);
  else unsetenv("KILN_NUM_THREADS");
  kiln_rt_set_num_threads(saved);
  EXPECT_EQ(kiln_rt_get_num_threads(), saved);
}

TEST(ThreadPoolTest, ParsesNumThreads) {
  std::string error;
  EXPECT_EQ(parseNumThreads("4", &error), 4);
  EXPECT_EQ(parseNumThreads("256", &error), 256);
  for (const char* bad : {"", "0", "-2", "4x", "abc", "257", "99999999999999999999", " "}) {
    error.clear();
    EXPECT_FALSE(parseNumThreads(bad, &error)) << "'" << bad << "'";
    EXPECT_EQ(error, std::string("expected an integer from 1 to 256, found '") + bad + "'");
  }
}

// ---- Multi-threaded matmul ---------------------------------------------------------------------

struct MatmulCase {
  int64_t m, n, k;
  bool ta, tb;
  double alpha, beta;
};

template <class T>
struct MatmulData {
  int64_t lda, ldb, ldc;
  std::vector<T> a, b, c0;
};

/// Random operands stored with leading dimensions wider than the matrices (the ABI allows it).
template <class T>
MatmulData<T> makeData(const MatmulCase& mc, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  MatmulData<T> d;
  int64_t aRows = mc.ta ? mc.k : mc.m, aCols = mc.ta ? mc.m : mc.k;
  int64_t bRows = mc.tb ? mc.n : mc.k, bCols = mc.tb ? mc.k : mc.n;
  d.lda = aCols + 3;
  d.ldb = bCols + 1;
  d.ldc = mc.n + 5;
  d.a.resize(static_cast<size_t>(aRows * d.lda));
  d.b.resize(static_cast<size_t>(bRows * d.ldb));
  d.c0.resize(static_cast<size_t>(mc.m * d.ldc));
  for (T& x : d.a) x = static_cast<T>(u(rng));
  for (T& x : d.b) x = static_cast<T>(u(rng));
  // beta == 0 must ignore C even when it holds NaN.
  for (T& x : d.c0) x = mc.beta == 0 ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(u(rng));
  return d;
}

template <class T>
std::vector<T> runMatmul(const MatmulCase& mc, const MatmulData<T>& d) {
  std::vector<T> c = d.c0;
  if constexpr (std::is_same_v<T, float>)
    kiln_rt_matmul_f32(mc.m, mc.n, mc.k, d.a.data(), d.lda, mc.ta, d.b.data(), d.ldb, mc.tb,
                       c.data(), d.ldc, static_cast<float>(mc.alpha), static_cast<float>(mc.beta));
  else
    kiln_rt_matmul_f64(mc.m, mc.n, mc.k, d.a.data(), d.lda, mc.ta, d.b.data(), d.ldb, mc.tb,
                       c.data(), d.ldc, mc.alpha, mc.beta);
  return c;
}

/// Checks C against a long double reference: each element within a few ulp of its magnitude
/// sum (sum |a||b| * alpha + |beta c|) per term, and the padding between rows untouched.
template <class T>
void expectMatchesReference(const MatmulCase& mc, const MatmulData<T>& d, const std::vector<T>& c) {
  double eps = std::numeric_limits<T>::epsilon();
  for (int64_t i = 0; i < mc.m; ++i)
    for (int64_t j = 0; j < mc.n; ++j) {
      long double sum = 0, mag = 0;
      for (int64_t p = 0; p < mc.k; ++p) {
        long double a = mc.ta ? d.a[size_t(p * d.lda + i)] : d.a[size_t(i * d.lda + p)];
        long double b = mc.tb ? d.b[size_t(j * d.ldb + p)] : d.b[size_t(p * d.ldb + j)];
        sum += a * b;
        mag += std::fabs(a * b);
      }
      long double want = mc.alpha * sum, bound = std::fabs(mc.alpha) * mag;
      if (mc.beta != 0) {
        want += mc.beta * d.c0[size_t(i * d.ldc + j)];
        bound += std::fabs(mc.beta * d.c0[size_t(i * d.ldc + j)]);
      }
      double got = c[size_t(i * d.ldc + j)];
      ASSERT_NEAR(got, double(want), double(bound) * eps * (mc.k + 4)) << "C[" << i << "," << j << "]";
    }
  for (int64_t i = 0; i < mc.m; ++i)
    for (int64_t j = mc.n; j < d.ldc; ++j) {
      T before = d.c0[size_t(i * d.ldc + j)], after = c[size_t(i * d.ldc + j)];
      ASSERT_EQ(std::memcmp(&before, &after, sizeof(T)), 0) << "padding C[" << i << "," << j << "] written";
    }
}

std::string describe(const MatmulCase& mc) {
  return std::to_string(mc.m) + "x" + std::to_string(mc.n) + "x" + std::to_string(mc.k) +
         (mc.ta ? " A^T" : "") + (mc.tb ? " B^T" : "") + " alpha " + std::to_string(mc.alpha) +
         " beta " + std::to_string(mc.beta);
}

std::vector<MatmulCase> matmulCases() {
  std::vector<MatmulCase> cases;
  // fashion_mlp's forward products at batch 64 and 200, its backward ones (dW = x^T dy, dx = dy
  // W^T), ragged sizes that leave partial register tiles, and batch 1/3 (split over columns).
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      cases.push_back({64, 300, 784, ta, tb, 1.0, 0.0});
      cases.push_back({200, 100, 300, ta, tb, 1.0, 1.0});
      cases.push_back({37, 53, 529, ta, tb, 0.5, -2.0});
      cases.push_back({131, 77, 1031, ta, tb, 1.0, 0.0});
      cases.push_back({1, 3001, 517, ta, tb, -1.5, 0.0});
      cases.push_back({3, 1000, 300, ta, tb, 1.0, 0.5});
    }
  cases.push_back({784, 300, 200, true, false, 1.0, 0.0});  // dW of hidden1 at batch 200
  cases.push_back({200, 784, 300, false, true, 1.0, 0.0});  // dx of hidden1 at batch 200
  return cases;
}

template <class T>
void checkBitIdenticalAcrossThreads() {
  for (const MatmulCase& mc : matmulCases()) {
    SCOPED_TRACE(describe(mc));
    MatmulData<T> d = makeData<T>(mc, /*seed=*/static_cast<unsigned>(mc.m * 7 + mc.n));
    std::vector<T> serial;
    {
      ScopedThreads t(1);
      serial = runMatmul(mc, d);
    }
    expectMatchesReference(mc, d, serial);
    for (int threads : {2, 3, 4}) {
      // The product must really be split, or comparing with the serial result shows nothing.
      MatmulSplit split = planMatmulSplit(mc.m, mc.n, mc.k, threads, sizeof(T));
      ASSERT_NE(split.dim, MatmulSplit::Dim::None) << threads << " threads";
      ASSERT_GE(split.chunks, 2);
      ScopedThreads t(threads);
      std::vector<T> parallel = runMatmul(mc, d);
      ASSERT_EQ(std::memcmp(parallel.data(), serial.data(), serial.size() * sizeof(T)), 0)
          << threads << " threads (" << (split.dim == MatmulSplit::Dim::Rows ? "rows" : "columns")
          << ", " << split.chunks << " chunks) differ from 1 thread";
    }
  }
}

TEST(ThreadedMatmulTest, Float32BitIdenticalForEveryThreadCount) { checkBitIdenticalAcrossThreads<float>(); }
TEST(ThreadedMatmulTest, Float64BitIdenticalForEveryThreadCount) { checkBitIdenticalAcrossThreads<double>(); }

TEST(ThreadedMatmulTest, SplitFollowsTheShape) {
  // Big batches split over rows, in multiples of 8.
  MatmulSplit s = planMatmulSplit(256, 300, 784, 2, 4);
  EXPECT_EQ(s.dim, MatmulSplit::Dim::Rows);
  EXPECT_EQ(s.grain % 8, 0);
  EXPECT_EQ(s.chunks, 2);
  // One row: over columns, in whole 64-byte lines of C.
  s = planMatmulSplit(1, 4096, 1024, 4, 4);
  EXPECT_EQ(s.dim, MatmulSplit::Dim::Cols);
  EXPECT_EQ(s.grain % 16, 0);
  EXPECT_EQ(s.chunks, 4);
  EXPECT_EQ(planMatmulSplit(1, 4096, 1024, 4, 8).grain % 8, 0);
  // Too little work to pay for waking a thread, or one thread: no split.
  EXPECT_EQ(planMatmulSplit(1, 10, 100, 2, 4).dim, MatmulSplit::Dim::None);
  EXPECT_EQ(planMatmulSplit(256, 300, 784, 1, 4).dim, MatmulSplit::Dim::None);
  EXPECT_EQ(planMatmulSplit(0, 300, 784, 2, 4).dim, MatmulSplit::Dim::None);
}

TEST(ThreadedMatmulTest, EmptyProducts) {
  // k == 0: C = beta * C (Eigen's blocking divided by zero here before), whatever the threads.
  for (int threads : {1, 2}) {
    ScopedThreads t(threads);
    std::vector<float> c(64 * 64, 2.0f);
    kiln_rt_matmul_f32(64, 64, 0, nullptr, 1, 0, nullptr, 64, 0, c.data(), 64, 1.0f, 3.0f);
    for (float x : c) ASSERT_EQ(x, 6.0f);
    std::vector<double> d(64 * 64, std::nan(""));
    kiln_rt_matmul_f64(64, 64, 0, nullptr, 1, 1, nullptr, 64, 1, d.data(), 64, 1.0, 0.0);
    for (double x : d) ASSERT_EQ(x, 0.0) << "beta 0 ignores NaN";
    // No rows or no columns: nothing to write, nothing read.
    kiln_rt_matmul_f32(0, 64, 64, nullptr, 64, 0, nullptr, 64, 0, nullptr, 64, 1.0f, 0.0f);
    kiln_rt_matmul_f32(64, 0, 64, nullptr, 64, 0, nullptr, 1, 0, c.data(), 1, 1.0f, 0.0f);
  }
}

}  // namespace
}  // namespace kiln::rt
