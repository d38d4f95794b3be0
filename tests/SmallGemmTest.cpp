// The unpacked register-tiled product (runtime/SmallGemm.h) behind kiln_rt_matmul_*: every element
// of C is exactly the fused multiply-add chain over k in order, whatever tile, packet width, masked
// tail, k block or thread split computes it; nothing outside C's n columns is written.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "TestUtil.h"
#include "runtime/AbiKernels.h"
#include "runtime/KilnABI.h"

namespace kiln::rt {
namespace {

template <class T>
void matmul(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, bool ta, const T* b,
            int64_t ldb, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>)
    kiln_rt_matmul_f32(m, n, k, a, lda, ta, b, ldb, 0, c, ldc, 1.0f, 0.0f);
  else
    kiln_rt_matmul_f64(m, n, k, a, lda, ta, b, ldb, 0, c, ldc, 1.0, 0.0);
}

/// Whether this build's products must take the unpacked kernel: the runtime is compiled for this
/// CPU and the CPU has FMA (every x86-64 since Haswell; AArch64 always).
bool expectUnpacked() {
#if defined(KILN_TEST_NATIVE_KERNELS) && defined(__x86_64__)
  return __builtin_cpu_supports("fma");
#elif defined(__aarch64__)
  return true;
#else
  return false;
#endif
}

template <class T>
void checkShape(int64_t m, int64_t n, int64_t k, bool ta, unsigned seed, int threads) {
  SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
               (ta ? " A^T" : "") + " threads " + std::to_string(threads) +
               (sizeof(T) == 4 ? " f32" : " f64"));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  // Leading dimensions wider than the matrices; C's padding holds a sentinel that must survive.
  const int64_t lda = (ta ? m : k) + 3, ldb = n + 1, ldc = n + 5;
  std::vector<T> a(static_cast<size_t>((ta ? k : m) * lda)), b(static_cast<size_t>(k * ldb));
  for (T& x : a) x = static_cast<T>(u(rng));
  for (T& x : b) x = static_cast<T>(u(rng));
  const T sentinel = T(12345);
  std::vector<T> c(static_cast<size_t>(m * ldc), std::numeric_limits<T>::quiet_NaN());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n; j < ldc; ++j) c[size_t(i * ldc + j)] = sentinel;
  {
    test::ScopedThreads scoped(threads);
    matmul<T>(m, n, k, a.data(), lda, ta, b.data(), ldb, c.data(), ldc);
  }
  const bool unpacked = unpackedMatmul(m, n, k, ta, false, sizeof(T));
  if (expectUnpacked() && m >= 2) {
    ASSERT_TRUE(unpacked);
  }
  int wrong = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const T got = c[size_t(i * ldc + j)];
      if (j >= n) {
        if (got != sentinel && ++wrong <= 5) ADD_FAILURE() << "C[" << i << "," << j << "] beyond n was written";
        continue;
      }
      T chain = 0;
      double exact = 0, magnitude = 0;
      for (int64_t p = 0; p < k; ++p) {
        T x = ta ? a[size_t(p * lda + i)] : a[size_t(i * lda + p)];
        T y = b[size_t(p * ldb + j)];
        chain = std::fma(x, y, chain);
        exact += double(x) * double(y);
        magnitude += std::fabs(double(x) * double(y));
      }
      if (unpacked) {
        if (got != chain && ++wrong <= 5)
          ADD_FAILURE() << "C[" << i << "," << j << "] = " << got << ", the fma chain gives " << chain;
      } else {
        double tol = double(k) * std::numeric_limits<T>::epsilon() * magnitude;
        if (!(std::fabs(double(got) - exact) <= tol) && ++wrong <= 5)
          ADD_FAILURE() << "C[" << i << "," << j << "] = " << got << ", expected " << exact;
      }
    }
  }
}

// Every column tail (1 to 2 packets plus 1, for 16-lane float and 8-lane double), row counts that
// leave each remainder of the 6- and 4-row tiles, k below, at and above one k block.
template <class T>
void sweep(int threads) {
  unsigned seed = 1;
  for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100})
    for (int64_t m : {2, 5, 7, 13, 30})
      for (int64_t k : {1, 9, 97, 200})
        for (bool ta : {false, true}) checkShape<T>(m, n, k, ta, seed++, threads);
}

TEST(SmallGemmTest, FloatElementsAreTheFmaChainAndPaddingIsUntouched) { sweep<float>(1); }
TEST(SmallGemmTest, DoubleElementsAreTheFmaChainAndPaddingIsUntouched) { sweep<double>(1); }

TEST(SmallGemmTest, SplitAcrossThreadsGivesTheSameChains) {
  // Large enough for kiln_rt_matmul to split the rows (and, at 8 rows, the columns).
  checkShape<float>(256, 100, 100, false, 7, 2);
  checkShape<float>(100, 100, 256, true, 8, 2);
  checkShape<float>(8, 1000, 100, false, 9, 2);
  checkShape<double>(200, 300, 100, false, 10, 2);
}

TEST(SmallGemmTest, TheDeepAndFashionShapesTakeTheUnpackedKernel) {
  // Without FMA in the runtime's instruction set every product stays with Eigen.
  const bool fast = expectUnpacked();
  EXPECT_EQ(unpackedMatmul(256, 100, 100, false, false, 4), fast);  // deep_selu forward
  EXPECT_EQ(unpackedMatmul(100, 100, 256, true, false, 4), fast);   // its weight gradient
  EXPECT_EQ(unpackedMatmul(200, 300, 784, false, false, 4), fast);  // fashion_mlp's first layer
  EXPECT_FALSE(unpackedMatmul(256, 100, 100, false, true, 4));      // B^T: Eigen's
  EXPECT_FALSE(unpackedMatmul(1, 300, 784, false, false, 4));       // one row: Eigen's gemv
  EXPECT_FALSE(unpackedMatmul(64, 2048, 2048, false, false, 4));    // B beyond L2: Eigen's
}

}  // namespace
}  // namespace kiln::rt
