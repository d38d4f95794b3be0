// Gradient rules of matmul, softmax, batch norm and the losses, checked by central finite
// differences in float64 (tests/GradCheck.h); graphs with the batch dimension, including the
// fashion_mlp example in training mode, checked by hand-written sampled differences.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "GradCheck.h"

namespace kiln {
namespace {

/// `input { name: ... dtype: ... shape { dim: ... } }`
std::string input(const std::string& name, const Shape& shape, const std::string& dtype = "FLOAT64") {
  std::string s = "input { name: \"" + name + "\" dtype: " + dtype + " shape {";
  for (int64_t d : shape) s += " dim: " + std::to_string(d);
  return s + " } }\n";
}

std::string boolStr(bool v) { return v ? "true" : "false"; }

void check(const std::string& op, const std::string& variant, const std::string& text,
           const std::map<std::string, Tensor>& inputs, const std::vector<std::string>& wrt) {
  SCOPED_TRACE(op + " " + variant);
  test::reportGradCheck(op, variant, test::checkGradient(text, inputs, wrt, 1e-6));
}

/// Integer class labels in [0, classes).
Tensor labels(DType dtype, std::vector<int64_t> v) {
  Tensor t(dtype, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.setDouble(static_cast<int64_t>(i), static_cast<double>(v[i]));
  return t;
}

// ---- matmul ------------------------------------------------------------------------------------

TEST(GradRulesNN, MatMulEachTransposeCombination) {
  // y = op(a)·op(b) is [2,4] with contraction 3: no operand is square, so a gradient built with
  // the wrong flags fails on its shape as well as on its values.
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      Shape as = ta ? Shape{3, 2} : Shape{2, 3}, bs = tb ? Shape{4, 3} : Shape{3, 4};
      std::string text = input("a", as) + input("b", bs) +
                         "node { name: \"y\" op: \"matmul\" input: \"a\" input: \"b\" "
                         "attr { name: \"transpose_a\" b: " + boolStr(ta) +
                         " } attr { name: \"transpose_b\" b: " + boolStr(tb) +
                         " } }\noutput { name: \"y\" }\n";
      check("matmul", std::string("ta=") + boolStr(ta) + ",tb=" + boolStr(tb), text,
            {{"a", test::randomTensor(as, 1)}, {"b", test::randomTensor(bs, 2)}}, {"a", "b"});
    }
  }
}

// ---- softmax -----------------------------------------------------------------------------------

TEST(GradRulesNN, SoftmaxAndLogSoftmax) {
  for (std::string op : {"softmax", "log_softmax"}) {
    for (int axis : {-1, 0}) {
      std::string text = input("x", {3, 4}) + "node { name: \"y\" op: \"" + op +
                         "\" input: \"x\" attr { name: \"axis\" i: " + std::to_string(axis) +
                         " } }\noutput { name: \"y\" }\n";
      check(op, "axis=" + std::to_string(axis), text, {{"x", test::randomTensor({3, 4}, 3)}}, {"x"});
    }
  }
}

// ---- batch_norm --------------------------------------------------------------------------------

/// batch_norm of x (`shape`) along `axis` with C features; moving statistics are inputs too.
std::string batchNormGraph(const Shape& shape, int axis, int64_t c, bool training) {
  return input("x", shape) + input("gamma", {c}) + input("beta", {c}) + input("mean", {c}) +
         input("var", {c}) +
         "node { name: \"bn\" op: \"batch_norm\" input: \"x\" input: \"gamma\" input: \"beta\" "
         "input: \"mean\" input: \"var\" attr { name: \"axis\" i: " + std::to_string(axis) +
         " } attr { name: \"training\" b: " + boolStr(training) +
         " } attr { name: \"epsilon\" f: 0.001 } }\noutput { name: \"bn\" }\n";
}

void checkBatchNorm(const std::string& variant, const Shape& shape, int axis, int64_t c, bool training) {
  std::map<std::string, Tensor> in{{"x", test::randomTensor(shape, 4)},
                                   {"gamma", test::randomTensor({c}, 5, 0.5, 2)},
                                   {"beta", test::randomTensor({c}, 6)},
                                   {"mean", test::randomTensor({c}, 7)},
                                   {"var", test::randomTensor({c}, 8, 0.5, 2)}};
  check("batch_norm", variant, batchNormGraph(shape, axis, c, training), in, {"x", "gamma", "beta"});
}

TEST(GradRulesNN, BatchNormTraining) {
  checkBatchNorm("training,[4,3],axis=-1", {4, 3}, -1, 3, true);
  checkBatchNorm("training,[2,3,4],axis=1", {2, 3, 4}, 1, 3, true);
  checkBatchNorm("training,[3,4],axis=0", {3, 4}, 0, 3, true);
}

TEST(GradRulesNN, BatchNormInference) {
  checkBatchNorm("inference,[4,3],axis=-1", {4, 3}, -1, 3, false);
  checkBatchNorm("inference,[2,3,4],axis=1", {2, 3, 4}, 1, 3, false);
}

// Only the moving statistics reach the loss: they carry no gradient, so x gets none.
TEST(GradRulesNN, BatchNormMovingStatisticsCarryNoGradient) {
  auto g = test::parseVerified(batchNormGraph({4, 3}, -1, 3, true));
  ASSERT_TRUE(g);
  Builder b(*g);
  Value* loss = b.reduceSum(g->findValue("bn:1"), {});
  ASSERT_TRUE(b.ok());
  auto grads = differentiate(*g, loss, {g->findValue("x")});
  ASSERT_TRUE(grads) << grads.error().str();
  EXPECT_EQ(grads->grads[0], nullptr);
}

// ---- losses ------------------------------------------------------------------------------------

TEST(GradRulesNN, SparseSoftmaxCrossEntropy) {
  for (std::string dtype : {"INT32", "INT64"}) {
    std::string text = input("logits", {4, 3}) + input("labels", {4}, dtype) +
                       R"(node { name: "loss" op: "sparse_softmax_cross_entropy"
                                 input: "logits" input: "labels" }
                          output { name: "loss" })";
    DType dt = dtype == "INT32" ? DType::Int32 : DType::Int64;
    check("sparse_softmax_cross_entropy", "labels " + dtype, text,
          {{"logits", test::randomTensor({4, 3}, 9)}, {"labels", labels(dt, {2, 0, 1, 2})}}, {"logits"});
  }
}

TEST(GradRulesNN, BinaryCrossEntropyWithLogits) {
  std::string text = input("logits", {3, 2}) + input("labels", {3, 2}) +
                     R"(node { name: "loss" op: "binary_cross_entropy_with_logits"
                               input: "logits" input: "labels" }
                        output { name: "loss" })";
  check("binary_cross_entropy_with_logits", "wrt logits and labels", text,
        {{"logits", test::randomTensor({3, 2}, 10)}, {"labels", test::randomTensor({3, 2}, 11, 0, 1)}},
        {"logits", "labels"});
}

TEST(GradRulesNN, MeanSquaredError) {
  std::string text = input("p", {3, 2}) + input("t", {3, 2}) +
                     R"(node { name: "loss" op: "mean_squared_error" input: "p" input: "t" }
                        output { name: "loss" })";
  check("mean_squared_error", "wrt predictions and targets", text,
        {{"p", test::randomTensor({3, 2}, 12)}, {"t", test::randomTensor({3, 2}, 13)}}, {"p", "t"});
}

TEST(GradRulesNN, MetricsAreNotDifferentiable) {
  auto g = test::parseVerified(input("logits", {4, 3}) + input("labels", {4}, "INT64") +
                               R"(node { name: "acc" op: "accuracy" input: "logits" input: "labels" }
                                  output { name: "acc" })");
  ASSERT_TRUE(g);
  auto grads = differentiate(*g, g->findValue("acc"), {g->findValue("logits")});
  ASSERT_FALSE(grads);
  EXPECT_NE(grads.error().str().find("not differentiable"), std::string::npos) << grads.error().str();
}

// ---- graphs with the batch dimension -----------------------------------------------------------

/// Central differences of output "loss" of `interp`'s graph with respect to parameters or
/// inputs, at `samples` random elements (every element when 0), against outputs "grad:<name>".
/// Parameters must be float64 (a float32 one would round the step away).
test::GradCheckResult sampledCheck(Interpreter& interp, std::map<std::string, Tensor> inputs,
                                   const std::vector<std::string>& names, int samples, uint32_t seed) {
  test::GradCheckResult res;
  RunOptions opts{.precision = Precision::Float64};
  auto analytic = interp.run(inputs, opts);
  if (!analytic) {
    ADD_FAILURE() << analytic.error().str();
    return res;
  }
  // The value being perturbed: a parameter (set through the interpreter) or an input.
  auto valueOf = [&](const std::string& name) -> Tensor {
    const Tensor* p = interp.parameter(name);
    return p ? *p : inputs.at(name);
  };
  auto lossWith = [&](const std::string& name, const Tensor& v) -> double {
    std::map<std::string, Tensor> in = inputs;
    if (interp.parameter(name)) {
      EXPECT_TRUE(interp.setParameter(name, v));
    } else {
      in[name] = v;
    }
    auto out = interp.run(in, opts);
    EXPECT_TRUE(out) << (out ? "" : out.error().str());
    return out ? out->at("loss").getDouble(0) : 0;
  };
  std::vector<std::pair<std::string, int64_t>> picks;
  std::mt19937 rng(seed);
  if (samples == 0) {
    for (const std::string& name : names)
      for (int64_t i = 0; i < valueOf(name).size(); ++i) picks.push_back({name, i});
  }
  for (int s = 0; s < samples; ++s) {
    const std::string& name = names[rng() % names.size()];
    picks.push_back({name, static_cast<int64_t>(rng() % static_cast<uint32_t>(valueOf(name).size()))});
  }
  for (auto& [name, i] : picks) {
    const Tensor base = valueOf(name);
    EXPECT_EQ(base.dtype(), DType::Float64) << name;
    Tensor v = base;
    double x = base.getDouble(i), h = 1e-6 * std::max(1.0, std::abs(x));
    v.setDouble(i, x + h);
    double plus = lossWith(name, v);
    v.setDouble(i, x - h);
    double minus = lossWith(name, v);
    lossWith(name, base);  // restore
    double numeric = (plus - minus) / (2 * h);
    double got = analytic->at("grad:" + name).getDouble(i);
    double err = std::abs(got - numeric) / std::max(1.0, std::abs(numeric));
    res.maxRelError = std::max(res.maxRelError, err);
    res.maxAbsGrad = std::max(res.maxAbsGrad, std::abs(got));
    EXPECT_LE(err, 1e-6) << "d loss / d " << name << "[" << i << "]: analytic " << got
                         << ", numeric " << numeric;
  }
  EXPECT_GT(res.maxAbsGrad, 1e-8) << "the gradient is all zeros";
  return res;
}

/// Differentiates `loss` of `g` with respect to the named values, makes the loss and the
/// gradients the outputs ("loss", "grad:<name>") and re-verifies the graph.
void addGradientOutputs(Graph& g, Value* loss, const std::vector<std::string>& names) {
  std::vector<Value*> wrt;
  for (const std::string& n : names) wrt.push_back(g.findValue(n));
  auto grads = differentiate(g, loss, wrt);
  ASSERT_TRUE(grads) << grads.error().str();
  g.clearOutputs();
  g.addOutput("loss", loss);
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_NE(grads->grads[i], nullptr) << "no gradient reaches " << names[i];
    // Each gradient has its value's type, the batch dimension included.
    EXPECT_EQ(grads->grads[i]->type(), wrt[i]->type()) << names[i];
    g.addOutput("grad:" + names[i], grads->grads[i]);
  }
  Status s = verifyGraph(g);
  ASSERT_TRUE(s) << s.error().str();
}

// A graph over x [-1, 3] through matmul (also contracting over the batch), add, reshape,
// flatten, transpose, reduce_mean/sum/max over and beside the batch axis, batch norm in training
// mode and the three losses, differentiated once and run at two batch sizes.
TEST(GradRulesNN, GraphWithBatchDimension) {
  auto g = test::parseVerified(R"(
    input { name: "x" dtype: FLOAT64 shape { dim: -1 dim: 3 } }
    input { name: "labels" dtype: INT64 shape { dim: -1 } }
    input { name: "targets" dtype: FLOAT64 shape { dim: -1 dim: 4 } }
    parameter { name: "w" dtype: FLOAT64 shape { dim: 3 dim: 4 } init { kind: "glorot_uniform" } }
    parameter { name: "bias" dtype: FLOAT64 shape { dim: 4 }
                init { kind: "values" values: 0.1 values: -0.2 values: 0.3 values: 0.05 } }
    parameter { name: "gamma" dtype: FLOAT64 shape { dim: 4 }
                init { kind: "values" values: 1.2 values: 0.8 values: 1.5 values: 0.9 } }
    parameter { name: "beta" dtype: FLOAT64 shape { dim: 4 }
                init { kind: "values" values: 0.1 values: -0.3 values: 0.2 values: 0.4 } }
    parameter { name: "mm" dtype: FLOAT64 shape { dim: 4 } init { kind: "zeros" } trainable: false }
    parameter { name: "mv" dtype: FLOAT64 shape { dim: 4 } init { kind: "ones" } trainable: false }
    node { name: "h" op: "matmul" input: "x" input: "w" }
    node { name: "h2" op: "add" input: "h" input: "bias" }
    node { name: "r" op: "reshape" input: "h2" attr { name: "shape" ints { v: -1 v: 2 v: 2 } } }
    node { name: "rt" op: "transpose" input: "r" attr { name: "perm" ints { v: 0 v: 2 v: 1 } } }
    node { name: "m1" op: "reduce_mean" input: "rt" attr { name: "axes" ints { v: 1 } } }
    node { name: "m2" op: "reduce_mean" input: "r" attr { name: "axes" ints { v: 0 v: 2 } }
           attr { name: "keepdims" b: true } }
    node { name: "s1" op: "reduce_sum" input: "r" attr { name: "axes" ints { v: 0 } } }
    node { name: "mx" op: "reduce_max" input: "h2" attr { name: "axes" ints { v: 0 } } }
    node { name: "mxr" op: "reduce_max" input: "r" attr { name: "axes" ints { v: -1 } } }
    node { name: "gram" op: "matmul" input: "x" input: "h2" attr { name: "transpose_a" b: true } }
    node { name: "f" op: "flatten" input: "rt" }
    node { name: "bn" op: "batch_norm" input: "f" input: "gamma" input: "beta" input: "mm" input: "mv"
           attr { name: "training" b: true } }
    node { name: "ce" op: "sparse_softmax_cross_entropy" input: "bn" input: "labels" }
    node { name: "mse" op: "mean_squared_error" input: "h2" input: "targets" }
    node { name: "bce" op: "binary_cross_entropy_with_logits" input: "f" input: "targets" }
    output { name: "ce" })");
  ASSERT_TRUE(g);
  Builder b(*g);
  auto sq = [&](const char* name) { return b.reduceSum(b.square(g->findValue(name)), {}); };
  auto mean = [&](const char* name) {
    return b.op(OpKind::ReduceMean, {b.square(g->findValue(name))}, {{"axes", std::vector<int64_t>{}}});
  };
  Value* loss = b.add(b.add(b.add(mean("m1"), sq("m2")), b.add(mean("s1"), sq("mx"))),
                      b.add(b.add(mean("mxr"), b.mul(sq("gram"), b.scalar(0.1, DType::Float64))),
                            b.add(g->findValue("ce"), b.add(g->findValue("mse"), g->findValue("bce")))));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  std::vector<std::string> names{"x", "w", "bias", "gamma", "beta"};
  addGradientOutputs(*g, loss, names);
  Interpreter interp(*g);
  ASSERT_TRUE(interp.initializeParameters(/*seed=*/3));
  for (int64_t batch : {5, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    std::vector<int64_t> y;
    for (int64_t i = 0; i < batch; ++i) y.push_back((i * 3) % 4);
    std::map<std::string, Tensor> in{{"x", test::randomTensor({batch, 3}, 20)},
                                     {"labels", labels(DType::Int64, y)},
                                     {"targets", test::randomTensor({batch, 4}, 21, 0, 1)}};
    auto r = sampledCheck(interp, in, names, /*samples=*/0, /*seed=*/1);
    test::reportGradCheck("batch graph", "batch " + std::to_string(batch), r);
  }
}

// The fashion_mlp example with its batch norms in training mode, x [-1, 784] run at batch 4:
// loss = sparse_softmax_cross_entropy(logits, labels), differentiated with respect to every
// trainable parameter, checked at 30 random elements (all 267,430 would take too long).
TEST(GradRulesNN, FashionMlpTrainingGradientsSampled) {
  auto parsed = parseGraph(
      [] {
        std::ifstream f(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
        return std::string(std::istreambuf_iterator<char>(f), {});
      }(),
      GraphFormat::Text, "fashion_mlp.graph.pbtxt");
  ASSERT_TRUE(parsed) << parsed.error().str();
  Graph& g = **parsed;
  // Float64 throughout, so that a step of 1e-6 is not rounded away in the parameters.
  for (Node* n : g.nodes()) {
    if (n->op() == OpKind::BatchNorm) n->setAttr("training", true);
    if (n->op() == OpKind::Parameter || n->op() == OpKind::Input) n->setAttr("dtype", DType::Float64);
  }
  Status s = verifyGraph(g);
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_EQ(g.findValue("x")->type().shape, (Shape{-1, 784}));
  Builder b(g);
  Value* labelsIn = b.input("labels", DType::Int64, {-1});
  Value* loss = b.op(OpKind::SparseSoftmaxCrossEntropy, {g.findValue("batch_normalization_3"), labelsIn});
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  std::vector<std::string> names;
  for (Node* p : g.parameters())
    if (p->b("trainable")) names.push_back(p->name());
  ASSERT_EQ(names.size(), 12u);
  addGradientOutputs(g, loss, names);

  Interpreter interp(g);
  ASSERT_TRUE(interp.initializeParameters(/*seed=*/7));
  // Generic gamma, beta and biases (their initial 1 and 0 would hide sign and scale errors).
  uint32_t seed = 30;
  for (const std::string& name : names) {
    if (name.find("kernel") != std::string::npos) continue;
    Shape shape = interp.parameter(name)->shape();
    ASSERT_TRUE(interp.setParameter(name, test::randomTensor(shape, seed++, 0.5, 1.5)));
  }
  std::map<std::string, Tensor> in{{"x", test::randomTensor({4, 784}, 40, 0, 1)},
                                   {"labels", labels(DType::Int64, {3, 0, 9, 3})}};
  auto r = sampledCheck(interp, in, names, /*samples=*/30, /*seed=*/5);
  test::reportGradCheck("fashion_mlp", "training bn,30 samples", r);
}

}  // namespace
}  // namespace kiln
