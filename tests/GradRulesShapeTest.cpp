// Gradient rules of the reductions and data-movement ops, checked by central finite differences
// in float64 (tests/GradCheck.h) for every attribute variant; reduce_max at ties against the rule.
#include <gtest/gtest.h>

#include "GradCheck.h"

namespace kiln {
namespace {

/// `input { name: ... dtype: FLOAT64 shape { dim: ... } }`
std::string input(const std::string& name, const Shape& shape) {
  std::string s = "input { name: \"" + name + "\" dtype: FLOAT64 shape {";
  for (int64_t d : shape) s += " dim: " + std::to_string(d);
  return s + " } }\n";
}

/// A graph `y = op(x, attrs)` over one float64 input x of `shape`, with output y.
std::string unaryGraph(const std::string& op, const Shape& shape, const std::string& attrs) {
  return input("x", shape) + "node { name: \"y\" op: \"" + op + "\" input: \"x\" " + attrs +
         " }\noutput { name: \"y\" }\n";
}

/// Checks d/dx of `y = op(x)` on random x of `shape` and prints its GRADCHECK line.
void checkUnary(const std::string& op, const std::string& variant, const Shape& shape,
                const std::string& attrs, uint32_t seed = 1) {
  SCOPED_TRACE(op + " " + variant);
  auto r = test::checkGradient(unaryGraph(op, shape, attrs), {{"x", test::randomTensor(shape, seed)}},
                               {"x"}, 1e-6);
  test::reportGradCheck(op, variant, r);
}

// ---- Reductions --------------------------------------------------------------------------------

TEST(GradRulesShape, ReduceSum) {
  checkUnary("reduce_sum", "axes=[1]", {2, 3, 4}, R"(attr { name: "axes" ints { v: 1 } })");
  checkUnary("reduce_sum", "axes=[0,-1],keepdims", {2, 3, 4},
             R"(attr { name: "axes" ints { v: 0 v: -1 } } attr { name: "keepdims" b: true })");
  checkUnary("reduce_sum", "all", {2, 3, 4}, "");
  checkUnary("reduce_sum", "all,keepdims", {3, 4}, R"(attr { name: "keepdims" b: true })");
}

TEST(GradRulesShape, ReduceMean) {
  checkUnary("reduce_mean", "axes=[1]", {2, 3, 4}, R"(attr { name: "axes" ints { v: 1 } })");
  checkUnary("reduce_mean", "axes=[0,-1],keepdims", {2, 3, 4},
             R"(attr { name: "axes" ints { v: 0 v: -1 } } attr { name: "keepdims" b: true })");
  checkUnary("reduce_mean", "all", {2, 3, 4}, "");
  checkUnary("reduce_mean", "all,keepdims", {3, 4}, R"(attr { name: "keepdims" b: true })");
}

// Random values have no ties, so the gradient is one-hot at each group's maximum.
TEST(GradRulesShape, ReduceMaxWithoutTies) {
  checkUnary("reduce_max", "axes=[1]", {2, 3, 4}, R"(attr { name: "axes" ints { v: 1 } })");
  checkUnary("reduce_max", "axes=[0,-1],keepdims", {2, 3, 4},
             R"(attr { name: "axes" ints { v: 0 v: -1 } } attr { name: "keepdims" b: true })");
  checkUnary("reduce_max", "all", {3, 4}, "");
}

// At a tie the maximum has no derivative (central differences measure one-sided slopes), so the
// rule's choice is checked directly: the tied elements share their group's gradient equally.
TEST(GradRulesShape, ReduceMaxTiesShareTheGradient) {
  auto g = test::parseVerified(unaryGraph("reduce_max", {2, 4}, R"(attr { name: "axes" ints { v: 1 } })"));
  ASSERT_TRUE(g);
  Builder b(*g);
  // loss = 3·y0 + 5·y1, so g = [3, 5].
  Value* w = b.constant({3, 5}, {2}, DType::Float64);
  Value* loss = b.reduceSum(b.mul(g->findValue("y"), w), {});
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  auto grads = differentiate(*g, loss, {g->findValue("x")});
  ASSERT_TRUE(grads) << grads.error().str();
  g->clearOutputs();
  g->addOutput("dx", grads->grads[0]);
  ASSERT_TRUE(verifyGraph(*g));
  Interpreter interp(*g);
  // Row 0: three-way tie at 2; row 1: two-way tie at 7 (and a smaller value equal to another).
  auto out = interp.run({{"x", Tensor::fromVector<double>({2, 4}, {2, 1, 2, 2, 7, -1, 7, -1})}},
                        {.precision = Precision::Float64});
  ASSERT_TRUE(out) << out.error().str();
  std::vector<double> want{1, 0, 1, 1, 2.5, 0, 2.5, 0};  // 3/3 at each of three; 5/2 at each of two
  const Tensor& dx = out->at("dx");
  for (int64_t i = 0; i < dx.size(); ++i) EXPECT_DOUBLE_EQ(dx.getDouble(i), want[i]) << "element " << i;
}

// ---- Data movement -----------------------------------------------------------------------------

TEST(GradRulesShape, ReshapeAndFlatten) {
  checkUnary("reshape", "[2,3,4]->[4,-1]", {2, 3, 4}, R"(attr { name: "shape" ints { v: 4 v: -1 } })");
  checkUnary("reshape", "[6]->[3,1,2]", {6}, R"(attr { name: "shape" ints { v: 3 v: 1 v: 2 } })");
  checkUnary("flatten", "axis=1", {2, 3, 4}, "");
  checkUnary("flatten", "axis=2", {2, 3, 4}, R"(attr { name: "axis" i: 2 })");
  checkUnary("flatten", "axis=0", {2, 3}, R"(attr { name: "axis" i: 0 })");
}

TEST(GradRulesShape, TransposeRank3) {
  checkUnary("transpose", "perm=[2,0,1]", {2, 3, 4}, R"(attr { name: "perm" ints { v: 2 v: 0 v: 1 } })");
  checkUnary("transpose", "perm=[1,2,0]", {2, 3, 4}, R"(attr { name: "perm" ints { v: 1 v: 2 v: 0 } })");
  checkUnary("transpose", "reverse", {2, 3, 4}, "");
}

TEST(GradRulesShape, ConcatOfThree) {
  for (int axis : {1, -1, 0}) {
    // Sizes 1, 2, 3 along the concat axis; the other axis is 2.
    auto shapeOf = [&](int64_t d) { return axis == 0 ? Shape{d, 2} : Shape{2, d}; };
    std::string text = input("a", shapeOf(1)) + input("b", shapeOf(2)) + input("c", shapeOf(3)) +
                       R"(node { name: "y" op: "concat" input: "a" input: "b" input: "c"
                                 attr { name: "axis" i: )" +
                       std::to_string(axis) + " } }\noutput { name: \"y\" }\n";
    std::string variant = "3 operands,axis=" + std::to_string(axis);
    SCOPED_TRACE(variant);
    auto r = test::checkGradient(text,
                                 {{"a", test::randomTensor(shapeOf(1), 1)},
                                  {"b", test::randomTensor(shapeOf(2), 2)},
                                  {"c", test::randomTensor(shapeOf(3), 3)}},
                                 {"a", "b", "c"}, 1e-6);
    test::reportGradCheck("concat", variant, r);
  }
}

TEST(GradRulesShape, Slice) {
  // Rows [-2, 100) = [2, 4) of 4 (clamped), columns [1, -1) = [1, 4) of 5.
  checkUnary("slice", "negative+clamped", {4, 5},
             R"(attr { name: "starts" ints { v: -2 v: 1 } } attr { name: "ends" ints { v: 100 v: -1 } })");
  checkUnary("slice", "axes=[-1]", {2, 3, 5},
             R"(attr { name: "starts" ints { v: -4 } } attr { name: "ends" ints { v: -1 } }
                attr { name: "axes" ints { v: -1 } })");
}

TEST(GradRulesShape, Pad) {
  checkUnary("pad", "before=[1,0],after=[2,3]", {2, 3},
             R"(attr { name: "before" ints { v: 1 v: 0 } } attr { name: "after" ints { v: 2 v: 3 } })");
  checkUnary("pad", "one axis of three", {2, 3, 2},
             R"(attr { name: "before" ints { v: 0 v: 2 v: 0 } } attr { name: "after" ints { v: 0 v: 1 v: 0 } })");
}

}  // namespace
}  // namespace kiln
