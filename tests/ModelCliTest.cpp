// The kiln command on layer-level model files: telling them from op-level graphs (text and
// binary, with each format's own errors), `kiln check` summaries, `kiln dot`, and `kiln run`
// with the model's seed.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>

#include "FrontendTestUtil.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/Dot.h"

namespace kiln::driver {
namespace {

namespace fs = std::filesystem;
const std::string kModel = test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt");
const std::string kGraph = test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt");

fs::path tempDir(const std::string& name) {
  return test::freshTempDir("kiln_modelcli_" + name);
}

std::string write(const fs::path& path, const std::string& data) {
  EXPECT_TRUE(writeFileAtomic(path.string(), data));
  return path.string();
}

TEST(ModelCliTest, ModelFilesAndGraphsAreToldApart) {
  auto m = loadAnyModel(kModel);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_TRUE(m->layerLevel);
  auto g = loadAnyModel(kGraph);
  ASSERT_TRUE(g) << g.error().str();
  EXPECT_FALSE(g->layerLevel);
  EXPECT_TRUE(g->model.layers.empty());
  // loadModel() hands back the expansion of a model file.
  auto expanded = loadModel(kModel);
  ASSERT_TRUE(expanded);
  EXPECT_TRUE((*expanded)->findNode("hidden1/kernel"));

  // Each format keeps its own errors, syntax errors included.
  fs::path d = tempDir("detect");
  std::string badModel =
      write(d / "m.pbtxt", "name: \"m\"\ninput { shape { dim: 4 } }\nlayer { dense { units: 3 }\n");
  auto e = loadAnyModel(badModel);
  ASSERT_FALSE(e);
  EXPECT_CONTAINS(e.error().str(), "m.pbtxt:4:1: error: layer 1: Expected identifier, got: ");
  std::string badGraph = write(
      d / "g.pbtxt",
      "input { name: \"x\" shape { dim: 2 } }\nnode { name: \"y\" op: \"relux\" input: \"x\" }\n");
  e = loadAnyModel(badGraph);
  ASSERT_FALSE(e);
  EXPECT_CONTAINS(e.error().str(),
                  "g.pbtxt:2:1: error: node 'y': unknown op 'relux'; did you mean 'relu'?");
}

TEST(ModelCliTest, BinaryModelFilesLoadToo) {
  auto parsed = frontend::readModelFile(kModel);
  ASSERT_TRUE(parsed);
  fs::path d = tempDir("binary");
  std::string pb = write(d / "mlp.pb", parsed->model.SerializeAsString());
  auto m = loadAnyModel(pb);
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_TRUE(m->layerLevel);
  EXPECT_EQ(graphToText(*m->model.graph), graphToText(*loadAnyModel(kModel)->model.graph));
  // A binary op-level graph still reads as a graph.
  std::string graphPb = (d / "graph.pb").string();
  ASSERT_TRUE(writeGraphFile(*loadAnyModel(kGraph)->model.graph, graphPb));
  auto g = loadAnyModel(graphPb);
  ASSERT_TRUE(g) << g.error().str();
  EXPECT_FALSE(g->layerLevel);
  // Binary errors name the file (there are no lines).
  proto::Model bad = parsed->model;
  bad.mutable_layer(0)->mutable_dense()->set_units(0);
  auto e = loadAnyModel(write(d / "bad.pb", bad.SerializeAsString()));
  ASSERT_FALSE(e);
  EXPECT_CONTAINS(e.error().str(),
                  "bad.pb: error: layer 'hidden1' (dense): units must be positive, found 0");
}

TEST(ModelCliTest, CheckPrintsTheLayerSummaryAndTheTrainingSpec) {
  testing::internal::CaptureStdout();
  EXPECT_EQ(runCheck({kModel}), 0);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_CONTAINS(out, "Layer (type)");
  EXPECT_CONTAINS(out, "hidden1 (Dense)");
  EXPECT_CONTAINS(out,
                  "Total params: 268,250\nTrainable params: 267,430\nNon-trainable params: 820\n");
  EXPECT_CONTAINS(out,
                  "Training: loss sparse_softmax_cross_entropy on labels; metrics accuracy\n"
                  "  optimizer sgd: learning_rate 0.01\n");
  // --ops: the op-level table of the expansion; --evaluation adds the loss.
  testing::internal::CaptureStdout();
  EXPECT_EQ(runCheck({kModel, "--ops", "--evaluation"}), 0);
  out = testing::internal::GetCapturedStdout();
  EXPECT_CONTAINS(out, "hidden1/matmul (matmul)");
  EXPECT_CONTAINS(out, "loss (sparse_softmax_cross_entropy)");
  // An op-level graph keeps its node table.
  testing::internal::CaptureStdout();
  EXPECT_EQ(runCheck({kGraph}), 0);
  out = testing::internal::GetCapturedStdout();
  EXPECT_CONTAINS(out, "Node (op)");
  EXPECT_EQ(out.find("Training:"), std::string::npos);
}

TEST(ModelCliTest, CheckEmitsTheExpandedGraph) {
  fs::path d = tempDir("emit");
  std::string out = (d / "mlp.graph.pbtxt").string();
  EXPECT_EQ(runCheck({kModel, "--quiet", "--emit-graph", out}), 0);
  // The written graph is an op-level graph that checks on its own and reads back the same.
  auto g = loadAnyModel(out);
  ASSERT_TRUE(g) << g.error().str();
  EXPECT_FALSE(g->layerLevel);
  EXPECT_EQ(graphToText(*g->model.graph), graphToText(*loadAnyModel(kModel)->model.graph));
  EXPECT_EQ(runCheck({kModel, "--emit-graph", (d / "missing" / "x.pbtxt").string(), "--quiet"}), 1);
}

// Every edge of a DOT text joins declared nodes; braces balance.
void expectWellFormedDot(const std::string& dot) {
  std::set<std::string> declared;
  std::regex decl(R"re(\n\s*(\w+) \[label=)re"), edge(R"re(\n\s*(\w+) -> (\w+) \[label=")re");
  for (auto it = std::sregex_iterator(dot.begin(), dot.end(), decl); it != std::sregex_iterator();
       ++it)
    declared.insert((*it)[1]);
  int edges = 0;
  for (auto it = std::sregex_iterator(dot.begin(), dot.end(), edge); it != std::sregex_iterator();
       ++it, ++edges) {
    EXPECT_TRUE(declared.count((*it)[1])) << (*it)[1];
    EXPECT_TRUE(declared.count((*it)[2])) << (*it)[2];
  }
  EXPECT_GT(edges, 0);
  EXPECT_EQ(std::count(dot.begin(), dot.end(), '{'), std::count(dot.begin(), dot.end(), '}'));
  EXPECT_TRUE(dot.starts_with("digraph "));
}

TEST(ModelCliTest, DotClustersLayersAndShowsShapes) {
  fs::path d = tempDir("dot");
  std::string file = (d / "mlp.dot").string();
  EXPECT_EQ(runDot({kModel, "-o", file}), 0);
  auto dot = readFileBytes(file);
  ASSERT_TRUE(dot);
  expectWellFormedDot(*dot);
  // One cluster per layer (8), labelled with its type and parameters.
  size_t clusters = 0;
  for (size_t p = dot->find("subgraph cluster_"); p != std::string::npos;
       p = dot->find("subgraph cluster_", p + 1))
    ++clusters;
  EXPECT_EQ(clusters, 8u);
  EXPECT_CONTAINS(*dot, "label=\"hidden1 (Dense)\\n235,500 params\"");
  // Parameters with their shapes (non-trainable marked), edges with tensor shapes.
  EXPECT_CONTAINS(*dot, "[label=\"kernel\\n(784, 300)\", shape=note");
  EXPECT_CONTAINS(*dot, "[label=\"moving_mean\\n(300,)\\nnon-trainable\"");
  EXPECT_CONTAINS(*dot, "[label=\"(None, 784)\"]");
  EXPECT_CONTAINS(*dot, "[label=\"logits\", shape=oval");
  // Op-level graphs cluster by name prefix; the evaluation graph draws its loss.
  testing::internal::CaptureStdout();
  EXPECT_EQ(runDot({kGraph}), 0);
  std::string opLevel = testing::internal::GetCapturedStdout();
  expectWellFormedDot(opLevel);
  EXPECT_CONTAINS(opLevel, "label=\"hidden1\";");
  EXPECT_CONTAINS(opLevel, "label=\"batch_normalization_1\\nbatch_norm\"");
  testing::internal::CaptureStdout();
  EXPECT_EQ(runDot({kModel, "--evaluation"}), 0);
  EXPECT_CONTAINS(testing::internal::GetCapturedStdout(), "[label=\"loss\", shape=oval");
  EXPECT_EQ(runDot({}), 2);
  EXPECT_EQ(runDot({(d / "missing.pbtxt").string()}), 1);
}

TEST(ModelCliTest, RunUsesTheModelsSeedUnlessGivenOne) {
  fs::path d = tempDir("run");
  Tensor x(DType::Float32, {2, 784});
  for (int64_t i = 0; i < x.size(); ++i)
    x.setDouble(i, static_cast<double>((i * 13) % 255) / 255.0);
  std::string xPath = (d / "x.npy").string();
  ASSERT_TRUE(writeTensorNpy(x, xPath));
  auto logits = [&](std::vector<std::string> extra, const std::string& dir) {
    std::vector<std::string> args = {kModel, "--input", "x=" + xPath, "--output-dir",
                                     (d / dir).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    testing::internal::CaptureStdout();
    EXPECT_EQ(runRun(args), 0);
    testing::internal::GetCapturedStdout();
    auto t = readTensorNpy((d / dir / "logits.npy").string());
    EXPECT_TRUE(t);
    return t ? t->str(20) : "";
  };
  std::string byDefault = logits({}, "a");
  EXPECT_EQ(byDefault, logits({"--seed", "42"}, "b"));  // the model's training.seed
  EXPECT_NE(byDefault, logits({"--seed", "43"}, "c"));
  // --evaluation runs the loss and the metric too (labels as an int64 .npy).
  std::string yPath = (d / "y.npy").string();
  ASSERT_TRUE(writeTensorNpy(Tensor::fromVector<int64_t>({2}, {3, 7}), yPath));
  testing::internal::CaptureStdout();
  EXPECT_EQ(runRun({kModel, "--evaluation", "--input", "x=" + xPath, "--input", "labels=" + yPath,
                    "--output-dir", (d / "e").string()}),
            0);
  testing::internal::GetCapturedStdout();
  auto loss = readTensorNpy((d / "e" / "loss.npy").string());
  ASSERT_TRUE(loss);
  EXPECT_GT(loss->getDouble(0), 0.0);
  EXPECT_TRUE(fs::exists(d / "e" / "accuracy.npy"));
}

}  // namespace
}  // namespace kiln::driver
