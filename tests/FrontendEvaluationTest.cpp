// The evaluation expansion: the targets input, each loss and the accuracy metric, checked
// against hand-computed values; and losses that do not fit the model's output.
#include <gtest/gtest.h>

#include "FrontendTestUtil.h"

namespace kiln {
namespace {

using frontend::Expansion;
using test::expandError;
using test::expandOk;

// The dense layer of FrontendLayersTest: logits z = [[-3.5, 2.5], [0.5, -3]] on these inputs.
const std::string kDense =
    "layer { name: \"d\" dense { units: 2\n"
    "  kernel_initializer { kind: \"values\" values: [1, -1, 0.5, 2, -2, 0] }\n"
    "  bias_initializer { kind: \"values\" values: [0.5, -0.5] } } }\n";
Tensor x2x3() { return test::floats({2, 3}, {1, 2, 3, 0.5f, -1, 0}); }

frontend::ExpandedModel evaluation(const std::string& training) {
  return expandOk(test::model("dim: 3", kDense, "training { " + training + " }"),
                  Expansion::Evaluation);
}

TEST(FrontendEvaluationTest, SparseSoftmaxCrossEntropyAndAccuracy) {
  frontend::ExpandedModel m =
      evaluation("loss: \"sparse_softmax_cross_entropy\" metric: \"accuracy\"");
  ASSERT_TRUE(m.graph);
  Node* labels = m.graph->findNode("labels");
  ASSERT_TRUE(labels);
  EXPECT_EQ(labels->result()->type().str(), "int64[-1]");
  std::vector<std::string> outputs;
  for (const GraphOutput& o : m.graph->outputs())
    outputs.push_back(o.name + "=" + std::string(o.value->node()->opName()));
  EXPECT_EQ(outputs, (std::vector<std::string>{"logits=add", "loss=sparse_softmax_cross_entropy",
                                               "accuracy=accuracy"}));
  // Row 0: -log softmax([-3.5, 2.5])[1] = log(1 + e^-6) = 0.0024756851;
  // row 1: -log softmax([0.5, -3])[0] = log(1 + e^-3.5) = 0.0297504183; mean 0.0161130517.
  // Both argmaxes (1 and 0) match the labels: accuracy 1.
  std::map<std::string, Tensor> in = {{"x", x2x3()},
                                      {"labels", Tensor::fromVector<int64_t>({2}, {1, 0})}};
  test::expectNear(test::forward(*m.graph, in, "loss"), {0.0161130517});
  test::expectNear(test::forward(*m.graph, in, "accuracy"), {1.0});
  // Labels [0, 0]: row 0 costs -log softmax[0] = 6 + 0.0024756851; mean 3.0161130517; one hit.
  in["labels"] = Tensor::fromVector<int64_t>({2}, {0, 0});
  test::expectNear(test::forward(*m.graph, in, "loss"), {3.0161130517});
  test::expectNear(test::forward(*m.graph, in, "accuracy"), {0.5});
}

TEST(FrontendEvaluationTest, BinaryCrossEntropyFromLogitsAndBinaryAccuracy) {
  frontend::ExpandedModel m =
      evaluation("loss: \"binary_cross_entropy_with_logits\" metric: \"accuracy\"");
  ASSERT_TRUE(m.graph);
  EXPECT_EQ(m.graph->findNode("labels")->result()->type().str(), "float32[-1,2]");
  // max(z, 0) - z y + log(1 + e^-|z|) with y = [[0, 1], [1, 0]] leaves log(1 + e^-|z|):
  // (0.0297504 + 0.0788897 + 0.4740770 + 0.0485874) / 4 = 0.1578261.
  std::map<std::string, Tensor> in = {{"x", x2x3()},
                                      {"labels", test::floats({2, 2}, {0, 1, 1, 0})}};
  test::expectNear(test::forward(*m.graph, in, "loss"), {0.1578261221});
  // Predicted (z > 0) = [[0, 1], [1, 0]] = labels: accuracy 1; against all-ones, 2 of 4.
  test::expectNear(test::forward(*m.graph, in, "accuracy"), {1.0});
  in["labels"] = test::floats({2, 2}, {1, 1, 1, 1});
  test::expectNear(test::forward(*m.graph, in, "accuracy"), {0.5});
}

TEST(FrontendEvaluationTest, MeanSquaredErrorOnLabelsAndOnInputs) {
  frontend::ExpandedModel m = evaluation("loss: \"mean_squared_error\"");
  ASSERT_TRUE(m.graph);
  // Targets [[-3, 2], [0, 0]]: errors [-0.5, 0.5, 0.5, -3]; mean square (0.25 * 3 + 9) / 4
  // = 2.4375.
  std::map<std::string, Tensor> in = {{"x", x2x3()},
                                      {"labels", test::floats({2, 2}, {-3, 2, 0, 0})}};
  test::expectNear(test::forward(*m.graph, in, "loss"), {2.4375});

  // An autoencoder: the targets are the input itself, so there is no labels input.
  // out = 2x with W = 2I: mean((2x - x)^2) = mean(x^2) = (1 + 4 + 9 + 1) / 4 = 3.75.
  frontend::ExpandedModel ae =
      expandOk(test::model("dim: 2",
                           "layer { dense { units: 2 kernel_initializer { kind: \"values\" values: "
                           "[2, 0, 0, 2] } } }",
                           "training { loss: \"mean_squared_error\" targets: \"inputs\" }"),
               Expansion::Evaluation);
  ASSERT_TRUE(ae.graph);
  EXPECT_FALSE(ae.graph->findNode("labels"));
  EXPECT_EQ(ae.graph->inputs().size(), 1u);
  test::expectNear(test::forward(*ae.graph, {{"x", test::floats({2, 2}, {1, 2, 3, -1})}}, "loss"),
                   {3.75});
}

TEST(FrontendEvaluationTest, InferenceFormHasOnlyTheLogits) {
  frontend::ExpandedModel m = expandOk(
      test::model("dim: 3", kDense,
                  "training { loss: \"sparse_softmax_cross_entropy\" metric: \"accuracy\" }"));
  EXPECT_EQ(m.graph->outputs().size(), 1u);
  EXPECT_FALSE(m.graph->findNode("labels"));
  // Evaluation needs a loss.
  EXPECT_CONTAINS(expandError(test::model("dim: 3", kDense), Expansion::Evaluation),
                  "the model has no training block, so no loss to evaluate");
}

TEST(FrontendEvaluationTest, LossesThatDoNotFitTheOutputAreErrors) {
  // Checked in both forms, so `kiln check` catches them.
  for (Expansion mode : {Expansion::Inference, Expansion::Evaluation}) {
    EXPECT_CONTAINS(
        expandError(test::model("dim: 784", "layer { name: \"enc\" dense { units: 100 } }",
                                "training { loss: \"mean_squared_error\" targets: \"inputs\" }"),
                    mode),
        "model.pbtxt:4:12: error: training: targets \"inputs\": the last layer 'enc' gives (None, "
        "100) "
        "but the input 'x' is (None, 784)");
    EXPECT_CONTAINS(
        expandError(test::model("dim: 4 dim: 3", "layer { activation { kind: \"relu\" } }",
                                "training { loss: \"sparse_softmax_cross_entropy\" }"),
                    mode),
        "sparse_softmax_cross_entropy needs (None, classes) logits; the last layer 'activation_1' "
        "gives (None, 4, 3)");
  }
  EXPECT_CONTAINS(expandError("input { name: \"labels\" shape { dim: 3 } }\n" + kDense +
                                  "training { loss: \"sparse_softmax_cross_entropy\" }",
                              Expansion::Evaluation),
                  "the model's input is named 'labels'");
}

}  // namespace
}  // namespace kiln
