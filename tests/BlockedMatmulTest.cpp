// kiln_rt_matmul_*_blocked: the product with an epilogue called on each block of rows as soon as
// it is final. Bit-identical for every block size and thread count, equal to a long double
// product within rounding, and each epilogue call sees its rows final.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "TestUtil.h"
#include "runtime/AbiKernels.h"
#include "runtime/KilnABI.h"
#include "runtime/ThreadPool.h"

namespace kiln::rt {
namespace {

using test::ScopedThreads;

struct Case {
  int64_t m, n, k;
  bool ta, tb;
};

std::string describe(const Case& c) {
  return std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) +
         (c.ta ? " A^T" : "") + (c.tb ? " B^T" : "");
}

/// Operands with leading dimensions wider than the matrices, and C filled with NaN (the
/// product must ignore C's prior contents).
template <class T>
struct Data {
  Case c;
  int64_t lda, ldb, ldc;
  std::vector<T> a, b, bias;
};

template <class T>
Data<T> makeData(const Case& c, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Data<T> d{c, 0, 0, 0, {}, {}, {}};
  int64_t aRows = c.ta ? c.k : c.m, aCols = c.ta ? c.m : c.k;
  int64_t bRows = c.tb ? c.n : c.k, bCols = c.tb ? c.k : c.n;
  d.lda = aCols + 3;
  d.ldb = bCols + 1;
  d.ldc = c.n + 5;
  d.a.resize(static_cast<size_t>(aRows * d.lda));
  d.b.resize(static_cast<size_t>(bRows * d.ldb));
  d.bias.resize(static_cast<size_t>(c.n));
  for (T& x : d.a) x = static_cast<T>(u(rng));
  for (T& x : d.b) x = static_cast<T>(u(rng));
  for (T& x : d.bias) x = static_cast<T>(u(rng));
  return d;
}

/// What the epilogue sees: it copies each block of C as it is when called (to check the block is
/// final then) and applies bias + ReLU into a second matrix, as a fused dense layer does.
template <class T>
struct Epilogue {
  const Data<T>* d;
  const T* c;
  std::vector<T> seen, out;
  std::vector<int> calls;  // per row: how many epilogue calls covered it
  std::mutex mu;           // guards calls (blocks run on several threads)

  static void run(int64_t r0, int64_t r1, void* ctx) {
    auto* e = static_cast<Epilogue*>(ctx);
    int64_t n = e->d->c.n, ldc = e->d->ldc;
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T x = e->c[i * ldc + j];
        e->seen[size_t(i * n + j)] = x;
        e->out[size_t(i * n + j)] = std::max(x + e->d->bias[size_t(j)], T(0));
      }
    std::lock_guard<std::mutex> lock(e->mu);
    for (int64_t i = r0; i < r1; ++i) ++e->calls[size_t(i)];
  }
};

template <class T>
struct Result {
  std::vector<T> c, seen, out;
};

/// Runs the blocked product (blockRows 0: the default through the C ABI) and checks that the
/// epilogue covered every row exactly once, saw its rows final, and that the padding of C was
/// not written.
template <class T>
Result<T> runBlocked(const Data<T>& d, int64_t blockRows) {
  const Case& c = d.c;
  std::vector<T> cm(static_cast<size_t>(c.m * d.ldc), std::numeric_limits<T>::quiet_NaN());
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = c.n; j < d.ldc; ++j) cm[size_t(i * d.ldc + j)] = T(7);
  Epilogue<T> e;
  e.d = &d;
  e.c = cm.data();
  e.seen.assign(size_t(c.m * c.n), T(0));
  e.out.assign(size_t(c.m * c.n), T(0));
  e.calls.assign(size_t(c.m), 0);
  if (blockRows > 0) {
    matmulBlocked<T>(c.m, c.n, c.k, d.a.data(), d.lda, c.ta, d.b.data(), d.ldb, c.tb, cm.data(),
                     d.ldc, &Epilogue<T>::run, &e, blockRows);
  } else if constexpr (std::is_same_v<T, float>) {
    kiln_rt_matmul_f32_blocked(c.m, c.n, c.k, d.a.data(), d.lda, c.ta, d.b.data(), d.ldb, c.tb,
                               cm.data(), d.ldc, /*block_rows=*/0, &Epilogue<T>::run, &e);
  } else {
    kiln_rt_matmul_f64_blocked(c.m, c.n, c.k, d.a.data(), d.lda, c.ta, d.b.data(), d.ldb, c.tb,
                               cm.data(), d.ldc, /*block_rows=*/0, &Epilogue<T>::run, &e);
  }
  Result<T> r;
  r.c.resize(size_t(c.m * c.n));
  for (int64_t i = 0; i < c.m; ++i) {
    EXPECT_EQ(e.calls[size_t(i)], 1)
        << "row " << i << " in " << e.calls[size_t(i)] << " epilogue calls";
    for (int64_t j = 0; j < c.n; ++j) r.c[size_t(i * c.n + j)] = cm[size_t(i * d.ldc + j)];
    for (int64_t j = c.n; j < d.ldc; ++j)
      EXPECT_EQ(cm[size_t(i * d.ldc + j)], T(7)) << "padding C[" << i << "," << j << "] written";
  }
  EXPECT_EQ(std::memcmp(r.c.data(), e.seen.data(), r.c.size() * sizeof(T)), 0)
      << "an epilogue call saw rows of C before they were final";
  r.seen = std::move(e.seen);
  r.out = std::move(e.out);
  return r;
}

/// C within a few ulp of the long double product (per element, relative to sum |a||b|), and the
/// epilogue's output exactly bias + ReLU of C.
template <class T>
void expectMatchesReference(const Data<T>& d, const Result<T>& r) {
  const Case& c = d.c;
  double eps = std::numeric_limits<T>::epsilon();
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      long double sum = 0, mag = 0;
      for (int64_t p = 0; p < c.k; ++p) {
        long double a = c.ta ? d.a[size_t(p * d.lda + i)] : d.a[size_t(i * d.lda + p)];
        long double b = c.tb ? d.b[size_t(j * d.ldb + p)] : d.b[size_t(p * d.ldb + j)];
        sum += a * b;
        mag += std::fabs(a * b);
      }
      T got = r.c[size_t(i * c.n + j)];
      ASSERT_NEAR(double(got), double(sum), double(mag) * eps * double(c.k + 4))
          << "C[" << i << "," << j << "]";
      ASSERT_EQ(r.out[size_t(i * c.n + j)], std::max(got + d.bias[size_t(j)], T(0)))
          << "epilogue output [" << i << "," << j << "]";
    }
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      cs.push_back({256, 300, 784, ta, tb});  // fashion_mlp's hidden1 at batch 256
      cs.push_back({200, 100, 300, ta, tb});  // hidden2 at batch 200
      cs.push_back({131, 77, 1031, ta, tb});  // ragged: partial register tiles and k panels
      cs.push_back({37, 53, 529, ta, tb});
      cs.push_back({3, 1000, 300, ta, tb});  // few rows: one product, one epilogue call
    }
  cs.push_back({256, 100, 100, false, false});  // deep_selu's hidden layers
  cs.push_back({1, 300, 784, false, false});    // batch 1
  cs.push_back({784, 300, 200, true, false});   // dW of hidden1 at batch 200
  return cs;
}

template <class T>
void checkBitIdenticalForEveryBlockAndThreadCount() {
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    Data<T> d = makeData<T>(c, static_cast<unsigned>(c.m * 31 + c.n * 7 + c.k));
    Result<T> ref;
    {
      ScopedThreads t(1);
      ref = runBlocked(d, /*blockRows=*/0);
    }
    expectMatchesReference(d, ref);
    if (::testing::Test::HasFatalFailure()) return;
    // The same sums in the same order as kiln_rt_matmul_* (Eigen's blocking and kernels), so a
    // product may take either path without changing a bit.
    {
      ScopedThreads t(1);
      std::vector<T> plain(size_t(c.m * d.ldc));
      if constexpr (std::is_same_v<T, float>)
        kiln_rt_matmul_f32(c.m, c.n, c.k, d.a.data(), d.lda, c.ta, d.b.data(), d.ldb, c.tb,
                           plain.data(), d.ldc, 1.0f, 0.0f);
      else
        kiln_rt_matmul_f64(c.m, c.n, c.k, d.a.data(), d.lda, c.ta, d.b.data(), d.ldb, c.tb,
                           plain.data(), d.ldc, 1.0, 0.0);
      for (int64_t i = 0; i < c.m; ++i)
        ASSERT_EQ(std::memcmp(&plain[size_t(i * d.ldc)], &ref.c[size_t(i * c.n)],
                              size_t(c.n) * sizeof(T)),
                  0)
            << "row " << i << " differs from kiln_rt_matmul";
    }
    for (int threads : {1, 2, 3})
      for (int64_t blockRows : {0, 8, 16, 24, 64, 1000}) {
        ScopedThreads t(threads);
        Result<T> r = runBlocked(d, blockRows);
        ASSERT_EQ(std::memcmp(r.c.data(), ref.c.data(), ref.c.size() * sizeof(T)), 0)
            << threads << " threads, blocks of " << blockRows << " rows differ";
        ASSERT_EQ(std::memcmp(r.out.data(), ref.out.data(), ref.out.size() * sizeof(T)), 0);
      }
  }
}

TEST(BlockedMatmulTest, Float32BitIdenticalForEveryBlockAndThreadCount) {
  checkBitIdenticalForEveryBlockAndThreadCount<float>();
}
TEST(BlockedMatmulTest, Float64BitIdenticalForEveryBlockAndThreadCount) {
  checkBitIdenticalForEveryBlockAndThreadCount<double>();
}

TEST(BlockedMatmulTest, BlocksAreWholeMultiplesOfEightRows) {
  // The epilogue's calls: consecutive, each a multiple of 8 rows but the last, never more than
  // the block size asked for.
  struct Calls {
    std::mutex mu;
    std::vector<std::pair<int64_t, int64_t>> ranges;
    static void run(int64_t r0, int64_t r1, void* ctx) {
      auto* c = static_cast<Calls*>(ctx);
      std::lock_guard<std::mutex> lock(c->mu);
      c->ranges.emplace_back(r0, r1);
    }
  };
  Data<float> d = makeData<float>({203, 64, 96, false, false}, 5);
  std::vector<float> c(size_t(203 * d.ldc));
  for (int threads : {1, 2}) {
    ScopedThreads t(threads);
    Calls calls;
    matmulBlocked<float>(203, 64, 96, d.a.data(), d.lda, false, d.b.data(), d.ldb, false, c.data(),
                         d.ldc, &Calls::run, &calls, /*blockRows=*/20);  // rounded up to 24
    std::sort(calls.ranges.begin(), calls.ranges.end());
    ASSERT_EQ(calls.ranges.size(), 9u) << threads << " threads";  // 8 x 24 rows + 11
    for (size_t i = 0; i < calls.ranges.size(); ++i) {
      EXPECT_EQ(calls.ranges[i].first, int64_t(i) * 24);
      EXPECT_EQ(calls.ranges[i].second, std::min<int64_t>(int64_t(i + 1) * 24, 203));
    }
  }
}

TEST(BlockedMatmulTest, EmptyAndDegenerateProducts) {
  for (int threads : {1, 2}) {
    ScopedThreads t(threads);
    int called = 0;
    auto count = [](int64_t r0, int64_t r1, void* ctx) {
      *static_cast<int*>(ctx) += static_cast<int>(r1 - r0);
    };
    // k == 0: C = 0 (NaN before), and the epilogue still runs over every row.
    std::vector<float> c(64 * 64, std::nanf(""));
    kiln_rt_matmul_f32_blocked(64, 64, 0, nullptr, 1, 0, nullptr, 64, 0, c.data(), 64, 0, count,
                               &called);
    for (float x : c) ASSERT_EQ(x, 0.0f);
    EXPECT_EQ(called, 64);
    // No rows: nothing to compute, no epilogue call.
    called = 0;
    kiln_rt_matmul_f64_blocked(0, 64, 64, nullptr, 64, 0, nullptr, 64, 0, nullptr, 64, 0, count,
                               &called);
    EXPECT_EQ(called, 0);
    // A null epilogue is just the product.
    Data<float> d = makeData<float>({40, 24, 16, false, true}, 3);
    std::vector<float> got(size_t(40 * d.ldc)), want(size_t(40 * d.ldc));
    kiln_rt_matmul_f32_blocked(40, 24, 16, d.a.data(), d.lda, 0, d.b.data(), d.ldb, 1, got.data(),
                               d.ldc, 0, nullptr, nullptr);
    matmulBlocked<float>(40, 24, 16, d.a.data(), d.lda, false, d.b.data(), d.ldb, true, want.data(),
                         d.ldc, nullptr, nullptr, /*blockRows=*/8);
    for (int64_t i = 0; i < 40; ++i)
      for (int64_t j = 0; j < 24; ++j)
        ASSERT_EQ(got[size_t(i * d.ldc + j)], want[size_t(i * d.ldc + j)]);
  }
}

}  // namespace
}  // namespace kiln::rt
