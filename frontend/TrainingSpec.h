// The training spec of a model file, validated and with every default of chapter11.md filled
// in: the loss, metrics, optimizer, learning-rate schedule, gradient clipping and loop sizes
// that training (autodiff and the optimizer passes) consumes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/ModelFile.h"

namespace kiln::frontend {

enum class LossKind { SparseSoftmaxCrossEntropy, BinaryCrossEntropyWithLogits, MeanSquaredError };
enum class MetricKind { Accuracy };
enum class OptimizerKind { Sgd, Momentum, Nesterov, Adagrad, RMSProp, Adam, Adamax, Nadam, AdamW };
enum class ScheduleKind { Constant, Power, Exponential, PiecewiseConstant, Performance, OneCycle };
enum class ClipMode { None, Value, Norm, GlobalNorm };
/// What the loss compares the model's output with: a labels input, or the model's own input.
enum class Targets { Labels, Inputs };

/// The names used in model files ("sgd", "one_cycle", "global_norm", ...).
std::string_view lossName(LossKind k);
std::string_view metricName(MetricKind k);
std::string_view optimizerName(OptimizerKind k);
std::string_view scheduleName(ScheduleKind k);
std::string_view clipModeName(ClipMode m);
std::string_view targetsName(Targets t);

/// Every hyperparameter of every optimizer; those the kind does not use keep their defaults
/// and mean nothing (validation rejects a model that sets them).
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::RMSProp;
  double learningRate = 0.001;   // 0.01 for sgd, momentum, nesterov, adagrad
  double momentum = 0.9;         // momentum, nesterov
  double beta1 = 0.9;            // adam, adamax, nadam, adamw
  double beta2 = 0.999;          // adam, adamax, nadam, adamw
  double epsilon = 1e-7;         // adam family; 1e-10 for rmsprop and adagrad
  double rho = 0.9;              // rmsprop
  double weightDecay = 0.01;     // adamw (decoupled)
  double momentumDecay = 0.004;  // nadam
  /// Whether the optimizer has a momentum term (beta for momentum/nesterov, beta1 for the adam
  /// family): one_cycle then cycles it.
  bool hasMomentum() const;
};

struct ScheduleSpec {
  ScheduleKind kind = ScheduleKind::Constant;
  int64_t decaySteps = 0;            // power, exponential: s
  double power = 1.0;                // power: c
  double decayRate = 0.1;            // exponential: eta0 * decayRate^(t/s)
  std::vector<int64_t> boundaries;   // piecewise_constant
  std::vector<double> values;        // piecewise_constant (values[0] is the initial rate)
  double factor = 0.5;               // performance
  int64_t patience = 5;              // performance, in epochs
  std::string monitor = "val_loss";  // performance
  double minLearningRate = 0.0;      // performance
  double maxLearningRate = 0.0;      // one_cycle: eta_max
  int64_t totalSteps = 0;            // one_cycle: T; 0 means every step of the training run
  double maxMomentum = 0.95;         // one_cycle
  double minMomentum = 0.85;         // one_cycle
};

struct ClippingSpec {
  ClipMode mode = ClipMode::None;
  double threshold = 0.0;  // > 0 unless mode is None
};

struct TrainingSpec {
  LossKind loss = LossKind::SparseSoftmaxCrossEntropy;
  std::vector<MetricKind> metrics;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  ClippingSpec clipping;
  int64_t epochs = 1;      // Keras's default
  int64_t batchSize = 32;  // Keras's default
  uint64_t seed = 0;
  Targets targets = Targets::Labels;

  /// One paragraph for `kiln check`: every value, defaults included.
  std::string describe() const;
};

/// Validates `m.model.training()` and fills in the defaults. Every problem is reported (not
/// only the first), each at its field's line: unknown names (with a suggestion), values out of
/// range (a negative learning rate, momentum >= 1, a threshold <= 0, ...), hyperparameters the
/// chosen optimizer or schedule does not take, and required ones that are missing.
/// Requires m.model.has_training().
Expected<TrainingSpec> validateTraining(const ParsedModel& m);

}  // namespace kiln::frontend
