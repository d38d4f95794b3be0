// A fluent C++ API for writing layer-level models in code, the way the book writes Keras:
//
//   kiln::frontend::ModelBuilder m("fashion_mlp");
//   m.input({784})
//       .dense(300, Init::HeNormal).named("hidden1").batchNorm(0.9).elu()
//       .dense(100, Init::HeNormal).named("hidden2").batchNorm(0.9).elu()
//       .dense(10).named("output").batchNorm(0.9);
//   m.training().loss(Loss::SparseSoftmaxCrossEntropy).metric("accuracy").sgd(0.01).batchSize(200);
//   Expected<ExpandedModel> g = m.expand();
//
// It builds the same kiln.proto Model message a model file holds, so a model written either
// way expands to the same graph and is validated by the same code (with the same errors).
// Values left out are left unset in the message, so chapter11.md's defaults apply.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frontend/Expand.h"
#include "ir/kiln.pb.h"

namespace kiln::frontend {

/// A parameter initializer: one of the named ones, or a general variance scaling.
class Init {
 public:
  /// A named initializer: glorot_uniform, he_normal, zeros, ... (checked when expanding).
  static Init named(std::string kind);
  /// sigma^2 = scale / fan, fan by `mode` (fan_in, fan_out, fan_avg); `distribution` is
  /// truncated_normal, untruncated_normal or uniform.
  static Init varianceScaling(double scale, std::string mode = "fan_in",
                              std::string distribution = "truncated_normal");
  static Init constant(double value);
  /// Every element, row-major (for tests and hand-made weights).
  static Init values(std::vector<double> values);

  static const Init GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal,
      Zeros, Ones;

  const proto::Initializer& proto() const { return p_; }

 private:
  proto::Initializer p_;
};

inline const Init Init::GlorotUniform = Init::named("glorot_uniform");
inline const Init Init::GlorotNormal = Init::named("glorot_normal");
inline const Init Init::HeUniform = Init::named("he_uniform");
inline const Init Init::HeNormal = Init::named("he_normal");
inline const Init Init::LecunUniform = Init::named("lecun_uniform");
inline const Init Init::LecunNormal = Init::named("lecun_normal");
inline const Init Init::Zeros = Init::named("zeros");
inline const Init Init::Ones = Init::named("ones");

enum class Loss { SparseSoftmaxCrossEntropy, BinaryCrossEntropyWithLogits, MeanSquaredError };

class ModelBuilder;

/// The training spec of a ModelBuilder (from ModelBuilder::training()). Optional arguments
/// left out keep chapter11.md's defaults.
class TrainingBuilder {
 public:
  TrainingBuilder& loss(Loss loss);
  /// A metric by name ("accuracy").
  TrainingBuilder& metric(std::string name);

  /// The optimizer by kind, each with its learning rate (and its own hyperparameters).
  TrainingBuilder& sgd(std::optional<double> lr = {});
  TrainingBuilder& momentum(std::optional<double> lr = {}, std::optional<double> beta = {});
  TrainingBuilder& nesterov(std::optional<double> lr = {}, std::optional<double> beta = {});
  TrainingBuilder& adagrad(std::optional<double> lr = {});
  TrainingBuilder& rmsprop(std::optional<double> lr = {}, std::optional<double> rho = {});
  TrainingBuilder& adam(std::optional<double> lr = {});
  TrainingBuilder& adamax(std::optional<double> lr = {});
  TrainingBuilder& nadam(std::optional<double> lr = {});
  TrainingBuilder& adamw(std::optional<double> lr = {}, std::optional<double> weightDecay = {});
  /// The optimizer by name, for code that reads it from elsewhere.
  TrainingBuilder& optimizer(std::string kind);
  /// One hyperparameter of the optimizer chosen above.
  TrainingBuilder& learningRate(double v);
  TrainingBuilder& beta1(double v);
  TrainingBuilder& beta2(double v);
  TrainingBuilder& epsilon(double v);
  TrainingBuilder& momentumDecay(double v);

  /// Schedules: eta0 / (1 + t/s)^c; eta0 * 0.1^(t/s); values[i] between boundaries; reduce on
  /// plateau; 1cycle up to maxLearningRate over totalSteps (default: the whole run).
  TrainingBuilder& powerSchedule(int64_t decaySteps, std::optional<double> power = {});
  TrainingBuilder& exponentialSchedule(int64_t decaySteps);
  TrainingBuilder& piecewiseConstant(std::vector<int64_t> boundaries, std::vector<double> values);
  TrainingBuilder& performanceSchedule(std::optional<double> factor = {},
                                       std::optional<int64_t> patience = {});
  TrainingBuilder& oneCycle(double maxLearningRate, std::optional<int64_t> totalSteps = {});

  TrainingBuilder& clipByValue(double threshold);
  TrainingBuilder& clipByNorm(double threshold);
  TrainingBuilder& clipByGlobalNorm(double threshold);

  TrainingBuilder& epochs(int64_t n);
  TrainingBuilder& batchSize(int64_t n);
  TrainingBuilder& seed(uint64_t seed);
  /// The model reconstructs its input (an autoencoder): the loss compares output and input.
  TrainingBuilder& inputsAsTargets();

 private:
  friend class ModelBuilder;
  explicit TrainingBuilder(proto::Training* t) : t_(t) {}
  proto::Training* t_;
};

/// Builds a Model message layer by layer. Layer calls add a layer; modifier calls (named, l2,
/// useBias, ...) change the last one. Misuse (a modifier that does not fit the last layer) is
/// remembered and reported by model() and expand(), so calls chain without checks.
class ModelBuilder {
 public:
  explicit ModelBuilder(std::string name);
  ModelBuilder(const ModelBuilder&) = delete;  // training() hands out a pointer into it
  ModelBuilder& operator=(const ModelBuilder&) = delete;

  /// The shape of one example (no batch axis); name "x" and float32 unless given.
  ModelBuilder& input(Shape shape, std::string name = "", DType dtype = DType::Float32);

  // ---- Layers ----
  /// A dense layer; the activation, if any, is the dense layer's own (as Keras's
  /// `Dense(300, activation="elu")`).
  ModelBuilder& dense(int64_t units, const Init& kernelInit, std::string activation = "");
  ModelBuilder& dense(int64_t units, std::string activation = "");
  ModelBuilder& batchNorm(std::optional<double> momentum = {}, std::optional<double> epsilon = {});
  ModelBuilder& dropout(double rate);
  ModelBuilder& alphaDropout(double rate);
  ModelBuilder& flatten();
  /// `target` is one example's shape; one -1 is inferred.
  ModelBuilder& reshape(Shape target);

  /// Activation layers (chapter11.md's table).
  ModelBuilder& activation(std::string kind);
  ModelBuilder& sigmoid() { return activation("sigmoid"); }
  ModelBuilder& tanh() { return activation("tanh"); }
  ModelBuilder& relu() { return activation("relu"); }
  ModelBuilder& leakyRelu(std::optional<double> alpha = {});
  ModelBuilder& rrelu(std::optional<double> lower = {}, std::optional<double> upper = {});
  /// Learned alpha per unit, starting at `alpha` (0.25).
  ModelBuilder& prelu(std::optional<double> alpha = {});
  ModelBuilder& elu(std::optional<double> alpha = {});
  ModelBuilder& selu() { return activation("selu"); }
  /// `approximate`: "none" (exact, the default), "tanh" or "sigmoid".
  ModelBuilder& gelu(std::string approximate = "");
  /// z * sigmoid(beta z); with `learnable`, beta is a parameter starting at `beta`.
  ModelBuilder& swish(std::optional<double> beta = {}, bool learnable = false);
  ModelBuilder& mish() { return activation("mish"); }
  ModelBuilder& softplus() { return activation("softplus"); }
  ModelBuilder& softmax() { return activation("softmax"); }
  ModelBuilder& logSoftmax() { return activation("log_softmax"); }

  // ---- Modifiers of the last layer ----
  ModelBuilder& named(std::string name);
  /// Dense only.
  ModelBuilder& kernelInit(const Init& init);
  ModelBuilder& biasInit(const Init& init);
  ModelBuilder& useBias(bool use);
  ModelBuilder& l1(double lambda);
  ModelBuilder& l2(double lambda);
  ModelBuilder& maxNorm(double r);
  /// Batch norm (the normalized axis) or softmax/log_softmax.
  ModelBuilder& axis(int64_t axis);
  /// Batch norm only: learn beta (center) and gamma (scale).
  ModelBuilder& center(bool c);
  ModelBuilder& scale(bool s);

  /// The training spec, created on first use.
  TrainingBuilder& training();

  /// The model message, or the first misuse of the builder.
  Expected<proto::Model> model() const;
  /// Validated and expanded exactly as the same model read from a file.
  Expected<ExpandedModel> expand(Expansion mode = Expansion::Inference) const;

 private:
  proto::Layer* last(proto::Layer::KindCase want, const char* what);
  proto::DenseLayer* lastDense(const char* what);
  proto::Model m_;
  std::string misuse_;
  std::unique_ptr<TrainingBuilder> training_;
};

}  // namespace kiln::frontend
