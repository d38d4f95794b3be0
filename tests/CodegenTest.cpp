// Every forward op compiled through the LLVM lowering and the JIT, against the interpreter on
// random inputs at batch 1 and 7, with a tolerance per op (see kCases): 0 where the compiled
// code does the same IEEE operations, looser where it accumulates in float32 (matmul on Eigen)
// or uses the inline float32 approximations of exp, log, tanh, erf (MathEmitter.h).
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "CodegenTestUtil.h"
#include "ir/Builder.h"

namespace kiln {
namespace {

using test::InputSpec;
using Attrs = Builder::Attrs;
constexpr DType F32 = DType::Float32;

struct OpCase {
  std::string name;
  double tol;
  std::function<void(Builder&)> build;  // Creates the graph and its outputs.
  std::map<std::string, InputSpec> specs = {};
};

void out(Builder& b, const std::string& name, Value* v) {
  if (v) b.graph().addOutput(name, v);
}

/// y = op(x) for x float32[-1, 6].
OpCase unary(std::string name, OpKind op, double tol, Attrs attrs = {}, InputSpec spec = {}) {
  return {name, tol, [=](Builder& b) {
            Value* x = b.input("x", F32, {-1, 6});
            out(b, "y", b.op(op, {x}, attrs));
          }, {{"x", spec}}};
}

/// z = op(x, y) with y broadcast from [6] (a parameter) and from [-1, 1] (an input).
OpCase binary(std::string name, OpKind op, double tol, DType dt = F32, InputSpec spec = {}) {
  return {name, tol, [=](Builder& b) {
            Value* x = b.input("x", dt, {-1, 6});
            Value* col = b.input("col", dt, {-1, 1});
            Value* row = isFloat(dt) ? b.parameter("row", {6}) : b.input("row", dt, {1, 6});
            out(b, "z", b.op(op, {x, row}));
            out(b, "z2", b.op(op, {col, x}));
          }, {{"x", spec}, {"col", spec}, {"row", spec}}};
}

InputSpec positive() { return {.positive = true}; }
InputSpec ints(int64_t lo, int64_t hi, bool nonZero = false) { return {.intLo = lo, .intHi = hi, .nonZero = nonZero}; }

std::vector<OpCase> allCases() {
  std::vector<OpCase> c;
  // ---- Exact: the same IEEE operations as the interpreter, bit for bit.
  for (auto [n, op] : {std::pair{"add", OpKind::Add}, {"sub", OpKind::Sub}, {"mul", OpKind::Mul},
                       {"div", OpKind::Div}, {"maximum", OpKind::Maximum}, {"minimum", OpKind::Minimum}}) {
    c.push_back(binary(n, op, 0.0));
    c.push_back(binary(std::string(n) + "_int32", op, 0.0, DType::Int32, ints(-9, 9, /*nonZero=*/true)));
  }
  c.push_back(binary("pow", OpKind::Pow, 0.0, F32, positive()));
  c.push_back(binary("add_int64", OpKind::Add, 0.0, DType::Int64, ints(-1000, 1000)));
  c.push_back(unary("neg", OpKind::Neg, 0.0));
  c.push_back(unary("abs", OpKind::Abs, 0.0));
  c.push_back(unary("sqrt", OpKind::Sqrt, 0.0, {}, positive()));
  c.push_back(unary("rsqrt", OpKind::Rsqrt, 0.0, {}, positive()));
  c.push_back(unary("square", OpKind::Square, 0.0));
  c.push_back(unary("relu", OpKind::Relu, 0.0));
  c.push_back(unary("leaky_relu", OpKind::LeakyRelu, 0.0, {{"alpha", 0.2}}));
  c.push_back(unary("rrelu_inference", OpKind::RRelu, 0.0));
  c.push_back(unary("dropout_inference", OpKind::Dropout, 0.0, {{"rate", 0.3}}));
  c.push_back(unary("alpha_dropout_inference", OpKind::AlphaDropout, 0.0, {{"rate", 0.3}}));
  c.push_back({"neg_abs_int32", 0.0, [](Builder& b) {
                 Value* x = b.input("x", DType::Int32, {-1, 4});
                 out(b, "neg", b.op(OpKind::Neg, {x}));
                 out(b, "abs", b.op(OpKind::Abs, {x}));
               }, {{"x", ints(-50, 50)}}});
  c.push_back({"prelu", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 6});
                 out(b, "y", b.op(OpKind::PRelu, {x, b.parameter("alpha", {6})}));
               }});
  c.push_back({"comparisons_and_select", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 5});
                 Value* y = b.input("y", F32, {-1, 5});
                 Value* i = b.input("i", DType::Int32, {-1, 5});
                 Value* lt = b.op(OpKind::Less, {x, y});
                 out(b, "lt", lt);
                 out(b, "le", b.op(OpKind::LessEqual, {x, b.scalar(0.5)}));
                 out(b, "gt", b.op(OpKind::Greater, {x, y}));
                 out(b, "ge", b.op(OpKind::GreaterEqual, {i, b.scalar(3, DType::Int32)}));
                 out(b, "eq", b.op(OpKind::Equal, {i, b.scalar(2, DType::Int32)}));
                 out(b, "ne", b.op(OpKind::NotEqual, {i, b.scalar(2, DType::Int32)}));
                 out(b, "bool_lt", b.op(OpKind::Less, {lt, b.op(OpKind::Greater, {x, b.scalar(0)})}));
                 out(b, "select", b.op(OpKind::Select, {lt, x, b.op(OpKind::Neg, {y})}));
               }, {{"i", ints(0, 4)}}});
  c.push_back({"cast", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 5});
                 Value* i = b.input("i", DType::Int64, {-1, 5});
                 auto cast = [&](Value* v, DType t) { return b.op(OpKind::Cast, {v}, {{"dtype", t}}); };
                 out(b, "f2i32", cast(b.mul(x, b.scalar(100)), DType::Int32));
                 out(b, "f2i64", cast(x, DType::Int64));
                 out(b, "f2f64", cast(x, DType::Float64));
                 out(b, "f2bool", cast(b.op(OpKind::Relu, {x}), DType::Bool));
                 out(b, "i2f", cast(i, F32));
                 out(b, "i64toi32", cast(i, DType::Int32));
                 out(b, "bool2f", cast(b.op(OpKind::Less, {x, b.scalar(0)}), F32));
               }, {{"i", ints(-100000, 100000)}}});
  c.push_back({"constant", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 3});
                 out(b, "y", b.add(b.mul(x, b.constant({1, -2, 0.25}, {3})), b.scalar(1.5)));
                 out(b, "const_out", b.constant({4, 5}, {2}, DType::Int32));
               }});
  // Shapes: copies, so exact.
  c.push_back({"reshape_flatten", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 2, 6});
                 out(b, "r", b.reshape(b.op(OpKind::Relu, {x}), {-1, 3, 4}));
                 out(b, "f", b.op(OpKind::Flatten, {x}));
               }});
  c.push_back({"transpose_slice_pad", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 3, 4});
                 out(b, "t", b.op(OpKind::Transpose, {x}, {{"perm", std::vector<int64_t>{2, 0, 1}}}));
                 out(b, "t_default", b.op(OpKind::Transpose, {b.op(OpKind::Neg, {x})}));
                 out(b, "s", b.op(OpKind::Slice, {x}, {{"starts", std::vector<int64_t>{1, -3}},
                                                      {"ends", std::vector<int64_t>{3, 100}},
                                                      {"axes", std::vector<int64_t>{1, 2}}}));
                 out(b, "p", b.op(OpKind::Pad, {x}, {{"before", std::vector<int64_t>{0, 1, 2}},
                                                    {"after", std::vector<int64_t>{0, 2, 0}}}));
               }});
  c.push_back({"concat", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 3});
                 Value* y = b.input("y", F32, {-1, 2});
                 // A computed operand (fused into the concat's loop) that rounds exactly as the
                 // interpreter does, so the comparison stays exact: exp's last bit may differ.
                 out(b, "c", b.op(OpKind::Concat, {x, b.op(OpKind::Square, {y}), x}, {{"axis", int64_t{1}}}));
               }});
  c.push_back({"one_hot", 0.0, [](Builder& b) {
                 Value* l = b.input("labels", DType::Int64, {-1});
                 out(b, "y", b.op(OpKind::OneHot, {l}, {{"depth", int64_t{10}}}));
               }});
  c.push_back({"argmax", 0.0, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 4, 3});
                 out(b, "last", b.op(OpKind::ArgMax, {x}));
                 out(b, "middle", b.op(OpKind::ArgMax, {b.op(OpKind::Abs, {x})}, {{"axis", int64_t{1}}}));
                 out(b, "batch", b.op(OpKind::ArgMax, {x}, {{"axis", int64_t{0}}}));
               }});
  c.push_back({"accuracy", 0.0, [](Builder& b) {
                 Value* z = b.input("z", F32, {-1, 10});
                 out(b, "acc", b.op(OpKind::Accuracy, {z, b.input("labels", DType::Int32, {-1})}));
               }});
  // ---- Float32 accumulation (Eigen's GEMM) against the interpreter's double: relative 1e-5.
  for (auto [ta, tb] : {std::pair{false, false}, {true, false}, {false, true}, {true, true}}) {
    std::string n = std::string("matmul") + (ta ? "_ta" : "") + (tb ? "_tb" : "");
    c.push_back({n, 1e-5, [ta, tb](Builder& b) {
                   Value* a = b.input("a", F32, {-1, 20});
                   Value* w = b.parameter("w", tb ? Shape{13, 20} : Shape{20, 13});
                   Value* y = b.matmul(a, w, false, tb);
                   out(b, "y", y);
                   // a^T a: the batch is the contraction dimension.
                   out(b, "gram", ta ? b.matmul(a, a, true, false) : b.matmul(y, y, false, true));
                 }});
  }
  // ---- Sums in double, rounded once (reassociated so they vectorize): 1e-6.
  c.push_back({"reductions", 1e-6, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 4, 5});
                 auto red = [&](OpKind op, std::vector<int64_t> axes, bool keep, Value* v) {
                   return b.op(op, {v}, {{"axes", axes}, {"keepdims", keep}});
                 };
                 out(b, "sum1", red(OpKind::ReduceSum, {1}, false, x));
                 out(b, "sum_batch", red(OpKind::ReduceSum, {0}, true, b.op(OpKind::Square, {x})));
                 out(b, "mean_all", red(OpKind::ReduceMean, {}, false, x));
                 out(b, "mean_last", red(OpKind::ReduceMean, {-1, 0}, true, x));
                 out(b, "max1", red(OpKind::ReduceMax, {2}, false, b.op(OpKind::Neg, {x})));
               }});
  c.push_back({"reductions_int", 0.0, [](Builder& b) {
                 Value* x = b.input("x", DType::Int32, {-1, 6});
                 out(b, "sum", b.op(OpKind::ReduceSum, {x}, {{"axes", std::vector<int64_t>{1}}}));
                 out(b, "max", b.op(OpKind::ReduceMax, {x}, {{"axes", std::vector<int64_t>{0}}}));
               }, {{"x", ints(-1000, 1000)}}});
  c.push_back({"mean_squared_error", 1e-6, [](Builder& b) {
                 out(b, "loss", b.op(OpKind::MeanSquaredError, {b.input("p", F32, {-1, 3}), b.input("t", F32, {-1, 3})}));
               }});
  // ---- Batch norm in float32 arithmetic (the interpreter's is double): 1e-6.
  c.push_back({"batch_norm", 1e-6, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 3, 4});
                 auto bn = [&](int64_t axis, int64_t c) {
                   std::string p = "bn" + std::to_string(axis);
                   Node* n = b.create(OpKind::BatchNorm,
                                      {x, b.parameter(p + "/gamma", {c}), b.parameter(p + "/beta", {c}),
                                       b.parameter(p + "/moving_mean", {c}), b.parameter(p + "/moving_variance", {c})},
                                      {{"axis", axis}, {"epsilon", 1e-3}});
                   return n;
                 };
                 Node* last = bn(-1, 4);
                 out(b, "y_last", last ? last->result(0) : nullptr);
                 out(b, "moving_mean", last ? last->result(1) : nullptr);
                 Node* mid = bn(1, 3);
                 out(b, "y_mid", mid ? b.op(OpKind::Relu, {mid->result(0)}) : nullptr);
               }});
  // ---- The inline float32 transcendentals (MathEmitter.h): a few ulp, so 1e-6 (2e-6 where
  // one feeds another: mish, gelu, softmax and the losses, whose exponent x - m rounds in float).
  c.push_back(unary("exp", OpKind::Exp, 1e-6));
  c.push_back(unary("log", OpKind::Log, 1e-6, {}, positive()));
  c.push_back(unary("erf", OpKind::Erf, 1e-6));
  c.push_back(unary("sigmoid", OpKind::Sigmoid, 1e-6, {}, {.floatScale = 8}));
  c.push_back(unary("tanh", OpKind::Tanh, 1e-6, {}, {.floatScale = 4}));
  c.push_back(unary("softplus", OpKind::Softplus, 1e-6, {}, {.floatScale = 8}));
  c.push_back(unary("elu", OpKind::Elu, 1e-6, {{"alpha", 1.5}}));
  c.push_back(unary("selu", OpKind::Selu, 1e-6));
  c.push_back(unary("gelu", OpKind::Gelu, 2e-6, {}, {.floatScale = 4}));
  c.push_back(unary("gelu_tanh", OpKind::Gelu, 2e-6, {{"approximate", std::string("tanh")}}, {.floatScale = 4}));
  c.push_back(unary("gelu_sigmoid", OpKind::Gelu, 2e-6, {{"approximate", std::string("sigmoid")}}, {.floatScale = 4}));
  c.push_back(unary("swish", OpKind::Swish, 2e-6, {{"beta", 1.3}}, {.floatScale = 4}));
  c.push_back({"swish_learnable_beta", 2e-6, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 6});
                 out(b, "y", b.op(OpKind::Swish, {x, b.parameter("beta", {1})}));
               }});
  c.push_back(unary("mish", OpKind::Mish, 2e-6, {}, {.floatScale = 4}));
  c.push_back(unary("softmax", OpKind::Softmax, 2e-6, {}, {.floatScale = 4}));
  c.push_back({"softmax_axes", 2e-6, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 3, 4});
                 out(b, "s1", b.op(OpKind::Softmax, {x}, {{"axis", int64_t{1}}}));
                 out(b, "l0", b.op(OpKind::LogSoftmax, {x}, {{"axis", int64_t{0}}}));
                 // Softmax keeps its exps in a stack block up to 512 along the axis, beyond
                 // (and along the batch) in its result.
                 out(b, "s0", b.op(OpKind::Softmax, {x}, {{"axis", int64_t{0}}}));
                 out(b, "wide", b.op(OpKind::Softmax, {b.input("w", F32, {-1, 700})}));
               }});
  c.push_back(unary("log_softmax", OpKind::LogSoftmax, 2e-6, {}, {.floatScale = 4}));
  c.push_back({"sparse_softmax_cross_entropy", 2e-6, [](Builder& b) {
                 Value* z = b.input("z", F32, {-1, 10});
                 out(b, "loss", b.op(OpKind::SparseSoftmaxCrossEntropy, {z, b.input("labels", DType::Int64, {-1})}));
               }});
  c.push_back({"binary_cross_entropy_with_logits", 2e-6, [](Builder& b) {
                 Value* z = b.input("z", F32, {-1, 4});
                 out(b, "loss", b.op(OpKind::BinaryCrossEntropyWithLogits, {z, b.input("t", F32, {-1, 4})}));
               }, {{"z", {.floatScale = 6}}, {"t", positive()}}});
  // A fused chain: one loop for bias, batch norm-like scaling, ELU and a residual.
  c.push_back({"fused_chain", 1e-6, [](Builder& b) {
                 Value* x = b.input("x", F32, {-1, 8});
                 Value* h = b.add(b.mul(x, b.parameter("scale", {8})), b.parameter("bias", {8}));
                 out(b, "y", b.add(b.op(OpKind::Elu, {h}), b.op(OpKind::Square, {x})));
               }});
  return c;
}

class CodegenOpTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(CodegenOpTest, MatchesInterpreter) {
  const OpCase& oc = GetParam();
  Graph g(oc.name);
  Builder b(g);
  oc.build(b);
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  double worst = test::expectMatchesInterpreter(g, oc.tol, oc.specs);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", worst);
  RecordProperty("max_scaled_error", buf);
}

INSTANTIATE_TEST_SUITE_P(Codegen, CodegenOpTest, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<OpCase>& i) { return i.param.name; });

// Every op of the table is compiled by at least one case above (the op table grows: a new op
// must come with a case here).
TEST(CodegenOpCoverage, EveryForwardOpHasACase) {
  std::set<OpKind> seen;
  for (const OpCase& oc : allCases()) {
    Graph g(oc.name);
    Builder b(g);
    oc.build(b);
    for (Node* n : g.nodes()) seen.insert(n->op());
  }
  for (const OpDef& d : allOpDefs()) EXPECT_TRUE(seen.count(d.kind)) << "no codegen case for op " << d.name;
}

}  // namespace
}  // namespace kiln
