// The verifier: checks a graph against the op table and infers every value's type.
#pragma once

#include "ir/Graph.h"

namespace kiln {

/// Checks operand counts, attributes (names, types, required ones, ranges, choices), cycles,
/// outputs, dtypes and shapes, and sets the type of every value. Reports every independent
/// error it finds (a node whose operand failed is skipped, not reported again).
Status verifyGraph(Graph& g);

/// Checks one node's attributes against the op table (and turns integer values given for
/// float attributes into floats).
Status verifyAttrs(Node& n);

}  // namespace kiln
