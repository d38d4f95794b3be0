// What training must do, end to end through the interpreter: batch-norm statistics follow
// their formula, frozen layers get no gradient and do not move, the book's MLP learns on real
// Fashion-MNIST images, and deep sigmoid nets show vanishing gradients where He+ELU does not.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "TestUtil.h"
#include "compiler/autodiff/Autodiff.h"
#include "compiler/training/TrainingGraph.h"
#include "frontend/Expand.h"
#include "ir/Builder.h"
#include "runtime/Idx.h"

namespace kiln {
namespace {

using frontend::OptimizerKind;

TEST(TrainingBehaviourTest, BatchNormMovingAveragesFollowTheFormula) {
  // x is fixed, so the batch statistics are too: per feature mu_B, sigma2_B (biased).
  // Feature 0: [1, 2, 3, 6] -> mu 3, sigma2 (4 + 1 + 0 + 9)/4 = 3.5
  // Feature 1: [0, 0, 4, 4] -> mu 2, sigma2 4
  // After k steps from (0, 1) with momentum 0.9: mean = (1 - 0.9^k) mu, var = 0.9^k + (1 - 0.9^k) sigma2.
  auto g = test::parseVerified(R"(
    input { name: "x" dtype: FLOAT64 shape { dim: 4 dim: 2 } }
    parameter { name: "bn/gamma" dtype: FLOAT64 shape { dim: 2 } init { kind: "ones" } }
    parameter { name: "bn/beta" dtype: FLOAT64 shape { dim: 2 } init { kind: "zeros" } }
    parameter { name: "bn/moving_mean" dtype: FLOAT64 shape { dim: 2 } init { kind: "zeros" } trainable: false }
    parameter { name: "bn/moving_variance" dtype: FLOAT64 shape { dim: 2 } init { kind: "ones" } trainable: false }
    node { name: "bn" op: "batch_norm" input: "x" input: "bn/gamma" input: "bn/beta"
           input: "bn/moving_mean" input: "bn/moving_variance" attr { name: "momentum" f: 0.9 } }
    node { name: "c" op: "constant" attr { name: "dtype" dtype: FLOAT64 } attr { name: "value" floats { v: 1 v: -2 } } }
    node { name: "p" op: "mul" input: "bn" input: "c" }
    node { name: "s" op: "square" input: "p" }
    node { name: "loss" op: "reduce_mean" input: "s" }
    output { name: "loss" } output { name: "y" tensor: "bn" })");
  ASSERT_TRUE(g);
  frontend::TrainingSpec spec;
  spec.optimizer.kind = OptimizerKind::Sgd;
  spec.optimizer.learningRate = 0.1;
  auto info = buildTrainingGraph(*g, spec);
  ASSERT_TRUE(info) << info.error().str();
  Interpreter interp(*g);
  ASSERT_TRUE(interp.initializeParameters(0));
  Tensor x = Tensor::fromVector<double>({4, 2}, {1, 0, 2, 0, 3, 4, 6, 4});
  for (int k = 1; k <= 3; ++k) {
    auto out = interp.run({{"x", x}});
    ASSERT_TRUE(out) << out.error().str();
    interp.updateParameters(*out);
    double d = std::pow(0.9, k);
    const Tensor* mm = interp.parameter("bn/moving_mean");
    const Tensor* mv = interp.parameter("bn/moving_variance");
    EXPECT_NEAR(mm->getDouble(0), (1 - d) * 3, 1e-12) << "step " << k;
    EXPECT_NEAR(mm->getDouble(1), (1 - d) * 2, 1e-12) << "step " << k;
    EXPECT_NEAR(mv->getDouble(0), d + (1 - d) * 3.5, 1e-12) << "step " << k;
    EXPECT_NEAR(mv->getDouble(1), d + (1 - d) * 4, 1e-12) << "step " << k;
  }
  // Inference uses the moving statistics: y = gamma (x - mm)/sqrt(mv + eps) + beta.
  setTrainingMode(*g, false);
  ASSERT_TRUE(verifyGraph(*g));
  auto inf = interp.run({{"x", x}});
  ASSERT_TRUE(inf) << inf.error().str();
  double gamma = interp.parameter("bn/gamma")->getDouble(0), beta = interp.parameter("bn/beta")->getDouble(0);
  double mm = interp.parameter("bn/moving_mean")->getDouble(0), mv = interp.parameter("bn/moving_variance")->getDouble(0);
  EXPECT_NEAR(inf->at("y").getDouble(0), gamma * (1 - mm) / std::sqrt(mv + 1e-3) + beta, 1e-12);
}

std::unique_ptr<Graph> mlpEvaluationGraph(frontend::TrainingSpec* spec) {
  auto m = frontend::loadModelFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"),
                                   frontend::Expansion::Evaluation);
  if (!m) {
    ADD_FAILURE() << m.error().str();
    return nullptr;
  }
  *spec = *m->training;
  return std::move(m->graph);
}

int64_t countPrefix(const Graph& g, const std::string& prefix) {
  int64_t n = 0;
  for (Node* node : g.nodes()) n += node->name().starts_with(prefix);
  return n;
}

TEST(TrainingBehaviourTest, FrozenLayersGetNoGradientAndDoNotMove) {
  frontend::TrainingSpec spec;
  auto all = mlpEvaluationGraph(&spec);
  ASSERT_TRUE(all);
  auto allInfo = buildTrainingGraph(*all, spec);
  ASSERT_TRUE(allInfo) << allInfo.error().str();

  auto frozen = mlpEvaluationGraph(&spec);
  ASSERT_TRUE(frozen);
  for (const char* p : {"hidden1/kernel", "hidden1/bias", "batch_normalization_1/gamma", "batch_normalization_1/beta"})
    frozen->findNode(p)->setAttr("trainable", false);
  auto info = buildTrainingGraph(*frozen, spec);
  ASSERT_TRUE(info) << info.error().str();
  // Backpropagation stops above the first layer: no gradient node for hidden1 or its batch
  // norm, and none for their parameters' slots or updates.
  EXPECT_LT(info->gradientNodes, allInfo->gradientNodes);
  EXPECT_EQ(countPrefix(*frozen, "grad/hidden1/"), 0);
  EXPECT_EQ(countPrefix(*frozen, "grad/batch_normalization_1/"), 0);
  EXPECT_GT(countPrefix(*all, "grad/hidden1/"), 0);
  EXPECT_EQ(countPrefix(*frozen, "update/hidden1/"), 0);
  std::printf("gradient nodes: all trainable %lld, first layer frozen %lld\n",
              static_cast<long long>(allInfo->gradientNodes), static_cast<long long>(info->gradientNodes));

  Interpreter interp(*frozen);
  ASSERT_TRUE(interp.initializeParameters(7));
  std::map<std::string, Tensor> before = interp.parameters();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0, 1);
  Tensor x(DType::Float32, {8, 784});
  for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] = u(rng);
  Tensor y = Tensor::fromVector<int64_t>({8}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto out = interp.run({{"x", x}, {"labels", y}});
  ASSERT_TRUE(out) << out.error().str();
  interp.updateParameters(*out);
  auto same = [&](const std::string& name) {
    const Tensor& a = before.at(name);
    const Tensor* b = interp.parameter(name);
    return std::memcmp(a.raw(), b->raw(), static_cast<size_t>(a.byteSize())) == 0;
  };
  EXPECT_TRUE(same("hidden1/kernel"));
  EXPECT_TRUE(same("hidden1/bias"));
  EXPECT_TRUE(same("batch_normalization_1/gamma"));
  EXPECT_FALSE(same("hidden2/kernel"));
  EXPECT_FALSE(same("output/kernel"));
  EXPECT_FALSE(same("batch_normalization_1/moving_mean")) << "statistics still update in frozen layers";
}

// The first `n` Fashion-MNIST training images (scaled to [0, 1]) and labels.
bool loadFashion(int64_t n, Tensor* x, Tensor* y) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  rt::IdxArray images, labels;
  std::string e1 = rt::readIdx(dir + "train-images-idx3-ubyte.gz", &images);
  std::string e2 = rt::readIdx(dir + "train-labels-idx1-ubyte.gz", &labels);
  if (!e1.empty() || !e2.empty()) {
    ADD_FAILURE() << e1 << e2 << " (install Debian's dataset-fashion-mnist)";
    return false;
  }
  EXPECT_EQ(images.shape, (std::vector<int64_t>{60000, 28, 28}));
  *x = Tensor(DType::Float32, {n, 784});
  *y = Tensor(DType::Int64, {n});
  for (int64_t i = 0; i < n * 784; ++i) x->data<float>()[i] = images.data[i] / 255.0f;
  for (int64_t i = 0; i < n; ++i) y->data<int64_t>()[i] = labels.data[i];
  return true;
}

Tensor rows(const Tensor& t, int64_t begin, int64_t count) {
  Shape s = t.shape();
  int64_t row = t.size() / s[0];
  s[0] = count;
  Tensor out(t.dtype(), s);
  int64_t es = dtypeSize(t.dtype());
  std::memcpy(out.raw(), static_cast<const char*>(t.raw()) + begin * row * es, static_cast<size_t>(count * row * es));
  return out;
}

TEST(TrainingBehaviourTest, TheBookMlpLearnsOnFashionMnist) {
  frontend::TrainingSpec spec;
  auto g = mlpEvaluationGraph(&spec);
  ASSERT_TRUE(g);
  ASSERT_TRUE(buildTrainingGraph(*g, spec));
  Tensor x, y;
  ASSERT_TRUE(loadFashion(2000, &x, &y));
  Interpreter interp(*g);
  ASSERT_TRUE(interp.initializeParameters(42));
  const int64_t batch = spec.batchSize;  // 200, the book's
  double first = 0, lastEpoch = 0, lastAccuracy = 0;
  const int epochs = 4;
  for (int e = 0; e < epochs; ++e) {
    double sum = 0, acc = 0;
    for (int64_t b = 0; b < 2000 / batch; ++b) {
      auto out = interp.run({{"x", rows(x, b * batch, batch)}, {"labels", rows(y, b * batch, batch)}});
      ASSERT_TRUE(out) << out.error().str();
      interp.updateParameters(*out);
      double loss = out->at("loss").getDouble(0);
      ASSERT_TRUE(std::isfinite(loss));
      if (e == 0 && b == 0) first = loss;
      sum += loss;
      acc += out->at("accuracy").getDouble(0);
    }
    lastEpoch = sum / (2000 / batch);
    lastAccuracy = acc / (2000 / batch);
    std::printf("epoch %d: mean loss %.4f, accuracy %.3f\n", e + 1, lastEpoch, lastAccuracy);
  }
  // The first batch's loss is about ln(10) = 2.3; four epochs of the book's SGD bring the mean
  // training loss well below half of it and the accuracy far above chance (0.1).
  EXPECT_GT(first, 1.5);
  EXPECT_LT(lastEpoch, 0.5 * first);
  EXPECT_GT(lastAccuracy, 0.6);
}

// Per-layer relative gradient norms ||dL/dW|| / ||W|| of a 20-layer dense net at
// initialization (the book's first lesson): how far one step can move each layer.
std::vector<double> layerGradientNorms(const std::string& activation, Builder::Attrs init) {
  Graph g("deep");
  Builder b(g);
  Value* h = b.input("x", DType::Float32, {-1, 100});
  Value* labels = b.input("labels", DType::Int64, {-1});
  std::vector<Value*> kernels;
  for (int l = 1; l <= 20; ++l) {
    std::string name = "dense_" + std::to_string(l);
    Value* w = b.parameter(name + "/kernel", {100, 100}, init);
    Value* bias = b.parameter(name + "/bias", {100}, {{"init", std::string("zeros")}});
    kernels.push_back(w);
    h = b.op(activation == "sigmoid" ? OpKind::Sigmoid : OpKind::Elu, {b.add(b.matmul(h, w), bias)});
  }
  Value* out = b.parameter("output/kernel", {100, 10}, {{"init", std::string("glorot_uniform")}});
  Value* loss = b.op(OpKind::SparseSoftmaxCrossEntropy, {b.matmul(h, out), labels});
  EXPECT_TRUE(b.ok()) << b.status().error().str();
  auto grads = differentiate(g, loss, kernels);
  EXPECT_TRUE(grads);
  for (size_t i = 0; i < kernels.size(); ++i) g.addOutput("g" + std::to_string(i), grads->grads[i]);
  EXPECT_TRUE(verifyGraph(g));
  Interpreter interp(g);
  EXPECT_TRUE(interp.initializeParameters(5));
  std::mt19937 rng(11);
  std::normal_distribution<float> n01(0, 1);
  Tensor x(DType::Float32, {64, 100});
  for (int64_t i = 0; i < x.size(); ++i) x.data<float>()[i] = n01(rng);
  Tensor y(DType::Int64, {64});
  for (int64_t i = 0; i < 64; ++i) y.data<int64_t>()[i] = i % 10;
  auto r = interp.run({{"x", x}, {"labels", y}});
  EXPECT_TRUE(r);
  auto norm = [](const Tensor& t) {
    double s = 0;
    for (int64_t k = 0; k < t.size(); ++k) s += t.getDouble(k) * t.getDouble(k);
    return std::sqrt(s);
  };
  std::vector<double> norms;
  for (size_t i = 0; i < kernels.size(); ++i)
    norms.push_back(norm(r->at("g" + std::to_string(i))) /
                    norm(*interp.parameter("dense_" + std::to_string(i + 1) + "/kernel")));
  return norms;
}

TEST(TrainingBehaviourTest, DeepSigmoidVanishesWhereHeEluDoesNot) {
  // N(0, 1) weights: variance_scaling with scale = fan_in (100) gives variance 1.
  std::vector<double> sig = layerGradientNorms(
      "sigmoid", {{"init", std::string("variance_scaling")}, {"init_scale", 100.0},
                  {"init_distribution", std::string("untruncated_normal")}});
  // The small uniform init of Glorot and Bengio's study, U(-1/sqrt(n), 1/sqrt(n)): variance 1/(3n).
  std::vector<double> small = layerGradientNorms(
      "sigmoid", {{"init", std::string("variance_scaling")}, {"init_scale", 1.0 / 3},
                  {"init_distribution", std::string("uniform")}});
  std::vector<double> elu = layerGradientNorms("elu", {{"init", std::string("he_normal")}});
  for (size_t i = 0; i < sig.size(); i += 3)
    std::printf("layer %2zu: ||g||/||W|| sigmoid+N(0,1) %.3g, sigmoid+U(+-1/sqrt(n)) %.3g, elu+he_normal %.3g\n",
                i + 1, sig[i], small[i], elu[i]);
  // Sigmoid with N(0,1) saturates: at every layer the gradient is tiny next to the weights,
  // under 1/100 of what He + ELU gives the same layer.
  for (size_t i = 0; i < sig.size(); ++i) EXPECT_LT(sig[i], 0.01 * elu[i]) << "layer " << i + 1;
  // With small weights the gradient decays with depth: the lowest layer gets orders of
  // magnitude less than the top one.
  EXPECT_LT(small.front() / small.back(), 1e-3);
  // He + ELU keeps every layer's gradient within an order of magnitude of the top layer's.
  for (size_t i = 0; i < elu.size(); ++i) {
    EXPECT_GT(elu[i] / elu.back(), 0.1) << "layer " << i + 1;
    EXPECT_LT(elu[i] / elu.back(), 10) << "layer " << i + 1;
  }
}

}  // namespace
}  // namespace kiln
