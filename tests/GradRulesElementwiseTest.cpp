// Gradient rules of the elementwise, broadcast and activation ops (GradRulesElementwise.cpp),
// checked by central finite differences in float64: one check per op and attribute variant.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "GradCheck.h"
#include "compiler/autodiff/GradRules.h"

namespace kiln {
namespace {

using test::checkGradient;
using test::randomTensor;
using test::reportGradCheck;

// Relative to max(1, |numeric|). Central differences with h = 1e-6·max(1, |x|) in float64 are
// good to about 1e-9 on these smooth functions, so every op meets it; none needs a looser bound.
constexpr double kTol = 1e-6;

std::string dims(const Shape& s) {
  std::string out;
  for (int64_t d : s) out += " dim: " + std::to_string(d);
  return out;
}

std::string input(const std::string& name, const Shape& s) {
  return "input { name: \"" + name + "\" dtype: FLOAT64 shape {" + dims(s) + " } } ";
}

std::string attrF(const std::string& name, double v) {
  return " attr { name: \"" + name + "\" f: " + std::to_string(v) + " }";
}
std::string attrS(const std::string& name, const std::string& v) {
  return " attr { name: \"" + name + "\" s: \"" + v + "\" }";
}
const std::string kTraining = " attr { name: \"training\" b: true }";

/// Where to draw random inputs: [lo, hi], at least `gap` away from each point of `avoid`.
struct Range {
  double lo = -2, hi = 2;
  std::vector<double> avoid = {};
  double gap = 0.05;
};
const Range kAwayFrom0{-2, 2, {0}, 0.05};
const Range kPositive{0.2, 3};

Tensor draw(const Shape& s, uint32_t seed, const Range& r) {
  return randomTensor(s, seed, r.lo, r.hi, r.avoid, r.gap);
}

Tensor values(const Shape& s, const std::vector<double>& v, DType dt = DType::Float64) {
  Tensor t(dt, s);
  for (int64_t i = 0; i < t.size(); ++i) t.setDouble(i, v[static_cast<size_t>(i)]);
  return t;
}

/// `y = <opAndAttrs>(x)` for x of `shape`.
std::string unaryGraph(const std::string& opAndAttrs, const Shape& shape = {2, 3},
                       const std::string& dtype = "FLOAT64") {
  return "input { name: \"x\" dtype: " + dtype + " shape {" + dims(shape) +
         " } } node { name: \"y\" " + opAndAttrs + " input: \"x\" } output { name: \"y\" }";
}

/// Checks d/dx of y = op(x) on random x and reports the result as `op variant`.
void checkUnary(const std::string& op, const std::string& variant, const std::string& attrs,
                const Range& r, const Shape& shape = {2, 3}, RunOptions opts = {}) {
  SCOPED_TRACE(op + " " + variant);
  std::string text = unaryGraph("op: \"" + op + "\"" + attrs, shape);
  reportGradCheck(op, variant, checkGradient(text, {{"x", draw(shape, 1, r)}}, {"x"}, kTol, opts));
}

/// Checks d/dx and d/dy of z = op(x, y) for x and y of the given shapes (broadcasting).
void checkBinary(const std::string& op, const Shape& xs, const Shape& ys, const Range& rx,
                 const Range& ry) {
  std::string variant = shapeStr(xs) + " vs " + shapeStr(ys);
  SCOPED_TRACE(op + " " + variant);
  std::string text = input("x", xs) + input("y", ys) + "node { name: \"z\" op: \"" + op +
                     "\" input: \"x\" input: \"y\" } output { name: \"z\" }";
  std::map<std::string, Tensor> in{{"x", draw(xs, 1, rx)}, {"y", draw(ys, 2, ry)}};
  reportGradCheck(op, variant, checkGradient(text, in, {"x", "y"}));
}

/// Same shapes, then the two broadcasting patterns ([2,3] vs [3], [2,1] vs [1,3]) and a scalar.
void checkBinaryShapes(const std::string& op, const Range& rx, const Range& ry) {
  checkBinary(op, {2, 3}, {2, 3}, rx, ry);
  checkBinary(op, {2, 3}, {3}, rx, ry);
  checkBinary(op, {2, 1}, {1, 3}, rx, ry);
  checkBinary(op, {}, {2, 3}, rx, ry);
}

/// d sum(output) / d wrt of the graph `text` (one output) at `inputs`, run at `precision`.
std::vector<Tensor> gradients(const std::string& text, const std::map<std::string, Tensor>& inputs,
                              const std::vector<std::string>& wrt,
                              Precision precision = Precision::Float64) {
  auto g = test::parseVerified(text);
  if (!g) return {};
  Builder b(*g);
  Value* loss = b.reduceSum(g->outputs().at(0).value, {});
  std::vector<Value*> wrtValues;
  for (const std::string& name : wrt) wrtValues.push_back(g->findValue(name));
  auto r = differentiate(*g, loss, wrtValues);
  if (!r) {
    ADD_FAILURE() << r.error().str();
    return {};
  }
  g->clearOutputs();
  for (size_t i = 0; i < wrt.size(); ++i) g->addOutput(wrt[i], r->grads[i]);
  Interpreter interp(*g);
  RunOptions opts;
  opts.precision = precision;
  auto out = interp.run(inputs, opts);
  if (!out) {
    ADD_FAILURE() << out.error().str();
    return {};
  }
  std::vector<Tensor> grads;
  for (const std::string& name : wrt) grads.push_back(out->at(name));
  return grads;
}

// ---- Binary arithmetic --------------------------------------------------------------------

TEST(GradRulesElementwise, Add) { checkBinaryShapes("add", {}, {}); }
TEST(GradRulesElementwise, Sub) { checkBinaryShapes("sub", {}, {}); }
TEST(GradRulesElementwise, Mul) { checkBinaryShapes("mul", {}, {}); }
TEST(GradRulesElementwise, Div) { checkBinaryShapes("div", {}, Range{-2, 2, {0}, 0.5}); }
TEST(GradRulesElementwise, Maximum) { checkBinaryShapes("maximum", {}, {}); }
TEST(GradRulesElementwise, Minimum) { checkBinaryShapes("minimum", {}, {}); }

// At a tie the rule splits the gradient half and half, which is exactly what the central
// difference measures there: (max(x+h, x) - max(x-h, x)) / 2h = 1/2 for each operand.
TEST(GradRulesElementwise, MaximumMinimumTies) {
  for (std::string op : {"maximum", "minimum"}) {
    SCOPED_TRACE(op);
    std::string text = input("x", {2, 3}) + input("y", {2, 3}) + "node { name: \"z\" op: \"" + op +
                       "\" input: \"x\" input: \"y\" } output { name: \"z\" }";
    Tensor same = draw({2, 3}, 3, {});
    reportGradCheck(op, "ties (half each)",
                    checkGradient(text, {{"x", same}, {"y", same}}, {"x", "y"}));
  }
}

TEST(GradRulesElementwise, Pow) {
  // Both operands need a positive base (the exponent's gradient has log x).
  checkBinaryShapes("pow", kPositive, {});
  // A negative base with an integer exponent: x^y is differentiable in x there.
  std::string text =
      input("x", {2, 3}) + input("y", {2, 3}) +
      "node { name: \"z\" op: \"pow\" input: \"x\" input: \"y\" } output { name: \"z\" }";
  std::map<std::string, Tensor> in{{"x", draw({2, 3}, 1, {-2, -0.5})},
                                   {"y", values({2, 3}, {3, 2, 3, -1, 2, 3})}};
  reportGradCheck("pow", "negative base, wrt x", checkGradient(text, in, {"x"}));
  // There x^y has no derivative in y (x^(y+h) is not real); the rule's choice is 0, not NaN.
  auto grads = gradients(text, in, {"x", "y"});
  ASSERT_EQ(grads.size(), 2u);
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(grads[1].getDouble(i), 0.0) << i;
}

// ---- Unary arithmetic ---------------------------------------------------------------------

TEST(GradRulesElementwise, UnaryArithmetic) {
  checkUnary("neg", "", "", {});
  checkUnary("abs", "", "", kAwayFrom0);
  checkUnary("exp", "", "", {});
  checkUnary("log", "", "", kPositive);
  checkUnary("sqrt", "", "", kPositive);
  checkUnary("rsqrt", "", "", kPositive);
  checkUnary("square", "", "", {});
  checkUnary("erf", "", "", {});
}

// ---- Comparisons and select ---------------------------------------------------------------

TEST(GradRulesElementwise, ComparisonsAreNotDifferentiable) {
  for (OpKind op : {OpKind::Equal, OpKind::NotEqual, OpKind::Less, OpKind::LessEqual,
                    OpKind::Greater, OpKind::GreaterEqual}) {
    const GradRule& rule = gradTable()[static_cast<size_t>(op)];
    EXPECT_TRUE(rule.notDifferentiable) << opName(op);
    EXPECT_EQ(rule.fn, nullptr) << opName(op);
  }
}

// Condition, on_true and on_false all broadcast: [2,1], [2,3] and [3].
TEST(GradRulesElementwise, SelectBroadcast) {
  std::string text = input("p", {2, 1}) + input("q", {1}) + input("x", {2, 3}) + input("y", {3}) +
                     "node { name: \"cond\" op: \"less\" input: \"p\" input: \"q\" }"
                     "node { name: \"z\" op: \"select\" input: \"cond\" input: \"x\" input: \"y\" }"
                     "output { name: \"z\" }";
  std::map<std::string, Tensor> in{{"p", values({2, 1}, {-1, 1})},
                                   {"q", values({1}, {0})},
                                   {"x", draw({2, 3}, 1, {})},
                                   {"y", draw({3}, 2, {})}};
  reportGradCheck("select", "[2,1] ? [2,3] : [3]", checkGradient(text, in, {"x", "y"}));
}

// The condition compares x itself, so the comparison lies on a path from x to the loss: that is
// fine, since select gives its bool condition no gradient and none reaches `less`.
const std::string kSelectOnX =
    input("x", {2, 3}) + input("t", {3}) +
    "node { name: \"cond\" op: \"less\" input: \"x\" input: \"t\" }"
    "node { name: \"xt\" op: \"mul\" input: \"x\" input: \"t\" }"
    "node { name: \"z\" op: \"select\" input: \"cond\" input: \"xt\" input: \"x\" }"
    "output { name: \"z\" }";

TEST(GradRulesElementwise, SelectConditionFromDifferentiatedValue) {
  std::map<std::string, Tensor> in{{"x", draw({2, 3}, 1, {})}, {"t", draw({3}, 2, {-1, 1})}};
  reportGradCheck("select", "condition less(x, t)", checkGradient(kSelectOnX, in, {"x", "t"}));
}

TEST(GradRulesElementwise, SelectConditionGetsNoGradient) {
  auto g = test::parseVerified(kSelectOnX);
  ASSERT_TRUE(g);
  Node* select = g->findValue("z")->node();
  // Asked directly (even with the condition wanted), the rule builds nothing for it.
  Builder b(*g);
  Value* seed = b.constant(std::vector<double>(6, 1.0), {2, 3}, DType::Float64);
  GradContext ctx{b, *select, {seed}, {true, true, true}};
  std::vector<Value*> grads = gradTable()[static_cast<size_t>(OpKind::Select)].fn(ctx);
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  ASSERT_EQ(grads.size(), 3u);
  EXPECT_EQ(grads[0], nullptr);
  EXPECT_NE(grads[1], nullptr);
  EXPECT_NE(grads[2], nullptr);
  // Through the pass: the bool condition is never a wanted operand, so nothing reaches `less`
  // (which would be an error: it is not differentiable) and no gradient node is built for it.
  Value* loss = b.reduceSum(g->findValue("z"), {});
  auto r = differentiate(*g, loss, {g->findValue("x")});
  ASSERT_TRUE(r) << r.error().str();
  for (Node* n : r->added) EXPECT_NE(n->name().rfind("grad/cond/", 0), 0u) << n->name();
}

// ---- Activations --------------------------------------------------------------------------

TEST(GradRulesElementwise, SigmoidTanh) {
  checkUnary("sigmoid", "", "", {-4, 4});
  checkUnary("tanh", "", "", {-3, 3});
}

TEST(GradRulesElementwise, Rectifiers) {
  checkUnary("relu", "", "", kAwayFrom0);
  checkUnary("leaky_relu", "alpha=0.01 (default)", "", kAwayFrom0);
  checkUnary("leaky_relu", "alpha=0.2", attrF("alpha", 0.2), kAwayFrom0);
  checkUnary("rrelu", "inference", "", kAwayFrom0);
  checkUnary("rrelu", "inference lower=0.1 upper=0.3", attrF("lower", 0.1) + attrF("upper", 0.3),
             kAwayFrom0);
}

// Training draws one alpha per element per step: every finite-difference run reuses the same
// seed and step, so all see the forward pass's alphas, and so must the gradient.
RunOptions fixedNoise() {
  RunOptions o;
  o.seed = 1234;
  o.step = 7;
  return o;
}

TEST(GradRulesElementwise, RReluTraining) {
  checkUnary("rrelu", "training", kTraining, kAwayFrom0, {4, 5}, fixedNoise());
  checkUnary("rrelu", "training lower=0.1 upper=0.9",
             attrF("lower", 0.1) + attrF("upper", 0.9) + kTraining, kAwayFrom0, {4, 5},
             fixedNoise());
}

TEST(GradRulesElementwise, PRelu) {
  for (const Shape& as : {Shape{3}, Shape{2, 3}, Shape{}}) {
    std::string variant = "x [2,3], alpha " + shapeStr(as);
    SCOPED_TRACE(variant);
    std::string text = input("x", {2, 3}) + input("alpha", as) +
                       "node { name: \"y\" op: \"prelu\" input: \"x\" input: \"alpha\" }"
                       "output { name: \"y\" }";
    std::map<std::string, Tensor> in{{"x", draw({2, 3}, 1, kAwayFrom0)},
                                     {"alpha", draw(as, 2, {0.1, 0.5})}};
    reportGradCheck("prelu", variant, checkGradient(text, in, {"x", "alpha"}));
  }
}

TEST(GradRulesElementwise, EluSelu) {
  checkUnary("elu", "alpha=1 (default)", "", kAwayFrom0);
  checkUnary("elu", "alpha=0.5", attrF("alpha", 0.5), kAwayFrom0);
  checkUnary("selu", "", "", kAwayFrom0);
}

TEST(GradRulesElementwise, Gelu) {
  checkUnary("gelu", "exact (none)", "", {-3, 3});
  checkUnary("gelu", "tanh", attrS("approximate", "tanh"), {-3, 3});
  checkUnary("gelu", "sigmoid", attrS("approximate", "sigmoid"), {-3, 3});
}

TEST(GradRulesElementwise, SwishFixedBeta) {
  checkUnary("swish", "beta=1 (default)", "", {-3, 3});
  checkUnary("swish", "beta=2", attrF("beta", 2), {-3, 3});
  checkUnary("swish", "beta=-0.5", attrF("beta", -0.5), {-3, 3});
}

TEST(GradRulesElementwise, SwishLearnableBeta) {
  for (const Shape& bs : {Shape{}, Shape{1}}) {
    std::string variant = "learnable beta " + shapeStr(bs);
    SCOPED_TRACE(variant);
    // The attribute (5) is overridden by the operand.
    std::string text = input("x", {2, 3}) + input("beta", bs) +
                       "node { name: \"y\" op: \"swish\" input: \"x\" input: \"beta\"" +
                       attrF("beta", 5) + " } output { name: \"y\" }";
    std::map<std::string, Tensor> in{{"x", draw({2, 3}, 1, {-3, 3})},
                                     {"beta", draw(bs, 2, {0.5, 2})}};
    reportGradCheck("swish", variant, checkGradient(text, in, {"x", "beta"}));
  }
}

TEST(GradRulesElementwise, MishSoftplus) {
  checkUnary("mish", "", "", {-4, 4});
  checkUnary("softplus", "", "", {-4, 4});
}

// Far into saturation every rule stays finite and exact: no e^x overflows, no inf·0.
TEST(GradRulesElementwise, SaturatedInputs) {
  Tensor x = values({8}, {-1000, -50, -20, -3, 3, 20, 50, 1000});
  struct Case {
    std::string op, variant, attrs;
  };
  const std::vector<Case> cases = {{"sigmoid", "", ""},
                                   {"tanh", "", ""},
                                   {"softplus", "", ""},
                                   {"mish", "", ""},
                                   {"erf", "", ""},
                                   {"gelu", "exact", ""},
                                   {"gelu", "tanh", attrS("approximate", "tanh")},
                                   {"gelu", "sigmoid", attrS("approximate", "sigmoid")},
                                   {"swish", "beta=1", ""},
                                   {"swish", "beta=2", attrF("beta", 2)},
                                   {"elu", "", ""},
                                   {"selu", "", ""},
                                   {"relu", "", ""}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op + " " + c.variant);
    std::string text = unaryGraph("op: \"" + c.op + "\"" + c.attrs, {8});
    reportGradCheck(c.op, "saturated " + c.variant, checkGradient(text, {{"x", x}}, {"x"}));
  }
}

// In float32, e^x overflows from x = 89: the rules must not compute it where it is used.
TEST(GradRulesElementwise, SaturatedInputsFloat32) {
  Tensor x = values({8}, {-1000, -100, -50, -20, 20, 50, 100, 1000}, DType::Float32);
  for (std::string op : {"sigmoid", "tanh", "softplus", "mish", "gelu", "swish", "elu", "selu"}) {
    for (std::string attrs :
         {std::string(), attrS("approximate", "tanh"), attrS("approximate", "sigmoid")}) {
      if (op != "gelu" && !attrs.empty()) continue;
      SCOPED_TRACE(op + attrs);
      auto grads = gradients(unaryGraph("op: \"" + op + "\"" + attrs, {8}, "FLOAT32"), {{"x", x}},
                             {"x"}, Precision::Float32);
      ASSERT_EQ(grads.size(), 1u);
      const Tensor& dx = grads[0];
      for (int64_t i = 0; i < 8; ++i) {
        // Every one of these derivatives lies in [-0.2, 1.8] (selu's λα = 1.76 is the largest).
        EXPECT_TRUE(std::isfinite(dx.getDouble(i))) << "x = " << x.getDouble(i);
        EXPECT_LE(std::abs(dx.getDouble(i)), 1.8) << "x = " << x.getDouble(i);
      }
    }
  }
}

// ---- Dropout ------------------------------------------------------------------------------

TEST(GradRulesElementwise, DropoutTraining) {
  // The check is only meaningful if the mask drops some units and keeps others. Dropout and
  // alpha_dropout draw the same numbers for the same node name, seed and step, so this count
  // holds for both.
  auto g =
      test::parseVerified(unaryGraph("op: \"dropout\"" + attrF("rate", 0.5) + kTraining, {4, 5}));
  ASSERT_TRUE(g);
  auto y = Interpreter(*g).run({{"x", values({4, 5}, std::vector<double>(20, 1.0))}}, fixedNoise());
  ASSERT_TRUE(y) << y.error().str();
  int dropped = 0;
  for (int64_t i = 0; i < 20; ++i) dropped += y->at("y").getDouble(i) == 0;
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, 20);

  checkUnary("dropout", "training rate=0.5", attrF("rate", 0.5) + kTraining, {}, {4, 5},
             fixedNoise());
  checkUnary("alpha_dropout", "training rate=0.5", attrF("rate", 0.5) + kTraining, {}, {4, 5},
             fixedNoise());
  checkUnary("alpha_dropout", "training rate=0.1", attrF("rate", 0.1) + kTraining, {}, {4, 5},
             fixedNoise());
}

TEST(GradRulesElementwise, DropoutInference) {
  checkUnary("dropout", "inference", attrF("rate", 0.5), {});
  checkUnary("alpha_dropout", "inference", attrF("rate", 0.5), {});
}

// Every op of this family has a rule or is marked not differentiable.
TEST(GradRulesElementwise, TableCoversTheFamily) {
  for (OpKind op :
       {OpKind::Add,     OpKind::Sub,     OpKind::Mul,      OpKind::Div,     OpKind::Maximum,
        OpKind::Minimum, OpKind::Pow,     OpKind::Neg,      OpKind::Abs,     OpKind::Exp,
        OpKind::Log,     OpKind::Sqrt,    OpKind::Rsqrt,    OpKind::Square,  OpKind::Erf,
        OpKind::Select,  OpKind::Sigmoid, OpKind::Tanh,     OpKind::Relu,    OpKind::LeakyRelu,
        OpKind::RRelu,   OpKind::PRelu,   OpKind::Elu,      OpKind::Selu,    OpKind::Gelu,
        OpKind::Swish,   OpKind::Mish,    OpKind::Softplus, OpKind::Dropout, OpKind::AlphaDropout})
    EXPECT_NE(gradTable()[static_cast<size_t>(op)].fn, nullptr) << opName(op);
}

}  // namespace
}  // namespace kiln
