// Every example model passes `kiln check` (with the book's fashion_mlp totals), expands for
// evaluation and runs; reusable layers share names; the model file agrees with the hand-written
// op-level fashion_mlp graph.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <set>

#include "FrontendTestUtil.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/Summary.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> exampleModels() {
  std::vector<fs::path> out;
  for (const fs::directory_entry& dir : fs::directory_iterator(test::sourcePath("examples")))
    if (dir.is_directory())
      for (const fs::directory_entry& e : fs::directory_iterator(dir.path()))
        if (e.path().string().ends_with(".model.pbtxt")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string example(const std::string& name) {
  return test::sourcePath("examples/" + name + "/" + name + ".model.pbtxt");
}

frontend::ExpandedModel load(const std::string& path,
                             frontend::Expansion mode = frontend::Expansion::Inference) {
  auto m = driver::loadAnyModel(path, mode);
  if (!m) {
    ADD_FAILURE() << m.error().str();
    return {};
  }
  EXPECT_TRUE(m->layerLevel);
  return std::move(m->model);
}

TEST(ExamplesTest, EveryExamplePassesCheckEvaluatesAndRuns) {
  std::vector<fs::path> models = exampleModels();
  EXPECT_EQ(models.size(), 9u);  // fashion_best is the ninth
  for (const fs::path& p : models) {
    SCOPED_TRACE(p.filename().string());
    EXPECT_EQ(driver::runCheck({p.string(), "--quiet"}), 0);
    frontend::ExpandedModel eval = load(p.string(), frontend::Expansion::Evaluation);
    ASSERT_TRUE(eval.graph && eval.training);
    EXPECT_TRUE(eval.graph->findValue("loss"));
    // Every parameter is `<layer>/<tensor>` for one of the model's layers, as checkpoints,
    // partial restore and freezing expect.
    std::set<std::string> layers;
    for (const frontend::LayerInfo& l : eval.layers) layers.insert(l.name);
    for (Node* param : eval.graph->parameters())
      EXPECT_TRUE(layers.count(param->name().substr(0, param->name().find('/')))) << param->name();
    // A forward pass of the inference graph on two examples gives finite logits.
    frontend::ExpandedModel m = load(p.string());
    ASSERT_TRUE(m.graph);
    Tensor x(DType::Float32, bindBatch(m.input->result()->type().shape, 2));
    for (int64_t i = 0; i < x.size(); ++i) x.setDouble(i, static_cast<double>(i % 17) / 17.0);
    std::vector<double> logits =
        test::forward(*m.graph, {{m.input->name(), x}}, "logits", eval.training->seed);
    ASSERT_FALSE(logits.empty());
    for (double v : logits) EXPECT_TRUE(std::isfinite(v));
  }
}

TEST(ExamplesTest, FashionMlpHasTheBooksSummary) {
  frontend::ExpandedModel m = load(example("fashion_mlp"));
  ASSERT_TRUE(m.graph);
  std::string s = driver::summarizeModel(m);
  EXPECT_CONTAINS(s,
                  "Total params: 268,250\nTrainable params: 267,430\nNon-trainable params: 820\n");
  EXPECT_CONTAINS(s, "Model: \"fashion_mlp\"\n");
  // Keras's columns and rows: each layer with its type, output shape and parameter count.
  EXPECT_TRUE(std::regex_search(s, std::regex(" Layer \\(type\\) +Output Shape +Param #\n")));
  for (const char* row :
       {" hidden1 \\(Dense\\) +\\(None, 300\\) +235,500\n",
        " batch_normalization_1 \\(BatchNormalization\\) +\\(None, 300\\) +1,200\n",
        " activation_1 \\(Activation\\) +\\(None, 300\\) +0\n",
        " hidden2 \\(Dense\\) +\\(None, 100\\) +30,100\n",
        " output \\(Dense\\) +\\(None, 10\\) +1,010\n",
        " batch_normalization_3 \\(BatchNormalization\\) +\\(None, 10\\) +40\n"})
    EXPECT_TRUE(std::regex_search(s, std::regex(row))) << row << "\n" << s;
  EXPECT_EQ(m.training->optimizer.kind, frontend::OptimizerKind::Sgd);
  EXPECT_DOUBLE_EQ(m.training->optimizer.learningRate, 0.01);
  EXPECT_EQ(m.training->batchSize, 200);
}

TEST(ExamplesTest, FashionMlpModelFileComputesWhatTheHandWrittenGraphDoes) {
  frontend::ExpandedModel m = load(example("fashion_mlp"));
  auto g = driver::loadModel(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(m.graph && g);
  // The same parameters (names, shapes, trainable flags) ...
  auto params = [](const Graph& graph) {
    std::set<std::string> out;
    for (Node* p : graph.parameters())
      out.insert(p->name() + " " + p->result()->type().str() +
                 (p->b("trainable") ? "" : " frozen"));
    return out;
  };
  EXPECT_EQ(params(*m.graph), params(**g));
  // ... and, given the same values, the same logits (node names differ: elu_1 vs activation_1/elu).
  Interpreter a(*m.graph), b(**g);
  ASSERT_TRUE(a.initializeParameters(5));
  ASSERT_TRUE(b.initializeParameters(6));
  for (const auto& [name, value] : a.parameters()) {
    Tensor v = value;
    // Moving statistics away from 0/1 so batch norm does real work.
    if (name.ends_with("moving_mean") || name.ends_with("moving_variance"))
      for (int64_t i = 0; i < v.size(); ++i)
        v.setDouble(i, 0.5 + 0.01 * static_cast<double>(i % 7));
    ASSERT_TRUE(a.setParameter(name, v));
    ASSERT_TRUE(b.setParameter(name, v));
  }
  Tensor x(DType::Float32, {3, 784});
  for (int64_t i = 0; i < x.size(); ++i)
    x.setDouble(i, static_cast<double>((i * 37) % 255) / 255.0);
  auto ya = a.run({{"x", x}}), yb = b.run({{"x", x}});
  ASSERT_TRUE(ya && yb);
  EXPECT_EQ(ya->at("logits").str(30), yb->at("logits").str(30));
}

TEST(ExamplesTest, TransferAndPretrainingModelsShareTheReusedLayers) {
  auto tensors = [](const frontend::ExpandedModel& m, const std::string& prefix) {
    std::map<std::string, std::string> out;
    for (Node* p : m.graph->parameters())
      if (p->name().starts_with(prefix)) out[p->name()] = p->result()->type().str();
    return out;
  };
  frontend::ExpandedModel a = load(example("transfer_a")), b = load(example("transfer_b"));
  ASSERT_TRUE(a.graph && b.graph);
  auto hiddenA = tensors(a, "hidden"), hiddenB = tensors(b, "hidden");
  EXPECT_EQ(hiddenA.size(), 10u);  // hidden1..hidden5, kernel and bias
  EXPECT_EQ(hiddenA, hiddenB);
  EXPECT_EQ(tensors(a, "output_a")["output_a/kernel"], "float32[50,8]");
  EXPECT_EQ(tensors(b, "output_b")["output_b/kernel"], "float32[50,1]");
  EXPECT_EQ(b.training->loss, frontend::LossKind::BinaryCrossEntropyWithLogits);

  frontend::ExpandedModel ae = load(example("autoencoder")),
                          clf = load(example("autoencoder_classifier"));
  ASSERT_TRUE(ae.graph && clf.graph);
  auto encoder = tensors(ae, "encoder");
  EXPECT_EQ(encoder.size(), 4u);
  EXPECT_EQ(encoder, tensors(clf, "encoder"));
  EXPECT_EQ(ae.training->targets, frontend::Targets::Inputs);
  EXPECT_EQ(ae.layers.back().output->type().str(), "float32[-1,784]");
}

TEST(ExamplesTest, DeepExamplesHaveTheirTechniques) {
  frontend::ExpandedModel selu = load(example("deep_selu"));
  ASSERT_TRUE(selu.graph);
  int seluLayers = 0;
  for (const frontend::LayerInfo& l : selu.layers)
    if (l.kind == "dense" && !l.nodes.empty() && l.nodes.back()->op() == OpKind::Selu) {
      ++seluLayers;
      EXPECT_EQ(l.parameters[0]->s("init"), "lecun_normal");
    }
  EXPECT_EQ(seluLayers, 20);
  EXPECT_TRUE(selu.graph->findNode("alpha_dropout_1"));
  EXPECT_EQ(selu.training->optimizer.kind, frontend::OptimizerKind::Nadam);

  frontend::ExpandedModel swish = load(example("deep_swish_1cycle"));
  ASSERT_TRUE(swish.graph);
  int swishNodes = 0, bnNodes = 0;
  for (Node* n : swish.graph->nodes()) {
    swishNodes += n->op() == OpKind::Swish;
    bnNodes += n->op() == OpKind::BatchNorm;
  }
  EXPECT_EQ(swishNodes, 20);
  EXPECT_EQ(bnNodes, 20);
  EXPECT_EQ(swish.graph->findNode("hidden1/kernel")->s("init"), "he_normal");
  EXPECT_EQ(swish.training->schedule.kind, frontend::ScheduleKind::OneCycle);
  EXPECT_EQ(swish.training->clipping.mode, frontend::ClipMode::GlobalNorm);
  EXPECT_DOUBLE_EQ(swish.training->clipping.threshold, 1.0);

  frontend::ExpandedModel reg = load(example("fashion_regularized"));
  ASSERT_TRUE(reg.graph);
  EXPECT_DOUBLE_EQ(reg.graph->findNode("hidden1/kernel")->f("l2"), 0.01);
  EXPECT_DOUBLE_EQ(reg.graph->findNode("hidden1/kernel")->f("max_norm"), 1.0);
  EXPECT_TRUE(reg.graph->findNode("dropout_3"));
  EXPECT_EQ(reg.training->schedule.kind, frontend::ScheduleKind::Exponential);
}

}  // namespace
}  // namespace kiln
