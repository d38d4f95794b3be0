// Interpreter kernels for reductions and data movement, checked against values worked out by
// hand, in float32 and float64 and on integer and bool tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "TestUtil.h"

namespace kiln {
namespace {

Tensor f32(Shape shape, std::vector<float> v) { return Tensor::fromVector<float>(std::move(shape), v); }

/// 0, 1, 2, ... of the given shape and element type.
template <class T>
Tensor iota(Shape shape) {
  std::vector<T> v(static_cast<size_t>(numElements(shape)));
  std::iota(v.begin(), v.end(), T(0));
  return Tensor::fromVector<T>(std::move(shape), v);
}

/// Runs each test once per interpreter precision; float32 graphs are widened in Float64 runs,
/// integer ones are not.
class KernelsShapeTest : public ::testing::TestWithParam<Precision> {
 protected:
  std::map<std::string, Tensor> run(const std::string& text,
                                    const std::map<std::string, Tensor>& inputs = {}) {
    std::unique_ptr<Graph> g = test::parseVerified(text);
    if (!g) return {};
    Interpreter interp(*g);
    auto r = interp.run(inputs, RunOptions{.precision = GetParam()});
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : std::map<std::string, Tensor>{};
  }
  DType floatType() const { return GetParam() == Precision::Float32 ? DType::Float32 : DType::Float64; }
  void expectValues(const Tensor& t, const Shape& shape, const std::vector<double>& want,
                    std::optional<DType> dtype = std::nullopt) {
    EXPECT_EQ(t.dtype(), dtype.value_or(floatType()));
    ASSERT_EQ(t.shape(), shape);
    ASSERT_EQ(t.size(), static_cast<int64_t>(want.size()));
    double tol = GetParam() == Precision::Float32 ? 1e-6 : 1e-12;
    for (int64_t i = 0; i < t.size(); ++i)
      EXPECT_NEAR(t.getDouble(i), want[i], tol * std::max(1.0, std::abs(want[i])))
          << "element " << i << " of " << t.str();
  }
};

std::string precisionName(const ::testing::TestParamInfo<Precision>& info) {
  return info.param == Precision::Float32 ? "Float32" : "Float64";
}

/// One reduction node `y` of x [-1, 3] (or `dtype`) with the given attributes.
std::string reduceGraph(const std::string& op, const std::string& attrs, const char* dtype = "FLOAT32") {
  return R"(input { name: "x" dtype: )" + std::string(dtype) + R"( shape { dim: -1 dim: 3 } }
    node { name: "y" op: ")" + op + R"(" input: "x" )" + attrs + R"( } output { name: "y" })";
}

// x = [[1,2,3],[4,5,6]] for the reductions below.
Tensor matrix23() { return f32({2, 3}, {1, 2, 3, 4, 5, 6}); }

// ---- reductions ------------------------------------------------------------------------------

TEST_P(KernelsShapeTest, ReduceSum) {
  std::map<std::string, Tensor> in{{"x", matrix23()}};
  // Rows: 1+2+3, 4+5+6.
  expectValues(run(reduceGraph("reduce_sum", R"(attr { name: "axes" ints { v: 1 } })"), in)["y"],
               {2}, {6, 15});
  // Columns, kept as [1, 3]: 1+4, 2+5, 3+6.
  expectValues(run(reduceGraph("reduce_sum", R"(attr { name: "axes" ints { v: 0 } }
                                                attr { name: "keepdims" b: true })"), in)["y"],
               {1, 3}, {5, 7, 9});
  // Negative axis -1 is axis 1, kept as [2, 1].
  expectValues(run(reduceGraph("reduce_sum", R"(attr { name: "axes" ints { v: -1 } }
                                                attr { name: "keepdims" b: true })"), in)["y"],
               {2, 1}, {6, 15});
  // Empty axes: everything, 1+...+6 = 21, a scalar.
  expectValues(run(reduceGraph("reduce_sum", ""), in)["y"], {}, {21});
}

TEST_P(KernelsShapeTest, ReduceSumOverTwoAxesOfRankThree) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 2 dim: 3 } }
    node { name: "y" op: "reduce_sum" input: "x" attr { name: "axes" ints { v: 0 v: -1 } } }
    output { name: "y" })",
                 {{"x", iota<float>({2, 2, 3})}});
  // x[i][j][k] = 6i + 3j + k. j=0: (0+1+2) + (6+7+8) = 24; j=1: (3+4+5) + (9+10+11) = 42.
  expectValues(out["y"], {2}, {24, 42});
}

TEST_P(KernelsShapeTest, ReduceMean) {
  std::map<std::string, Tensor> in{{"x", matrix23()}};
  // Columns: (1+4)/2, (2+5)/2, (3+6)/2.
  expectValues(run(reduceGraph("reduce_mean", R"(attr { name: "axes" ints { v: 0 } })"), in)["y"],
               {3}, {2.5, 3.5, 4.5});
  // All: 21/6.
  expectValues(run(reduceGraph("reduce_mean", ""), in)["y"], {}, {3.5});
  expectValues(run(reduceGraph("reduce_mean", R"(attr { name: "axes" ints { v: -2 v: -1 } }
                                                 attr { name: "keepdims" b: true })"), in)["y"],
               {1, 1}, {3.5});
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 2 dim: 3 } }
    node { name: "y" op: "reduce_mean" input: "x" attr { name: "axes" ints { v: 1 } } }
    output { name: "y" })",
                 {{"x", iota<float>({2, 2, 3})}});
  // x[i][j][k] = 6i + 3j + k; mean over j: i=0: [(0+3)/2, (1+4)/2, (2+5)/2]; i=1: add 6.
  expectValues(out["y"], {2, 3}, {1.5, 2.5, 3.5, 7.5, 8.5, 9.5});
}

TEST_P(KernelsShapeTest, ReduceMax) {
  std::map<std::string, Tensor> in{{"x", f32({2, 3}, {1, -2, 3, -4, 5, -6})}};
  // Rows [1,−2,3] → 3, [−4,5,−6] → 5; columns → 1, 5, 3.
  expectValues(run(reduceGraph("reduce_max", R"(attr { name: "axes" ints { v: 1 } })"), in)["y"],
               {2}, {3, 5});
  expectValues(run(reduceGraph("reduce_max", R"(attr { name: "axes" ints { v: -2 } })"), in)["y"],
               {3}, {1, 5, 3});
  // All negative: the maximum is not the initial value of an accumulator.
  auto neg = run(reduceGraph("reduce_max", ""), {{"x", f32({1, 3}, {-7, -3, -5})}});
  expectValues(neg["y"], {}, {-3});
  // A NaN makes the maximum NaN.
  auto nan = run(reduceGraph("reduce_max", ""), {{"x", f32({1, 3}, {1, NAN, 2})}});
  EXPECT_TRUE(std::isnan(nan["y"].getDouble(0)));
}

TEST_P(KernelsShapeTest, ReductionsOnIntegers) {
  std::map<std::string, Tensor> in{
      {"x", Tensor::fromVector<int32_t>({2, 3}, {1, -2, 3, -4, 5, -6})}};
  // Columns: 1−4, −2+5, 3−6.
  expectValues(run(reduceGraph("reduce_sum", R"(attr { name: "axes" ints { v: 0 } })", "INT32"),
                   in)["y"],
               {3}, {-3, 3, -3}, DType::Int32);
  expectValues(run(reduceGraph("reduce_max", "", "INT32"), in)["y"], {}, {5}, DType::Int32);
  // Int64 stays exact past 2^53 (~9.007e15), where a double cannot hold odd numbers:
  // 6·10^15 + 1 + 6·10^15 = 12000000000000001.
  auto big = run(reduceGraph("reduce_sum", "", "INT64"),
                 {{"x", Tensor::fromVector<int64_t>({1, 3}, {6000000000000000, 1, 6000000000000000})}});
  ASSERT_EQ(big["y"].dtype(), DType::Int64);
  EXPECT_EQ(big["y"].data<int64_t>()[0], 12000000000000001);
  auto lowest = run(reduceGraph("reduce_max", "", "INT64"),
                    {{"x", Tensor::fromVector<int64_t>(
                               {1, 3}, {-12000000000000003, -12000000000000001, -12000000000000002})}});
  EXPECT_EQ(lowest["y"].data<int64_t>()[0], -12000000000000001);
}

// ---- reshape and flatten ---------------------------------------------------------------------

TEST_P(KernelsShapeTest, ReshapeKeepsRowMajorOrder) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 6 } }
    node { name: "batched" op: "reshape" input: "x" attr { name: "shape" ints { v: -1 v: 2 v: 3 } } }
    output { name: "batched" })",
                 {{"x", iota<float>({2, 6})}});
  expectValues(out["batched"], {2, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  auto fixed = run(R"(
    input { name: "x" dtype: INT64 shape { dim: 2 dim: 3 } }
    node { name: "y" op: "reshape" input: "x" attr { name: "shape" ints { v: 3 v: -1 } } }
    output { name: "y" })",
                   {{"x", iota<int64_t>({2, 3})}});
  expectValues(fixed["y"], {3, 2}, {0, 1, 2, 3, 4, 5}, DType::Int64);
}

TEST_P(KernelsShapeTest, FlattenImages) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 28 dim: 28 } }
    node { name: "y" op: "flatten" input: "x" }
    output { name: "y" })",
                 {{"x", iota<float>({3, 28, 28})}});
  const Tensor& y = out["y"];
  ASSERT_EQ(y.shape(), (Shape{3, 784}));
  // Row-major data is unchanged: pixel (b, r, c) = 784b + 28r + c stays at that offset.
  for (int64_t i = 0; i < y.size(); ++i) ASSERT_EQ(y.getDouble(i), double(i)) << "element " << i;
}

// ---- transpose -------------------------------------------------------------------------------

TEST_P(KernelsShapeTest, TransposeRankThree) {
  auto out = run(R"(
    input { name: "x" shape { dim: 2 dim: 3 dim: 4 } }
    input { name: "k" dtype: INT64 shape { dim: 2 dim: 3 dim: 4 } }
    node { name: "y" op: "transpose" input: "x" attr { name: "perm" ints { v: 2 v: 0 v: 1 } } }
    node { name: "yk" op: "transpose" input: "k" attr { name: "perm" ints { v: 2 v: 0 v: 1 } } }
    output { name: "y" } output { name: "yk" })",
                 {{"x", iota<float>({2, 3, 4})}, {"k", iota<int64_t>({2, 3, 4})}});
  // y[a][b][c] = x[b][c][a] = 12b + 4c + a, a < 4, b < 2, c < 3.
  std::vector<double> want{0, 4, 8,  12, 16, 20,   // a = 0
                           1, 5, 9,  13, 17, 21,   // a = 1
                           2, 6, 10, 14, 18, 22,   // a = 2
                           3, 7, 11, 15, 19, 23};  // a = 3
  expectValues(out["y"], {4, 2, 3}, want);
  expectValues(out["yk"], {4, 2, 3}, want, DType::Int64);
}

TEST_P(KernelsShapeTest, TransposeEmptyPermReverses) {
  auto out = run(R"(
    input { name: "x" shape { dim: -1 dim: 3 } }
    node { name: "y" op: "transpose" input: "x" }
    output { name: "y" })",
                 {{"x", matrix23()}});
  // [[1,2,3],[4,5,6]]ᵀ
  expectValues(out["y"], {3, 2}, {1, 4, 2, 5, 3, 6});
}

// ---- concat ----------------------------------------------------------------------------------

TEST_P(KernelsShapeTest, ConcatThreeOperandsOnAxisOne) {
  auto out = run(R"(
    input { name: "a" shape { dim: -1 dim: 1 } }
    input { name: "b" shape { dim: -1 dim: 2 } }
    input { name: "c" shape { dim: -1 dim: 1 } }
    node { name: "y" op: "concat" input: "a" input: "b" input: "c" attr { name: "axis" i: 1 } }
    output { name: "y" })",
                 {{"a", f32({2, 1}, {1, 2})}, {"b", f32({2, 2}, {3, 4, 5, 6})}, {"c", f32({2, 1}, {7, 8})}});
  // Row r is a[r] ++ b[r] ++ c[r].
  expectValues(out["y"], {2, 4}, {1, 3, 4, 7, 2, 5, 6, 8});
}

TEST_P(KernelsShapeTest, ConcatIntegersOnAxisZero) {
  auto out = run(R"(
    input { name: "a" dtype: INT32 shape { dim: 1 dim: 2 } }
    input { name: "b" dtype: INT32 shape { dim: 2 dim: 2 } }
    node { name: "y" op: "concat" input: "a" input: "b" attr { name: "axis" i: 0 } }
    output { name: "y" })",
                 {{"a", Tensor::fromVector<int32_t>({1, 2}, {1, 2})},
                  {"b", Tensor::fromVector<int32_t>({2, 2}, {3, 4, 5, 6})}});
  expectValues(out["y"], {3, 2}, {1, 2, 3, 4, 5, 6}, DType::Int32);
}

// ---- slice -----------------------------------------------------------------------------------

TEST_P(KernelsShapeTest, SliceWithNegativeAndOutOfRangeIndices) {
  auto out = run(R"(
    input { name: "x" shape { dim: 3 dim: 4 } }
    node { name: "both" op: "slice" input: "x"
           attr { name: "starts" ints { v: -2 v: 1 } } attr { name: "ends" ints { v: 100 v: -1 } } }
    node { name: "cols" op: "slice" input: "x" attr { name: "axes" ints { v: -1 } }
           attr { name: "starts" ints { v: -3 } } attr { name: "ends" ints { v: -1 } } }
    output { name: "both" } output { name: "cols" })",
                 {{"x", iota<float>({3, 4})}});
  // x[r][c] = 4r + c. Rows [-2, 100) of 3 → [1, 3); columns [1, -1) of 4 → [1, 3).
  expectValues(out["both"], {2, 2}, {5, 6, 9, 10});
  // Columns [-3, -1) of 4 → [1, 3), every row.
  expectValues(out["cols"], {3, 2}, {1, 2, 5, 6, 9, 10});
}

TEST_P(KernelsShapeTest, SliceIntegersWithBatch) {
  auto out = run(R"(
    input { name: "x" dtype: INT64 shape { dim: -1 dim: 5 } }
    node { name: "y" op: "slice" input: "x" attr { name: "axes" ints { v: 1 } }
           attr { name: "starts" ints { v: -100 } } attr { name: "ends" ints { v: 2 } } }
    output { name: "y" })",
                 {{"x", iota<int64_t>({2, 5})}});
  // Columns [-100, 2) of 5 → [0, 2).
  expectValues(out["y"], {2, 2}, {0, 1, 5, 6}, DType::Int64);
}

TEST_P(KernelsShapeTest, DataMovementOnBool) {
  auto out = run(R"(
    node { name: "c" op: "constant" attr { name: "dtype" dtype: BOOL }
           attr { name: "shape" ints { v: 2 v: 3 } } attr { name: "value" floats { v: 1 v: 0 v: 0 v: 0 v: 1 v: 1 } } }
    node { name: "t" op: "transpose" input: "c" }
    node { name: "s" op: "slice" input: "t" attr { name: "starts" ints { v: 1 } } attr { name: "ends" ints { v: 3 } } }
    node { name: "j" op: "concat" input: "s" input: "s" attr { name: "axis" i: 0 } }
    output { name: "j" })");
  // c = [[1,0,0],[0,1,1]]; cᵀ = [[1,0],[0,1],[0,1]]; rows 1..2 = [[0,1],[0,1]]; stacked twice.
  expectValues(out["j"], {4, 2}, {0, 1, 0, 1, 0, 1, 0, 1}, DType::Bool);
}

INSTANTIATE_TEST_SUITE_P(KernelsShape, KernelsShapeTest,
                         ::testing::Values(Precision::Float32, Precision::Float64), precisionName);

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// pad and one_hot: the ops gradients of slice and cross-entropy are built from.
TEST(KernelsPadOneHotTest, PadPlacesTheInputAmongZeros) {
  auto g = test::parseVerified(R"(
    input { name: "x" dtype: INT32 shape { dim: 2 dim: 2 } }
    node { name: "y" op: "pad" input: "x"
           attr { name: "before" ints { v: 1 v: 0 } } attr { name: "after" ints { v: 0 v: 2 } } }
    output { name: "y" })");
  ASSERT_TRUE(g);
  Interpreter interp(*g);
  auto out = interp.run({{"x", Tensor::fromVector<int32_t>({2, 2}, {1, 2, 3, 4})}});
  ASSERT_TRUE(out) << out.error().str();
  const Tensor& y = out->at("y");
  ASSERT_EQ(y.shape(), (Shape{3, 4}));
  // Row 0 is padding; rows 1-2 hold [1,2] and [3,4] followed by two zeros each.
  std::vector<int32_t> want = {0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0};
  EXPECT_EQ(std::vector<int32_t>(y.data<int32_t>(), y.data<int32_t>() + 12), want);
}

TEST(KernelsPadOneHotTest, OneHotRowsAndBadIndex) {
  auto g = test::parseVerified(R"(
    input { name: "k" dtype: INT64 shape { dim: -1 } }
    node { name: "y" op: "one_hot" input: "k" attr { name: "depth" i: 3 } }
    output { name: "y" })");
  ASSERT_TRUE(g);
  Interpreter interp(*g);
  auto out = interp.run({{"k", Tensor::fromVector<int64_t>({2}, {2, 0})}});
  ASSERT_TRUE(out) << out.error().str();
  const Tensor& y = out->at("y");
  ASSERT_EQ(y.type().str(), "float32[2,3]");
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 6), (std::vector<float>{0, 0, 1, 1, 0, 0}));
  auto bad = interp.run({{"k", Tensor::fromVector<int64_t>({1}, {3})}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("index 3 at position 0 is outside [0, 3)"), std::string::npos) << bad.error().str();
}

}  // namespace
}  // namespace kiln
