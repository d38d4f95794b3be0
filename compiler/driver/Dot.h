// Graphviz DOT output of graphs (`kiln dot`).
#pragma once

#include <string>
#include <vector>

#include "frontend/Expand.h"
#include "ir/Graph.h"

namespace kiln::driver {

/// The verified graph `g` as a DOT digraph: inputs and outputs as ovals, parameters as notes
/// with their shapes (non-trainable ones grey), edges labelled with tensor shapes. With
/// `layers` (a layer-level model's), one cluster per layer labelled with its type and parameter
/// count; without, one cluster per node-name prefix ("hidden1/...").
std::string graphToDot(const Graph& g, const std::vector<frontend::LayerInfo>* layers);

}  // namespace kiln::driver
