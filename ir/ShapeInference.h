// Shape and dtype inference: the result types of a node from its operands' types and attributes.
#pragma once

#include <vector>

#include "ir/Graph.h"

namespace kiln {

/// The result types of `n`, whose operand types are already set and whose attributes have been
/// checked against the op table. An error names the node and says what was expected and found.
Expected<std::vector<TensorType>> inferResultTypes(const Node& n);

/// NumPy broadcasting of two shapes; the batch dimension (-1) matches only -1 or 1.
Expected<Shape> broadcastShapes(const Shape& a, const Shape& b);

/// `axis` (negative counts from the end) as an index into a rank-`rank` shape, if in range.
std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank);

}  // namespace kiln
