// Initializers written in model files, end to end: the parameter attributes they become, the
// empirical variance and bounds of the values the interpreter draws (against chapter11.md's
// formulas), reproducibility from the seed, and the checks on initializer specs.
#include <gtest/gtest.h>

#include <cmath>

#include "FrontendTestUtil.h"
#include "runtime/Init.h"

namespace kiln {
namespace {

using test::expandError;
using test::expandOk;

constexpr int64_t kFanIn = 400, kFanOut = 300;

// A dense kernel of [400, 300] with `init`, drawn from `seed`.
std::vector<double> drawKernel(const std::string& init, uint64_t seed = 1) {
  frontend::ExpandedModel m = expandOk(test::model(
      "dim: 400",
      "layer { name: \"d\" dense { units: 300 kernel_initializer { " + init + " } } }"));
  if (!m.graph) return {};
  Interpreter interp(*m.graph);
  Status s = interp.initializeParameters(seed);
  EXPECT_TRUE(s);
  const Tensor* k = interp.parameter("d/kernel");
  std::vector<double> v;
  for (int64_t i = 0; i < k->size(); ++i) v.push_back(k->getDouble(i));
  return v;
}

struct Stats {
  double mean = 0, variance = 0, maxAbs = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) {
    s.variance += (x - s.mean) * (x - s.mean);
    s.maxAbs = std::max(s.maxAbs, std::abs(x));
  }
  s.variance /= static_cast<double>(v.size());
  return s;
}

struct Case {
  const char* init;
  double variance;  // chapter11.md's sigma^2
  bool uniform;
};

TEST(FrontendInitTest, EveryNamedInitializerHasItsVarianceAndBounds) {
  const double fanAvg = (kFanIn + kFanOut) / 2.0;
  const Case cases[] = {
      {"kind: \"glorot_uniform\"", 1.0 / fanAvg, true},  // 1/350
      {"kind: \"glorot_normal\"", 1.0 / fanAvg, false},
      {"kind: \"he_uniform\"", 2.0 / kFanIn, true},  // 2/400
      {"kind: \"he_normal\"", 2.0 / kFanIn, false},
      {"kind: \"lecun_uniform\"", 1.0 / kFanIn, true},  // 1/400
      {"kind: \"lecun_normal\"", 1.0 / kFanIn, false},
      {"kind: \"variance_scaling\" scale: 2 mode: \"fan_out\" distribution: \"uniform\"",
       2.0 / kFanOut, true},
      {"kind: \"variance_scaling\" scale: 3 mode: \"fan_avg\"", 3.0 / fanAvg, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.init);
    Stats s = stats(drawKernel(c.init));
    // 120,000 draws: the sample variance is within about 1% of the true one.
    EXPECT_NEAR(s.variance, c.variance, 0.03 * c.variance);
    EXPECT_NEAR(s.mean, 0.0, 0.01 * std::sqrt(c.variance));
    if (c.uniform) {
      // U(-r, r) with r = sqrt(3 sigma^2): nothing beyond r, and the extremes come close to it.
      double r = std::sqrt(3 * c.variance);
      EXPECT_LE(s.maxAbs, r);
      EXPECT_GT(s.maxAbs, 0.999 * r);
    } else {
      // Truncated at 2 standard deviations of the uncorrected normal, whose deviation is
      // sigma / 0.87962566 (so that the truncated one has variance sigma^2).
      double bound = 2 * std::sqrt(c.variance) / rt::kTruncatedNormalStddev;
      EXPECT_LE(s.maxAbs, bound);
      EXPECT_GT(s.maxAbs, 0.99 * bound);
    }
  }
}

TEST(FrontendInitTest, UntruncatedNormalGoesPastTwoDeviations) {
  std::vector<double> v =
      drawKernel("kind: \"variance_scaling\" distribution: \"untruncated_normal\"");
  Stats s = stats(v);
  const double variance = 1.0 / kFanIn;  // scale 1, fan_in by default
  EXPECT_NEAR(s.variance, variance, 0.03 * variance);
  // A normal puts 4.55% of its mass beyond 2 sigma.
  double beyond = 0;
  for (double x : v) beyond += std::abs(x) > 2 * std::sqrt(variance);
  EXPECT_NEAR(beyond / static_cast<double>(v.size()), 0.0455, 0.004);
}

TEST(FrontendInitTest, InitializersBecomeParameterAttributes) {
  frontend::ExpandedModel m =
      expandOk(test::model("dim: 4",
                           "layer { name: \"d\" dense { units: 3\n"
                           "  kernel_initializer { kind: \"variance_scaling\" scale: 2 mode: "
                           "\"fan_avg\" distribution: \"uniform\" }\n"
                           "  bias_initializer { kind: \"constant\" value: 0.1 } } }"));
  Node* k = m.graph->findNode("d/kernel");
  EXPECT_EQ(k->s("init"), "variance_scaling");
  EXPECT_DOUBLE_EQ(k->f("init_scale"), 2.0);
  EXPECT_EQ(k->s("init_mode"), "fan_avg");
  EXPECT_EQ(k->s("init_distribution"), "uniform");
  Node* b = m.graph->findNode("d/bias");
  EXPECT_EQ(b->s("init"), "constant");
  EXPECT_DOUBLE_EQ(b->f("init_value"), 0.1);
}

TEST(FrontendInitTest, ConstantInitializersGiveTheirValues) {
  // zeros kernel, ones bias: every output is 1; constant 0.5 kernel on x = [1, 2, 3, 4]:
  // 0.5 * 10 = 5, plus bias 0.
  auto out = [](const std::string& kernel, const std::string& bias) {
    frontend::ExpandedModel m =
        expandOk(test::model("dim: 4", "layer { dense { units: 2 kernel_initializer { " + kernel +
                                           " } bias_initializer { " + bias + " } } }"));
    return test::forward(*m.graph, {{"x", test::floats({1, 4}, {1, 2, 3, 4})}});
  };
  test::expectNear(out("kind: \"zeros\"", "kind: \"ones\""), {1, 1});
  test::expectNear(out("kind: \"constant\" value: 0.5", "kind: \"zeros\""), {5, 5});
  // values: [[1, 0], [0, 1], [1, 0], [0, 1]] -> [1 + 3, 2 + 4] = [4, 6], bias [10, 20].
  test::expectNear(
      out("kind: \"values\" values: [1, 0, 0, 1, 1, 0, 0, 1]", "kind: \"values\" values: [10, 20]"),
      {14, 26});
}

TEST(FrontendInitTest, DrawsAreReproducibleFromTheSeed) {
  std::vector<double> a = drawKernel("kind: \"he_normal\"", 7);
  EXPECT_EQ(a, drawKernel("kind: \"he_normal\"", 7));
  EXPECT_NE(a, drawKernel("kind: \"he_normal\"", 8));
}

TEST(FrontendInitTest, BadInitializerSpecsAreErrors) {
  auto err = [](const std::string& init) {
    return expandError(
        test::model("dim: 4", "layer { dense { units: 3 kernel_initializer { " + init + " } } }"));
  };
  EXPECT_CONTAINS(
      err("kind: \"he_normall\""),
      "model.pbtxt:3:47: error: layer 'dense_1' (dense): kernel_initializer: unknown initializer "
      "'he_normall'; did you mean 'he_normal'?");
  EXPECT_CONTAINS(err("kind: \"kaiming_normal\""), "did you mean 'he_normal'?");
  EXPECT_CONTAINS(err("kind: \"he_normal\" mode: \"fan_out\""),
                  "kernel_initializer: mode applies to variance_scaling, not he_normal");
  EXPECT_CONTAINS(err("kind: \"variance_scaling\" mode: \"fan_mid\""),
                  "unknown variance_scaling mode 'fan_mid'");
  EXPECT_CONTAINS(err("kind: \"variance_scaling\" distribution: \"normal\""),
                  "unknown variance_scaling distribution 'normal'");
  EXPECT_CONTAINS(err("kind: \"variance_scaling\" scale: -1"), "scale must be positive, found -1");
  EXPECT_CONTAINS(err("kind: \"values\" values: [1, 2]"),
                  "2 values given, the shape [4,3] needs 12");
  EXPECT_CONTAINS(err("kind: \"values\""), "kind values needs the values (12 for shape [4,3])");
  EXPECT_CONTAINS(err("value: 3"), "kernel_initializer needs a kind");
}

}  // namespace
}  // namespace kiln
