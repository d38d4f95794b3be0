// The tools around a training run: --log-gradients diagnostics (checked against the values the
// interpreter computes for the same step), a separate validation set, kiln plot's SVG and its
// errors, and kiln predict (probabilities, Monte Carlo dropout, checkpoint mismatches).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "compiler/driver/Commands.h"
#include "compiler/training/Diagnostics.h"
#include "compiler/training/Trainer.h"
#include "runtime/Npy.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

fs::path tempDir(const std::string& name) {
  return test::freshTempDir("kiln_tools_" + name);
}

const char* kModel = R"(
name: "tools"
input { name: "x" shape { dim: 6 } }
layer { name: "hidden1" dense { units: 8 activation: "relu" } }
layer { name: "hidden2" dense { units: 5 activation: "sigmoid" } }
layer { dropout { rate: 0.3 } }
layer { name: "output" dense { units: 3 } }
training {
  loss: "sparse_softmax_cross_entropy" metric: "accuracy"
  optimizer { kind: "adam" learning_rate: 0.02 }
  epochs: 3 batch_size: 16 seed: 3
}
)";

std::string writeText(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  return p.string();
}

/// A CSV data set with 3 classes that a small MLP separates: the label is which of three
/// feature groups has the largest sum.
void writeCsv(const fs::path& p, int rows, int seed) {
  std::ofstream f(p);
  f << "label,f0,f1,f2,f3,f4,f5\n";
  uint64_t s = static_cast<uint64_t>(seed) * 2654435761u + 1;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>((s >> 11) & 0xFFFF) / 65535.0;
  };
  for (int r = 0; r < rows; ++r) {
    double v[6];
    for (double& x : v) x = next();
    int label = 0;
    double best = -1;
    for (int c = 0; c < 3; ++c)
      if (v[2 * c] + v[2 * c + 1] > best) best = v[2 * c] + v[2 * c + 1], label = c;
    f << label;
    for (double x : v) f << "," << x;
    f << "\n";
  }
}

TEST(TrainingToolsTest, DiagnosticsEqualTheStepsOwnValues) {
  fs::path d = tempDir("diag");
  std::string model = writeText(d / "m.model.pbtxt", kModel);
  auto m = loadTrainingModel(model, "", nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  auto names = addTrainingDiagnostics(*m->stepGraph, m->info);
  ASSERT_TRUE(names) << names.error().str();
  ASSERT_TRUE(verifyGraph(*m->stepGraph));
  std::vector<std::string> want = {"diag/hidden1/grad_norm", "diag/hidden2/grad_norm", "diag/output/grad_norm",
                                   "diag/hidden1/mean",      "diag/hidden1/std",       "diag/hidden1/dead",
                                   "diag/hidden2/mean",      "diag/hidden2/std",       "diag/hidden2/saturated"};
  EXPECT_EQ(*names, want);

  Interpreter interp(*m->stepGraph);
  ASSERT_TRUE(interp.initializeParameters(5));
  Tensor x(DType::Float32, {16, 6});
  Tensor labels(DType::Int64, {16});
  for (int64_t i = 0; i < x.size(); ++i) x.setDouble(i, std::sin(1.7 * static_cast<double>(i)) * 3.0);
  for (int64_t i = 0; i < 16; ++i) labels.setDouble(i, static_cast<double>(i % 3));
  RunOptions ro;
  ro.seed = 3;
  auto all = interp.runAll({{"x", x}, {"labels", labels}}, ro);
  ASSERT_TRUE(all) << all.error().str();
  auto out = interp.run({{"x", x}, {"labels", labels}}, ro);
  ASSERT_TRUE(out) << out.error().str();
  auto valueOf = [&](const Value* v) -> const Tensor& { return all->at(v->name()); };

  // Gradient norms: the square root of the sum of squares of the layer's parameter gradients.
  std::map<std::string, double> ss;
  for (size_t i = 0; i < m->info.trainable.size(); ++i) {
    const Tensor& g = valueOf(m->info.gradients[i]);
    std::string layer = m->info.trainable[i].substr(0, m->info.trainable[i].find('/'));
    for (int64_t k = 0; k < g.size(); ++k) ss[layer] += g.getDouble(k) * g.getDouble(k);
  }
  for (const auto& [layer, sum] : ss)
    EXPECT_NEAR(out->at("diag/" + layer + "/grad_norm").getDouble(0), std::sqrt(sum), 1e-5 * std::sqrt(sum)) << layer;
  EXPECT_GT(ss["hidden1"], 0.0);

  // Activation statistics from the forward nodes' own values.
  const Node* relu = m->stepGraph->findNode("hidden1/relu");
  const Node* sig = m->stepGraph->findNode("hidden2/sigmoid");
  ASSERT_TRUE(relu && sig);
  const Tensor& pre = valueOf(relu->operand(0));
  const Tensor& y = valueOf(relu->result(0));
  double dead = 0, mean = 0, sq = 0;
  for (int64_t k = 0; k < y.size(); ++k) {
    dead += pre.getDouble(k) <= 0;
    mean += y.getDouble(k);
    sq += y.getDouble(k) * y.getDouble(k);
  }
  const auto n = static_cast<double>(y.size());
  EXPECT_NEAR(out->at("diag/hidden1/dead").getDouble(0), dead / n, 1e-6);
  EXPECT_GT(dead, 0.0);
  EXPECT_LT(dead, n);
  EXPECT_NEAR(out->at("diag/hidden1/mean").getDouble(0), mean / n, 1e-5);
  EXPECT_NEAR(out->at("diag/hidden1/std").getDouble(0), std::sqrt(sq / n - (mean / n) * (mean / n)), 1e-4);
  const Tensor& s = valueOf(sig->result(0));
  double sat = 0;
  for (int64_t k = 0; k < s.size(); ++k) sat += s.getDouble(k) < 0.01 || s.getDouble(k) > 0.99;
  EXPECT_NEAR(out->at("diag/hidden2/saturated").getDouble(0), sat / static_cast<double>(s.size()), 1e-6);
}

TEST(TrainingToolsTest, SeparateValidationSet) {
  fs::path d = tempDir("val");
  writeCsv(d / "train.csv", 300, 1);
  writeCsv(d / "test.csv", 100, 2);
  writeCsv(d / "val.csv", 120, 3);
  rt::DataOptions o;
  o.dir = d.string();
  o.validationRows = 0;
  o.validationFeatures = (d / "val.csv").string();
  rt::DataSplits s;
  ASSERT_EQ(rt::loadDataSplits(o, &s), "");
  EXPECT_EQ(s.train.rows, 300) << "no rows of the training file go to validation";
  EXPECT_EQ(s.validation.rows, 120);
  EXPECT_EQ(s.validation.source, (d / "val.csv").string());
  o.validationRows = 50;
  EXPECT_NE(rt::loadDataSplits(o, &s).find("give one or the other"), std::string::npos);
  // Rows of another width: named with both shapes.
  std::ofstream(d / "narrow.csv") << "1,0.5,0.5\n";
  o.validationRows = 0;
  o.validationFeatures = (d / "narrow.csv").string();
  std::string e = rt::loadDataSplits(o, &s);
  EXPECT_NE(e.find("narrow.csv: validation rows are [2] but training rows are [6]"), std::string::npos) << e;
  o.validationFeatures = (d / "x_val.npy").string();
  e = rt::loadDataSplits(o, &s);
  EXPECT_NE(e.find("needs its labels .npy too"), std::string::npos) << e;
}

TEST(TrainingToolsTest, TrainLogPlotAndPredict) {
  fs::path d = tempDir("run");
  writeCsv(d / "train.csv", 600, 4);
  writeCsv(d / "test.csv", 200, 5);
  std::string model = writeText(d / "m.model.pbtxt", kModel);
  std::string metrics = (d / "m.jsonl").string(), ckpt = (d / "m.safetensors").string();
  ASSERT_EQ(driver::runTrain({model, "--data", d.string(), "--validation-rows", "100", "--metrics", metrics,
                              "--log-gradients", "4", "--save", ckpt, "--no-progress"}),
            0);
  // 500 rows in batches of 16: 32 steps per epoch, 3 epochs; gradient lines at steps 1, 5, ..., 93.
  std::ifstream in(metrics);
  std::string line;
  int epochLines = 0, gradLines = 0, testLines = 0;
  while (std::getline(in, line)) {
    if (line.find("\"diag/hidden1/grad_norm\"") != std::string::npos) ++gradLines;
    else if (line.find("\"val_loss\"") != std::string::npos) ++epochLines;
    else if (line.find("\"test_accuracy\"") != std::string::npos) ++testLines;
  }
  EXPECT_EQ(epochLines, 3);
  EXPECT_EQ(gradLines, 24);
  EXPECT_EQ(testLines, 1);
  EXPECT_EQ(driver::runTrain({model, "--data", d.string(), "--log-gradients", "4"}), 2) << "needs --metrics";

  std::string svg = (d / "m.svg").string();
  ASSERT_EQ(driver::runPlot({metrics, "-o", svg}), 0);
  std::string text = *readFileBytes(svg);
  EXPECT_EQ(text.rfind("<svg", 0), 0u);
  for (const char* want : {"Loss", "Accuracy", "Gradient L2 norm per layer", "hidden1 (dead)",
                           "hidden2 (saturated)", "val_accuracy", "test_accuracy"})
    EXPECT_NE(text.find(want), std::string::npos) << want;
  // One path per series: loss, val_loss, test_loss, accuracy, val_accuracy, test_accuracy, three
  // gradient norms, two fractions.
  size_t paths = 0;
  for (size_t p = text.find("<path"); p != std::string::npos; p = text.find("<path", p + 1)) ++paths;
  EXPECT_EQ(paths, 11u);
  std::string bad = writeText(d / "bad.jsonl", "{\"epoch\": 1, \"loss\": 0.5}\n{\"epoch\": 2, \"loss\": oops}\n");
  testing::internal::CaptureStderr();
  EXPECT_EQ(driver::runPlot({bad, "-o", (d / "bad.svg").string()}), 1);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("bad.jsonl:2:22: error: the value of \"loss\" is not a number or null"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(d / "bad.svg"));

  // Predict: a probability row per input row.
  std::vector<float> x(20 * 6);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::fmod(0.37 * static_cast<double>(i), 1.0));
  std::string xs = rt::encodeNpy("<f4", {20, 6}, x.data(), x.size() * sizeof(float));
  std::string xp = writeText(d / "x.npy", xs), probs = (d / "p.npy").string(), mc = (d / "mc.npy").string();
  ASSERT_EQ(driver::runPredict({model, "--checkpoint", ckpt, "--input", xp, "-o", probs}), 0);
  auto p = driver::readTensorNpy(probs);
  ASSERT_TRUE(p) << p.error().str();
  ASSERT_EQ(p->shape(), (Shape{20, 3}));
  for (int64_t r = 0; r < 20; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < 3; ++c) sum += p->getDouble(r * 3 + c);
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  // Monte Carlo dropout: the passes differ (a positive spread), and the mean stays a distribution.
  ASSERT_EQ(driver::runPredict({model, "--checkpoint", ckpt, "--input", xp, "-o", mc, "--mc-samples", "10"}), 0);
  auto pm = driver::readTensorNpy(mc);
  auto sd = driver::readTensorNpy((d / "mc.std.npy").string());
  ASSERT_TRUE(pm && sd);
  double spread = 0, diff = 0;
  for (int64_t i = 0; i < 60; ++i) {
    spread += sd->getDouble(i);
    diff += std::abs(pm->getDouble(i) - p->getDouble(i));
  }
  EXPECT_GT(spread / 60, 1e-3);
  EXPECT_GT(diff / 60, 1e-4);
  // Same seed, same masks.
  std::string mc2 = (d / "mc2.npy").string();
  ASSERT_EQ(driver::runPredict({model, "--checkpoint", ckpt, "--input", xp, "-o", mc2, "--mc-samples", "10"}), 0);
  EXPECT_EQ(*readFileBytes(mc), *readFileBytes(mc2));
  // Rows of the wrong width, and a checkpoint of another model: clear errors.
  std::vector<float> narrow(20 * 4);
  std::string np = writeText(d / "narrow.npy", rt::encodeNpy("<f4", {20, 4}, narrow.data(), narrow.size() * 4));
  testing::internal::CaptureStderr();
  EXPECT_EQ(driver::runPredict({model, "--checkpoint", ckpt, "--input", np, "-o", probs}), 1);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("expected rows of 6 elements (the model's input is [6] per row), found an array of shape [20,4]"),
            std::string::npos) << err;
  std::string other = writeText(d / "other.model.pbtxt",
                                std::string(kModel).replace(std::string(kModel).find("units: 8"), 8, "units: 9"));
  testing::internal::CaptureStderr();
  EXPECT_EQ(driver::runPredict({other, "--checkpoint", ckpt, "--input", xp, "-o", probs}), 1);
  err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("the checkpoint is of another model"), std::string::npos) << err;
}

}  // namespace
}  // namespace kiln
