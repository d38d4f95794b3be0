// Interpreter kernels of the elementwise and activation ops against values worked out by hand
// (with a 1200-digit calculator) from the formulas of chapter11.md.
#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <limits>
#include <map>

#include "TestUtil.h"
#include "runtime/Random.h"

namespace kiln {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInfinity = std::numeric_limits<double>::infinity();

/// A tensor of any dtype from doubles (exact for the values the tests use).
Tensor makeTensor(DType dt, Shape shape, const std::vector<double>& values) {
  Tensor t(dt, std::move(shape));
  EXPECT_EQ(t.size(), static_cast<int64_t>(values.size()));
  for (int64_t i = 0; i < t.size(); ++i) t.setDouble(i, values[static_cast<size_t>(i)]);
  return t;
}

/// Parses, verifies and runs `text`, returning output "y" (an empty tensor after a failure).
Tensor runY(const std::string& text, const std::map<std::string, Tensor>& inputs,
            RunOptions opts = {}) {
  auto g = test::parseVerified(text);
  if (!g) return {};
  Interpreter interp(*g);
  auto r = interp.run(inputs, opts);
  if (!r) {
    ADD_FAILURE() << r.error().str();
    return {};
  }
  return r->at("y");
}

/// The error text of running `text` (empty if it ran).
std::string runError(const std::string& text, const std::map<std::string, Tensor>& inputs) {
  auto g = test::parseVerified(text);
  if (!g) return "does not verify";
  Interpreter interp(*g);
  auto r = interp.run(inputs);
  return r ? "" : r.error().str();
}

/// Checks |got - want| <= rel·|want| + abs element by element (NaN matches NaN only).
void expectClose(const Tensor& got, const std::vector<double>& want, double rel, double abs,
                 const std::string& what) {
  ASSERT_EQ(got.size(), static_cast<int64_t>(want.size())) << what;
  for (int64_t i = 0; i < got.size(); ++i) {
    double g = got.getDouble(i), w = want[static_cast<size_t>(i)];
    if (std::isnan(w)) {
      EXPECT_TRUE(std::isnan(g)) << what << " [" << i << "] = " << g << ", want NaN";
    } else if (std::isinf(w)) {
      EXPECT_EQ(g, w) << what << " [" << i << "]";
    } else {
      EXPECT_LE(std::abs(g - w), rel * std::abs(w) + abs)
          << what << " [" << i << "] = " << std::setprecision(17) << g << ", want " << w;
    }
  }
}

std::string dimsText(const Shape& s) {
  std::string out;
  for (int64_t d : s) out += " dim: " + std::to_string(d);
  return out;
}

/// A graph `y = <node>(x)` for an input x of the given dtype and shape.
std::string unaryGraph(const std::string& node, const std::string& dtype, const Shape& shape) {
  return "input { name: \"x\" dtype: " + dtype + " shape {" + dimsText(shape) +
         " } } node { name: \"y\" " + node + " input: \"x\" } output { name: \"y\" }";
}

/// Runs `y = <node>(x)` on x = xs three ways: float64; float32; float32 widened by
/// Precision::Float64 (which must give a float64 result as exact as the first). The inputs
/// are exact in float32, so every run computes the same mathematical value.
void checkUnary(const std::string& node, const std::vector<double>& xs,
                const std::vector<double>& want, double f32Rel = 1e-6) {
  Shape shape{static_cast<int64_t>(xs.size())};
  Tensor y64 = runY(unaryGraph(node, "FLOAT64", shape), {{"x", Tensor::fromVector(shape, xs)}});
  EXPECT_EQ(y64.dtype(), DType::Float64);
  expectClose(y64, want, 1e-12, 1e-300, node + " float64");

  std::vector<float> xf(xs.begin(), xs.end());
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(double(xf[i]), xs[i]) << "inexact input";
  std::string g32 = unaryGraph(node, "FLOAT32", shape);
  Tensor y32 = runY(g32, {{"x", Tensor::fromVector(shape, xf)}});
  EXPECT_EQ(y32.dtype(), DType::Float32);
  // Below float32's normal range only an absolute bound is meaningful.
  expectClose(y32, want, f32Rel, 1e-37, node + " float32");

  RunOptions wide;
  wide.precision = Precision::Float64;
  Tensor yw = runY(g32, {{"x", Tensor::fromVector(shape, xf)}}, wide);
  EXPECT_EQ(yw.dtype(), DType::Float64);
  expectClose(yw, want, 1e-12, 1e-300, node + " float32 run in float64");
}

/// A graph `y = <op>(x, z)` with x and z of one dtype and the given shapes.
std::string binaryGraph(const std::string& op, const std::string& dtype, const Shape& xs,
                        const Shape& zs) {
  return "input { name: \"x\" dtype: " + dtype + " shape {" + dimsText(xs) +
         " } } input { name: \"z\" dtype: " + dtype + " shape {" + dimsText(zs) +
         " } } node { name: \"y\" op: \"" + op +
         "\" input: \"x\" input: \"z\" } output { name: \"y\" }";
}

Tensor runBinary(const std::string& op, DType dt, const Shape& xShape,
                 const std::vector<double>& x, const Shape& zShape, const std::vector<double>& z) {
  std::string name = dt == DType::Float32   ? "FLOAT32"
                     : dt == DType::Float64 ? "FLOAT64"
                     : dt == DType::Int32   ? "INT32"
                                            : "INT64";
  return runY(binaryGraph(op, name, xShape, zShape),
              {{"x", makeTensor(dt, xShape, x)}, {"z", makeTensor(dt, zShape, z)}});
}

const DType kFloatTypes[] = {DType::Float32, DType::Float64};
const DType kNumericTypes[] = {DType::Float32, DType::Float64, DType::Int32, DType::Int64};

// ---- Broadcasting arithmetic --------------------------------------------------------------

TEST(ElementwiseTest, AddBroadcastsRowOverMatrix) {
  for (DType dt : kNumericTypes) {
    // [[1,2,3],[4,5,6]] + [10,20,30]: the row repeats down both rows.
    Tensor y = runBinary("add", dt, {2, 3}, {1, 2, 3, 4, 5, 6}, {3}, {10, 20, 30});
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(y.shape(), (Shape{2, 3}));
    expectClose(y, {11, 22, 33, 14, 25, 36}, 0, 0, "add");
  }
}

TEST(ElementwiseTest, MulBroadcastsColumnTimesRow) {
  for (DType dt : kNumericTypes) {
    // [[2],[3]] * [[1,10,100]] = outer product [[2,20,200],[3,30,300]].
    Tensor y = runBinary("mul", dt, {2, 1}, {2, 3}, {1, 3}, {1, 10, 100});
    EXPECT_EQ(y.shape(), (Shape{2, 3}));
    expectClose(y, {2, 20, 200, 3, 30, 300}, 0, 0, "mul");
  }
}

TEST(ElementwiseTest, ScalarBroadcastsOnEitherSide) {
  for (DType dt : kFloatTypes) {
    // [5,6,7,8] - 0.5 and 1 / [2,4,8,0.5] (the scalar first).
    expectClose(runBinary("sub", dt, {2, 2}, {5, 6, 7, 8}, {}, {0.5}), {4.5, 5.5, 6.5, 7.5}, 0,
                0, "sub");
    expectClose(runBinary("div", dt, {}, {1}, {2, 2}, {2, 4, 8, 0.5}), {0.5, 0.25, 0.125, 2}, 0,
                0, "div");
  }
}

TEST(ElementwiseTest, BatchDimensionBindsAtRunTime) {
  std::string g =
      "input { name: \"x\" dtype: FLOAT32 shape { dim: -1 dim: 3 } }"
      "input { name: \"b\" dtype: FLOAT32 shape { dim: 3 } }"
      "node { name: \"y\" op: \"add\" input: \"x\" input: \"b\" } output { name: \"y\" }";
  Tensor y = runY(g, {{"x", Tensor::fromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6})},
                      {"b", Tensor::fromVector<float>({3}, {0.5, 0.25, -1})}});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  expectClose(y, {1.5, 2.25, 2, 4.5, 5.25, 5}, 0, 0, "add with batch");
}

TEST(ElementwiseTest, FloatDivisionFollowsIeee) {
  for (DType dt : kFloatTypes) {
    // 1/4, -7/2, 1/0 = +inf, -1/0 = -inf, 0/0 = NaN.
    expectClose(runBinary("div", dt, {5}, {1, -7, 1, -1, 0}, {5}, {4, 2, 0, 0, 0}),
                {0.25, -3.5, kInfinity, -kInfinity, kNaN}, 0, 0, "div");
  }
}

TEST(ElementwiseTest, IntegerArithmetic) {
  for (DType dt : {DType::Int32, DType::Int64}) {
    std::vector<double> x{7, -7, 3, 0}, z{2, 2, -4, 5};
    expectClose(runBinary("add", dt, {4}, x, {4}, z), {9, -5, -1, 5}, 0, 0, "add");
    expectClose(runBinary("sub", dt, {4}, x, {4}, z), {5, -9, 7, -5}, 0, 0, "sub");
    expectClose(runBinary("mul", dt, {4}, x, {4}, z), {14, -14, -12, 0}, 0, 0, "mul");
    // Truncation toward zero: 7/2 = 3, -7/2 = -3, 3/-4 = 0, 0/5 = 0.
    expectClose(runBinary("div", dt, {4}, x, {4}, z), {3, -3, 0, 0}, 0, 0, "div");
    expectClose(runBinary("maximum", dt, {4}, x, {4}, z), {7, 2, 3, 5}, 0, 0, "maximum");
    expectClose(runBinary("minimum", dt, {4}, x, {4}, z), {2, -7, -4, 0}, 0, 0, "minimum");
    EXPECT_EQ(runBinary("add", dt, {4}, x, {4}, z).dtype(), dt);
  }
  // int64 keeps values beyond 2^53's neighbourhood of float exactness: 2^40 * 3 + 2^40.
  double big = 1099511627776.0;  // 2^40
  expectClose(runBinary("mul", DType::Int64, {1}, {big}, {1}, {3}), {3 * big}, 0, 0, "mul64");
  // Overflow wraps around (two's complement): 2147483647 + 1 = -2147483648; -(-2^31) / -1 too.
  expectClose(runBinary("add", DType::Int32, {1}, {2147483647}, {1}, {1}), {-2147483648.0}, 0, 0,
              "add wraps");
  expectClose(runBinary("div", DType::Int32, {1}, {-2147483648.0}, {1}, {-1}), {-2147483648.0},
              0, 0, "div wraps");
}

TEST(ElementwiseTest, IntegerDivisionByZeroIsAnError) {
  std::string g = binaryGraph("div", "INT32", {2}, {2});
  std::string err = runError(g, {{"x", Tensor::fromVector<int32_t>({2}, {4, 5})},
                                 {"z", Tensor::fromVector<int32_t>({2}, {1, 0})}});
  EXPECT_NE(err.find("integer division by zero"), std::string::npos) << err;
  EXPECT_NE(err.find("'y'"), std::string::npos) << err;
}

TEST(ElementwiseTest, MaximumAndMinimumPropagateNaN) {
  for (DType dt : kFloatTypes) {
    std::vector<double> x{1, kNaN, -2, -0.5}, z{0, 5, kNaN, 0.25};
    expectClose(runBinary("maximum", dt, {4}, x, {4}, z), {1, kNaN, kNaN, 0.25}, 0, 0, "maximum");
    expectClose(runBinary("minimum", dt, {4}, x, {4}, z), {0, kNaN, kNaN, -0.5}, 0, 0, "minimum");
  }
}

TEST(ElementwiseTest, PowBroadcasts) {
  for (DType dt : kFloatTypes) {
    double rel = dt == DType::Float32 ? 1e-6 : 1e-15;
    // [[2, 9], [3, 0.5]] ^ [0.5, -1]: sqrt 2 = 1.4142135623730950, 9^-1 = 1/9,
    // sqrt 3 = 1.7320508075688772, 0.5^-1 = 2.
    expectClose(runBinary("pow", dt, {2, 2}, {2, 9, 3, 0.5}, {2}, {0.5, -1}),
                {1.4142135623730950, 0.11111111111111111, 1.7320508075688772, 2}, rel, 0, "pow");
    // 0.5^3 = 0.125, 4^1.5 = 8, 2^10 = 1024.
    expectClose(runBinary("pow", dt, {3}, {0.5, 4, 2}, {3}, {3, 1.5, 10}), {0.125, 8, 1024}, rel,
                0, "pow");
  }
}

// ---- Unary arithmetic ---------------------------------------------------------------------

TEST(ElementwiseTest, NegAndAbsOnEveryNumericType) {
  for (DType dt : kNumericTypes) {
    std::string name = dt == DType::Float32   ? "FLOAT32"
                       : dt == DType::Float64 ? "FLOAT64"
                       : dt == DType::Int32   ? "INT32"
                                              : "INT64";
    Tensor x = makeTensor(dt, {4}, {-3, 0, 4, -1});
    Tensor neg = runY(unaryGraph("op: \"neg\"", name, {4}), {{"x", x}});
    EXPECT_EQ(neg.dtype(), dt);
    expectClose(neg, {3, 0, -4, 1}, 0, 0, "neg");
    expectClose(runY(unaryGraph("op: \"abs\"", name, {4}), {{"x", x}}), {3, 0, 4, 1}, 0, 0, "abs");
  }
  checkUnary("op: \"neg\"", {-1.5, 0.25}, {1.5, -0.25});
  checkUnary("op: \"abs\"", {-1.5, 0.25}, {1.5, 0.25});
}

TEST(ElementwiseTest, ExpLogSqrtRsqrtSquareErf) {
  // e^-1, e^0, e^0.5 = sqrt(e), e^2.
  checkUnary("op: \"exp\"", {-1, 0, 0.5, 2},
             {0.36787944117144232, 1, 1.6487212707001281, 7.3890560989306502});
  // ln 0.25 = -2 ln 2, ln 1, ln 2, ln 10.
  checkUnary("op: \"log\"", {0.25, 1, 2, 10},
             {-1.3862943611198906, 0, 0.69314718055994531, 2.3025850929940457});
  checkUnary("op: \"sqrt\"", {0.25, 2, 9}, {0.5, 1.4142135623730950, 3});
  // 1/sqrt(0.25) = 2, 1/sqrt 2 = sqrt(2)/2, 1/sqrt 4 = 0.5.
  checkUnary("op: \"rsqrt\"", {0.25, 2, 4}, {2, 0.70710678118654752, 0.5});
  checkUnary("op: \"square\"", {-1.5, 3, 0.125}, {2.25, 9, 0.015625});
  // erf is odd: erf(-1) = -erf(1).
  checkUnary("op: \"erf\"", {-1, 0.5, 2, 0},
             {-0.84270079294971487, 0.52049987781304654, 0.99532226501895273, 0});
}

// ---- Comparisons and select ---------------------------------------------------------------

TEST(ElementwiseTest, ComparisonsBroadcastToBool) {
  // x = [[1,2,3],[4,5,6]] against the row [2,2,7]: pairs (1,2) (2,2) (3,7) / (4,2) (5,2) (6,7).
  const std::map<std::string, std::vector<double>> want{
      {"equal", {0, 1, 0, 0, 0, 0}},         {"not_equal", {1, 0, 1, 1, 1, 1}},
      {"less", {1, 0, 1, 0, 0, 1}},          {"less_equal", {1, 1, 1, 0, 0, 1}},
      {"greater", {0, 0, 0, 1, 1, 0}},       {"greater_equal", {0, 1, 0, 1, 1, 0}}};
  for (DType dt : kNumericTypes) {
    for (const auto& [op, expected] : want) {
      Tensor y = runBinary(op, dt, {2, 3}, {1, 2, 3, 4, 5, 6}, {3}, {2, 2, 7});
      EXPECT_EQ(y.dtype(), DType::Bool) << op;
      EXPECT_EQ(y.shape(), (Shape{2, 3})) << op;
      expectClose(y, expected, 0, 0, op + " on " + std::string(dtypeName(dt)));
    }
  }
  // NaN is unordered: every comparison but not_equal is false.
  expectClose(runBinary("equal", DType::Float64, {1}, {kNaN}, {1}, {kNaN}), {0}, 0, 0, "NaN");
  expectClose(runBinary("not_equal", DType::Float64, {1}, {kNaN}, {1}, {kNaN}), {1}, 0, 0, "NaN");
  expectClose(runBinary("less_equal", DType::Float64, {1}, {kNaN}, {1}, {1}), {0}, 0, 0, "NaN");
}

TEST(ElementwiseTest, ComparisonsOfBools) {
  // less([1,2,3],[2,2,2]) = [T,F,F], greater = [F,F,T]; equal of those = [F,T,F].
  std::string g =
      "input { name: \"a\" dtype: FLOAT32 shape { dim: 3 } }"
      "input { name: \"b\" dtype: FLOAT32 shape { dim: 3 } }"
      "node { name: \"lt\" op: \"less\" input: \"a\" input: \"b\" }"
      "node { name: \"gt\" op: \"greater\" input: \"a\" input: \"b\" }"
      "node { name: \"y\" op: \"equal\" input: \"lt\" input: \"gt\" } output { name: \"y\" }";
  Tensor y = runY(g, {{"a", Tensor::fromVector<float>({3}, {1, 2, 3})},
                      {"b", Tensor::fromVector<float>({3}, {2, 2, 2})}});
  EXPECT_EQ(y.dtype(), DType::Bool);
  expectClose(y, {0, 1, 0}, 0, 0, "equal on bool");
}

TEST(ElementwiseTest, SelectBroadcastsAllThreeOperands) {
  // cond = x < 3 with x = [[1,5,3],[4,2,6]]: [[T,F,F],[F,T,F]]; on_true a row [10,20,30],
  // on_false a column [[-1],[-2]].
  std::string g =
      "input { name: \"x\" dtype: FLOAT64 shape { dim: 2 dim: 3 } }"
      "input { name: \"t\" dtype: FLOAT64 shape { } }"
      "input { name: \"a\" dtype: FLOAT64 shape { dim: 3 } }"
      "input { name: \"b\" dtype: FLOAT64 shape { dim: 2 dim: 1 } }"
      "node { name: \"c\" op: \"less\" input: \"x\" input: \"t\" }"
      "node { name: \"y\" op: \"select\" input: \"c\" input: \"a\" input: \"b\" }"
      "output { name: \"y\" }";
  Tensor y = runY(g, {{"x", Tensor::fromVector<double>({2, 3}, {1, 5, 3, 4, 2, 6})},
                      {"t", Tensor::scalar<double>(3)},
                      {"a", Tensor::fromVector<double>({3}, {10, 20, 30})},
                      {"b", Tensor::fromVector<double>({2, 1}, {-1, -2})}});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  expectClose(y, {10, -1, -1, -2, 20, -2}, 0, 0, "select");

  // A row condition [p < q] = [T,F,T] over int32 matrices.
  std::string g2 =
      "input { name: \"p\" dtype: INT32 shape { dim: 3 } }"
      "input { name: \"q\" dtype: INT32 shape { dim: 3 } }"
      "input { name: \"a\" dtype: INT32 shape { dim: 2 dim: 3 } }"
      "input { name: \"b\" dtype: INT32 shape { dim: 2 dim: 3 } }"
      "node { name: \"c\" op: \"less\" input: \"p\" input: \"q\" }"
      "node { name: \"y\" op: \"select\" input: \"c\" input: \"a\" input: \"b\" }"
      "output { name: \"y\" }";
  Tensor y2 = runY(g2, {{"p", Tensor::fromVector<int32_t>({3}, {0, 1, 0})},
                        {"q", Tensor::fromVector<int32_t>({3}, {1, 0, 1})},
                        {"a", Tensor::fromVector<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6})},
                        {"b", Tensor::fromVector<int32_t>({2, 3}, {-1, -2, -3, -4, -5, -6})}});
  EXPECT_EQ(y2.dtype(), DType::Int32);
  expectClose(y2, {1, -2, 3, 4, -5, 6}, 0, 0, "select int32");
}

// ---- Activations --------------------------------------------------------------------------

TEST(ElementwiseTest, SigmoidIsStableAtTheExtremes) {
  // 1/(1+e^1000) = e^-1000 underflows to 0 (not NaN); 1/(1+e^88.75) = 2.8599914255498719e-39
  // is a subnormal in float32; 1/(1+e) = 0.26894142136999512; 1/(1+e^-2) = 0.88079707797788244.
  checkUnary("op: \"sigmoid\"", {-1000, -88.75, -1, 0, 2, 88.75, 1000},
             {0, 2.8599914255498719e-39, 0.26894142136999512, 0.5, 0.88079707797788244, 1, 1});
}

TEST(ElementwiseTest, TanhAndRelu) {
  checkUnary("op: \"tanh\"", {-1000, -0.5, 0, 1, 1000},
             {-1, -0.46211715726000976, 0, 0.76159415595576489, 1});
  checkUnary("op: \"relu\"", {-1000, -2, 0, 3.5, 1000}, {0, 0, 0, 3.5, 1000});
}

TEST(ElementwiseTest, LeakyReluDefaultAndHugeLeak) {
  // Default α = 0.01: -2 → -0.02; α = 0.2: -2 → -0.4, -1000 → -200.
  checkUnary("op: \"leaky_relu\"", {-2, 0, 3}, {-0.02, 0, 3});
  checkUnary("op: \"leaky_relu\" attr { name: \"alpha\" f: 0.2 }", {-1000, -2, 0, 3},
             {-200, -0.4, 0, 3});
}

TEST(ElementwiseTest, RReluInferenceUsesTheMeanAlpha) {
  // Defaults lower = 1/8, upper = 1/3: α = (1/8 + 1/3)/2 = 11/48; -2·11/48 = -0.458333...
  checkUnary("op: \"rrelu\"", {-2, 0, 3}, {-0.45833333333333333, 0, 3});
  // lower = 0.1, upper = 0.3: α = 0.2.
  checkUnary(
      "op: \"rrelu\" attr { name: \"lower\" f: 0.1 } attr { name: \"upper\" f: 0.3 }",
      {-1000, -0.5, 4}, {-200, -0.1, 4});
}

TEST(ElementwiseTest, PReluHasOneAlphaPerUnit) {
  // x = [[-1,-2,3],[4,-8,-0.5]], α = [0.25, 0.5, 0.125] per column:
  // [[-0.25, -1, 3], [4, -4, -0.0625]].
  for (const char* dt : {"FLOAT32", "FLOAT64"}) {
    std::string g = std::string("input { name: \"x\" dtype: ") + dt +
                    " shape { dim: 2 dim: 3 } } input { name: \"alpha\" dtype: " + dt +
                    " shape { dim: 3 } } node { name: \"y\" op: \"prelu\" input: \"x\" "
                    "input: \"alpha\" } output { name: \"y\" }";
    DType t = std::string(dt) == "FLOAT32" ? DType::Float32 : DType::Float64;
    Tensor y = runY(g, {{"x", makeTensor(t, {2, 3}, {-1, -2, 3, 4, -8, -0.5})},
                        {"alpha", makeTensor(t, {3}, {0.25, 0.5, 0.125})}});
    expectClose(y, {-0.25, -1, 3, 4, -4, -0.0625}, 0, 0, std::string("prelu ") + dt);
  }
}

TEST(ElementwiseTest, EluUsesExpm1) {
  // α(e^z - 1): e^-1 - 1 = -0.63212055882855768; at z = -2^-30 the exact value
  // -9.3132257418179765e-10 (= -2^-30 + 2^-61 - ...) needs expm1 to keep 12 digits.
  checkUnary("op: \"elu\"", {-1000, -1, -0x1p-30, 0, 2},
             {-1, -0.63212055882855768, -9.3132257418179765e-10, 0, 2});
  checkUnary("op: \"elu\" attr { name: \"alpha\" f: 0.5 }", {-1000, -1, -0x1p-30, 0, 2},
             {-0.5, -0.31606027941427884, -4.6566128709089882e-10, 0, 2});
}

TEST(ElementwiseTest, SeluUsesTheSelfNormalizingConstants) {
  // λα = 1.0507009873554805 · 1.6732632423543772 = 1.7580993408473768 (the -∞ limit);
  // λα(e^-1 - 1) = -1.1113307378125627; λ·1.5 = 1.5760514810332207; λ·1000.
  checkUnary("op: \"selu\"", {-1000, -1, 0, 1.5, 1000},
             {-1.7580993408473768, -1.1113307378125627, 0, 1.5760514810332207,
              1050.7009873554805});
}

TEST(ElementwiseTest, GeluExact) {
  // 0.5z(1 + erf(z/√2)): at z = -10 it is -10·Φ(-10) = -7.6198530241605261e-23, which the
  // naive 1 + erf form rounds to 0; z = -1000 underflows to 0.
  checkUnary("op: \"gelu\"", {-1000, -10, -3, -0.5, 0, 1, 1000},
             {0, -7.6198530241605261e-23, -0.0040496940948902836, -0.15426876936299345, 0,
              0.84134474606854295, 1000});
}

TEST(ElementwiseTest, GeluTanhApproximation) {
  // 0.5z(1 + tanh(√(2/π)(z + 0.044715z³))): z = -10 gives u = -43.656..., so the value is
  // -10/(1+e^87.31) = -1.204092348209806e-37.
  checkUnary("op: \"gelu\" attr { name: \"approximate\" s: \"tanh\" }",
             {-1000, -10, -3, -0.5, 0, 1, 1000},
             {0, -1.204092348209806e-37, -0.0036373920817730188, -0.15428599017485608, 0,
              0.8411919906082767, 1000});
}

TEST(ElementwiseTest, GeluSigmoidApproximation) {
  // z·σ(1.702z): -10·σ(-17.02) = -4.05796129485531e-7, -3·σ(-5.106) = -0.018071309707785967.
  checkUnary("op: \"gelu\" attr { name: \"approximate\" s: \"sigmoid\" }",
             {-1000, -10, -3, -0.5, 0, 1, 1000},
             {0, -4.05796129485531e-7, -0.018071309707785967, -0.14961156339361988, 0,
              0.8457957659328213, 1000});
}

TEST(ElementwiseTest, SwishWithFixedBeta) {
  // β = 1 (SiLU): -3σ(-3) = -0.14227761953270034, 1·σ(1) = 0.73105857863000488.
  checkUnary("op: \"swish\"", {-1000, -3, -0.5, 0, 1, 1000},
             {0, -0.14227761953270034, -0.18877033439907272, 0, 0.73105857863000488, 1000});
  // β = 2: -3σ(-6) = -0.007417869469904323, 1·σ(2) = 0.88079707797788244.
  checkUnary("op: \"swish\" attr { name: \"beta\" f: 2 }", {-1000, -3, -0.5, 0, 1, 1000},
             {0, -0.007417869469904323, -0.13447071068499756, 0, 0.88079707797788244, 1000});
}

TEST(ElementwiseTest, SwishLearnableBetaOverridesTheAttribute) {
  // The operand β = 0.5 wins over the attribute's 5: -3σ(-1.5) = -0.54727657141906902,
  // 1·σ(0.5) = 0.62245933120185456.
  const std::vector<double> want{-7.1245764067412855e-215, -0.54727657141906902, -0.21891174955710095, 0,
                                 0.62245933120185456, 1000};
  for (const char* betaShape : {"shape { dim: 1 }", "shape { }"}) {
    std::string g = std::string(
                        "input { name: \"x\" dtype: FLOAT64 shape { dim: 6 } }"
                        "input { name: \"beta\" dtype: FLOAT64 ") +
                    betaShape +
                    " } node { name: \"y\" op: \"swish\" input: \"x\" input: \"beta\" "
                    "attr { name: \"beta\" f: 5 } } output { name: \"y\" }";
    Shape bs = std::string(betaShape) == "shape { }" ? Shape{} : Shape{1};
    Tensor y = runY(g, {{"x", Tensor::fromVector<double>({6}, {-1000, -3, -0.5, 0, 1, 1000})},
                        {"beta", Tensor::fromVector<double>(bs, {0.5})}});
    expectClose(y, want, 1e-12, 1e-300, std::string("swish with beta ") + betaShape);
  }
}

TEST(ElementwiseTest, MishAndSoftplusAreStable) {
  // softplus: log(1+e^-1000) = e^-1000 underflows to 0; log(1+e^-20) = 2.0611536203143807e-9
  // (needs log1p); log 2; log(1+e) = 1.3132616875182228; 1000 + log(1+e^-1000) = 1000.
  checkUnary("op: \"softplus\"", {-1000, -20, 0, 1, 1000},
             {0, 2.0611536203143807e-9, 0.69314718055994531, 1.3132616875182228, 1000});
  // mish: z·tanh(softplus z): -2·tanh(log(1+e^-2)) = -0.25250148269570886,
  // tanh(log(1+e)) = 0.86509838826731035.
  checkUnary("op: \"mish\"", {-1000, -2, 0, 1, 1000},
             {0, -0.25250148269570886, 0, 0.86509838826731035, 1000});
}

// ---- Random ops: dropout, alpha dropout, rrelu in training --------------------------------

constexpr int64_t kBig = 100000;

Tensor runRandom(const std::string& node, const Tensor& x, uint64_t seed, int64_t step) {
  RunOptions opts;
  opts.seed = seed;
  opts.step = step;
  return runY(unaryGraph(node, "FLOAT64", x.shape()), {{"x", x}}, opts);
}

Tensor standardNormal(int64_t n) {
  Tensor t(DType::Float64, {n});
  rt::RandomStream rs(/*seed=*/99, /*stream=*/7);
  for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = rs.normal(static_cast<uint64_t>(i));
  return t;
}

bool sameValues(const Tensor& a, const Tensor& b) {
  if (a.size() != b.size()) return false;
  for (int64_t i = 0; i < a.size(); ++i)
    if (a.getDouble(i) != b.getDouble(i)) return false;
  return true;
}

TEST(ElementwiseTest, DropoutInferenceIsIdentity) {
  checkUnary("op: \"dropout\" attr { name: \"rate\" f: 0.5 }", {-1000, -1.5, 0, 2},
             {-1000, -1.5, 0, 2});
  checkUnary("op: \"alpha_dropout\" attr { name: \"rate\" f: 0.5 }", {-1000, -1.5, 0, 2},
             {-1000, -1.5, 0, 2});
}

TEST(ElementwiseTest, DropoutTrainingKeepsAndScales) {
  const std::string node =
      "op: \"dropout\" attr { name: \"rate\" f: 0.3 } attr { name: \"training\" b: true }";
  Tensor ones = makeTensor(DType::Float64, {kBig}, std::vector<double>(kBig, 1.0));
  Tensor y = runRandom(node, ones, /*seed=*/1, /*step=*/5);
  int64_t kept = 0;
  double sum = 0;
  for (int64_t i = 0; i < kBig; ++i) {
    double v = y.data<double>()[i];
    // A kept unit is 1/(1-0.3) = 1/0.7 = 1.4285714285714286; a dropped one 0.
    if (v != 0) {
      ASSERT_NEAR(v, 1.4285714285714286, 1e-15);
      ++kept;
    }
    sum += v;
  }
  EXPECT_NEAR(double(kept) / kBig, 0.7, 0.01);
  EXPECT_NEAR(sum / kBig, 1.0, 0.01);  // The scaling preserves the mean.

  EXPECT_TRUE(sameValues(y, runRandom(node, ones, 1, 5))) << "same seed and step";
  EXPECT_FALSE(sameValues(y, runRandom(node, ones, 1, 6))) << "next step";
  EXPECT_FALSE(sameValues(y, runRandom(node, ones, 2, 5))) << "other seed";
  // rate 0 keeps everything.
  Tensor all = runRandom("op: \"dropout\" attr { name: \"rate\" f: 0 } "
                         "attr { name: \"training\" b: true }",
                         ones, 1, 5);
  EXPECT_TRUE(sameValues(all, ones));
}

TEST(ElementwiseTest, AlphaDropoutTrainingKeepsMeanAndVariance) {
  // rate p = 0.1, α' = -λα = -1.7580993408473768:
  // a = ((1-p)(1 + p·α'²))^(-1/2) = (0.9 · 1.30909...)^(-1/2) = 0.92128451614971149,
  // b = -a·α'·p = 0.16197097005757022; a dropped unit becomes a·α' + b = -1.457738730518132.
  const double a = 0.92128451614971149, b = 0.16197097005757022, dropped = -1.457738730518132;
  const std::string node =
      "op: \"alpha_dropout\" attr { name: \"rate\" f: 0.1 } attr { name: \"training\" b: true }";
  Tensor x = standardNormal(kBig);
  Tensor y = runRandom(node, x, /*seed=*/3, /*step=*/0);
  int64_t nDropped = 0;
  double sum = 0, sumSq = 0;
  for (int64_t i = 0; i < kBig; ++i) {
    double v = y.data<double>()[i], xi = x.data<double>()[i];
    if (std::abs(v - dropped) <= 1e-14) ++nDropped;
    else ASSERT_NEAR(v, a * xi + b, 1e-14) << "kept unit " << i;
    sum += v;
    sumSq += v * v;
  }
  double mean = sum / kBig, var = sumSq / kBig - mean * mean;
  EXPECT_NEAR(double(nDropped) / kBig, 0.1, 0.01);
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.03);

  EXPECT_TRUE(sameValues(y, runRandom(node, x, 3, 0)));
  EXPECT_FALSE(sameValues(y, runRandom(node, x, 3, 1)));
}

TEST(ElementwiseTest, RReluTrainingDrawsAlphaPerElement) {
  const std::string node =
      "op: \"rrelu\" attr { name: \"lower\" f: 0.125 } attr { name: \"upper\" f: 0.375 } "
      "attr { name: \"training\" b: true }";
  // Negative units give -α directly; positive ones pass through.
  std::vector<double> xs(kBig, -1.0);
  for (int64_t i = 0; i < kBig; i += 10) xs[static_cast<size_t>(i)] = 2.0;
  Tensor x = makeTensor(DType::Float64, {kBig}, xs);
  Tensor y = runRandom(node, x, /*seed=*/4, /*step=*/2);
  double sumAlpha = 0;
  int64_t negatives = 0;
  for (int64_t i = 0; i < kBig; ++i) {
    double v = y.data<double>()[i];
    if (xs[static_cast<size_t>(i)] > 0) {
      ASSERT_EQ(v, 2.0);
      continue;
    }
    ASSERT_GE(-v, 0.125);
    ASSERT_LE(-v, 0.375);
    sumAlpha += -v;
    ++negatives;
  }
  // U(1/8, 3/8) has mean 1/4.
  EXPECT_NEAR(sumAlpha / double(negatives), 0.25, 0.0025);
  EXPECT_TRUE(sameValues(y, runRandom(node, x, 4, 2)));
  EXPECT_FALSE(sameValues(y, runRandom(node, x, 4, 3)));
}

}  // namespace
}  // namespace kiln
