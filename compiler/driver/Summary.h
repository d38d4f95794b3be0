// The Keras-style summary of a graph: each node with its output shape and parameter count,
// then the total, trainable and non-trainable parameter counts.
#pragma once

#include <cstdint>
#include <string>

#include "ir/Graph.h"

namespace kiln::driver {

struct ParamCounts {
  int64_t total = 0;
  int64_t trainable = 0;
  int64_t nonTrainable = 0;
};

/// Counts the elements of every parameter (the graph must be verified).
ParamCounts countParams(const Graph& g);

/// The summary table (the graph must be verified).
std::string summarizeGraph(const Graph& g);

/// 268250 -> "268,250".
std::string withThousands(int64_t n);

}  // namespace kiln::driver
