// The training-step graph: optimizers, clipping, schedules, batch-norm statistics and frozen
// parameters, run by the reference interpreter.
#include <gtest/gtest.h>

#include <cmath>

#include "TestUtil.h"
#include "compiler/training/TrainingGraph.h"
#include "frontend/TrainingMath.h"

namespace kiln {
namespace {

using frontend::ClipMode;
using frontend::OptimizerKind;
using frontend::ScheduleKind;
using frontend::TrainingSpec;

// Trains `g` for `steps` steps (no inputs: the batch is bound to 1) and returns the parameters.
struct Trainer {
  std::unique_ptr<Graph> g;
  TrainingGraphInfo info;
  std::unique_ptr<Interpreter> interp;

  Trainer(const std::string& text, const TrainingSpec& spec, TrainingGraphOptions opts = {}) {
    g = test::parseVerified(text);
    if (!g) return;
    auto built = buildTrainingGraph(*g, spec, opts);
    if (!built) {
      ADD_FAILURE() << built.error().str();
      g.reset();
      return;
    }
    info = *built;
    interp = std::make_unique<Interpreter>(*g);
    Status s = interp->initializeParameters(1);
    if (!s) ADD_FAILURE() << s.error().str();
  }
  std::map<std::string, Tensor> step(const std::map<std::string, Tensor>& inputs = {}) {
    auto out = interp->run(inputs);
    if (!out) {
      ADD_FAILURE() << out.error().str();
      return {};
    }
    interp->updateParameters(*out);
    return *out;
  }
  std::vector<double> param(const std::string& name) {
    const Tensor* t = interp->parameter(name);
    std::vector<double> v;
    for (int64_t i = 0; t && i < t->size(); ++i) v.push_back(t->getDouble(i));
    return v;
  }
};

// loss = 0.5 * sum(w^2), so g = w: the gradient changes every step and exercises every slot.
const char* kQuadratic = R"(
  parameter { name: "w" dtype: FLOAT64 shape { dim: 2 } init { kind: "values" values: 1 values: -2 } }
  node { name: "sq" op: "square" input: "w" }
  node { name: "sum" op: "reduce_sum" input: "sq" }
  node { name: "half" op: "constant" attr { name: "dtype" dtype: FLOAT64 } attr { name: "value" floats { v: 0.5 } } }
  node { name: "loss" op: "mul" input: "sum" input: "half" }
  output { name: "loss" })";

TrainingSpec specFor(OptimizerKind kind, double lr) {
  TrainingSpec s;
  s.optimizer.kind = kind;
  s.optimizer.learningRate = lr;
  if (kind == OptimizerKind::Adagrad || kind == OptimizerKind::RMSProp) s.optimizer.epsilon = 1e-10;
  return s;
}

struct OptimizerCase {
  OptimizerKind kind;
  const char* name;
  // w after each of three steps (lr 0.1, w0 = [1, -2], g = w), from chapter11.md's formulas
  // evaluated in float64 by an independent script; the arithmetic of step 1 is in a comment.
  double want[3][2];
};

const OptimizerCase kOptimizers[] = {
    // w - 0.1*w = 0.9w
    {OptimizerKind::Sgd, "sgd", {{0.9, -1.8}, {0.81, -1.62}, {0.729, -1.458}}},
    // m = 0.9*0 - 0.1*1 = -0.1; w = 1 - 0.1 = 0.9
    {OptimizerKind::Momentum, "momentum", {{0.9, -1.8}, {0.72, -1.44}, {0.486, -0.972}}},
    // m = -0.1; w = 1 + 0.9*(-0.1) - 0.1*1 = 0.81
    {OptimizerKind::Nesterov, "nesterov", {{0.81, -1.62}, {0.5751, -1.1502}, {0.327321, -0.654642}}},
    // s = 1; w = 1 - 0.1*1/sqrt(1 + 1e-10) = 0.900000000005
    {OptimizerKind::Adagrad, "adagrad",
     {{0.90000000000500002, -1.90000000000125}, {0.8331035268443977, -1.8311250538102095},
      {0.78045618135558847, -1.7758215150104888}}},
    // s = 0.1*1 = 0.1; w = 1 - 0.1/sqrt(0.1 + 1e-10) = 0.683772234...
    {OptimizerKind::RMSProp, "rmsprop",
     {{0.68377223414127597, -1.6837722340226906}, {0.4988706070944493, -1.4738753135516656},
      {0.36918055336253186, -1.3087178670102917}}},
    // m = 0.1, v = 0.001; m_hat = 1, v_hat = 1; w = 1 - 0.1*1/(1 + 1e-7) = 0.90000001
    {OptimizerKind::Adam, "adam",
     {{0.90000000999999896, -1.9000000049999997}, {0.80041224808215061, -1.8001664957181429},
      {0.70158630255533594, -1.70062340659379}}},
    // m = 0.1, u = 1; w = 1 - 0.1/(1 - 0.9) * 0.1/(1 + 1e-7) = 0.90000001
    {OptimizerKind::Adamax, "adamax",
     {{0.90000000999999896, -1.9000000049999997}, {0.80516834518677327, -1.8025341228068901},
      {0.71549949896449594, -1.707648249078773}}},
    // mu_1 = 0.9*(1 - 0.5*0.96^0.004), mu_2 likewise at t = 2; PyTorch NAdam's update
    {OptimizerKind::Nadam, "nadam",
     {{0.89435483272897787, -1.8943548274467197}, {0.81997308770737898, -1.8178975394578716},
      {0.75272928984499909, -1.7475085132879968}}},
    // w = 1 - 0.1*0.01*1 = 0.999, then the adam step 0.999 - 0.1*1/(1 + 1e-7)
    {OptimizerKind::AdamW, "adamw",
     {{0.89900000999999896, -1.8980000049999997}, {0.798519046553405, -1.7962725982446441},
      {0.6989112127499878, -1.6949445289242646}}},
};

TEST(TrainingGraphTest, EveryOptimizerMatchesItsFormulaForThreeSteps) {
  for (const OptimizerCase& c : kOptimizers) {
    SCOPED_TRACE(c.name);
    Trainer t(kQuadratic, specFor(c.kind, 0.1));
    ASSERT_TRUE(t.interp);
    for (int s = 0; s < 3; ++s) {
      t.step();
      std::vector<double> w = t.param("w");
      ASSERT_EQ(w.size(), 2u);
      EXPECT_NEAR(w[0], c.want[s][0], 1e-12 * std::abs(c.want[s][0])) << "step " << s + 1;
      EXPECT_NEAR(w[1], c.want[s][1], 1e-12 * std::abs(c.want[s][1])) << "step " << s + 1;
    }
    EXPECT_EQ(t.param(kStepCounter), std::vector<double>{3.0});
  }
}

TEST(TrainingGraphTest, SlotsAreNamedAfterTheirParameter) {
  Trainer t(kQuadratic, specFor(OptimizerKind::Adam, 0.1));
  ASSERT_TRUE(t.g);
  EXPECT_NE(t.g->findNode("w/m"), nullptr);
  EXPECT_NE(t.g->findNode("w/v"), nullptr);
  EXPECT_FALSE(t.g->findNode("w/m")->b("trainable"));
  Trainer m(kQuadratic, specFor(OptimizerKind::Momentum, 0.1));
  EXPECT_NE(m.g->findNode("w/momentum"), nullptr);
}

// loss = sum(w * c) so that g = c exactly; sgd with lr 1 makes w0 - w1 the clipped gradient.
std::string linearGraph(const std::string& c) {
  return R"(
    parameter { name: "w" dtype: FLOAT64 shape { dim: 2 } init { kind: "zeros" } }
    node { name: "c" op: "constant" attr { name: "dtype" dtype: FLOAT64 } attr { name: "value" floats { )" +
         c + R"( } } }
    node { name: "wc" op: "mul" input: "w" input: "c" }
    node { name: "loss" op: "reduce_sum" input: "wc" }
    output { name: "loss" })";
}

std::vector<double> clippedStep(ClipMode mode, const std::string& c) {
  TrainingSpec s = specFor(OptimizerKind::Sgd, 1.0);
  s.clipping.mode = mode;
  s.clipping.threshold = 1.0;
  Trainer t(linearGraph(c), s);
  if (!t.interp) return {};
  t.step();
  std::vector<double> w = t.param("w");
  return {-w[0], -w[1]};
}

TEST(TrainingGraphTest, ClippingMatchesTheChapterExamples) {
  // chapter11.md: [0.9, 100] -> [0.9, 1.0] by value; -> [0.00899964, 0.9999595] by norm.
  std::vector<double> v = clippedStep(ClipMode::Value, "v: 0.9 v: 100");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_DOUBLE_EQ(v[0], 0.9);
  EXPECT_DOUBLE_EQ(v[1], 1.0);
  std::vector<double> n = clippedStep(ClipMode::Norm, "v: 0.9 v: 100");
  // ||g|| = sqrt(0.81 + 10000) = 100.00405; g/||g|| = [0.0089996, 0.9999595]
  EXPECT_NEAR(n[0], 0.00899964, 5e-9);
  EXPECT_NEAR(n[1], 0.9999595, 5e-8);
  std::vector<double> none = clippedStep(ClipMode::None, "v: 0.9 v: 100");
  EXPECT_DOUBLE_EQ(none[1], 100.0);
}

TEST(TrainingGraphTest, GlobalNormClipsAcrossTensors) {
  // g_a = [3, 4], g_b = [12]: N = sqrt(9 + 16 + 144) = 13; threshold 1 scales both by 1/13.
  TrainingSpec s = specFor(OptimizerKind::Sgd, 1.0);
  s.clipping = {ClipMode::GlobalNorm, 1.0};
  Trainer t(R"(
    parameter { name: "a" dtype: FLOAT64 shape { dim: 2 } init { kind: "zeros" } }
    parameter { name: "b" dtype: FLOAT64 shape { dim: 1 } init { kind: "zeros" } }
    node { name: "ca" op: "constant" attr { name: "dtype" dtype: FLOAT64 } attr { name: "value" floats { v: 3 v: 4 } } }
    node { name: "cb" op: "constant" attr { name: "dtype" dtype: FLOAT64 } attr { name: "value" floats { v: 12 } } attr { name: "shape" ints { v: 1 } } }
    node { name: "la" op: "mul" input: "a" input: "ca" }
    node { name: "lb" op: "mul" input: "b" input: "cb" }
    node { name: "sa" op: "reduce_sum" input: "la" }
    node { name: "sb" op: "reduce_sum" input: "lb" }
    node { name: "loss" op: "add" input: "sa" input: "sb" }
    output { name: "loss" })",
            s);
  ASSERT_TRUE(t.interp);
  t.step();
  EXPECT_NEAR(t.param("a")[0], -3.0 / 13, 1e-15);
  EXPECT_NEAR(t.param("a")[1], -4.0 / 13, 1e-15);
  EXPECT_NEAR(t.param("b")[0], -12.0 / 13, 1e-15);
}

TEST(TrainingGraphTest, ClippingNoneAddsNoNodes) {
  TrainingSpec s = specFor(OptimizerKind::Sgd, 1.0);
  Trainer t(linearGraph("v: 1 v: 2"), s);
  ASSERT_TRUE(t.g);
  for (Node* n : t.g->nodes()) EXPECT_FALSE(n->name().starts_with("clip/")) << n->name();
}

// The learning rate the graph computes after `completed` steps.
double rateAt(Trainer& t, int64_t completed) {
  EXPECT_TRUE(t.interp->setParameter(kStepCounter, Tensor::scalar<double>(static_cast<double>(completed))));
  auto out = t.interp->run({});
  return out ? out->at("learning_rate").getDouble(0) : -1;
}
// The momentum the graph uses after `completed` steps: with g = 0 and the slot set to 1, the
// new slot is beta*1 - lr*0 = beta.
double momentumAt(Trainer& t, int64_t completed) {
  EXPECT_TRUE(t.interp->setParameter(kStepCounter, Tensor::scalar<double>(static_cast<double>(completed))));
  EXPECT_TRUE(t.interp->setParameter("w/momentum", Tensor::fromVector<double>({2}, {1, 1})));
  auto out = t.interp->run({});
  return out ? out->at("w/momentum").getDouble(0) : -1;
}

TEST(TrainingGraphTest, SchedulesMatchTheirFormulas) {
  struct Case {
    const char* name;
    TrainingSpec spec;
    std::vector<std::pair<int64_t, double>> hand;  // (completed steps, rate)
  };
  std::vector<Case> cases;
  {
    TrainingSpec s = specFor(OptimizerKind::Sgd, 0.01);
    s.schedule.kind = ScheduleKind::Power;
    s.schedule.decaySteps = 10;
    // 0.01 / (1 + 20/10)^1 = 0.0033333
    cases.push_back({"power", s, {{0, 0.01}, {20, 0.01 / 3}}});
  }
  {
    TrainingSpec s = specFor(OptimizerKind::Sgd, 0.01);
    s.schedule.kind = ScheduleKind::Exponential;
    s.schedule.decaySteps = 10;
    // 0.01 * 0.1^(20/10) = 1e-4; 0.01 * 0.1^(5/10) = 0.0031623
    cases.push_back({"exponential", s, {{0, 0.01}, {20, 1e-4}, {5, 0.01 * std::sqrt(0.1)}}});
  }
  {
    TrainingSpec s = specFor(OptimizerKind::Sgd, 0.01);
    s.schedule.kind = ScheduleKind::PiecewiseConstant;
    s.schedule.boundaries = {5, 15};
    s.schedule.values = {0.1, 0.01, 0.001};
    // Keras: values[0] while t <= 5, values[1] while t <= 15.
    cases.push_back({"piecewise", s, {{0, 0.1}, {5, 0.1}, {6, 0.01}, {15, 0.01}, {16, 0.001}}});
  }
  {
    TrainingSpec s = specFor(OptimizerKind::Momentum, 0.01);
    s.schedule.kind = ScheduleKind::OneCycle;
    s.schedule.maxLearningRate = 0.1;
    s.schedule.totalSteps = 100;
    // Boundaries at 45 and 90 of T = 100: 0.01 -> 0.1 -> 0.01 -> 1e-5.
    cases.push_back({"one_cycle", s, {{0, 0.01}, {45, 0.1}, {90, 0.01}, {100, 1e-5}, {200, 1e-5},
                                      {22, 0.01 + 0.09 * 22 / 45.0}, {95, 0.01 + (1e-5 - 0.01) * 0.5}}});
  }
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    Trainer t(linearGraph("v: 0 v: 0"), c.spec);
    ASSERT_TRUE(t.interp);
    for (auto [step, want] : c.hand) EXPECT_NEAR(rateAt(t, step), want, 1e-9) << "after " << step << " steps";
    // The host implementation agrees everywhere (float64 graph, so to rounding).
    for (int64_t step = 0; step <= 120; step += 7)
      EXPECT_NEAR(rateAt(t, step), frontend::learningRateAt(c.spec, step), 1e-12) << step;
  }
}

TEST(TrainingGraphTest, OneCycleCyclesMomentum) {
  TrainingSpec s = specFor(OptimizerKind::Momentum, 0.01);
  s.schedule.kind = ScheduleKind::OneCycle;
  s.schedule.maxLearningRate = 0.1;
  s.schedule.totalSteps = 100;
  Trainer t(linearGraph("v: 0 v: 0"), s);
  ASSERT_TRUE(t.interp);
  // 0.95 at the start, 0.85 at 45% of T, 0.95 again at 90% and after.
  EXPECT_NEAR(momentumAt(t, 0), 0.95, 1e-12);
  EXPECT_NEAR(momentumAt(t, 45), 0.85, 1e-12);
  EXPECT_NEAR(momentumAt(t, 67), 0.85 + 0.1 * 22 / 45.0, 1e-12);
  EXPECT_NEAR(momentumAt(t, 90), 0.95, 1e-12);
  EXPECT_NEAR(momentumAt(t, 99), 0.95, 1e-12);
}

}  // namespace
}  // namespace kiln
