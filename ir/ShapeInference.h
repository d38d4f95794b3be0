// Shape and dtype inference: the result types of a node from its operands' types and attributes.
#pragma once

#include <optional>
#include <string>
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

/// Limits the verifier puts on every tensor type, so that element counts, byte sizes and
/// strides computed downstream fit in int64 with room to spare (and nobody tries to allocate
/// 2^62 floats because a file said so). The batch dimension is not counted.
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 31;
inline constexpr int64_t kMaxTensorRank = 32;

/// The number of elements of `s` leaving out batch dimensions, or nullopt if a dimension is
/// neither positive nor the batch dimension, or the count exceeds kMaxTensorElements (computed
/// without overflow whatever the dimensions are).
std::optional<int64_t> boundedElementCount(const Shape& s);

/// An error text if `t` breaks the limits above (rank, non-positive dimensions, element count);
/// empty if it is fine. `what` names the tensor, e.g. "parameter shape".
std::string checkTensorLimits(const Shape& s, const std::string& what);

}  // namespace kiln
