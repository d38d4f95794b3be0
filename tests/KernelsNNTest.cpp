// Interpreter kernels for constants, matmul, softmax, batch norm, losses and metrics, checked
// against values worked out by hand from chapter11.md's formulas, in float32 and float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "TestUtil.h"

namespace kiln {
namespace {

Tensor f32(Shape shape, std::vector<float> v) { return Tensor::fromVector<float>(std::move(shape), v); }

/// Runs each test once per interpreter precision; float32 graphs are widened in Float64 runs.
class KernelsNNTest : public ::testing::TestWithParam<Precision> {
 protected:
  Expected<std::map<std::string, Tensor>> tryRun(const std::string& text,
                                                 const std::map<std::string, Tensor>& inputs) {
    std::unique_ptr<Graph> g = test::parseVerified(text);
    if (!g) return Error::msg("the test graph does not verify");
    Interpreter interp(*g);
    KILN_RETURN_IF_ERROR(interp.initializeParameters(/*seed=*/0));
    return interp.run(inputs, RunOptions{.precision = GetParam()});
  }
  std::map<std::string, Tensor> run(const std::string& text,
                                    const std::map<std::string, Tensor>& inputs = {}) {
    auto r = tryRun(text, inputs);
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : std::map<std::string, Tensor>{};
  }
  DType floatType() const { return GetParam() == Precision::Float32 ? DType::Float32 : DType::Float64; }
  /// Float32 results are the exact value rounded once (relative error ~6e-8).
  double tolerance() const { return GetParam() == Precision::Float32 ? 1e-6 : 1e-12; }
  void expectValues(const Tensor& t, const Shape& shape, const std::vector<double>& want,
                    std::optional<DType> dtype = std::nullopt) {
    EXPECT_EQ(t.dtype(), dtype.value_or(floatType()));
    ASSERT_EQ(t.shape(), shape);
    for (int64_t i = 0; i < t.size(); ++i)
      EXPECT_NEAR(t.getDouble(i), want[i], tolerance() * std::max(1.0, std::abs(want[i])))
          << "element " << i << " of " << t.str();
  }
  /// Bit-exact after rounding `want` once to the result's dtype.
  void expectExact(const Tensor& t, const std::vector<double>& want) {
    ASSERT_EQ(t.size(), static_cast<int64_t>(want.size()));
    for (int64_t i = 0; i < t.size(); ++i) {
      double w = t.dtype() == DType::Float32 ? double(float(want[i])) : want[i];
      EXPECT_EQ(t.getDouble(i), w) << "element " << i;
    }
  }
};

std::string precisionName(const ::testing::TestParamInfo<Precision>& info) {
  return info.param == Precision::Float32 ? "Float32" : "Float64";
}

// ---- constant --------------------------------------------------------------------------------

TEST_P(KernelsNNTest, ConstantSplatFullIntAndBool) {
  auto out = run(R"(
    node { name: "splat" op: "constant" attr { name: "shape" ints { v: 2 v: 2 } }
           attr { name: "value" floats { v: 1.5 } } }
    node { name: "full" op: "constant" attr { name: "value" floats { v: 1 v: -2 v: 0.25 } } }
    node { name: "ints" op: "constant" attr { name: "dtype" dtype: INT32 }
           attr { name: "shape" ints { v: 3 } } attr { name: "value" floats { v: -2 v: 7 v: 0 } } }
    node { name: "big" op: "constant" attr { name: "dtype" dtype: INT64 }
           attr { name: "value" floats { v: 4e12 } } }
    node { name: "flags" op: "constant" attr { name: "dtype" dtype: BOOL }
           attr { name: "value" floats { v: 0 v: 2 } } }
    output { name: "splat" } output { name: "full" } output { name: "ints" } output { name: "big" }
    output { name: "flags" })");
  expectValues(out["splat"], {2, 2}, {1.5, 1.5, 1.5, 1.5});
  expectValues(out["full"], {3}, {1, -2, 0.25});
  expectValues(out["ints"], {3}, {-2, 7, 0}, DType::Int32);
  expectValues(out["big"], {}, {4e12}, DType::Int64);
  EXPECT_EQ(out["big"].data<int64_t>()[0], 4000000000000);
  expectValues(out["flags"], {2}, {0, 1}, DType::Bool);
}

// ---- matmul ----------------------------------------------------------------------------------

std::string matmulGraph(bool ta, bool tb) {
  return std::string(R"(
    input { name: "a" shape { dim: 2 dim: 2 } }
    input { name: "b" shape { dim: 2 dim: 2 } }
    node { name: "y" op: "matmul" input: "a" input: "b" attr { name: "transpose_a" b: )") +
         (ta ? "true" : "false") + " } attr { name: \"transpose_b\" b: " + (tb ? "true" : "false") +
         " } } output { name: \"y\" }";
}

TEST_P(KernelsNNTest, MatMulEachTransposeCombination) {
  // a = [[1,2],[3,4]], b = [[5,6],[7,8]]; square, so every flag changes the answer.
  std::map<std::string, Tensor> in{{"a", f32({2, 2}, {1, 2, 3, 4})}, {"b", f32({2, 2}, {5, 6, 7, 8})}};
  // a·b = [[1·5+2·7, 1·6+2·8], [3·5+4·7, 3·6+4·8]]
  expectValues(run(matmulGraph(false, false), in)["y"], {2, 2}, {19, 22, 43, 50});
  // aᵀ·b = [[1,3],[2,4]]·b = [[1·5+3·7, 1·6+3·8], [2·5+4·7, 2·6+4·8]]
  expectValues(run(matmulGraph(true, false), in)["y"], {2, 2}, {26, 30, 38, 44});
  // a·bᵀ = a·[[5,7],[6,8]] = [[1·5+2·6, 1·7+2·8], [3·5+4·6, 3·7+4·8]]
  expectValues(run(matmulGraph(false, true), in)["y"], {2, 2}, {17, 23, 39, 53});
  // aᵀ·bᵀ = [[1,3],[2,4]]·[[5,7],[6,8]] = [[1·5+3·6, 1·7+3·8], [2·5+4·6, 2·7+4·8]]
  expectValues(run(matmulGraph(true, true), in)["y"], {2, 2}, {23, 31, 34, 46});
}

TEST_P(KernelsNNTest, MatMulWithBatchDimension) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 3 } }
    parameter { name: "w" shape { dim: 3 dim: 2 }
                init { kind: "values" values: 1 values: 2 values: 3 values: 4 values: 5 values: 6 } }
    parameter { name: "wt" shape { dim: 2 dim: 3 }
                init { kind: "values" values: 1 values: 3 values: 5 values: 2 values: 4 values: 6 } }
    node { name: "y" op: "matmul" input: "x" input: "w" }
    node { name: "yt" op: "matmul" input: "x" input: "wt" attr { name: "transpose_b" b: true } }
    output { name: "y" } output { name: "yt" })",
                 {{"x", f32({2, 3}, {1, 2, 3, 4, 5, 6})}});
  // [[1,2,3],[4,5,6]]·[[1,2],[3,4],[5,6]] = [[1+6+15, 2+8+18], [4+15+30, 8+20+36]]
  expectValues(out["y"], {2, 2}, {22, 28, 49, 64});
  expectValues(out["yt"], {2, 2}, {22, 28, 49, 64});  // wt = wᵀ
}

// ---- softmax ---------------------------------------------------------------------------------

const char* kSoftmaxGraph = R"(
  input { name: "x" shape { dim: -1 dim: 3 } }
  node { name: "p" op: "softmax" input: "x" }
  node { name: "lp" op: "log_softmax" input: "x" }
  output { name: "p" } output { name: "lp" })";

TEST_P(KernelsNNTest, SoftmaxLastAxis) {
  auto out = run(kSoftmaxGraph, {{"x", f32({1, 3}, {1, 2, 3})}});
  // s = e^-2 + e^-1 + 1 (shifted by the max, 3) = 1.5032147244080551
  // softmax = [e^-2/s, e^-1/s, 1/s]; log_softmax = [-2 - ln s, -1 - ln s, -ln s], ln s = 0.40760596444438
  expectValues(out["p"], {1, 3}, {0.09003057317038046, 0.24472847105479764, 0.6652409557748218});
  expectValues(out["lp"], {1, 3}, {-2.4076059644443806, -1.4076059644443804, -0.4076059644443804});
}

TEST_P(KernelsNNTest, SoftmaxHugeLogitsAreExact) {
  auto out = run(kSoftmaxGraph, {{"x", f32({2, 3}, {1000, -1000, 0, -1000, -1000, -1000})}});
  // Row 0: shifted [0, -2000, -1000]; e^-1000 underflows to 0, so s = 1 exactly.
  // Row 1: all equal: shifted [0, 0, 0], s = 3.
  expectExact(out["p"], {1, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  expectExact(out["lp"], {0, -2000, -1000, -std::log(3.0), -std::log(3.0), -std::log(3.0)});
  for (const char* name : {"p", "lp"})
    for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(std::isfinite(out[name].getDouble(i)));
}

TEST_P(KernelsNNTest, SoftmaxAlongAxisZero) {
  auto out = run(R"(
    input { name: "x" shape { dim: 2 dim: 2 } }
    node { name: "p" op: "softmax" input: "x" attr { name: "axis" i: 0 } }
    node { name: "lp" op: "log_softmax" input: "x" attr { name: "axis" i: 0 } }
    output { name: "p" } output { name: "lp" })",
                 {{"x", f32({2, 2}, {1, 0, 3, 0})}});
  // Column 0 is [1, 3]: softmax = [1/(1+e^2), e^2/(1+e^2)], log = [-ln(1+e^2), 2 - ln(1+e^2)],
  // ln(1+e^2) = 2.1269280110429727. Column 1 is [0, 0]: [1/2, 1/2], log = -ln 2.
  expectValues(out["p"], {2, 2}, {0.11920292202211755, 0.5, 0.8807970779778824, 0.5});
  expectValues(out["lp"], {2, 2},
               {-2.1269280110429727, -0.6931471805599453, -0.1269280110429727, -0.6931471805599453});
}

// ---- batch_norm ------------------------------------------------------------------------------

// gamma [2, 0.5], beta [1, -1], moving mean [0.5, 1], moving variance [1, 2], ε = 1e-3 (default).
std::string batchNormGraph(bool training) {
  return std::string(R"(
    input { name: "x" shape { dim: -1 dim: 2 } }
    parameter { name: "gamma" shape { dim: 2 } init { kind: "values" values: 2 values: 0.5 } }
    parameter { name: "beta" shape { dim: 2 } init { kind: "values" values: 1 values: -1 } }
    parameter { name: "mm" shape { dim: 2 } init { kind: "values" values: 0.5 values: 1 } }
    parameter { name: "mv" shape { dim: 2 } init { kind: "values" values: 1 values: 2 } }
    node { name: "bn" op: "batch_norm" input: "x" input: "gamma" input: "beta" input: "mm" input: "mv"
           attr { name: "momentum" f: 0.9 } attr { name: "training" b: )") +
         (training ? "true" : "false") + R"( } }
    output { name: "y" tensor: "bn" } output { name: "mean" tensor: "bn:1" }
    output { name: "var" tensor: "bn:2" })";
}

// Columns [1,3,5,7] and [2,4,6,12].
Tensor batchNormInput() { return f32({4, 2}, {1, 2, 3, 4, 5, 6, 7, 12}); }

TEST_P(KernelsNNTest, BatchNormTraining) {
  auto out = run(batchNormGraph(/*training=*/true), {{"x", batchNormInput()}});
  // Column 0: μ = 16/4 = 4, σ² = (9+1+1+9)/4 = 5; y = 2(x − 4)/sqrt(5.001) + 1.
  // Column 1: μ = 24/4 = 6, σ² = (16+4+0+36)/4 = 14; y = 0.5(x − 6)/sqrt(14.001) − 1.
  expectValues(out["y"], {4, 2},
               {-1.6830132850849644, -1.5345033947587632, 0.10566223830501198, -1.2672516973793817,
                1.8943377616949881, -1.0, 3.6830132850849644, -0.1982449078618551});
  // moving·0.9 + batch·0.1: [0.5·0.9 + 4·0.1, 1·0.9 + 6·0.1], [1·0.9 + 5·0.1, 2·0.9 + 14·0.1]
  expectValues(out["mean"], {2}, {0.85, 1.5});
  expectValues(out["var"], {2}, {1.4, 3.2});
}

TEST_P(KernelsNNTest, BatchNormInferenceUsesMovingStatistics) {
  auto out = run(batchNormGraph(/*training=*/false), {{"x", batchNormInput()}});
  // y = 2(x − 0.5)/sqrt(1.001) + 1 and 0.5(x − 1)/sqrt(2.001) − 1.
  expectValues(out["y"], {4, 2},
               {1.999500374687773, -0.6465349646225489, 5.997501873438866, 0.06039510613235355,
                9.995503372189958, 0.7673251768872558, 13.993504870941052, 2.8881153891519626});
  expectValues(out["mean"], {2}, {0.5, 1});
  expectValues(out["var"], {2}, {1, 2});
}

TEST_P(KernelsNNTest, BatchNormTrainingOnAMiddleAxis) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 2 dim: 2 } }
    parameter { name: "gamma" shape { dim: 2 } init { kind: "ones" } }
    parameter { name: "beta" shape { dim: 2 } init { kind: "zeros" } }
    parameter { name: "mm" shape { dim: 2 } init { kind: "zeros" } }
    parameter { name: "mv" shape { dim: 2 } init { kind: "ones" } }
    node { name: "bn" op: "batch_norm" input: "x" input: "gamma" input: "beta" input: "mm" input: "mv"
           attr { name: "axis" i: 1 } attr { name: "momentum" f: 0.5 } attr { name: "training" b: true } }
    output { name: "y" tensor: "bn" } output { name: "mean" tensor: "bn:1" }
    output { name: "var" tensor: "bn:2" })",
                 {{"x", f32({2, 2, 2}, {1, 2, 10, 20, 3, 4, 30, 40})}});
  // Feature 0 is x[:,0,:] = {1,2,3,4}: μ = 2.5, σ² = (2.25+0.25+0.25+2.25)/4 = 1.25.
  // Feature 1 is x[:,1,:] = {10,20,30,40}: μ = 25, σ² = (225+25+25+225)/4 = 125.
  // y = (x − μ)/sqrt(σ² + 0.001)
  expectValues(out["y"], {2, 2, 2},
               {-1.3411044519645503, -0.4470348173215168, -1.3416354199689269, -0.447211806656309,
                0.4470348173215168, 1.3411044519645503, 0.447211806656309, 1.3416354199689269});
  // momentum 0.5: [0·0.5 + 2.5·0.5, 0·0.5 + 25·0.5], [1·0.5 + 1.25·0.5, 1·0.5 + 125·0.5]
  expectValues(out["mean"], {2}, {1.25, 12.5});
  expectValues(out["var"], {2}, {1.125, 63});
}

// ---- losses and metrics ----------------------------------------------------------------------

std::string lossGraph(const char* op, const char* labelType, int classes) {
  std::string c = std::to_string(classes);
  return std::string(R"(
    input { name: "z" shape { dim: -1 dim: )") + c + R"( } }
    input { name: "y" dtype: )" + labelType + R"( shape { dim: -1 } }
    node { name: "loss" op: ")" + op + R"(" input: "z" input: "y" }
    output { name: "loss" })";
}

TEST_P(KernelsNNTest, SparseSoftmaxCrossEntropy) {
  std::string g = lossGraph("sparse_softmax_cross_entropy", "INT32", 3);
  Tensor z = f32({2, 3}, {1000, -1000, 0, 1, 2, 3});
  // Row 0, label 1: (max − z₁) + ln(1 + e^-2000 + e^-1000) = 2000 + ln 1 = 2000.
  // Row 1, label 2: (3 − 3) + ln(e^-2 + e^-1 + 1) = 0.4076059644443804.
  auto out = run(g, {{"z", z}, {"y", Tensor::fromVector<int32_t>({2}, {1, 2})}});
  expectValues(out["loss"], {}, {(2000 + 0.4076059644443804) / 2});
  // Int64 labels [0, 0]: row 0 gives 0, row 1 gives (3 − 1) + 0.4076059644443804.
  auto out64 = run(lossGraph("sparse_softmax_cross_entropy", "INT64", 3),
                   {{"z", z}, {"y", Tensor::fromVector<int64_t>({2}, {0, 0})}});
  expectValues(out64["loss"], {}, {2.4076059644443806 / 2});
}

TEST_P(KernelsNNTest, SparseSoftmaxCrossEntropyHugeLogitsAreExact) {
  // Row 0 predicts its label with margin 2000 (loss 0); row 1 misses by 2000 (loss 2000).
  auto out = run(lossGraph("sparse_softmax_cross_entropy", "INT32", 2),
                 {{"z", f32({2, 2}, {1000, -1000, -1000, 1000})},
                  {"y", Tensor::fromVector<int32_t>({2}, {0, 0})}});
  expectExact(out["loss"], {1000});
}

TEST_P(KernelsNNTest, LossAndAccuracyRejectLabelOutOfRange) {
  for (auto [op, bad] : {std::pair{"sparse_softmax_cross_entropy", 3}, std::pair{"sparse_softmax_cross_entropy", -1},
                         std::pair{"accuracy", 3}, std::pair{"accuracy", -1}}) {
    auto r = tryRun(lossGraph(op, "INT32", 3),
                    {{"z", f32({2, 3}, {1, 2, 3, 4, 5, 6})},
                     {"y", Tensor::fromVector<int32_t>({2}, {0, bad})}});
    ASSERT_FALSE(r);
    std::string msg = r.error().str();
    EXPECT_NE(msg.find("label " + std::to_string(bad)), std::string::npos) << msg;
    EXPECT_NE(msg.find("row 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[0, 3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'loss'"), std::string::npos) << msg;
  }
}

TEST_P(KernelsNNTest, BinaryCrossEntropyWithLogits) {
  auto out = run(R"(
    input { name: "z" shape { dim: -1 dim: 2 } }
    input { name: "y" shape { dim: -1 dim: 2 } }
    node { name: "loss" op: "binary_cross_entropy_with_logits" input: "z" input: "y" }
    output { name: "loss" })",
                 {{"z", f32({2, 2}, {1000, -1000, 0, 2})}, {"y", f32({2, 2}, {1, 1, 0.5, 0})}});
  // max(z,0) − z·y + ln(1 + e^-|z|) per element:
  //   z=1000,y=1: 1000 − 1000 + 0 = 0;  z=−1000,y=1: 0 + 1000 + 0 = 1000;
  //   z=0,y=0.5: ln 2 = 0.6931471805599453;  z=2,y=0: 2 + ln(1 + e^-2) = 2.1269280110429727
  // mean = (1000 + 0.6931471805599453 + 2.1269280110429727)/4
  expectValues(out["loss"], {}, {250.70501879790072});
}

TEST_P(KernelsNNTest, BinaryCrossEntropyHugeLogitsAreExact) {
  auto out = run(R"(
    input { name: "z" shape { dim: -1 } }
    input { name: "y" shape { dim: -1 } }
    node { name: "loss" op: "binary_cross_entropy_with_logits" input: "z" input: "y" }
    output { name: "loss" })",
                 {{"z", f32({2}, {1000, -1000})}, {"y", f32({2}, {0, 0})}});
  // z=1000,y=0: 1000 + ln(1 + e^-1000) = 1000; z=−1000,y=0: 0 + 0 + 0 = 0. Mean 500.
  expectExact(out["loss"], {500});
}

TEST_P(KernelsNNTest, MeanSquaredError) {
  auto out = run(R"(
    input { name: "p" shape { dim: -1 dim: 2 } }
    input { name: "t" shape { dim: -1 dim: 2 } }
    node { name: "loss" op: "mean_squared_error" input: "p" input: "t" }
    output { name: "loss" })",
                 {{"p", f32({2, 2}, {1, 2, 3, 4})}, {"t", f32({2, 2}, {0, 2, 5, 1})}});
  // Differences 1, 0, −2, 3: (1 + 0 + 4 + 9)/4
  expectValues(out["loss"], {}, {3.5});
}

TEST_P(KernelsNNTest, ArgMaxTakesTheFirstOfTies) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 3 } }
    input { name: "k" dtype: INT32 shape { dim: -1 dim: 3 } }
    node { name: "last" op: "argmax" input: "x" }
    node { name: "first" op: "argmax" input: "x" attr { name: "axis" i: 0 } }
    node { name: "ints" op: "argmax" input: "k" }
    output { name: "last" } output { name: "first" } output { name: "ints" })",
                 {{"x", f32({3, 3}, {1, 3, 3, 5, 5, 5, 0, -1, 2})},
                  {"k", Tensor::fromVector<int32_t>({3, 3}, {-7, -2, -2, 4, 9, 1, 0, 0, 0})}});
  // Rows [1,3,3] → 1 (tie), [5,5,5] → 0 (tie), [0,−1,2] → 2.
  expectValues(out["last"], {3}, {1, 0, 2}, DType::Int64);
  // Columns [1,5,0] → 1, [3,5,−1] → 1, [3,5,2] → 1.
  expectValues(out["first"], {3}, {1, 1, 1}, DType::Int64);
  // Rows [−7,−2,−2] → 1, [4,9,1] → 1, [0,0,0] → 0.
  expectValues(out["ints"], {3}, {1, 1, 0}, DType::Int64);
}

TEST_P(KernelsNNTest, Accuracy) {
  auto out = run(lossGraph("accuracy", "INT64", 3),
                 {{"z", f32({4, 3}, {0.5, 2, 1, 3, 1, 3, 0, 0, 1, 1, 0, 0})},
                  {"y", Tensor::fromVector<int64_t>({4}, {1, 2, 2, 1})}});
  // argmax per row: 1, 0 (tie of 3s → first), 2, 0; labels 1, 2, 2, 1 → rows 0 and 2 hit: 2/4.
  expectValues(out["loss"], {}, {0.5});
}

// ---- end to end ------------------------------------------------------------------------------

TEST(KernelsNNEndToEnd, FashionMlpFloat32AgreesWithFloat64) {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(g) << g.error().str();
  Status verified = verifyGraph(**g);
  ASSERT_TRUE(verified) << verified.error().str();
  Interpreter interp(**g);
  Status init = interp.initializeParameters(/*seed=*/42);
  ASSERT_TRUE(init) << init.error().str();

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::vector<float> x(4 * 784);
  for (float& v : x) v = pixel(rng);
  std::map<std::string, Tensor> in{{"x", f32({4, 784}, x)}};

  auto lo = interp.run(in, RunOptions{.precision = Precision::Float32});
  auto hi = interp.run(in, RunOptions{.precision = Precision::Float64});
  ASSERT_TRUE(lo) << lo.error().str();
  ASSERT_TRUE(hi) << hi.error().str();
  const Tensor& a = (*lo)["logits"];
  const Tensor& b = (*hi)["logits"];
  ASSERT_EQ(a.shape(), (Shape{4, 10}));
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_EQ(b.dtype(), DType::Float64);
  for (int64_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a.getDouble(i)) && std::isfinite(b.getDouble(i))) << "element " << i;
    EXPECT_NEAR(a.getDouble(i), b.getDouble(i), 1e-4 * std::max(1.0, std::abs(b.getDouble(i))))
        << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(KernelsNN, KernelsNNTest,
                         ::testing::Values(Precision::Float32, Precision::Float64), precisionName);

}  // namespace
}  // namespace kiln
