// Element types, shapes and tensor types of the IR.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

/// Element types. The numbering matches kiln.proto's DType.
enum class DType : uint8_t { Float32 = 1, Float64 = 2, Int32 = 3, Int64 = 4, Bool = 5 };

std::string_view dtypeName(DType t);  // "float32", ...
std::optional<DType> parseDType(std::string_view name);
bool isFloat(DType t);
bool isInteger(DType t);
int64_t dtypeSize(DType t);

/// The batch dimension: unknown until run time, the same size wherever it appears.
inline constexpr int64_t kBatch = -1;

using Shape = std::vector<int64_t>;

/// "[-1,784]" style.
std::string shapeStr(const Shape& s);
/// Number of elements; requires no batch dimension.
int64_t numElements(const Shape& s);
bool hasBatchDim(const Shape& s);
/// The shape with every batch dimension replaced by `batch`.
Shape bindBatch(Shape s, int64_t batch);

struct TensorType {
  DType dtype = DType::Float32;
  Shape shape;

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  std::string str() const;  // "float32[-1,784]"
  friend bool operator==(const TensorType&, const TensorType&) = default;
};

}  // namespace kiln
