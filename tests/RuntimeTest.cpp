// The runtime's pieces: .npy encoding, counter-based random numbers, initializers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "runtime/Init.h"
#include "runtime/Npy.h"
#include "runtime/Random.h"

namespace kiln::rt {
namespace {

TEST(NpyTest, RoundTripsEveryDtypeAndRank) {
  std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::string bytes = encodeNpy("<f4", {2, 3}, f.data(), f.size() * 4);
  EXPECT_EQ(bytes.size() % 64, 24u) << "header pads data to a 64-byte boundary";
  NpyArray a;
  ASSERT_EQ(decodeNpy(bytes, &a), "");
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(a.data.size(), 24u);
  EXPECT_EQ(std::memcmp(a.data.data(), f.data(), 24), 0);

  int64_t scalar = -42;
  ASSERT_EQ(decodeNpy(encodeNpy("<i8", {}, &scalar, 8), &a), "");
  EXPECT_TRUE(a.shape.empty());
  std::vector<int32_t> v = {1, 2, 3};
  std::string oneD = encodeNpy("<i4", {3}, v.data(), 12);
  EXPECT_NE(oneD.find("'shape': (3,)"), std::string::npos) << "Python's one-element tuple";
  ASSERT_EQ(decodeNpy(oneD, &a), "");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
}

TEST(NpyTest, ReadsHeadersWrittenByNumPy) {
  // numpy.save(f, numpy.array([[1., 2.]])) writes exactly this header.
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size()) + char(0) + header;
  double d[2] = {1.0, 2.0};
  bytes.append(reinterpret_cast<const char*>(d), 16);
  NpyArray a;
  ASSERT_EQ(decodeNpy(bytes, &a), "");
  EXPECT_EQ(a.descr, "<f8");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2}));
}

TEST(NpyTest, RejectsBadFilesClearly) {
  NpyArray a;
  EXPECT_NE(decodeNpy("hello", &a).find("not a NumPy"), std::string::npos);
  float f = 1;
  std::string good = encodeNpy("<f4", {1}, &f, 4);
  EXPECT_NE(decodeNpy(good.substr(0, good.size() - 2), &a).find("bytes but shape and dtype need 4"),
            std::string::npos);
  EXPECT_NE(decodeNpy(good.substr(0, 20), &a).find("truncated"), std::string::npos);
  const double complexBytes = 1;  // 8 bytes, the size of one complex64
  std::string complex64 = encodeNpy("<c8", {1}, &complexBytes, 8);
  EXPECT_NE(decodeNpy(complex64, &a).find("unsupported .npy dtype '<c8'"), std::string::npos);
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_NE(decodeNpy(fortran, &a).find("Fortran"), std::string::npos);
}

TEST(RandomTest, StreamsAreDeterministicAndIndependent) {
  RandomStream a(7, 1), b(7, 1), c(7, 2), d(8, 1);
  EXPECT_EQ(a.bits(0), b.bits(0));
  EXPECT_EQ(a.bits(123456), b.bits(123456));
  EXPECT_NE(a.bits(0), c.bits(0));
  EXPECT_NE(a.bits(0), d.bits(0));
  EXPECT_NE(a.bits(0), a.bits(1));
  // Uniform moments over many draws: mean 1/2, variance 1/12.
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    double u = a.uniform(i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    s += u;
    s2 += u * u;
  }
  EXPECT_NEAR(s / n, 0.5, 0.005);
  EXPECT_NEAR(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.002);
}

// Empirical variance of an initializer on a large kernel, against chapter11.md's formula.
double variance(const std::string& kind, int64_t fanIn, int64_t fanOut, double* maxAbs) {
  std::vector<double> w(static_cast<size_t>(fanIn * fanOut));
  InitSpec spec;
  spec.kind = kind;
  EXPECT_EQ(fillInitializer(spec, {fanIn, fanOut}, 42, 1, w.data()), "");
  double mean = std::accumulate(w.begin(), w.end(), 0.0) / w.size(), var = 0;
  *maxAbs = 0;
  for (double x : w) {
    var += (x - mean) * (x - mean);
    *maxAbs = std::max(*maxAbs, std::abs(x));
  }
  return var / w.size();
}

TEST(InitTest, VarianceScalingMatchesTheFormulas) {
  const int64_t fanIn = 784, fanOut = 300;
  struct Case { const char* kind; double var; };
  const double avg = (fanIn + fanOut) / 2.0;
  for (Case c : {Case{"glorot_uniform", 1 / avg}, Case{"glorot_normal", 1 / avg},
                 Case{"he_uniform", 2.0 / fanIn}, Case{"he_normal", 2.0 / fanIn},
                 Case{"lecun_uniform", 1.0 / fanIn}, Case{"lecun_normal", 1.0 / fanIn}}) {
    double maxAbs;
    double v = variance(c.kind, fanIn, fanOut, &maxAbs);
    EXPECT_NEAR(v / c.var, 1.0, 0.02) << c.kind;
    std::string k = c.kind;
    if (k.ends_with("_uniform")) {
      EXPECT_LE(maxAbs, std::sqrt(3 * c.var)) << c.kind << ": U(-r, r), r = sqrt(3 sigma^2)";
      EXPECT_GT(maxAbs, 0.99 * std::sqrt(3 * c.var)) << c.kind;
    } else {
      double bound = 2 * std::sqrt(c.var) / kTruncatedNormalStddev;
      EXPECT_LE(maxAbs, bound) << c.kind << ": truncated at 2 standard deviations";
      EXPECT_GT(maxAbs, 0.99 * bound) << c.kind;
    }
  }
}

TEST(InitTest, ConstantsAndReproducibility) {
  std::vector<double> a(6), b(6);
  InitSpec ones{"ones"};
  ASSERT_EQ(fillInitializer(ones, {2, 3}, 1, 1, a.data()), "");
  EXPECT_EQ(a, std::vector<double>(6, 1.0));
  InitSpec c{"constant"};
  c.value = 0.25;
  ASSERT_EQ(fillInitializer(c, {6}, 1, 1, a.data()), "");
  EXPECT_EQ(a, std::vector<double>(6, 0.25));
  InitSpec he{"he_normal"};
  ASSERT_EQ(fillInitializer(he, {2, 3}, 5, 9, a.data()), "");
  ASSERT_EQ(fillInitializer(he, {2, 3}, 5, 9, b.data()), "");
  EXPECT_EQ(a, b);
  ASSERT_EQ(fillInitializer(he, {2, 3}, 6, 9, b.data()), "");
  EXPECT_NE(a, b);
  InitSpec bad{"gorlot_uniform"};
  EXPECT_NE(fillInitializer(bad, {2, 3}, 1, 1, a.data()).find("unknown initializer"), std::string::npos);
}

}  // namespace
}  // namespace kiln::rt
