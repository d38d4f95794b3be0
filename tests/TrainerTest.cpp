// The training loop: exact resume (straight vs stopped and resumed give bit-identical state),
// checkpoint errors, restore + freeze for transfer learning, and a short real training run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "TestUtil.h"
#include "compiler/driver/Commands.h"
#include "compiler/training/Trainer.h"
#include "ir/ProtoIO.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

fs::path tempDir(const std::string& name) {
  return test::freshTempDir("kiln_trainer_" + name);
}

// Fashion-MNIST once per process: the first `train` rows after the 5,000 validation rows, the
// first `val` validation rows, no test set.
rt::DataSplits fashion(int64_t train, int64_t val, const std::vector<int64_t>& classes = {}) {
  static const rt::DataSplits all = [] {
    rt::DataSplits s;
    std::string e = rt::loadDataSplits(rt::DataOptions{}, &s);
    EXPECT_EQ(e, "");
    return s;
  }();
  rt::DataSplits s;
  s.train = all.train;
  s.validation = all.validation.slice(0, val);
  if (!classes.empty()) {
    rt::filterClasses(&s.train, classes, true);
    rt::filterClasses(&s.validation, classes, true);
  }
  s.train = s.train.slice(0, std::min(train, s.train.rows));
  return s;
}

// Dropout (noise keyed by the step), batch norm (moving statistics), nadam (slots and the
// mu-product state) and the plateau schedule (state replayed on resume): everything that
// resuming must carry.
const char* kSmallModel = R"(
name: "small"
input { name: "x" shape { dim: 28 dim: 28 } }
layer { flatten {} }
layer { name: "hidden1" dense { units: 32 activation: "elu" kernel_initializer { kind: "he_normal" } } }
layer { batch_norm { momentum: 0.9 } }
layer { dropout { rate: 0.2 } }
layer { name: "hidden2" dense { units: 16 activation: "relu" } }
layer { name: "output" dense { units: OUT } }
training {
  loss: "sparse_softmax_cross_entropy" metric: "accuracy"
  optimizer { kind: "nadam" learning_rate: 0.01 }
  schedule { kind: "performance" patience: 0 factor: 0.5 }
  epochs: 2 batch_size: 64 seed: 7
}
)";

std::string writeModel(const fs::path& dir, const std::string& name, int outputs) {
  std::string text = kSmallModel;
  text.replace(text.find("OUT"), 3, std::to_string(outputs));
  std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

struct RunState {
  std::map<std::string, Tensor> state;
  TrainResult result;
};

RunState trainOnce(const std::string& model, const rt::DataSplits& data, TrainerOptions o,
              const std::string& freeze = "", const std::function<void(StepExecutor&)>& init = nullptr) {
  RunState r;
  auto m = loadTrainingModel(model, freeze, [&](frontend::TrainingSpec& s) { s.epochs = o.epochs; }, nullptr);
  if (!m) {
    ADD_FAILURE() << m.error().str();
    return r;
  }
  InterpreterExecutor trainExec(*m->stepGraph, true, m->spec.seed), evalExec(*m->evalGraph, false, m->spec.seed);
  EXPECT_TRUE(trainExec.initialize(m->spec.seed));
  if (init) init(trainExec);
  o.batchSize = m->spec.batchSize;
  o.seed = m->spec.seed;
  o.progressBar = false;
  auto res = train(*m, trainExec, evalExec, data, o);
  if (!res) {
    ADD_FAILURE() << res.error().str();
    return r;
  }
  r.result = *res;
  r.state = trainExec.state();
  return r;
}

void expectBitIdentical(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const Tensor& u = b.at(name);
    ASSERT_EQ(t.type(), u.type()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), static_cast<size_t>(t.byteSize())), 0) << name << " differs";
  }
}

TEST(TrainerTest, ResumeIsExact) {
  fs::path d = tempDir("resume");
  std::string model = writeModel(d, "small.model.pbtxt", 10);
  rt::DataSplits data = fashion(400, 200);  // 7 steps per epoch: 6 of 64 and a last one of 16
  TrainerOptions o;
  o.epochs = 2;
  FILE* quiet = std::fopen("/dev/null", "w");
  o.out = quiet;
  RunState straight = trainOnce(model, data, o);
  ASSERT_EQ(straight.result.steps, 14);
  EXPECT_TRUE(straight.state.count("hidden1/kernel/m")) << "nadam's slots are state";
  EXPECT_TRUE(straight.state.count(kLearningRateState));
  // The plateau schedule (patience 0) halved the rate at each epoch end it did not improve.

  // 1 epoch, then resume for 1 more.
  o.checkpointDir = (d / "a").string();
  o.epochs = 1;
  RunState first = trainOnce(model, data, o);
  ASSERT_EQ(first.result.steps, 7);
  const Tensor& k1 = first.state.at("hidden1/kernel");
  EXPECT_NE(std::memcmp(k1.raw(), straight.state.at("hidden1/kernel").raw(), static_cast<size_t>(k1.byteSize())), 0)
      << "the second epoch moved the weights";
  o.epochs = 2;
  o.resume = true;
  RunState resumed = trainOnce(model, data, o);
  EXPECT_EQ(resumed.result.steps, 14);
  expectBitIdentical(straight.state, resumed.state);
  EXPECT_EQ(straight.result.validation.loss, resumed.result.validation.loss);

  // Stopped in the middle of epoch 2 (as Ctrl-C would), then resumed.
  o.checkpointDir = (d / "b").string();
  o.resume = false;
  o.stopAfterSteps = 10;
  RunState stopped = trainOnce(model, data, o);
  EXPECT_TRUE(stopped.result.interrupted);
  EXPECT_EQ(stopped.result.steps, 10);
  o.stopAfterSteps = -1;
  o.resume = true;
  RunState resumed2 = trainOnce(model, data, o);
  expectBitIdentical(straight.state, resumed2.state);

  // A different batch size cannot continue the data position.
  auto m = loadTrainingModel(model, "", nullptr, nullptr);
  ASSERT_TRUE(m);
  InterpreterExecutor te(*m->stepGraph, true, 7), ee(*m->evalGraph, false, 7);
  ASSERT_TRUE(te.initialize(7));
  o.batchSize = 32;
  o.seed = 7;
  auto bad = train(*m, te, ee, data, o);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("written with batch_size 64 and this run has 32"), std::string::npos)
      << bad.error().str();
  std::fclose(quiet);
}

// Labels the model cannot represent fail before any step runs, naming the data, the label and
// its row (inside a step, a compiled executor would already have updated part of the state).
TEST(TrainerTest, LabelsOutsideTheClassesAreReportedUpFront) {
  fs::path d = tempDir("labels");
  std::string model = writeModel(d, "five.pbtxt", 5);  // Fashion-MNIST has 10 classes
  rt::DataSplits data = fashion(100, 10);
  auto m = loadTrainingModel(model, "", nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  InterpreterExecutor te(*m->stepGraph, true, 7), ee(*m->evalGraph, false, 7);
  ASSERT_TRUE(te.initialize(7));
  auto before = te.state();
  TrainerOptions o;
  o.batchSize = 64;
  o.progressBar = false;
  o.out = std::fopen("/dev/null", "w");
  auto r = train(*m, te, ee, data, o);
  std::fclose(o.out);
  ASSERT_FALSE(r);
  int64_t row = 0;
  while (data.train.labels[static_cast<size_t>(row)] < 5) ++row;
  const std::string want = "the training labels of " + data.train.source + ": label " +
                           std::to_string(data.train.labels[static_cast<size_t>(row)]) + " in row " +
                           std::to_string(row) + " of that split is not one of the model's 5 classes [0, 5)";
  EXPECT_NE(r.error().str().find(want), std::string::npos) << r.error().str();
  expectBitIdentical(before, te.state());  // no step ran
  fs::remove_all(d);
}

TEST(TrainerTest, CheckpointErrorsAreClear) {
  fs::path d = tempDir("errors");
  std::string a = writeModel(d, "a.model.pbtxt", 10), b = writeModel(d, "b.model.pbtxt", 2);
  auto ma = loadTrainingModel(a, "", nullptr, nullptr);
  auto mb = loadTrainingModel(b, "", nullptr, nullptr);
  ASSERT_TRUE(ma && mb);
  EXPECT_NE(ma->fingerprint, mb->fingerprint);
  EXPECT_EQ(ma->fingerprint, loadTrainingModel(a, "hidden1/.*", nullptr, nullptr)->fingerprint)
      << "freezing does not change the model";
  InterpreterExecutor ea(*ma->stepGraph, true, 0), eb(*mb->stepGraph, true, 0);
  ASSERT_TRUE(ea.initialize(1));
  ASSERT_TRUE(eb.initialize(1));
  std::string path = (d / "a.safetensors").string();
  ASSERT_TRUE(writeCheckpoint(path, Checkpoint{ea.state(), {{kFingerprintKey, ma->fingerprint}}}));
  auto c = readCheckpoint(path);
  ASSERT_TRUE(c) << c.error().str();
  Status s = restoreAllState(*c, path, mb->fingerprint, eb);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("the checkpoint is of another model (fingerprint " + ma->fingerprint),
            std::string::npos) << s.error().str();
  // A restore that reaches a tensor of another shape names both shapes.
  auto r = restoreMatching(*c, path, "output/.*", {}, eb);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("cannot restore 'output/bias': it is float32[10] in the checkpoint but "
                                 "float32[2] in the model"), std::string::npos) << r.error().str();
  r = restoreMatching(*c, path, "nothing/.*", {}, eb);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("matches no tensor"), std::string::npos);
  r = restoreMatching(*c, path, "hidden1/.*", {{"hidden1/", "encoder/"}}, eb);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("hidden1/kernel (as encoder/kernel)"), std::string::npos) << r.error().str();
  // Truncated: the file's name and the damage.
  std::string bytes = *readFileBytes(path);
  std::string cut = (d / "cut.safetensors").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto t = readCheckpoint(cut);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().str().find("bad checkpoint " + cut + ": "), std::string::npos) << t.error().str();
  EXPECT_NE(t.error().str().find("truncated"), std::string::npos) << t.error().str();
}

TEST(TrainerTest, RestoreAndFreezeForTransferLearning) {
  fs::path d = tempDir("transfer");
  std::string a = writeModel(d, "a.model.pbtxt", 8), b = writeModel(d, "b.model.pbtxt", 2);
  FILE* quiet = std::fopen("/dev/null", "w");
  TrainerOptions o;
  o.out = quiet;
  o.epochs = 1;
  o.savePath = (d / "a.safetensors").string();
  // Model A: the 8 classes other than sandal and shirt; model B: shirt vs sandal.
  RunState runA = trainOnce(a, fashion(300, 100, {0, 1, 2, 3, 4, 7, 8, 9}), o);
  auto ckpt = readCheckpoint(o.savePath);
  ASSERT_TRUE(ckpt) << ckpt.error().str();
  o.savePath.clear();
  std::map<std::string, Tensor> afterRestore;
  auto restore = [&](StepExecutor& e) {
    auto r = restoreMatching(*ckpt, "a.safetensors", "hidden[12]/.*", {}, e);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(r->restored, (std::vector<std::string>{"hidden1/bias", "hidden1/kernel", "hidden2/bias", "hidden2/kernel"}));
    EXPECT_NE(std::find(r->initialized.begin(), r->initialized.end(), "output/kernel"), r->initialized.end());
    afterRestore = e.state();
  };
  RunState runB = trainOnce(b, fashion(200, 100, {5, 6}), o, "hidden[12]/.*", restore);
  for (const char* name : {"hidden1/kernel", "hidden1/bias", "hidden2/kernel", "hidden2/bias"}) {
    const Tensor& src = ckpt->tensors.at(name);
    EXPECT_EQ(std::memcmp(afterRestore.at(name).raw(), src.raw(), static_cast<size_t>(src.byteSize())), 0)
        << name << " restored as in the source checkpoint";
    EXPECT_EQ(std::memcmp(runB.state.at(name).raw(), src.raw(), static_cast<size_t>(src.byteSize())), 0)
        << name << " is frozen";
    EXPECT_FALSE(runB.state.count(std::string(name) + "/m")) << "frozen parameters get no slots";
  }
  for (const char* name : {"output/kernel", "batch_normalization_1/gamma"}) {
    const Tensor& before = afterRestore.at(name);
    EXPECT_NE(std::memcmp(runB.state.at(name).raw(), before.raw(), static_cast<size_t>(before.byteSize())), 0)
        << name << " trained";
  }
  std::fclose(quiet);
}

TEST(TrainerTest, TheBookMlpLearnsInAShortRun) {
  // 3,000 images, 3 epochs of the book's recipe (plain SGD 0.01, batches of 200): 45 steps.
  fs::path d = tempDir("learn");
  rt::DataSplits data = fashion(3000, 2000);
  TrainerOptions o;
  o.epochs = 3;
  o.metricsPath = (d / "metrics.jsonl").string();
  RunState r = trainOnce(test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"), data, o);
  std::printf("validation after 3 epochs on 3,000 images: loss %.4f, accuracy %.4f\n", r.result.validation.loss,
              r.result.validation.accuracy);
  EXPECT_EQ(r.result.steps, 45);
  EXPECT_GT(r.result.validation.accuracy, 0.65);  // measured 0.709 (chance: 0.1)
  std::string metrics = *readFileBytes(o.metricsPath);
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3);
  EXPECT_NE(metrics.find("\"epoch\": 3, \"learning_rate\": 0.01, \"loss\": "), std::string::npos) << metrics;
}

}  // namespace
}  // namespace kiln
