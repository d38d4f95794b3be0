// The C++ ModelBuilder: it produces the same graph as the equivalent model file, covers every
// layer, activation and training option, and reports misuse.
#include <gtest/gtest.h>

#include "FrontendTestUtil.h"
#include "compiler/driver/Summary.h"
#include "frontend/ModelBuilder.h"

namespace kiln {
namespace {

using namespace frontend;

// The graph text of a file's expansion, in `mode`.
std::string fileGraph(const std::string& rel, Expansion mode = Expansion::Inference) {
  auto m = loadModelFile(test::sourcePath(rel), mode);
  if (!m) {
    ADD_FAILURE() << m.error().str();
    return "";
  }
  return graphToText(*m->graph);
}

std::string builderGraph(const ModelBuilder& b, Expansion mode = Expansion::Inference) {
  auto m = b.expand(mode);
  if (!m) {
    ADD_FAILURE() << m.error().str();
    return "";
  }
  return graphToText(*m->graph);
}

TEST(ModelBuilderTest, FashionMlpEqualsTheModelFile) {
  ModelBuilder m("fashion_mlp");
  m.input({784}, "x")
      .dense(300, Init::HeNormal)
      .named("hidden1")
      .batchNorm(0.9)
      .elu()
      .dense(100, Init::HeNormal)
      .named("hidden2")
      .batchNorm(0.9)
      .elu()
      .dense(10)
      .named("output")
      .batchNorm(0.9);
  m.training()
      .loss(Loss::SparseSoftmaxCrossEntropy)
      .metric("accuracy")
      .sgd(0.01)
      .epochs(20)
      .batchSize(200)
      .seed(42);
  const std::string file = "examples/fashion_mlp/fashion_mlp.model.pbtxt";
  EXPECT_EQ(builderGraph(m), fileGraph(file));
  EXPECT_EQ(builderGraph(m, Expansion::Evaluation), fileGraph(file, Expansion::Evaluation));
  // And the very same message as the file holds.
  auto parsed = readModelFile(test::sourcePath(file));
  ASSERT_TRUE(parsed);
  auto built = m.model();
  ASSERT_TRUE(built);
  EXPECT_EQ(modelToText(*built), modelToText(parsed->model));
  auto e = m.expand();
  ASSERT_TRUE(e);
  std::string summary = driver::summarizeModel(*e);
  EXPECT_CONTAINS(summary,
                  "Total params: 268,250\nTrainable params: 267,430\nNon-trainable params: 820\n");
}

TEST(ModelBuilderTest, DeepSwishOneCycleEqualsTheModelFile) {
  ModelBuilder m("deep_swish_1cycle");
  m.input({784});
  for (int i = 1; i <= 20; ++i)
    m.dense(100, Init::HeNormal)
        .named("hidden" + std::to_string(i))
        .useBias(false)
        .batchNorm()
        .swish();
  m.dense(10).named("output");
  m.training()
      .loss(Loss::SparseSoftmaxCrossEntropy)
      .metric("accuracy")
      .momentum(0.005)
      .oneCycle(0.05)
      .clipByGlobalNorm(1.0)
      .epochs(15)
      .batchSize(128)
      .seed(42);
  EXPECT_EQ(builderGraph(m), fileGraph("examples/deep_swish_1cycle/deep_swish_1cycle.model.pbtxt"));
  auto e = m.expand();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->training->schedule.kind, ScheduleKind::OneCycle);
  EXPECT_EQ(e->training->clipping.mode, ClipMode::GlobalNorm);
}

TEST(ModelBuilderTest, AutoencoderAndRegularizedEqualTheirFiles) {
  ModelBuilder ae("autoencoder");
  ae.input({784})
      .dense(300, Init::LecunNormal, "selu")
      .named("encoder1")
      .dense(100, Init::LecunNormal, "selu")
      .named("encoder2")
      .dense(300, Init::LecunNormal, "selu")
      .named("decoder1")
      .dense(784, "sigmoid")
      .named("decoder2");
  ae.training()
      .loss(Loss::MeanSquaredError)
      .inputsAsTargets()
      .adam()
      .epochs(10)
      .batchSize(256)
      .seed(42);
  EXPECT_EQ(builderGraph(ae, Expansion::Evaluation),
            fileGraph("examples/autoencoder/autoencoder.model.pbtxt", Expansion::Evaluation));

  ModelBuilder r("fashion_regularized");
  r.input({28, 28}).flatten().dropout(0.2);
  r.dense(300, Init::HeNormal, "elu").named("hidden1").l2(0.01).maxNorm(1.0).dropout(0.2);
  r.dense(100, Init::HeNormal, "elu").named("hidden2").l2(0.01).maxNorm(1.0).dropout(0.2);
  r.dense(10).named("output").l2(0.01);
  r.training()
      .loss(Loss::SparseSoftmaxCrossEntropy)
      .metric("accuracy")
      .nesterov(0.01)
      .exponentialSchedule(34380)
      .epochs(20)
      .batchSize(32)
      .seed(42);
  EXPECT_EQ(builderGraph(r),
            fileGraph("examples/fashion_regularized/fashion_regularized.model.pbtxt"));
}

TEST(ModelBuilderTest, EveryLayerAndActivation) {
  ModelBuilder m("everything");
  m.input({2, 6}, "pixels", DType::Float64)
      .batchNorm({}, 0.01)
      .axis(1)
      .center(false)
      .flatten()
      .reshape({3, -1})
      .flatten()
      .dense(8, Init::varianceScaling(2.0, "fan_avg", "uniform"))
      .biasInit(Init::constant(0.1))
      .l1(0.001)
      .sigmoid()
      .tanh()
      .relu()
      .leakyRelu(0.2)
      .rrelu(0.1, 0.3)
      .prelu()
      .elu(0.5)
      .selu()
      .gelu("tanh")
      .swish(1.5, /*learnable=*/true)
      .mish()
      .softplus()
      .dropout(0.3)
      .alphaDropout(0.05)
      .dense(4, Init::values(std::vector<double>(32, 0.5)))
      .useBias(false)
      .logSoftmax()
      .softmax()
      .axis(-1);
  auto e = m.expand();
  ASSERT_TRUE(e) << e.error().str();
  EXPECT_EQ(e->layers.size(), 22u);
  const Graph& g = *e->graph;
  EXPECT_EQ(g.findNode("pixels")->result()->type().str(), "float64[-1,2,6]");
  EXPECT_EQ(g.findNode("batch_normalization_1/gamma")->result()->type().str(), "float64[2]");
  EXPECT_FALSE(g.findNode("batch_normalization_1/beta"));
  EXPECT_DOUBLE_EQ(g.findNode("batch_normalization_1")->f("epsilon"), 0.01);
  EXPECT_EQ(g.findNode("reshape_1")->ints("shape"), (Shape{-1, 3, 4}));
  EXPECT_EQ(g.findNode("dense_1/kernel")->s("init_mode"), "fan_avg");
  EXPECT_DOUBLE_EQ(g.findNode("dense_1/kernel")->f("l1"), 0.001);
  EXPECT_DOUBLE_EQ(g.findNode("dense_1/bias")->f("init_value"), 0.1);
  EXPECT_DOUBLE_EQ(g.findNode("activation_4/leaky_relu")->f("alpha"), 0.2);
  EXPECT_DOUBLE_EQ(g.findNode("activation_5/rrelu")->f("upper"), 0.3);
  EXPECT_TRUE(g.findNode("activation_6/alpha"));
  EXPECT_DOUBLE_EQ(g.findNode("activation_7/elu")->f("alpha"), 0.5);
  EXPECT_EQ(g.findNode("activation_9/gelu")->s("approximate"), "tanh");
  EXPECT_DOUBLE_EQ(g.findNode("activation_10/beta_swish")->f("init_value"), 1.5);
  EXPECT_DOUBLE_EQ(g.findNode("dropout_1")->f("rate"), 0.3);
  EXPECT_DOUBLE_EQ(g.findNode("alpha_dropout_1")->f("rate"), 0.05);
  EXPECT_FALSE(g.findNode("dense_2/bias"));
  EXPECT_EQ(g.outputs()[0].value->type().str(), "float64[-1,4]");
}

TEST(ModelBuilderTest, EveryOptimizerScheduleAndClipping) {
  auto spec = [](auto configure) {
    ModelBuilder m("t");
    m.input({4}).dense(2);
    TrainingBuilder& t = m.training().loss(Loss::SparseSoftmaxCrossEntropy);
    configure(t);
    auto e = m.expand();
    EXPECT_TRUE(e) << e.error().str();
    return e ? *e->training : TrainingSpec{};
  };
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.sgd(); }).optimizer.kind, OptimizerKind::Sgd);
  EXPECT_DOUBLE_EQ(spec([](TrainingBuilder& t) { t.momentum({}, 0.8); }).optimizer.momentum, 0.8);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.nesterov(); }).optimizer.kind, OptimizerKind::Nesterov);
  EXPECT_DOUBLE_EQ(spec([](TrainingBuilder& t) { t.adagrad(0.1); }).optimizer.learningRate, 0.1);
  EXPECT_DOUBLE_EQ(spec([](TrainingBuilder& t) { t.rmsprop({}, 0.95); }).optimizer.rho, 0.95);
  TrainingSpec adam =
      spec([](TrainingBuilder& t) { t.adam().beta1(0.8).beta2(0.99).epsilon(1e-8); });
  EXPECT_DOUBLE_EQ(adam.optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(adam.optimizer.beta2, 0.99);
  EXPECT_DOUBLE_EQ(adam.optimizer.epsilon, 1e-8);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.adamax(); }).optimizer.kind, OptimizerKind::Adamax);
  EXPECT_DOUBLE_EQ(
      spec([](TrainingBuilder& t) { t.nadam().momentumDecay(0.01); }).optimizer.momentumDecay,
      0.01);
  EXPECT_DOUBLE_EQ(spec([](TrainingBuilder& t) { t.adamw({}, 0.05); }).optimizer.weightDecay, 0.05);
  EXPECT_EQ(spec([](TrainingBuilder& t) {
              t.optimizer("adam").learningRate(0.01);
            }).optimizer.learningRate,
            0.01);
  EXPECT_DOUBLE_EQ(spec([](TrainingBuilder& t) { t.sgd().powerSchedule(100, 2.0); }).schedule.power,
                   2.0);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.sgd().exponentialSchedule(50); }).schedule.decaySteps,
            50);
  EXPECT_EQ(spec([](TrainingBuilder& t) {
              t.sgd().piecewiseConstant({10}, {0.1, 0.01});
            }).schedule.values.size(),
            2u);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.sgd().performanceSchedule(0.2, 3); }).schedule.patience,
            3);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.momentum().oneCycle(0.1, 1000); }).schedule.totalSteps,
            1000);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.clipByValue(0.5); }).clipping.mode, ClipMode::Value);
  EXPECT_EQ(spec([](TrainingBuilder& t) { t.clipByNorm(0.5); }).clipping.mode, ClipMode::Norm);
}

TEST(ModelBuilderTest, MisuseAndBadValuesAreErrors) {
  ModelBuilder a("a");
  a.input({4}).batchNorm().l2(0.01).dense(3);
  auto e = a.expand();
  ASSERT_FALSE(e);
  EXPECT_CONTAINS(e.error().str(),
                  "ModelBuilder: l2() does not apply to layer 1 (a batch_norm layer)");
  ModelBuilder b("b");
  b.named("first").input({4}).dense(3);
  EXPECT_CONTAINS(b.expand().error().str(), "ModelBuilder: named() needs a layer before it");
  // Values go through the same validation as files (no line numbers: it was built in code).
  ModelBuilder c("c");
  c.input({4}).dense(0);
  c.training().loss(Loss::SparseSoftmaxCrossEntropy).momentum(0.01, 1.5);
  std::string err = c.expand().error().str();
  EXPECT_CONTAINS(
      err, "<ModelBuilder c>: error: layer 'dense_1' (dense): units must be positive, found 0");
  EXPECT_CONTAINS(
      err, "<ModelBuilder c>: error: training.optimizer: momentum must be in [0, 1), found 1.5");
}

}  // namespace
}  // namespace kiln
