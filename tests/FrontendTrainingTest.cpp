// The training spec: chapter11.md's defaults for every optimizer, schedule and clipping mode,
// the errors for bad values (with their lines), and the schedule and clipping rules against
// hand-computed numbers.
#include <gtest/gtest.h>

#include "FrontendTestUtil.h"
#include "frontend/TrainingMath.h"

namespace kiln {
namespace {

using namespace frontend;
using test::expandError;

// A one-layer model with `training { <body> }`.
std::string withTraining(const std::string& body) {
  return test::model("dim: 4", "layer { dense { units: 3 } }", "training {\n  " + body + "\n}\n");
}

TrainingSpec spec(const std::string& body) {
  ExpandedModel m = test::expandOk(withTraining(body));
  EXPECT_TRUE(m.training.has_value());
  return m.training.value_or(TrainingSpec{});
}

TEST(FrontendTrainingTest, OptimizerDefaultsFollowChapter11) {
  const std::string loss = "loss: \"sparse_softmax_cross_entropy\" ";
  struct Case {
    const char* kind;
    OptimizerKind k;
    double lr;
  };
  for (Case c :
       {Case{"sgd", OptimizerKind::Sgd, 0.01}, Case{"momentum", OptimizerKind::Momentum, 0.01},
        Case{"nesterov", OptimizerKind::Nesterov, 0.01},
        Case{"adagrad", OptimizerKind::Adagrad, 0.01},
        Case{"rmsprop", OptimizerKind::RMSProp, 0.001}, Case{"adam", OptimizerKind::Adam, 0.001},
        Case{"adamax", OptimizerKind::Adamax, 0.001}, Case{"nadam", OptimizerKind::Nadam, 0.001},
        Case{"adamw", OptimizerKind::AdamW, 0.001}}) {
    SCOPED_TRACE(c.kind);
    OptimizerSpec o = spec(loss + "optimizer { kind: \"" + c.kind + "\" }").optimizer;
    EXPECT_EQ(o.kind, c.k);
    EXPECT_DOUBLE_EQ(o.learningRate, c.lr);
    EXPECT_DOUBLE_EQ(o.momentum, 0.9);
    EXPECT_DOUBLE_EQ(o.beta1, 0.9);
    EXPECT_DOUBLE_EQ(o.beta2, 0.999);
    EXPECT_DOUBLE_EQ(o.rho, 0.9);
    EXPECT_DOUBLE_EQ(o.weightDecay, 0.01);
    EXPECT_DOUBLE_EQ(o.momentumDecay, 0.004);
    // epsilon: 1e-10 for rmsprop and adagrad, 1e-7 for the adam family.
    EXPECT_DOUBLE_EQ(o.epsilon,
                     c.k == OptimizerKind::RMSProp || c.k == OptimizerKind::Adagrad ? 1e-10 : 1e-7);
  }
  // No optimizer: Keras's default, rmsprop; and the rest of the spec's defaults.
  TrainingSpec t = spec(loss);
  EXPECT_EQ(t.optimizer.kind, OptimizerKind::RMSProp);
  EXPECT_EQ(t.schedule.kind, ScheduleKind::Constant);
  EXPECT_EQ(t.clipping.mode, ClipMode::None);
  EXPECT_EQ(t.epochs, 1);
  EXPECT_EQ(t.batchSize, 32);
  EXPECT_EQ(t.seed, 0u);
  EXPECT_EQ(t.targets, Targets::Labels);
  // Given values win.
  OptimizerSpec o = spec(loss +
                         "optimizer { kind: \"adam\" learning_rate: 0.002 beta_1: 0.8 beta_2: 0.99 "
                         "epsilon: 1e-8 }")
                        .optimizer;
  EXPECT_DOUBLE_EQ(o.learningRate, 0.002);
  EXPECT_DOUBLE_EQ(o.beta1, 0.8);
  EXPECT_DOUBLE_EQ(o.beta2, 0.99);
  EXPECT_DOUBLE_EQ(o.epsilon, 1e-8);
  EXPECT_DOUBLE_EQ(spec(loss + "optimizer { kind: \"rmsprop\" rho: 0.95 }").optimizer.rho, 0.95);
  EXPECT_DOUBLE_EQ(
      spec(loss + "optimizer { kind: \"adamw\" weight_decay: 0.1 }").optimizer.weightDecay, 0.1);
  EXPECT_DOUBLE_EQ(
      spec(loss + "optimizer { kind: \"nadam\" momentum_decay: 0.01 }").optimizer.momentumDecay,
      0.01);
  EXPECT_DOUBLE_EQ(
      spec(loss + "optimizer { kind: \"nesterov\" momentum: 0.95 }").optimizer.momentum, 0.95);
}

TEST(FrontendTrainingTest, ScheduleAndClippingSpecs) {
  const std::string base =
      "loss: \"sparse_softmax_cross_entropy\" optimizer { kind: \"momentum\" } ";
  TrainingSpec t = spec(base + "schedule { kind: \"power\" decay_steps: 100 }");
  EXPECT_EQ(t.schedule.kind, ScheduleKind::Power);
  EXPECT_EQ(t.schedule.decaySteps, 100);
  EXPECT_DOUBLE_EQ(t.schedule.power, 1.0);  // c = 1
  t = spec(base + "schedule { kind: \"performance\" }");
  EXPECT_DOUBLE_EQ(t.schedule.factor, 0.5);
  EXPECT_EQ(t.schedule.patience, 5);
  EXPECT_EQ(t.schedule.monitor, "val_loss");
  t = spec(base + "schedule { kind: \"one_cycle\" max_learning_rate: 0.1 }");
  EXPECT_DOUBLE_EQ(t.schedule.maxMomentum, 0.95);
  EXPECT_DOUBLE_EQ(t.schedule.minMomentum, 0.85);
  EXPECT_EQ(t.schedule.totalSteps, 0);  // the whole run
  t = spec(
      base +
      "schedule { kind: \"piecewise_constant\" boundaries: [5, 15] values: [0.02, 0.005, 0.001] }");
  EXPECT_DOUBLE_EQ(t.optimizer.learningRate, 0.02);  // values[0] is the initial rate
  for (auto [text, mode] : {std::pair{"value", ClipMode::Value},
                            {"norm", ClipMode::Norm},
                            {"global_norm", ClipMode::GlobalNorm}}) {
    t = spec(base + "clipping { mode: \"" + text + "\" threshold: 1.0 }");
    EXPECT_EQ(t.clipping.mode, mode);
    EXPECT_DOUBLE_EQ(t.clipping.threshold, 1.0);
  }
  t = spec(base + "targets: \"labels\" metric: \"accuracy\" epochs: 20 batch_size: 200 seed: 42");
  EXPECT_EQ(t.metrics, std::vector<MetricKind>{MetricKind::Accuracy});
  EXPECT_EQ(t.epochs, 20);
  EXPECT_EQ(t.batchSize, 200);
  EXPECT_EQ(t.seed, 42u);
  EXPECT_EQ(
      spec(base +
           "schedule { kind: \"performance\" monitor: \"val_accuracy\" } metric: \"accuracy\"")
          .schedule.monitor,
      "val_accuracy");
}

TEST(FrontendTrainingTest, BadValuesAreErrorsAtTheirLines) {
  auto err = [](const std::string& body) { return expandError(withTraining(body)); };
  const std::string loss = "loss: \"sparse_softmax_cross_entropy\"\n  ";
  // The brief's own example: line 5 (training opens at line 4), column of `momentum`.
  EXPECT_CONTAINS(
      err(loss + "optimizer { kind: \"momentum\" momentum: 1.2 }"),
      "model.pbtxt:6:32: error: training.optimizer: momentum must be in [0, 1), found 1.2");
  EXPECT_CONTAINS(
      err(loss + "optimizer { kind: \"sgd\" learning_rate: -0.1 }"),
      "model.pbtxt:6:27: error: training.optimizer: learning_rate must be positive, found -0.1");
  EXPECT_CONTAINS(err(loss + "optimizer { kind: \"adamm\" }"),
                  "model.pbtxt:6:15: error: training.optimizer: unknown optimizer 'adamm'; did you "
                  "mean 'adam'?");
  EXPECT_CONTAINS(
      err(loss + "optimizer { kind: \"sgd\" momentum: 0.9 }"),
      "sgd takes no momentum; for momentum optimization use kind: \"momentum\" (or \"nesterov\")");
  EXPECT_CONTAINS(err(loss + "optimizer { kind: \"adam\" rho: 0.9 }"),
                  "adam takes no rho (rmsprop takes it)");
  EXPECT_CONTAINS(err(loss + "optimizer { kind: \"adam\" beta_2: 1 }"),
                  "beta_2 must be in [0, 1), found 1");
  EXPECT_CONTAINS(err(loss + "optimizer { kind: \"adam\" epsilon: 0 }"),
                  "epsilon must be positive, found 0");
  EXPECT_CONTAINS(err(loss + "schedule { kind: \"exponentail\" }"),
                  "model.pbtxt:6:14: error: training.schedule: unknown schedule 'exponentail'; did "
                  "you mean 'exponential'?");
  EXPECT_CONTAINS(err(loss + "schedule { kind: \"exponential\" }"),
                  "training.schedule: exponential needs decay_steps");
  EXPECT_CONTAINS(err(loss + "schedule { kind: \"exponential\" decay_steps: 10 factor: 0.5 }"),
                  "training.schedule: exponential takes no factor (performance does)");
  EXPECT_CONTAINS(
      err(loss + "schedule { kind: \"piecewise_constant\" boundaries: [5] values: [0.1] }"),
      "found 1 boundaries and 1 values");
  EXPECT_CONTAINS(err(loss + "schedule { kind: \"piecewise_constant\" boundaries: [5, 5] values: "
                             "[0.1, 0.01, 0.001] }"),
                  "boundaries must be positive and increasing, found 5 after 5");
  EXPECT_CONTAINS(
      err(loss + "optimizer { learning_rate: 0.5 } schedule { kind: \"piecewise_constant\" "
                 "boundaries: [5] values: [0.1, 0.01] }"),
      "learning_rate 0.5 disagrees with the piecewise_constant schedule, which starts at 0.1");
  EXPECT_CONTAINS(err(loss + "schedule { kind: \"one_cycle\" }"),
                  "one_cycle needs max_learning_rate");
  EXPECT_CONTAINS(
      err(loss +
          "optimizer { kind: \"sgd\" } schedule { kind: \"one_cycle\" max_learning_rate: 0.005 }"),
      "max_learning_rate must be above the initial learning rate 0.01, found 0.005");
  EXPECT_CONTAINS(err(loss + "optimizer { kind: \"sgd\" } schedule { kind: \"one_cycle\" "
                             "max_learning_rate: 0.1 max_momentum: 0.9 }"),
                  "sgd has no momentum for one_cycle to cycle");
  EXPECT_CONTAINS(err(loss + "optimizer { kind: \"momentum\" momentum: 0.9 } schedule { kind: "
                             "\"one_cycle\" max_learning_rate: 0.1 }"),
                  "momentum is driven by the one_cycle schedule");
  EXPECT_CONTAINS(
      err(loss + "schedule { kind: \"performance\" monitor: \"val_los\" }"),
      "monitor 'val_los' is not a loss or a metric of this model; did you mean 'val_loss'?");
  EXPECT_CONTAINS(
      err(loss + "schedule { kind: \"performance\" monitor: \"val_accuracy\" }"),
      "monitor 'val_accuracy' is not a loss or a metric of this model (one of loss or val_loss)");
  EXPECT_CONTAINS(err(loss + "schedule { kind: \"performance\" factor: 1.5 }"),
                  "factor must be in (0, 1), found 1.5");
  EXPECT_CONTAINS(
      err(loss + "clipping { mode: \"norm\" threshold: 0 }"),
      "model.pbtxt:6:27: error: training.clipping: threshold must be positive, found 0");
  EXPECT_CONTAINS(err(loss + "clipping { mode: \"clipnorm\" threshold: 1 }"),
                  "unknown clipping mode 'clipnorm'; did you mean 'norm'?");
  EXPECT_CONTAINS(err(loss + "clipping { mode: \"value\" }"),
                  "clipping by value needs a threshold");
  EXPECT_CONTAINS(err(loss + "clipping { threshold: 1 }"), "a threshold without a clipping mode");
  EXPECT_CONTAINS(err("optimizer { kind: \"sgd\" }"),
                  "model.pbtxt:4:1: error: training: loss is required");
  EXPECT_CONTAINS(err("loss: \"sparse_categorical_crossentropy\""),
                  "unknown loss 'sparse_categorical_crossentropy'; did you mean "
                  "'sparse_softmax_cross_entropy'?");
  EXPECT_CONTAINS(err(loss + "metric: \"acuracy\""),
                  "unknown metric 'acuracy'; did you mean 'accuracy'?");
  EXPECT_CONTAINS(err("loss: \"mean_squared_error\" metric: \"accuracy\""),
                  "accuracy needs a classification loss");
  EXPECT_CONTAINS(err(loss + "epochs: 0"), "training: epochs must be at least 1, found 0");
  EXPECT_CONTAINS(err(loss + "batch_size: -5"),
                  "training: batch_size must be at least 1, found -5");
  EXPECT_CONTAINS(err(loss + "targets: \"input\""),
                  "unknown targets 'input'; did you mean 'inputs'?");
  EXPECT_CONTAINS(err(loss + "targets: \"inputs\""),
                  "needs mean_squared_error or binary_cross_entropy_with_logits");
}

TEST(FrontendTrainingTest, EveryIndependentProblemIsReported) {
  const std::string text = withTraining(
      "loss: \"mse\"\n  optimizer { kind: \"sgd\" learning_rate: -1 }\n"
      "  clipping { mode: \"value\" threshold: -2 }\n  epochs: 0");
  auto pf = frontend::parseModel(text, GraphFormat::Text, "model.pbtxt");
  ASSERT_TRUE(pf);
  auto t = validateTraining(*pf);
  ASSERT_FALSE(t);
  // All four, in file order.
  EXPECT_EQ(
      t.error().str(),
      "model.pbtxt:5:3: error: training: unknown loss 'mse'; did you mean 'mean_squared_error'? "
      "(one of "
      "sparse_softmax_cross_entropy, binary_cross_entropy_with_logits or mean_squared_error)\n"
      "model.pbtxt:6:27: error: training.optimizer: learning_rate must be positive, found -1\n"
      "model.pbtxt:7:28: error: training.clipping: threshold must be positive, found -2\n"
      "model.pbtxt:8:3: error: training: epochs must be at least 1, found 0");
  // A layer error is reported with them (the training spec does not hide it), first by line.
  std::string e = expandError(
      test::model("dim: 4", "layer { dense { units: 0 } }", "training { loss: \"mse\" }"));
  EXPECT_EQ(
      e,
      "model.pbtxt:3:17: error: layer 'dense_1' (dense): units must be positive, found 0\n"
      "model.pbtxt:4:12: error: training: unknown loss 'mse'; did you mean 'mean_squared_error'? "
      "(one of "
      "sparse_softmax_cross_entropy, binary_cross_entropy_with_logits or mean_squared_error)");
}

TEST(FrontendTrainingTest, DescribeListsEveryValue) {
  std::string d = spec(
                      "loss: \"sparse_softmax_cross_entropy\" metric: \"accuracy\" optimizer { "
                      "kind: \"nadam\" } "
                      "schedule { kind: \"exponential\" decay_steps: 1000 } clipping { mode: "
                      "\"global_norm\" threshold: 1 }")
                      .describe();
  EXPECT_EQ(d,
            "Training: loss sparse_softmax_cross_entropy on labels; metrics accuracy\n"
            "  optimizer nadam: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-07, "
            "momentum_decay 0.004\n"
            "  schedule exponential: decay_steps 1000, decay_rate 0.1\n"
            "  clipping global_norm: threshold 1\n"
            "  epochs 1, batch_size 32, seed 0\n");
}

// ---- Schedules and clipping as numbers ----

TEST(FrontendTrainingTest, PowerAndExponentialSchedules) {
  TrainingSpec t = spec(
      "loss: \"sparse_softmax_cross_entropy\" optimizer { kind: \"sgd\" } schedule { kind: "
      "\"power\" decay_steps: 10 }");
  // 0.01 / (1 + t/10): t = 0 -> 0.01, t = 10 -> 0.005, t = 30 -> 0.0025.
  EXPECT_DOUBLE_EQ(learningRateAt(t, 0), 0.01);
  EXPECT_DOUBLE_EQ(learningRateAt(t, 10), 0.005);
  EXPECT_DOUBLE_EQ(learningRateAt(t, 30), 0.0025);
  t.schedule.power = 2;  // 0.01 / (1 + 1)^2 = 0.0025
  EXPECT_DOUBLE_EQ(learningRateAt(t, 10), 0.0025);
  t = spec(
      "loss: \"sparse_softmax_cross_entropy\" optimizer { kind: \"sgd\" } schedule { kind: "
      "\"exponential\" decay_steps: 20 }");
  // 0.01 * 0.1^(t/20): t = 20 -> 0.001, t = 10 -> 0.01 * 0.1^0.5 = 0.0031622777, t = 40 -> 0.0001.
  EXPECT_DOUBLE_EQ(learningRateAt(t, 0), 0.01);
  EXPECT_NEAR(learningRateAt(t, 20), 0.001, 1e-15);
  EXPECT_NEAR(learningRateAt(t, 10), 0.0031622776601683794, 1e-15);
  EXPECT_NEAR(learningRateAt(t, 40), 0.0001, 1e-15);
}

TEST(FrontendTrainingTest, PiecewiseConstantSchedule) {
  TrainingSpec t = spec(
      "loss: \"sparse_softmax_cross_entropy\" optimizer { kind: \"sgd\" } "
      "schedule { kind: \"piecewise_constant\" boundaries: [5, 15] values: [0.01, 0.005, 0.001] }");
  // Keras: values[0] while t <= 5, values[1] while t <= 15, then values[2].
  for (auto [step, lr] :
       {std::pair{0, 0.01}, {5, 0.01}, {6, 0.005}, {15, 0.005}, {16, 0.001}, {1000, 0.001}})
    EXPECT_DOUBLE_EQ(learningRateAt(t, step), lr) << "step " << step;
}

TEST(FrontendTrainingTest, OneCycleScheduleAndMomentum) {
  TrainingSpec t = spec(
      "loss: \"sparse_softmax_cross_entropy\" optimizer { kind: \"momentum\" } "
      "schedule { kind: \"one_cycle\" max_learning_rate: 0.1 total_steps: 100 }");
  // eta0 = 0.01 up to 0.1 at step 45, back to 0.01 at 90, down to 0.01/1000 at 100.
  EXPECT_DOUBLE_EQ(learningRateAt(t, 0), 0.01);
  EXPECT_NEAR(learningRateAt(t, 9), 0.01 + 0.09 * 9 / 45, 1e-15);  // 0.028
  EXPECT_NEAR(learningRateAt(t, 45), 0.1, 1e-15);
  EXPECT_NEAR(learningRateAt(t, 63), 0.1 - 0.09 * 18 / 45, 1e-15);  // 0.064
  EXPECT_NEAR(learningRateAt(t, 90), 0.01, 1e-15);
  EXPECT_NEAR(learningRateAt(t, 95), 0.01 - (0.01 - 0.00001) * 0.5, 1e-15);  // 0.005005
  EXPECT_NEAR(learningRateAt(t, 100), 0.00001, 1e-15);
  EXPECT_NEAR(learningRateAt(t, 150), 0.00001, 1e-15);
  // Momentum 0.95 -> 0.85 at step 45 -> 0.95 at 90, then 0.95.
  EXPECT_DOUBLE_EQ(momentumAt(t, 0), 0.95);
  EXPECT_NEAR(momentumAt(t, 9), 0.93, 1e-15);
  EXPECT_NEAR(momentumAt(t, 45), 0.85, 1e-15);
  EXPECT_NEAR(momentumAt(t, 90), 0.95, 1e-15);
  EXPECT_DOUBLE_EQ(momentumAt(t, 95), 0.95);
  // Without total_steps, T is the run's length, given by the caller.
  t.schedule.totalSteps = 0;
  EXPECT_NEAR(learningRateAt(t, 90, /*totalSteps=*/200), 0.1, 1e-15);
  // Other schedules leave the optimizer's momentum alone.
  EXPECT_DOUBLE_EQ(momentumAt(spec("loss: \"sparse_softmax_cross_entropy\" optimizer { kind: "
                                   "\"nesterov\" momentum: 0.8 }"),
                              50),
                   0.8);
}

TEST(FrontendTrainingTest, PlateauScheduleHalvesAfterPatience) {
  TrainingSpec t = spec(
      "loss: \"sparse_softmax_cross_entropy\" optimizer { kind: \"sgd\" } "
      "schedule { kind: \"performance\" patience: 2 min_learning_rate: 0.003 }");
  PlateauSchedule p(t);
  EXPECT_DOUBLE_EQ(p.learningRate(), 0.01);
  EXPECT_DOUBLE_EQ(p.endEpoch(1.0), 0.01);    // first value: the best so far
  EXPECT_DOUBLE_EQ(p.endEpoch(0.9), 0.01);    // improved
  EXPECT_DOUBLE_EQ(p.endEpoch(0.95), 0.01);   // 1 epoch without improvement
  EXPECT_DOUBLE_EQ(p.endEpoch(0.92), 0.005);  // 2 = patience: 0.01 * 0.5, count restarts
  EXPECT_DOUBLE_EQ(p.endEpoch(0.91), 0.005);
  EXPECT_DOUBLE_EQ(p.endEpoch(0.93), 0.003);  // 0.0025 is below the floor 0.003
  // Accuracy improves upwards.
  TrainingSpec a = spec(
      "loss: \"sparse_softmax_cross_entropy\" metric: \"accuracy\" optimizer { kind: \"sgd\" } "
      "schedule { kind: \"performance\" patience: 1 monitor: \"val_accuracy\" }");
  PlateauSchedule q(a);
  q.endEpoch(0.8);
  EXPECT_DOUBLE_EQ(q.endEpoch(0.85), 0.01);
  EXPECT_DOUBLE_EQ(q.endEpoch(0.84), 0.005);
}

TEST(FrontendTrainingTest, ClippingMatchesChapter11Examples) {
  ClippingSpec clip{ClipMode::Value, 1.0};
  std::vector<double> g = {0.9, 100};
  clipGradients(clip, {&g});
  EXPECT_EQ(g, (std::vector<double>{0.9, 1.0}));
  // By norm: [0.9, 100] * 1 / ||[0.9, 100]|| = [0.00899964, 0.9999595].
  g = {0.9, 100};
  clip.mode = ClipMode::Norm;
  clipGradients(clip, {&g});
  EXPECT_NEAR(g[0], 0.00899963552214188, 1e-15);
  EXPECT_NEAR(g[1], 0.999959502460209, 1e-15);
  // A tensor inside the threshold is left alone.
  std::vector<double> small = {0.3, 0.4};
  clipGradients(clip, {&small});
  EXPECT_EQ(small, (std::vector<double>{0.3, 0.4}));
  // By global norm: N = sqrt(0.81 + 10000 + 9 + 16) = 100.128967; every tensor scaled by 1/N.
  g = {0.9, 100};
  std::vector<double> h = {3, 4};
  clip.mode = ClipMode::GlobalNorm;
  clipGradients(clip, {&g, &h});
  EXPECT_NEAR(g[0], 0.008988407934520642, 1e-15);
  EXPECT_NEAR(g[1], 0.9987119927245157, 1e-15);
  EXPECT_NEAR(h[0], 0.02996135978173547, 1e-15);
  EXPECT_NEAR(h[1], 0.03994847970898063, 1e-15);
  clip.mode = ClipMode::None;
  clipGradients(clip, {&h});
  EXPECT_NEAR(h[0], 0.02996135978173547, 1e-15);
}

}  // namespace
}  // namespace kiln
