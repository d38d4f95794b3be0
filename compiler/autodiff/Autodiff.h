// Reverse-mode automatic differentiation as a graph-to-graph transformation.
#pragma once

#include <vector>

#include "ir/Graph.h"

namespace kiln {

struct GradientResult {
  /// d loss / d wrt[i], or null when wrt[i] does not reach the loss (its gradient is zero).
  std::vector<Value*> grads;
  /// Nodes the pass added (for counting and printing).
  std::vector<Node*> added;
};

/// Adds to `g` the nodes that compute the gradient of the scalar `loss` with respect to each
/// value in `wrt` (parameters, or any float values). Only nodes on a path from some `wrt` value
/// to the loss are differentiated: nothing is built for ops whose outputs do not reach the loss
/// or that no `wrt` value feeds (so backpropagation stops below the lowest trainable parameter).
/// The graph must be verified. An op without a gradient rule on such a path is an error naming
/// it. New nodes are named `grad/...`.
Expected<GradientResult> differentiate(Graph& g, Value* loss, const std::vector<Value*>& wrt);

}  // namespace kiln
