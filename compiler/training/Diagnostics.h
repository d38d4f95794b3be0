// Training diagnostics (`kiln train --log-gradients N`): extra outputs of the training-step graph
// that show vanishing and exploding gradients and dying or saturating units as training goes:
// each layer's gradient L2 norm, and each activation's mean, standard deviation and dead
// (ReLU family) or saturated (sigmoid, tanh) fraction.
#pragma once

#include <string>
#include <vector>

#include "compiler/training/TrainingGraph.h"

namespace kiln {

/// Output names start with this; the rest is "<layer>/<what>".
inline constexpr const char* kDiagnosticPrefix = "diag/";

/// Adds the diagnostic outputs to a training-step graph built by buildTrainingGraph:
///   diag/<layer>/grad_norm   sqrt of the sum of squares of the gradients of the layer's
///                            trainable parameters (the layer is the name before the first '/')
///   diag/<layer>/mean, diag/<layer>/std   of the activation's output over the batch
///   diag/<layer>/dead        relu, leaky_relu, prelu, rrelu, elu, selu: the fraction of
///                            pre-activations <= 0 (where ReLU's gradient is zero and the others'
///                            is small or leaky)
///   diag/<layer>/saturated   sigmoid: outputs outside [0.01, 0.99] (derivative < 0.0099);
///                            tanh: |output| > 0.99 (derivative < 0.02)
/// Returns the names of the outputs it added, in graph order.
Expected<std::vector<std::string>> addTrainingDiagnostics(Graph& g, const TrainingGraphInfo& info);

}  // namespace kiln
