// Every activation of chapter11.md written in a model file: its node, its parameters, and a
// forward pass against hand-computed values; and the checks on activation parameters.
#include <gtest/gtest.h>

#include "FrontendTestUtil.h"

namespace kiln {
namespace {

using test::expandError;
using test::expandOk;

// Input [batch, 2]; a model of just the activation layer, run on
//   z = [[-3.5, 2.5], [0.5, -3]].
std::string act(const std::string& body) {
  return test::model("dim: 2", "layer { activation { " + body + " } }");
}
std::vector<double> run(const std::string& body) {
  frontend::ExpandedModel m = expandOk(act(body));
  if (!m.graph) return {};
  return test::forward(*m.graph, {{"x", test::floats({2, 2}, {-3.5f, 2.5f, 0.5f, -3.0f})}});
}

TEST(FrontendActivationsTest, Sigmoid) {
  // 1 / (1 + e^-z): 1/(1 + e^3.5) = 0.029312231, 1/(1 + e^-2.5) = 0.92414182,
  // 1/(1 + e^-0.5) = 0.622459331, 1/(1 + e^3) = 0.047425873
  test::expectNear(run("kind: \"sigmoid\""), {0.029312231, 0.92414182, 0.622459331, 0.047425873});
}

TEST(FrontendActivationsTest, Tanh) {
  test::expectNear(run("kind: \"tanh\""), {-0.998177898, 0.986614298, 0.462117157, -0.995054754});
}

TEST(FrontendActivationsTest, Relu) { test::expectNear(run("kind: \"relu\""), {0, 2.5, 0.5, 0}); }

TEST(FrontendActivationsTest, LeakyRelu) {
  // Default alpha 0.01: -3.5 * 0.01 = -0.035, -3 * 0.01 = -0.03; the "huge leak" 0.2: -0.7, -0.6.
  test::expectNear(run("kind: \"leaky_relu\""), {-0.035, 2.5, 0.5, -0.03});
  test::expectNear(run("kind: \"leaky_relu\" alpha: 0.2"), {-0.7, 2.5, 0.5, -0.6});
}

TEST(FrontendActivationsTest, RReluUsesTheMeanSlopeAtInference) {
  // alpha = (1/8 + 1/3) / 2 = 11/48: -3.5 * 11/48 = -0.80208333, -3 * 11/48 = -0.6875.
  test::expectNear(run("kind: \"rrelu\""), {-0.802083333, 2.5, 0.5, -0.6875});
  // lower 0.1, upper 0.3: alpha 0.2.
  test::expectNear(run("kind: \"rrelu\" lower: 0.1 upper: 0.3"), {-0.7, 2.5, 0.5, -0.6});
  frontend::ExpandedModel m = expandOk(act("kind: \"rrelu\""));
  Node* n = m.graph->findNode("activation_1/rrelu");
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->b("training"));
  EXPECT_CONTAINS(expandError(act("kind: \"rrelu\" lower: 0.5 upper: 0.25")),
                  "model.pbtxt:3:36: error: layer 'activation_1' (activation): lower (0.5) must "
                  "not exceed upper (0.25)");
}

TEST(FrontendActivationsTest, PReluLearnsOneAlphaPerUnit) {
  frontend::ExpandedModel m = expandOk(act("kind: \"prelu\""));
  Node* alpha = m.graph->findNode("activation_1/alpha");
  ASSERT_TRUE(alpha);
  EXPECT_EQ(alpha->result()->type().str(), "float32[2]");  // one per unit
  EXPECT_TRUE(alpha->b("trainable"));
  EXPECT_EQ(m.layers[0].paramCount(), 2);
  // alpha starts at 0.25: -3.5 * 0.25 = -0.875, -3 * 0.25 = -0.75.
  test::expectNear(run("kind: \"prelu\""), {-0.875, 2.5, 0.5, -0.75});
  // A chosen start, and per-unit values set by hand: unit 0 slope 0.5, unit 1 slope 2.
  test::expectNear(run("kind: \"prelu\" alpha: 0.1"), {-0.35, 2.5, 0.5, -0.3});
  Interpreter interp(*m.graph);
  ASSERT_TRUE(interp.initializeParameters(0));
  ASSERT_TRUE(interp.setParameter("activation_1/alpha", test::floats({2}, {0.5f, 2.0f})));
  auto out = interp.run({{"x", test::floats({2, 2}, {-3.5f, 2.5f, 0.5f, -3.0f})}});
  ASSERT_TRUE(out);
  // [-3.5 * 0.5, 2.5, 0.5, -3 * 2]
  EXPECT_EQ(out->at("logits").str(), "float32[2,2] {-1.75, 2.5, 0.5, -6}");
}

TEST(FrontendActivationsTest, Elu) {
  // alpha (e^z - 1) below 0: e^-3.5 - 1 = -0.969802617, e^-3 - 1 = -0.950212932; alpha 0.5 halves
  // them.
  test::expectNear(run("kind: \"elu\""), {-0.969802617, 2.5, 0.5, -0.950212932});
  test::expectNear(run("kind: \"elu\" alpha: 0.5"), {-0.484901308, 2.5, 0.5, -0.475106466});
}

TEST(FrontendActivationsTest, Selu) {
  // lambda * z above 0 (1.0507009873554805 * 2.5 = 2.626752468), lambda * alpha * (e^z - 1)
  // below (1.7580993408473766 * -0.969802617 = -1.705009341).
  test::expectNear(run("kind: \"selu\""), {-1.705009341, 2.626752468, 0.525350494, -1.670568729});
}

TEST(FrontendActivationsTest, GeluAndItsApproximations) {
  // z * Phi(z): Phi(2.5) = 0.99379033 -> 2.484475837; Phi(0.5) = 0.69146246 -> 0.345731231.
  test::expectNear(run("kind: \"gelu\""), {-0.000814202, 2.484475837, 0.345731231, -0.004049694});
  // 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
  test::expectNear(run("kind: \"gelu\" approximate: \"tanh\""),
                   {-0.000616198, 2.484915734, 0.34571401, -0.003637392});
  // z * sigmoid(1.702 z)
  test::expectNear(run("kind: \"gelu\" approximate: \"sigmoid\""),
                   {-0.009033446, 2.465013835, 0.350388437, -0.01807131});
  EXPECT_CONTAINS(expandError(act("kind: \"gelu\" approximate: \"fast\"")),
                  "unknown gelu approximation 'fast' (one of none, tanh or sigmoid)");
}

TEST(FrontendActivationsTest, SwishFixedAndLearnable) {
  // z * sigmoid(z) (SiLU): 2.5 * 0.92414182 = 2.31035455.
  test::expectNear(run("kind: \"swish\""), {-0.102592808, 2.31035455, 0.311229666, -0.14227762});
  // beta 2: z * sigmoid(2z): 2.5 * sigmoid(5) = 2.483267873.
  test::expectNear(run("kind: \"swish\" beta: 2"),
                   {-0.003188679, 2.483267873, 0.365529289, -0.007417869});
  EXPECT_FALSE(expandOk(act("kind: \"swish\" beta: 2")).graph->findNode("activation_1/beta_swish"));
  // Learnable: a scalar parameter `<layer>/beta_swish` starting at beta, fed as the operand.
  frontend::ExpandedModel m = expandOk(act("kind: \"swish\" beta: 2 learnable_beta: true"));
  Node* beta = m.graph->findNode("activation_1/beta_swish");
  ASSERT_TRUE(beta);
  EXPECT_EQ(beta->result()->type().str(), "float32[]");
  EXPECT_EQ(beta->s("init"), "constant");
  EXPECT_DOUBLE_EQ(beta->f("init_value"), 2.0);
  EXPECT_EQ(m.graph->findNode("activation_1/swish")->operand(1)->node(), beta);
  test::expectNear(run("kind: \"swish\" beta: 2 learnable_beta: true"),
                   {-0.003188679, 2.483267873, 0.365529289, -0.007417869});
  // Default start 1.0.
  test::expectNear(run("kind: \"swish\" learnable_beta: true"),
                   {-0.102592808, 2.31035455, 0.311229666, -0.14227762});
}

TEST(FrontendActivationsTest, MishAndSoftplus) {
  // softplus = log(1 + e^z): log(1 + e^2.5) = 2.578889734; mish = z tanh(softplus z).
  test::expectNear(run("kind: \"softplus\""), {0.029750418, 2.578889734, 0.974076984, 0.048587352});
  test::expectNear(run("kind: \"mish\""), {-0.104095754, 2.471392305, 0.375245211, -0.145647461});
}

TEST(FrontendActivationsTest, SoftmaxAndLogSoftmaxAlongTheLastAxis) {
  // Row 0: e^-3.5 / (e^-3.5 + e^2.5) = 1 / (1 + e^6) = 0.0024726232; row 1: 1 / (1 + e^-3.5).
  test::expectNear(run("kind: \"softmax\""),
                   {0.0024726232, 0.9975273768, 0.9706877692, 0.0293122308});
  test::expectNear(run("kind: \"log_softmax\""),
                   {-6.0024756851, -0.0024756851, -0.0297504183, -3.5297504183});
  EXPECT_CONTAINS(expandError(act("kind: \"softmax\" axis: 0")),
                  "axis 0 is not a feature axis of the input (None, 2)");
}

TEST(FrontendActivationsTest, ParametersAreCheckedAgainstTheKind) {
  EXPECT_CONTAINS(expandError(act("kind: \"relu\" alpha: 0.2")),
                  "model.pbtxt:3:35: error: layer 'activation_1' (activation): relu takes no alpha "
                  "(leaky_relu, elu, prelu do)");
  EXPECT_CONTAINS(
      expandError(act("kind: \"elux\"")),
      "model.pbtxt:3:22: error: layer 'activation_1' (activation): unknown activation 'elux'; "
      "did you mean 'elu'?");
  EXPECT_CONTAINS(expandError(act("kind: \"leaky_relu\" alpha: -1")),
                  "alpha must be at least 0, found -1");
  EXPECT_CONTAINS(expandError(act("alpha: 0.2")), "an activation layer needs a kind");
  EXPECT_CONTAINS(expandError(act("kind: \"silu\"")), "did you mean 'swish'?");
  // In a dense layer the activation string is what the error points at.
  EXPECT_CONTAINS(
      expandError(test::model("dim: 2", "layer { dense { units: 2 activation: \"rellu\" } }")),
      "model.pbtxt:3:26: error: layer 'dense_1' (dense): unknown activation 'rellu'; did you "
      "mean 'relu'?");
}

TEST(FrontendActivationsTest, DenseActivationPReluNamesItsAlphaAfterTheDenseLayer) {
  frontend::ExpandedModel m = expandOk(
      test::model("dim: 3", "layer { name: \"h\" dense { units: 4 activation: \"prelu\" } }"));
  EXPECT_TRUE(m.graph->findNode("h/alpha"));
  EXPECT_TRUE(m.graph->findNode("h/prelu"));
  EXPECT_EQ(m.layers[0].paramCount(), 3 * 4 + 4 + 4);
}

}  // namespace
}  // namespace kiln
