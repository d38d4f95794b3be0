// The Keras-style summaries: of a layer-level model (each layer with its type, output shape and
// parameter count) and of an op-level graph (each node); then the total, trainable and
// non-trainable parameter counts.
#pragma once

#include <cstdint>
#include <string>

#include "frontend/Expand.h"
#include "ir/Graph.h"

namespace kiln::driver {

struct ParamCounts {
  int64_t total = 0;
  int64_t trainable = 0;
  int64_t nonTrainable = 0;
};

/// Counts the elements of every parameter (the graph must be verified).
ParamCounts countParams(const Graph& g);

/// The op-level summary table (the graph must be verified).
std::string summarizeGraph(const Graph& g);

/// The layer-level summary table of an expanded model, as Keras prints model.summary():
/// "Layer (type)", "Output Shape", "Param #", then the totals.
std::string summarizeModel(const frontend::ExpandedModel& m);

/// 268250 -> "268,250".
std::string withThousands(int64_t n);

}  // namespace kiln::driver
