// Layer-level models: each layer kind's expansion (graph text or structure) and a forward pass
// through the interpreter against hand-computed numbers; layer names.
#include <gtest/gtest.h>

#include "FrontendTestUtil.h"

namespace kiln {
namespace {

using frontend::Expansion;
using test::expandError;
using test::expandOk;
using test::floats;
using test::model;

// A dense layer with hand-set weights, used throughout:
//   W = [[1, -1], [0.5, 2], [-2, 0]], b = [0.5, -0.5]
//   x0 = [1, 2, 3]:    x0 W = [1 + 1 - 6, -1 + 4 + 0] = [-4, 3];     + b = [-3.5, 2.5]
//   x1 = [0.5, -1, 0]: x1 W = [0.5 - 0.5 + 0, -0.5 - 2 + 0] = [0, -2.5]; + b = [0.5, -3]
const char* kDense =
    "layer { name: \"d\" dense { units: 2 %ACT%\n"
    "  kernel_initializer { kind: \"values\" values: [1, -1, 0.5, 2, -2, 0] }\n"
    "  bias_initializer { kind: \"values\" values: [0.5, -0.5] } } }\n";
const std::vector<double> kZ = {-3.5, 2.5, 0.5, -3.0};

std::string dense(const std::string& act = "") {
  std::string s = kDense;
  s.replace(s.find("%ACT%"), 5, act);
  return s;
}

Tensor x2x3() { return floats({2, 3}, {1, 2, 3, 0.5f, -1, 0}); }

TEST(FrontendLayersTest, DenseExpandsToMatmulAndBiasAdd) {
  frontend::ExpandedModel m = expandOk(model("dim: 3", dense()));
  ASSERT_TRUE(m.graph);
  std::string text = graphToText(*m.graph);
  // The parameters carry chapter11.md's names; the nodes `<layer>/matmul`, `<layer>/bias_add`.
  EXPECT_CONTAINS(text,
                  "parameter {\n  name: \"d/kernel\"\n  shape {\n    dim: 3\n    dim: 2\n  }\n"
                  "  init {\n    kind: \"values\"");
  EXPECT_CONTAINS(text,
                  "node {\n  name: \"d/matmul\"\n  op: \"matmul\"\n  input: \"x\"\n"
                  "  input: \"d/kernel\"\n}\nnode {\n  name: \"d/bias_add\"\n  op: \"add\"\n"
                  "  input: \"d/matmul\"\n  input: \"d/bias\"\n}\noutput {\n  name: \"logits\"\n"
                  "  tensor: \"d/bias_add\"\n}\n");
  EXPECT_EQ(m.graph->inputs()[0]->result()->type().str(), "float32[-1,3]");
  test::expectNear(test::forward(*m.graph, {{"x", x2x3()}}), kZ);
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_EQ(m.layers[0].paramCount(), 3 * 2 + 2);
}

TEST(FrontendLayersTest, DenseDefaultsAndOptions) {
  frontend::ExpandedModel m = expandOk(model("dim: 3", "layer { dense { units: 4 } }"));
  Node* kernel = m.graph->findNode("dense_1/kernel");
  ASSERT_TRUE(kernel);
  EXPECT_EQ(kernel->s("init"), "glorot_uniform");  // chapter11.md's default
  EXPECT_EQ(m.graph->findNode("dense_1/bias")->s("init"), "zeros");
  // No bias: matmul only, and a bias initializer would be a mistake.
  m = expandOk(model("dim: 3", "layer { dense { units: 4 use_bias: false } }"));
  EXPECT_FALSE(m.graph->findNode("dense_1/bias"));
  EXPECT_EQ(m.graph->outputs()[0].value->node()->name(), "dense_1/matmul");
  EXPECT_CONTAINS(
      expandError(model(
          "dim: 3",
          "layer { dense { units: 4 use_bias: false bias_initializer { kind: \"ones\" } } }")),
      "model.pbtxt:3:42: error: layer 'dense_1' (dense): bias_initializer given but use_bias is "
      "false");
  // Regularizers and the max-norm constraint ride on the kernel for training to apply.
  m = expandOk(model(
      "dim: 3",
      "layer { dense { units: 4 kernel_regularizer { l1: 0.001 l2: 0.01 } max_norm: 1.5 } }"));
  kernel = m.graph->findNode("dense_1/kernel");
  EXPECT_DOUBLE_EQ(kernel->f("l1"), 0.001);
  EXPECT_DOUBLE_EQ(kernel->f("l2"), 0.01);
  EXPECT_DOUBLE_EQ(kernel->f("max_norm"), 1.5);
  EXPECT_FALSE(m.graph->findNode("dense_1/bias")->hasAttr("l2"));
}

TEST(FrontendLayersTest, DenseActivationAttributeEqualsActivationLayer) {
  // Dense(2, activation=...) and Dense(2) + Activation(...) are the same graph up to the names
  // of non-parameter nodes, for every activation without parameters of its own.
  for (const char* act : {"sigmoid", "tanh", "relu", "leaky_relu", "rrelu", "elu", "selu", "gelu",
                          "swish", "mish", "softplus", "softmax", "log_softmax"}) {
    SCOPED_TRACE(act);
    frontend::ExpandedModel a =
        expandOk(model("dim: 3", dense("activation: \"" + std::string(act) + "\"")));
    frontend::ExpandedModel b = expandOk(
        model("dim: 3", dense() + "layer { activation { kind: \"" + std::string(act) + "\" } }"));
    ASSERT_TRUE(a.graph && b.graph);
    EXPECT_EQ(test::structure(*a.graph), test::structure(*b.graph));
    EXPECT_NE(a.graph->findNode("d/" + std::string(act)), nullptr);
    EXPECT_NE(b.graph->findNode("activation_1/" + std::string(act)), nullptr);
    // And the same numbers.
    EXPECT_EQ(test::forward(*a.graph, {{"x", x2x3()}}), test::forward(*b.graph, {{"x", x2x3()}}));
  }
  // The structural comparison does see a difference in an attribute.
  frontend::ExpandedModel a = expandOk(model("dim: 3", dense("activation: \"elu\"")));
  frontend::ExpandedModel c =
      expandOk(model("dim: 3", dense() + "layer { activation { kind: \"elu\" alpha: 0.5 } }"));
  EXPECT_NE(test::structure(*a.graph), test::structure(*c.graph));
  // "linear" (or nothing) adds no node.
  frontend::ExpandedModel lin = expandOk(model("dim: 3", dense("activation: \"linear\"")));
  EXPECT_EQ(test::structure(*lin.graph),
            test::structure(*expandOk(model("dim: 3", dense())).graph));
}

TEST(FrontendLayersTest, BatchNormExpansionAndInference) {
  frontend::ExpandedModel m =
      expandOk(model("dim: 3", dense() + "layer { batch_norm { momentum: 0.9 epsilon: 0.01 } }"));
  Node* bn = m.graph->findNode("batch_normalization_1");
  ASSERT_TRUE(bn);
  EXPECT_EQ(bn->op(), OpKind::BatchNorm);
  EXPECT_DOUBLE_EQ(bn->f("momentum"), 0.9);
  EXPECT_DOUBLE_EQ(bn->f("epsilon"), 0.01);
  EXPECT_FALSE(bn->b("training"));  // Inference form; training flips it.
  std::vector<std::string> params;
  for (Node* p : m.layers[1].parameters)
    params.push_back(p->name() + (p->b("trainable") ? "" : " (frozen)"));
  EXPECT_EQ(params,
            (std::vector<std::string>{"batch_normalization_1/gamma", "batch_normalization_1/beta",
                                      "batch_normalization_1/moving_mean (frozen)",
                                      "batch_normalization_1/moving_variance (frozen)"}));
  EXPECT_EQ(m.layers[1].paramCount(), 8);
  EXPECT_EQ(m.layers[1].trainableParamCount(), 4);
  // With the initial statistics (mean 0, variance 1, gamma 1, beta 0) inference computes
  // z / sqrt(1 + 0.01): -3.5 / 1.00498756 = -3.4826302, 2.5 / 1.00498756 = 2.4875930,
  // 0.5 / 1.00498756 = 0.4975186, -3 / 1.00498756 = -2.9851116.
  test::expectNear(test::forward(*m.graph, {{"x", x2x3()}}),
                   {-3.4826302, 2.4875930, 0.4975186, -2.9851116});

  // Defaults: momentum 0.99, epsilon 1e-3.
  m = expandOk(model("dim: 3", dense() + "layer { batch_norm {} }"));
  bn = m.graph->findNode("batch_normalization_1");
  EXPECT_DOUBLE_EQ(bn->f("momentum"), 0.99);
  EXPECT_DOUBLE_EQ(bn->f("epsilon"), 1e-3);
}

TEST(FrontendLayersTest, BatchNormWithoutCenterOrScaleHasNoBetaOrGamma) {
  frontend::ExpandedModel m =
      expandOk(model("dim: 3", dense() + "layer { batch_norm { center: false scale: false } }"));
  EXPECT_FALSE(m.graph->findNode("batch_normalization_1/gamma"));
  EXPECT_FALSE(m.graph->findNode("batch_normalization_1/beta"));
  EXPECT_EQ(m.layers[1].paramCount(), 4);  // Keras: 2 * units without center and scale.
  Node* bn = m.graph->findNode("batch_normalization_1");
  EXPECT_EQ(bn->operand(1)->node()->op(), OpKind::Constant);
  // epsilon 1e-3: z / sqrt(1.001) = z / 1.0004999 -> -3.4982513, 2.4987509, 0.4997502, -2.9985011
  test::expectNear(test::forward(*m.graph, {{"x", x2x3()}}),
                   {-3.4982513, 2.4987509, 0.4997502, -2.9985011});
}

TEST(FrontendLayersTest, BatchNormAxisOnRank3Input) {
  // [batch, 2, 3] normalized along axis 1 (2 features).
  frontend::ExpandedModel m = expandOk(model("dim: 2 dim: 3", "layer { batch_norm { axis: 1 } }"));
  EXPECT_EQ(m.graph->findNode("batch_normalization_1/gamma")->result()->type().str(), "float32[2]");
  EXPECT_CONTAINS(
      expandError(model("dim: 2 dim: 3", "layer { batch_norm { axis: 3 } }")),
      "model.pbtxt:3:22: error: layer 'batch_normalization_1' (batch_norm): axis 3 is out of "
      "range for the input (None, 2, 3) (rank 3)");
  EXPECT_CONTAINS(expandError(model("dim: 2 dim: 3", "layer { batch_norm { axis: 0 } }")),
                  "is the batch axis");
}

TEST(FrontendLayersTest, DropoutAndAlphaDropoutAreIdentityAtInference) {
  frontend::ExpandedModel m = expandOk(model(
      "dim: 3", dense() + "layer { dropout { rate: 0.5 } } layer { alpha_dropout { rate: 0.1 } }"));
  Node* d = m.graph->findNode("dropout_1");
  Node* a = m.graph->findNode("alpha_dropout_1");
  ASSERT_TRUE(d && a);
  EXPECT_EQ(d->op(), OpKind::Dropout);
  EXPECT_EQ(a->op(), OpKind::AlphaDropout);
  EXPECT_DOUBLE_EQ(d->f("rate"), 0.5);
  EXPECT_DOUBLE_EQ(a->f("rate"), 0.1);
  EXPECT_FALSE(d->b("training"));
  EXPECT_FALSE(a->b("training"));
  test::expectNear(test::forward(*m.graph, {{"x", x2x3()}}), kZ);
  EXPECT_EQ(m.layers[1].typeName, "Dropout");
  EXPECT_EQ(m.layers[2].typeName, "AlphaDropout");
}

TEST(FrontendLayersTest, FlattenAndReshape) {
  // [batch, 2, 3] -> flatten -> [batch, 6] -> reshape (3, -1) -> [batch, 3, 2].
  frontend::ExpandedModel m =
      expandOk(model("dim: 2 dim: 3",
                     "layer { flatten {} } layer { reshape { target_shape { dim: 3 dim: -1 } } }"));
  EXPECT_EQ(m.layers[0].output->type().str(), "float32[-1,6]");
  EXPECT_EQ(m.layers[1].output->type().str(), "float32[-1,3,2]");
  EXPECT_EQ(m.graph->findNode("reshape_1")->ints("shape"), (Shape{-1, 3, 2}));
  // Data order is kept (row-major): the values come out as they went in.
  Tensor x = floats({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  test::expectNear(test::forward(*m.graph, {{"x", x}}), {1, 2, 3, 4, 5, 6});
  EXPECT_CONTAINS(
      expandError(model("dim: 784", "layer { reshape { target_shape { dim: 28 dim: 27 } } }")),
      "model.pbtxt:3:19: error: layer 'reshape_1' (reshape): cannot reshape the input "
      "(None, 784) (784 values per example) to (None, 28, 27)");
  EXPECT_CONTAINS(
      expandError(model("dim: 784", "layer { reshape { target_shape { dim: 5 dim: -1 } } }")),
      "cannot reshape");  // 784 is not a multiple of 5
  EXPECT_CONTAINS(
      expandError(model("dim: 784", "layer { reshape { target_shape { dim: -1 dim: -1 } } }")),
      "at most one -1");
  // Dense needs a flat input and says how to get one.
  EXPECT_CONTAINS(
      expandError(model("dim: 28 dim: 28", "layer { dense { units: 10 } }")),
      "dense needs a (None, features) input, found (None, 28, 28); put a flatten layer before it");
}

TEST(FrontendLayersTest, LayerNamesFollowKerasAndUserNamesWin) {
  frontend::ExpandedModel m = expandOk(model(
      "dim: 4",
      "layer { dense { units: 3 } } layer { name: \"dense_2\" dense { units: 3 } }\n"
      "layer { dense { units: 3 } } layer { batch_norm {} } layer { batch_norm {} }\n"
      "layer { name: \"hidden\" dense { units: 2 } } layer { activation { kind: \"relu\" } }"));
  std::vector<std::string> names;
  for (const frontend::LayerInfo& l : m.layers) names.push_back(l.name);
  // The default for the second unnamed dense skips the user's dense_2.
  EXPECT_EQ(names,
            (std::vector<std::string>{"dense_1", "dense_2", "dense_3", "batch_normalization_1",
                                      "batch_normalization_2", "hidden", "activation_1"}));
  EXPECT_TRUE(m.graph->findNode("hidden/kernel"));
  EXPECT_TRUE(m.graph->findNode("activation_1/relu"));
  EXPECT_CONTAINS(
      expandError(model(
          "dim: 4",
          "layer { name: \"a\" dense { units: 3 } }\nlayer { name: \"a\" dense { units: 3 } }")),
      "model.pbtxt:4:9: error: layer name 'a' is already used by layer 1 (line 3)");
  EXPECT_CONTAINS(expandError(model("dim: 4", "layer { name: \"a/b\" dense { units: 3 } }")),
                  "must not contain '/'");
  EXPECT_CONTAINS(expandError(model("dim: 4", "layer { name: \"x\" dense { units: 3 } }")),
                  "is the input's name");
}

TEST(FrontendLayersTest, Float64ModelsHaveFloat64Parameters) {
  frontend::ExpandedModel m =
      expandOk("input { dtype: FLOAT64 shape { dim: 3 } }\n" + dense("activation: \"prelu\""));
  EXPECT_EQ(m.graph->findNode("d/kernel")->result()->type().str(), "float64[3,2]");
  EXPECT_EQ(m.graph->findNode("d/alpha")->result()->type().str(), "float64[2]");
  Tensor x = Tensor::fromVector<double>({2, 3}, {1, 2, 3, 0.5, -1, 0});
  // prelu with alpha 0.25: [-3.5 * 0.25, 2.5, 0.5, -3 * 0.25]
  test::expectNear(test::forward(*m.graph, {{"x", x}}), {-0.875, 2.5, 0.5, -0.75}, 1e-12);
  EXPECT_CONTAINS(expandError("input { dtype: INT32 shape { dim: 3 } }\nlayer { flatten {} }"),
                  "FLOAT32 or FLOAT64");
}

TEST(FrontendLayersTest, LayerInfoRecordsEachLayersNodes) {
  frontend::ExpandedModel m =
      expandOk(model("dim: 3", dense("activation: \"relu\"") + "layer { flatten {} }"));
  std::vector<std::string> nodes;
  for (Node* n : m.layers[0].nodes) nodes.push_back(n->name());
  EXPECT_EQ(nodes, (std::vector<std::string>{"d/matmul", "d/bias_add", "d/relu"}));
  EXPECT_EQ(m.layers[0].loc.line, 3);
  EXPECT_EQ(m.layers[0].kind, "dense");
  EXPECT_EQ(m.layers[1].nodes.size(), 1u);
  EXPECT_EQ(m.graph->outputs()[0].name, "logits");
  EXPECT_EQ(m.graph->outputs()[0].value, m.layers.back().output);
}

TEST(FrontendLayersTest, ParseErrorsNameTheLayerTheyAreIn) {
  // Both spellings of a message field, `layer {` and `layer: {`; the name may come first.
  EXPECT_CONTAINS(
      expandError(model("dim: 3",
                        "layer { dense { units: 2 } }\nlayer: { name: \"h\" dense { unit: 3 } }")),
      "model.pbtxt:4:28: error: layer 2 ('h'): DenseLayer has no field 'unit'; did you mean "
      "'units'?");
  EXPECT_CONTAINS(expandError(model("dim: 3", "layer { dense { units: 2 } }\nlayer { conv2d {} }")),
                  "model.pbtxt:4:9: error: layer 2: unknown layer kind 'conv2d'");
  // Outside layers, just the message and its fields.
  EXPECT_CONTAINS(
      expandError(model("dim: 3", "layer { dense { units: 2 } }", "training { los: \"mse\" }")),
      "model.pbtxt:4:12: error: Training has no field 'los'; did you mean 'loss'?");
}

}  // namespace
}  // namespace kiln
