// The training-step graph: from a model's evaluation graph and its training spec, the graph
// of one optimizer step — forward pass in training mode, loss plus regularization, gradients,
// clipping, optimizer updates with their slots, max-norm constraints, batch-norm moving
// averages, the step counter and the learning-rate schedule — with the new value of every
// piece of state as an output named after it.
#pragma once

#include <string>
#include <vector>

#include "frontend/TrainingSpec.h"
#include "ir/Graph.h"

namespace kiln {

/// Names of the training state the step graph adds.
inline constexpr const char* kStepCounter = "train/step";            // completed steps, float64
inline constexpr const char* kLearningRateState = "train/learning_rate";  // performance only
inline constexpr const char* kMuProduct = "train/mu_product";         // nadam only

struct TrainingGraphOptions {
  /// one_cycle's T when the spec leaves total_steps unset (the run's number of steps).
  int64_t totalSteps = 0;
  /// Clip the gradients as the spec says. The pass pipeline turns this off and runs the
  /// insert-clipping pass instead (so --disable-pass can measure it).
  bool clipGradients = true;
};

struct TrainingGraphInfo {
  /// Every parameter whose new value is an output of the same name: trainable parameters,
  /// optimizer slots, batch-norm moving statistics, the step counter (and schedule state).
  std::vector<std::string> state;
  /// The trainable parameters, in graph order, and their gradient values.
  std::vector<std::string> trainable;
  std::vector<Value*> gradients;
  /// Number of nodes autodiff added.
  int64_t gradientNodes = 0;
};

/// Turns `g` (an evaluation graph: an output named "loss", as frontend::expandModel makes, or
/// any verified graph with such an output) into the training-step graph in place. Outputs
/// afterwards: "loss" (data loss plus l1/l2 terms), the metrics the graph had, "learning_rate",
/// and one per state parameter. Parameters with trainable=false (frozen layers, moving
/// statistics) get no gradient and no slots.
Expected<TrainingGraphInfo> buildTrainingGraph(Graph& g, const frontend::TrainingSpec& spec,
                                               const TrainingGraphOptions& options = {});

/// Sets training=true on every batch_norm, dropout, alpha_dropout and rrelu node.
void setTrainingMode(Graph& g, bool training);

}  // namespace kiln
